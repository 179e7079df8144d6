"""One query's ranked gallery list as the results grid shows it (Qt-free).

The order is the evaluation's (``engine.evaluation.rank_row``: NumPy's default argsort of the
float32 distance row), so the grid, the CSV export and the metrics always agree. Ranks are the
protocol's (``engine.export.protocol_ranks``): junk (same identity and camera as the query) is
not counted, so "first true match at rank r" is the tile labelled ``#r`` and the CSV's rank r.
Movement is counted in the same ranks, against the ranking without post-processing: ``raw rank -
rank`` (positive = the item moved up when RR/TLift was switched on); junk has no rank, so no
movement.

What a list on screen is (which image was ranked, by which method with which stages actually
applied, its AP) is one :class:`RankingDescription`, which the header, the grid, the inspector,
the occlusion panel and the CSV export all read (``ViewerState.describe``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engine.evaluation import rank_row
from engine.export import protocol_ranks

__all__ = ["Ranking", "RankingDescription", "RankingOverride", "ResultItem", "describe_ranking",
           "rank_query", "visible_positions", "result_items", "first_counted"]

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
        Per position: how many ranks the item moved up relative to the ranking without
        post-processing, junk not counted in either (0 for junk); None when no post-processing
        is applied.
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
class RankingDescription:
    """What one ranked list on screen is: which image was ranked, by which method with the
    stages actually applied, and its AP. The query header, the results' title and tooltips,
    the match inspector's title, the occlusion panel and the CSV export all read it, so no two
    of them can name a list differently."""

    method: str                    # the stages applied to this image, "qaconv+rr" (no "+tlift"
    #                                for an image without timestamp)
    ap: float = math.nan           # NaN: identity unknown or no true match on another camera
    first_hit_rank: int = -1       # protocol rank of the first true match; -1 none or unknown
    identity_known: bool = True    # False for an image from outside the dataset
    probe: str = ""                # the image ranked when it is not the query itself
    #                                ("occluded copy"); "" = the query
    title: str = "Ranked gallery"  # the results' title
    versus: str = ""               # what the movement arrows compare with; "" = no arrows
    note: str = ""                 # how the image was ranked, when not as the dataset's queries

    @property
    def label(self) -> str:
        """``qaconv+rr+tlift``, or ``qaconv+rr of the occluded copy``."""
        return self.method + (f" of the {self.probe}" if self.probe else "")

    @property
    def csv_method(self) -> str:
        """The CSV's ``method`` column: ``qaconv+rr``, or ``qaconv+rr (occluded copy)``."""
        return self.method + (f" ({self.probe})" if self.probe else "")

    def numbers(self) -> str:
        """``AP 0.763 · first true match at rank 1`` (or why there is none)."""
        if not self.identity_known:
            return "identity unknown: no AP"
        if math.isnan(self.ap) or self.first_hit_rank < 1:
            return "no true match in the gallery on another camera"
        return f"AP {self.ap:.3f} · first true match at rank {self.first_hit_rank}"

    def summary(self) -> str:
        """``qaconv+rr+tlift · AP 1.000 · first true match at rank 1``: the header's line."""
        return f"{self.label} · {self.numbers()}"


def describe_ranking(ranking: Ranking, method: str, **fields) -> RankingDescription:
    """The description of ``ranking`` ranked by ``method`` (its AP and first true match read
    from the ranking; ``fields``: the other :class:`RankingDescription` fields)."""
    known = not (len(ranking.status) and bool((ranking.status == UNKNOWN).all()))
    return RankingDescription(method=method, ap=float(ranking.ap),
                              first_hit_rank=int(ranking.first_hit_rank), identity_known=known,
                              **fields)


@dataclass(frozen=True)
class RankingOverride:
    """A list shown for one query instead of its own ranking (``ViewerState.overrides``): the
    ranking of an occluded copy of the query today, relevance-feedback marks next. The grid,
    the results' title, the query header, the match inspector and the CSV export of the query
    read it; ``description`` says once what replaced the query's ranking."""

    query: int
    ranking: Ranking               # movement = rank in the list compared with - rank in this one
    dist_row: np.ndarray           # [g] distances the list is ordered by
    score_row: np.ndarray          # [g] QAConv logits shown on the tiles
    description: RankingDescription    # which image, which method, its AP; title and versus
    settings: object = None        # the PostSettings dist_row was computed under
    image: np.ndarray | None = None    # the probe when it is an edited copy of the query, uint8 [H, W, 3]
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
    movement: int | None   # ranks moved up (see Ranking.movement); None: no arrows, or junk


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
    ranks = protocol_ranks(status == JUNK)
    movement = None
    if raw_row is not None:
        # Both lists in the protocol's ranks (junk, the same images in both, not counted).
        junk = np.empty(len(order), bool)
        junk[order] = status == JUNK
        raw_order = np.argsort(np.asarray(raw_row, np.float32))
        raw_rank = np.empty(len(raw_order), np.int64)
        raw_rank[raw_order] = protocol_ranks(junk[raw_order])
        movement = raw_rank[order] - ranks
    return Ranking(order=order, status=status, movement=movement, ap=ap, first_hit_rank=first,
                   ranks=ranks)


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
            movement=None if ranking.movement is None or ranking.is_junk[pos]
            else int(ranking.movement[pos])))
    return items


def first_counted(items: list[ResultItem]) -> int | None:
    """Index of the first tile the protocol ranks (not junk); None when every tile is junk."""
    return next((i for i, item in enumerate(items) if item.status != JUNK), None)
