"""Import of a measured tilt series: microscope files + an angle table -> a TiltSeries.

:func:`read_angle_table` reads the nominal angles (stage alpha/beta, or Euler triples in
hpcaet's or another code's convention, :func:`hpcaet.geometry.convert_euler`);
:func:`import_tilt_series` reads the frames through :func:`hpcaet.io.read_image`, takes
the microscope settings from the files unless given, fits the detector noise
(:mod:`hpcaet.io.noise`) to put the frames in detected electrons, and estimates the dose
when none is given. ``hpcaet import`` (``docs/real-data.md``) writes the result into a
run directory that every later stage reads.

Angle tables
------------
CSV with a header row (``#`` starts a comment), one row per tilt in acquisition order::

    file,alpha,beta
    tilt_00.dm4,-60.0,0.0
    tilt_01.dm4,-48.5,0.0

Columns: ``alpha`` and optionally ``beta`` [deg] (a double-tilt stage, Table S2 axes), or
``phi,theta,psi`` [deg] (Euler triples; ``--convention`` says whose). ``file`` is optional:
without it the frame files are given on the command line, in the table's order. YAML: a
list of the same mappings, or ``{convention: genfire, tilts: [...]}``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
import yaml
from scipy import ndimage

from hpcaet.errors import InputError
from hpcaet.geometry import EULER_CONVENTIONS, convert_euler, euler_to_matrix, stage_to_euler
from hpcaet.io.noise import NoiseModel, fit_noise_model
from hpcaet.io.readers import ImageStack, assemble_tilt_series, read_image

__all__ = [
    "AngleTable",
    "read_angle_table",
    "MICROSCOPE_SETTINGS",
    "ImportReport",
    "import_tilt_series",
    "estimate_dose",
]

log = logging.getLogger(__name__)

#: Settings a TiltSeries needs, with units and the command-line option that gives them.
MICROSCOPE_SETTINGS = {
    "voltage": ("kV", "--voltage"),
    "convergence_angle": ("mrad", "--convergence-angle"),
    "detector_inner_angle": ("mrad", "--detector-angles INNER OUTER"),
    "detector_outer_angle": ("mrad", "--detector-angles INNER OUTER"),
}


@dataclass(frozen=True)
class AngleTable:
    """Nominal angles of a tilt series.

    Attributes
    ----------
    euler : ndarray of shape (n_tilt, 3)
        hpcaet Euler angles (Z, Y, X) [deg].
    stage_tilt : ndarray of shape (n_tilt, 2) or None
        Stage alpha and beta [deg], when the table gave them.
    files : tuple of Path or None
        The frame file of each tilt, when the table names them (relative names are taken
        from the table's folder).
    """

    euler: np.ndarray
    stage_tilt: np.ndarray | None = None
    files: tuple[Path, ...] | None = None


def read_angle_table(path: str | Path, *, convention: str | None = None) -> AngleTable:
    """Read the nominal angles of a tilt series from a CSV or YAML table.

    Parameters
    ----------
    path : str or Path
        ``.csv``, ``.yaml`` or ``.yml`` (see the module docstring).
    convention : {"hpcaet", "genfire", "resire"}, optional
        Convention of Euler triples (``phi, theta, psi`` columns); default the table's
        own (YAML ``convention:``) or ``"hpcaet"``. Stage alpha/beta need none.

    Returns
    -------
    AngleTable

    Raises
    ------
    InputError
        A missing or unreadable file, no rows, columns other than those documented,
        a value that is not a number, or a convention that contradicts the table's.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"angle table {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows, own = _csv_rows(path), None
    elif suffix in (".yaml", ".yml"):
        rows, own = _yaml_rows(path)
    else:
        raise InputError(
            f"angle table {str(path)!r}: unknown format {suffix!r}; give a .csv or .yaml file "
            "(columns file, alpha, beta or file, phi, theta, psi)."
        )
    if not rows:
        raise InputError(f"angle table {str(path)!r} has no rows; give one row per tilt.")
    if convention is not None and own is not None and convention != own:
        raise InputError(
            f"angle table {str(path)!r} says convention {own!r} but {convention!r} was asked "
            "for; drop one of them."
        )
    convention = convention or own or "hpcaet"
    if convention not in EULER_CONVENTIONS:
        raise InputError(
            f"unknown Euler convention {convention!r}; expected one of {EULER_CONVENTIONS}."
        )
    keys = set(rows[0])
    for k, row in enumerate(rows):
        if set(row) != keys:
            raise InputError(
                f"angle table {str(path)!r}: row {k} has columns {sorted(row)}, the first row "
                f"{sorted(keys)}; every row needs the same columns."
            )
    known = {"file", "alpha", "beta", "phi", "theta", "psi"}
    if keys - known:
        raise InputError(
            f"angle table {str(path)!r}: unknown column(s) {sorted(keys - known)}; expected "
            "file (optional) with alpha[, beta] (stage) or phi, theta, psi (Euler triples)."
        )
    euler_keys = {"phi", "theta", "psi"}
    stage = None
    if "alpha" in keys and not keys & euler_keys:
        alpha = _numbers(rows, "alpha", path)
        beta = _numbers(rows, "beta", path) if "beta" in keys else np.zeros_like(alpha)
        stage = np.column_stack([alpha, beta])
        euler = stage_to_euler(alpha, beta)
    elif euler_keys <= keys and "alpha" not in keys and "beta" not in keys:
        triples = np.column_stack([_numbers(rows, k, path) for k in ("phi", "theta", "psi")])
        euler = convert_euler(triples, convention)
    else:
        raise InputError(
            f"angle table {str(path)!r} has columns {sorted(keys)}; give either alpha[, beta] "
            "(stage tilts) or all of phi, theta, psi (Euler triples), not both."
        )
    files = None
    if "file" in keys:
        files = tuple(
            p if p.is_absolute() else path.parent / p for p in (Path(str(r["file"])) for r in rows)
        )
    return AngleTable(euler=np.atleast_2d(euler), stage_tilt=stage, files=files)


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        lines = [ln for ln in handle if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.DictReader(lines, skipinitialspace=True)
    if reader.fieldnames is None:
        return []
    return [{k.strip().lower(): v for k, v in row.items() if k is not None} for row in reader]


def _yaml_rows(path: Path) -> tuple[list[dict], str | None]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"angle table {str(path)!r} is not valid YAML: {exc}") from exc
    convention = None
    if isinstance(data, Mapping):
        unknown = set(data) - {"convention", "tilts"}
        if unknown or "tilts" not in data:
            raise InputError(
                f"angle table {str(path)!r}: expected keys 'tilts' (a list) and optionally "
                f"'convention'; got {sorted(data)}."
            )
        convention, data = data.get("convention"), data["tilts"]
    if not isinstance(data, list) or not all(isinstance(r, Mapping) for r in data):
        raise InputError(
            f"angle table {str(path)!r}: expected a list of mappings such as "
            "{file: t0.dm4, alpha: -60.0, beta: 0.0}, one per tilt."
        )
    return [{str(k).lower(): v for k, v in r.items()} for r in data], convention


def _numbers(rows: list[dict], key: str, path: Path) -> np.ndarray:
    values = []
    for k, row in enumerate(rows):
        value = row[key]
        if isinstance(value, bool) or value is None:
            value = "" if value is None else str(value)
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = np.nan
        if not np.isfinite(number):
            raise InputError(
                f"angle table {str(path)!r}: row {k} has {key} = {value!r}; expected a number "
                "of degrees."
            )
        values.append(number)
    return np.array(values)


@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_tilt_series` found and decided, for the log and the docs.

    Attributes
    ----------
    settings : dict
        Each microscope setting and where it came from (``"file"``, ``"given"``).
    noise : NoiseModel or None
        The fitted detector noise (None when gain and read noise were given).
    dose_estimated : bool
        Whether the dose was estimated from the frames (not given).
    frames_per_tilt : int
    """

    settings: dict = field(default_factory=dict)
    noise: NoiseModel | None = None
    dose_estimated: bool = False
    frames_per_tilt: int = 1


def import_tilt_series(
    files: Sequence[str | Path],
    angles: AngleTable,
    *,
    pixel_size: float | None = None,
    settings: Mapping[str, float] | None = None,
    dose: float | None = None,
    gain: float | None = None,
    offset: float = 0.0,
    read_noise: float | None = None,
    areal_cross_section: float | None = None,
) -> tuple[xr.Dataset, ImportReport]:
    """Read a measured tilt series into a raw TiltSeries.

    Parameters
    ----------
    files : sequence of path
        One file per tilt (each a frame or a stack of frames), in the order of
        ``angles``; or one file holding every frame, tilt after tilt
        (``n_tilt × n_frame`` frames).
    angles : AngleTable
        Nominal angles (:func:`read_angle_table`).
    pixel_size : float, optional
        [Å]; overrides the files' calibration (needed where they have none).
    settings : mapping, optional
        ``voltage`` [kV], ``convergence_angle``, ``detector_inner_angle``,
        ``detector_outer_angle`` [mrad], ``dwell_time`` [µs]; each overrides the files'.
    dose : float, optional
        Total dose of the series [e/Å²]; estimated (:func:`estimate_dose`) when omitted.
    gain : float, optional
        Counts per detected electron; fitted from the frames when omitted.
    offset : float, default 0
        Dark level [counts].
    read_noise : float, optional
        Gaussian detector noise per pixel per frame [counts]; fitted with the gain when
        omitted (give both or neither).
    areal_cross_section : float, optional
        Mean ADF cross-section of the specimen per Å² of sheet [1] (``Σ σ`` of a unit cell
        over its area); needed only to estimate the dose.

    Returns
    -------
    series : xarray.Dataset
        TiltSeries with ``frames`` [detected electrons], nominal ``euler`` (and
        ``stage_tilt`` where the table has it), and the attributes ``imported = 1``,
        ``source_files``, ``detector_gain``, ``detector_offset``, ``noise_method``,
        ``dose_estimated``.
    report : ImportReport

    Raises
    ------
    InputError
        Unreadable files, a number of files or frames that does not match the angles,
        a setting that neither the files nor the arguments give (the message names it
        and the option that sets it), or a gain without a read noise.
    """
    paths = [Path(p) for p in files]
    if not paths:
        raise InputError("no frame files given; give one file per tilt or one stack.")
    if (gain is None) != (read_noise is None):
        raise InputError(
            f"give both the detector gain and read noise, or neither (to fit them); got gain "
            f"{gain!r} and read noise {read_noise!r}."
        )
    if dose is not None and not (np.isfinite(dose) and dose > 0):
        raise InputError(f"dose must be a positive number of e/Å²; got {dose!r}.")
    n_tilt = len(angles.euler)
    stacks = [read_image(p, pixel_size=pixel_size) for p in paths]
    if len(stacks) == 1 and n_tilt > 1:
        stacks = _split_stack(stacks[0], n_tilt)
    if len(stacks) != n_tilt:
        raise InputError(
            f"{len(stacks)} frame files for {n_tilt} tilts in the angle table; give one file "
            "per tilt (in the table's order) or one file with every frame."
        )
    chosen, sources = _settings(stacks, settings or {})
    shapes = [s.frames.shape for s in stacks]
    if len(set(shapes)) > 1:
        bad = [f"{Path(s.source).name} {shape}" for s, shape in zip(stacks, shapes, strict=True)]
        raise InputError(
            f"the frame stacks differ in shape (n_frame, ny, nx): {', '.join(bad)}; crop or "
            "drop frames so that every tilt has the same."
        )
    raw = np.stack([s.frames for s in stacks]).astype(float)
    if gain is None:
        noise = fit_noise_model(raw, offset=offset)
    else:
        if not (np.isfinite(gain) and gain > 0 and np.isfinite(read_noise) and read_noise >= 0):
            raise InputError(
                f"gain must be positive and read noise non-negative [counts]; got {gain!r} and "
                f"{read_noise!r}."
            )
        noise = NoiseModel(
            gain=float(gain),
            offset=float(offset),
            read_noise=float(read_noise),
            method="given",
            samples=0,
        )
    electrons = noise.to_electrons(raw)
    px = stacks[0].pixel_size if pixel_size is None else float(pixel_size)
    estimated = dose is None
    if estimated:
        if areal_cross_section is None:
            raise InputError(
                "no dose given and no areal cross-section to estimate it from; give --dose "
                "(total e/Å² over the series) or the specimen's cross-sections in the config."
            )
        dose = estimate_dose(
            electrons.sum(axis=1),
            angles.euler,
            pixel_size=px,
            areal_cross_section=areal_cross_section,
        )
    series = assemble_tilt_series(
        list(electrons),
        angles.euler,
        pixel_size=px,
        dose=float(dose),
        stage_tilt=angles.stage_tilt,
        read_noise=noise.read_noise / noise.gain,
        **chosen,
        attrs={
            "imported": 1,
            "source_files": "; ".join(str(p) for p in paths),
            "detector_gain": noise.gain,
            "detector_offset": noise.offset,
            "noise_method": noise.method,
            "dose_estimated": int(estimated),
            "frames_unit": "detected electrons ((counts - detector_offset) / detector_gain)",
        },
    )
    report = ImportReport(
        settings=sources,
        noise=noise if noise.method != "given" else None,
        dose_estimated=estimated,
        frames_per_tilt=int(raw.shape[1]),
    )
    log.info(
        "import: %d tilts x %d frames of %d x %d pixels at %.4g Å; dose %.4g e/Å² (%s)",
        n_tilt,
        raw.shape[1],
        raw.shape[2],
        raw.shape[3],
        px,
        dose,
        "estimated" if estimated else "given",
    )
    return series, report


def _split_stack(stack: ImageStack, n_tilt: int) -> list[ImageStack]:
    frames = stack.frames
    if len(frames) % n_tilt:
        raise InputError(
            f"{stack.source!r} holds {len(frames)} frames, which do not divide into the "
            f"{n_tilt} tilts of the angle table; give one file per tilt or a stack of "
            "n_tilt x n_frame frames, tilt after tilt."
        )
    n = len(frames) // n_tilt
    return [
        ImageStack(
            data=frames[k * n : (k + 1) * n],
            pixel_size=stack.pixel_size,
            axes=("frame", "y", "x"),
            source=stack.source,
            metadata=stack.metadata,
        )
        for k in range(n_tilt)
    ]


def _settings(stacks, given: Mapping[str, float]) -> tuple[dict, dict]:
    """The microscope settings: given ones, else the files' (which must agree)."""
    allowed = {*MICROSCOPE_SETTINGS, "dwell_time"}
    unknown = set(given) - allowed
    if unknown:
        raise InputError(f"unknown setting(s) {sorted(unknown)}; expected {sorted(allowed)}.")
    chosen, sources = {}, {}
    for name in sorted(allowed):
        if given.get(name) is not None:
            chosen[name], sources[name] = float(given[name]), "given"
            continue
        values = {
            s.metadata.get("microscope", {}).get(name)
            for s in stacks
            if s.metadata.get("microscope", {}).get(name) is not None
        }
        if len(values) > 1:
            raise InputError(
                f"the files disagree on {name}: {sorted(values)}; give the value by hand."
            )
        if values:
            chosen[name], sources[name] = float(values.pop()), "file"
    missing = [n for n in MICROSCOPE_SETTINGS if n not in chosen]
    if missing:
        listing = ", ".join(
            f"{n} [{MICROSCOPE_SETTINGS[n][0]}] ({MICROSCOPE_SETTINGS[n][1]})" for n in missing
        )
        raise InputError(
            f"the files do not record {listing}; give {'it' if len(missing) == 1 else 'them'} "
            "on the command line or in the config's imaging section."
        )
    return chosen, sources


def estimate_dose(
    electrons: np.ndarray,
    euler: np.ndarray,
    *,
    pixel_size: float,
    areal_cross_section: float,
    smoothing: float = 3.0,
) -> float:
    """Total dose of a series from its detected electrons and the specimen's cross-section.

    A sheet of areal cross-section ``ρ = Σσ / A_cell`` tilted so that its normal makes the
    angle ``t`` with the beam scatters ``dose · ρ / cos t`` electrons per Å² onto the ADF
    detector. The specimen is where the image, smoothed over ``smoothing`` Å, exceeds
    half its 95th percentile; what the rest (vacuum) detects is subtracted as background.

    Parameters
    ----------
    electrons : ndarray of shape (n_tilt, ny, nx)
        Detected electrons of each tilt, summed over its frames.
    euler : ndarray of shape (n_tilt, 3)
        Nominal angles [deg].
    pixel_size : float
        [Å].
    areal_cross_section : float
        ``Σσ / A_cell`` of the specimen [1].
    smoothing : float, default 3
        [Å].

    Returns
    -------
    float
        Total dose over the series [e/Å²]. It is as good as ``ρ``: on a heterojunction
        ``ρ`` differs between the materials, and the estimate with their mean is off
        by their area ratio (``docs/real-data.md`` gives the figure on the demo).
    """
    if not (np.isfinite(areal_cross_section) and areal_cross_section > 0):
        raise InputError(f"areal_cross_section must be positive; got {areal_cross_section!r}.")
    cos_t = np.abs(euler_to_matrix(euler)[:, 2, 2])
    per_tilt = []
    for img, c in zip(electrons, cos_t, strict=True):
        smooth = ndimage.gaussian_filter(img, smoothing / pixel_size)
        sheet = smooth > 0.5 * np.percentile(smooth, 95)
        vacuum = float(img[~sheet].mean()) if (~sheet).mean() > 0.05 else 0.0
        per_area = (float(img[sheet].mean()) - vacuum) / pixel_size**2
        per_tilt.append(per_area * c / areal_cross_section)
    dose = float(np.sum(per_tilt))
    if not dose > 0:
        raise InputError(
            "the frames hold no specimen signal above the vacuum; the dose cannot be "
            "estimated. Give it (--dose)."
        )
    return dose
