"""Structure analysis of an atom model: interface, ripples, bond distortion and strain.

One module per step (Tian et al., Figs. 1D–F, 2 and S3):

* :mod:`~hpcaet.structure.lattice` — lattice orientation, indexing and the least-squares
  fit of the ideal 2H lattice;
* :mod:`~hpcaet.structure.interface` — the MoS2–WSe2 boundary (zigzag / armchair
  segments), interface chalcogens, vacancies against distance;
* :mod:`~hpcaet.structure.ripples` — roughness in strips along the interface and the
  sinusoid fit of the ripple;
* :mod:`~hpcaet.structure.bonds` — X–M–X and M–X–M bond angles of the top and bottom
  layers;
* :mod:`~hpcaet.structure.displacements` — displacements from the fitted lattices;
* :mod:`~hpcaet.structure.fields` and :mod:`~hpcaet.structure.strain` — RBF
  interpolation of the displacements to a grid, Gaussian smoothing and the six strain
  components;
* :mod:`~hpcaet.structure.membrane` — the sheet's slope, the ripple part
  ``1/2 d_a w d_b w`` of the membrane strain and the local tangent frame;
* :mod:`~hpcaet.structure.analysis` — all of it in one call;
* :mod:`~hpcaet.structure.stage` and :mod:`~hpcaet.structure.figures` — the
  ``hpcaet structure`` stage and its figures.
"""

from hpcaet.structure.analysis import StructureAnalysis, analyse_structure
from hpcaet.structure.bonds import BondAngles, bond_angles, ideal_bond_angle, layer_difference
from hpcaet.structure.displacements import atomic_displacements, resolve_regions
from hpcaet.structure.fields import (
    COMPONENTS,
    extend_field,
    interpolate_displacements,
    strain_from_displacement,
    strain_grid,
)
from hpcaet.structure.interface import (
    Interface,
    find_interface,
    interface_chalcogens,
    interface_distance,
    vacancy_profile,
)
from hpcaet.structure.lattice import (
    CHALCOGENS,
    METALS,
    LatticeFit,
    fit_ideal_lattice,
    lattice_orientation,
)
from hpcaet.structure.membrane import ripple_strain, sheet_slope, tangent_frame
from hpcaet.structure.ripples import RippleFit, detrend_plane, fit_ripple, strip_roughness
from hpcaet.structure.strain import StrainField, layer_strain_maps, strain_tensor

__all__ = [
    "CHALCOGENS",
    "COMPONENTS",
    "METALS",
    "BondAngles",
    "Interface",
    "LatticeFit",
    "RippleFit",
    "StrainField",
    "StructureAnalysis",
    "analyse_structure",
    "atomic_displacements",
    "bond_angles",
    "detrend_plane",
    "extend_field",
    "find_interface",
    "fit_ideal_lattice",
    "fit_ripple",
    "ideal_bond_angle",
    "interface_chalcogens",
    "interface_distance",
    "interpolate_displacements",
    "lattice_orientation",
    "layer_difference",
    "layer_strain_maps",
    "resolve_regions",
    "ripple_strain",
    "sheet_slope",
    "strain_from_displacement",
    "strain_grid",
    "strain_tensor",
    "strip_roughness",
    "tangent_frame",
    "vacancy_profile",
]
