"""A simulated user marking results, to measure relevance feedback (``python -m engine feedback-bench``).

Per query, each round the user labels the first ``per_round`` results of the current ranking
that are not yet labelled, from the ground truth as the evaluation counts it
(docs/arithmetic.md section 7): same-camera images of the query's identity are junk, neither
shown for labelling nor counted; distractors (identity 0) and every other identity are "not the
same". ``noise`` flips that share of the labels (a random draw per label). After each round the
method ranks again from all labels so far, and three figures are kept: rank-1 and mAP of the
whole list (:func:`engine.evaluation.evaluate`), and the mAP over the positives not yet
labelled (:func:`unseen_ap`: labelled items leave the list as junk does), the honest one since
labelled positives are pinned on top.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.evaluation import evaluate
from engine.feedback import (
    FeedbackParams,
    FeedbackRows,
    pin,
    query_shift,
    refine_score,
    relevance_score,
)
from engine.jobs import check_cancel

__all__ = ["METHODS", "RoundFigures", "label_round", "simulate", "unseen_ap"]


def _none(rows: FeedbackRows, query: int, pos, neg) -> np.ndarray:
    return rows.base[query]


def _pinned(score_fn) -> Callable:
    def method(rows: FeedbackRows, query: int, pos, neg) -> np.ndarray:
        if not pos and not neg:
            return rows.base[query]
        return pin(score_fn(rows, query, pos, neg), pos, neg)

    return method


def refine_method(params: FeedbackParams | None = None) -> Callable:
    """:func:`engine.feedback.refine` on the kept rows, with ``params``."""
    params = params or FeedbackParams()
    return _pinned(lambda rows, q, pos, neg: refine_score(rows, q, pos, neg, params))


# Every feedback method pins the labelled items the same way, so rank-1 and mAP compare the
# re-scoring of the rest; the unseen-positive mAP does not depend on the pinning.
METHODS: dict[str, Callable] = {
    "none": _none,
    "query shift": _pinned(query_shift),
    "relevance score": _pinned(relevance_score),
    "refine": refine_method(),
}


@dataclass
class RoundFigures:
    """One method's figures after each round (index 0: before any label), fractions."""

    rank1: list[float] = field(default_factory=list)
    mean_ap: list[float] = field(default_factory=list)
    unseen_map: list[float] = field(default_factory=list)
    unseen_queries: list[int] = field(default_factory=list)  # queries with an unlabelled positive


def unseen_ap(row, match, junk, labelled) -> float:
    """AP of one distance row over the positives not yet labelled: junk and labelled items
    (boolean ``[g]`` masks) are left out of the list, the order is NumPy's default argsort of
    the float32 row as in :func:`engine.evaluation.evaluate`. NaN without such a positive."""
    order = np.argsort(np.asarray(row, np.float32))
    keep = ~(junk | labelled)[order]
    hits = match[order][keep]
    if not hits.any():
        return float("nan")
    positions = np.flatnonzero(hits) + 1
    return float(np.mean(np.arange(1, len(positions) + 1) / positions))


def label_round(row, match, junk, labels: dict[int, bool], per_round: int, noise: float,
                rng: np.random.Generator) -> None:
    """The user labels the first ``per_round`` unlabelled, non-junk results of ``row`` into
    ``labels`` (gallery index -> same person), each flipped with probability ``noise``."""
    order = np.argsort(np.asarray(row, np.float32))
    fresh = [int(j) for j in order[~junk[order]] if int(j) not in labels][:per_round]
    flips = rng.random(len(fresh)) < noise if noise > 0 else np.zeros(len(fresh), bool)
    for j, flip in zip(fresh, flips, strict=True):
        labels[j] = bool(match[j]) != bool(flip)


def simulate(rows: FeedbackRows, method: Callable, query_pids, gallery_pids, query_cams,
             gallery_cams, *, rounds: int = 5, per_round: int = 5, noise: float = 0.0,
             seed: int = 0, cancel=None) -> RoundFigures:
    """Rounds of labelling and re-ranking with ``method(rows, query, positives, negatives) ->
    distance row``; the figures before the first round and after each."""
    query_pids, gallery_pids = np.asarray(query_pids), np.asarray(gallery_pids)
    query_cams, gallery_cams = np.asarray(query_cams), np.asarray(gallery_cams)
    rng = np.random.default_rng(seed)
    num_q = len(query_pids)
    labels: list[dict[int, bool]] = [{} for _ in range(num_q)]
    match = gallery_pids[None, :] == query_pids[:, None]          # [q, g]
    junk = match & (gallery_cams[None, :] == query_cams[:, None])
    active = (match & ~junk).any(axis=1)                           # queries the protocol counts
    figures = RoundFigures()
    for round_ in range(rounds + 1):
        dist = np.array(rows.base, np.float32)
        unseen = []
        for q in np.flatnonzero(active):
            check_cancel(cancel)
            pos = [j for j, same in labels[q].items() if same]
            neg = [j for j, same in labels[q].items() if not same]
            dist[q] = method(rows, int(q), pos, neg)
            labelled = np.zeros(len(gallery_pids), bool)
            labelled[list(labels[q])] = True
            unseen.append(unseen_ap(dist[q], match[q], junk[q], labelled))
            if round_ < rounds:
                label_round(dist[q], match[q], junk[q], labels[q], per_round, noise, rng)
        metrics = evaluate(dist, query_pids, gallery_pids, query_cams, gallery_cams)
        figures.rank1.append(metrics.rank1)
        figures.mean_ap.append(metrics.mean_ap)
        counted = [ap for ap in unseen if not np.isnan(ap)]
        figures.unseen_map.append(float(np.mean(counted)) if counted else float("nan"))
        figures.unseen_queries.append(len(counted))
    return figures
