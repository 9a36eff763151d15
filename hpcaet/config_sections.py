"""The sections of the configuration, one frozen dataclass each.

Types and range checks only: every default lives in ``hpcaet/defaults.yaml``.
Loading and merging are in :mod:`hpcaet.config`, which re-exports these classes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcaet.errors import ConfigError


@dataclass(frozen=True)
class PhantomConfig:
    field: tuple[float, float]
    a_mos2: float
    a_wse2: float
    chalcogen_height_mos2: float
    chalcogen_height_wse2: float
    wse2_polygon: tuple[tuple[float, float], ...]
    interface_width: float
    ripple_amplitude: float
    ripple_wavelength: float
    ripple_decay: float
    ripple_floor: float
    ripple_keeps_area: bool
    vacancies: int
    vacancy_decay: float
    substitutions: int
    thermal_rms: float
    top_bottom_asymmetry: float

    def __post_init__(self):
        _positive(
            self,
            "a_mos2",
            "a_wse2",
            "chalcogen_height_mos2",
            "chalcogen_height_wse2",
            "interface_width",
            "ripple_wavelength",
            "ripple_decay",
            "vacancy_decay",
        )
        _nonnegative(self, "ripple_amplitude", "vacancies", "substitutions", "thermal_rms")
        if min(self.field) < 4 * max(self.a_mos2, self.a_wse2):
            raise ConfigError(
                f"phantom.field must span at least four unit cells; got {list(self.field)} Å. "
                "Give a larger field, e.g. [40.0, 40.0]."
            )
        if not 0 <= self.ripple_floor <= 1:
            raise ConfigError(f"phantom.ripple_floor must be in [0, 1]; got {self.ripple_floor}.")
        if len(self.wse2_polygon) < 3:
            raise ConfigError(
                f"phantom.wse2_polygon needs at least 3 vertices; got {len(self.wse2_polygon)}."
            )


@dataclass(frozen=True)
class SpeciesConfig:
    cross_section: dict[str, float]
    b_factor: dict[str, float]

    def __post_init__(self):
        for name in ("cross_section", "b_factor"):
            table = getattr(self, name)
            for element in ("Mo", "W", "S", "Se"):
                if element not in table:
                    raise ConfigError(
                        f"species.{name} lacks {element!r}; it has {sorted(table)}. "
                        "Give a value for each of Mo, W, S and Se."
                    )
            bad = {k: v for k, v in table.items() if not v >= 0}
            if bad:
                raise ConfigError(f"species.{name} values must be >= 0; got {bad}.")


@dataclass(frozen=True)
class ImagingConfig:
    shape: tuple[int, int]
    pixel_size: float
    frames: int
    voltage: float
    convergence_angle: float
    detector_inner_angle: float
    detector_outer_angle: float
    dose: float
    read_noise: float
    probe_fwhm: float
    angles: str | tuple[tuple[float, float, float], ...]
    nominal_error: float
    drift_max: float
    vibration_amplitude: float
    vibration_width: float
    background_level: float
    background_scale: float
    offset_max: float

    def __post_init__(self):
        _positive(
            self,
            "pixel_size",
            "frames",
            "voltage",
            "convergence_angle",
            "dose",
            "detector_outer_angle",
            "background_scale",
        )
        _nonnegative(
            self,
            "read_noise",
            "probe_fwhm",
            "nominal_error",
            "drift_max",
            "vibration_amplitude",
            "vibration_width",
            "background_level",
            "offset_max",
            "detector_inner_angle",
        )
        if min(self.shape) < 16:
            raise ConfigError(f"imaging.shape must be at least 16 x 16; got {list(self.shape)}.")
        if self.detector_inner_angle >= self.detector_outer_angle:
            raise ConfigError(
                f"imaging.detector_inner_angle ({self.detector_inner_angle} mrad) must be "
                f"below detector_outer_angle ({self.detector_outer_angle} mrad)."
            )
        if isinstance(self.angles, str) and self.angles != "table_s2":
            raise ConfigError(
                f"imaging.angles must be 'table_s2' or a list of [z, y, x] triples in degrees; "
                f"got {self.angles!r}."
            )


@dataclass(frozen=True)
class SlurmConfig:
    queue: str | None
    account: str | None
    walltime: str
    cores: int
    memory: str
    job_extra_directives: tuple[str, ...]


@dataclass(frozen=True)
class ParallelConfig:
    scheduler: str
    address: str | None
    workers: int
    threads_per_worker: int
    memory_limit: str
    slurm: SlurmConfig

    def __post_init__(self):
        if self.scheduler not in ("local", "address", "slurm"):
            raise ConfigError(
                f"parallel.scheduler must be 'local', 'address' or 'slurm'; got {self.scheduler!r}."
            )
        if self.scheduler == "address" and not self.address:
            raise ConfigError(
                "parallel.scheduler is 'address' but parallel.address is empty; give the "
                "scheduler address, e.g. tcp://10.0.0.1:8786."
            )
        _positive(self, "workers", "threads_per_worker")


@dataclass(frozen=True)
class PreprocessConfig:
    """Tilt-series processing (hpcaet.preprocess)."""

    drift_max_step: float
    drift_lowpass: float
    drift_refine: int
    denoise: str
    lattice_constant: float
    chalcogen_height: float
    metal: str
    chalcogen: str
    background_hollow: bool
    background_smoothing: float
    column_threshold: float
    track_tolerance: float
    track_min_views: int
    angle_outlier: float
    species_bias: bool
    bright_metal: str
    bright_chalcogen: str
    bright_lattice_constant: float
    bright_chalcogen_height: float
    vibration: bool
    vibration_model: str
    vibration_crop: int
    vibration_iterations: int
    vibration_max_amplitude: float
    align: bool

    def __post_init__(self):
        _positive(
            self,
            "drift_max_step",
            "lattice_constant",
            "column_threshold",
            "track_tolerance",
            "track_min_views",
            "angle_outlier",
            "bright_lattice_constant",
            "vibration_crop",
            "vibration_max_amplitude",
        )
        _nonnegative(
            self,
            "drift_lowpass",
            "drift_refine",
            "chalcogen_height",
            "bright_chalcogen_height",
            "background_smoothing",
            "vibration_iterations",
        )
        if self.denoise not in ("auto", "bm3d", "wiener", "none"):
            raise ConfigError(
                f"preprocess.denoise must be auto, bm3d, wiener or none; got {self.denoise!r}."
            )
        if self.vibration_crop < 16:
            raise ConfigError(
                f"preprocess.vibration_crop must be at least 16 pixels; got {self.vibration_crop}."
            )
        if self.vibration_model not in ("membrane", "per_image"):
            raise ConfigError(
                "preprocess.vibration_model must be membrane (one amplitude along the sheet "
                f"normal for the whole series) or per_image; got {self.vibration_model!r}."
            )


@dataclass(frozen=True)
class ReconstructConfig:
    """sAET reconstruction (hpcaet.reconstruct)."""

    algorithm: str
    iterations: int
    window: int
    step: int
    support_z: int
    tiles: tuple[int, int] | None
    oversampling: float
    interpolation_radius: float
    gridding: str
    confidence_weighting: bool
    extension: float
    rfree_fraction: float
    resire_step: float
    momentum: bool
    fft_workers: int
    support: str
    sheet_thickness: float
    sheet_smoothing: float
    sheet_start: float
    inputs: str

    def __post_init__(self):
        _positive(self, "window", "step", "support_z", "fft_workers", "sheet_smoothing")
        _nonnegative(self, "iterations")
        if self.inputs not in ("processed", "truth"):
            raise ConfigError(
                f"reconstruct.inputs must be 'processed' (processed.nc, for real work) or "
                f"'truth' (the simulator's clean images, for testing the reconstruction "
                f"alone); got {self.inputs!r}."
            )
        if self.support not in ("slab", "sheet"):
            raise ConfigError(
                f"reconstruct.support must be 'slab' or 'sheet'; got {self.support!r}."
            )
        if not 1 <= self.sheet_thickness <= self.support_z or not 0 < self.sheet_start < 1:
            raise ConfigError(
                f"reconstruct.sheet_thickness must be in [1, support_z = {self.support_z}] "
                f"voxels and sheet_start in (0, 1); got {self.sheet_thickness} and "
                f"{self.sheet_start}."
            )
        if self.algorithm not in ("genfire", "resire"):
            raise ConfigError(
                f"reconstruct.algorithm must be 'genfire' or 'resire'; got {self.algorithm!r}."
            )
        if self.gridding not in ("dft", "fft"):
            raise ConfigError(
                f"reconstruct.gridding must be 'dft' or 'fft'; got {self.gridding!r}."
            )
        if self.step > self.window or self.support_z > self.window:
            raise ConfigError(
                f"reconstruct.step ({self.step}) and support_z ({self.support_z}) must not "
                f"exceed reconstruct.window ({self.window}) [voxels]."
            )
        if self.tiles is not None and min(self.tiles) < 1:
            raise ConfigError(
                f"reconstruct.tiles must be null or two positive integers; got {list(self.tiles)}."
            )
        if not self.oversampling >= 1:
            raise ConfigError(f"reconstruct.oversampling must be >= 1; got {self.oversampling}.")
        if not 0 < self.interpolation_radius < 0.5:
            raise ConfigError(
                f"reconstruct.interpolation_radius must be in (0, 0.5) voxel; got "
                f"{self.interpolation_radius}."
            )
        if not 0 <= self.extension <= 1 or not 0 <= self.rfree_fraction < 0.5:
            raise ConfigError(
                f"reconstruct.extension must be in [0, 1] and rfree_fraction in [0, 0.5); "
                f"got {self.extension} and {self.rfree_fraction}."
            )
        stable = 0 < self.resire_step <= 1 if self.momentum else 0 < self.resire_step < 2
        if not stable:
            raise ConfigError(
                f"reconstruct.resire_step must be in (0, 1] with momentum, (0, 2) without; "
                f"got {self.resire_step}."
            )


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
    chalcogen_height: tuple[float, float]
    snap_distance: float

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
        if len(self.chalcogen_height) != 2 or not all(h > 0 for h in self.chalcogen_height):
            raise ConfigError(
                "atoms.chalcogen_height must be two positive heights [Å] (MoS2, WSe2); got "
                f"{self.chalcogen_height!r}."
            )
        if not self.snap_distance >= 0:
            raise ConfigError(
                f"atoms.snap_distance must be >= 0 Å (0: no snapping); got {self.snap_distance!r}."
            )
        if self.image_source not in ("auto", "linear", "processed"):
            raise ConfigError(
                "atoms.image_source must be 'auto', 'linear' or 'processed'; got "
                f"{self.image_source!r}."
            )


@dataclass(frozen=True)
class StructureConfig:
    """Structure analysis (hpcaet.structure)."""

    a_mos2: float
    a_wse2: float
    chalcogen_height_mos2: float
    chalcogen_height_wse2: float
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
    rbf_kernel: str
    rbf_smoothing: float
    finite_strain: bool

    def __post_init__(self):
        _positive(
            self,
            "a_mos2",
            "a_wse2",
            "chalcogen_height_mos2",
            "chalcogen_height_wse2",
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
    synthetic: EelsSyntheticConfig

    def __post_init__(self):
        _positive(
            self, "clusters", "restarts", "max_iterations", "peaks", "initial_width", "fit_starts"
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


def _positive(obj, *names):
    for name in names:
        value = getattr(obj, name)
        if not value > 0:
            section = type(obj).__name__.removesuffix("Config").lower()
            raise ConfigError(f"{section}.{name} must be positive; got {value!r}.")


def _nonnegative(obj, *names):
    for name in names:
        value = getattr(obj, name)
        if not value >= 0:
            section = type(obj).__name__.removesuffix("Config").lower()
            raise ConfigError(f"{section}.{name} must be >= 0; got {value!r}.")
