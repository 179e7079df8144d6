"""CMC, mAP and mINP under the Market-1501 protocol (docs/arithmetic.md section 7).

The numbers equal torchreid's ``eval_market1501`` (and fast-reid's mINP): each distance row is
ordered by NumPy's default ``argsort`` of the float32 row (so ties break exactly as there),
gallery items with the query's pid *and* camera are removed, a query without any remaining true
match is skipped.

The computation is vectorised over chunks of queries. Only the same-pid entries of each row are
placed in the sorted order: by counting the smaller values in the sorted row (``np.sort``, several
times faster than ``np.argsort``) when the entry's value is unique in its row, by a full default
argsort of the row otherwise, which gives exactly the protocol's order in both cases. They are
then handled as flat arrays instead of one Python iteration per query.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Metrics", "RankedRow", "ApComparison", "compare_ap", "evaluate", "rank_row"]

# Elements per chunk of rows: bounds the temporaries (the sorted float32 rows, plus the int64
# order of rows with ties) to a few tens of MB.
_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class Metrics:
    """Retrieval metrics over a query set.

    Attributes
    ----------
    cmc : ndarray, float32 [min(max_rank, g)]
        ``cmc[k]`` = share of valid queries with a true match within the first ``k + 1`` ranks.
    mean_ap : float
        Mean average precision over valid queries.
    mean_inp : float
        Mean inverse negative penalty over valid queries.
    ap : ndarray, float64 [q]
        Average precision of every query; NaN where the query is not valid.
    inp : ndarray, float64 [q]
        Inverse negative penalty of every query; NaN where not valid.
    first_hit_rank : ndarray, int64 [q]
        1-based rank of the first true match after same-camera matches are removed; -1 where
        not valid.
    valid : ndarray, bool [q]
        Whether the query has at least one true match in the gallery (other cameras).
    """

    cmc: np.ndarray
    mean_ap: float
    mean_inp: float
    ap: np.ndarray
    inp: np.ndarray
    first_hit_rank: np.ndarray
    valid: np.ndarray

    @property
    def rank1(self) -> float:
        """CMC at rank 1."""
        return float(self.cmc[0])

    @property
    def num_valid(self) -> int:
        """Number of queries that count in the averages."""
        return int(self.valid.sum())


@dataclass(frozen=True)
class RankedRow:
    """One query's gallery ranking, for display.

    Attributes
    ----------
    order : ndarray, int64 [g]
        Gallery indices, nearest first (NumPy default argsort of the float32 row).
    is_match : ndarray, bool [g]
        Per ranked position: same pid as the query.
    is_junk : ndarray, bool [g]
        Per ranked position: same pid and same camera (ignored by the protocol).
    protocol_rank : ndarray, int64 [g]
        Per ranked position: 1-based rank once junk is removed; -1 for junk items.
    ap : float
        Average precision; NaN when the query has no true match.
    first_hit_rank : int
        1-based protocol rank of the first true match; -1 when there is none.
    """

    order: np.ndarray
    is_match: np.ndarray
    is_junk: np.ndarray
    protocol_rank: np.ndarray
    ap: float
    first_hit_rank: int


def _as_labels(values, name: str, length: int | None = None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if length is not None and array.shape[0] != length:
        raise ValueError(f"{name} has {array.shape[0]} entries, expected {length}")
    return array


def _check_distmat(distmat) -> np.ndarray:
    # float32 as in the protocol's reference code: the tie structure of the float32 row decides
    # the order, so a float64 input is rounded first.
    distmat = np.asarray(distmat, dtype=np.float32)
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be 2-D [q, g], got shape {distmat.shape}")
    if np.isnan(distmat).any():
        raise ValueError("distmat contains NaN; distances must be numbers (inf is allowed)")
    return distmat


def _same_pid_entries(q_pids: np.ndarray, g_pids: np.ndarray):
    """``(rows, cols)`` of every query-gallery pair with the same pid, without a [q, g] scan."""
    by_pid = np.argsort(g_pids, kind="stable")
    sorted_pids = g_pids[by_pid]
    start = np.searchsorted(sorted_pids, q_pids, side="left")
    count = np.searchsorted(sorted_pids, q_pids, side="right") - start
    rows = np.repeat(np.arange(len(q_pids)), count)
    offset = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count)
    return rows, by_pid[np.repeat(start, count) + offset]


def _count_sorted(sorted_rows: np.ndarray, rows: np.ndarray, values: np.ndarray):
    """``#{sorted_rows[r] < v}`` for every pair ``(r, v)``, by a vectorised bisection."""
    width = sorted_rows.shape[1]
    lo = np.zeros(rows.shape, dtype=np.int64)
    hi = np.full(rows.shape, width, dtype=np.int64)
    while (active := lo < hi).any():
        mid = (lo + hi) // 2
        probe = sorted_rows[rows, np.minimum(mid, width - 1)]
        right = probe < values
        lo, hi = np.where(active & right, mid + 1, lo), np.where(active & ~right, mid, hi)
    return lo


