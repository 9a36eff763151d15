"""Tests of pair flipping (hpcaet.atoms.flip) and of scoring (hpcaet.atoms.score)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import B_FACTOR, CROSS_SECTION, DOSE, PIXEL, PROBE_B

from hpcaet.atoms import CASES, flip_pairs, format_scores, score_atoms
from hpcaet.atoms.synthetic import ideal_images
from hpcaet.errors import InputError
from hpcaet.forward import project_atoms, species_table
from hpcaet.phantom.tables import TABLE_S2_CALIBRATED

EULER = TABLE_S2_CALIBRATED
SHAPE = (88, 88)
B_EFF = {k: v + PROBE_B for k, v in B_FACTOR.items()}


def _images(truth, rng, dose=DOSE):
    return ideal_images(
        truth["position"].values,
        truth["species"].values,
        EULER,
        cross_section=CROSS_SECTION,
        b_factor=B_FACTOR,
        shape=SHAPE,
        pixel_size=PIXEL,
        dose=dose,
        extra_b=PROBE_B,
        read_noise=1.0,
        rng=rng,
    )


def test_flipping_finds_planted_vacancies_and_substitution(truth):
    # Start with every chalcogen site S; the images (paper dose, Poisson noise) must
    # bring back the planted top and bottom vacancies, the empty column, the Se
    # substitution and every Se of the WSe2 side, at the true positions.
    images = _images(truth, rng=5)
    species = truth["species"].values.astype("<U3")
    start = np.where(truth["layer"].values == 0, species, "S")
    result = flip_pairs(
        images,
        EULER,
        truth["position"].values,
        start,
        truth["pair"].values,
        pixel_size=PIXEL,
        weights=CROSS_SECTION,
        b_factors=B_EFF,
        scale=np.full(12, DOSE * PIXEL**2),
        offset=np.zeros(12),
        rng=0,
    )
    np.testing.assert_array_equal(result.species, species)
    assert result.changes[-1] == 0
    assert result.r1_after < result.r1_before


def test_local_change_of_r1_is_exact(truth):
    # For one pair, the case chosen from the local patches must be the case with the
    # lowest R1 over the whole images, recomputed from scratch for all nine cases.
    images = _images(truth, rng=6)
    pos, pair = truth["position"].values, truth["pair"].values
    species = truth["species"].values.astype("<U3")
    i = int(np.flatnonzero((pair >= 0) & (species == "S"))[7])
    j = int(pair[i])
    r1 = []
    for top, bottom in CASES:
        trial = species.copy()
        trial[i], trial[j] = top, bottom
        atom = trial != "vac"
        calc = (
            DOSE
            * PIXEL**2
            * project_atoms(
                pos[atom],
                species_table(trial[atom], CROSS_SECTION),
                species_table(trial[atom], B_EFF),
                EULER,
                shape=SHAPE,
                pixel_size=PIXEL,
            )
        )
        r1.append(np.abs(images - calc).sum() / np.abs(images).sum())
    best = CASES[int(np.argmin(r1))]
    # Only this pair may change: give every other pair its true species and start the
    # pair in the worst case.
    start = species.copy()
    start[i], start[j] = CASES[int(np.argmax(r1))]
    only = np.full(len(pair), -1)
    only[i], only[j] = j, i
    result = flip_pairs(
        images,
        EULER,
        pos,
        start,
        only,
        pixel_size=PIXEL,
        weights=CROSS_SECTION,
        b_factors=B_EFF,
        scale=np.full(12, DOSE * PIXEL**2),
        offset=np.zeros(12),
        rng=0,
    )
    assert (result.species[i], result.species[j]) == best
    assert result.r1_after == pytest.approx(min(r1), rel=1e-9)


def test_flip_bad_input(truth):
    pos, pair = truth["position"].values, truth["pair"].values
    species = truth["species"].values
    options = {
        "pixel_size": PIXEL,
        "weights": CROSS_SECTION,
        "b_factors": B_EFF,
        "scale": np.ones(12),
        "offset": np.zeros(12),
    }
    images = np.zeros((12, *SHAPE))
    broken = pair.copy()
    broken[np.flatnonzero(pair >= 0)[0]] = -1
    with pytest.raises(InputError, match="mutual"):
        flip_pairs(images, EULER, pos, species, broken, **options)
    metal = np.flatnonzero(truth["layer"].values == 0)[:2]
    bad = np.full(len(pair), -1)
    bad[metal[0]], bad[metal[1]] = metal[1], metal[0]
    with pytest.raises(InputError, match=r"one of \['S', 'Se', 'vac'\]"):
        flip_pairs(images, EULER, pos, species, bad, **options)
    with pytest.raises(InputError, match="must agree"):
        flip_pairs(images[:3], EULER, pos, species, pair, **options)


def test_score_of_the_truth_and_of_planted_errors(truth):
    pos = truth["position"].values
    species = truth["species"].values.astype("<U3")
    region = truth["region"].values
    perfect = score_atoms(pos + [0.3, 0.0, 0.0], species, pos, species, truth_region=region)
    assert perfect["all_correct"]
    assert perfect["shift"] == pytest.approx([-0.3, 0.0, 0.0])
    # 1e-4 deg: the angle comes from arccos((trace - 1) / 2), which turns a rounding of
    # 1e-16 in the trace into ~1e-6 deg.
    assert perfect["rotation_deg"] == pytest.approx(0.0, abs=1e-4)
    # A model turned by 2° about z is aligned back (a rigid fit, not an error).
    c, s = np.cos(np.radians(2)), np.sin(np.radians(2))
    turned = pos @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]).T
    again = score_atoms(turned, species, pos, species, truth_region=region)
    assert again["all_correct"]
    assert again["rotation_deg"] == pytest.approx(2.0, abs=1e-6)
    # The reconstruction's origin is a gauge: a model 2.1 Å off in-plane (further than
    # the first matching radius, about the metal-to-chalcogen-column distance) and
    # 0.4 Å in z is laid back on the truth.
    off = score_atoms(pos + [-0.4, 2.1, 0.4], species, pos, species, truth_region=region)
    assert off["all_correct"]
    assert off["shift"] == pytest.approx([0.4, -2.1, -0.4], abs=1e-9)
    assert perfect["species"]["Mo"]["rmsd_pm"] == pytest.approx(0.0, abs=1e-9)
    assert perfect["vacancies"] == {"true": 4, "found": 4, "false": 0}
    assert perfect["substitutions"]["true"] >= 1
    # Errors: one vacancy filled with S, one S made a vacancy, one Mo made W, one S
    # atom moved 0.1 Å, one Mo dropped.
    wrong = species.copy()
    vac = np.flatnonzero(species == "vac")[0]
    s_sites = np.flatnonzero(species == "S")
    mo = np.flatnonzero(species == "Mo")
    wrong[vac], wrong[s_sites[0]], wrong[mo[0]] = "S", "vac", "W"
    moved = pos.copy()
    moved[s_sites[1], 2] += 0.1
    keep = np.ones(len(pos), bool)
    keep[mo[1]] = False
    scores = score_atoms(moved[keep], wrong[keep], pos, species, truth_region=region, align=False)
    assert not scores["all_correct"]
    assert scores["vacancies"] == {"true": 4, "found": 3, "false": 1}
    assert scores["extra_atoms"] == 1  # the S on the vacancy site
    assert scores["missing_atoms"] == 2  # the dropped Mo and the S made vacant
    assert scores["species"]["Mo"]["species_correct"] == scores["species"]["Mo"]["n_true"] - 2
    n_s = scores["species"]["S"]["detected"]
    assert scores["species"]["S"]["rmsd_pm"] == pytest.approx(10 / np.sqrt(n_s))
    assert "vacancies: 3/4 found, 1 false" in format_scores(scores)


def test_species_margins_measure_without_changing(truth):
    # With no sweep, flipping only measures: the species stay as given; every correctly
    # labelled chalcogen site has a positive margin (another species fits worse), a
    # planted wrong label a negative one, and metals none. At a hundredth of the dose
    # the images tell the species apart less clearly: the median margin falls.
    species = truth["species"].values.astype("<U3")
    pair = truth["pair"].values
    wrong = int(np.flatnonzero((pair >= 0) & (species == "S"))[3])
    start = species.copy()
    start[wrong] = "Se"

    def margins(images, dose, labels):
        result = flip_pairs(
            images,
            EULER,
            truth["position"].values,
            labels,
            pair,
            pixel_size=PIXEL,
            weights=CROSS_SECTION,
            b_factors=B_EFF,
            scale=np.full(12, dose * PIXEL**2),
            offset=np.zeros(12),
            max_sweeps=0,
            margins=True,
        )
        np.testing.assert_array_equal(result.species, labels)
        return result.margin

    margin = margins(_images(truth, rng=7), DOSE, start)
    paired = pair >= 0
    assert np.all(np.isnan(margin[~paired]))
    assert margin[wrong] < 0
    others = paired & (np.arange(len(pair)) != wrong) & (pair != wrong)
    assert np.all(margin[others] > 0), np.sort(margin[others])[:5]
    faint = margins(_images(truth, rng=7, dose=DOSE / 100), DOSE / 100, species)
    assert np.nanmedian(faint[paired]) < 0.5 * np.nanmedian(margin[others])
