"""From matcher scores to the final distance matrix: raw, + re-ranking, + TLift (docs/arithmetic.md 2.6, 8, 9).

Every path goes through one scale: a *unit similarity* ``s`` in [0, 1] (higher = closer) and its
distance ``d = 1 - s``.

- QAConv logits: ``s = sigmoid(logit / 10)``, ``d = sigmoid(-logit / 10)`` (the same number, computed
  without cancellation, so the raw ranking equals the ranking by ``-logit``).
- Cosine similarities of a global-feature baseline, in [-1, 1]: ``s = (1 + cos) / 2``,
  ``d = (1 - cos) / 2``. Re-ranking divides every column by its maximum, so on these distances it
  gives the same result as Zhong's re-ranking on squared Euclidean distances of unit vectors
  (``2 - 2 cos``).

Then, in this order and each optional (:func:`post_process`, the one spelling of the chain,
which :meth:`engine.session.Session.distances` runs with its blocks and kept matrices):
re-ranking on the distances (``d <- d_RR``, :func:`rerank_step`), TLift on ``s = 1 - d``
(``d <- 1 - s'``, :func:`lift_distances`). TLift without re-ranking first turns each query's
row of ``s`` into :func:`relative_similarity` (see there why); after re-ranking it lifts
``1 - d_RR`` as it is (docs/arithmetic.md 9, the references). :func:`tlift_sweep` re-evaluates TLift over a range of one of its
parameters, as in the paper's parameter study (appendix Tables 7 and 8).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import NamedTuple

import numpy as np

from engine.evaluation import evaluate
from engine.jobs import CancelFn, ProgressFn, check_cancel, report
from engine.postprocess.params import RerankParams, TLiftParams, rerank_params, tlift_params
from engine.postprocess.rerank import Neighbours, re_rank
from engine.postprocess.rerank_sparse import Graph, re_rank_shortlist
from engine.postprocess.tlift import tlift as apply_tlift

__all__ = [
    "SweepPoint",
    "distance_from_logits",
    "distances_of",
    "post_process",
    "rerank_step",
    "similarity_from_logits",
    "relative_similarity",
    "final_distances",
    "final_distances_from_similarity",
    "lift_distances",
    "tlift_sweep",
    "warm_up",
]

# Share of the progress bar given to re-ranking when TLift follows it.
_RERANK_SHARE = 90
_PROGRESS_TOTAL = 100
# Elements per row tile of the float64 work (logits -> distances, relative similarity): 1 MB,
# the fastest measured on Market-size rows (2^15 took 1.56x as long for relative_similarity).
_TILE_ELEMENTS = 1 << 17


class SweepPoint(NamedTuple):
    """One TLift setting of a parameter sweep and its retrieval accuracy (fractions, not %)."""

    value: float
    rank1: float
    mean_ap: float


def _sigmoid_tenth(logits, sign: float, dtype) -> np.ndarray:
    """``sigmoid(sign * logit / 10)`` into a new ``dtype`` array, a tile of rows at a time.

    Each tile is computed in float64, in place in one cache-sized buffer, and rounded once into
    the output, so the result is the float64 formula rounded to ``dtype``; besides the output,
    memory is one tile.
    """
    src = np.asarray(logits)
    out = np.empty(src.shape, dtype=dtype)
    rows = src.reshape(len(src), -1) if src.ndim >= 2 else src.reshape(1, -1)
    dest = out.reshape(rows.shape)
    step = max(1, _TILE_ELEMENTS // max(1, rows.shape[1]))
    for start in range(0, rows.shape[0], step):
        x = np.array(rows[start:start + step], dtype=np.float64)  # [c, n] own copy
        np.divide(x, 10.0 * sign, out=x)
        positive = x >= 0
        # sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) otherwise, e = exp(-|x|): no overflow.
        np.abs(x, out=x)
        np.negative(x, out=x)
        np.exp(x, out=x)
        denominator = x + 1.0
        np.copyto(x, 1.0, where=positive)
        np.divide(x, denominator, out=x)
        dest[start:start + step] = x
    return out


def similarity_from_logits(logits, dtype=np.float32) -> np.ndarray:
    """QAConv logits to unit similarities ``sigmoid(logit / 10)`` in [0, 1] (same shape).

    Computed in float64 tile by tile and stored as ``dtype`` (float32 by default: the
    float64 values rounded once, without a float64 copy of the whole matrix).
    """
    return _sigmoid_tenth(logits, 1.0, dtype)


def distance_from_logits(logits, dtype=np.float32) -> np.ndarray:
    """QAConv logits to distances ``1 - sigmoid(logit / 10) = sigmoid(-logit / 10)``.

    As :func:`similarity_from_logits`, without cancellation: strictly decreasing in the logit
    wherever ``dtype`` resolves it, so ranking by this distance is ranking by ``-logit``.
    """
    return _sigmoid_tenth(logits, -1.0, dtype)


def relative_similarity(similarity, out: np.ndarray | None = None) -> np.ndarray:
    """Each query's similarities relative to its best match: ``exp((s - max) / std)`` per row.

    What TLift lifts when it runs without re-ranking. docs/arithmetic.md section 9 multiplies a similarity by
    ``w + alpha``, ``w`` in [0, 1], alpha = 0.2: the temporal weight can multiply an appearance
    score by up to 6. After re-ranking that is right: ``1 - d_RR`` is near 0 for all but a
    query's few k-reciprocal neighbours, so time only reorders plausible matches. QAConv's
    ``sigmoid(logit / 10)`` instead spans only about 0.27-0.52 over a query's gallery (0.16 on
    average on the demo; the global baseline's ``(1 + cos) / 2`` even less), so lifted as it is,
    the time kernel swamps appearance and same-camera neighbours in time rise to the top (demo:
    rank-1 58.9 -> 18.3). Measuring each similarity in standard deviations of its row below the
    row's best, then exponentiating, gives what RR gives: the best match 1, the bulk of the
    gallery near 0. It is invariant to the score's scale and offset, so QAConv logits and cosine
    similarities are treated alike, and it keeps each row's order. Options measured on the demo
    (``benchmarks/tlift_alone.py``, docs/results.md "TLift without re-ranking"): plain min-max to [0, 1] still loses to
    raw; this beats raw for QAConv and the pooled-feature baseline. A row with no spread becomes
    all ones.

    Returns float32 ``[q, g]`` in (0, 1], computed in float64 a tile of rows at a time; ``out``
    may be ``similarity`` itself (float32) to work in place.
    """
    src = np.asarray(similarity)
    out = np.empty(src.shape, np.float32) if out is None else out
    step = max(1, _TILE_ELEMENTS // max(1, src.shape[1]))
    for start in range(0, len(src), step):
        x = np.array(src[start:start + step], dtype=np.float64)     # [c, g] own copy
        spread = x.std(axis=1, keepdims=True)                       # [c, 1]
        flat = spread[:, 0] <= 0
        x -= x.max(axis=1, keepdims=True)
        x /= np.where(spread > 0, spread, 1.0)                      # <= 0
        np.exp(x, out=x)
        x[flat] = 1.0
        out[start:start + step] = x
    return out


def warm_up() -> None:
    """Compile (first run on a machine) or load the compiled kernels of TLift and re-ranking,
    so that the first toggle does not wait for them (the viewer does this in the background)."""
    from engine.postprocess.tlift import warm_up as warm_up_tlift

    warm_up_tlift()
    d = np.abs(np.subtract.outer(np.arange(5.0), np.arange(5.0))).astype(np.float32) + 1.0
    re_rank(d[:2, 2:], d[:2, :2], d[2:, 2:], k1=2, k2=2)


def _scaled(progress: ProgressFn | None, lo: int, hi: int) -> ProgressFn | None:
    """A progress callback mapping a stage's (done, total) onto [lo, hi] of the overall bar."""
    if progress is None:
        return None

    def stage(done: int, total: int) -> None:
        progress(lo + (hi - lo) * done // max(total, 1), _PROGRESS_TOTAL)

    return stage


def rerank_step(qg, qq, gg, params: RerankParams, *, neighbours: Neighbours | None = None,
                progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> np.ndarray:
    """The re-ranking step on distances: ``qq`` and ``gg`` are dense blocks ``[q, q]``,
    ``[g, g]``, or each a :class:`~engine.postprocess.rerank_sparse.Graph` of two-stage
    retrieval. ``neighbours`` (dense blocks only), their
    :func:`~engine.postprocess.rerank.top_ranks`, spares re-ranking its costliest step."""
    if qq is None or gg is None:
        raise ValueError(
            "re-ranking needs the query-query and gallery-gallery scores as well "
            "(qq and gg), not only query-gallery"
        )
    if isinstance(qq, Graph) or isinstance(gg, Graph):
        return re_rank_shortlist(qg, *qq, *gg, params.k1, params.k2, params.lambda_value,
                                 progress=progress, cancel=cancel)
    return re_rank(qg, qq, gg, params.k1, params.k2, params.lambda_value, progress=progress,
                   cancel=cancel, neighbours=neighbours)


def lift_distances(dist, query_cams, query_times, gallery_cams, gallery_times,
                   params: TLiftParams | None = None, *, relative: bool = False,
                   out: np.ndarray | None = None) -> np.ndarray:
    """The TLift step on distances: ``1 - tlift(1 - dist)``, float32 ``[q, g]``.

    Writes the result into ``out``, a new array when None: ``dist`` is left unchanged unless
    it is passed as ``out`` (float32 ``[q, g]``) to lift in place, which saves a ``[q, g]``
    allocation. ``params`` are TLift's (the defaults when None). ``relative`` lifts
    :func:`relative_similarity` of ``1 - dist`` instead, as TLift without re-ranking needs.
    """
    if query_cams is None or gallery_cams is None:
        raise ValueError("TLift needs camera ids: pass query_cams and gallery_cams")
    params = TLiftParams() if params is None else params
    one = np.float32(1.0)
    src = dist if dist.dtype == np.float32 else dist.astype(np.float32)
    sim = np.subtract(one, src, out=out)
    if relative:
        sim = relative_similarity(sim, out=sim)
    lifted = apply_tlift(sim, query_cams, query_times, gallery_cams, gallery_times,
                         params.tau, params.sigma, params.k, params.alpha, out=sim)
    return np.subtract(one, lifted, out=lifted)


def post_process(
    qg, qq=None, gg=None, *, rerank=None, tlift=None, query_cams=None, query_times=None,
    gallery_cams=None, gallery_times=None, progress: ProgressFn | None = None,
    cancel: CancelFn | None = None, neighbours: Neighbours | None = None,
    reranked: np.ndarray | None = None,
) -> np.ndarray:
    """The post-processing chain on distances: raw ``qg`` -> [re-ranking] -> [TLift].

    ``qg``, ``qq``, ``gg`` are float32 distances ``[q, g]``, ``[q, q]``, ``[g, g]`` as
    :func:`distances_of` gives them (``qq`` / ``gg`` may be shortlist graphs, see
    :func:`rerank_step`). ``rerank`` and ``tlift``: None/False (off), True (defaults), a
    parameter record or a dict of some of its fields. The inputs are not modified, so
    converted blocks can be kept and post-processed again with other settings.
    ``neighbours`` spares re-ranking its costliest step; ``reranked``, the re-ranked matrix of
    these very blocks and settings computed earlier (kept unchanged), skips re-ranking.
    """
    rr, tl = rerank_params(rerank), tlift_params(tlift)
    dist = qg
    if rr is not None:
        if reranked is not None:
            dist = reranked
        else:
            stop = _RERANK_SHARE if tl is not None else _PROGRESS_TOTAL
            dist = rerank_step(qg, qq, gg, rr, neighbours=neighbours,
                               progress=_scaled(progress, 0, stop), cancel=cancel)
    if tl is not None:
        check_cancel(cancel)
        fresh = dist is not qg and dist is not reranked and dist.dtype == np.float32
        dist = lift_distances(dist, query_cams, query_times, gallery_cams, gallery_times, tl,
                              relative=rr is None, out=dist if fresh else None)
    report(progress, _PROGRESS_TOTAL, _PROGRESS_TOTAL)
    return np.asarray(dist, dtype=np.float32)


def distances_of(block, method: str = "qaconv") -> np.ndarray:
    """A score block as float32 distances: QAConv logits (``method`` "qaconv") through
    :func:`distance_from_logits`, cosine similarities of the global baseline as ``(1 - cos) / 2``
    (clipped to [-1, 1] first: rounding can push a cosine slightly past 1)."""
    if method == "qaconv":
        return distance_from_logits(block)
    sim = np.asarray(block)
    out = np.empty(sim.shape, np.float32)
    rows, dest = sim.reshape(len(sim), -1), out.reshape(len(sim), -1)
    step = max(1, _TILE_ELEMENTS // max(1, rows.shape[1]))
    for start in range(0, len(rows), step):  # float64 per tile, rounded once
        x = np.clip(np.asarray(rows[start:start + step], np.float64), -1.0, 1.0)
        dest[start:start + step] = (1.0 - x) / 2.0
    return out


def final_distances(
    qg_logits,
    qq_logits=None,
    gg_logits=None,
    *,
    rerank: RerankParams | dict | bool | None = None,
    tlift: TLiftParams | dict | bool | None = None,
    query_cams=None,
    query_times=None,
    gallery_cams=None,
    gallery_times=None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> np.ndarray:
    """Distance matrix for ranking from QAConv logits, with optional re-ranking and TLift.

    Parameters
    ----------
    qg_logits : array_like [q, g]
        Query-gallery logits (higher = more similar).
    qq_logits, gg_logits : array_like [q, q], [g, g], optional
        Needed for re-ranking only.
    rerank : None, True, RerankParams or dict
        Off, on with :class:`RerankParams`' defaults, or on with those values (a dict: some of
        its fields).
    tlift : None, True, TLiftParams or dict
        The same for TLift (:class:`TLiftParams`).
    query_cams, query_times, gallery_cams, gallery_times : array_like [q], [g], optional
        Needed for TLift only (times in seconds).
    progress, cancel : callables, optional
        ``progress(done, total)`` with total 100; ``cancel() -> bool`` (raises
        :class:`engine.jobs.Cancelled`).

    Returns
    -------
    ndarray, float32 [q, g]
        ``1 - sigmoid(logit / 10)`` (raw), the re-ranked distance, or ``1 - s'`` after TLift.
    """
    return post_process(
        *(None if b is None else distance_from_logits(b) for b in (qg_logits, qq_logits, gg_logits)),
        rerank=rerank, tlift=tlift, query_cams=query_cams, query_times=query_times,
        gallery_cams=gallery_cams, gallery_times=gallery_times, progress=progress, cancel=cancel,
    )


def final_distances_from_similarity(
    qg_sim,
    qq_sim=None,
    gg_sim=None,
    *,
    rerank: RerankParams | dict | bool | None = None,
    tlift: TLiftParams | dict | bool | None = None,
    query_cams=None,
    query_times=None,
    gallery_cams=None,
    gallery_times=None,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> np.ndarray:
    """As :func:`final_distances`, for cosine similarities in [-1, 1] (global-feature baseline).

    Distances are ``(1 - cos) / 2`` and TLift lifts ``(1 + cos) / 2``; see the module notes.
    Values are clipped to [-1, 1] first (rounding can push a cosine slightly past 1).
    """
    return post_process(
        *(None if b is None else distances_of(b, "global") for b in (qg_sim, qq_sim, gg_sim)),
        rerank=rerank, tlift=tlift, query_cams=query_cams, query_times=query_times,
        gallery_cams=gallery_cams, gallery_times=gallery_times, progress=progress, cancel=cancel,
    )


def tlift_sweep(
    similarity,
    parameter: str,
    values: Sequence[float],
    *,
    query_pids,
    gallery_pids,
    query_cams,
    gallery_cams,
    query_times,
    gallery_times,
    base: dict | None = None,
    max_rank: int = 50,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> list[SweepPoint]:
    """Rank-1 and mAP of TLift as one of its parameters varies, the others fixed.

    Parameters
    ----------
    similarity : array_like [q, g]
        Unit similarity to lift: ``sigmoid(logit / 10)`` without re-ranking, ``1 - d_RR`` with it.
    parameter : {"tau", "sigma", "k", "alpha"}
        The parameter to vary.
    values : sequence of numbers
        Its values, in the order wanted in the result.
    query_pids, gallery_pids, query_cams, gallery_cams, query_times, gallery_times : array_like
        Labels, cameras and times (seconds) of queries [q] and gallery [g].
    base : TLiftParams or dict, optional
        Values of the other parameters (default: :class:`TLiftParams`' defaults).
    max_rank : int
        CMC length for :func:`engine.evaluation.evaluate`.
    progress, cancel : callables, optional
        ``progress(done, len(values))``; ``cancel() -> bool`` checked between values.

    Returns
    -------
    list of SweepPoint
        ``(value, rank1, mean_ap)`` per value, accuracies as fractions.
    """
    settings = asdict(tlift_params(True if base is None else base))
    if parameter not in settings:
        raise ValueError(f"parameter must be one of {sorted(settings)}, got {parameter!r}")
    similarity = np.asarray(similarity, dtype=np.float64)
    points = []
    for i, value in enumerate(values):
        check_cancel(cancel)
        lifted = apply_tlift(
            similarity, query_cams, query_times, gallery_cams, gallery_times,
            **{**settings, parameter: value},
        )
        metrics = evaluate(1.0 - lifted, query_pids, gallery_pids, query_cams, gallery_cams, max_rank)
        points.append(SweepPoint(value=value, rank1=metrics.rank1, mean_ap=metrics.mean_ap))
        report(progress, i + 1, len(values))
    return points
