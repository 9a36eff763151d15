"""Builders of hpcaet Datasets from numpy arrays.

Each ``make_*`` function turns plain arrays into a Dataset of one kind of
:data:`~hpcaet.io.schemas.SCHEMAS`, fills in the coordinates, units and attributes the
schema fixes, and returns it validated by :func:`~hpcaet.io.validate.validate` (the
shared mechanism is :func:`hpcaet.io.assemble._build`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr
from numpy.typing import ArrayLike

from hpcaet.errors import InputError
from hpcaet.io.assemble import _build
from hpcaet.io.schemas import SCHEMAS

__all__ = [
    "make_tilt_series",
    "make_volume",
    "make_atom_model",
    "make_strain",
    "make_phonons",
    "make_eels",
]


_TRUTH = (
    *(v.name for v in SCHEMAS["TiltSeries"].variables if v.name.startswith("true_")),
    "clean_images",
)


def make_tilt_series(
    *,
    images: ArrayLike | None = None,
    frames: ArrayLike | None = None,
    euler: ArrayLike,
    pixel_size: float,
    voltage: float = 60.0,
    convergence_angle: float = 38.0,
    detector_inner_angle: float = 50.0,
    detector_outer_angle: float = 210.0,
    dose: float,
    stage_tilt: ArrayLike | None = None,
    read_noise: float | None = None,
    dwell_time: float | None = None,
    attrs: Mapping[str, object] | None = None,
    **truth: ArrayLike,
) -> xr.Dataset:
    """Build a valid TiltSeries Dataset.

    Parameters
    ----------
    images : array_like of shape (n_tilt, ny, nx), optional
        One image per tilt [counts].
    frames : array_like of shape (n_tilt, n_frame, ny, nx), optional
        Raw frames of each tilt [counts]. At least one of ``images`` and ``frames``.
    euler : array_like of shape (n_tilt, 3)
        Euler angles (Z, Y, X) of each image [deg], see :mod:`hpcaet.geometry`.
    pixel_size : float
        [Å]; the x and y coordinates are the pixel centres ``(i - n // 2) * pixel_size``.
    voltage : float, default 60
        Accelerating voltage [kV].
    convergence_angle : float, default 38
        Probe convergence semi-angle [mrad].
    detector_inner_angle, detector_outer_angle : float, default 50, 210
        ADF detector collection angles [mrad], ``0 <= inner < outer``.
    dose : float
        Total dose over the series [e/Å²].
    stage_tilt : array_like of shape (n_tilt, 2), optional
        Stage alpha and beta readings [deg].
    read_noise : float, optional
        Detector read noise [counts].
    dwell_time : float, optional
        Dwell time per pixel [µs].
    attrs : mapping, optional
        Further attributes stored as they are (netCDF-storable values only).
    **truth : array_like
        Ground truth from the simulator: ``true_euler`` (n_tilt, 3) [deg],
        ``true_drift`` (n_tilt, n_frame, 2) [pixel] (x, y), ``true_offset`` (n_tilt, 2)
        [Å] (x, y), ``true_vibration_direction`` (n_tilt,) [deg],
        ``true_vibration_amplitude`` and ``true_vibration_width`` (n_tilt,) [Å],
        ``true_background`` and ``clean_images`` (n_tilt, ny, nx) [counts].

    Returns
    -------
    xarray.Dataset
        A validated TiltSeries (see ``describe("TiltSeries")``).

    Raises
    ------
    InputError
        Unknown truth names, or array shapes that do not agree.
    SchemaError
        Values that break the schema (non-finite data, non-positive pixel size, ...).
    """
    unknown = sorted(set(truth) - set(_TRUTH))
    if unknown:
        raise InputError(
            f"Unknown ground-truth variable(s) {unknown} for make_tilt_series; expected "
            f"names among {list(_TRUTH)}."
        )
    variables = {"frames": frames, "images": images, "euler": euler, "stage_tilt": stage_tilt}
    all_attrs = {
        **(attrs or {}),
        "pixel_size": pixel_size,
        "voltage": voltage,
        "convergence_angle": convergence_angle,
        "detector_inner_angle": detector_inner_angle,
        "detector_outer_angle": detector_outer_angle,
        "dose": dose,
        "read_noise": read_noise,
        "dwell_time": dwell_time,
    }
    return _build("TiltSeries", variables={**variables, **truth}, attrs=all_attrs)


def make_volume(
    density: ArrayLike,
    *,
    voxel_size: float,
    algorithm: str,
    error_history: ArrayLike | None = None,
    rfree_history: ArrayLike | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid Volume Dataset.

    Parameters
    ----------
    density : array_like of shape (nz, ny, nx)
        Reconstructed density [1/Å]; z, y and x are the voxel centres
        ``(i - n // 2) * voxel_size``.
    voxel_size : float
        [Å].
    algorithm : str
        Name of the reconstruction algorithm, e.g. ``"GENFIRE"``.
    error_history, rfree_history : array_like of shape (n_iteration,), optional
        Error and R-free per iteration [1].
    **attrs
        Further attributes, among them ``iterations`` (int >= 0) and ``oversampling``
        (float >= 1).

    Returns
    -------
    xarray.Dataset
        A validated Volume (see ``describe("Volume")``).
    """
    variables = {
        "density": density,
        "error_history": error_history,
        "rfree_history": rfree_history,
    }
    all_attrs = {**attrs, "voxel_size": voxel_size, "algorithm": algorithm}
    return _build("Volume", variables=variables, attrs=all_attrs)


def make_atom_model(
    *,
    position: ArrayLike,
    species: ArrayLike,
    b_factor: ArrayLike,
    layer: ArrayLike,
    region: ArrayLike,
    pair: ArrayLike | None = None,
    flag: ArrayLike | None = None,
    cross_section: Mapping[str, float] | None = None,
    true_index: ArrayLike | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid AtomModel Dataset.

    Parameters
    ----------
    position : array_like of shape (n_atom, 3)
        Positions (x, y, z) [Å].
    species : array_like of str, shape (n_atom,)
        Chemical symbols, ``"vac"`` for an explicit vacancy site.
    b_factor : array_like of shape (n_atom,)
        B-factors [Å²], >= 0.
    layer : array_like of int, shape (n_atom,)
        -1 bottom, 0 middle (metal), 1 top.
    region : array_like of int, shape (n_atom,)
        -1 unknown, 0 MoS2, 1 WSe2.
    pair : array_like of int, shape (n_atom,), optional
        Index of the top/bottom partner chalcogen site, -1 for none.
    flag : array_like of int, shape (n_atom,), optional
        Bit flags: 1 closer than the minimum distance to a neighbour, 2 off its layer
        by more than 1 Å.
    cross_section : mapping of str to float, optional
        Integrated height per species [Å²]; stored as ``cross_section(element)``.
    true_index : array_like of int, shape (n_atom,), optional
        Index of the matching atom of a ground-truth model, -1 for none.
    **attrs
        Further attributes, among them ``R1`` and ``R`` (floats >= 0).

    Returns
    -------
    xarray.Dataset
        A validated AtomModel (see ``describe("AtomModel")``).
    """
    coords = {}
    variables = {
        "position": position,
        "species": species,
        "b_factor": b_factor,
        "layer": layer,
        "region": region,
        "pair": pair,
        "flag": flag,
        "true_index": true_index,
    }
    if cross_section:
        coords["element"] = list(cross_section)
        variables["cross_section"] = list(cross_section.values())
    return _build("AtomModel", variables=variables, coords=coords, attrs=attrs)


def make_strain(
    *,
    displacement: ArrayLike,
    strain: ArrayLike,
    z: ArrayLike,
    y: ArrayLike,
    x: ArrayLike,
    position: ArrayLike | None = None,
    region: ArrayLike | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid Strain Dataset.

    Parameters
    ----------
    displacement : array_like of shape (n_atom, 3)
        Displacement (x, y, z) of each atom from its reference site [Å].
    strain : array_like of shape (6, nz, ny, nx)
        Strain tensor components xx, yy, zz, xy, xz, yz (in this order) on the grid [1];
        NaN outside the sample.
    z, y, x : array_like of shape (nz,), (ny,), (nx,)
        Grid coordinates [Å], strictly increasing.
    position : array_like of shape (n_atom, 3), optional
        Positions of the atoms [Å].
    region : array_like of int, shape (n_atom,), optional
        -1 unknown, 0 MoS2, 1 WSe2.
    **attrs
        Further attributes, stored as they are.

    Returns
    -------
    xarray.Dataset
        A validated Strain (see ``describe("Strain")``).
    """
    variables = {
        "displacement": displacement,
        "strain": strain,
        "position": position,
        "region": region,
    }
    return _build("Strain", variables=variables, coords={"z": z, "y": y, "x": x}, attrs=attrs)


def make_phonons(
    *,
    energy: ArrayLike | None = None,
    dos: ArrayLike | None = None,
    pdos: Mapping[str, ArrayLike] | None = None,
    spectral_function: ArrayLike | None = None,
    q_distance: ArrayLike | None = None,
    frequency: ArrayLike | None = None,
    participation_ratio: ArrayLike | None = None,
    interface_participation: ArrayLike | None = None,
    bulk_dos: Mapping[str, ArrayLike] | None = None,
    nnls_weight: Mapping[str, float] | None = None,
    nnls_fit: ArrayLike | None = None,
    residual_peak: ArrayLike | None = None,
    reference_dos: ArrayLike | None = None,
    reference_spectral_function: ArrayLike | None = None,
    reference_frequency: ArrayLike | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid Phonons Dataset.

    Parameters
    ----------
    energy : array_like of shape (n_energy,), optional
        Energy grid [meV], strictly increasing; needed with ``dos``, ``pdos`` or
        ``spectral_function``.
    dos : array_like of shape (n_energy,), optional
        Density of states [1/meV].
    pdos : mapping of str to array_like of shape (n_energy,), optional
        Partial density of states per species [1/meV]; stored as
        ``pdos(species, energy)`` in the mapping's order.
    spectral_function : array_like of shape (n_q, n_energy), optional
        Unfolded spectral function along a q path [1/meV].
    q_distance : array_like of shape (n_q,), optional
        Distance along the q path [1/Å].
    frequency : array_like of shape (n_mode,), optional
        Mode energies [meV]; negative for imaginary modes.
    participation_ratio, interface_participation : array_like of shape (n_mode,), optional
        Participation ratio and weight on interface atoms of each mode, in [0, 1].
    bulk_dos : mapping of str to array_like of shape (n_energy,), optional
        DOS per atom of each bulk monolayer [1/meV], by material name; stored as
        ``bulk_dos(material, energy)``.
    nnls_weight : mapping of str to float, optional
        Non-negative least-squares weight of each bulk DOS in ``dos`` [1], by material
        name (the same names, in the same order, as ``bulk_dos`` when both are given).
    nnls_fit : array_like of shape (n_energy,), optional
        The weighted sum of the bulk DOS [1/meV].
    residual_peak : array_like of shape (n_peak,), optional
        Energies of the peaks of ``dos - nnls_fit`` [meV], highest first; may be empty.
    reference_dos : array_like of shape (n_energy,), optional
        DOS of the relaxed crystallographic interface [1/meV].
    reference_spectral_function : array_like of shape (n_q, n_energy), optional
        Its unfolded spectral function on the same q path [1/meV].
    reference_frequency : array_like of shape (n_reference_mode,), optional
        Its mode energies [meV].
    **attrs
        Further attributes, stored as they are.

    Returns
    -------
    xarray.Dataset
        A validated Phonons (at least ``dos`` or ``frequency``; see
        ``describe("Phonons")``).
    """
    coords = {"energy": energy, "q_distance": q_distance}
    variables = {
        "dos": dos,
        "spectral_function": spectral_function,
        "frequency": frequency,
        "participation_ratio": participation_ratio,
        "interface_participation": interface_participation,
    }
    if pdos:
        coords["species"] = list(pdos)
        variables["pdos"] = np.stack([np.asarray(v) for v in pdos.values()])
    if bulk_dos and nnls_weight and list(bulk_dos) != list(nnls_weight):
        raise InputError(
            f"bulk_dos and nnls_weight must name the same materials in the same order; got "
            f"{list(bulk_dos)} and {list(nnls_weight)}."
        )
    if bulk_dos or nnls_weight:
        coords["material"] = list(bulk_dos or nnls_weight)
    if bulk_dos:
        variables["bulk_dos"] = np.stack([np.asarray(v) for v in bulk_dos.values()])
    if nnls_weight:
        variables["nnls_weight"] = np.asarray(list(nnls_weight.values()), dtype=float)
    variables.update(
        nnls_fit=nnls_fit,
        residual_peak=residual_peak,
        reference_dos=reference_dos,
        reference_spectral_function=reference_spectral_function,
        reference_frequency=reference_frequency,
    )
    return _build("Phonons", variables=variables, coords=coords, attrs=attrs)


_PEAK_KEYS = ("centre", "centre_error", "width", "width_error", "height", "height_error")


def make_eels(
    *,
    spectra: ArrayLike,
    energy: ArrayLike,
    position: ArrayLike,
    background: ArrayLike | None = None,
    cluster: ArrayLike | None = None,
    average: ArrayLike | None = None,
    peaks: Mapping[str, ArrayLike] | None = None,
    **attrs: object,
) -> xr.Dataset:
    """Build a valid EELS Dataset.

    Parameters
    ----------
    spectra : array_like of shape (n_position, n_energy)
        Spectra of the line scan [counts].
    energy : array_like of shape (n_energy,)
        Energy loss [meV], strictly increasing.
    position : array_like of shape (n_position,)
        Position along the scan [nm].
    background : array_like of shape (n_position, n_energy), optional
        Fitted background [counts].
    cluster : array_like of int, shape (n_position,), optional
        Cluster label of each spectrum.
    average : array_like of shape (n_group, n_energy), optional
        Average spectrum of each group [counts].
    peaks : mapping of str to array_like of shape (n_group, n_peak), optional
        Fitted peaks with keys among ``centre``, ``centre_error``, ``width``,
        ``width_error`` [meV], ``height``, ``height_error`` [counts]; stored as
        ``peak_<key>``. NaN where a peak was not fitted.
    **attrs
        Further attributes, stored as they are.

    Returns
    -------
    xarray.Dataset
        A validated EELS (see ``describe("EELS")``).
    """
    peaks = dict(peaks or {})
    unknown = sorted(set(peaks) - set(_PEAK_KEYS))
    if unknown:
        raise InputError(f"Unknown peak key(s) {unknown}; expected keys among {list(_PEAK_KEYS)}.")
    variables = {
        "spectra": spectra,
        "background": background,
        "cluster": cluster,
        "average": average,
        **{f"peak_{key}": value for key, value in peaks.items()},
    }
    coords = {"energy": energy, "position": position}
    return _build("EELS", variables=variables, coords=coords, attrs=attrs)
