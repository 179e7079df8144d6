"""Temporal lifting (TLift; Liao & Shao, ECCV 2020) as specified in SPEC.md section 9.

For a probe ``q`` and a gallery camera ``c``, the probes of q's camera seen within ``tau``
seconds of q (q included) vote with their ``K`` best gallery matches in camera ``c`` (the pivots);
every gallery item of camera ``c`` is then lifted by its temporal closeness to those pivots:
``s'(q, g) = (mean_p exp(-(t_g - t_p)^2 / sigma^2) + alpha) * s(q, g)``.

Vectorised per gallery camera ``c`` (``W`` = longest probe window, ``E`` = head width, about K):

1. Probe windows are contiguous ranges of each camera's probes sorted by time. Everything below
   depends on a probe only through its window, so it runs once per distinct window, on a padded
   ``[u, W]`` member table (u <= p).
2. A row's *head* is its entries reaching the row's own K-th largest value in camera ``c``
   (``[p, E]``, ties included). A block's K-th largest value is at least every row's K-th
   largest, so the block's pivots all lie in its rows' heads: the threshold and the pivots of
   every window come from a ``[u, W, E]`` gather instead of the ``[u, W, g_c]`` block.
3. Pivots are counted per gallery column and turned into weights with the camera's time kernel,
   by gathering the kernel rows of the few pivot columns (the usual case) or, when ties make
   pivot sets wide, by a matrix product.
"""
from __future__ import annotations

import numpy as np

__all__ = ["tlift"]

