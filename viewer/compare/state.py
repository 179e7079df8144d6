"""The comparison with a second model as plain data (no Qt): what the panel shows and the job
that scores the second model.

Model A is the window's (its session, distances and metrics under the applied settings); model
B is a second checkpoint opened on the same dataset, with the same post-processing settings. The
panel shows each query's AP under A against B's (a scatter), the queries each model wins, and B's
rank of every tile in the grid (``ViewerState.second_ranks``).
"""
from __future__ import annotations

import operator
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from psygnal import evented

from engine.evaluation import ApComparison, Metrics, compare_ap
from engine.jobs import check_cancel
from viewer.ranking import Ranking, rank_query
from viewer.state import PostSettings
from viewer.tasks import NeedsSize, open_model, safe_evaluate

__all__ = ["CompareResult", "CompareState", "SecondRanks", "score_second_model", "comparison",
           "model_name", "query_label"]


@dataclass(frozen=True, eq=False)
class CompareResult:
    """Model B's ranking of the window's dataset under ``settings``."""

    source: str                     # the file the user picked
    note: str                       # what a converted file was found to be ("" when native)
    session: Any                    # engine.session.Session of model B (same dataset)
    settings: PostSettings
    distmat: np.ndarray             # [q, g] float32
    metrics: Metrics | None
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return model_name(self.source)


class SecondRanks:
    """Model B's protocol ranks of the gallery per dataset query (``ViewerState.second_ranks``),
    each query's list ranked when first asked for."""

    name = "model B"

    def __init__(self, result: CompareResult):
        self.result = result
        self._rankings: dict[int, Ranking] = {}

    def ranking(self, query: int) -> Ranking | None:
        session, dist = self.result.session, self.result.distmat
        if not 0 <= query < len(dist):
            return None  # an external image: B has no list for it
        cached = self._rankings.get(query)
        if cached is None:
            sample = session.dataset.query[query]
            cached = self._rankings[query] = rank_query(
                dist[query], None, sample.pid, sample.cam, session.gallery_pids,
                session.gallery_cams)
        return cached

    def rank(self, query: int, gallery_index: int) -> int | None:
        """B's 1-based protocol rank of a gallery image for ``query`` (0: junk; None: no list)."""
        ranking = self.ranking(query)
        if ranking is None:
            return None
        return int(ranking.ranks[ranking.position_of(gallery_index)])


@evented(equality_operators={"result": operator.is_})
@dataclass
class CompareState:
    """What the comparison panel shows."""

    source: str = ""                       # model B's file, "" before one is picked
    result: CompareResult | None = None    # B under `result.settings`
    busy: bool = False
    progress: tuple | None = None          # (stage, done, total) of the running job
    error: str = ""
    visible: bool = False

    def current(self, applied: PostSettings, a_metrics: Metrics | None) -> ApComparison | None:
        """The comparison of A (``a_metrics`` under ``applied``) with B, when B's result is for
        the same settings."""
        if self.result is None or self.result.metrics is None or a_metrics is None:
            return None
        if self.result.settings != applied:
            return None
        return comparison(a_metrics, self.result.metrics)


def comparison(a: Metrics, b: Metrics) -> ApComparison:
    """Per-query AP of A against B (engine.evaluation.compare_ap)."""
    return compare_ap(a.ap, b.ap)


def model_name(path) -> str:
    """A checkpoint as the panel names it: its folder and file (``runs/a/model.pt`` ->
    ``a/model.pt``), since two runs' files are often both ``model.pt``."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.basename(os.path.dirname(path))
    return os.path.join(folder, os.path.basename(path)) if folder else os.path.basename(path)


def query_label(session, query: int) -> str:
    """A query's line in the win lists: its file name, identity and camera."""
    sample = session.dataset.query[query]
    return f"{os.path.basename(sample.path)}  (ID {sample.pid}, {session.dataset.camera_name(sample.cam)})"


def score_second_model(source: str, a_session, settings: PostSettings, *, progress, cancel,
                       b_session=None, height: int | None = None,
                       width: int | None = None) -> CompareResult | NeedsSize:
    """Open model B on model A's dataset (or reuse ``b_session``), extract, score and rank it
    under ``settings`` and evaluate it; :class:`NeedsSize` when B is another project's file
    whose input size must be asked for. Its caches are A's cache folder; it scores with A's
    two-stage retrieval K when A uses one."""
    from engine.session import Session

    t0 = time.perf_counter()
    note = ""
    if b_session is None:
        progress("open model B", 0, 1)
        opened = open_model(source, a_session.cache_dir, height, width)
        if isinstance(opened, NeedsSize):
            return opened
        path, note = opened
        check_cancel(cancel)
        # A's two-stage retrieval K too (QAConv only): B is scored as A was, in comparable time.
        b_session = Session.open(a_session.dataset, path, device=str(a_session.device),
                                 cache_dir=a_session.cache_dir, shortlist=a_session.shortlist)
    b_session.extract(progress, cancel)
    a_paths = [s.path for s in a_session.dataset.query + a_session.dataset.gallery]
    if [s.path for s in b_session.dataset.query + b_session.dataset.gallery] != a_paths:
        raise ValueError("model B left out images model A ranks (they failed to decode for it); "
                         "reload the dataset to leave them out for both")
    blocks = ("qg",) + (("qq", "gg") if settings.rerank is not None else ())
    b_session.score(blocks, progress=progress, cancel=cancel)
    check_cancel(cancel)
    distmat = b_session.distances(settings.rerank, settings.tlift, progress=progress,
                                  cancel=cancel)
    check_cancel(cancel)
    return CompareResult(source=str(source), note=note, session=b_session, settings=settings,
                         distmat=distmat, metrics=safe_evaluate(b_session, distmat),
                         seconds=time.perf_counter() - t0)
