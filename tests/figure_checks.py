"""Checks of a saved figure: what a microscopist would not put in a paper draft.

:func:`figure_problems` looks at a :class:`matplotlib.figure.Figure` as it was saved
(the layout of its last ``savefig``, no new draw) and lists what is wrong with it.
Used by tests/test_chain_outputs.py on every figure of the demo chain.
"""

from __future__ import annotations

import re

import numpy as np
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

#: Axis labels of quantities without a unit: counts, indices and ratios.
UNITLESS = re.compile(
    r"^(count|iteration.*|tilt #|pairs changed|vacancies per bin|flipping cycle\.sweep|"
    r"R1 .*|relative misfit.*)$"
)
#: A unit in brackets, or a quantity said to be dimensionless.
UNIT = re.compile(r"\[[^\]]+\]|\(dimensionless\)")


def figure_problems(fig) -> list[str]:
    """Everything wrong with a saved figure, as sentences (empty: nothing).

    Checked: every colour bar names a quantity with its unit; every image has a
    colour bar (its own or one with the same range); an image panel without axes has
    a scale bar, one with axes has them in Å and equal; maps and sections (x against y
    or z, both in Å) have equal axes unless the title says the axis is stretched;
    every axis label has a unit (or names a count, an index or a ratio); no text is
    cut off at the figure's edge; no legend covers a data point; an axes with lines of
    more than one colour has a legend (its own or the figure's).
    """
    renderer = fig._get_renderer()  # the layout as saved: no new draw
    problems = []
    with_bar = [im for ax in fig.axes for im in ax.images if im.colorbar is not None]
    for ax in fig.axes:
        if hasattr(ax, "_colorbar"):
            problems += _colorbar_problems(ax._colorbar)
        elif ax.get_visible():
            problems += _axes_problems(ax, with_bar)
            problems += _legend_problems(ax, [*_legends(ax), *fig.legends], renderer)
    problems += _cut_off(fig, renderer)
    return problems


def _legends(ax) -> list:
    return [] if ax.get_legend() is None else [ax.get_legend()]


def _colorbar_problems(cb) -> list[str]:
    label = cb.ax.get_ylabel() if cb.orientation == "vertical" else cb.ax.get_xlabel()
    return [] if UNIT.search(label) else [f"colour bar {label!r}: no quantity with a unit"]


def _axes_problems(ax, with_bar) -> list[str]:
    name = ax.get_title() or "an axes"
    problems = []
    for im in ax.images:
        shared = any(o.norm.vmin == im.norm.vmin and o.norm.vmax == im.norm.vmax for o in with_bar)
        if im.colorbar is None and not shared:
            problems.append(f"{name}: an image without a colour bar")
    if not ax.axison:
        if ax.images and not any(isinstance(a, AnchoredSizeBar) for a in ax.artists):
            problems.append(f"{name}: an image panel without axes or a scale bar")
        return problems
    xlabel, ylabel = ax.get_xlabel(), ax.get_ylabel()
    twin = len(ax.get_shared_x_axes().get_siblings(ax)) > 1  # a twin: x is labelled once
    for label in (ylabel,) if twin else (xlabel, ylabel):
        if not label and ax.has_data():
            problems.append(f"{name}: an axis without a label")
        elif label and not UNIT.search(label) and not UNITLESS.match(label):
            problems.append(f"{name}: axis label {label!r} without a unit")
    in_angstrom = "[Å]" in xlabel and "[Å]" in ylabel
    if ax.images and not in_angstrom:
        problems.append(f"{name}: an image on axes not in Å")
    section = in_angstrom and xlabel.startswith("x ") and ylabel.startswith(("y ", "z "))
    stretched = "stretched" in name
    if (ax.images or (section and not stretched)) and ax.get_aspect() != 1.0:
        problems.append(f"{name}: a map or section without equal axes")
    colours = {
        str(line.get_color())
        for line in ax.lines
        if len(line.get_xdata()) > 1 and line.get_linestyle() not in ("None", "", " ")
    }
    if len(colours) > 1 and not _legends(ax) and not ax.figure.legends:
        problems.append(f"{name}: lines of {len(colours)} colours and no legend")
    return problems


def _legend_problems(ax, legends, renderer) -> list[str]:
    points = _data_points(ax)
    problems = []
    for legend in legends:
        box = legend.get_window_extent(renderer)
        x, y = points.T
        inside = (x > box.x0) & (x < box.x1) & (y > box.y0) & (y < box.y1)
        if inside.any():
            name = ax.get_title() or "an axes"
            problems.append(f"{name}: the legend covers {inside.sum()} data point(s)")
    return problems


def _data_points(ax) -> np.ndarray:
    """Display coordinates of the scatter points and line vertices of ``ax``."""
    points = [np.empty((0, 2))]
    for collection in ax.collections:
        offsets = np.asarray(collection.get_offsets(), float)
        if offsets.size:
            points.append(collection.get_offset_transform().transform(offsets))
    for line in ax.lines:
        xy = np.asarray(line.get_xydata(), float)
        if xy.size:
            points.append(line.get_transform().transform(xy))
    out = np.concatenate(points)
    return out[np.isfinite(out).all(axis=1)]


def _cut_off(fig, renderer) -> list[str]:
    """Axes (with their labels, ticks and legends), titles and figure legends that
    reach beyond the figure's edge (by more than a pixel)."""
    boxes = [(ax.get_title() or "an axes", ax.get_tightbbox(renderer)) for ax in fig.axes]
    if fig._suptitle is not None:
        boxes.append((fig._suptitle.get_text(), fig._suptitle.get_window_extent(renderer)))
    boxes += [("a figure legend", leg.get_window_extent(renderer)) for leg in fig.legends]
    page = fig.bbox
    return [
        f"{what}: cut off at the figure's edge"
        for what, box in boxes
        if box is not None
        and (
            box.x0 < page.x0 - 1
            or box.x1 > page.x1 + 1
            or box.y0 < page.y0 - 1
            or box.y1 > page.y1 + 1
        )
    ]
