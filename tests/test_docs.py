"""The documentation matches the code."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_schema_page_is_generated_from_the_current_schemas():
    spec = importlib.util.spec_from_file_location("make_schemas", DOCS / "make_schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "schemas.md").read_text() == module.render(), (
        "docs/schemas.md is out of date: run python docs/make_schemas.py"
    )
