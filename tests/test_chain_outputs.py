"""The demo chain, end to end: the same bits on 1 and 2 Dask workers, and its figures.

Every stage (simulate, preprocess, reconstruct, atoms, structure, eels) runs on a small
field of the demo (32 x 32 Å, 128 x 128 pixels, 3 frames, short iterations) once on a
one-worker and once on a two-worker local cluster.

Reproducibility: every netCDF output must agree bit for bit, variables and
attributes, and so must the JSON results (less their timings). The sources of
difference this guards against, each fixed where it arises: a multi-threaded BLAS
(split sums; :mod:`hpcaet.parallel.threads` pins one thread in every task and stage),
BM3D's own threads (its aggregation order; one thread in
:mod:`hpcaet.preprocess.denoise`), results taken in their order of completion
(:func:`hpcaet.parallel.map_tasks` returns them in the order of the jobs), and seeds
(per tilt, window and flipping cycle, never per worker).

Figures: every figure the first run saves is checked as saved
(:func:`figure_checks.figure_problems`): labels with units, colour bars, scale bars or
equal axes in Å, nothing cut off, no legend over data; the EELS stage's included.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from figure_checks import figure_problems
from matplotlib.figure import Figure

from hpcaet.config import load_config, packaged_config
from hpcaet.io import read_dataset, write_dataset
from hpcaet.pipeline import STAGES, run_stages

# The EELS stage warns of a peak its synthetic line scan does not determine (its own
# tests check that); here only the bits of what it writes count.
pytestmark = pytest.mark.filterwarnings("default::hpcaet.eels.EelsWarning")

SMALL = {
    "phantom": {"field": [32.0, 32.0], "vacancies": 2, "substitutions": 1},
    "imaging": {"shape": [128, 128], "frames": 3},
    "reconstruct": {"iterations": 30, "window": 40, "step": 20, "support_z": 27},
    "atoms": {"refine_iterations": 30, "flip_cycles": 1},
}


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """(run on 1 worker, run on 2 workers, {file name: Figure} saved by the first)."""
    from distributed import Client, LocalCluster

    config = load_config(packaged_config("demo"), overrides=SMALL)
    root = tmp_path_factory.mktemp("chain")
    saved: dict[str, Figure] = {}
    original = Figure.savefig

    def savefig(fig, fname, *args, **kwargs):
        result = original(fig, fname, *args, **kwargs)
        saved[Path(fname).name] = fig
        return result

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Figure, "savefig", savefig)
            run_stages(config, root / "one", stages=tuple(STAGES), client=client)
        cluster.scale(2)
        client.wait_for_workers(2, timeout=120)
        run_stages(config, root / "two", stages=tuple(STAGES), client=client)
    return root / "one", root / "two", saved


def _differences(a, b) -> list[str]:
    """What differs between two hpcaet files: variables (max |difference|) and attrs."""
    x, y = read_dataset(a), read_dataset(b)
    found = []
    for name in sorted(set(x.variables) | set(y.variables)):
        if name not in x.variables or name not in y.variables:
            found.append(f"{a.name}: {name} in one file only")
            continue
        u, v = x[name].values, y[name].values
        if u.shape != v.shape:
            found.append(f"{a.name}: {name} shapes {u.shape} and {v.shape}")
        elif u.dtype.kind in "fc" and not np.array_equal(u, v, equal_nan=True):
            found.append(f"{a.name}: {name} differs by up to {np.nanmax(np.abs(u - v)):.3g}")
        elif u.dtype.kind not in "fc" and not np.array_equal(u, v):
            found.append(f"{a.name}: {name} differs")
    for key in sorted(set(x.attrs) | set(y.attrs)):
        if repr(x.attrs.get(key)) != repr(y.attrs.get(key)):
            found.append(f"{a.name}: attribute {key} differs")
    return found


def test_every_output_is_the_same_on_one_and_two_workers(two_runs):
    one, two, _ = two_runs
    files = sorted(p.name for p in one.glob("*.nc"))
    expected = {f for stage in STAGES.values() for f in stage.outputs}
    assert set(files) == expected  # every stage ran
    differences = [d for f in files for d in _differences(one / f, two / f)]
    assert not differences, "\n".join(differences)
    for name in ("scores.json", "structure_results.json"):
        a, b = (json.loads((run / name).read_text()) for run in (one, two))
        a.pop("timings", None), b.pop("timings", None)  # wall-clock seconds of each step
        assert a == b, name


def test_the_comparison_sees_a_change_in_the_last_bit(two_runs, tmp_path):
    one, _, _ = two_runs
    volume = read_dataset(one / "volume.nc")
    density = volume["density"].values.copy()
    density.flat[0] = np.nextafter(density.flat[0], np.inf)  # one value, one ulp off
    volume["density"].values = density
    write_dataset(volume, tmp_path / "volume.nc")
    found = _differences(one / "volume.nc", tmp_path / "volume.nc")
    assert len(found) == 1 and found[0].startswith("volume.nc: density differs"), found


def test_every_figure_is_fit_for_a_paper_draft(two_runs):
    one, _, saved = two_runs
    written = {p.name for p in (one / "figures").glob("*.png")}
    ours = set(written)
    assert ours <= set(saved) and len(ours) >= 22  # every figure was seen as saved
    problems = [f"{name}: {p}" for name in sorted(ours) for p in figure_problems(saved[name])]
    assert not problems, "\n".join(problems)


def test_the_figure_checks_are_not_blind():
    # a figure with each fault once: every one is reported
    fig = Figure(figsize=(6, 3), layout="constrained")
    image, scatter = fig.subplots(1, 2)
    art = image.imshow(np.ones((8, 8)))
    image.set_axis_off()  # no scale bar
    fig.colorbar(art, ax=image, label="intensity")  # no unit
    scatter.scatter(np.linspace(0, 1, 20), np.full(20, 0.5), label="atoms")
    scatter.plot([0, 1], [0, 1], color="red")
    scatter.plot([0, 1], [1, 0], color="blue")  # two colours of line, no legend of its own
    scatter.set(xlabel="x [Å]", ylabel="y [Å]")  # a map on stretched axes
    fig.legend(loc="center", bbox_to_anchor=(0.75, 0.5))  # on top of the atoms
    fig.suptitle("a title far too long to fit on this narrow figure " * 3)
    fig.savefig(io.BytesIO())
    problems = "\n".join(figure_problems(fig))
    for fault in (
        "no quantity with a unit",
        "an image panel without axes or a scale bar",
        "a map or section without equal axes",
        "the legend covers",
        "cut off at the figure's edge",
    ):
        assert fault in problems, (fault, problems)
