"""Typed, validated configuration.

Every setting lives in ``hpcaet/defaults.yaml`` (commented, with units); a user config
names only what it changes. Loading merges the two, rejects unknown keys and wrong
types with a :class:`~hpcaet.errors.ConfigError` that names the key, and returns
frozen dataclasses. Numerical cores never read the config: stage layers pass values.

Examples
--------
>>> from hpcaet.config import load_config
>>> cfg = load_config(overrides={"imaging": {"frames": 4}})
>>> cfg.imaging.frames, cfg.imaging.pixel_size
(4, 0.32)
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hpcaet.config_analysis import (
    AtomsConfig,
    DynamicConfig,
    EelsConfig,
    EelsSyntheticConfig,
    PhononsConfig,
    StructureConfig,
)
from hpcaet.config_sections import (
    ImagingConfig,
    ParallelConfig,
    PhantomConfig,
    PreprocessConfig,
    ReconstructConfig,
    SlurmConfig,
    SpeciesConfig,
)
from hpcaet.errors import ConfigError
from hpcaet.materials import Material, Materials

__all__ = [
    "Config",
    "Material",
    "Materials",
    "PhantomConfig",
    "SpeciesConfig",
    "ImagingConfig",
    "ParallelConfig",
    "PreprocessConfig",
    "ReconstructConfig",
    "AtomsConfig",
    "DynamicConfig",
    "StructureConfig",
    "EelsConfig",
    "EelsSyntheticConfig",
    "PhononsConfig",
    "SlurmConfig",
    "load_config",
    "science_settings",
    "EXECUTION_SETTINGS",
    "packaged_config",
    "config_to_dict",
    "DEFAULTS_PATH",
]

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")


@dataclass(frozen=True)
class Config:
    name: str
    seed: int
    materials: Materials
    phantom: PhantomConfig
    species: SpeciesConfig
    imaging: ImagingConfig
    parallel: ParallelConfig
    preprocess: PreprocessConfig
    reconstruct: ReconstructConfig
    atoms: AtomsConfig
    dynamic: DynamicConfig
    structure: StructureConfig
    eels: EelsConfig
    phonons: PhononsConfig

    def __post_init__(self):
        self.materials.check_species(
            {"cross_section": self.species.cross_section, "b_factor": self.species.b_factor}
        )


def load_config(
    path: str | Path | None = None, *, overrides: dict[str, Any] | None = None
) -> Config:
    """Load a config file over the defaults.

    Parameters
    ----------
    path : str or Path, optional
        A YAML file naming the settings it changes. Without it, the defaults.
    overrides : dict, optional
        Nested settings applied last (e.g. from the command line).

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        Unknown key, wrong type, value out of range, or an unreadable file.
    """
    merged = _read_yaml(DEFAULTS_PATH)
    if path is not None:
        _merge(merged, _read_yaml(Path(path)), where="", source=str(path))
    if overrides:
        _merge(merged, overrides, where="", source="overrides")
    return _build(Config, merged, "")


#: Settings that change where and how fast work runs, not its result: left out of every
#: hash that decides whether a stage output or a checkpoint is still valid.
EXECUTION_SETTINGS = {
    "reconstruct": ("fft_workers",),
    "atoms": ("chunk_images",),
    "phonons": ("batch",),
}


def science_settings(config: Config, sections) -> dict[str, Any]:
    """The named config sections as plain data, less the execution settings.

    What a result depends on: hash this (with the inputs) to key a stage output or a
    checkpoint, so that a thread count or a chunk size can change without losing work.
    """
    full = config_to_dict(config)
    out = {}
    for name in sorted(sections):
        value = full[name]
        if isinstance(value, dict):
            skip = EXECUTION_SETTINGS.get(name, ())
            value = {k: v for k, v in value.items() if k not in skip}
        out[name] = value
    return out


def packaged_config(name: str) -> Path:
    """Path of a config shipped with the package: ``"demo"`` or ``"paper"``."""
    path = Path(__file__).with_name("configs") / f"{name}.yaml"
    if not path.exists():
        shipped = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"no packaged config {name!r}; shipped: {shipped}.")
    return path


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML-ready dict of a config (tuples become lists)."""

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads ``3.8e5`` and ``1e-7`` as numbers.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent
    (``3.8e+5``); anything else stays a string. YAML 1.2 and every other reader take
    ``3.8e5`` as a number, so this loader does too, and a quoted ``"0.32"`` is then the
    only way to write a string where a number belongs (which the config refuses).
    """


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist.") from None
    try:
        data = yaml.load(text, Loader=YamlLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of settings; got {type(data).__name__}."
        )
    return data


def _merge(base: dict, update: dict, *, where: str, source: str) -> None:
    for key, value in update.items():
        name = f"{where}{key}"
        if key not in base:
            known = ", ".join(sorted(base))
            raise ConfigError(
                f"unknown setting {name!r} in {source}; known here: {known}. "
                "Check the spelling against hpcaet/defaults.yaml."
            )
        if isinstance(base[key], dict) and key not in ("cross_section", "b_factor"):
            if not isinstance(value, dict):
                raise ConfigError(f"setting {name!r} in {source} must be a mapping; got {value!r}.")
            _merge(base[key], value, where=f"{name}.", source=source)
        elif isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"setting {name!r} in {source} must be a mapping; got {value!r}.")
            base[key] = {**base[key], **value}
        else:
            base[key] = value


def _build(cls, data: dict, where: str):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        name = f"{where}{f.name}"
        if f.name not in data:
            raise ConfigError(f"setting {name!r} is missing from hpcaet/defaults.yaml.")
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], name)
    return cls(**kwargs)


def _coerce(tp, value, name: str):
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"setting {name!r} must be a mapping; got {value!r}.")
        return _build(tp, value, f"{name}.")
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return _coerce(option, value, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"setting {name!r} = {value!r} fits none of its types: {errors}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"setting {name!r} must be null; got {value!r}.")
        return None
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"setting {name!r} must be a list; got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{name}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(
                f"setting {name!r} must have {len(args)} entries; got {len(value)} ({value!r})."
            )
        return tuple(
            _coerce(a, v, f"{name}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"setting {name!r} must be a mapping; got {value!r}.")
        return {str(k): _coerce(args[1], v, f"{name}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"setting {name!r} must be true or false; got {value!r}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"setting {name!r} must be an integer; got {value!r}.")
        return value
    if tp is float:
        if isinstance(value, str):
            raise ConfigError(
                f"setting {name!r} must be a number; got the string {value!r}. Write it "
                "without quotes."
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"setting {name!r} must be a number; got {value!r}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"setting {name!r} must be a string; got {value!r}.")
        return value
    raise ConfigError(f"setting {name!r} has an unsupported type {tp!r}.")  # pragma: no cover
