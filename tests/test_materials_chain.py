"""The demo chain on other materials, end to end: MoS2 alone and WS2–MoSe2.

``hpcaet run`` simulates each config's field (the demo's 40 x 40 Å, seed and imaging;
only ``materials`` and the substitutions differ) and runs preprocess -> reconstruct ->
atoms -> structure; the atoms stage scores the model against the phantom it never saw.
Measured (benchmarks/bench_materials.py, docs/materials.md), RMSD [pm]:

=============  =====  =====  =====  =====  =============================
config         metal  metal  S      Se     species right, vacancies
=============  =====  =====  =====  =====  =============================
demo           Mo 2.9 W 2.5  11.3   5.3    every metal; 198/199 S; 4/4
demo_mos2      Mo 2.6 -      10.9   -      every atom; 4/4
demo_ws2_mose2 W 2.7  Mo 4.2 12.5   6.5    every metal; 184/187 S; 3/3
=============  =====  =====  =====  =====  =============================

The bounds are the paper's precision where the demo meets it (W 6, S and Se 15 pm) and
about 1.5 x the measured figure elsewhere (Mo 4, 6 pm), species 97 %, 3 of 4 vacancies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BOUNDS = {
    "demo_mos2": {"Mo": 4.0, "S": 15.0},
    "demo_ws2_mose2": {"W": 6.0, "Mo": 6.0, "S": 15.0, "Se": 15.0},
}


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_the_demo_chain_on_other_materials(name, tmp_path):
    run = tmp_path / name
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "hpcaet.cli",
            "run",
            "--config",
            str(CONFIGS / f"{name}.yaml"),
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    scores = json.loads((run / "scores.json").read_text())
    assert set(scores["species"]) == set(BOUNDS[name])
    for element, bound in BOUNDS[name].items():
        row = scores["species"][element]
        assert row["rmsd_pm"] <= bound, (element, row)
        assert row["species_accuracy"] >= 0.97, (element, row)
    assert scores["vacancies"]["found"] >= 3
    assert scores["vacancies"]["false"] <= 2
    results = json.loads((run / "structure_results.json").read_text())
    assert [r["name"] for r in results["materials"]] == list(results["material_names"])
    if name == "demo_mos2":
        assert results["interface"] is None  # one material: nothing to trace
    else:
        assert results["interface"]["segments"]
        assert set(results["lattice"]) == {"WS2", "MoSe2"}
    _check_report(run)


def _check_report(run: Path) -> None:
    """The run's report.html has every stage, and a real headless browser shows it."""
    page = (run / "report.html").read_text()
    for section in (
        "Tilt series",
        "Preprocessing",
        "Reconstruction",
        "Atom model",
        "Structure",
        "Vibrational EELS",
        "Configuration",
    ):
        assert f"<h2>{section}</h2>" in page, section
    figures = len(list((run / "figures").glob("*.png")))
    assert page.count("<img ") == figures >= 20
    assert "species right" in page  # the scores against the phantom
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium for the report check (apt-get install chromium)")
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = (run / "report.html").resolve().as_uri()
    dom = subprocess.run(
        [browser, *flags, "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert f'data-figures-loaded="{figures} of {figures}"' in dom  # every image decoded
    shot = run / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1200,2000", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=True,
    )
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2000, 1200) and pixels.std() > 0.05  # not a blank page
