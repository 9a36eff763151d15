"""The paper-scale phantom (configs/paper.yaml): the paper's signs, and why the ripple matters.

The default phantom's ripple keeps the sheet's area (``phantom.ripple_keeps_area``): its
sites are pulled in as they are lifted, so the sheet's stretch is the misfit's, and the
total finite strain gives the paper's signs. A phantom lifted without pulling in
(``ripple_keeps_area: false``) is stretched by the ripple part ``1/2 d_a w d_b w`` of the
membrane strain (+0.46/+0.69 % xx/yy within 5 Å of the interface on the WSe2 side) on
top of the misfit (-0.99/-1.11 % there): its total comes out positive on the WSe2 side,
and the in-plane part (total in the tangent frame minus the ripple part) measures the
misfit.

Slow (ten analyses of 1,900 sites, ~30-40 s on a loaded 2-core machine): ``pytest -m slow``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from hpcaet.config import config_to_dict, load_config, packaged_config
from hpcaet.phantom.heterojunction import HeterojunctionSpec, build_heterojunction
from hpcaet.phantom.stage import make_phantom
from hpcaet.structure import analyse_structure

pytestmark = pytest.mark.slow


def _analyse(phantom: dict, finite: bool, *, full: bool = False, seed: int | None = None):
    overrides = {"phantom": phantom} if seed is None else {"phantom": phantom, "seed": seed}
    config = load_config(packaged_config("paper"), overrides=overrides)
    model = make_phantom(config)
    settings = {**config_to_dict(config.structure), "finite_strain": finite}
    analysis = analyse_structure(
        model["position"].values,
        model["species"].values.astype(str),
        model["layer"].values,
        model["region"].values,
        **settings,
    )
    return analysis if full else analysis.results


def _band(results: dict, side: str) -> dict:
    return next(b for b in results["strain"]["near_interface"] if b["side"] == side)


def test_misfit_alone_gives_the_papers_signs():
    # Without the ripple the phantom's misfit field stretches MoS2 and compresses WSe2
    # within 5 Å of the interface (phantom truth: +1.15/+1.23 % and -0.99/-1.11 %), and
    # e_xy is negative along the interface on both sides.
    r = _analyse({"ripple_amplitude": 0.0}, finite=False)
    assert r["strain"]["paper_signs"] == {
        "exx_eyy_positive_MoS2": True,
        "exx_eyy_negative_WSe2": True,
    }
    assert _band(r, "MoS2")["xy"] < 0 and _band(r, "WSe2")["xy"] < 0


@pytest.fixture(scope="module")
def rippled_analysis():
    """The finite-strain analysis of the default phantom, and its metals."""
    model = make_phantom(load_config(packaged_config("paper")))
    return _analyse({}, finite=True, full=True), model["layer"].values == 0


@pytest.fixture(scope="module")
def rippled(rippled_analysis):
    return _analyse({}, finite=False), rippled_analysis[0].results


def test_rippled_phantom_gives_the_papers_signs_with_the_finite_strain(rippled):
    # Default phantom (seed 0), metals within 5 Å of the interface: measured xx/yy
    # +0.71/+1.22 % (MoS2) and -0.51/-0.64 % (WSe2); other seeds in the next test.
    linear, finite = rippled
    assert linear["strain"]["paper_signs"]["exx_eyy_positive_MoS2"]
    assert finite["strain"]["paper_signs"] == {
        "exx_eyy_positive_MoS2": True,
        "exx_eyy_negative_WSe2": True,
    }


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_papers_signs_hold_for_other_phantom_draws(seed):
    # Other draws of the vacancies, substitutions and thermal noise (0.05 Å per axis)
    # move the 39-metal WSe2 band by a few tenths of a percent; the signs hold.
    results = _analyse({}, finite=True, seed=seed)
    assert results["strain"]["paper_signs"] == {
        "exx_eyy_positive_MoS2": True,
        "exx_eyy_negative_WSe2": True,
    }


def _phantom_ripple_strain(config) -> np.ndarray:
    """The phantom's exact 1/2 d_a w d_b w at each site (xx, yy) [1].

    From the sheet height ``w`` the builder records at every site (``ripple``), by a
    least-squares gradient over the metals within 3.5 Å of each site, without noise.
    """
    spec = HeterojunctionSpec(
        **{
            **{k: getattr(config.phantom, k) for k in HeterojunctionSpec.__dataclass_fields__},
            "thermal_rms": 0.0,
        }
    )
    atoms = build_heterojunction(spec, rng=0)
    xy, w = atoms.positions[:, :2], atoms.arrays["ripple"]
    metal = np.flatnonzero(atoms.arrays["layer"] == 0)
    out = np.full((len(xy), 2), np.nan)
    for i, near in enumerate(cKDTree(xy[metal]).query_ball_point(xy, 3.5)):
        d = xy[metal[near]] - xy[i]
        g, *_ = np.linalg.lstsq(d, w[metal[near]] - w[i], rcond=None)
        out[i] = 0.5 * g**2
    return out


def test_in_plane_part_has_the_papers_signs_on_a_stretched_rippled_phantom():
    # Lifted without pulling in, the sheet is stretched by the ripple; the in-plane part
    # removes that stretch and keeps the misfit's signs.
    analysis = _analyse({"ripple_keeps_area": False}, finite=True, full=True)
    r = analysis.results["strain"]
    assert r["paper_signs_in_plane"] == {
        "exx_eyy_positive_MoS2": True,
        "exx_eyy_negative_WSe2": True,
    }
    # e_xy of the in-plane part stays negative along the interface, as in the paper.
    assert _band(analysis.results, "MoS2")["in_plane"]["xy"] < 0
    assert _band(analysis.results, "WSe2")["in_plane"]["xy"] < 0


def test_ripple_part_matches_the_phantoms_own(rippled_analysis):
    # The ripple part measured from the metals' heights against the phantom's exact
    # 1/2 w_a^2 (about +0.3 to +0.6 % here), mean over the metals within 5 Å of the
    # interface on each side. 0.15 %: the sigma = 3.16 Å fit damps the slope of the
    # 50 Å ripple by about 6 %, its square by 12 % (measured 0.02-0.07 % lower).
    a, metal = rippled_analysis
    truth = _phantom_ripple_strain(load_config(packaged_config("paper")))
    for side in (-1, 1):
        sel = (
            (side * a.distance > 0)
            & (side * a.distance <= 5)
            & np.isfinite(a.ripple_strain[:, 0])
            & metal
        )
        got = a.ripple_strain[sel, :2].mean(axis=0)
        want = truth[sel].mean(axis=0)
        np.testing.assert_allclose(got, want, atol=1.5e-3)
        assert want.min() > 2e-3


def test_finite_strain_removes_rotation_terms_and_the_ripple_is_found(rippled):
    # The linear strain of the tilted sheet gains slope^2 / 2 from its rotation; the
    # finite (Euler-Almansi) strain does not, so it is lower on the WSe2 side.
    linear, finite = rippled
    for component in ("xx", "yy"):
        assert _band(linear, "WSe2")[component] > _band(finite, "WSe2")[component]
    # The ripple itself, planted with amplitude 1.5 Å at the interface and 50 Å wavelength.
    assert linear["ripple"]["amplitude"] == pytest.approx(1.5, rel=0.10)
    assert linear["ripple"]["wavelength"] == pytest.approx(50.0, rel=0.10)
