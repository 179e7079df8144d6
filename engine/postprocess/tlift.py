"""Temporal lifting (TLift; Liao & Shao, ECCV 2020) as specified in SPEC.md section 9.

For a probe ``q`` and a gallery camera ``c``, the probes of q's camera seen within ``tau``
seconds of q (q included) vote with their ``K`` best gallery matches in camera ``c`` (the pivots);
every gallery item of camera ``c`` is then lifted by its temporal closeness to those pivots:
``s'(q, g) = (mean_p exp(-(t_g - t_p)^2 / sigma^2) + alpha) * s(q, g)``.

The ``[p, g]`` scores are read twice and written once, in row tiles; everything else is small
(``u`` = distinct probe windows, ``E`` = head width, about K):

1. Row heads. Per row tile, the gallery is gathered camera by camera; in camera ``c`` a row's
   candidates are its entries reaching the K-th largest maximum of disjoint column sets: a
   lower bound of the row's K-th largest value, so the candidates hold the row's head (its
   entries reaching its own K-th largest value, ties included) and a few more.
2. Windows. Probe windows are contiguous ranges of each camera's probes sorted by time, and
   everything below depends on a probe only through its window, so it runs once per distinct
   window. A block's K-th largest value is at least every row's K-th largest, so the block's
   threshold and pivots come from a ``[u, W, E]`` gather of the members' candidates.
3. Weights. Each camera's gallery, sorted by time, is cut into blocks of ``_BLOCK`` columns; a
   pivot reaches the blocks within ``_BAND_SIGMAS`` sigma of its time (the terms left out are
   below 5e-19). The kernel values of every (item, reached block) pair are computed once, a
   table of about ``g_c * reach`` rows of ``_BLOCK`` values, and a window's weights in a block
   are the share-weighted sum of its pivots' rows there: one ``embedding_bag`` (torch) over
   (window, block) bags, no exponential per window.
4. Lifting. Probes are taken window by window: a window's weights are put in gallery order
   once and lift each member row, ``(w + alpha) * s``, all in float64.

torch is imported by step 3 only (the viewer imports this module before torch).
"""
from __future__ import annotations

import numpy as np

__all__ = ["tlift"]

# Score elements per row tile of step 1.
_TILE_ELEMENTS = 1 << 19
# Elements per tile of step 4's gathers (kept in cache).
_GATHER_ELEMENTS = 1 << 18
# Window ranges of step 4 summed by one embedding_bag call.
_SUM_CHUNKS = 8
# Columns per block whose maxima bound a row's K-th largest value from below (step 1).
_HEAD_BLOCK = 32
# Gallery columns per block of the kernel table (step 3).
_BLOCK = 64
# Kernel terms with |t_g - t_p| > _BAND_SIGMAS * sigma (exp < 5e-19) are left out.
_BAND_SIGMAS = 6.5


def _check_number(name, value, allowed, ok):
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}, got {value!r}") from None
    if isinstance(value, bool) or not np.isfinite(number) or not ok(number):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def _validate(scores, query_cams, query_times, gallery_cams, gallery_times, tau, sigma, k, alpha):
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D [p, g] similarity matrix, got shape {scores.shape}")
    num_p, num_g = scores.shape
    if not np.issubdtype(scores.dtype, np.floating):
        scores = scores.astype(np.float64)
    out_dtype = scores.dtype

    def labels(values, name, length):
        array = np.asarray(values)
        if array.ndim != 1 or array.shape[0] != length:
            raise ValueError(f"{name} must have shape ({length},), got {array.shape}")
        return array

    def times(values, name, length):
        if values is None:
            raise ValueError(f"TLift needs timestamps: {name} is None (the dataset has no times)")
        array = labels(values, name, length)
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"TLift needs timestamps: {name} has missing or non-numeric entries") from None
        if not np.isfinite(array).all():
            raise ValueError(f"TLift needs timestamps: {name} has missing (NaN/None) or infinite entries")
        return array

    query_cams = labels(query_cams, "query_cams", num_p)
    gallery_cams = labels(gallery_cams, "gallery_cams", num_g)
    query_times = times(query_times, "query_times", num_p)
    gallery_times = times(gallery_times, "gallery_times", num_g)
    _check_number("tau", tau, "a positive number of seconds", lambda v: v > 0)
    _check_number("sigma", sigma, "a positive number of seconds", lambda v: v > 0)
    _check_number("k", k, "an integer >= 1", lambda v: v >= 1 and v == int(v))
    _check_number("alpha", alpha, "a number >= 0", lambda v: v >= 0)
    return scores, query_cams, query_times, gallery_cams, gallery_times, out_dtype


