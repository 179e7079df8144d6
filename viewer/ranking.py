"""One query's ranked gallery list as the results grid shows it (Qt-free).

The order is the evaluation's (``engine.evaluation.rank_row``: NumPy's default argsort of the
float32 distance row), so the grid, the CSV export and the metrics always agree. Ranks are the
protocol's (``engine.export.protocol_ranks``): junk (same identity and camera as the query) is
not counted, so "first true match at rank r" is the tile labelled ``#r`` and the CSV's rank r. Movement is
measured against the ranking without post-processing: ``raw position - position`` (positive =
the item moved up when RR/TLift was switched on).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.evaluation import rank_row
from engine.export import protocol_ranks

__all__ = ["Ranking", "RankingOverride", "ResultItem", "rank_query", "visible_positions",
           "result_items"]

MATCH, MISMATCH, JUNK, UNKNOWN = "true", "false", "junk", ""


@dataclass(frozen=True)
class Ranking:
    """A query's full ranked list.

    Attributes
    ----------
    order : ndarray, int64 [g]
        Gallery indices, nearest first.
    status : ndarray of str [g]
        Per position: ``"true"`` same identity, ``"false"`` other identity, ``"junk"`` same
        identity and camera, ``""`` when the query's identity is unknown (external image).
    movement : ndarray, int64 [g] or None
        Per position: how many places the item moved up relative to the ranking without
        post-processing; None when no post-processing is applied.
    ap : float
        Average precision (NaN when unknown or without a true match).
    first_hit_rank : int
        1-based rank of the first true match once junk is removed; -1 when none or unknown.
    ranks : ndarray, int64 [g]
        Per position: the 1-based rank shown, junk not counted; 0 for junk.
    """

    order: np.ndarray
    status: np.ndarray
    movement: np.ndarray | None
    ap: float
    first_hit_rank: int
    ranks: np.ndarray

    @property
    def is_junk(self) -> np.ndarray:
        return self.status == JUNK

    def position_of(self, gallery_index: int) -> int:
        """0-based position of a gallery image in this list."""
        return int(np.flatnonzero(self.order == gallery_index)[0])


@dataclass(frozen=True)
class RankingOverride:
    """A list shown for one query instead of its own ranking (``ViewerState.overrides``): the
    ranking of an occluded copy of the query today, relevance-feedback marks next. The grid,
    the results' title, the query header, the match inspector and the CSV export of the query
    read it; ``description`` says once what replaced the query's ranking."""

    query: int
    ranking: Ranking               # movement = position in `versus` - position in this list
    dist_row: np.ndarray           # [g] distances the list is ordered by
    score_row: np.ndarray          # [g] QAConv logits shown on the tiles
    description: str               # the results' title, e.g. "Occluded (square) · ▲▼ vs. original"
    versus: str                    # what the movement arrows compare with (tile tooltips)
    settings: object = None        # the PostSettings dist_row was computed under
    probe: str = ""                # the probe's name when it is an edited copy of the query
    image: np.ndarray | None = None    # that copy, uint8 [H, W, 3]
    maps: np.ndarray | None = None     # its feature map [D, h, w]


@dataclass(frozen=True)
class ResultItem:
    """One tile of the results grid."""

    position: int          # 0-based position in the full ranked list
    gallery_index: int
    rank: int              # 1-based rank shown, junk not counted; 0 for junk
    distance: float
    score: float
    status: str            # "true" | "false" | "junk" | ""
    movement: int | None


def rank_query(dist_row: np.ndarray, raw_row: np.ndarray | None, query_pid: int | None,
               query_cam: int | None, gallery_pids: np.ndarray, gallery_cams: np.ndarray) -> Ranking:
    """Rank the gallery for one query.

    Parameters
    ----------
    dist_row : ndarray [g]
        Distances under the applied post-processing (smaller = closer).
    raw_row : ndarray [g] or None
        Distances without post-processing, for the movement arrows; None = no arrows.
    query_pid, query_cam : int or None
        The query's identity and camera; None for an image from outside the dataset.
    gallery_pids, gallery_cams : ndarray of int [g]
    """
    if query_pid is None:
        order = np.argsort(np.asarray(dist_row, np.float32))
        status = np.full(len(order), UNKNOWN, dtype=object)
        ap, first = float("nan"), -1
    else:
        row = rank_row(dist_row, query_pid, query_cam if query_cam is not None else -1,
                       gallery_pids, gallery_cams)
        order = row.order
        status = np.where(row.is_junk, JUNK, np.where(row.is_match, MATCH, MISMATCH)).astype(object)
        ap, first = row.ap, row.first_hit_rank
    movement = None
    if raw_row is not None:
        raw_order = np.argsort(np.asarray(raw_row, np.float32))
        raw_position = np.empty(len(raw_order), np.int64)
        raw_position[raw_order] = np.arange(len(raw_order))
        movement = raw_position[order] - np.arange(len(order))
    return Ranking(order=order, status=status, movement=movement, ap=ap, first_hit_rank=first,
                   ranks=protocol_ranks(status == JUNK))


def visible_positions(ranking: Ranking, top_k: int, hide_junk: bool,
                      keep: np.ndarray | None = None) -> np.ndarray:
    """Positions (0-based, into ``ranking.order``) of the first ``top_k`` items shown.

    ``keep`` (bool ``[g]`` per position, optional) shows only the positions it marks.
    """
    shown = ~ranking.is_junk if hide_junk else np.ones(len(ranking.order), bool)
    if keep is not None:
        shown &= keep
    elif not hide_junk:
        return np.arange(min(top_k, len(ranking.order)))
    return np.flatnonzero(shown)[:top_k]


def result_items(ranking: Ranking, positions: np.ndarray, dist_row: np.ndarray,
                 score_row: np.ndarray) -> list[ResultItem]:
    """Tiles for the given positions of a ranking (distances and scores looked up per item)."""
    items = []
    for pos in positions:
        gi = int(ranking.order[pos])
        items.append(ResultItem(
            position=int(pos), gallery_index=gi, rank=int(ranking.ranks[pos]),
            distance=float(dist_row[gi]), score=float(score_row[gi]),
            status=str(ranking.status[pos]),
            movement=None if ranking.movement is None else int(ranking.movement[pos])))
    return items
