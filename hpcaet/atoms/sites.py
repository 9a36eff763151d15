"""Operations on the site table of the atoms step (positions, species, layers, pairs).

The model under construction is a dict of per-site arrays (``position``, ``species``,
``layer``, ``region``, ``pair``); these helpers move, reset, join and remove sites between
the flipping and refinement cycles of :func:`hpcaet.atoms.build.build_model`, keeping the
partner indices consistent.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import cKDTree

from hpcaet.atoms.layers import fit_layers
from hpcaet.atoms.pairs import VACANCY, drop_stray_pairs, merge_split_columns, snap_chalcogens

__all__ = ["resnap_changed", "drop_stray", "subset_sites", "reset_collapsed", "mirror_vacancies"]

log = logging.getLogger(__name__)


def resnap_changed(
    sites: dict, species: np.ndarray, changed: np.ndarray, cfg, *, heights: tuple[float, ...]
) -> np.ndarray:
    """Positions with the pairs that ``changed`` species moved to their lattice sites."""
    position = sites["position"]
    atom = species != VACANCY
    if atom.sum() < 4:
        return position
    pair = sites["pair"]
    move = changed.copy()
    linked = pair >= 0
    move[pair[linked & changed]] = True
    surfaces = fit_layers(position[atom], smoothing=cfg.layer_smoothing).surfaces
    ideal = snap_chalcogens(
        position,
        sites["layer"],
        sites["region"],
        pair,
        surfaces=surfaces,
        heights=heights,
        tolerance=0.0,
        pair_radius=cfg.pair_radius,
    )
    out = position.copy()
    out[move] = ideal[move]
    log.info(
        "atoms: %d sites of pairs that changed species restart on their lattice site",
        int(move.sum()),
    )
    return out


def drop_stray(sites: dict, species: np.ndarray, cfg) -> tuple[dict, np.ndarray]:
    """Join split columns and remove spurious pairs; re-index.

    See :func:`~hpcaet.atoms.pairs.merge_split_columns` and
    :func:`~hpcaet.atoms.pairs.drop_stray_pairs`.
    """
    atom = species != VACANCY
    if atom.sum() < 4:
        return sites, species
    surfaces = fit_layers(sites["position"][atom], smoothing=cfg.layer_smoothing).surfaces
    # the refinement can bring the two pairs of a split column together only now
    joined, pair = merge_split_columns(
        sites["position"],
        species,
        sites["layer"],
        sites["pair"],
        surfaces=surfaces,
        pair_radius=cfg.pair_radius,
    )
    sites, species = subset_sites({**sites, "pair": pair}, joined), species[joined]
    keep = drop_stray_pairs(
        sites["position"],
        species,
        sites["layer"],
        sites["pair"],
        surfaces=surfaces,
        pair_radius=cfg.pair_radius,
        min_separation=cfg.min_distance,
    )
    if not keep.all():
        log.info(
            "atoms: removed %d vacancy sites of pairs that are no chalcogen column (%d atoms)",
            int((~keep).sum()),
            int(np.sum(~keep & (species != VACANCY))),
        )
    return subset_sites(sites, keep), species[keep]


def subset_sites(sites: dict, keep: np.ndarray) -> dict:
    """The kept sites, partners re-indexed (a site whose partner goes is left unpaired)."""
    if keep.all():
        return sites
    new_index = np.cumsum(keep) - 1
    pair = sites["pair"]
    pair = np.where((pair >= 0) & keep[np.maximum(pair, 0)], new_index[np.maximum(pair, 0)], -1)
    out = {k: v[keep] for k, v in sites.items()}
    out["pair"] = pair[keep]
    return out


def reset_collapsed(position, species, pair, *, min_distance, weights, chalcogens):
    """Turn chalcogens that the refinement pulled onto another atom into vacancies.

    A chalcogen nearer than ``min_distance`` to a metal, or the lighter of two such
    chalcogens, is set to a vacancy (and then moved to its partner's mirror image), so
    that the next flipping decides the site at a sensible position.
    """
    atom = np.flatnonzero(species != VACANCY)
    pairs = cKDTree(position[atom]).query_pairs(min_distance, output_type="ndarray")
    if len(pairs) == 0:
        return species
    out = species.copy()
    for a, b in atom[pairs]:
        weaker = a if weights.get(species[a], 0) <= weights.get(species[b], 0) else b
        if species[weaker] in chalcogens and pair[weaker] >= 0:
            out[weaker] = VACANCY
    n = int(np.sum(out != species))
    if n:
        log.info(
            "atoms: %d chalcogen(s) nearer than %.2f Å to another atom reset to "
            "vacancies before flipping",
            n,
            min_distance,
        )
    return out


def mirror_vacancies(position, species, pair, *, smoothing):
    """Move vacancy sites with an atom partner to its mirror image through the metal sheet."""
    vac = np.flatnonzero((species == VACANCY) & (pair >= 0))
    vac = vac[species[pair[vac]] != VACANCY]
    atom = species != VACANCY
    if len(vac) == 0 or atom.sum() < 4:
        return position
    surfaces = fit_layers(position[atom], smoothing=smoothing).surfaces
    partner = position[pair[vac]]
    z_mid, normal = surfaces.middle(partner[:, :2])
    ok = np.isfinite(z_mid)
    depth = (partner[ok, 2] - z_mid[ok]) * normal[ok, 2]
    out = position.copy()
    out[vac[ok]] = partner[ok] - 2 * depth[:, None] * normal[ok]
    return out
