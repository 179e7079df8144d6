"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) as specified in docs/arithmetic.md section 8.

The arithmetic is the reference formulation's; the data layout is not. Instead of dense N x N
matrices for the ranks, the encoding ``V`` and its query expansion, this module keeps

- ``D~`` (the column-normalised, transposed distance matrix) implicitly: rows are rebuilt from
  the three input blocks when needed, chunk by chunk;
- only the first ``max(k1 + 1, k2)`` columns of the rank matrix, ``[N, k1 + 1]`` int32;
- ``V`` as a sparse row-compressed matrix (a few hundred entries per row at the defaults).

The k-reciprocal sets and their expansion are computed for all rows at once with boolean
arrays over the short rank lists, and the Jaccard term with an inverted (column) index of ``V``.
Beyond the caller's inputs, memory is the ``[q, g]`` float32 output plus temporaries bounded by
the chunk sizes below: about 1.2 dense N x N float32 arrays at N = 3000, a shrinking share for
larger N (``benchmarks/bench_rerank.py`` measures it).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from engine.jobs import CancelFn, ProgressFn, check_cancel, report
from engine.postprocess.params import RerankParams

__all__ = ["Encoding", "Neighbours", "check_finite", "check_params", "encode_blocks", "encoding", "expand",
           "jaccard_rows", "re_rank", "re_rank_blocks", "top_ranks"]

# Elements (rows x N) of the distance/argsort temporaries per chunk: ~ 4 MB float32 + 8 MB int64.
_ROW_CHUNK_ELEMENTS = 1_000_000
# Entries per block for the block minima that bound each row's head in _top_ranks (at most),
# and at least this many blocks per head entry, so the candidates stay a small share of a row.
_BLOCK = 32
_BLOCKS_PER_HEAD = 16


