"""The command line and the run directory, end to end on the demo config."""

import numpy as np
import pytest

from hpcaet.cli import main
from hpcaet.config import load_config, packaged_config
from hpcaet.io import read_dataset
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED
from hpcaet.pipeline import run_stages


def test_simulate_writes_truth_and_series_and_skips_when_done(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["simulate", "--config", str(packaged_config("demo")), "--out", str(out), "--no-cluster"]
    )
    assert code == 0
    atoms = read_dataset(out / "truth_atoms.nc", kind="AtomModel")
    series = read_dataset(out / "tilt_series.nc", kind="TiltSeries")
    cfg = load_config(packaged_config("demo"))
    assert series.sizes == {
        "tilt": 12,
        "frame": cfg.imaging.frames,
        "y": 160,
        "x": 160,
        "angle": 3,
        "stage_axis": 2,
        "shift_axis": 2,
    }
    np.testing.assert_allclose(series["true_euler"], TABLE_S2_CALIBRATED)
    error = np.abs(series["euler"] - series["true_euler"])
    assert 0 < float(error.max()) <= cfg.imaging.nominal_error
    assert (atoms["species"] == "vac").sum() == cfg.phantom.vacancies
    assert (out / "figures" / "tilt_series.png").stat().st_size > 10_000
    assert "Run directory" in capsys.readouterr().out

    stamp = (out / "tilt_series.nc").stat().st_mtime_ns
    # --run is the run directory's option everywhere; --out is its deprecated alias
    argv = ["simulate", "--config", str(packaged_config("demo")), "--run", str(out)]
    assert main([*argv, "--no-cluster"]) == 0
    assert (out / "tilt_series.nc").stat().st_mtime_ns == stamp  # skipped, not redone
    listed = capsys.readouterr().out  # a rerun that skips everything still lists it all
    for name in ("tilt_series.nc", "truth_atoms.nc", "figures/tilt_series.png"):
        assert str(out / name) in listed, name


def test_changed_config_or_damaged_output_reruns_the_stage(tmp_path):
    cfg = load_config(packaged_config("demo"), overrides={"imaging": {"frames": 2}})
    out = tmp_path / "run"
    run_stages(cfg, out)
    first = read_dataset(out / "tilt_series.nc")
    # A truncated output file is not "done": the stage runs again and gives the same data.
    path = out / "tilt_series.nc"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    run_stages(cfg, out)
    again = read_dataset(out / "tilt_series.nc")
    np.testing.assert_array_equal(first["frames"].values, again["frames"].values)
    cfg2 = load_config(packaged_config("demo"), overrides={"imaging": {"frames": 3}})
    run_stages(cfg2, out)
    assert read_dataset(out / "tilt_series.nc").sizes["frame"] == 3


def test_dask_cluster_gives_the_same_series_as_serial(tmp_path):
    from distributed import Client, LocalCluster

    cfg = load_config(packaged_config("demo"), overrides={"imaging": {"frames": 2}})
    serial = run_stages(cfg, tmp_path / "serial")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        spread = run_stages(cfg, tmp_path / "dask", client=client)
    a = read_dataset(serial["tilt_series.nc"])
    b = read_dataset(spread["tilt_series.nc"])
    np.testing.assert_array_equal(a["frames"].values, b["frames"].values)


def test_bad_config_is_a_clear_error_and_exit_code_2(tmp_path, caplog):
    bad = tmp_path / "bad.yaml"
    bad.write_text("imaging:\n  frams: 3\n")
    code = main(["simulate", "--config", str(bad), "--out", str(tmp_path / "x"), "--no-cluster"])
    assert code == 2
    assert "unknown setting 'imaging.frams'" in caplog.text
    assert not (tmp_path / "x" / "tilt_series.nc").exists()


def test_info_and_help(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    for command in ("demo", "simulate", "info"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "usage" in capsys.readouterr().out
    cfg = load_config(packaged_config("demo"), overrides={"imaging": {"frames": 1}})
    outputs = run_stages(cfg, tmp_path / "r")
    assert main(["info", str(outputs["truth_atoms.nc"])]) == 0
    assert "AtomModel" in capsys.readouterr().out


def test_version_bare_command_and_info_on_a_figure(tmp_path, capsys, caplog):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("hpcaet ")
    assert main([]) == 2  # bare hpcaet: help, and a non-zero exit
    assert "usage" in capsys.readouterr().out
    png = tmp_path / "atoms.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert main(["info", str(png)]) == 2
    assert "is not a netCDF file" in caplog.text
    damaged = tmp_path / "volume.nc"
    damaged.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    assert main(["info", str(damaged)]) == 2
    assert "damaged or truncated" in caplog.text


def test_a_packaged_config_by_name_beside_a_folder_of_that_name(tmp_path, monkeypatch):
    # a run directory called "demo" in the working folder does not hide --config demo
    from hpcaet.cli import _config_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()
    assert _config_path("demo") == packaged_config("demo")
    (tmp_path / "mine.yaml").write_text("seed: 1\n")
    assert _config_path("mine.yaml") == "mine.yaml"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--config", "demo", "--stages", "simulate,bogus"], "unknown stage(s) ['bogus']"),
        (["reconstruct", "--config", "demo"], "run 'hpcaet preprocess --run"),
        (["run", "--config", "demo", "--stages", "atoms"], "needs volume.nc"),
        (["run", "--config", "BAD", "--stages", "simulate"], "at least two [z, y, x] triples"),
    ],
)
def test_bad_runs_are_refused_before_anything_starts(argv, message, tmp_path, caplog):
    # Each refusal comes before a Dask cluster starts (the test takes well under a
    # second per case) and leaves nothing behind: no config.yaml, checkpoints or figures.
    bad = tmp_path / "bad.yaml"
    bad.write_text("imaging:\n  angles: []\n")
    run = tmp_path / "run"
    argv = [str(bad) if a == "BAD" else a for a in argv]
    assert main([*argv, "--run", str(run)]) == 2
    assert message in caplog.text
    assert not run.exists()


