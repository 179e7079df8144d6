"""Compiled passes of TLift (engine.postprocess.tlift explains the algorithm).

Kept apart so that importing ``engine.postprocess`` does not import numba (the viewer imports the
package at start-up; numba is loaded on the first TLift call). Compiled code is cached on disk
(engine.postprocess._cached_kernels), so only the first call on a machine pays for compilation.

Layout: the gallery sorted by camera, then time; ``order[l]`` is the gallery index at layout
position ``l``, camera ``c`` holds positions ``start[c]:start[c + 1]``, ``position`` is the inverse
of ``order``. Windows: window ``w``'s block rows (its co-occurring probes) are
``perm[lo[w]:hi[w]]``; the probes it lifts are ``lifted[lift_ptr[w]:lift_ptr[w + 1]]``.
"""
from __future__ import annotations

import numpy as np
from numba import prange

from engine.postprocess._cached_kernels import cached_njit


@cached_njit(parallel=True)
def row_tops(scores, position, camera, sizes, k):
    """Per probe row and gallery camera, the K largest similarities, descending.

    One sequential read of each row (``camera[g]`` is gallery item g's camera number, ``sizes``
    the cameras' item counts). Returns ``(values [p, C, K] float64 padded with -inf, positions
    [p, C, K] layout positions, kth [p, C], bad [p])``: ``kth`` is the row's K-th largest value
    in the camera when the camera has more than K items (entries equal to it may be missing
    from the list), -inf otherwise (the list is the whole row); ``bad`` marks rows holding NaN
    or inf.
    """
    num_p, num_g = scores.shape
    num_c = sizes.shape[0]
    values = np.full((num_p, num_c, k), -np.inf)
    positions = np.zeros((num_p, num_c, k), np.int64)
    kth = np.full((num_p, num_c), -np.inf)
    bad = np.zeros(num_p, np.bool_)
    for q in prange(num_p):
        row = scores[q]
        v = values[q]
        pos = positions[q]
        filled = np.zeros(num_c, np.int64)
        floor = np.full(num_c, -np.inf)  # the list's last value once it holds K entries
        check = 0.0  # stays 0 while every entry is finite (x * 0 is NaN for NaN and inf)
        for g in range(num_g):
            x = np.float64(row[g])
            check += x * 0.0
            c = camera[g]
            if x > floor[c]:
                i = filled[c]
                if i < k:
                    filled[c] = i + 1
                else:
                    i = k - 1
                while i > 0 and v[c, i - 1] < x:
                    v[c, i] = v[c, i - 1]
                    pos[c, i] = pos[c, i - 1]
                    i -= 1
                v[c, i] = x
                pos[c, i] = position[g]
                if filled[c] == k:
                    floor[c] = v[c, k - 1]
        bad[q] = check != 0.0
        for c in range(num_c):
            if sizes[c] > k:
                kth[q, c] = v[c, k - 1]
    return values, positions, kth, bad


@cached_njit(parallel=True)
def thresholds(values, perm, lo, hi, k):
    """Each window block's K-th largest similarity per camera (its smallest when it has fewer
    than K entries; +inf for a camera without gallery items), from its rows' top lists: a row
    holds at most K of the block's K largest entries, all within its own top K. The lists are
    sorted, so they are merged head by head until the K-th value."""
    num_w = lo.shape[0]
    num_c = values.shape[1]
    out = np.full((num_w, num_c), np.inf)
    for w in prange(num_w):
        rows = perm[lo[w]:hi[w]]
        heads = np.zeros(len(rows), np.int64)
        for c in range(num_c):
            heads[:] = 0
            last = np.inf
            for _ in range(k):
                best, at = -np.inf, -1
                for r in range(len(rows)):
                    if heads[r] < k:
                        x = values[rows[r], c, heads[r]]
                        if x > best:
                            best, at = x, r
                if at < 0:  # fewer than K entries in the block: its smallest
                    break
                heads[at] += 1
                last = best
            out[w, c] = last
    return out