def _match_positions(dist_chunk, q_pids, g_pids):
    """Same-pid entries of every row and their position in the row's NumPy default argsort.

    A value that occurs once in its row sits, in any sort, after exactly the entries smaller
    than it: that count comes from the sorted values (``np.sort`` is several times faster than
    ``np.argsort``). Rows where a same-pid entry's value is tied with another entry are argsorted
    in full, so their ties break exactly as in the protocol's reference code.

    Returns ``(rows, cols, pos)`` sorted by row, then position.
    """
    num_g = dist_chunk.shape[1]
    rows, cols = _same_pid_entries(q_pids, g_pids)  # [m]
    values = dist_chunk[rows, cols]
    sorted_rows = np.sort(dist_chunk, axis=1)  # [c, g]
    pos = _count_sorted(sorted_rows, rows, values)
    # sorted_rows[r, pos] is the entry's own value; a tie puts the same value right after it.
    tied = sorted_rows[rows, np.minimum(pos + 1, num_g - 1)] == values
    tied &= pos + 1 < num_g
    if tied.any():
        tied_rows = np.unique(rows[tied])
        order = np.argsort(dist_chunk[tied_rows], axis=1)  # [t, g]
        rank_of = np.empty_like(order)
        np.put_along_axis(rank_of, order, np.arange(num_g)[None, :], axis=1)
        redo = np.isin(rows, tied_rows)
        pos[redo] = rank_of[np.searchsorted(tied_rows, rows[redo]), cols[redo]]
    by_rank = np.lexsort((pos, rows))
    return rows[by_rank], cols[by_rank], pos[by_rank]


def _chunk_metrics(dist_chunk, q_pids, q_cams, g_pids, g_cams, max_rank):
    """Metrics of a block of queries. Returns (ap, inp, first_hit_rank, valid, cmc_counts).

    Only the same-pid entries of each row are handled after the sort: a true match's protocol
    rank is its position in the sorted row minus the junk entries (same pid, same camera) in
    front of it, and its precision the number of true matches up to it over that rank.
    """
    num_c, num_g = dist_chunk.shape
    rows, cols, pos = _match_positions(dist_chunk, q_pids, g_pids)
    junk = g_cams[cols] == q_cams[rows]
    hit_rows, hit_pos = rows[~junk], pos[~junk]
    junk_keys = rows[junk] * num_g + pos[junk]  # sorted
    junk_before = np.searchsorted(junk_keys, hit_rows * num_g + hit_pos) - np.searchsorted(
        junk_keys, hit_rows * num_g
    )
    hit_rank = hit_pos + 1 - junk_before  # [n_hits] 1-based rank once junk is removed
    num_hits = np.bincount(hit_rows, minlength=num_c)  # [c]
    first_of_row = np.cumsum(num_hits) - num_hits
    hits_so_far = np.arange(hit_rows.size) - first_of_row[hit_rows] + 1
    valid = num_hits > 0

    ap_sum = np.bincount(hit_rows, weights=hits_so_far / hit_rank, minlength=num_c)
    ap = np.full(num_c, np.nan)
    ap[valid] = ap_sum[valid] / num_hits[valid]
    first = np.full(num_c, -1, dtype=np.int64)
    first[valid] = hit_rank[first_of_row[valid]]
    inp = np.full(num_c, np.nan)
    inp[valid] = num_hits[valid] / hit_rank[first_of_row[valid] + num_hits[valid] - 1]

    # Number of valid queries whose first hit is within rank k, for k = 1..max_rank.
    cmc_counts = np.bincount(np.minimum(first[valid], max_rank + 1) - 1, minlength=max_rank + 1)
    cmc_counts = np.cumsum(cmc_counts[:max_rank])  # [max_rank]
    return ap, inp, first, valid, cmc_counts


