"""How long people take from one camera to another, learned from the gallery's own confident
matches (docs/arithmetic.md section 12.4). Relevance feedback uses it to lift the items of other
cameras seen a plausible transit time after (or before) a confirmed sighting.

No labels are used. For every gallery item ``i`` and every other camera ``b``, its best match
``j`` in ``b`` (raw g-g distances) counts when the match is mutual (``i`` is also ``j``'s best in
``i``'s camera) and stands out: ``j``'s standard score in ``i``'s row within camera ``b``
(section 12.2) is at least ``min_z``. Each counted match is one offset ``t_j - t_i`` for the
ordered camera pair ``(a, b)`` and ``t_i - t_j`` for ``(b, a)``. A pair's offsets within
``+-span`` seconds are binned (``bin_s``), smoothed with a Gaussian of ``smooth`` seconds and
scaled to a maximum of 1: the plausibility of an offset. Pairs with fewer than ``min_count``
offsets get no model (plausibility 0), so a sparse or clock-less camera lifts nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TransitModel", "learn_transits"]


@dataclass(frozen=True)
class TransitModel:
    """Plausibility of a time offset per ordered camera pair. ``edges``: bin edges in seconds
    ``[B + 1]``; ``density[(a, b)]``: ``[B]`` in ``[0, 1]``; ``counts[(a, b)]``: offsets behind
    it (pairs below ``min_count`` are listed in ``counts`` but have no density)."""

    edges: np.ndarray
    density: dict[tuple[int, int], np.ndarray]
    counts: dict[tuple[int, int], int]

    def plausibility(self, start_cam: int, start_time: float, cams, times) -> np.ndarray:
        """For items seen in ``cams`` at ``times``: how plausible it is that a person seen in
        ``start_cam`` at ``start_time`` is there then (float64 ``[n]`` in ``[0, 1]``; 0 for the
        start camera itself, for pairs without a model and beyond the span)."""
        cams = np.asarray(cams)
        offsets = np.asarray(times, np.float64) - float(start_time)
        out = np.zeros(len(cams))
        inside = (offsets >= self.edges[0]) & (offsets < self.edges[-1])
        bins = np.clip(np.searchsorted(self.edges, offsets, side="right") - 1, 0,
                       len(self.edges) - 2)
        for (a, b), dens in self.density.items():
            if a != start_cam:
                continue
            mask = (cams == b) & inside
            out[mask] = dens[bins[mask]]
        return out

    def most_likely(self, start: int, end: int, sign: int = 1) -> float | None:
        """The most plausible transit from camera ``start`` to ``end`` among offsets of
        ``sign`` (+1: ``end`` after ``start``; -1: before), at a bin centre; None without a
        model for the pair."""
        dens = self.density.get((start, end))
        if dens is None:
            return None
        centres = (self.edges[:-1] + self.edges[1:]) / 2
        side = centres * sign > 0
        return float(centres[side][np.argmax(dens[side])])


def _best_per_camera(gg, cams: np.ndarray, chunk: int):
    """Per camera ``b``: every item's best match in ``b`` (gallery index), its distance, and the
    mean and standard deviation of the item's distances to ``b`` (float64 ``[n]`` each)."""
    n = gg.shape[0]
    out = {}
    for b in np.unique(cams):
        cols = np.flatnonzero(cams == b)
        best = np.empty(n, np.int64)
        d_best, mean, std = np.empty(n), np.empty(n), np.empty(n)
        for r0 in range(0, n, chunk):
            block = np.asarray(gg[r0:r0 + chunk], np.float32)[:, cols].astype(np.float64)
            arg = block.argmin(axis=1)
            best[r0:r0 + chunk] = cols[arg]
            d_best[r0:r0 + chunk] = block[np.arange(len(block)), arg]
            mean[r0:r0 + chunk] = block.mean(axis=1)
            std[r0:r0 + chunk] = block.std(axis=1)
        out[int(b)] = (best, d_best, mean, std)
    return out


def learn_transits(gg, cams, times, *, min_z: float = 3.0, min_count: int = 20,
                   smooth: float = 5.0, span: float = 600.0, bin_s: float = 1.0,
                   chunk: int = 2048) -> TransitModel:
    """The :class:`TransitModel` implied by the raw g-g distances ``gg [g, g]`` (lower =
    closer), the gallery's cameras and times (seconds on one clock per camera, section 10)."""
    cams = np.asarray(cams)
    times = np.asarray(times, np.float64)
    if gg.shape != (len(cams), len(cams)) or len(times) != len(cams):
        raise ValueError(f"g-g block {gg.shape} does not match {len(cams)} cameras and "
                         f"{len(times)} times")
    if smooth <= 0 or span <= 0 or bin_s <= 0:
        raise ValueError("smooth, span and bin_s must be positive")
    best = _best_per_camera(gg, cams, chunk)
    offsets: dict[tuple[int, int], list[np.ndarray]] = {}
    for a in best:
        items = np.flatnonzero(cams == a)
        back = best[a][0]  # every item's best match in camera a
        for b, (to_b, d_best, mean, std) in best.items():
            if b == a:
                continue
            j = to_b[items]
            spread = np.where(std[items] > 0, std[items], 1.0)
            z = (mean[items] - d_best[items]) / spread
            keep = (back[j] == items) & (z >= min_z)
            dt = times[j[keep]] - times[items[keep]]
            offsets.setdefault((a, b), []).append(dt)
            offsets.setdefault((b, a), []).append(-dt)
    edges = np.arange(-span, span + bin_s / 2, bin_s)
    x = np.arange(-4 * smooth, 4 * smooth + bin_s / 2, bin_s)
    kernel = np.exp(-0.5 * (x / smooth) ** 2)
    density, counts = {}, {}
    for pair, parts in offsets.items():
        dt = np.concatenate(parts)
        counts[pair] = int(len(dt))
        if len(dt) < min_count:
            continue
        hist, _ = np.histogram(dt, edges)
        smoothed = np.convolve(hist.astype(np.float64), kernel, mode="same")
        if smoothed.max() > 0:
            density[pair] = smoothed / smoothed.max()
    return TransitModel(edges, density, counts)
