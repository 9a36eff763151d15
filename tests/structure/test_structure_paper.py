"""The paper-scale phantom (configs/paper.yaml): the paper's signs, and why the ripple matters.

Slow (three analyses of 1,900 sites, ~15 s on a loaded 2-core machine): ``pytest -m slow``.
"""

from __future__ import annotations

import pytest

from hpcaet.config import config_to_dict, load_config, packaged_config
from hpcaet.phantom.stage import make_phantom
from hpcaet.structure import analyse_structure

pytestmark = pytest.mark.slow


def _analyse(phantom: dict, finite: bool) -> dict:
    config = load_config(packaged_config("paper"), overrides={"phantom": phantom})
    model = make_phantom(config)
    settings = {**config_to_dict(config.structure), "finite_strain": finite}
    return analyse_structure(
        model["position"].values,
        model["species"].values.astype(str),
        model["layer"].values,
        model["region"].values,
        **settings,
    ).results


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
def rippled():
    return _analyse({}, finite=False), _analyse({}, finite=True)


@pytest.mark.xfail(
    strict=True,
    reason="open (issue 6): on the rippled paper-scale phantom the WSe2 side near the "
    "interface comes out at about +0.2/+0.1 % (finite strain) instead of the misfit's "
    "compression; the strain of a rippled sheet still carries ripple terms",
)
def test_rippled_phantom_gives_the_papers_signs_with_the_finite_strain(rippled):
    linear, finite = rippled
    assert linear["strain"]["paper_signs"]["exx_eyy_positive_MoS2"]
    assert finite["strain"]["paper_signs"] == {
        "exx_eyy_positive_MoS2": True,
        "exx_eyy_negative_WSe2": True,
    }


def test_finite_strain_removes_rotation_terms_and_the_ripple_is_found(rippled):
    # The linear strain of the tilted sheet gains slope^2 / 2 from its rotation; the
    # finite (Euler-Almansi) strain does not, so it is lower on the WSe2 side.
    linear, finite = rippled
    for component in ("xx", "yy"):
        assert _band(linear, "WSe2")[component] > _band(finite, "WSe2")[component]
    # The ripple itself, planted with amplitude 1.5 Å at the interface and 50 Å wavelength.
    assert linear["ripple"]["amplitude"] == pytest.approx(1.5, rel=0.10)
    assert linear["ripple"]["wavelength"] == pytest.approx(50.0, rel=0.10)