class _Blocks:
    """The rows of ``D~ = (D / colmax(D))^T`` rebuilt on demand from the q-g, q-q, g-g blocks.

    ``D = [[q_q, q_g], [q_g^T, g_g]]``, so ``D^T = [[q_q^T, q_g], [q_g^T, g_g^T]]`` and row ``i``
    of ``D~`` is row ``i`` of ``D^T`` divided by the maximum of that row (= column ``i`` of D).
    """

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, col_max: np.ndarray | None = None):
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_q = q_g.shape[0]
        self.num_all = q_g.shape[0] + q_g.shape[1]
        if col_max is not None:  # known from an earlier pass over the same blocks
            self.col_max = col_max
            return
        col_max_q = np.maximum(q_q.max(axis=0, initial=-np.inf), q_g.max(axis=1, initial=-np.inf))
        col_max_g = np.maximum(q_g.max(axis=0, initial=-np.inf), g_g.max(axis=0, initial=-np.inf))
        self.col_max = np.concatenate([col_max_q, col_max_g]).astype(np.float32)  # [N]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``D~``, float32 ``[stop - start, N]``."""
        nq = self.num_q
        out = np.empty((stop - start, self.num_all), np.float32)
        if start < nq:
            a, b = start, min(stop, nq)
            out[:b - a, :nq] = self.q_q[:, a:b].T
            out[:b - a, nq:] = self.q_g[a:b]
        if stop > nq:
            a, b = max(start, nq) - nq, stop - nq
            rows = out[max(start, nq) - start:]
            rows[:, :nq] = self.q_g[:, a:b].T
            rows[:, nq:] = self.g_g[:, a:b].T
        # Same float32 division as the reference, hence the same ties for argsort.
        out /= self.col_max[start:stop, None]
        return out

    def gather(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Entries ``D~[rows, cols]`` (float32), for 1-D index arrays of equal length."""
        nq = self.num_q
        raw = np.empty(rows.shape, dtype=np.float32)
        rq, cq = rows < nq, cols < nq
        # D^T[i, j] = D[j, i]: pick the input block that holds D[j, i].
        for sel, block, r_off, c_off, transpose in (
            (rq & cq, self.q_q, 0, 0, True),
            (rq & ~cq, self.q_g, 0, nq, False),
            (~rq & cq, self.q_g, nq, 0, True),
            (~rq & ~cq, self.g_g, nq, nq, True),
        ):
            r, c = rows[sel] - r_off, cols[sel] - c_off
            raw[sel] = block[c, r] if transpose else block[r, c]
        return raw / self.col_max[rows]


def _is_number(value) -> bool:
    try:
        return not isinstance(value, bool) and np.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def check_params(k1, k2, lambda_value) -> None:
    """Refuse re-ranking parameters outside their range (ValueError naming the parameter)."""
    for name, value in (("k1", k1), ("k2", k2)):
        if not _is_number(value) or int(value) != value or int(value) < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not _is_number(lambda_value) or not 0.0 <= float(lambda_value) <= 1.0:
        raise ValueError(f"lambda_value must be a number in [0, 1], got {lambda_value!r}")


def check_finite(col_max: np.ndarray, named_arrays) -> None:
    """Refuse non-finite distances: ``col_max``, the column maxima re-ranking divides by,
    shows a NaN or +inf anywhere in its column; each array's minimum shows a -inf (and a NaN),
    without an N x N mask. ``named_arrays``: ``(name, array)`` pairs, the one to blame first."""
    bad = [name for name, a in named_arrays if a.size and not np.isfinite(a.min())]
    if not np.isfinite(col_max).all() or bad:
        name = bad[0] if bad else next(name for name, a in named_arrays if not np.isfinite(a).all())
        raise ValueError(f"{name} contains NaN or inf; re-ranking needs finite distances")


def _validate(q_g, q_q, g_g, k1, k2, lambda_value):
    arrays = []
    for name, value in (("q_g", q_g), ("q_q", q_q), ("g_g", g_g)):
        array = np.asarray(value, dtype=np.float32)
        if array.ndim != 2:
            raise ValueError(f"{name} must be a 2-D distance matrix, got shape {array.shape}")
        arrays.append(np.ascontiguousarray(array))
    q_g, q_q, g_g = arrays
    num_q, num_g = q_g.shape
    if q_q.shape != (num_q, num_q):
        raise ValueError(f"q_q must have shape ({num_q}, {num_q}) to match q_g {q_g.shape}, got {q_q.shape}")
    if g_g.shape != (num_g, num_g):
        raise ValueError(f"g_g must have shape ({num_g}, {num_g}) to match q_g {q_g.shape}, got {g_g.shape}")
    if num_q == 0 or num_g == 0:
        raise ValueError(f"q_g is empty (shape {q_g.shape}): need at least one query and one gallery item")
    check_params(k1, k2, lambda_value)
    return q_g, q_q, g_g


def _block_minima(part: np.ndarray, size: int) -> np.ndarray:
    """Minimum of every ``size`` consecutive rows of ``part`` ``[r, c]`` (the last may be short)."""
    r, c = part.shape
    full = r // size
    minima = part[:full * size].reshape(full, size, c).min(axis=1)  # [full, c]
    if r % size:
        minima = np.concatenate([minima, part[full * size:].min(axis=0, keepdims=True)])
    return minima


def _top_ranks(blocks: _Blocks, width: int, progress, cancel, done: int, total: int) -> np.ndarray:
    """First ``width`` columns of ``argsort(D~, axis=1)``, int32 ``[N, width]``.

    Row ``i`` of ``D~`` is column ``i`` of ``D`` (divided by its maximum), so chunks of columns
    are read straight from the input blocks, never transposed. A row's ``width`` smallest
    entries lie in the blocks (up to ``_BLOCK`` consecutive entries) whose minimum reaches the
    ``width``-th smallest block minimum: at least ``width`` entries do, and every entry not above
    them sits in such a block. So each row is read once for its block minima and the head is
    selected among those few blocks (division by the row's scale is monotone, so only the
    candidates are divided). The sorted head is the full argsort's whenever it holds no tied
    values and no entry outside it equals its largest: then the order is unique. Rows with such
    ties are argsorted in full with NumPy's default sort, as the reference, so ties break the
    same.
    """
    if not isinstance(blocks, _Blocks):  # sources without dense blocks to read columns from
        return _top_ranks_by_rows(blocks, width, progress, cancel, done, total)
    n, nq = blocks.num_all, blocks.num_q
    ranks = np.empty((n, width), dtype=np.int32)
    size = max(1, min(_BLOCK, n // (_BLOCKS_PER_HEAD * width)))
    # Rows of D covered by each block: the query part, then the gallery part, each cut in size.
    starts = np.concatenate([np.arange(0, nq, size), nq + np.arange(0, n - nq, size)])
    ends = np.minimum(np.concatenate([starts[1:], [n]]), np.where(starts < nq, nq, n))
    num_blocks = len(starts)
    offsets = np.arange(size)
    # Wide chunks (each input row is read in segments of ``step`` columns), with the
    # candidates ([step, about width * size]) bounded too.
    step = max(1, min(8 * _ROW_CHUNK_ELEMENTS // n, _ROW_CHUNK_ELEMENTS // (4 * width * size)))
    # Chunks never straddle the query/gallery boundary, so each reads two input blocks.
    bounds = [*range(0, nq, step), *range(nq, n, step), n]
    for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
        check_cancel(cancel)
        c = stop - start
        if start < nq:  # D[:, i] = [q_q[:, i]; q_g[i, :]]
            top, bottom = blocks.q_q[:, start:stop], blocks.q_g[start:stop].T
        else:  # D[:, i] = [q_g[:, i]; g_g[:, i]]
            top, bottom = blocks.q_g[:, start - nq:stop - nq], blocks.g_g[:, start - nq:stop - nq]
        scale = blocks.col_max[start:stop, None]  # [c, 1]
        if width >= n:
            ranks[start:stop] = np.argsort(blocks.rows(start, stop), axis=1)
            report(progress, done + stop, total)
            continue
        block_min = np.concatenate([_block_minima(top, size), _block_minima(bottom, size)]).T / scale
        bound = np.partition(block_min, width - 1, axis=1)[:, width - 1] if num_blocks > width \
            else block_min.max(axis=1)
        chosen = block_min <= bound[:, None]  # [c, nb], >= width per row
        n_chosen = chosen.sum(axis=1)
        r_idx, b_idx = np.nonzero(chosen)
        slot = np.arange(r_idx.size) - np.repeat(np.cumsum(n_chosen) - n_chosen, n_chosen)
        which = np.zeros((c, int(n_chosen.max())), dtype=np.int64)
        which[r_idx, slot] = b_idx
        entries = starts[which][:, :, None] + offsets  # [c, m, B] rows of D
        valid = (entries < ends[which][:, :, None]) & (np.arange(which.shape[1])[None, :, None]
                                                       < n_chosen[:, None, None])
        entries = np.where(valid, entries, 0).reshape(c, -1)  # [c, m * B]
        col = np.broadcast_to(np.arange(c)[:, None], entries.shape)
        in_top = entries < nq
        raw = np.where(in_top, top[np.minimum(entries, nq - 1), col],
                       bottom[np.maximum(entries - nq, 0), col])
        cand = raw / scale  # same float32 division as the full rows
        cand[~valid.reshape(c, -1)] = np.inf
        head = np.argpartition(cand, width - 1, axis=1)[:, :width]  # [c, width] unordered
        head_vals = np.take_along_axis(cand, head, axis=1)
        order = np.argsort(head_vals, axis=1, kind="stable")
        head = np.take_along_axis(np.take_along_axis(entries, head, axis=1), order, axis=1)
        head_vals = np.take_along_axis(head_vals, order, axis=1)
        tied = (head_vals[:, 1:] == head_vals[:, :-1]).any(axis=1)
        tied |= (cand <= head_vals[:, -1:]).sum(axis=1) != width
        for r in np.flatnonzero(tied):
            head[r] = np.argsort(blocks.rows(start + r, start + r + 1)[0])[:width]
        ranks[start:stop] = head
        report(progress, done + stop, total)
    return ranks


def _top_ranks_by_rows(blocks, width: int, progress, cancel, done: int, total: int) -> np.ndarray:
    """:func:`_top_ranks` from whole rows of ``D~`` (``blocks.rows``), for any distance source.

    A partial selection finds each row's ``width`` smallest entries, sorted afterwards; rows
    with ties in or at the edge of that head are argsorted in full, as the reference.
    """
    n = blocks.num_all
    ranks = np.empty((n, width), dtype=np.int32)
    step = max(1, _ROW_CHUNK_ELEMENTS // n)
    for start in range(0, n, step):
        check_cancel(cancel)
        stop = min(start + step, n)
        dist = blocks.rows(start, stop)  # [c, N]
        if width >= n:
            ranks[start:stop] = np.argsort(dist, axis=1)
        else:
            head = np.argpartition(dist, width - 1, axis=1)[:, :width]  # [c, width] unordered
            head_vals = np.take_along_axis(dist, head, axis=1)
            order = np.argsort(head_vals, axis=1, kind="stable")
            head = np.take_along_axis(head, order, axis=1)
            head_vals = np.take_along_axis(head_vals, order, axis=1)
            tied = (head_vals[:, 1:] == head_vals[:, :-1]).any(axis=1)
            tied |= (dist <= head_vals[:, -1:]).sum(axis=1) != width
            if tied.any():
                head[tied] = np.argsort(dist[tied], axis=1)[:, :width]
            ranks[start:stop] = head
        report(progress, done + stop, total)
    return ranks


def _reciprocal_mask(forward: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """``mask[i, a]``: whether ``i`` is among the first ``k + 1`` neighbours of ``forward[i, a]``.

    ``forward`` is ``ranks[:, :k + 1]`` (``[N, k + 1]``); the result is the k-reciprocal set of
    each row as a mask over its forward list.
    """
    n, width = forward.shape
    mask = np.empty((n, width), dtype=bool)
    step = max(1, _ROW_CHUNK_ELEMENTS // (width * width))
    for start in range(0, n, step):
        stop = min(start + step, n)
        backward = ranks[forward[start:stop], :width]  # [c, k+1, k+1]
        own = np.arange(start, stop, dtype=np.int32)[:, None, None]
        mask[start:stop] = (backward == own).any(axis=2)
    return mask


def _expansion_sets(ranks: np.ndarray, k1: int) -> tuple[np.ndarray, np.ndarray]:
    """Expanded k-reciprocal sets of every row as a sorted COO list ``(rows, cols)``.

    For every ``c`` in R(i), R'(c) (computed with ``round(k1 / 2)``) is added when more than
    two thirds of it lies in R(i); the union is deduplicated.
    """
    n = ranks.shape[0]
    # Banker's rounding, as np.around in the reference; slicing clips the lists to N items.
    k_half = int(np.around(k1 / 2.0))
    fwd = ranks[:, : k1 + 1]  # [N, k1+1]
    fwd_half = ranks[:, : k_half + 1]  # [N, kh+1]
    recip = _reciprocal_mask(fwd, ranks)  # [N, k1+1]
    recip_half = _reciprocal_mask(fwd_half, ranks)  # [N, kh+1]
    half_size = recip_half.sum(axis=1)  # [N]

    rows_out, cols_out = [], []
    step = max(1, min(_ROW_CHUNK_ELEMENTS // n, _ROW_CHUNK_ELEMENTS // fwd.shape[1] // fwd_half.shape[1]))
    for start in range(0, n, step):
        stop = min(start + step, n)
        f = fwd[start:stop]  # [c, k1+1]
        r_mask = recip[start:stop]  # [c, k1+1]
        cand_lists = fwd_half[f]  # [c, k1+1, kh+1]: R'(candidate) before masking
        cand_masks = recip_half[f]  # [c, k1+1, kh+1]
        # member[i, a, b]: element b of R'(f[i, a]) is in R(i), looked up in a row bitmap of R(i).
        local = np.arange(stop - start)
        in_r = np.zeros((stop - start, n), dtype=bool)  # [c, N]
        r_rows, r_slots = np.nonzero(r_mask)
        in_r[r_rows, f[r_rows, r_slots]] = True
        member = in_r[local[:, None, None], cand_lists] & cand_masks  # [c, k1+1, kh+1]
        overlap = member.sum(axis=2)  # [c, k1+1]
        accept = r_mask & (overlap > (2.0 / 3.0) * half_size[f])  # [c, k1+1]
        # Candidate entries: R(i) itself plus every accepted R'(c); -1 marks "absent".
        own = np.where(r_mask, f, -1)  # [c, k1+1]
        added = np.where(accept[..., None] & cand_masks, cand_lists, -1)  # [c, k1+1, kh+1]
        entries = np.concatenate([own, added.reshape(len(f), -1)], axis=1)
        entries.sort(axis=1)
        fresh = entries >= 0
        fresh[:, 1:] &= entries[:, 1:] != entries[:, :-1]
        r, col = np.nonzero(fresh)
        rows_out.append((r + start).astype(np.int64))
        cols_out.append(entries[r, col].astype(np.int64))
    return np.concatenate(rows_out), np.concatenate(cols_out)


def _group_by(keys: np.ndarray, n: int) -> np.ndarray:
    """A permutation listing the positions of ``keys`` (ints in [0, n)) grouped by key, in
    increasing position within a group: a counting sort, linear in ``len(keys) + n``."""
    from engine.postprocess import _rerank_kernels

    return _rerank_kernels.counting_order(np.ascontiguousarray(keys, dtype=np.int64), n)


def _row_pointers(rows: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])


def _encode(blocks: _Blocks, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Values of V on its COO support: ``exp(-D~)`` normalised to sum 1 over each row."""
    weight = np.exp(-blocks.gather(rows, cols))  # float32
    row_sum = np.bincount(rows, weights=weight, minlength=blocks.num_all)
    return (weight / row_sum[rows]).astype(np.float32)


def _query_expansion(ptr, cols, vals, neighbours: np.ndarray):
    """Sparse ``V_qe[i] = mean_t V[neighbours[i, t]]`` (CSR in, CSR out)."""
    n, k2 = neighbours.shape
    lengths = np.diff(ptr)
    src = neighbours.reshape(-1)  # [N * k2], grouped by target row
    counts = lengths[src]
    target = np.repeat(np.repeat(np.arange(n), k2), counts)
    # Positions of every source row's entries, concatenated in target order.
    offsets = np.repeat(ptr[src] - np.cumsum(np.r_[0, counts[:-1]]), counts)
    pos = np.arange(counts.sum()) + offsets
    key = target * n + cols[pos]
    order = np.argsort(key)  # duplicates are summed, their order does not matter
    key = key[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    summed = np.add.reduceat(vals[pos][order].astype(np.float64), first) if key.size else key
    new_rows = key[first] // n
    new_cols = key[first] % n
    new_vals = (summed / k2).astype(np.float32)
    return _row_pointers(new_rows, n), new_cols, new_vals


def re_rank(
    q_g,
    q_q,
    g_g,
    k1: int = RerankParams.k1,
    k2: int = RerankParams.k2,
    lambda_value: float = RerankParams.lambda_value,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
    neighbours: Neighbours | None = None,
) -> np.ndarray:
    """k-reciprocal re-ranking of query-gallery distances (docs/arithmetic.md section 8).

    Parameters
    ----------
    q_g, q_q, g_g : array_like [q, g], [q, q], [g, g]
        Distances (smaller = closer), used as given: square Euclidean distances first for
        Zhong's / torchreid's convention. Computed in float32. Each column of the full
        ``[[q_q, q_g], [q_g^T, g_g]]`` matrix is divided by its maximum, so it must be > 0.
    k1 : int
        Size of the k-reciprocal neighbourhoods (>= 1); the expansion uses ``round(k1 / 2)``.
    k2 : int
        Query expansion size (>= 1; 1 disables it).
    lambda_value : float
        Weight of the original distance in the result, in [0, 1].
    progress : callable(done, total), optional
        Progress callback (units of work: rows of the distance matrix, then queries).
    cancel : callable() -> bool, optional
        Polled between chunks; raises :class:`engine.jobs.Cancelled` when it returns True.
    neighbours : Neighbours, optional
        :func:`top_ranks` of these very blocks with width ``>= max(k1 + 1, k2)`` (or N),
        computed earlier: the nearest-neighbour lists, the costliest step, and the checks of
        the blocks are then not repeated when only the parameters change.

    Returns
    -------
    ndarray, float32 [q, g]
        ``(1 - lambda) * d_Jaccard + lambda * D~`` for query rows and gallery columns.

    Raises
    ------
    ValueError
        On bad parameters, mismatched shapes, non-finite distances or a column whose maximum
        is not positive.
    """
    q_g, q_q, g_g = _validate(q_g, q_q, g_g, k1, k2, lambda_value)
    if neighbours is None:
        blocks = _checked_blocks(q_g, q_q, g_g)
        ranks = None
    else:  # checked when the neighbours were computed from these blocks
        blocks = _Blocks(q_g, q_q, g_g, col_max=neighbours.col_max)
        ranks = neighbours.ranks
    return re_rank_blocks(blocks, int(k1), int(k2), float(lambda_value), progress=progress,
                          cancel=cancel, ranks=ranks,
                          expansions=None if neighbours is None else neighbours.expansions)


class Neighbours(NamedTuple):
    """What re-ranking needs from the blocks alone, computed once by :func:`top_ranks`."""

    ranks: np.ndarray    # [N, w] int32: first w columns of argsort(D~, axis=1)
    col_max: np.ndarray  # [N] float32: the maxima D is normalised by
    # Expanded k-reciprocal sets (rows, cols) by k1, filled as re-ranking needs them.
    expansions: dict


def top_ranks(q_g, q_q, g_g, width: int, *, progress: ProgressFn | None = None,
              cancel: CancelFn | None = None) -> Neighbours:
    """Every item's ``width`` nearest neighbours in the column-normalised matrix re-ranking
    works on (ties broken as NumPy's default argsort), and the column maxima. Depends on the
    blocks only, so it can be computed once and passed to :func:`re_rank` on the same blocks
    for any ``k1 < width``, ``k2 <= width``. The blocks are checked here (finite, positive
    column maxima)."""
    q_g, q_q, g_g = _validate(q_g, q_q, g_g, 1, 1, 0.0)
    blocks = _checked_blocks(q_g, q_q, g_g)
    n = blocks.num_all
    return Neighbours(_top_ranks(blocks, min(int(width), n), progress, cancel, 0, n), blocks.col_max, {})


def expand(neighbours: Neighbours, k1: int) -> None:
    """Compute the expanded k-reciprocal sets for ``k1`` into ``neighbours`` ahead of
    :func:`re_rank` (which otherwise does it on first use)."""
    _expanded(neighbours.ranks, int(k1), neighbours.expansions)


def _expanded(ranks: np.ndarray, k1: int, expansions: dict) -> tuple[np.ndarray, np.ndarray]:
    if k1 not in expansions:
        expansions[k1] = _expansion_sets(ranks, k1)
    return expansions[k1]


def _checked_blocks(q_g, q_q, g_g) -> _Blocks:
    blocks = _Blocks(q_g, q_q, g_g)
    check_finite(blocks.col_max, (("q_g", q_g), ("q_q", q_q), ("g_g", g_g)))
    return blocks


class Encoding(NamedTuple):
    """Every item's k-reciprocal encoding ``V`` (after query expansion, docs/arithmetic.md 8.5
    and 8.6) and its inverted index over the gallery rows: what the Jaccard term of any row
    needs (:func:`jaccard_rows`), so rows other than the queries' can be re-ranked too."""

    num_q: int
    ptr: np.ndarray       # [N + 1] CSR row pointers of V
    cols: np.ndarray      # CSR columns
    vals: np.ndarray      # CSR values (float32)
    inv_ptr: np.ndarray   # [N + 1] gallery entries grouped by column
    inv_rows: np.ndarray  # gallery index (0-based) of each grouped entry
    inv_vals: np.ndarray
    col_max: np.ndarray   # [N] float32: the maxima D is normalised by


def _checked_ranks(blocks, k1: int, k2: int, ranks, progress, cancel, total: int) -> np.ndarray:
    """The rank head of width ``max(k1 + 1, k2)``: computed, or cut from ``ranks``."""
    n = blocks.num_all
    width = min(n, max(k1 + 1, k2))
    if ranks is None:
        return _top_ranks(blocks, width, progress, cancel, 0, total)  # [N, width]
    if ranks.shape[0] != n or ranks.shape[1] < width:
        raise ValueError(f"ranks must have shape ({n}, >= {width}) for k1={k1}, k2={k2}; got {ranks.shape}")
    return ranks[:, :width]


def encode_blocks(blocks, k1: int, k2: int, *, progress: ProgressFn | None = None,
                  cancel: CancelFn | None = None, ranks: np.ndarray | None = None,
                  expansions: dict | None = None, total: int | None = None) -> Encoding:
    """The :class:`Encoding` of a distance source with the interface of :class:`_Blocks`
    (see :func:`re_rank_blocks`): sections 8.2 to 8.6 for all ``N`` items."""
    num_q, n = blocks.num_q, blocks.num_all
    if not (blocks.col_max > 0).all():
        bad = int(np.flatnonzero(~(blocks.col_max > 0))[0])
        raise ValueError(
            f"re-ranking divides every column of the distance matrix by its maximum; column {bad} "
            "has a maximum <= 0 (distances must be non-negative and not all zero)"
        )
    ranks = _checked_ranks(blocks, k1, k2, ranks, progress, cancel, n if total is None else total)
    check_cancel(cancel)
    # COO support of V, sorted by row then column: a function of the lists and k1 only.
    rows, cols = _expanded(ranks, k1, {} if expansions is None else expansions)
    vals = _encode(blocks, rows, cols)
    ptr = _row_pointers(rows, n)
    if k2 != 1:
        check_cancel(cancel)
        ptr, cols, vals = _query_expansion(ptr, cols, vals, ranks[:, :k2])
    # Inverted index over gallery rows only: the result keeps gallery columns of the Jaccard term.
    g_start = ptr[num_q]
    gal_rows = np.repeat(np.arange(num_q, n), np.diff(ptr[num_q:])) - num_q
    by_col = _group_by(cols[g_start:], n)  # grouping only
    inv_ptr = np.concatenate([[0], np.cumsum(np.bincount(cols[g_start:], minlength=n))])
    return Encoding(num_q, ptr, cols, vals, inv_ptr, gal_rows[by_col], vals[g_start:][by_col],
                    np.ascontiguousarray(blocks.col_max, dtype=np.float32))


def encoding(q_g, q_q, g_g, k1: int = RerankParams.k1, k2: int = RerankParams.k2, *,
             neighbours: Neighbours | None = None, cancel: CancelFn | None = None) -> Encoding:
    """The :class:`Encoding` of dense blocks, as :func:`re_rank` computes it (``neighbours``
    as there)."""
    q_g, q_q, g_g = _validate(q_g, q_q, g_g, k1, k2, 0.0)
    if neighbours is None:
        blocks, ranks, expansions = _checked_blocks(q_g, q_q, g_g), None, None
    else:
        blocks = _Blocks(q_g, q_q, g_g, col_max=neighbours.col_max)
        ranks, expansions = neighbours.ranks, neighbours.expansions
    return encode_blocks(blocks, int(k1), int(k2), cancel=cancel, ranks=ranks, expansions=expansions)


def jaccard_rows(enc: Encoding, items, gallery_dist, lambda_value: float = RerankParams.lambda_value,
                 out: np.ndarray | None = None) -> np.ndarray:
    """Re-ranked distances ``[r, g]`` (float32, section 8.8) of any items to the gallery.

    ``items [r]``: indices among the ``N = q + g`` items (a gallery item ``j`` is ``q + j``);
    ``gallery_dist [r, g]``: their input distances to the gallery (``D[q + j, item]``: a row of
    ``q_g`` for a query, a column of ``g_g`` for a gallery item). For query items this is
    :func:`re_rank`'s row, bit for bit.
    """
    from engine.postprocess import _rerank_kernels

    items = np.asarray(items, dtype=np.int64).reshape(-1)
    starts, stops = enc.ptr[items], enc.ptr[items + 1]
    lengths = stops - starts
    ptr = np.concatenate([[0], np.cumsum(lengths)])
    pos = np.repeat(starts - ptr[:-1], lengths) + np.arange(ptr[-1])
    dist = np.ascontiguousarray(gallery_dist, dtype=np.float32).reshape(len(items), -1)
    out = np.empty(dist.shape, np.float32) if out is None else out
    lam = float(lambda_value)
    _rerank_kernels.jaccard_rows(0, len(items), ptr, enc.cols[pos], enc.vals[pos], enc.inv_ptr,
                                 enc.inv_rows, enc.inv_vals, dist, enc.col_max[items],
                                 np.float32(1.0 - lam), np.float32(lam), out)
    return out


def re_rank_blocks(blocks, k1: int, k2: int, lam: float, *, progress: ProgressFn | None = None,
                   cancel: CancelFn | None = None, ranks: np.ndarray | None = None,
                   expansions: dict | None = None) -> np.ndarray:
    """:func:`re_rank` on a distance source with the interface of :class:`_Blocks`.

    ``blocks`` gives ``num_q``, ``num_all``, ``q_g [q, g]``, ``col_max [N]``,
    ``rows(start, stop)`` (rows of ``D~``) and ``gather(rows, cols)``; the sparse shortlist graph of two-stage retrieval
    (:mod:`engine.postprocess.rerank_sparse`) is one. The caller has checked that the
    distances are finite (:func:`check_finite`) and the parameters (:func:`check_params`).
    """
    num_q, n = blocks.num_q, blocks.num_all
    total = n + num_q
    enc = encode_blocks(blocks, k1, k2, progress=progress, cancel=cancel, ranks=ranks,
                        expansions=expansions, total=total)
    from engine.postprocess import _rerank_kernels

    num_g = n - num_q
    result = np.empty((num_q, num_g), dtype=np.float32)
    q_g = np.ascontiguousarray(blocks.q_g, dtype=np.float32)
    step = max(1, _ROW_CHUNK_ELEMENTS // num_g)
    for start in range(0, num_q, step):
        check_cancel(cancel)
        stop = min(start + step, num_q)
        _rerank_kernels.jaccard_rows(start, stop, enc.ptr, enc.cols, enc.vals, enc.inv_ptr,
                                     enc.inv_rows, enc.inv_vals, q_g, enc.col_max,
                                     np.float32(1.0 - lam), np.float32(lam), result[start:stop])
        report(progress, n + stop, total)
    return result