def test_verbosity_options_before_or_after_the_command():
    from hpcaet.cli import _parser

    parse = _parser().parse_args
    assert parse(["run", "--out", "x"]).verbose == 0 and not parse(["run", "--out", "x"]).quiet
    assert parse(["run", "-v", "--out", "x"]).verbose == 1
    assert parse(["-vv", "run", "--out", "x"]).verbose == 2
    assert parse(["info", "f.nc", "-q"]).quiet and parse(["-q", "info", "f.nc"]).quiet


def test_a_stage_run_alone_refuses_a_stale_input(tmp_path, caplog):
    # tilt_series.nc was simulated with 2 frames per tilt; preprocessing it under a config
    # that says 3 would analyse frames the recorded config does not describe.
    out = tmp_path / "run"
    made = load_config(packaged_config("demo"), overrides={"imaging": {"frames": 2}})
    run_stages(made, out)
    recorded = (out / "config.yaml").read_text()
    other = tmp_path / "other.yaml"
    other.write_text(recorded.replace("frames: 2", "frames: 3"))
    assert main(["preprocess", "--run", str(out), "--config", str(other)]) == 2
    assert "tilt_series.nc was made by stage simulate under another config" in caplog.text
    assert (out / "config.yaml").read_text() == recorded  # nothing rewritten
    assert not (out / "processed.nc").exists()


def test_the_run_directory_is_run_everywhere_and_out_a_deprecated_alias(tmp_path, caplog):
    from hpcaet.cli import _parser

    parse = _parser().parse_args
    for command in ("demo", "run", "simulate", "preprocess", "reconstruct", "atoms"):
        config = [] if command == "demo" else ["--config", "c.yaml"]
        assert parse([command, *config, "--run", "r"]).out == "r", command
    assert parse(["report", "--run", "r"]).run == "r"
    assert parse(["config", "--run", "r"]).run == "r"
    assert parse(["run", "--out", "old"]).out == "old"
    assert parse(["run", "--out", "old"]).deprecated_out
    assert parse(["demo"]).out == "runs/demo"
    with pytest.raises(SystemExit):
        parse(["run", "--run", "a", "--out", "b"])  # one or the other
    assert main(["run", "--config", "demo", "--stages", "atoms", "--out", str(tmp_path)]) == 2
    assert "--out is deprecated for the run directory; write --run" in caplog.text


def test_config_prints_the_resolved_config(tmp_path, capsys, caplog):
    import yaml

    assert main(["config", "--config", "demo"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["seed"] == 7 and printed["imaging"]["shape"] == [160, 160]  # demo.yaml
    assert printed["imaging"]["frames"] == 10  # a default, filled in
    run = tmp_path / "run"
    run_stages(load_config(packaged_config("demo"), overrides={"imaging": {"frames": 1}}), run)
    assert main(["config", "--run", str(run)]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["imaging"]["frames"] == 1
    assert main(["config", "--run", str(tmp_path / "none")]) == 2
    assert "is not a run directory (no config.yaml)" in caplog.text
    assert main(["config"]) == 2


def test_info_prints_every_attribute_in_full(tmp_path, capsys):
    from hpcaet.io import write_dataset

    cfg = load_config(packaged_config("demo"), overrides={"imaging": {"frames": 1}})
    outputs = run_stages(cfg, tmp_path / "r")
    ds = read_dataset(outputs["tilt_series.nc"])
    ds.attrs["note"] = "x" * 300  # longer than a line: xarray's repr would cut it
    write_dataset(ds, tmp_path / "long.nc")
    assert main(["info", str(tmp_path / "long.nc")]) == 0
    out = capsys.readouterr().out
    assert "x" * 300 in out
    for key in ds.attrs:
        assert f"  {key}: " in out, key
    assert "frames -> " in out and "units: " in out  # the variables' attributes too
    # piped into a reader that closes early (| head; here | true, closed before the
    # first line): no traceback, exit 0
    import subprocess
    import sys

    piped = subprocess.run(
        f"{sys.executable} -m hpcaet.cli info {tmp_path / 'long.nc'} | true; "
        "exit ${PIPESTATUS[0]}",
        shell=True,
        capture_output=True,
        text=True,
        executable="/bin/bash",
    )
    assert piped.returncode == 0, piped.stderr
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr, piped.stderr