# Float64 elements per temporary ([chunk, pivots, g_c] kernels etc.): ~ 32 MB.
_CHUNK_ELEMENTS = 4_000_000
# Relative cost of gathering kernel rows vs. a matrix product (measured, rough): gather the
# pivot rows when (pivot columns per probe) x _GATHER_COST < gallery items of the camera.
_GATHER_COST = 10


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
    out_dtype = scores.dtype if np.issubdtype(scores.dtype, np.floating) else np.float64
    scores = scores.astype(np.float64, copy=False)
    if not np.isfinite(scores).all():
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
        Lifted similarities ``(w + alpha) * s``, in the input's float dtype (float64 otherwise).
    """
    scores, query_cams, query_times, gallery_cams, gallery_times, out_dtype = _validate(
        scores, query_cams, query_times, gallery_cams, gallery_times, tau, sigma, k, alpha
    )
    k = int(k)
    num_p, num_g = scores.shape
    lifted = np.empty((num_p, num_g))
    if num_p == 0 or num_g == 0:
        return lifted.astype(out_dtype, copy=False)
    perm, lo, hi = _windows(query_cams, query_times, float(tau))
    # Thresholds, pivots and weights depend on a probe only through its window: compute them
    # once per distinct window (probes seen together often share one).
    _, first, inverse = np.unique(lo * (num_p + 1) + hi, return_index=True, return_inverse=True)
    lo, hi = lo[first], hi[first]  # [u]
    win_len = hi - lo  # [u] >= 1
    offsets = np.arange(int(win_len.max()))
    members_ok = offsets[None, :] < win_len[:, None]  # [u, W]
    members = perm[np.minimum(lo[:, None] + offsets[None, :], num_p - 1)]  # [u, W]; pad masked

    for cam in np.unique(gallery_cams):
        cols = np.flatnonzero(gallery_cams == cam)  # [g_c]
        cam_scores = scores[:, cols]  # [p, g_c]
        head_vals, head_cols, head_len = _row_heads(cam_scores, k)  # [p, E]
        thr = _thresholds(head_vals, head_len, members, members_ok, k)  # [u]
        counts = _pivot_counts(head_vals, head_cols, members, members_ok, thr, len(cols))  # [u, g_c]
        weights = _temporal_weights(counts, gallery_times[cols], float(sigma))  # [u, g_c]
        weights += float(alpha)
        lifted[:, cols] = weights[inverse] * cam_scores
    return lifted.astype(out_dtype, copy=False)


def _row_heads(cam_scores, k):
    """Every row's entries that reach its own K-th largest value (ties included).

    The pivots of a window block are a subset of its rows' heads: the block's K-th largest
    value is at least each row's K-th largest.

    Returns
    -------
    head_vals : ndarray [p, E]
        Head values, padded with -inf.
    head_cols : ndarray [p, E]
        Their column indices within the camera, padded with 0.
    head_len : ndarray [p]
        Number of real entries per row.
    """
    num_p, g_c = cam_scores.shape
    kk = min(k, g_c)
    kth = -np.partition(-cam_scores, kk - 1, axis=1)[:, kk - 1]  # [p] K-th largest (or min)
    mask = cam_scores >= kth[:, None]  # [p, g_c]
    head_len = mask.sum(axis=1)
    width = int(head_len.max())
    rows, cols = np.nonzero(mask)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(head_len) - head_len, head_len)
    head_vals = np.full((num_p, width), -np.inf)
    head_cols = np.zeros((num_p, width), dtype=np.int64)
    head_vals[rows, slot] = cam_scores[rows, cols]
    head_cols[rows, slot] = cols
    return head_vals, head_cols, head_len


def _thresholds(head_vals, head_len, members, members_ok, k):
    """K-th largest value of every window's block (its smallest if the block has <= K), ``[u]``.

    The union of the window rows' heads holds the block's K largest values, so its K-th largest
    is the block's.
    """
    num_w = members.shape[0]
    width = head_vals.shape[1]
    thr = np.empty(num_w)
    step = max(1, _CHUNK_ELEMENTS // (members.shape[1] * width))
    for start in range(0, num_w, step):
        stop = min(start + step, num_w)
        m, ok = members[start:stop], members_ok[start:stop]
        union = np.where(ok[:, :, None], head_vals[m], -np.inf)  # [c, W, E]
        union = -np.sort(-union.reshape(stop - start, -1), axis=1)  # descending, padding last
        available = np.where(ok, head_len[m], 0).sum(axis=1)  # [c]
        # Fewer than K real entries only happens when they are the whole block: take its min.
        pick = np.where(available >= k, k - 1, available - 1)
        thr[start:stop] = union[np.arange(stop - start), pick]
    return thr


def _pivot_counts(head_vals, head_cols, members, members_ok, thr, g_c):
    """Multiplicity of every gallery column of the camera in each window's pivots, ``[u, g_c]``."""
    num_w, width = members.shape[0], head_vals.shape[1]
    counts = np.zeros((num_w, g_c))
    step = max(1, _CHUNK_ELEMENTS // (members.shape[1] * width))
    for start in range(0, num_w, step):
        stop = min(start + step, num_w)
        m, ok = members[start:stop], members_ok[start:stop]
        chosen = (head_vals[m] >= thr[start:stop, None, None]) & ok[:, :, None]  # [c, W, E]
        probe, w, e = np.nonzero(chosen)
        counts[start:stop] = np.bincount(
            probe * g_c + head_cols[m[probe, w], e], minlength=(stop - start) * g_c
        ).reshape(stop - start, g_c)
    return counts


def _temporal_weights(counts, times, sigma):
    """``w[q, g] = sum_col counts[q, col] * exp(-(t_g - t_col)^2 / sigma^2) / sum_col counts``.

    The camera's time kernel ``[g_c, g_c]`` is built in column blocks. A block is applied by
    gathering the kernel rows of each probe's few pivot columns when that is cheaper (the usual
    case: about K pivots), otherwise (ties making pivot sets wide) by a matrix product.
    """
    num_p, g_c = counts.shape
    total = counts.sum(axis=1)  # [p] >= 1: every window block has a maximum
    nonzero = counts > 0
    nnz = nonzero.sum(axis=1)
    width = int(nnz.max())
    # A gathered row costs about ten times a matrix-product row of the same length.
    gather = width * _GATHER_COST < g_c
    if gather:
        # Padded list of each probe's pivot columns with their multiplicity (0 = padding).
        rows, cols = np.nonzero(nonzero)
        slot = np.arange(rows.size) - np.repeat(np.cumsum(nnz) - nnz, nnz)
        pivot_cols = np.zeros((num_p, width), dtype=np.int64)
        mult = np.zeros((num_p, width))
        pivot_cols[rows, slot] = cols
        mult[rows, slot] = counts[rows, cols]
    out = np.empty((num_p, g_c))
    sigma2 = sigma * sigma
    col_step = max(1, _CHUNK_ELEMENTS // g_c)
    for c0 in range(0, g_c, col_step):
        c1 = min(c0 + col_step, g_c)
        dt = times[None, c0:c1] - times[:, None]  # [g_c (pivot), chunk]
        kernel = np.exp(-(dt * dt) / sigma2)
        if not gather:
            out[:, c0:c1] = counts @ kernel
            continue
        row_step = max(1, _CHUNK_ELEMENTS // (width * (c1 - c0)))
        for r0 in range(0, num_p, row_step):
            r1 = min(r0 + row_step, num_p)
            out[r0:r1, c0:c1] = np.einsum(
                "pw,pwg->pg", mult[r0:r1], kernel[pivot_cols[r0:r1]]
            )  # [c, chunk]
    out /= total[:, None]
    return out
