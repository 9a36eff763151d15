"""The configuration sections of the analysis stages: atoms, structure, EELS, phonons.

Types and range checks only, like :mod:`hpcaet.config_sections`; every default lives in
``hpcaet/defaults.yaml`` and :mod:`hpcaet.config` re-exports these classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcaet.config_sections import _nonnegative, _positive
from hpcaet.errors import ConfigError


@dataclass(frozen=True)
class AtomsConfig:
    """Atom tracing, classification, refinement and flipping (hpcaet.atoms)."""

    upsample: int
    threshold: float
    fit_size: int
    min_distance: float
    layer_min_distance: float
    layer_smoothing: float
    layer_tolerance: float
    integration_radius: float
    region_smoothing: float
    min_intensity: float
    pair_radius: float
    fill_columns: bool
    noise: str
    margin: float
    fit_shifts: bool
    refine_iterations: int
    refine_tolerance: float
    flip_cycles: int
    flip_sweeps: int
    chunk_images: int
    off_layer_distance: float
    match_distance: float
    tile: int
    image_source: str
    snap_distance: float
    edge_distance: float
    edge: str
    image_margin: float
    trace_smoothing: float
    species_margin: float

    def __post_init__(self):
        _positive(
            self,
            "upsample",
            "threshold",
            "min_distance",
            "layer_min_distance",
            "layer_smoothing",
            "layer_tolerance",
            "integration_radius",
            "region_smoothing",
            "pair_radius",
            "margin",
            "refine_tolerance",
            "flip_sweeps",
            "chunk_images",
            "off_layer_distance",
            "match_distance",
            "tile",
        )
        _nonnegative(self, "min_intensity", "refine_iterations", "flip_cycles")
        if self.fit_size < 3 or self.fit_size % 2 == 0:
            raise ConfigError(f"atoms.fit_size must be an odd integer >= 3; got {self.fit_size}.")
        if self.threshold >= 1:
            raise ConfigError(
                f"atoms.threshold is a fraction of the strongest peaks and must be below 1; "
                f"got {self.threshold}."
            )
        if self.noise not in ("poisson", "uniform"):
            raise ConfigError(f"atoms.noise must be 'poisson' or 'uniform'; got {self.noise!r}.")
        if not self.snap_distance >= 0:
            raise ConfigError(
                f"atoms.snap_distance must be >= 0 Å (0: no snapping); got {self.snap_distance!r}."
            )
        if not self.trace_smoothing >= 0:
            raise ConfigError(
                f"atoms.trace_smoothing must be >= 0 Å; got {self.trace_smoothing!r}."
            )
        if not self.image_margin >= 0:
            raise ConfigError(f"atoms.image_margin must be >= 0 Å; got {self.image_margin!r}.")
        if not self.edge_distance >= 0:
            raise ConfigError(f"atoms.edge_distance must be >= 0 Å; got {self.edge_distance!r}.")
        if not 0 <= self.species_margin < 1:
            raise ConfigError(
                f"atoms.species_margin must be in [0, 1) (a relative rise of R1; 0 flags "
                f"nothing); got {self.species_margin!r}."
            )
        if self.edge not in ("flag", "drop"):
            raise ConfigError(
                f"atoms.edge must be 'flag' (keep edge atoms, flag bit 4) or 'drop' (leave "
                f"them out of atoms.nc); got {self.edge!r}."
            )
        if self.image_source not in ("auto", "linear", "processed"):
            raise ConfigError(
                "atoms.image_source must be 'auto', 'linear' or 'processed'; got "
                f"{self.image_source!r}."
            )


@dataclass(frozen=True)
class DynamicConfig:
    """Dynamic refinement of outlier atoms by multislice R1 scans (hpcaet.atoms.dynamic)."""

    enabled: bool
    species: tuple[str, ...]
    atoms: tuple[int, ...]
    skip_edge: bool
    half_width: tuple[float, float, float]
    step: tuple[float, float, float]
    crop: int
    patch_radius: float
    patch_padding: float

    def __post_init__(self):
        _positive(self, "crop", "patch_radius", "patch_padding")
        if any(not h >= 0 for h in self.half_width) or any(not s > 0 for s in self.step):
            raise ConfigError(
                f"dynamic.half_width must be >= 0 and dynamic.step > 0 [Å] (x, y, z); got "
                f"{list(self.half_width)} and {list(self.step)}."
            )
        for h, s in zip(self.half_width, self.step, strict=True):
            if abs(h / s - round(h / s)) > 1e-6:
                raise ConfigError(
                    f"dynamic.half_width must be whole numbers of dynamic.step; got "
                    f"{list(self.half_width)} and {list(self.step)} (paper: [0.4, 0.4, 1.2] "
                    "by [0.2, 0.2, 0.3])."
                )
        if not self.species:
            raise ConfigError("dynamic.species must name at least one species (paper: [S]).")


@dataclass(frozen=True)
class StructureConfig:
    """Structure analysis (hpcaet.structure)."""

    fit_lattice_constant: bool
    interface_cutoff: float
    vacancy_bin: float
    strips: int
    strip_min_atoms: int
    ripple_band: float
    bond_cutoff: float
    grid_spacing: float
    sigma: float
    padding: float
    mask_distance: float
    min_coverage: float
    rbf_kernel: str
    rbf_smoothing: float
    finite_strain: bool

    def __post_init__(self):
        _positive(
            self,
            "vacancy_bin",
            "strips",
            "ripple_band",
            "bond_cutoff",
            "grid_spacing",
            "sigma",
            "mask_distance",
        )
        _nonnegative(self, "interface_cutoff", "padding", "rbf_smoothing")
        if self.strip_min_atoms < 2:
            raise ConfigError(
                f"structure.strip_min_atoms must be at least 2; got {self.strip_min_atoms}."
            )
        if not 0 <= self.min_coverage < 1:
            raise ConfigError(
                "structure.min_coverage is the fraction of the smoothing kernel that must "
                f"fall on the sheet, in [0, 1); got {self.min_coverage!r}."
            )
        if self.grid_spacing > self.sigma / 2:
            raise ConfigError(
                f"structure.grid_spacing ({self.grid_spacing} Å) must be at most half of "
                f"structure.sigma ({self.sigma} Å); lower it, e.g. to {self.sigma / 4:.2f}."
            )
        kernels = ("thin_plate_spline", "cubic", "quintic", "linear")
        if self.rbf_kernel not in kernels:
            raise ConfigError(
                f"structure.rbf_kernel must be one of {kernels}; got {self.rbf_kernel!r}."
            )


@dataclass(frozen=True)
class EelsSyntheticConfig:
    """Synthetic line scan of the eels pipeline stage (hpcaet.eels.synthetic)."""

    points: int
    step: float
    starts: tuple[int, ...]
    dispersion: float
    energy_range: tuple[float, float]
    peak_fwhm: float
    resolution: float
    delocalisation: float
    snr: float
    background_ratio: float
    exponent: float
    zlp_jitter: float

    def __post_init__(self):
        _positive(
            self, "points", "step", "dispersion", "peak_fwhm", "resolution", "snr", "exponent"
        )
        _nonnegative(self, "delocalisation", "background_ratio", "zlp_jitter")
        if (
            not self.starts
            or self.starts[0] != 0
            or list(self.starts) != sorted(set(self.starts))
            or self.starts[-1] >= self.points
        ):
            raise ConfigError(
                f"eels.synthetic.starts must begin with 0, increase and stay below points = "
                f"{self.points}; got {list(self.starts)}."
            )


@dataclass(frozen=True)
class EelsConfig:
    """Vibrational EELS (hpcaet.eels)."""

    zero_loss: str
    windows: tuple[tuple[float, float], ...]
    refine_background: bool
    cluster_range: tuple[float, float]
    clusters: int
    restarts: int
    max_iterations: int
    region_names: tuple[str, ...]
    contiguous: bool
    peaks: int
    fit_range: tuple[float, float]
    peak_background: str
    initial_width: float
    fit_starts: int
    weighted: bool
    correct_delocalisation: bool
    shared_width: bool
    min_significance: float
    fit_rounds: int
    synthetic: EelsSyntheticConfig

    def __post_init__(self):
        _positive(
            self,
            "clusters",
            "restarts",
            "max_iterations",
            "peaks",
            "initial_width",
            "fit_starts",
            "fit_rounds",
        )
        if not self.min_significance >= 0:
            raise ConfigError(
                "eels.min_significance must be >= 0 (peak heights in standard errors; 0 "
                f"lets the lowest chi-square win); got {self.min_significance!r}."
            )
        choices = {
            "zero_loss": ("fit", "centroid", "max", "none"),
            "peak_background": ("subtracted", "joint"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"eels.{name} must be one of {list(allowed)}; got {getattr(self, name)!r}."
                )
        ranges = {
            "cluster_range": self.cluster_range,
            "fit_range": self.fit_range,
            **{f"windows[{i}]": w for i, w in enumerate(self.windows)},
        }
        for name, (low, high) in ranges.items():
            if not low < high:
                raise ConfigError(
                    f"eels.{name} must be [low, high] with low < high; got {[low, high]} meV."
                )
        if not self.windows or min(w[0] for w in self.windows) <= 0:
            raise ConfigError(
                f"eels.windows must be windows at positive energy [meV]; got "
                f"{[list(w) for w in self.windows]}."
            )
        if self.region_names and len(self.region_names) != self.clusters:
            raise ConfigError(
                f"eels.region_names names {len(self.region_names)} regions for clusters = "
                f"{self.clusters}; give one name per cluster, or [] for numbered groups."
            )


@dataclass(frozen=True)
class PhononsMDConfig:
    replicas: int
    temperature: float
    steps: int
    interval: int
    equilibrate: int
    timestep: float

    def __post_init__(self):
        _positive(self, "replicas", "temperature", "steps", "interval", "timestep")
        _nonnegative(self, "equilibrate")


@dataclass(frozen=True)
class PhononsConfig:
    """Phonons of a stitched interface cell (hpcaet.phonons)."""

    calculator: str
    rows: int
    width: int
    min_distance: float
    method: str
    distance: float
    repeat: tuple[int, int, int]
    cutoff: float | None
    md: PhononsMDConfig
    energy: tuple[float, float, float]
    sigma: float
    mesh: tuple[int, int, int]
    path_points: int
    interface_width: float
    bulk_supercell: int
    bulk_mesh: int
    reference: bool
    batch: int

    def __post_init__(self):
        _positive(
            self,
            "width",
            "min_distance",
            "distance",
            "sigma",
            "path_points",
            "interface_width",
            "bulk_supercell",
            "bulk_mesh",
            "batch",
        )
        if self.rows < 2 or self.rows % 2:
            raise ConfigError(
                f"phonons.rows must be an even number >= 2 (the zigzag rows alternate across "
                f"the periodic seam); got {self.rows}."
            )
        if self.method not in ("finite", "md"):
            raise ConfigError(f"phonons.method must be 'finite' or 'md'; got {self.method!r}.")
        known = ("sw", "chgnet", "7net-0", "7net-l3i5", "gpaw")
        if self.calculator not in known:
            raise ConfigError(
                f"phonons.calculator must be one of {list(known)}; got {self.calculator!r}."
            )
        if min(self.repeat) < 1 or min(self.mesh) < 1:
            raise ConfigError(
                f"phonons.repeat and phonons.mesh need positive integers; got "
                f"{list(self.repeat)} and {list(self.mesh)}."
            )
        lo, hi, step = self.energy
        if not (hi > lo and step > 0):
            raise ConfigError(
                f"phonons.energy is [first, last, step] with last > first and step > 0 [meV]; "
                f"got {list(self.energy)}."
            )