@cached_njit()
def _block_pivots(scores, order, start, values, positions, kth, perm, t0, t1, c, threshold, out):
    """The block entries of camera ``c`` reaching ``threshold`` (one per entry, duplicates kept)
    over rows ``perm[t0:t1]``, written to ``out`` if it is long enough; returns their count."""
    count = 0
    k = values.shape[2]
    for t in range(t0, t1):
        q = perm[t]
        if kth[q, c] == threshold:  # ties at the row's K-th value may lie beyond its list
            for j in range(start[c], start[c + 1]):
                if scores[q, order[j]] >= threshold:
                    if count < out.shape[0]:
                        out[count] = j
                    count += 1
        else:  # every entry reaching the threshold is above the row's K-th value: in the list
            for i in range(k):
                if values[q, c, i] < threshold:
                    break
                if count < out.shape[0]:
                    out[count] = positions[q, c, i]
                count += 1
    return count


@cached_njit(parallel=True)
def pivots(scores, order, start, values, positions, kth, perm, lo, hi, thr):
    """Pivots of every (window, camera) as layout positions, CSR over ``w * C + c``."""
    num_w, num_c = thr.shape
    counts = np.zeros(num_w * num_c + 1, np.int64)
    none = np.empty(0, np.int64)
    for w in prange(num_w):
        for c in range(num_c):
            if thr[w, c] != np.inf:
                counts[w * num_c + c + 1] = _block_pivots(
                    scores, order, start, values, positions, kth, perm, lo[w], hi[w], c, thr[w, c], none)
    ptr = np.cumsum(counts)
    out = np.empty(ptr[-1], np.int64)
    for w in prange(num_w):
        for c in range(num_c):
            e = w * num_c + c
            if ptr[e + 1] > ptr[e]:
                _block_pivots(scores, order, start, values, positions, kth, perm, lo[w], hi[w], c,
                              thr[w, c], out[ptr[e]:ptr[e + 1]])
    return ptr, out


@cached_njit(parallel=True)
def kernel_rows(items, times, band_lo, band_hi, sigma2):
    """``exp(-(t_i - t_j)^2 / sigma^2)`` of each listed item ``j`` (layout position) and the
    items ``i`` of its band, concatenated; returns ``(offsets [len(items) + 1], values)``."""
    widths = np.zeros(items.shape[0] + 1, np.int64)
    for e in range(items.shape[0]):
        widths[e + 1] = band_hi[items[e]] - band_lo[items[e]]
    offsets = np.cumsum(widths)
    table = np.empty(offsets[-1])
    for e in prange(items.shape[0]):
        j = items[e]
        tj = times[j]
        base = offsets[e] - band_lo[j]
        for i in range(band_lo[j], band_hi[j]):
            d = times[i] - tj
            table[base + i] = np.exp(-(d * d) / sigma2)
    return offsets, table


@cached_njit(parallel=True)
def lift(scores, out, order, start, ptr, pivot_pos, slot, band_lo, band_hi, offsets, table,
         lifted, lift_ptr, alpha):
    """``out[q] = (w + alpha) * scores[q]`` for the probes ``q`` of every window, ``w`` the mean
    kernel value of the window's pivots in the item's camera (float64, rounded once)."""
    num_w = lift_ptr.shape[0] - 1
    num_c = start.shape[0] - 1
    num_g = order.shape[0]
    chunk = 32  # windows per task: the buffers are allocated once per task
    for task in prange((num_w + chunk - 1) // chunk):
        summed = np.zeros(num_g)  # layout order, zeroed again as it is read
        factor = np.empty(num_g)  # gallery order
        for w in range(task * chunk, min(task * chunk + chunk, num_w)):
            if lift_ptr[w + 1] == lift_ptr[w]:
                continue
            for c in range(num_c):
                e0, e1 = ptr[w * num_c + c], ptr[w * num_c + c + 1]
                for e in range(e0, e1):
                    j = pivot_pos[e]
                    base = offsets[slot[j]] - band_lo[j]
                    for i in range(band_lo[j], band_hi[j]):
                        summed[i] += table[base + i]
                share = 1.0 / max(e1 - e0, 1)
                for i in range(start[c], start[c + 1]):
                    factor[order[i]] = summed[i] * share + alpha
                    summed[i] = 0.0
            for t in range(lift_ptr[w], lift_ptr[w + 1]):
                q = lifted[t]
                for g in range(num_g):
                    out[q, g] = factor[g] * np.float64(scores[q, g])
