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


def _python_blocks(text: str) -> list[str]:
    blocks, inside, current = [], False, []
    for line in text.splitlines():
        if line.strip() == "```python":
            inside, current = True, []
        elif line.strip() == "```" and inside:
            blocks.append("\n".join(current))
            inside = False
        elif inside:
            current.append(line)
    return blocks


def test_python_examples_in_the_docs_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # what the examples write stays out of the checkout
    for page in sorted(DOCS.glob("*.md")):
        for block in _python_blocks(page.read_text()):
            exec(compile(block, str(page), "exec"), {})