def _windows(query_cams: np.ndarray, query_times: np.ndarray, tau: float):
    """Co-occurring probes of every probe as index ranges into a time-sorted permutation.

    Returns ``(perm, lo, hi)``: the probes with the camera of ``q`` and ``|t - t_q| < tau`` are
    ``perm[lo[q]:hi[q]]`` (``q`` among them). The bounds are found by bisection on the very
    predicate ``abs(t - t_q) < tau``, so floating-point edge cases agree with a direct test.
    """
    perm = np.lexsort((query_times, query_cams))  # by camera, then time
    cams_sorted = query_cams[perm]
    times_sorted = query_times[perm]
    num_p = len(perm)
    position = np.empty(num_p, dtype=np.int64)
    position[perm] = np.arange(num_p)

    def inside(idx):
        return np.abs(times_sorted[np.minimum(idx, num_p - 1)] - query_times) < tau

    # lo: first index of [camera start, position] inside the window (position always is).
    a = np.searchsorted(cams_sorted, query_cams, side="left")
    b = position.copy()
    while (active := a < b).any():
        mid = (a + b) // 2
        ok = inside(mid)
        a, b = np.where(active & ~ok, mid + 1, a), np.where(active & ok, mid, b)
    lo = a
    # hi: first index of [position + 1, camera end] outside the window.
    a = position + 1
    b = np.searchsorted(cams_sorted, query_cams, side="right")
    while (active := a < b).any():
        mid = (a + b) // 2
        ok = inside(mid)
        a, b = np.where(active & ok, mid + 1, a), np.where(active & ~ok, mid, b)
    return perm, lo, a




