"""What the match inspector shows of one pair's local matches (NumPy only, no torch).

The functions turn a :class:`~engine.models.correspondence.Correspondence` (the model's local
matches and the split of its logit) into the numbers the viewer draws: lines between matched
locations, sums per body band, location centres in image pixels.

Sides are named ``"probe"`` (the query) and ``"gallery"``; locations are flat indices
``row * W + col`` into an ``H x W`` feature map.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.models.correspondence import Correspondence

__all__ = ["Line", "SIDES", "band_sums", "band_of_rows", "location_centres", "select_lines",
           "matched_location", "pair_heatmap", "BAND_NAMES"]

SIDES = ("probe", "gallery")
BAND_NAMES = ("top", "middle", "bottom")


def band_of_rows(height: int, bands: int = 3) -> np.ndarray:
    """Band number of each feature-map row: row ``i`` is in band ``floor(bands * i / height)``.

    With 8 rows: 3 top, 3 middle, 2 bottom; with 24 rows: 8 each.
    """
    return (np.arange(height) * bands) // height


def band_sums(contribution: np.ndarray, bands: int = 3) -> np.ndarray:
    """Contributions ``[H, W]`` summed per horizontal band (top, middle, bottom): ``[bands]``."""
    c = np.asarray(contribution, np.float64)
    return np.bincount(band_of_rows(c.shape[0], bands), weights=c.sum(axis=1), minlength=bands)


def location_centres(height: int, width: int, image_height: float, image_width: float) -> np.ndarray:
    """Centre ``(x, y)`` in image pixels of every map location, ``[H*W, 2]`` (flat order)."""
    rows, cols = np.divmod(np.arange(height * width), width)
    return np.stack([(cols + 0.5) * image_width / width, (rows + 0.5) * image_height / height], axis=1)


@dataclass(frozen=True)
class Line:
    """A drawn correspondence: ``source`` on ``side`` matched ``target`` on the other side."""

    side: str
    source: int
    target: int
    similarity: float
    contribution: float


def select_lines(corr: Correspondence, side: str = "probe", *, top_n: int | None = 10,
                 threshold: float | None = None, relative: bool = False) -> list[Line]:
    """The correspondence lines to draw from ``side``'s locations, strongest contribution first.

    Contributions are ``w * a`` (or ``w * b``), or with ``relative`` ``w * (a - centre)``
    (:meth:`Correspondence.relative_contribution`); ``Line.contribution`` holds that value.

    ``top_n`` keeps the ``top_n`` largest contributions (ties by location order);
    ``threshold`` keeps the locations whose best-match similarity is at least ``threshold``.
    Both may be given (both apply); None disables either.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}; got {side!r}")
    sim = corr.heatmap(side).reshape(-1)
    contrib = (corr.relative_contribution(side) if relative else corr.contribution(side)).reshape(-1)
    targets = corr.matches(side)
    keep = np.arange(sim.size)
    if threshold is not None:
        keep = keep[sim[keep] >= threshold]
    keep = keep[np.argsort(-contrib[keep], kind="stable")]
    if top_n is not None:
        keep = keep[:max(int(top_n), 0)]
    return [Line(side, int(i), int(targets[i]), float(sim[i]), float(contrib[i])) for i in keep]


def matched_location(corr: Correspondence, side: str, index: int) -> Line:
    """The match of location ``index`` on ``side``: where it points, similarity, contribution."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}; got {side!r}")
    sim = corr.heatmap(side).reshape(-1)
    if not 0 <= index < sim.size:
        raise IndexError(f"location {index} is outside the map ({sim.size} locations)")
    return Line(side, int(index), int(corr.matches(side)[index]), float(sim[index]),
                float(corr.contribution(side).reshape(-1)[index]))


def pair_heatmap(corr: Correspondence, side: str = "probe") -> np.ndarray:
    """The pair's whole score carried onto ``side``'s locations, ``float32 [H, W]``.

    QAConv: each location's relative contribution ``w*(a-mu)`` plus the ``w*(b-mu)`` of every
    location of the other side whose best match it is (each ``b`` is the similarity of one
    match, so it belongs to that location); with the relative bias they add up to the logit.
    Global models: the location's row of pair terms, ``A_i.b / (N |a||b|)``, which alone add up
    to the score (twice the halved contribution, docs/arithmetic.md 2.9). Unlike ``w*a``, it
    changes with the pair: what this result owes to each location, both directions included.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}; got {side!r}")
    own = corr.relative_contribution(side)
    if corr.method == "global":
        return (2.0 * own).astype(np.float32)
    other = "gallery" if side == "probe" else "probe"
    routed = np.bincount(corr.matches(other), weights=corr.relative_contribution(other).ravel(),
                         minlength=own.size)
    return (own.astype(np.float64) + routed.reshape(own.shape)).astype(np.float32)
