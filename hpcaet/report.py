"""The run report: one HTML page with the figures and numbers of every stage that ran.

:func:`write_report` reads a run directory and writes ``report.html``: a section per
stage whose outputs exist (tilt series, preprocessing, volume, atom model, structure,
EELS, scaling study), each with its figures and a short table of the numbers a
scientist would quote (dose, angles, iterations, atom counts, R1, scores against a
truth file when there is one, the structure summary). The figures are embedded
(base64 PNG), so the page is one file that opens anywhere; a small script marks
``data-figures-loaded`` on the page once every image has decoded, which the tests read
in a headless browser. ``hpcaet run`` writes the report at the end of every run;
``hpcaet report --run DIR`` writes it again.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

from hpcaet.io import read_dataset
from hpcaet.io.atomic import atomic_path

__all__ = ["write_report", "REPORT"]

log = logging.getLogger(__name__)

#: File name of the report in a run directory.
REPORT = "report.html"

# stage title, the file that shows it ran, and the figure name prefixes it owns
_SECTIONS = (
    ("Tilt series", "tilt_series.nc", ("truth_atoms", "tilt_series")),
    ("Preprocessing", "processed.nc", ("preprocess_",)),
    ("Reconstruction", "volume.nc", ("volume",)),
    ("Atom model", "atoms.nc", ("atoms",)),
    ("Structure", "strain.nc", ("structure_",)),
    ("Vibrational EELS", "eels.nc", ("eels_",)),
    ("Scaling study", "scaling/scaling.nc", ("scaling/scaling",)),
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-top:.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;
text-align:left;font-size:.9em}figure{margin:1em 0}img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85em;color:#555}pre{background:#f6f6f6;padding:.6em;overflow:auto;
font-size:.8em}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute('data-figures-loaded', ok.length + ' of ' + imgs.length);
});
"""


def write_report(run_dir: str | Path) -> Path:
    """Write ``report.html`` of a run directory; its path.

    Parameters
    ----------
    run_dir : path
        A run directory (``config.yaml``, the stages' netCDF files, ``figures/``).

    Returns
    -------
    Path
    """
    root = Path(run_dir)
    parts = [
        f"<h1>hpcaet run {html.escape(root.name)}</h1>",
        f"<p>{html.escape(str(root.resolve()))} &middot; written "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC</p>",
    ]
    used: set[Path] = set()
    for title, marker, prefixes in _SECTIONS:
        if not (root / marker).exists():
            continue
        rows = _numbers(root, marker)
        figures = _figures(root, prefixes)
        used.update(figures)
        parts.append(f"<h2>{title}</h2>")
        if rows:
            parts.append(_table(rows))
        parts.extend(_figure(path, root) for path in figures)
        if marker == "strain.nc" and (root / "structure_results.txt").exists():
            text = (root / "structure_results.txt").read_text()
            parts.append(f"<pre>{html.escape(text)}</pre>")
    others = [p for p in sorted((root / "figures").glob("*.png")) if p not in used]
    if others:
        parts.append("<h2>Other figures</h2>")
        parts.extend(_figure(path, root) for path in others)
    if (root / "config.yaml").exists():
        parts.append("<h2>Configuration</h2>")
        parts.append(f"<pre>{html.escape((root / 'config.yaml').read_text())}</pre>")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>hpcaet run {html.escape(root.name)}</title><style>{_STYLE}</style>"
        f"<script>{_SCRIPT}</script></head><body>{''.join(parts)}</body></html>"
    )
    path = root / REPORT
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("report: %s", path)
    return path


def _figures(root: Path, prefixes) -> list[Path]:
    found = []
    for prefix in prefixes:
        base = root if "/" in prefix else root / "figures"
        found += sorted(base.glob(f"{prefix}*.png"))
    return list(dict.fromkeys(found))


def _figure(path: Path, root: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = html.escape(str(path.relative_to(root)))
    return (
        f"<figure><img alt='{name}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{name}</figcaption></figure>"
    )


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _numbers(root: Path, marker: str) -> list[tuple[str, str]]:
    """A few figures of a stage's output, read from its attributes and JSON files."""
    try:
        ds = read_dataset(root / marker, load=False)
    except Exception as exc:  # a damaged file: say so in the report rather than fail
        return [("file", f"{marker} could not be read ({exc})")]
    try:
        return _rows(root, marker, ds)
    finally:
        ds.close()


def _rows(root: Path, marker: str, ds) -> list[tuple[str, str]]:
    a = ds.attrs
    rows: list[tuple[str, str]] = []
    if marker == "tilt_series.nc":
        rows += [
            ("tilts x frames", f"{ds.sizes.get('tilt', '?')} x {ds.sizes.get('frame', '?')}"),
            ("pixel size", f"{a.get('pixel_size', '?')} Å"),
            ("dose", f"{float(a.get('dose', float('nan'))):.3g} e/Å²"),
            ("measured (imported)", "yes" if int(a.get("imported", 0)) else "no (simulated)"),
        ]
    elif marker == "processed.nc":
        rows.append(("images", " x ".join(str(s) for s in ds["images"].shape)))
        if "euler" in ds:
            tilt = ds["euler"].values[:, 1]
            rows.append(("tilt range", f"{tilt.min():.1f}° to {tilt.max():.1f}°"))
    elif marker == "volume.nc":
        rows += [
            ("algorithm", str(a.get("algorithm", "?"))),
            ("iterations per window", str(a.get("iterations", "?"))),
            ("volume (z, y, x)", " x ".join(str(s) for s in ds["density"].shape)),
            ("voxel size", f"{a.get('voxel_size', '?')} Å"),
        ]
    elif marker == "atoms.nc":
        species = ds["species"].values.astype(str)
        counts = {s: int((species == s).sum()) for s in sorted(set(species))}
        rows.append(("sites", ", ".join(f"{k} {v}" for k, v in counts.items())))
        if "R1" in a:
            rows.append(("R1", f"{float(a['R1']):.4f}"))
        if "flag" in ds:
            rows.append(("flagged sites", str(int((ds["flag"].values != 0).sum()))))
        rows += _scores(root / "scores.json")
    elif marker == "eels.nc":
        rows.append(("spectra", str(ds.sizes.get("position", ds.sizes.get("pixel", "?")))))
    elif marker == "scaling/scaling.nc":
        for w, t, e in zip(
            ds["workers"].values, ds["seconds"].values, ds["efficiency"].values, strict=True
        ):
            rows.append((f"{w} workers", f"{t:.1f} s, efficiency {100 * e:.0f} %"))
    return rows


def _scores(path: Path) -> list[tuple[str, str]]:
    if not path.exists():
        return []
    scores = json.loads(path.read_text())
    rows = [
        (
            f"{name} vs truth",
            f"RMSD {row['rmsd_pm']:.1f} pm, detected {100 * row['detection_rate']:.1f} %, "
            f"species right {100 * row['species_accuracy']:.1f} %",
        )
        for name, row in scores["species"].items()
        if row["n_true"]
    ]
    vac = scores["vacancies"]
    rows.append(("vacancies", f"{vac['found']} of {vac['true']} found, {vac['false']} false"))
    return rows
