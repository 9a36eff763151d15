"""A real one-node SLURM cluster for the tests marked ``slurm``, started once per session.

The ``slurm`` fixture runs ``.ci/slurm.sh up`` in a fresh folder under /tmp (munged, which
runs as the munge user, must reach it), points ``SLURM_CONF`` at it for the session and
stops exactly its daemons at the end, whatever the tests did. Without SLURM, or when not
root, the tests that ask for it skip and say how to install it.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SLURM_SH = REPO / ".ci" / "slurm.sh"
INSTALL = (
    "install it, as root, with: apt-get install slurm-wlm munge (or deselect these tests "
    "with -m 'not slurm')"
)
#: Daemons live in /usr/sbin, which a non-login PATH may lack.
PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


@dataclass(frozen=True)
class LocalSlurm:
    """The running test cluster: its folder, its config and a few client helpers."""

    folder: Path
    conf: Path
    start_seconds: float

    def sbatch(self, script: Path | str, *args: str, options: Sequence[str] = ()) -> str:
        """Submit a batch script; the job id (``options`` go to sbatch before the script)."""
        out = _run(["sbatch", "--parsable", *options, str(script), *args])
        return out.strip().split(";")[0]

    def jobs(self) -> dict[str, dict[str, str]]:
        """Every job the controller knows (also finished ones, for a few minutes)."""
        out = _run(["scontrol", "-o", "show", "job"])
        jobs = {}
        for line in out.splitlines():
            if not line.startswith("JobId="):
                continue
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            jobs[fields["JobId"]] = fields
        return jobs

    def running(self) -> set[str]:
        """Ids of the pending and running jobs (``squeue -h -o %i``)."""
        return set(_run(["squeue", "-h", "-o", "%i"]).split())

    def wait(self, job_id: str, *, timeout: float = 120.0) -> list[dict[str, str]]:
        """Wait until a job (every task of an array) has finished; their records.

        Polls every 0.2 s: ``sbatch --wait`` polls only every 10 s.
        """
        deadline = time.monotonic() + timeout
        while True:
            mine = [
                j
                for j in self.jobs().values()
                if job_id in (j["JobId"], j.get("ArrayJobId"))
                and not j.get("ArrayTaskId", "").startswith("[")  # the pending rest of an array
            ]
            if mine and all(j["JobState"] in FINISHED for j in mine):
                return mine
            if time.monotonic() > deadline:
                states = {j["JobId"]: j["JobState"] for j in mine}
                raise AssertionError(f"job {job_id} not finished after {timeout} s: {states}")
            time.sleep(0.2)


def _run(cmd: Sequence[str]) -> str:
    done = subprocess.run(
        list(cmd), capture_output=True, text=True, timeout=60, env={**os.environ, "PATH": PATH}
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def _why_not() -> str | None:
    for exe in ("slurmctld", "slurmd", "munged", "sbatch", "srun", "squeue", "scancel"):
        if shutil.which(exe, path=PATH) is None:
            return f"SLURM is not installed (no {exe}); {INSTALL}"
    if os.geteuid() != 0:
        return (
            f"the test SLURM cluster starts its daemons as root, and this is uid "
            f"{os.geteuid()}: run the tests as root (e.g. in a container or CI job); where "
            f"SLURM is missing, {INSTALL}"
        )
    return None


@pytest.fixture(scope="session")
def slurm() -> Iterator[LocalSlurm]:
    """A running one-node SLURM cluster with ``SLURM_CONF`` set (skips without SLURM)."""
    reason = _why_not()
    if reason is not None:
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="hpcaet-slurm-"))
    env = {**os.environ, "PATH": PATH}
    start = time.perf_counter()
    up = subprocess.run(
        ["bash", str(SLURM_SH), "up", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    seconds = time.perf_counter() - start
    if up.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        message = f".ci/slurm.sh up failed (exit {up.returncode}):\n{up.stdout}{up.stderr}"
        if up.returncode == 3:
            pytest.skip(f"{message}\n{INSTALL}")
        pytest.fail(message)
    log.info("test SLURM up in %.1f s: %s", seconds, folder)
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
    try:
        yield LocalSlurm(folder=folder, conf=folder / "slurm.conf", start_seconds=seconds)
    finally:
        down = subprocess.run(
            ["bash", str(SLURM_SH), "down", str(folder)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        if down.returncode != 0:
            log.error(".ci/slurm.sh down %s failed: %s", folder, down.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
