"""k-reciprocal re-ranking on the shortlist graph of two-stage retrieval (docs/arithmetic.md section 8).

Exhaustive re-ranking reads the q-q and g-g distance blocks in full. With two-stage retrieval
(:mod:`engine.shortlist`) each query and gallery item has only its ``K`` nearest neighbours
scored; the q-g block is dense (non-candidates filled beyond every candidate). Re-ranking only
ever looks at the first ``max(k1 + 1, k2)`` neighbours of each row and at distances between
members of those lists, so it runs on the graph: a pair that neither item shortlisted counts
as infinitely far in the q-q and g-g parts. The arithmetic is :func:`engine.postprocess.rerank.
re_rank_blocks`, fed by :class:`_ShortlistBlocks` instead of dense blocks; column maxima are
taken over the known distances. With every pair in the lists (``K = N``) the result is the
exhaustive re-ranking's, bit for bit.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.jobs import CancelFn, ProgressFn
from engine.postprocess.params import RerankParams
from engine.postprocess.rerank import check_finite, check_params, re_rank_blocks

__all__ = ["Graph", "re_rank_shortlist"]


class Graph(NamedTuple):
    """A self block (q-q or g-g) of two-stage retrieval: each item's ``K`` shortlisted items
    (itself included) and their distances, both ``[n, K]``."""

    neighbours: np.ndarray  # int32
    distances: np.ndarray   # float32


class _SymmetricGraph:
    """A symmetric sparse distance matrix ``[n, n]`` from neighbour lists, sorted by (row, col)."""

    def __init__(self, neighbours: np.ndarray, dist: np.ndarray, n: int):
        r = np.repeat(np.arange(n, dtype=np.int64), neighbours.shape[1])
        c = neighbours.reshape(-1).astype(np.int64)
        v = np.asarray(dist, np.float32).reshape(-1)
        key = np.concatenate([r * n + c, c * n + r])
        self.key, first = np.unique(key, return_index=True)
        self.vals = np.concatenate([v, v])[first]
        self.n = n
        self.ptr = np.searchsorted(self.key, np.arange(n + 1, dtype=np.int64) * n)

    def row_max(self) -> np.ndarray:
        out = np.full(self.n, -np.inf, np.float32)
        nonempty = np.flatnonzero(np.diff(self.ptr) > 0)
        if nonempty.size:
            out[nonempty] = np.maximum.reduceat(self.vals, self.ptr[nonempty])
        return out

    def scatter_rows(self, start: int, stop: int, out: np.ndarray) -> None:
        """Write rows ``start:stop`` into ``out [stop - start, n]`` (unknown entries untouched)."""
        a, b = self.ptr[start], self.ptr[stop]
        key = self.key[a:b]
        out[key // self.n - start, key % self.n] = self.vals[a:b]

    def lookup(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        key = rows.astype(np.int64) * self.n + cols
        pos = np.minimum(np.searchsorted(self.key, key), max(len(self.key) - 1, 0))
        found = self.key[pos] == key if len(self.key) else np.zeros(len(key), bool)
        return np.where(found, self.vals[pos] if len(self.key) else 0.0, np.inf).astype(np.float32)


class _ShortlistBlocks:
    """Rows of ``D~`` (as :class:`engine.postprocess.rerank._Blocks`) from dense q-g + graphs."""

    def __init__(self, q_g: np.ndarray, q_q: _SymmetricGraph, g_g: _SymmetricGraph):
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_q = q_g.shape[0]
        self.num_all = q_g.shape[0] + q_g.shape[1]
        col_max_q = np.maximum(q_q.row_max(), q_g.max(axis=1, initial=-np.inf))
        col_max_g = np.maximum(q_g.max(axis=0, initial=-np.inf), g_g.row_max())
        self.col_max = np.concatenate([col_max_q, col_max_g]).astype(np.float32)

    def rows(self, start: int, stop: int) -> np.ndarray:
        nq = self.num_q
        block = np.full((stop - start, self.num_all), np.inf, np.float32)
        if start < nq:
            a, b = start, min(stop, nq)
            self.q_q.scatter_rows(a, b, block[: b - a, :nq])
            block[: b - a, nq:] = self.q_g[a:b]
        if stop > nq:
            a, b = max(start, nq) - nq, stop - nq
            part = block[max(start, nq) - start:]
            part[:, :nq] = self.q_g[:, a:b].T
            self.g_g.scatter_rows(a, b, part[:, nq:])
        return block / self.col_max[start:stop, None]

    def gather(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        nq = self.num_q
        raw = np.empty(rows.shape, dtype=np.float32)
        rq, cq = rows < nq, cols < nq
        sel = rq & cq
        raw[sel] = self.q_q.lookup(cols[sel], rows[sel])
        sel = rq & ~cq
        raw[sel] = self.q_g[rows[sel], cols[sel] - nq]
        sel = ~rq & cq
        raw[sel] = self.q_g[cols[sel], rows[sel] - nq]
        sel = ~rq & ~cq
        raw[sel] = self.g_g.lookup(cols[sel] - nq, rows[sel] - nq)
        return raw / self.col_max[rows]


def re_rank_shortlist(q_g, qq_neighbours, qq_dist, gg_neighbours, gg_dist,
                      k1: int = RerankParams.k1, k2: int = RerankParams.k2,
                      lambda_value: float = RerankParams.lambda_value,
                      progress: ProgressFn | None = None,
                      cancel: CancelFn | None = None) -> np.ndarray:
    """k-reciprocal re-ranking with q-q and g-g given as neighbour lists (two-stage retrieval).

    Parameters
    ----------
    q_g : array_like [q, g]
        Dense query-gallery distances (non-candidates filled beyond every candidate).
    qq_neighbours, qq_dist : array_like [q, Kq]
        Each query's shortlisted queries (itself included) and their distances.
    gg_neighbours, gg_dist : array_like [g, Kg]
        The same for the gallery. A pair's distance must not depend on its direction.
    k1, k2, lambda_value, progress, cancel
        As :func:`engine.postprocess.re_rank`.

    Returns
    -------
    ndarray, float32 [q, g]
    """
    q_g = np.asarray(q_g, np.float32)
    num_q, num_g = q_g.shape
    graphs = []
    for name, nb, d, n in (("qq", qq_neighbours, qq_dist, num_q), ("gg", gg_neighbours, gg_dist, num_g)):
        nb, d = np.asarray(nb), np.asarray(d, np.float32)
        if nb.ndim != 2 or nb.shape != d.shape or len(nb) != n:
            raise ValueError(f"{name} neighbours and distances must both be [{n}, K]; "
                             f"got {nb.shape} and {d.shape}")
        if nb.size and (nb.min() < 0 or nb.max() >= n):
            raise ValueError(f"{name} neighbour indices must lie in [0, {n})")
        graphs.append((nb, d))
    if num_q == 0 or num_g == 0:
        raise ValueError(f"q_g is empty (shape {q_g.shape}): need at least one query and one gallery item")
    check_params(k1, k2, lambda_value)
    (qq_nb, qq_d), (gg_nb, gg_d) = graphs
    blocks = _ShortlistBlocks(q_g, _SymmetricGraph(qq_nb, qq_d, num_q), _SymmetricGraph(gg_nb, gg_d, num_g))
    check_finite(blocks.col_max, (("qq", qq_d), ("gg", gg_d), ("q_g", q_g)))
    return re_rank_blocks(blocks, int(k1), int(k2), float(lambda_value), progress=progress,
                          cancel=cancel)
