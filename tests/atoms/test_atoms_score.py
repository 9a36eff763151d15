"""Scoring against a truth: the scored field is the volume's, in the volume's frame."""

import numpy as np

from hpcaet.atoms.score import score_atoms
from hpcaet.materials import PAPER


def _mos2_sheet(half: float, a: float = 3.19, h: float = 1.56):
    """An MoS2 monolayer filling the square |x|, |y| <= half [Å]: positions, species."""
    n = int(2 * half / a) + 4
    i, j = (g.ravel() for g in np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1)))
    metal = np.stack([a * (i + 0.5 * j), a * np.sqrt(3) / 2 * j, 0 * i], axis=1)
    offset = np.array([a / 2, a / (2 * np.sqrt(3)), 0.0])
    top, bottom = metal + offset + [0, 0, h], metal + offset - [0, 0, h]
    position = np.concatenate([metal, top, bottom])
    species = np.array(["Mo"] * len(metal) + ["S"] * (2 * len(metal)))
    inside = (np.abs(position[:, 0]) <= half) & (np.abs(position[:, 1]) <= half)
    return position[inside], species[inside]


def _turn(position, degrees, shift):
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    rotation = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    return position @ rotation.T + shift


def test_field_is_tested_in_the_models_frame():
    # The truth is a sheet larger than the volume; the model holds the sites of a
    # 30 Å volume in its own frame, turned 3 degrees and shifted (1.4, 0.8) Å from the
    # truth's, as a reconstruction's gauge is. Sites within 3 Å of the volume's faces
    # are the edge band and must not be scored, whatever their species.
    truth_position, truth_species = _mos2_sheet(30.0)
    frame = _turn(truth_position, 3.0, [1.4, 0.8, 0.0])  # the truth seen in the volume
    seen = (np.abs(frame[:, 0]) <= 15.0) & (np.abs(frame[:, 1]) <= 15.0)
    position, species = frame[seen], truth_species[seen].copy()
    field = (-12.0, 12.0, -12.0, 12.0)
    band = (np.abs(position[:, 0]) > 12.2) | (np.abs(position[:, 1]) > 12.2)
    # Wrong species in the band, at sites that the truth's own frame puts inside it.
    back = _turn(position - [1.4, 0.8, 0.0], -3.0, 0.0)
    fooled = band & (np.abs(back[:, 0]) < 11.5) & (np.abs(back[:, 1]) < 11.5)
    fooled &= species == "S"
    assert fooled.sum() >= 2, "the test needs band sites that the truth's frame puts inside"
    species[fooled] = "Se"
    scores = score_atoms(
        position, species, truth_position, truth_species, materials=PAPER, field=field
    )
    assert scores["species"]["S"]["species_correct"] == scores["species"]["S"]["n_true"]
    assert scores["missing_atoms"] == 0 and scores["extra_atoms"] == 0
    assert abs(scores["rotation_deg"] - 3.0) < 1e-6
    # An interior site with the wrong species is still counted.
    deep = (np.abs(position[:, 0]) < 10) & (np.abs(position[:, 1]) < 10)
    interior = np.flatnonzero(deep & (species == "S"))[0]
    species[interior] = "Se"
    scores = score_atoms(
        position, species, truth_position, truth_species, materials=PAPER, field=field
    )
    assert scores["species"]["S"]["species_correct"] == scores["species"]["S"]["n_true"] - 1
    assert scores["species"]["Mo"]["rmsd_pm"] < 1e-6
