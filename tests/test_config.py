"""Config loading: defaults, overrides, and clear errors for bad settings."""

import pytest

from hpcaet.config import config_to_dict, load_config, packaged_config
from hpcaet.errors import ConfigError


def test_defaults_are_the_paper_values():
    cfg = load_config()
    assert cfg.imaging.pixel_size == 0.32
    assert cfg.imaging.dose == 3.8e5
    assert cfg.imaging.frames == 10
    assert cfg.species.b_factor["W"] == 19.0
    assert isinstance(cfg.phantom.field, tuple)


def test_packaged_configs_load_and_round_trip(tmp_path):
    import yaml

    for name in ("demo", "paper", "demo_sheet"):
        cfg = load_config(packaged_config(name))
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config_to_dict(cfg)))
        assert load_config(path) == cfg


def test_overrides_change_only_what_they_name():
    cfg = load_config(overrides={"imaging": {"frames": 3}, "species": {"b_factor": {"W": 20}}})
    assert cfg.imaging.frames == 3
    assert cfg.species.b_factor == {"Mo": 13.7, "W": 20.0, "S": 12.9, "Se": 16.3}
    assert cfg.imaging.pixel_size == 0.32


@pytest.mark.parametrize(
    "overrides, match",
    [
        ({"imaging": {"pixel_sise": 0.3}}, "unknown setting 'imaging.pixel_sise'"),
        ({"imaging": {"frames": 2.5}}, "imaging.frames' must be an integer"),
        ({"imaging": {"pixel_size": -0.3}}, "imaging.pixel_size must be positive"),
        ({"imaging": {"angles": "table_s9"}}, "table_s2"),
        ({"imaging": {"detector_inner_angle": 300}}, "below detector_outer_angle"),
        ({"phantom": {"field": [5.0, 5.0]}}, "four unit cells"),
        ({"phantom": {"field": [50.0]}}, "must have 2 entries"),
        ({"parallel": {"scheduler": "pbs"}}, "'local', 'address', 'slurm' or 'mpi'"),
        ({"parallel": {"scheduler": "address"}}, "parallel.address is empty"),
        ({"species": {"cross_section": {"W": -1}}}, ">= 0"),
        ({"imaging": 3}, "must be a mapping"),
    ],
)
def test_bad_settings_name_the_key(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("imaging: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no packaged config"):
        packaged_config("huge")


def test_a_quoted_number_is_refused_and_exponents_read_as_numbers(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text('imaging:\n  pixel_size: "0.32"\n')
    with pytest.raises(ConfigError, match=r"'imaging.pixel_size' must be a number; got the string"):
        load_config(path)
    path.write_text("imaging:\n  dose: 3.8e5\natoms:\n  refine_tolerance: 1e-7\n")
    cfg = load_config(path)
    assert cfg.imaging.dose == 3.8e5 and cfg.atoms.refine_tolerance == 1e-7
