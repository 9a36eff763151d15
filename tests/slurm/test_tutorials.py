"""The tutorials of docs/, executed: a laptop run, a SLURM run and a scaling study.

Each page's ```` ```bash ```` blocks run in order as one bash script (``set -euo
pipefail``: a failing command, or a ``grep`` that finds nothing, fails the test) in a
fresh folder that holds the checkout's ``configs/``, ``jobs/`` and ``.ci/``, as a user
would from the root of the checkout. Blocks fenced ```` ```sh ```` are shown, not run
(commands for a real cluster, and stopping a test SLURM the session still needs).

The three share one folder: the laptop run's directory is the input of the other two,
as the pages say. The SLURM page runs on the session's test SLURM (``slurm`` fixture,
``$SLURM_DIR``) and skips without it.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
#: hpcaet and python of this interpreter first; SLURM's daemons live in /usr/sbin.
PATH = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"], "/usr/sbin"])


def _script(page: Path) -> str:
    """The ```bash blocks of a page, in order."""
    lines, inside = [], False
    for line in page.read_text().splitlines():
        if line.strip() == "```bash":
            inside = True
        elif line.strip().startswith("```") and inside:
            inside = False
        elif inside:
            lines.append(line)
    return "\n".join(lines)


def _run_page(name: str, folder: Path, *, timeout: float, env: dict | None = None) -> str:
    script = _script(DOCS / name)
    assert script, f"docs/{name} has no bash block"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the log lines too
        text=True,
        timeout=timeout,
        env={**os.environ, "PATH": PATH, **(env or {})},
    )
    assert done.returncode == 0, f"docs/{name} failed ({done.returncode}):\n{done.stdout[-6000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def laptop(tmp_path_factory) -> tuple[Path, str]:
    """The folder after docs/tutorial-laptop.md, and what its commands printed."""
    folder = tmp_path_factory.mktemp("tutorial")
    for name in ("configs", "jobs", ".ci"):
        (folder / name).symlink_to(REPO / name)
    return folder, _run_page("tutorial-laptop.md", folder, timeout=500)


def test_laptop_tutorial(laptop):
    folder, out = laptop
    run = folder / "runs" / "tiny"
    for name in ("tilt_series.nc", "processed.nc", "volume.nc", "report.html"):
        assert (run / name).stat().st_size > 0, name
    # the rerun, the rerun on one worker and the one without Dask skipped every stage
    assert out.count("stage simulate: up to date") == 1
    assert out.count("stage reconstruct: up to date") == 3


def test_scaling_tutorial(laptop):
    folder, _ = laptop
    out = _run_page("tutorial-scaling.md", folder, timeout=400)
    assert "stage preprocess: up to date" in out  # the laptop run's stages were reused
    for study, sizes in (("scaling", [1, 2]), ("weak", [1, 2])):
        with open(folder / "runs" / "tiny" / study / "scaling.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["workers"]) for r in rows] == sizes, rows
        assert all(float(r["seconds"]) > 0 for r in rows), rows


@pytest.mark.slurm
@pytest.mark.timeout(400)
def test_slurm_tutorial(laptop, slurm):
    folder, _ = laptop
    out = _run_page(
        "tutorial-slurm.md",
        folder,
        timeout=360,
        env={"SLURM_DIR": str(slurm.folder), "SLURM_CONF": str(slurm.conf)},
    )
    assert out.strip().splitlines()[-1] == "2"  # two dask-worker jobs ran
    logs = list(folder.glob("hpcaet-driver-*.log"))
    assert len(logs) == 1 and "stage reconstruct: wrote" in logs[0].read_text()
