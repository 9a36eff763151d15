"""Human-readable documentation of the Dataset schemas (:mod:`hpcaet.io.schemas`).

:func:`describe` renders one kind as reStructuredText tables; ``docs/make_schemas.py``
writes them all to ``docs/schemas.md`` and ``hpcaet info`` prints them.
"""

from __future__ import annotations

from hpcaet.errors import InputError
from hpcaet.io.schemas import (
    _ATTR_CHECK_TEXT,
    _CHECK_TEXT,
    KINDS,
    SCHEMA_VERSION,
    SCHEMAS,
    FieldSpec,
)

__all__ = ["describe"]


def _rst_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = [header, *[tuple(c or "-" for c in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)

    def line(row):
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return "\n".join([rule, line(header), rule, *map(line, cells[1:]), rule])


def _flag_text(spec: FieldSpec) -> str:
    codes = spec.flag_values or spec.flag_masks
    if codes is None:
        return ""
    pairs = ", ".join(f"{c} {m}" for c, m in zip(codes, spec.flag_meanings.split(), strict=True))
    return f" ({'flag_values' if spec.flag_values else 'flag_masks'}: {pairs})"


def describe(kind: str) -> str:
    """A human-readable description of the schema of ``kind``.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.

    Returns
    -------
    str
        reStructuredText: a title, the coordinates, variables and attributes as simple
        tables (name, dims, dtype, units, required, checks, description) and notes.
    """
    if kind not in SCHEMAS:
        raise InputError(f"Unknown kind {kind!r}; expected one of {KINDS}.")
    spec = SCHEMAS[kind]
    coords = [
        (
            c.name,
            ", ".join(c.dims),
            c.dtype,
            c.units,
            "if dim used" if c.required else "no",
            ", ".join(
                ([f"labels {' '.join(c.values)}"] if c.values else [])
                + (["index (built as 0 .. n-1)"] if c.index else [])
                + [_CHECK_TEXT[k] for k in c.checks if k != "spacing"]
                + ([f"step = {c.spacing_attr}"] if c.spacing_attr else [])
            ),
            c.description,
        )
        for c in spec.coordinates
    ]
    variables = [
        (
            v.name,
            ", ".join(v.dims),
            v.storage or v.dtype,
            v.units,
            "yes" if v.required else "no",
            ", ".join(_CHECK_TEXT[k] for k in v.checks),
            v.description + _flag_text(v),
        )
        for v in spec.variables
    ]
    attributes = [
        (
            a.name,
            a.dtype,
            a.units,
            "yes" if a.required else "no",
            _ATTR_CHECK_TEXT.get(a.check, ""),
            a.description,
        )
        for a in spec.attributes
    ]
    header = ("name", "dims", "dtype", "units", "required", "checks", "description")
    title = f"{kind} (schema version {SCHEMA_VERSION})"
    parts = [
        title,
        "=" * len(title),
        "",
        f"{spec.description} Built by ``hpcaet.io.{spec.builder}``; "
        f"``attrs['hpcaet_kind'] = {kind!r}``.",
        "",
        "Coordinates\n-----------\n",
        _rst_table(header, coords),
        "",
        "Variables\n---------\n",
        _rst_table(header, variables),
    ]
    if attributes:
        parts += [
            "",
            "Attributes\n----------\n",
            _rst_table(("name", "type", "units", "required", "range", "description"), attributes),
            "",
            "An attribute with units is stored with a companion string attribute named "
            "``<name>_units``, e.g. ``pixel_size_units = 'Å'``.",
        ]
    notes = [f"At least one of {', '.join(group)} is present." for group in spec.one_of]
    notes += [f"{low} < {high}." for low, high in spec.less_than]
    notes += list(spec.notes)
    if notes:
        parts += ["", "Notes\n-----\n", *[f"* {note}" for note in notes]]
    return "\n".join(parts) + "\n"
