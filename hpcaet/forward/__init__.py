"""Forward model: the linear incoherent ADF image of Gaussian atoms.

:func:`project_atoms` projects atoms (positions [Å], cross-sections [Å²], B-factors
[Å²]) into images for a set of Euler angles, with its adjoint in the weights
(:func:`project_atoms_adjoint`), its vector-Jacobian product (:func:`project_atoms_vjp`)
and a least-squares misfit (:func:`projection_loss`). :func:`render_volume` draws the
same atoms as a 3D density. The Euler and pixel conventions are those of
:mod:`hpcaet.geometry`.
"""

from hpcaet.forward.gaussian import (
    ProjectionGradient,
    project_atoms,
    project_atoms_adjoint,
    project_atoms_vjp,
    projection_loss,
    species_table,
)
from hpcaet.forward.volume import render_volume, render_volume_adjoint

__all__ = [
    "ProjectionGradient",
    "project_atoms",
    "project_atoms_adjoint",
    "project_atoms_vjp",
    "projection_loss",
    "species_table",
    "render_volume",
    "render_volume_adjoint",
]