def tlift(
    scores,
    query_cams,
    query_times,
    gallery_cams,
    gallery_times,
    tau: float = 100.0,
    sigma: float = 200.0,
    k: int = 10,
    alpha: float = 0.2,
) -> np.ndarray:
    """Lift probe-gallery similarities with the temporal pattern of co-occurring probes.

    Parameters
    ----------
    scores : array_like [p, g]
        Similarities, higher = more similar (in [0, 1] for the published setting, e.g.
        ``1 - d_RR`` or ``sigmoid(logit / 10)``). Any method's scores can be lifted.
    query_cams, gallery_cams : array_like of int [p], [g]
        Camera ids. Only within-camera time differences are used, so cameras need no common
        clock; probe cameras absent from the gallery (and the reverse) are fine.
    query_times, gallery_times : array_like of float [p], [g]
        Times in seconds. None or NaN entries are rejected: TLift needs timestamps.
    tau : float
        Co-occurrence window in seconds (> 0): probes of the same camera with ``|dt| < tau``.
    sigma : float
        Width of the temporal Gaussian in seconds (> 0).
    k : int
        Number of pivots per (probe window, gallery camera) block (>= 1; ties may add more).
    alpha : float
        Offset added to the temporal weight (>= 0); larger = milder lifting.

    Returns
    -------
    ndarray [p, g]
        Lifted similarities ``(w + alpha) * s``, in the input's float dtype (float64 otherwise);
        weights are computed in float64 and each product rounded once.
    """
    scores, query_cams, query_times, gallery_cams, gallery_times, out_dtype = _validate(
        scores, query_cams, query_times, gallery_cams, gallery_times, tau, sigma, k, alpha
    )
    k = int(k)
    num_p, num_g = scores.shape
    lifted = np.empty((num_p, num_g), dtype=out_dtype)
    if num_p == 0 or num_g == 0:
        return lifted
    perm, lo, hi = _windows(query_cams, query_times, float(tau))
    # Thresholds, pivots and weights depend on a probe only through its window: compute them
    # once per distinct window (probes seen together often share one).
    _, first, inverse = np.unique(lo * (num_p + 1) + hi, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    lo, hi = lo[first], hi[first]  # [u]
    win_len = hi - lo  # [u] >= 1
    offsets = np.arange(int(win_len.max()))
    members_ok = offsets[None, :] < win_len[:, None]  # [u, W]
    members = perm[np.minimum(lo[:, None] + offsets[None, :], num_p - 1)]  # [u, W]; pad masked

    layout = _Layout(gallery_cams, gallery_times)
    heads = _row_heads(scores, layout, k)  # per camera: values [p, E], columns [p, E], lengths [p]
    pivots = [_pivots(vals, cols, lens, members, members_ok, k) for vals, cols, lens in heads]
    num_w = len(first)
    window_weights, position = _weights(pivots, layout, num_w, float(sigma))
    # Probes by window; a range of windows at a time: their weights are summed, put in
    # gallery order once and lift every member row.
    by_window = np.argsort(inverse, kind="stable")
    members_start = np.searchsorted(inverse[by_window], np.arange(num_w + 1))
    chunk = max(1, _GATHER_ELEMENTS // num_g)
    buffer, source = np.empty((chunk, num_g)), np.empty((chunk, num_g), dtype=scores.dtype)
    summed_windows = chunk * _SUM_CHUNKS  # fewer, larger embedding_bag calls
    for w0 in range(0, num_w, chunk):
        w1 = min(w0 + chunk, num_w)
        if w0 % summed_windows == 0:
            summed = window_weights(w0, min(w0 + summed_windows, num_w))
        part = summed[w0 % summed_windows:w0 % summed_windows + w1 - w0]
        factor = np.take(part, position, axis=1)  # [w, g]
        factor += float(alpha)
        probes = by_window[members_start[w0]:members_start[w1]]
        local = inverse[probes] - w0
        for r0 in range(0, len(probes), chunk):
            rows = probes[r0:r0 + chunk]
            product = np.take(factor, local[r0:r0 + chunk], axis=0, mode="clip", out=buffer[:len(rows)])
            product *= np.take(scores, rows, axis=0, mode="clip", out=source[:len(rows)])
            lifted[rows] = product
    return lifted


class _Layout:
    """The gallery grouped by camera, each camera's items sorted by time.

    ``order`` lists gallery indices camera by camera, by time within a camera; camera ``c`` is
    ``order[start[c]:start[c + 1]]`` and ``times`` are the times in that order.
    """

    def __init__(self, gallery_cams: np.ndarray, gallery_times: np.ndarray):
        cams, cam_of = np.unique(gallery_cams, return_inverse=True)
        cam_of = cam_of.reshape(-1)  # [g] camera number 0..n_cams-1
        self.num_cams = len(cams)
        self.order = np.lexsort((gallery_times, cam_of))  # [g]
        self.times = gallery_times[self.order]
        self.start = np.concatenate([[0], np.cumsum(np.bincount(cam_of, minlength=self.num_cams))])


def _row_heads(scores, layout: _Layout, k: int):
    """A superset of every row's head, per gallery camera: the entries reaching a lower bound
    of the row's K-th largest value there.

    The bound is the K-th largest maximum of disjoint sets of ``_HEAD_BLOCK`` (or fewer)
    columns: K entries reach it. A window block's K-th largest value is at least each of its
    rows' K-th largest, so its K largest entries, and every entry reaching them, lie in the
    union of its rows' candidates. A camera with K or fewer items keeps whole rows.

    Returns
    -------
    list, one ``(head_vals, head_cols, head_len)`` per camera
        ``head_vals`` [p, E] float64 padded with -inf, ``head_cols`` [p, E] gallery indices
        padded with 0, ``head_len`` [p] real entries per row.
    """
    num_p, num_g = scores.shape
    sizes = np.diff(layout.start)
    block = np.clip(sizes // (2 * k), 1, _HEAD_BLOCK)  # per camera; >= K blocks when size > K
    step = max(1, _TILE_ELEMENTS // num_g)
    found: list[list] = [[] for _ in range(layout.num_cams)]  # (flat index in tile, value)
    buffer = np.empty((min(step, num_p), num_g), dtype=scores.dtype)
    for r0 in range(0, num_p, step):
        # [r, g], cameras contiguous
        tile = np.take(scores[r0:r0 + step], layout.order, axis=1, mode="clip",
                       out=buffer[:min(step, num_p - r0)])
        if not np.isfinite(tile).all():  # checked here, while the tile is in cache
            raise ValueError("scores contain NaN or inf; TLift needs finite similarities")
        rows = len(tile)
        for c in range(layout.num_cams):
            a, n, size = int(layout.start[c]), int(sizes[c]), int(block[c])
            part = tile[:, a:a + n]
            if n > k:
                # Blocks are strided column sets {j, j + nb, ...}: the maximum is then an
                # elementwise one over contiguous runs.
                nb = n // size
                maxima = part[:, :nb * size].reshape(rows, size, nb).max(axis=1)  # [r, nb]
                bound = -np.partition(-maxima, k - 1, axis=1)[:, k - 1]
                hits = np.flatnonzero(part >= bound[:, None])
            else:
                hits = np.arange(rows * n)
            hit_rows, hit_pos = np.divmod(hits, n)
            found[c].append((hit_rows + r0, hit_pos + a, part[hit_rows, hit_pos]))
    heads = []
    for c in range(layout.num_cams):
        rows = np.concatenate([f[0] for f in found[c]])
        head_len = np.bincount(rows, minlength=num_p)
        slot = np.arange(rows.size) - np.repeat(np.cumsum(head_len) - head_len, head_len)
        width = int(head_len.max())
        head_vals = np.full((num_p, width), -np.inf)
        head_cols = np.zeros((num_p, width), dtype=np.int64)
        head_vals[rows, slot] = np.concatenate([f[2] for f in found[c]])
        head_cols[rows, slot] = layout.order[np.concatenate([f[1] for f in found[c]])]
        heads.append((head_vals, head_cols, head_len))
    return heads


def _pivots(head_vals, head_cols, head_len, members, members_ok, k):
    """Pivots of every window in one camera: ``(window, gallery index, multiplicity)`` lists.

    The threshold of a window's block is the K-th largest value of its members' candidates
    (their union holds the block's K largest values), or the block's smallest when it has
    <= K entries (then the candidates are whole rows); the pivots are the candidates reaching
    it, duplicates counted.
    """
    num_w, width = members.shape[0], head_vals.shape[1]
    num_g = int(head_cols.max()) + 1
    out_w, out_c, out_m = [], [], []
    step = max(1, _TILE_ELEMENTS // (members.shape[1] * width))
    for start in range(0, num_w, step):
        stop = min(start + step, num_w)
        m, ok = members[start:stop], members_ok[start:stop]
        union = np.where(ok[:, :, None], head_vals[m], -np.inf)  # [c, W, E]
        flat = union.reshape(stop - start, -1)  # padding -inf
        available = np.where(ok, head_len[m], 0).sum(axis=1)  # [c]
        thr = np.full(stop - start, -np.inf)
        if flat.shape[1] >= k:
            thr = -np.partition(-flat, k - 1, axis=1)[:, k - 1]
        # Fewer than K real entries only happens when they are the whole block: take its min.
        small = available < k
        if small.any():
            thr[small] = np.where(flat[small] > -np.inf, flat[small], np.inf).min(axis=1)
        chosen = (union >= thr[:, None, None]) & ok[:, :, None]  # [c, W, E]
        w, slot, e = np.nonzero(chosen)
        key, mult = np.unique((w + start) * num_g + head_cols[m[w, slot], e], return_counts=True)
        out_w.append(key // num_g)
        out_c.append(key % num_g)
        out_m.append(mult)
    return np.concatenate(out_w), np.concatenate(out_c), np.concatenate(out_m)


def _weights(pivots, layout: _Layout, num_w: int, sigma: float):
    """Weights of the windows, float64 ``[windows, padded]`` with columns in ``layout.order``,
    each camera padded to a multiple of ``_BLOCK`` (``position[i]`` is gallery item i's column).

    ``w[q, g] = sum_p mult_p exp(-(t_g - t_p)^2 / sigma^2) / sum_p mult_p`` over the pivots of
    q's window in g's camera. Each camera's gallery (by time) is cut into blocks of ``_BLOCK``
    columns; a table holds the kernel values of every (item, block within reach) pair, and
    the weights of a window in a block are one bag of an ``embedding_bag``: the
    share-weighted sum of its pivots' table rows for that block.

    Returns ``(window_weights, position)``: ``window_weights(w0, w1)`` sums the bags of
    windows ``w0 .. w1 - 1`` (a range at a time keeps the result in cache).
    """
    import torch

    num_g = layout.order.size
    position = np.empty(num_g, dtype=np.int64)
    cut, sigma2, size = _BAND_SIGMAS * sigma, sigma * sigma, _BLOCK
    tables, row_ids, bag_ids, shares = [], [], [], []
    table_rows = block0 = 0
    for c, (win, col, mult) in enumerate(pivots):
        a, b = int(layout.start[c]), int(layout.start[c + 1])
        n, times = b - a, layout.times[a:b]
        position[layout.order[a:b]] = block0 * size + np.arange(n)
        num_blocks = -(-n // size)
        # Blocks [first, first + reach) hold every item within the cut of item i.
        first = np.searchsorted(times, times - cut, side="left") // size
        reach = (np.searchsorted(times, times + cut, side="right") - 1) // size - first + 1
        row0 = np.cumsum(reach) - reach  # table row of (i, first[i])
        item = np.repeat(np.arange(n), reach)
        # Times by block, padded with inf (a kernel value of 0).
        blocks = np.concatenate([times, np.full(num_blocks * size - n, np.inf)]).reshape(num_blocks, size)
        table = blocks[np.arange(item.size) - row0[item] + first[item]]  # [rows, size]
        table -= times[item, None]
        np.square(table, out=table)
        table *= -1.0 / sigma2
        np.exp(table, out=table)
        tables.append(table)
        # Entries: a pivot's table row for each block it reaches; bags: (window, block).
        pivot = position[col] - block0 * size
        span = reach[pivot]
        entry = np.repeat(np.arange(pivot.size), span)
        j = np.arange(entry.size) - np.repeat(np.cumsum(span) - span, span)
        row_ids.append(table_rows + row0[pivot][entry] + j)
        bag_ids.append(block0 + first[pivot][entry] + j)  # the block; the window is added below
        shares.append((entry, win, mult / np.bincount(win, weights=mult, minlength=num_w)[win]))
        table_rows += len(table)
        block0 += num_blocks
    windows = np.concatenate([w[e] for (e, w, _) in shares])
    bag = windows * block0 + np.concatenate(bag_ids)
    order = np.argsort(bag, kind="stable")
    bag = bag[order]
    share = np.concatenate([s[e] for (e, _, s) in shares])[order]
    table = torch.from_numpy(np.concatenate(tables))
    rows = torch.from_numpy(np.concatenate(row_ids)[order])
    share = torch.from_numpy(share)
    bag_start = np.searchsorted(bag, np.arange(num_w * block0 + 1))
    padded = block0 * size

    def window_weights(w0, w1):
        """The weights of windows ``w0 .. w1 - 1``, ``[w1 - w0, padded]``."""
        e0, e1 = int(bag_start[w0 * block0]), int(bag_start[w1 * block0])
        summed = torch.nn.functional.embedding_bag(
            rows[e0:e1], table, torch.from_numpy(bag_start[w0 * block0:w1 * block0] - e0), mode="sum",
            per_sample_weights=share[e0:e1])  # [bags, size]
        return summed.numpy().reshape(w1 - w0, padded)

    return window_weights, position
