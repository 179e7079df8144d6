"""Temporal lifting (TLift; Liao & Shao, ECCV 2020) as specified in docs/arithmetic.md section 9.

For a probe ``q`` and a gallery camera ``c``, the probes of q's camera seen within ``tau``
seconds of q (q included) vote with their ``K`` best gallery matches in camera ``c`` (the pivots);
every gallery item of camera ``c`` is then lifted by its temporal closeness to those pivots:
``s'(q, g) = (mean_p exp(-(t_g - t_p)^2 / sigma^2) + alpha) * s(q, g)``.

The authors' formulation loops over probes and cameras and sorts each window's block. Here
the gallery is laid out by camera and time, and four compiled passes
(``_tlift_kernels``, numba, parallel over rows or windows) do the work:

1. Row tops: one read of the scores keeps every row's K largest values per camera.
2. Thresholds: a probe window's block holds at most K of its K largest entries per row, all
   within that row's top K, so the block's K-th largest value comes from its rows' lists.
   Windows depend on a probe only through their range of co-occurring probes, so each
   distinct window is handled once.
3. Pivots: the block entries reaching the threshold, from the lists (a row whose K-th value
   equals the threshold is rescanned for ties). Kernel rows are computed once per gallery
   item that is a pivot anywhere, over the items of its camera within ``_BAND_SIGMAS`` sigma
   of its time (terms left out are below 5e-19).
4. Lifting: per window, the pivots' kernel rows are summed into the camera weights, and each
   probe of the window is lifted, ``(w + alpha) * s``, in float64 and rounded once: the second
   and last read of the scores.

numba is imported on the first call only (the viewer imports this module at start-up).
"""
from __future__ import annotations

import threading

import numpy as np

from engine.postprocess.params import TLiftParams

__all__ = ["tlift", "warm_up"]

# One TLift at a time per process: numba's fallback thread pool (when no OpenMP runtime is
# found) must not be entered from two threads at once, and both calls would share the cores.
_LOCK = threading.Lock()

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
    tau: float = TLiftParams.tau,
    sigma: float = TLiftParams.sigma,
    k: int = TLiftParams.k,
    alpha: float = TLiftParams.alpha,
    out: np.ndarray | None = None,
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
    out : ndarray [p, g], optional
        Where to write the result (``scores`` itself to lift in place); the input's dtype.

    Returns
    -------
    ndarray [p, g]
        Lifted similarities ``(w + alpha) * s``, in the input's float dtype (float64 otherwise);
        weights are computed in float64 and each product rounded once.
    """
    scores, query_cams, query_times, gallery_cams, gallery_times, out_dtype = _validate(
        scores, query_cams, query_times, gallery_cams, gallery_times, tau, sigma, k, alpha
    )
    num_p, num_g = scores.shape
    if out is None:
        out = np.empty((num_p, num_g), dtype=out_dtype)
    elif out.shape != scores.shape or out.dtype != out_dtype:
        raise ValueError(f"out must be a {out_dtype} array of shape {scores.shape}")
    if num_p == 0 or num_g == 0:
        return out
    with _LOCK:
        return _tlift(scores, query_cams, query_times, gallery_cams, gallery_times,
                      float(tau), float(sigma), int(k), float(alpha), out)


def warm_up() -> None:
    """Compile (first use on a machine) or load TLift's kernels for float32 and float64 scores,
    so that the first real call does not wait for them."""
    rng = np.random.default_rng(0)
    cams, times = np.arange(4) % 2, np.arange(4) * 10.0
    for dtype in (np.float32, np.float64):
        tlift(rng.random((4, 4)).astype(dtype), cams, times, cams, times)


def _tlift(scores, query_cams, query_times, gallery_cams, gallery_times, tau, sigma, k, alpha, out):
    from engine.postprocess import _tlift_kernels as kernels

    num_p, num_g = scores.shape
    scores = np.ascontiguousarray(scores)
    # The gallery by camera, then time.
    cams, cam_of = np.unique(gallery_cams, return_inverse=True)
    cam_of = cam_of.reshape(-1)
    order = np.lexsort((gallery_times, cam_of))
    start = np.concatenate([[0], np.cumsum(np.bincount(cam_of, minlength=len(cams)))])
    times = gallery_times[order]
    position = np.empty(num_g, np.int64)
    position[order] = np.arange(num_g)

    values, positions, kth, bad = kernels.row_tops(scores, position, cam_of, np.diff(start), k)
    if bad.any():
        raise ValueError("scores contain NaN or inf; TLift needs finite similarities")
    # Distinct windows: the block rows of window w are perm[lo[w]:hi[w]]; it lifts the
    # probes lifted[lift_ptr[w]:lift_ptr[w + 1]] (those whose own window it is).
    perm, lo, hi = _windows(query_cams, query_times, tau)
    _, first, inverse = np.unique(lo * (num_p + 1) + hi, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    lo, hi = lo[first], hi[first]
    lifted = np.argsort(inverse, kind="stable")
    lift_ptr = np.searchsorted(inverse[lifted], np.arange(len(first) + 1))

    thr = kernels.thresholds(values, perm, lo, hi, k)
    ptr, pivot_pos = kernels.pivots(scores, order, start, values, positions, kth, perm, lo, hi, thr)
    band_lo, band_hi = _band(times, start, _BAND_SIGMAS * sigma)
    items = np.unique(pivot_pos)
    slot = np.zeros(num_g, np.int64)
    slot[items] = np.arange(len(items))
    offsets, table = kernels.kernel_rows(items, times, band_lo, band_hi, sigma * sigma)
    kernels.lift(scores, out, order, start, ptr, pivot_pos, slot, band_lo, band_hi, offsets, table,
                 lifted, lift_ptr, alpha)
    return out


def _band(times: np.ndarray, start: np.ndarray, cut: float):
    """For each layout position, the positions of its camera within ``cut`` seconds, ``[lo, hi)``
    (times are sorted within each camera)."""
    lo = np.empty(len(times), np.int64)
    hi = np.empty(len(times), np.int64)
    for c in range(len(start) - 1):
        a, b = int(start[c]), int(start[c + 1])
        t = times[a:b]
        lo[a:b] = a + np.searchsorted(t, t - cut, side="left")
        hi[a:b] = a + np.searchsorted(t, t + cut, side="right")
    return lo, hi