def evaluate(
    distmat,
    query_pids,
    gallery_pids,
    query_cams,
    gallery_cams,
    max_rank: int = 50,
) -> Metrics:
    """CMC, mAP and mINP of a distance matrix (Market-1501 protocol).

    Parameters
    ----------
    distmat : array_like [q, g]
        Query-to-gallery distances, smaller = more similar. Rounded to float32 before sorting,
        as in torchreid; NaN is rejected, inf is allowed.
    query_pids, gallery_pids : array_like of int [q], [g]
        Identity labels (pid 0 = distractor, a plain negative).
    query_cams, gallery_cams : array_like of int [q], [g]
        Camera ids.
    max_rank : int
        Length of the CMC curve; capped at ``g`` as in torchreid.

    Returns
    -------
    Metrics
        Averages over valid queries and per-query arrays.

    Raises
    ------
    ValueError
        On inconsistent shapes, NaN distances, ``max_rank < 1`` or when no query has a true
        match in the gallery.
    """
    distmat = _check_distmat(distmat)
    num_q, num_g = distmat.shape
    query_pids = _as_labels(query_pids, "query_pids", num_q)
    query_cams = _as_labels(query_cams, "query_cams", num_q)
    gallery_pids = _as_labels(gallery_pids, "gallery_pids", num_g)
    gallery_cams = _as_labels(gallery_cams, "gallery_cams", num_g)
    if int(max_rank) < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat is empty (shape {distmat.shape}): need queries and gallery")
    max_rank = min(int(max_rank), num_g)

    ap = np.empty(num_q)
    inp = np.empty(num_q)
    first = np.empty(num_q, dtype=np.int64)
    valid = np.empty(num_q, dtype=bool)
    cmc_counts = np.zeros(max_rank, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // num_g)
    for start in range(0, num_q, step):
        block = slice(start, min(start + step, num_q))
        a, n, f, v, c = _chunk_metrics(
            distmat[block], query_pids[block], query_cams[block],
            gallery_pids, gallery_cams, max_rank,
        )
        ap[block], inp[block], first[block], valid[block] = a, n, f, v
        cmc_counts += c

    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError(
            "no query has a true match in the gallery on another camera; "
            "check that query and gallery pids/cameras belong to the same dataset"
        )
    # float32 division, as the reference code divides a float32 sum of 0/1 rows.
    cmc = cmc_counts.astype(np.float32) / np.float32(num_valid)
    return Metrics(
        cmc=cmc,
        mean_ap=float(np.mean(ap[valid])),
        mean_inp=float(np.mean(inp[valid])),
        ap=ap,
        inp=inp,
        first_hit_rank=first,
        valid=valid,
    )


def rank_row(dist_row, query_pid, query_cam, gallery_pids, gallery_cams) -> RankedRow:
    """Rank the gallery for one query and score it as :func:`evaluate` would.

    Parameters
    ----------
    dist_row : array_like [g]
        Distances of one query to the gallery (float32 order, as in :func:`evaluate`).
    query_pid, query_cam : int
        The query's identity and camera.
    gallery_pids, gallery_cams : array_like of int [g]

    Returns
    -------
    RankedRow
        The ranked order with match/junk flags, AP and first-hit rank of this query.
    """
    row = _check_distmat(np.asarray(dist_row).reshape(1, -1))
    num_g = row.shape[1]
    gallery_pids = _as_labels(gallery_pids, "gallery_pids", num_g)
    gallery_cams = _as_labels(gallery_cams, "gallery_cams", num_g)
    order = np.argsort(row[0])
    is_match = gallery_pids[order] == query_pid
    is_junk = is_match & (gallery_cams[order] == query_cam)
    protocol_rank = np.where(is_junk, -1, np.cumsum(~is_junk))
    ap, _inp, first, _valid, _ = _chunk_metrics(
        row, np.asarray([query_pid]), np.asarray([query_cam]),
        gallery_pids, gallery_cams, 1,
    )
    return RankedRow(
        order=order,
        is_match=is_match,
        is_junk=is_junk,
        protocol_rank=protocol_rank.astype(np.int64),
        ap=float(ap[0]),
        first_hit_rank=int(first[0]),
    )


# Two APs closer than this are a tie: the same ranking of the true matches gives the same AP
# up to float rounding, whatever the model.
AP_TIE = 1e-9


@dataclass(frozen=True)
class ApComparison:
    """Per-query AP of two models on the same queries: who wins each query.

    Attributes
    ----------
    ap_a, ap_b : ndarray, float64 [q]
        Each model's AP (NaN where the query is not valid).
    valid : ndarray, bool [q]
        Queries valid for both (the others are in no list).
    a_wins, b_wins, ties : ndarray, int64
        Query indices where A's AP is higher, B's is higher, both equal (within
        :data:`AP_TIE`); the wins ordered by the size of the gap, largest first.
    """

    ap_a: np.ndarray
    ap_b: np.ndarray
    valid: np.ndarray
    a_wins: np.ndarray
    b_wins: np.ndarray
    ties: np.ndarray

    def summary(self) -> str:
        """``A wins 12, B wins 7, ties 3 (of 22 queries)``."""
        return (f"A wins {len(self.a_wins)}, B wins {len(self.b_wins)}, ties {len(self.ties)} "
                f"(of {int(self.valid.sum())} queries)")


def compare_ap(ap_a, ap_b) -> ApComparison:
    """Split the queries by which of two models has the higher AP (``Metrics.ap`` of each,
    on the same queries in the same order)."""
    ap_a, ap_b = np.asarray(ap_a, np.float64), np.asarray(ap_b, np.float64)
    if ap_a.shape != ap_b.shape or ap_a.ndim != 1:
        raise ValueError(f"per-query APs of different query sets: {ap_a.shape} vs {ap_b.shape}")
    valid = ~(np.isnan(ap_a) | np.isnan(ap_b))
    gap = np.where(valid, ap_a - ap_b, 0.0)
    tied = valid & (np.abs(gap) <= AP_TIE)
    a_wins = np.flatnonzero(valid & ~tied & (gap > 0))
    b_wins = np.flatnonzero(valid & ~tied & (gap < 0))
    return ApComparison(ap_a=ap_a, ap_b=ap_b, valid=valid,
                        a_wins=a_wins[np.argsort(-gap[a_wins], kind="stable")],
                        b_wins=b_wins[np.argsort(gap[b_wins], kind="stable")],
                        ties=np.flatnonzero(tied))
