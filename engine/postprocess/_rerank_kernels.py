"""Compiled step of k-reciprocal re-ranking (engine.postprocess.rerank): the Jaccard term.

Loaded on first use (numba); compiled code is cached on disk beside the module
(engine.postprocess._cached_kernels).
"""
from __future__ import annotations

import numpy as np
from numba import prange

from engine.postprocess._cached_kernels import cached_njit


@cached_njit(parallel=True)
def jaccard_rows(start, stop, ptr, cols, vals, inv_ptr, inv_rows, inv_vals, q_g, col_max,
                 keep, lam, out):
    """Rows ``start:stop`` of the re-ranked distance into ``out [stop - start, g]`` (float32):
    ``float32(1 - o / (2 - o)) * keep + (q_g / col_max) * lam`` with ``o = sum_k min(V_ik, V_jk)``
    summed in float64 over query entry ``(i, k)``, then the gallery entries of column ``k``
    (the inverted index): the order, and so the rounding, of the NumPy formulation."""
    num_g = q_g.shape[1]
    for r in prange(stop - start):
        i = start + r
        overlap = np.zeros(num_g)
        for e in range(ptr[i], ptr[i + 1]):
            k = cols[e]
            v = vals[e]
            for f in range(inv_ptr[k], inv_ptr[k + 1]):
                w = inv_vals[f]
                overlap[inv_rows[f]] += np.float64(v if v < w else w)
        scale = col_max[i]
        for j in range(num_g):
            o = overlap[j]
            jac = np.float32(1.0 - o / (2.0 - o))
            out[r, j] = jac * keep + (q_g[i, j] / scale) * lam


@cached_njit()
def counting_order(keys, n):
    """Stable order of ``keys`` (ints in ``[0, n)``) by key: a counting sort."""
    start = np.zeros(n + 1, np.int64)
    for k in keys:
        start[k + 1] += 1
    for i in range(n):
        start[i + 1] += start[i]
    order = np.empty(keys.shape[0], np.int64)
    for p in range(keys.shape[0]):
        k = keys[p]
        order[start[k]] = p
        start[k] += 1
    return order
