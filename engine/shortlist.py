"""Two-stage retrieval: a cheap first stage shortlists K candidates, QAConv scores only those.

Stage one is QAConv's matching on coarsened maps (:func:`band_features`): each stored feature
map is pooled into a few horizontal bands (4 by default, unit-normalised), and a pair scores
the mean over bands of each band's best cosine in the other image, both ways, halved (in
[-1, 1]; with one band it is the cosine of the pooled maps). That is 16 dot products per pair
instead of QAConv's ``hw * hw`` (16,384 for the demo's 16 x 8 maps of 256 x 128 images), and
it keeps the exhaustive top-50 far better than the pooled cosine (benchmarks/bench_scale.py;
README). For each probe its ``K`` best items are kept and QAConv scores only those pairs:
``p * K`` pairs instead of ``p * g``.

- Query x gallery (:func:`shortlist_block`): a dense ``[q, g]`` logit block in which every
  non-candidate gets an estimate of its logit: the first stage's score mapped onto QAConv's
  scale by a straight line fitted to the candidates, kept below the row's lowest candidate, in
  first-stage order. Re-ranking's original-distance term and TLift then see plausible values
  beyond the shortlist, as with exhaustive scoring (a constant fill far below cost +RR+TLift
  about 1.1 points of mAP at K = 600 on the Market-scale set; the estimate, 0.3). With
  ``K >= g`` every pair is a candidate and the block is the exhaustive one, bit for bit
  (candidate pairs are scored in other groupings than the exhaustive blocks, which changes
  the last bit of some logits: about 1e-7).
- Self blocks q-q and g-g, for re-ranking (:func:`shortlist_graph`): each item's ``K``
  neighbours and their logits, ``[n, K]``. Each unordered pair is scored once, with the lower
  index as probe (as the symmetric exhaustive scoring does), so both directions hold the same
  number. :func:`engine.postprocess.rerank_sparse.re_rank_shortlist` re-ranks on this graph.
- Under ``torchrun`` (``share``, :mod:`engine.sharded`): each rank scores a contiguous share of
  the candidate pairs made of whole batches of :func:`score_pairs` (:func:`pair_share`), so the
  logits rank 0 gathers are one process's, bit for bit.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from engine.jobs import CancelFn, ProgressFn, check_cancel, report

if TYPE_CHECKING:  # torch is imported when scoring, so the viewer can read DEFAULT_SHORTLIST without it
    import torch

    from engine.models.qaconv import QAConv

__all__ = ["BANDS", "DEFAULT_SHORTLIST", "RECALL_NEEDED", "RECALL_PROBES", "RECALL_TOP", "band_features",
           "estimate_fill", "first_stage_ranks", "lossless_shortlist", "recall_at", "sampled_ranks",
           "stage_one", "top_candidates", "pair_share", "score_pairs", "shortlist_block",
           "shortlist_graph", "shortlist_pairs"]

#: Default K, chosen from benchmarks/bench_scale.py on the Market-scale synthetic set (benchmarks/README.md).
DEFAULT_SHORTLIST = 600
#: Horizontal bands of the first stage's coarsened maps.
BANDS = 4
#: The first stage's recall is measured on the exhaustive top-RECALL_TOP of each probe (the ranks
#: rank-1 to rank-10 read and re-ranking's k1 = 20 neighbourhood) ...
RECALL_TOP = 20
#: ... of RECALL_PROBES queries spread evenly over the query set, scored exhaustively for it.
RECALL_PROBES = 64
#: A K whose measured recall is below this loses matches, and `auto` never picks it. On a
#: 30-identity set (synth --domain B --seed 3 --test-ids 30, 277 gallery images) K = 60 kept 93.0%
#: and +RR lost 5.2 points of rank-1; K = 120 kept 98.4% and lost 1.0 (mAP 0.4). Not 100%: the
#: sample's single worst item would then decide, and K would approach the gallery size.
RECALL_NEEDED = 0.99
# Estimated logits of non-candidates lie at least this far below their row's lowest candidate.
_FILL_GAP = 1e-3
# Slope (logits per unit of first-stage score) when no line can be fitted to the candidates.
_FALLBACK_SLOPE = 10.0
# Floats of first-stage scores per chunk of rows in top_candidates.
_CANDIDATE_FLOATS = 16 << 20
# Bytes of similarities and gathered gallery maps per batch of probes in candidate scoring.
_BATCH_BYTES = 48 << 20
# Gallery maps are converted to compute-ready columns once when they take at most this many bytes.
_COLUMNS_BYTES = 1 << 30


def band_features(maps, bands: int = BANDS) -> np.ndarray:
    """Coarsened maps ``[n, bands, D]`` float32: ``[n, D, h, w]`` maps averaged over each of
    ``bands`` horizontal bands (whole rows; ``h`` must divide evenly), unit-normalised."""
    n, d, h, w = maps.shape
    bands = max(1, min(int(bands), h))
    if h % bands:
        bands = 1
    out = np.empty((n, bands, d), np.float32)
    for start in range(0, n, 1024):  # maps may be a large memory-mapped file
        chunk = maps[start:start + 1024]
        chunk = chunk.float().cpu().numpy() if hasattr(chunk, "cpu") else np.asarray(chunk, np.float32)
        m = len(chunk)
        out[start:start + m] = chunk.reshape(m, d, bands, h // bands * w).mean(axis=3).transpose(0, 2, 1)
    return out / np.maximum(np.linalg.norm(out, axis=2, keepdims=True), 1e-12)


def stage_one(a_bands: np.ndarray, b_bands: np.ndarray) -> np.ndarray:
    """First-stage scores ``[len(a), len(b)]`` float32 in [-1, 1] of band features (see module)."""
    return _stage_one(a_bands, _band_columns(b_bands))


def _band_columns(b_bands: np.ndarray) -> list[np.ndarray]:
    """Each band of ``b`` as a contiguous ``[D, g]`` matrix."""
    return [np.ascontiguousarray(b_bands[:, j].T) for j in range(b_bands.shape[1])]


def _stage_one(a_bands: np.ndarray, b_cols: list[np.ndarray]) -> np.ndarray:
    p, c, _ = a_bands.shape
    # One [p, g] product per pair of bands, so every maximum is over whole contiguous arrays.
    best_a = [None] * c                     # per band of b: its best match among a's bands
    best_b = np.zeros((p, b_cols[0].shape[1]), np.float32)  # sum over a's bands of their best in b
    for i in range(c):
        row = None
        a_i = np.ascontiguousarray(a_bands[:, i])
        for j in range(c):
            sim = a_i @ b_cols[j]
            row = sim.copy() if row is None else np.maximum(row, sim, out=row)
            best_a[j] = sim if best_a[j] is None else np.maximum(best_a[j], sim, out=best_a[j])
        best_b += row
    for j in range(c):
        best_b += best_a[j]
    return best_b / np.float32(2 * c)


def top_candidates(a_bands: np.ndarray, b_bands: np.ndarray, k: int, *,
                   dense_out: np.ndarray | None = None, cancel: CancelFn | None = None) -> np.ndarray:
    """Indices ``[len(a), min(k, len(b))]`` int32 of each row's best first-stage columns.

    ``a_bands``, ``b_bands`` come from :func:`band_features`. Sorted by decreasing score (ties
    by index). ``dense_out`` ``[len(a), len(b)]`` float32, when given, receives every score.
    """
    k = min(int(k), len(b_bands))
    out = np.empty((len(a_bands), k), np.int32)
    step = _candidate_step(len(b_bands), a_bands.shape[1])
    b_cols = _band_columns(b_bands)
    for start in range(0, len(a_bands), step):
        check_cancel(cancel)
        stop = min(len(a_bands), start + step)
        cos = _stage_one(a_bands[start:stop], b_cols)
        if dense_out is not None:
            dense_out[start:stop] = cos
        if k < cos.shape[1]:
            head = np.argpartition(-cos, k - 1, axis=1)[:, :k]
        else:
            head = np.broadcast_to(np.arange(cos.shape[1]), cos.shape)
        vals = np.take_along_axis(cos, head, axis=1)
        # Decreasing score, ties by index: lexsort's last key is the primary one.
        order = np.lexsort((head, -vals), axis=1) if head.size else head
        out[start:stop] = np.take_along_axis(head, order, axis=1)
    return out


def _candidate_step(g: int, bands: int) -> int:
    """Rows per chunk of :func:`top_candidates`: about ``4 _CANDIDATE_FLOATS`` bytes of
    ``[rows, g]`` float32 buffers (bands + 3 of them)."""
    return max(1, _CANDIDATE_FLOATS // max(g * (bands + 3), 1))


def _candidates_of_rows(a_bands: np.ndarray, b_bands: np.ndarray, k: int, lo: int, hi: int,
                        cancel: CancelFn | None = None) -> np.ndarray:
    """Rows ``[lo, hi)`` of ``top_candidates(a_bands, b_bands, k)``, bit for bit: computed in
    the whole call's chunks (a chunk's scores depend in their last bits on its rows, which
    could swap near-tied candidates)."""
    step = _candidate_step(len(b_bands), a_bands.shape[1])
    c0, c1 = lo // step * step, min(len(a_bands), -(-hi // step) * step)
    return top_candidates(a_bands[c0:c1], b_bands, k, cancel=cancel)[lo - c0:hi - c0]


def first_stage_ranks(exhaustive: np.ndarray, first_stage: np.ndarray, top: int = RECALL_TOP) -> np.ndarray:
    """Where the first stage ranks each row's exhaustive top-``top`` items: ``[p, min(top, g)]``
    int32, 0-based positions in the first stage's order (ties by index, as :func:`top_candidates`).

    ``exhaustive`` ``[p, g]`` QAConv logits and ``first_stage`` ``[p, g]`` first-stage scores of the
    same pairs. An item is among the ``K`` candidates exactly when its position is below ``K``.
    """
    top = min(int(top), exhaustive.shape[1])
    head = np.argsort(-exhaustive, axis=1, kind="stable")[:, :top]
    order = np.argsort(-first_stage, axis=1, kind="stable")
    position = np.empty_like(order)
    np.put_along_axis(position, order, np.arange(order.shape[1])[None, :], axis=1)
    return np.take_along_axis(position, head, axis=1).astype(np.int32)


def recall_at(ranks: np.ndarray, k: int) -> float:
    """Share of the exhaustive top items (:func:`first_stage_ranks`) among ``k`` candidates."""
    return float((ranks < k).mean()) if ranks.size else 1.0


def lossless_shortlist(ranks: np.ndarray, gallery_size: int, start: int = DEFAULT_SHORTLIST) -> int | None:
    """The smallest ``K`` of ``start, 2 start, 4 start, ...`` whose recall is at least
    :data:`RECALL_NEEDED`; None when only ``K >= gallery_size`` (exhaustive scoring) keeps it."""
    k = max(1, int(start))
    while k < gallery_size:
        if recall_at(ranks, k) >= RECALL_NEEDED:
            return k
        k *= 2
    return None


def sampled_ranks(session, *, probes: int = RECALL_PROBES, top: int = RECALL_TOP,
                  measure: bool = True) -> np.ndarray | None:
    """:func:`first_stage_ranks` of ``probes`` queries spread evenly over ``session``'s query set,
    scored exhaustively against the whole gallery for it (``probes x g`` QAConv pairs); cached
    with the session's score blocks (``measure=False``: None unless cached, the model untouched).
    The maps must be extracted."""
    q, g = session.query_maps, session.gallery_maps
    pick = np.unique(np.linspace(0, len(q) - 1, min(probes, len(q))).round().astype(np.int64))
    key = session.blocks.key(f"first-stage-ranks:{len(pick)}x{top}")
    ranks = session.blocks.store.load(key, (len(pick), min(top, len(g))), np.int32)
    if ranks is None and measure:
        probe = q[pick]
        exhaustive = session.model.score(probe, g, device=session.device,
                                         memory_budget=session.memory_budget)
        ranks = first_stage_ranks(np.asarray(exhaustive, np.float32),
                                  stage_one(band_features(probe), band_features(g)), top)
        session.blocks.store.save(key, ranks)
    return ranks


def score_pairs(matcher: QAConv, probe_maps, gallery_maps, rows: np.ndarray, cols: np.ndarray, *,
                device: torch.device | str = "cpu", progress: ProgressFn | None = None,
                cancel: CancelFn | None = None) -> np.ndarray:
    """Eval-mode QAConv logits of the pairs ``(probe rows[t], gallery cols[t])``, float32 ``[m]``.

    Pairs are grouped by probe; a batch of probes is matched against their own gallery lists
    at once (one batched matmul, the two max reductions and the folded head of
    :func:`engine.models.qaconv.folded_scores`).
    """
    import torch

    with torch.no_grad():
        return _score_pairs(matcher, probe_maps, gallery_maps, rows, cols, device=torch.device(device),
                            progress=progress, cancel=cancel)


def _locations(maps, index: np.ndarray) -> np.ndarray:
    """Maps ``index`` as locations ``[len(index), hw, C]`` float32 (NumPy; memory maps read in order)."""
    if not isinstance(maps, np.ndarray):
        maps = maps.detach().cpu().numpy()
    uniq, inverse = np.unique(index, return_inverse=True)
    block = np.asarray(maps[uniq], np.float32)
    n, c = block.shape[:2]
    return np.take(np.ascontiguousarray(block.reshape(n, c, -1).transpose(0, 2, 1)), inverse, axis=0)


def _score_pairs(matcher, probe_maps, gallery_maps, rows, cols, *, device, progress, cancel):
    import torch

    dtype = torch.float16 if device.type == "cuda" else torch.float32
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    out = np.empty(len(rows), np.float32)
    if len(rows) == 0:
        return out
    hw, channels = matcher.hw, matcher.num_features
    weight, bias = matcher.folded_head()
    weight = weight.to(device=device, dtype=torch.float32)
    bias = torch.as_tensor(bias, dtype=torch.float32, device=device)
    # Pairs grouped by probe; each probe's list padded to the longest in its batch.
    order = np.argsort(rows, kind="stable")
    probes, starts, counts = np.unique(rows[order], return_index=True, return_counts=True)
    cached = None  # the gallery as locations [g, hw, C], converted once when it is not too large
    if len(gallery_maps) * hw * channels * 4 <= _COLUMNS_BYTES:
        cached = _locations(gallery_maps, np.arange(len(gallery_maps)))
    total, done = len(rows), 0
    report(progress, 0, total)
    for i, stop in _probe_batches(counts, hw, channels):
        check_cancel(cancel)
        batch = stop - i
        width = int(counts[i:stop].max())
        valid = np.arange(width)[None, :] < counts[i:stop, None]
        pos = starts[i:stop, None] + np.minimum(np.arange(width)[None, :], counts[i:stop, None] - 1)
        slots = cols[order[pos]].reshape(-1)
        gal = np.take(cached, slots, axis=0) if cached is not None else _locations(gallery_maps, slots)
        gal = torch.from_numpy(gal).to(device, dtype).view(batch, width * hw, channels)
        probe = torch.from_numpy(_locations(probe_maps, probes[i:stop])).to(device, dtype)
        with torch.autocast(device_type=device.type, enabled=False):
            sim = torch.bmm(probe, gal.transpose(1, 2)).view(batch, hw, width, hw)   # [b, s, k, r]
            logits = torch.matmul(weight, sim.amax(dim=3).float())                  # [b, k]
            logits += sim.amax(dim=1).float() @ weight + bias
        values = logits.cpu().numpy()
        out[order[pos[valid]]] = values[valid]
        done += int(counts[i:stop].sum())
        report(progress, done, total)
    return out


def _probe_batches(counts: np.ndarray, hw: int, channels: int):
    """The batches ``(first, stop)`` of probes (indices into the distinct probes, whose pair
    counts are ``counts``) that :func:`score_pairs` matches at once: similarities and gathered
    maps within about ``$REID_PAIR_BATCH_BYTES`` (default ``_BATCH_BYTES``)."""
    limit = int(os.environ.get("REID_PAIR_BATCH_BYTES") or _BATCH_BYTES)
    i = 0
    while i < len(counts):
        per_probe = int(counts[i]) * hw * (hw + channels) * 4
        batch = int(max(1, min(len(counts) - i, limit // max(per_probe, 1))))
        yield i, i + batch
        i += batch


def pair_share(rows: np.ndarray, hw: int, channels: int, rank: int, size: int) -> tuple[int, int]:
    """Rank ``rank`` of ``size``'s contiguous share ``[start, stop)`` of pairs sorted by probe
    (``rows``): whole batches of :func:`score_pairs`.

    A batch's logits depend in their last bits on what else is in it (the matrix products'
    shapes change), so a share that cuts no batch, scored alone, gives the same bits as the
    whole list: that is how a distributed run matches one process.
    """
    rows = np.asarray(rows, np.int64)
    if np.any(np.diff(rows) < 0):
        raise ValueError("the pairs must be sorted by probe")
    _, starts, counts = np.unique(rows, return_index=True, return_counts=True)
    firsts = [first for first, _ in _probe_batches(counts, hw, channels)]
    n = len(firsts)

    def at(batch: int) -> int:
        return len(rows) if batch >= n else int(starts[firsts[batch]])

    return at(rank * n // size), at((rank + 1) * n // size)


#: ``(rank, size, gather)`` of a distributed run: ``gather(part)`` hands rank 0 every rank's
#: ``part`` in rank order and the other ranks None; ``gather(part, everywhere=True)`` hands
#: them to every rank.
Share = tuple[int, int, Callable[..., "list[np.ndarray] | None"]]


def _score_shared(matcher, a, b, rows, cols, share: Share | None, **kw) -> np.ndarray | None:
    """:func:`score_pairs` of every pair; with ``share``, this rank scores its
    :func:`pair_share` and rank 0 gets the whole list (the other ranks None)."""
    if share is None:
        return score_pairs(matcher, a, b, rows, cols, **kw)
    rank, size, gather = share
    start, stop = pair_share(rows, matcher.hw, matcher.num_features, rank, size)
    parts = gather(score_pairs(matcher, a, b, rows[start:stop], cols[start:stop], **kw))
    return None if parts is None else np.concatenate(parts)


def shortlist_block(matcher: QAConv, probe_maps, gallery_maps, k: int, *,
                    device: torch.device | str = "cpu", progress: ProgressFn | None = None,
                    cancel: CancelFn | None = None,
                    share: Share | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Query x gallery logits ``[p, g]`` with only each probe's ``K`` candidates scored.

    Returns ``(logits, candidates)``: ``candidates [p, K]`` int32. Every other pair gets
    :func:`estimate_fill`'s logit from its first-stage score. With ``share`` (a distributed
    run), each rank finds the candidates of its :func:`pair_share` of the probes (rank 0 those
    of every probe: the fill needs their scores) and scores them; rank 0 gathers the
    candidates' logits and returns the block; the other ranks return None.
    (With ``K >= g``, exhaustive scoring, rank 0 scores the whole block.)
    """
    from engine.models.scoring import score_matrix

    main = share is None or share[0] == 0
    p, g = len(probe_maps), len(gallery_maps)
    if k >= g:  # every pair is a candidate: exhaustive scoring, bit for bit
        if not main:
            return None
        cand = np.broadcast_to(np.arange(g, dtype=np.int32), (p, g)).copy()
        return score_matrix(matcher, probe_maps, gallery_maps, device=device, progress=progress,
                            cancel=cancel), cand
    out = np.empty((p, g), np.float32) if main else None
    rows = np.repeat(np.arange(p), k)
    a_bands, b_bands = band_features(probe_maps), band_features(gallery_maps)
    if main:  # the first stage of every probe: the fill needs its scores
        cand = top_candidates(a_bands, b_bands, k, dense_out=out, cancel=cancel)
    if share is None:
        logits = score_pairs(matcher, probe_maps, gallery_maps, rows, cand.reshape(-1),
                             device=device, progress=progress, cancel=cancel)
    else:
        rank, size, gather = share
        start, stop = pair_share(rows, matcher.hw, matcher.num_features, rank, size)
        mine = (cand[start // k:stop // k] if main else
                _candidates_of_rows(a_bands, b_bands, k, start // k, stop // k, cancel))
        logits = gather(score_pairs(matcher, probe_maps, gallery_maps, rows[start:stop],
                                    mine.reshape(-1), device=device, progress=progress,
                                    cancel=cancel))
        if logits is None:
            return None
        logits = np.concatenate(logits)
    logits = logits.reshape(cand.shape)
    if logits.size:
        estimate_fill(out, cand, logits)
    return out, cand


def estimate_fill(block: np.ndarray, cand: np.ndarray, logits: np.ndarray) -> None:
    """Turn first-stage scores ``block [p, g]`` into logits, in place: candidates ``cand
    [p, K]`` get their QAConv ``logits [p, K]``; every other pair ``(i, j)`` with first-stage
    score ``s`` gets ``min(a + b s, m_i - gap + b (s - t_i))``: ``a + b s`` is the least-squares
    line through the candidates' (score, logit) pairs, ``m_i`` row i's lowest candidate logit,
    ``t_i`` its highest non-candidate score. Both terms increase with ``s``, so non-candidates
    keep their first-stage order and stay below every candidate of their row."""
    cand = cand.astype(np.int64)
    scores = np.take_along_axis(block, cand, axis=1).astype(np.float64).ravel()
    target = logits.astype(np.float64).ravel()
    slope = _FALLBACK_SLOPE
    if scores.size >= 2 and scores.std() > 0:
        fitted = np.polyfit(scores, target, 1)[0]
        slope = fitted if fitted > 0 else slope
    intercept = target.mean() - slope * scores.mean()
    step = max(1, (8 << 20) // max(block.shape[1], 1))
    for start in range(0, len(block), step):
        rows = block[start:start + step]                  # a view: written in place
        c, lows = cand[start:start + step], logits[start:start + step].min(axis=1, keepdims=True)
        masked = rows.copy()
        np.put_along_axis(masked, c, -np.inf, axis=1)
        top = masked.max(axis=1, keepdims=True)           # highest non-candidate score
        line = rows.astype(np.float64) * slope + intercept
        capped = lows - _FILL_GAP + slope * (rows - top)
        rows[:] = np.minimum(line, capped)
        np.put_along_axis(rows, c, logits[start:start + step], axis=1)


def shortlist_pairs(neighbours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unordered pairs ``(lo, hi)`` (``lo <= hi``) of a neighbour list ``[n, K]``, deduplicated."""
    n = len(neighbours)
    r = np.repeat(np.arange(n, dtype=np.int64), neighbours.shape[1])
    c = neighbours.reshape(-1).astype(np.int64)
    key = np.unique(np.minimum(r, c) * n + np.maximum(r, c))
    return key // max(n, 1), key % max(n, 1)


def shortlist_graph(matcher: QAConv, maps, k: int, *, device: torch.device | str = "cpu",
                    progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                    share: Share | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Each item's ``K`` nearest items by the first stage (itself included) and their QAConv logits.

    Returns ``(neighbours [n, K] int32, logits [n, K] float32)``; the pair ``(i, j)`` is scored
    once, probe ``min(i, j)``, gallery ``max(i, j)``. With ``share`` (a distributed run), each
    rank finds the neighbours of its contiguous share of the items and the lists are gathered
    on every rank; each then scores its :func:`pair_share` of the distinct pairs, and rank 0
    gathers their logits and returns the graph; the other ranks return None. (With
    ``K >= n``, the exhaustive block, rank 0 scores it whole.)
    """
    from engine.models.scoring import score_matrix

    n = len(maps)
    emb = band_features(maps)
    if share is None or k >= n:
        neighbours = top_candidates(emb, emb, k, cancel=cancel)
    else:  # each rank's rows; the lists are gathered on every rank (n K int32)
        rank, size, gather = share
        mine = _candidates_of_rows(emb, emb, k, rank * n // size, (rank + 1) * n // size, cancel)
        neighbours = np.concatenate(gather(mine, everywhere=True))
    if k >= n:  # every pair: the symmetric exhaustive block, bit for bit
        if share is not None and share[0] != 0:
            return None
        block = score_matrix(matcher, maps, maps, device=device, symmetric=True, progress=progress,
                             cancel=cancel)
        return neighbours, np.take_along_axis(block, neighbours.astype(np.int64), axis=1)
    lo, hi = shortlist_pairs(neighbours)
    pair_logits = _score_shared(matcher, maps, maps, lo, hi, share, device=device,
                                progress=progress, cancel=cancel)
    if pair_logits is None:
        return None
    r = np.repeat(np.arange(n, dtype=np.int64), neighbours.shape[1])
    c = neighbours.reshape(-1).astype(np.int64)
    pos = np.searchsorted(lo * n + hi, np.minimum(r, c) * n + np.maximum(r, c))
    return neighbours, pair_logits[pos].reshape(neighbours.shape)


def estimate_exhaustive_seconds(session, probes: int = 16, gallery: int = 256) -> float:
    """Seconds exhaustive scoring of q-g, q-q and g-g would take, from timing a small block.

    ``session`` must have its maps extracted. The small block is scored twice (the first run
    warms up); the faster run gives the rate.
    """
    import time

    q, g = session.query_maps, session.gallery_maps
    pairs = len(q) * len(g) + len(q) * (len(q) + 1) // 2 + len(g) * (len(g) + 1) // 2
    a, b = q[:probes], g[:gallery]
    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        session.model.score(a, b, device=session.device, memory_budget=session.memory_budget)
        best = min(best, time.perf_counter() - t0)
    return pairs * best / max(len(a) * len(b), 1)
