"""sAET reconstruction: GENFIRE or a RESIRE-style solver on scanning windows.

One window (:func:`genfire`, :func:`resire`: crops in, support slab out; optionally a
support that follows the sheet, :class:`SheetSupport`), the scanning
plan (:func:`plan_windows`, :func:`crop_window`, :func:`stitch`), a whole field serially
or on Dask with per-window checkpoints (:func:`reconstruct_field`), and the pipeline
stage (:mod:`hpcaet.reconstruct.stage`). Conventions are those of
:mod:`hpcaet.geometry`; see ``docs/reconstruct.md``.
"""

from hpcaet.reconstruct._common import SheetSupport, WindowResult, sheet_support
from hpcaet.reconstruct.distributed import (
    ALGORITHMS,
    FieldResult,
    reconstruct_field,
    reconstruct_window,
)
from hpcaet.reconstruct.fourier import GriddedData, grid_projections
from hpcaet.reconstruct.genfire_window import genfire, genfire_operator
from hpcaet.reconstruct.resire_window import (
    PROJECTORS,
    SlabProjector,
    build_projector,
    fitted_pixels,
    resire,
    slab_projector,
)
from hpcaet.reconstruct.shear_warp import ShearWarpProjector, shear_warp_projector
from hpcaet.reconstruct.slab_transform import Z_TRANSFORMS, SlabTransform
from hpcaet.reconstruct.windows import (
    Window,
    WindowPlan,
    check_field,
    crop_window,
    plan_windows,
    spline_coefficients,
    stitch,
)

__all__ = [
    "ALGORITHMS",
    "PROJECTORS",
    "ShearWarpProjector",
    "build_projector",
    "fitted_pixels",
    "shear_warp_projector",
    "FieldResult",
    "GriddedData",
    "SheetSupport",
    "SlabProjector",
    "SlabTransform",
    "Window",
    "WindowPlan",
    "WindowResult",
    "Z_TRANSFORMS",
    "check_field",
    "crop_window",
    "genfire",
    "genfire_operator",
    "grid_projections",
    "plan_windows",
    "reconstruct_field",
    "reconstruct_window",
    "resire",
    "sheet_support",
    "slab_projector",
    "spline_coefficients",
    "stitch",
]
