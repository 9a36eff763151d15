"""Atom model: tracing, species, refinement and S/Se pair flipping.

From a reconstructed volume and the processed images to a 3D atom model with chemical
species and explicit vacancy sites, following the Methods of Tian et al.
("Determination of 3D atomic coordinates and chemical species"):

* :func:`trace_atoms` – local maxima of the 3×-interpolated volume, sub-voxel Gaussian
  fits, the 1.6 Å minimum distance and the three atomic layers (:func:`fit_layers`);
* :func:`classify_species` – MoS2/WSe2 region and Mo/W/S/Se from the intensities;
* :func:`pair_chalcogens` – top/bottom pairs, vacancy sites for missing partners;
  :func:`snap_chalcogens` moves chalcogen sites far from the lattice onto it;
* :func:`refine_atoms` – positions, per-species cross-sections and B-factors fitted to
  the images with the linear forward model (R1 and R reported);
* :func:`vibration_kernels`, :func:`blur_images` – the per-image vibration blur of
  images that were not deconvolved, applied to the calculated images;
* :func:`flip_pairs` – the nine S/Se/vacancy cases of every pair, lowest R1 kept;
* :func:`score_atoms` – accuracy against a known truth;
* :func:`select_outliers`, :func:`refine_outliers` – the dynamic refinement: outlier S
  atoms moved to the least R1 of multislice scans over a :class:`ScanGrid`
  (``hpcaet dynamic --run DIR``, :mod:`hpcaet.atoms.dynamic_stage`).

:func:`hpcaet.atoms.build.build_model` chains them on a Volume and a TiltSeries; the
stage (``hpcaet atoms --run DIR``) is :func:`hpcaet.atoms.stage.run_atoms`.
"""

from hpcaet.atoms.blur import blur_images, blur_images_adjoint, vibration_kernels
from hpcaet.atoms.classify import REGION_MOS2, REGION_WSE2, Classification, classify_species
from hpcaet.atoms.dynamic import DynamicResult, refine_outliers
from hpcaet.atoms.dynamic_grid import ScanGrid, select_outliers
from hpcaet.atoms.flip import CASES, FlipResult, flip_pairs
from hpcaet.atoms.layers import (
    LAYER_BOTTOM,
    LAYER_METAL,
    LAYER_TOP,
    LayerFit,
    LayerSurfaces,
    fit_layers,
)
from hpcaet.atoms.objective import (
    ChunkTerms,
    ImageChunk,
    chunk_objective,
    pixel_weights,
    r_factors,
    support_mask,
)
from hpcaet.atoms.pairs import PairedSites, lattice_columns, pair_chalcogens, snap_chalcogens
from hpcaet.atoms.refine import RefineResult, refine_atoms
from hpcaet.atoms.score import format_scores, match_sites, score_atoms
from hpcaet.atoms.synthetic import ideal_images, ideal_inputs, ideal_volume, probe_b_factor
from hpcaet.atoms.trace import TracedAtoms, enforce_min_distance, trace_atoms

__all__ = [
    "CASES",
    "LAYER_BOTTOM",
    "LAYER_METAL",
    "LAYER_TOP",
    "REGION_MOS2",
    "REGION_WSE2",
    "Classification",
    "ChunkTerms",
    "DynamicResult",
    "FlipResult",
    "ImageChunk",
    "LayerFit",
    "LayerSurfaces",
    "PairedSites",
    "RefineResult",
    "ScanGrid",
    "TracedAtoms",
    "blur_images",
    "blur_images_adjoint",
    "chunk_objective",
    "classify_species",
    "enforce_min_distance",
    "fit_layers",
    "flip_pairs",
    "format_scores",
    "ideal_images",
    "ideal_inputs",
    "ideal_volume",
    "match_sites",
    "lattice_columns",
    "pair_chalcogens",
    "pixel_weights",
    "probe_b_factor",
    "r_factors",
    "refine_atoms",
    "refine_outliers",
    "score_atoms",
    "select_outliers",
    "snap_chalcogens",
    "support_mask",
    "trace_atoms",
    "vibration_kernels",
]
