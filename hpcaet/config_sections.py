"""The sections of the configuration, one frozen dataclass each: the phantom, the
microscope, the cluster and the stages that turn frames into a volume.

Types and range checks only: every default lives in ``hpcaet/defaults.yaml``.
Loading and merging are in :mod:`hpcaet.config`, which re-exports these classes; the
sections of the analysis stages (atoms, structure, EELS) are in
:mod:`hpcaet.config_analysis`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpcaet.errors import ConfigError


@dataclass(frozen=True)
class PhantomConfig:
    field: tuple[float, float]
    region_polygon: tuple[tuple[float, float], ...]
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
    extend: float

    def __post_init__(self):
        _positive(
            self,
            "interface_width",
            "ripple_wavelength",
            "ripple_decay",
            "vacancy_decay",
        )
        _nonnegative(
            self, "ripple_amplitude", "vacancies", "substitutions", "thermal_rms", "extend"
        )
        if min(self.field) < 14.0:
            raise ConfigError(
                f"phantom.field must span at least four unit cells (14 Å); got "
                f"{list(self.field)} Å. Give a larger field, e.g. [40.0, 40.0]."
            )
        if not 0 <= self.ripple_floor <= 1:
            raise ConfigError(f"phantom.ripple_floor must be in [0, 1]; got {self.ripple_floor}.")
        if len(self.region_polygon) < 3:
            raise ConfigError(
                f"phantom.region_polygon needs at least 3 vertices; got {len(self.region_polygon)}."
            )


@dataclass(frozen=True)
class SpeciesConfig:
    cross_section: dict[str, float]
    b_factor: dict[str, float]

    def __post_init__(self):
        # which elements must be present is checked against `materials` by the Config
        for name in ("cross_section", "b_factor"):
            table = getattr(self, name)
            bad = {k: v for k, v in table.items() if not v >= 0}
            if bad:
                raise ConfigError(f"species.{name} values must be >= 0; got {bad}.")


@dataclass(frozen=True)
class MultisliceConfig:
    engine: str
    sampling: float
    slice_thickness: float
    padding: float
    tile: int
    prism_interpolation: int
    projection: str
    incoherent_sigma: float
    compare_crop: int

    def settings(self):
        """The numerics as :class:`hpcaet.forward.adf.ADFSettings`."""
        from hpcaet.forward.adf import ADFSettings

        return ADFSettings(
            engine=self.engine,
            sampling=self.sampling,
            slice_thickness=self.slice_thickness,
            padding=self.padding,
            tile=self.tile,
            prism_interpolation=self.prism_interpolation,
            projection=self.projection,
        )


@dataclass(frozen=True)
class ImagingConfig:
    model: str
    multislice: MultisliceConfig
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

    def optics(self):
        """The microscope as :class:`hpcaet.forward.adf.ADFOptics`."""
        from hpcaet.forward.adf import ADFOptics

        return ADFOptics(
            voltage=self.voltage,
            convergence_angle=self.convergence_angle,
            detector=(self.detector_inner_angle, self.detector_outer_angle),
        )

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
        if not isinstance(self.angles, str) and len(self.angles) < 2:
            raise ConfigError(
                f"imaging.angles needs at least two [z, y, x] triples in degrees (a tilt "
                f"series); got {list(self.angles)!r}. Use table_s2 for the paper's angles."
            )
        if self.model not in ("linear", "multislice"):
            raise ConfigError(
                f"imaging.model must be 'linear' (Gaussian atoms, fast) or 'multislice' "
                f"(dynamical, abTEM); got {self.model!r}."
            )
        if self.model == "multislice":
            from hpcaet.errors import InputError
            from hpcaet.forward.adf import check_adf

            if self.multislice.incoherent_sigma < 0 or self.multislice.compare_crop < 0:
                raise ConfigError(
                    "imaging.multislice.incoherent_sigma [Å] and compare_crop [pixel] must "
                    f"be >= 0; got {self.multislice.incoherent_sigma} and "
                    f"{self.multislice.compare_crop}."
                )
            try:
                check_adf(self.optics(), self.multislice.settings(), step=self.pixel_size)
            except InputError as exc:
                raise ConfigError(f"imaging.multislice: {exc}") from None
        if isinstance(self.angles, str) and self.angles != "table_s2":
            raise ConfigError(
                f"imaging.angles must be 'table_s2' or a list of [z, y, x] triples in degrees; "
                f"got {self.angles!r}."
            )


@dataclass(frozen=True)
class SlurmConfig:
    """Size of the SLURM jobs that dask-jobqueue starts as Dask workers.

    ``profile`` names a YAML file of further ``dask_jobqueue.SLURMCluster`` keyword
    arguments, applied over the others (see :mod:`hpcaet.parallel.cluster`).
    """

    queue: str | None
    account: str | None
    walltime: str
    cores: int
    memory: str
    job_extra_directives: tuple[str, ...]
    interface: str | None
    profile: str | None

    def __post_init__(self):
        if self.cores < 1:
            raise ConfigError(
                f"parallel.slurm.cores (cores per SLURM job) must be at least 1; got {self.cores}."
            )
        if self.profile is not None and not self.profile.strip():
            raise ConfigError(
                "parallel.slurm.profile is an empty string; give the path of a YAML file "
                "of SLURMCluster options (e.g. configs/cluster/test-slurm.yaml) or null."
            )


@dataclass(frozen=True)
class AdaptConfig:
    """Bounds of an adaptive cluster (``parallel.adapt``): workers, or SLURM jobs."""

    minimum: int
    maximum: int

    def __post_init__(self):
        if not 1 <= self.minimum <= self.maximum:
            raise ConfigError(
                f"parallel.adapt needs 1 <= minimum <= maximum; got minimum {self.minimum}, "
                f"maximum {self.maximum}. Keep at least one worker (a map's shared inputs "
                "are sent to the workers present when it starts), e.g. {minimum: 1, maximum: 8}."
            )


@dataclass(frozen=True)
class ParallelConfig:
    scheduler: str
    address: str | None
    workers: int
    threads_per_worker: int
    memory_limit: str
    adapt: AdaptConfig | None
    slurm: SlurmConfig

    def __post_init__(self):
        if self.scheduler not in ("local", "address", "slurm", "mpi"):
            raise ConfigError(
                "parallel.scheduler must be 'local', 'address', 'slurm' or 'mpi'; got "
                f"{self.scheduler!r}."
            )
        if self.scheduler == "address" and not self.address:
            raise ConfigError(
                "parallel.scheduler is 'address' but parallel.address is empty; give the "
                "scheduler address, e.g. tcp://10.0.0.1:8786."
            )
        _positive(self, "workers", "threads_per_worker")
        if self.adapt is not None and self.scheduler not in ("local", "slurm"):
            raise ConfigError(
                f"parallel.adapt resizes a LocalCluster or SLURM worker jobs; parallel.scheduler "
                f"is {self.scheduler!r}, whose workers hpcaet does not start. Set "
                "parallel.adapt: null, or use scheduler local or slurm."
            )


@dataclass(frozen=True)
class PreprocessConfig:
    """Tilt-series processing (hpcaet.preprocess)."""

    drift_max_step: float
    drift_lowpass: float
    drift_refine: int
    denoise: str
    background_hollow: bool
    background_smoothing: float
    background_model: bool
    background_knot_spacing: float
    background_sheet_weight: float
    background_min_vacuum: float
    column_threshold: float
    track_tolerance: float
    track_min_views: int
    angle_outlier: float
    species_bias: bool
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
            "column_threshold",
            "track_tolerance",
            "track_min_views",
            "angle_outlier",
            "vibration_crop",
            "vibration_max_amplitude",
            "background_knot_spacing",
        )
        _nonnegative(
            self,
            "drift_lowpass",
            "drift_refine",
            "background_smoothing",
            "vibration_iterations",
            "background_sheet_weight",
        )
        if not 0 <= self.background_min_vacuum <= 1:
            raise ConfigError(
                "preprocess.background_min_vacuum is a fraction of the image in [0, 1]; got "
                f"{self.background_min_vacuum!r}."
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
    fit_pixels: str
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
        if self.fit_pixels not in ("auto", "consistent", "all"):
            raise ConfigError(
                "reconstruct.fit_pixels must be 'auto', 'consistent' or 'all'; got "
                f"{self.fit_pixels!r}."
            )
        if self.algorithm not in ("genfire", "resire"):
            raise ConfigError(
                f"reconstruct.algorithm must be 'genfire' or 'resire'; got {self.algorithm!r}."
            )
        if self.gridding not in ("dft", "fft"):
            raise ConfigError(
                f"reconstruct.gridding must be 'dft' or 'fft'; got {self.gridding!r}."
            )
        if self.step > self.window:
            raise ConfigError(
                f"reconstruct.step ({self.step}) must not exceed reconstruct.window "
                f"({self.window}) [voxels]: the windows would leave gaps."
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
