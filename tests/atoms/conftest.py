"""Shared fixtures of the atoms tests: a 20 x 20 Å heterojunction with planted defects.

WSe2 fills the left half, MoS2 the right (24 Mo, 21 W, 46 chalcogen columns). Planted:
a top vacancy, a bottom vacancy, an empty column (both sites vacant) and a Se
substitution in the MoS2 region, all away from the field edge. Images are the linear
model at the 12 calibrated angles of the paper, at the paper's dose per image, with
Poisson and read noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from hpcaet.atoms.synthetic import ideal_inputs, probe_b_factor
from hpcaet.config import load_config
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.phantom.stage import atoms_to_model
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED

_SPECIES = load_config().species  # the defaults' cross-sections and B' factors
CROSS_SECTION = dict(_SPECIES.cross_section)
B_FACTOR = dict(_SPECIES.b_factor)
PIXEL = 0.32  # [Å]
PROBE_B = probe_b_factor(0.8)  # [Å²], the simulator's probe
DOSE = 3.8e5 / 12  # [e/Å²] per image, the paper's total over 12 images
#: WSe2 on the left half: one straight interface at x = 0 (a polygon corner inside the
#: field would put the phantom's ripple discontinuity, along the corner's bisector, in it).
_STRAIGHT = ((-2.0, -2.0), (-2.0, 2.0), (0.0, 2.0), (0.0, -2.0))


def _plant(model):
    """Vacancies and a substitution on inner chalcogen sites; returns the new model."""
    pos = model["position"].values
    species = model["species"].values.astype("<U3").copy()
    layer = model["layer"].values
    region = model["region"].values
    pair = model["pair"].values
    inner = np.max(np.abs(pos[:, :2]), axis=1) < 8.0
    top = np.flatnonzero(inner & (layer == 1) & (region == 0))
    top = top[np.argsort(np.hypot(pos[top, 0] - 4.0, pos[top, 1]))]
    # Four columns apart from each other (more than a lattice constant).
    chosen = [top[0]]
    for i in top[1:]:
        if all(np.hypot(*(pos[i, :2] - pos[j, :2])) > 3.5 for j in chosen):
            chosen.append(i)
        if len(chosen) == 4:
            break
    a, b, c, d = chosen
    species[a] = "vac"  # top vacancy
    species[pair[b]] = "vac"  # bottom vacancy
    species[c] = species[pair[c]] = "vac"  # empty column
    species[d] = "Se"  # substitution on the top site of an MoS2 column
    out = model.copy()
    out["species"] = ("atom", species, model["species"].attrs)
    return out


@pytest.fixture(scope="session")
def truth():
    """AtomModel of the small phantom with the planted defects."""
    spec = HeterojunctionSpec(
        field=(20.0, 20.0),
        vacancies=0,
        substitutions=0,
        ripple_wavelength=30.0,
        region_polygon=_STRAIGHT,
    )
    atoms = build_heterojunction(spec, rng=0)
    model = atoms_to_model(atoms, b_factor=B_FACTOR, cross_section=CROSS_SECTION)
    return _plant(model)


@pytest.fixture(scope="session")
def inputs(truth):
    """(Volume, TiltSeries) of the truth: a band-limited noisy volume, noisy images."""
    return ideal_inputs(
        truth,
        TABLE_S2_CALIBRATED,
        shape=(88, 88),
        pixel_size=PIXEL,
        dose=DOSE,
        b_factor=B_FACTOR,
        extra_b=PROBE_B,
        read_noise=1.0,
        blur=(0.5, 0.1),
        noise=0.02,
        rng=3,
    )
