"""Transit between cameras: how long a person takes from one camera to another, as the data and
TLift's pivots imply it, and how plausible one observed transit is (docs/arithmetic.md
section 13). Used by the viewer's path view (camera x time) and its camera-pair table.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PairTransit", "confirmed_transits", "pivot_transits", "transit_plausibility",
           "time_order"]


@dataclass(frozen=True)
class PairTransit:
    """Transit from camera ``start`` to camera ``end``: ``median`` seconds over ``count``
    observations (signed: negative when ``end`` usually sees a person first)."""

    start: int
    end: int
    count: int
    median: float


def pivot_transits(scores, query_cams, query_times, gallery_cams, gallery_times,
                   k: int = 10) -> dict[tuple[int, int], PairTransit]:
    """What TLift's pivots say of every camera pair (docs/arithmetic.md section 13.1).

    For each probe ``q`` (camera ``a``, time ``t_q``) and each gallery camera ``b``, its ``k``
    best gallery matches in ``b`` (TLift's pivots for one probe, ``tau = 0``) give offsets
    ``t_p - t_q``; a pair's transit is the median offset over every probe of ``a``. A camera
    whose clock runs apart from another's shifts the median by that gap, so times compared
    against it need no common clock.

    ``scores [q, g]``: higher = more similar. Returns ``{(a, b): PairTransit}`` for every pair
    with at least one probe in ``a`` and one gallery item in ``b``.
    """
    scores = np.asarray(scores)
    query_cams = np.asarray(query_cams)
    gallery_cams = np.asarray(gallery_cams)
    query_times = np.asarray(query_times, np.float64)
    gallery_times = np.asarray(gallery_times, np.float64)
    if scores.shape != (len(query_cams), len(gallery_cams)):
        raise ValueError(f"scores {scores.shape} do not match {len(query_cams)} probes and "
                         f"{len(gallery_cams)} gallery items")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    out = {}
    for b in np.unique(gallery_cams):
        cols = np.flatnonzero(gallery_cams == b)
        kb = min(k, len(cols))
        block = scores[:, cols]
        # The kb largest of each row (ties: any kb of them; the median uses their times only).
        top = np.argpartition(-block, kb - 1, axis=1)[:, :kb] if kb < len(cols) else \
            np.broadcast_to(np.arange(len(cols)), (len(query_cams), kb))
        offsets = gallery_times[cols][top] - query_times[:, None]
        for a in np.unique(query_cams):
            rows = offsets[query_cams == a].ravel()
            out[(int(a), int(b))] = PairTransit(int(a), int(b), len(rows), float(np.median(rows)))
    return out


def time_order(times: Sequence[float]) -> np.ndarray:
    """Indices of sightings in time order (ties kept in the order given)."""
    return np.argsort(np.asarray(times, np.float64), kind="stable")


def confirmed_transits(cams: Sequence[int], times: Sequence[float]) -> dict[tuple[int, int], PairTransit]:
    """Transit per camera pair from confirmed sightings of one person: each pair of consecutive
    sightings in time order is one observation ``t_next - t_prev`` of (camera before, camera
    after); a pair's transit is their median (docs/arithmetic.md section 13.2)."""
    order = time_order(times)
    cams = np.asarray(cams)[order]
    times = np.asarray(times, np.float64)[order]
    seen: dict[tuple[int, int], list[float]] = {}
    for i in range(len(order) - 1):
        seen.setdefault((int(cams[i]), int(cams[i + 1])), []).append(float(times[i + 1] - times[i]))
    return {pair: PairTransit(*pair, len(v), float(np.median(v))) for pair, v in seen.items()}


def transit_plausibility(transit: float, expected: float | None, sigma: float) -> float:
    """TLift's kernel of the gap between an observed and the expected transit,
    ``exp(-(transit - expected)^2 / sigma^2)`` in [0, 1]; NaN when nothing is expected
    (docs/arithmetic.md section 13.3)."""
    if expected is None or not np.isfinite(expected):
        return float("nan")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    return float(np.exp(-((transit - expected) / sigma) ** 2))
