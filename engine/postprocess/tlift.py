"""Temporal lifting (TLift; Liao & Shao, ECCV 2020) as specified in SPEC.md section 9.

For a probe ``q`` and a gallery camera ``c``, the probes of q's camera seen within ``tau``
seconds of q (q included) vote with their ``K`` best gallery matches in camera ``c`` (the pivots);
every gallery item of camera ``c`` is then lifted by its temporal closeness to those pivots:
``s'(q, g) = (mean_p exp(-(t_g - t_p)^2 / sigma^2) + alpha) * s(q, g)``.

The work is arranged so that the ``[p, g]`` scores are read twice and written once, in row
tiles, and everything else is small (``W`` = longest probe window, ``E`` = head width, about K):

1. Row heads. A row's *head* in camera ``c`` is its entries reaching the row's own K-th largest
   value there (ties included). Per row tile the gallery is gathered camera by camera into
   blocks of ``_BLOCK`` columns; the K-th largest block maximum bounds the K-th largest value
   from below, so the head lies in the (about K) blocks whose maximum reaches that bound: an
   exact selection among ``K * _BLOCK`` candidates instead of the camera's whole row.
2. Windows. Probe windows are contiguous ranges of each camera's probes sorted by time, and
   everything below depends on a probe only through its window, so it runs once per distinct
   window (``u <= p``). A block's K-th largest value is at least every row's K-th largest, so
   the block's threshold and pivots come from a ``[u, W, E]`` gather of the members' heads.
3. Weights. Per camera, the ``[g_c, g_c]`` time kernel is computed once, within
   ``_BAND_SIGMAS`` sigma (the terms left out are below 5e-19, so no number changes beyond
   that); a window's weights are the sum of its pivots' kernel rows, gathered a pivot slot at
   a time over cache-sized chunks of windows. The rows are then lifted tile by tile,
   ``(w + alpha) * s``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["tlift"]

# Score elements per row tile of step 1 (the gathered tile and its block maxima).
_TILE_ELEMENTS = 1 << 20
# Columns per block for the block maxima of step 1.
_BLOCK = 32
# Kernel terms with |t_g - t_p| > _BAND_SIGMAS * sigma (exp < 5e-19) are left out.
_BAND_SIGMAS = 6.5
# Rows per block of the band-limited time kernel of step 3.
_COLUMN_BLOCK = 128


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
    step = max(1, _TILE_ELEMENTS // max(1, num_g))
    if not all(np.isfinite(scores[i:i + step]).all() for i in range(0, num_p, step)):
        raise ValueError("scores contain NaN or inf; TLift needs finite similarities")

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
    _lift(scores, lifted, inverse, pivots, layout, gallery_times, float(sigma), float(alpha))
    return lifted


class _Layout:
    """The gallery grouped by camera, each camera's items sorted by time.

    ``order`` lists gallery indices camera by camera, by time within a camera; ``start[c]``
    is where camera ``c`` begins in it. ``padded`` is the same list with each camera padded to
    a multiple of ``_BLOCK`` (``pad`` marks the padding), for step 1's blocks.
    """

    def __init__(self, gallery_cams: np.ndarray, gallery_times: np.ndarray):
        cams, cam_of = np.unique(gallery_cams, return_inverse=True)
        self.cam_of = cam_of.reshape(-1)  # [g] camera number 0..n_cams-1
        self.num_cams = len(cams)
        self.order = np.lexsort((gallery_times, self.cam_of))  # [g]
        sizes = np.bincount(self.cam_of, minlength=self.num_cams)
        self.start = np.concatenate([[0], np.cumsum(sizes)])  # [n_cams + 1]
        self.sizes = sizes
        blocks = -(-sizes // _BLOCK)
        self.block_start = np.concatenate([[0], np.cumsum(blocks)])  # in blocks
        padded = np.zeros(int(self.block_start[-1]) * _BLOCK, dtype=np.int64)
        pad = np.ones(padded.size, dtype=bool)
        for c in range(self.num_cams):
            a = int(self.block_start[c]) * _BLOCK
            padded[a:a + sizes[c]] = self.order[self.start[c]:self.start[c + 1]]
            pad[a:a + sizes[c]] = False
        self.padded, self.pad = padded, np.flatnonzero(pad)


def _row_heads(scores, layout: _Layout, k: int):
    """Every row's entries, per gallery camera, that reach the row's own K-th largest value there.

    The pivots of a window block are a subset of its rows' heads: the block's K-th largest
    value is at least each row's K-th largest.

    Returns
    -------
    list, one ``(head_vals, head_cols, head_len)`` per camera
        ``head_vals`` [p, E] padded with -inf, ``head_cols`` [p, E] gallery indices padded
        with 0, ``head_len`` [p] real entries per row.
    """
    num_p, num_g = scores.shape
    step = max(1, _TILE_ELEMENTS // max(1, layout.padded.size))
    parts: list[list] = [[] for _ in range(layout.num_cams)]
    for r0 in range(0, num_p, step):
        tile = scores[r0:r0 + step].take(layout.padded, axis=1)  # [r, padded]
        tile[:, layout.pad] = -np.inf
        rows = len(tile)
        for c in range(layout.num_cams):
            nb = int(layout.block_start[c + 1] - layout.block_start[c])
            a = int(layout.block_start[c]) * _BLOCK
            blocks = tile[:, a:a + nb * _BLOCK].reshape(rows, nb, _BLOCK)  # [r, nb, B]
            kk = min(k, int(layout.sizes[c]))
            block_max = blocks.max(axis=2)  # [r, nb]
            # The K-th largest block maximum: K real entries reach it, so the row's K-th largest
            # value does too, and every entry reaching that value lies in a block reaching it.
            bound = -np.partition(-block_max, kk - 1, axis=1)[:, kk - 1] if nb > kk \
                else block_max.min(axis=1)
            chosen = block_max >= bound[:, None]  # [r, nb], >= kk per row
            n_chosen = chosen.sum(axis=1)
            width = int(n_chosen.max())
            r_idx, b_idx = np.nonzero(chosen)
            slot = np.arange(r_idx.size) - np.repeat(np.cumsum(n_chosen) - n_chosen, n_chosen)
            which = np.zeros((rows, width), dtype=np.int64)
            which[r_idx, slot] = b_idx
            cand = blocks[np.arange(rows)[:, None], which]  # [r, width, B]
            cand[np.arange(width)[None, :] >= n_chosen[:, None]] = -np.inf
            cand = cand.reshape(rows, width * _BLOCK)
            kth = -np.partition(-cand, kk - 1, axis=1)[:, kk - 1]  # [r] K-th largest (or min)
            mask = cand >= kth[:, None]
            head_len = mask.sum(axis=1)
            hr, hc = np.nonzero(mask)
            hslot = np.arange(hr.size) - np.repeat(np.cumsum(head_len) - head_len, head_len)
            position = which[hr, hc // _BLOCK] * _BLOCK + hc % _BLOCK  # within the camera
            parts[c].append((hr + r0, hslot, cand[hr, hc], layout.padded[a + position], head_len))
    heads = []
    for c in range(layout.num_cams):
        head_len = np.concatenate([p[4] for p in parts[c]])
        width = int(head_len.max())
        head_vals = np.full((num_p, width), -np.inf)
        head_cols = np.zeros((num_p, width), dtype=np.int64)
        for hr, hslot, vals, cols, _ in parts[c]:
            head_vals[hr, hslot] = vals
            head_cols[hr, hslot] = cols
        heads.append((head_vals, head_cols, head_len))
    return heads


def _pivots(head_vals, head_cols, head_len, members, members_ok, k):
    """Pivots of every window in one camera: ``(window, gallery index, multiplicity)`` lists.

    The threshold of a window's block is the K-th largest value of its members' heads (the
    union holds the block's K largest values), or the block's smallest when it has <= K
    entries; the pivots are the head entries reaching it, duplicates counted.
    """
    num_w, width = members.shape[0], head_vals.shape[1]
    num_g = int(head_cols.max()) + 1
    out_w, out_c, out_m = [], [], []
    step = max(1, _TILE_ELEMENTS // (members.shape[1] * width))
    for start in range(0, num_w, step):
        stop = min(start + step, num_w)
        m, ok = members[start:stop], members_ok[start:stop]
        union = np.where(ok[:, :, None], head_vals[m], -np.inf)  # [c, W, E]
        flat = -np.sort(-union.reshape(stop - start, -1), axis=1)  # descending, padding last
        available = np.where(ok, head_len[m], 0).sum(axis=1)  # [c]
        # Fewer than K real entries only happens when they are the whole block: take its min.
        pick = np.where(available >= k, k - 1, available - 1)
        thr = flat[np.arange(stop - start), pick]
        chosen = (union >= thr[:, None, None]) & ok[:, :, None]  # [c, W, E]
        w, slot, e = np.nonzero(chosen)
        key, mult = np.unique((w + start) * num_g + head_cols[m[w, slot], e], return_counts=True)
        out_w.append(key // num_g)
        out_c.append(key % num_g)
        out_m.append(mult)
    return np.concatenate(out_w), np.concatenate(out_c), np.concatenate(out_m)


def _lift(scores, lifted, inverse, pivots, layout: _Layout, gallery_times, sigma, alpha):
    """Weights of every window from its pivots, and ``lifted = (w + alpha) * scores`` by rows.

    ``w[q, g] = sum_p mult_p exp(-(t_g - t_p)^2 / sigma^2) / sum_p mult_p`` over the pivots of
    q's window in g's camera: per camera, the kernel rows of each window's pivots (about K)
    are gathered and summed, a slot at a time over cache-sized chunks of windows.
    """
    num_p, num_g = scores.shape
    num_w = int(inverse.max()) + 1
    by_camera = np.empty((num_w, num_g))  # [u, g], columns in layout.order
    for c, (win, col, mult) in enumerate(pivots):
        a, b = layout.start[c], layout.start[c + 1]
        order = layout.order[a:b]  # this camera's gallery, by time
        kernel = _kernel(gallery_times[order], sigma)  # [g_c, g_c]
        position = np.empty(num_g, dtype=np.int64)
        position[order] = np.arange(b - a)
        # Padded pivot lists per window: (position, share), share 0 for padding.
        count = np.bincount(win, minlength=num_w)
        width = int(count.max())
        slot = np.arange(win.size) - np.repeat(np.cumsum(count) - count, count)
        cols = np.zeros((num_w, width), dtype=np.int64)
        share = np.zeros((num_w, width))
        cols[win, slot] = position[col]
        share[win, slot] = mult
        share /= share.sum(axis=1, keepdims=True)
        cam_weights = by_camera[:, a:b]
        cam_weights[:] = alpha  # accumulate w + alpha
        step = max(1, _TILE_ELEMENTS // 8 // (b - a))  # [chunk, g_c] stays in cache
        buffer = np.empty((step, b - a))
        for r0 in range(0, num_w, step):
            r1 = min(r0 + step, num_w)
            acc, buf = cam_weights[r0:r1], buffer[:r1 - r0]
            for j in range(width):
                np.take(kernel, cols[r0:r1, j], axis=0, out=buf)
                buf *= share[r0:r1, j, None]
                acc += buf
    # Back to gallery order: a gather along rows (much cheaper than a column scatter).
    rank = np.empty(num_g, dtype=np.int64)
    rank[layout.order] = np.arange(num_g)
    weights = np.empty((num_w, num_g))
    step = max(1, _TILE_ELEMENTS // 8 // num_g)
    for r0 in range(0, num_w, step):
        np.take(by_camera[r0:r0 + step], rank, axis=1, out=weights[r0:r0 + step])
    del by_camera
    step = max(1, _TILE_ELEMENTS // 8 // num_g)
    for r0 in range(0, num_p, step):
        np.multiply(weights[inverse[r0:r0 + step]], scores[r0:r0 + step], out=lifted[r0:r0 + step],
                    casting="same_kind")


def _kernel(times: np.ndarray, sigma: float) -> np.ndarray:
    """``exp(-(t_i - t_j)^2 / sigma^2)`` for times sorted ascending, ``[n, n]``.

    Entries more than ``_BAND_SIGMAS`` sigma apart (below 5e-19) are left at 0: each block of
    rows computes only the band of columns within reach.
    """
    n = len(times)
    kernel = np.zeros((n, n))
    cut = _BAND_SIGMAS * sigma
    sigma2 = sigma * sigma
    step = _COLUMN_BLOCK
    for r0 in range(0, n, step):
        r1 = min(r0 + step, n)
        j0 = int(np.searchsorted(times, times[r0] - cut, side="left"))
        j1 = int(np.searchsorted(times, times[r1 - 1] + cut, side="right"))
        dt = times[j0:j1][None, :] - times[r0:r1, None]  # [rows, band]
        kernel[r0:r1, j0:j1] = np.exp(-(dt * dt) / sigma2)
    return kernel
