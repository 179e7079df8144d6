"""The viewer's session as plain data that emits change events (no Qt here).

Widgets are thin bindings: they listen to ``state.events.<field>`` and write the user's changes
back by assignment. The controller (``viewer.controller``) runs the engine in background jobs
and stores their products here.

Two kinds of post-processing settings are kept apart:

- the *requested* settings: the toggles and parameters the user sets (``rerank_on``,
  ``rerank``, ``tlift_on``, ``tlift``);
- the *applied* settings (``applied``): those the current ``distmat`` was computed with. They
  differ while a recomputation runs; a cancelled or failed one puts the toggles back.

Queries are numbered ``0 .. len(dataset.query) - 1`` for the dataset's own queries, then one
number per external image added with "open image as query" (``extra_queries``).
"""
from __future__ import annotations

import dataclasses
import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from engine.data.samples import Sample
from engine.evaluation import Metrics
from engine.postprocess.params import RerankParams, TLiftParams
from viewer.events import EventedModel
from viewer.ranking import Ranking, ResultItem, rank_query, result_items, visible_positions

__all__ = ["PostSettings", "ExtraQuery", "JobError", "StatusInfo", "DistanceCache", "ViewerState",
           "SORT_KEYS", "JUNK_MODES"]

SORT_KEYS = ("file", "identity", "ap")
JUNK_MODES = ("grey", "hide")


@dataclass(frozen=True)
class PostSettings:
    """Which post-processing a distance matrix was (or is to be) computed with."""

    rerank: RerankParams | None = None
    tlift: TLiftParams | None = None

    def key(self) -> tuple:
        """A hashable identity of these settings (cache key)."""
        return (None if self.rerank is None else dataclasses.astuple(self.rerank),
                None if self.tlift is None else dataclasses.astuple(self.tlift))

    @property
    def is_raw(self) -> bool:
        return self.rerank is None and self.tlift is None

    def method(self, base: str = "qaconv") -> str:
        """``qaconv``, ``qaconv+rr``, ``qaconv+tlift`` or ``qaconv+rr+tlift``."""
        parts = [base] + (["rr"] if self.rerank else []) + (["tlift"] if self.tlift else [])
        return "+".join(parts)

    def without_tlift(self) -> PostSettings:
        return PostSettings(self.rerank, None)


@dataclass(eq=False)
class ExtraQuery:
    """An image from outside the dataset used as a query (no identity, camera or time).

    ``rows`` maps ``PostSettings.key()`` (TLift dropped: no timestamp) to distances ``[g]``.
    """

    sample: Sample
    logits: np.ndarray                  # [g] float32, QAConv logits against the gallery
    self_logit: np.ndarray              # [1, 1] float32, the image scored against itself (RR)
    maps: np.ndarray | None = None      # [D, h, w] float16 feature map, for later views
    rows: dict[tuple, np.ndarray] = field(default_factory=dict)

    def row(self, settings: PostSettings) -> np.ndarray | None:
        return self.rows.get(settings.without_tlift().key())


@dataclass(frozen=True)
class JobError:
    """An error to show in the window: a one-line message and the detail (traceback)."""

    title: str
    message: str
    detail: str = ""


@dataclass(frozen=True)
class StatusInfo:
    """What the status bar shows."""

    device: str = ""
    cache: str = ""
    last_step: str = ""
    detail: str = ""        # longer explanation (tooltip)


class DistanceCache:
    """Recently computed ``(distmat, metrics)`` per settings, so toggling back is instant.

    Bounded by total bytes of the distance matrices (least recently used dropped first).
    """

    def __init__(self, max_bytes: int = 512 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, tuple[np.ndarray, Metrics | None]] = OrderedDict()

    def get(self, settings: PostSettings):
        item = self._items.get(settings.key())
        if item is not None:
            self._items.move_to_end(settings.key())
        return item

    def put(self, settings: PostSettings, distmat: np.ndarray, metrics: Metrics | None) -> None:
        self._items[settings.key()] = (distmat, metrics)
        self._items.move_to_end(settings.key())
        while len(self._items) > 1 and sum(d.nbytes for d, _ in self._items.values()) > self.max_bytes:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class ViewerState(EventedModel):
    """Dataset, engine session, distances, toggles, selection and filters of one window."""

    _fields = {
        "session": None,              # engine.session.Session once loaded
        "raw_distmat": None,          # [q, g] float32 without post-processing
        "raw_metrics": None,          # Metrics of raw_distmat (None if no query is valid)
        "distmat": None,              # [q, g] float32 under `applied`
        "metrics": None,              # Metrics of distmat
        "applied": PostSettings(),    # settings of distmat
        "rerank_on": False,
        "rerank": RerankParams(),
        "tlift_on": False,
        "tlift": TLiftParams(),
        "extra_queries": (),          # tuple[ExtraQuery, ...]
        "selected_query": -1,
        "selected_result": 0,         # index into the visible result tiles
        "top_k": 24,
        "junk_mode": "grey",          # "grey" | "hide"
        "filter_cam": None,           # int or None (any)
        "filter_gallery_cam": None,   # int or None: the results show this gallery camera only
        "filter_pid": "",             # identity text, "" = any
        "filter_name": "",            # substring of the file name, "" = any
        "sort_key": "file",           # one of SORT_KEYS
        "busy": "",                   # description of the running session job, "" = idle
        "progress": None,             # (stage, done, total) of the running job, or None
        "error": None,                # JobError to show, or None
        "status": StatusInfo(),
        "load_failed": None,          # JobError when nothing could be loaded
        # A list shown in the grid instead of the query's own (an occluded query, see
        # viewer.occlusion.state.RankingOverride): has .query, .ranking, .dist_row, .score_row.
        "override": None,
    }
    _signals = ("message",)           # transient one-line notes for the status bar

    # Changing these keeps the selected gallery image selected (see __setattr__).
    _FOLLOW_SELECTION = ("distmat", "junk_mode", "top_k")
    #: Results added when Right or scrolling goes past the last tile.
    MORE_STEP = 24

    def __init__(self, **values):
        super().__init__(**values)
        self._ranking_cache: dict[int, Ranking] = {}
        self._visible_cache: list[int] | None = None
        self._gallery_labels: tuple[np.ndarray, np.ndarray] | None = None
        self._pending_follow: tuple[int, int] | None = None

    def __setattr__(self, name, value) -> None:
        """Assign a field; a new ranking, junk mode or top-k keeps the same image selected."""
        if name not in self._FOLLOW_SELECTION or self.session is None:
            super().__setattr__(name, value)
            return
        item = self.selected_item()
        super().__setattr__(name, value)
        self._reselect(item, extend=name != "top_k")

    def _reselect(self, item: ResultItem | None, *, extend: bool) -> None:
        """Select ``item``'s gallery image again after the list changed."""
        if item is None:
            return
        query = self.selected_query
        if self.select_gallery(item.gallery_index, extend=extend):
            return
        if self.ranking(query) is None:
            # An external query's row for new settings comes a moment later.
            object.__setattr__(self, "_pending_follow", (query, item.gallery_index))
            return
        count = len(self.results())     # no longer in the list: the nearest tile that is
        if self.selected_result >= count:
            self.selected_result = max(count - 1, 0)

    # ------------------------------------------------------------------ cache upkeep
    def _field_changed(self, name: str) -> None:
        if name == "session":
            self._gallery_labels = None
        if name in ("selected_query", "selected_result", "session"):
            object.__setattr__(self, "_pending_follow", None)
        if name in ("session", "distmat", "raw_distmat", "extra_queries", "applied"):
            self._ranking_cache.clear()
        if name in ("session", "extra_queries", "metrics", "filter_cam", "filter_pid",
                    "filter_name", "sort_key"):
            self._visible_cache = None

    # ------------------------------------------------------------------ dataset views
    @property
    def dataset(self):
        return None if self.session is None else self.session.dataset

    @property
    def num_dataset_queries(self) -> int:
        return 0 if self.session is None else len(self.session.dataset.query)

    @property
    def num_queries(self) -> int:
        return self.num_dataset_queries + len(self.extra_queries)

    def is_extra(self, query: int) -> bool:
        return query >= self.num_dataset_queries

    def query_sample(self, query: int) -> Sample:
        n = self.num_dataset_queries
        return self.session.dataset.query[query] if query < n else self.extra_queries[query - n].sample

    def query_cameras(self) -> list[int]:
        """Cameras of the dataset's queries, sorted (for the camera filter)."""
        return [] if self.session is None else sorted({s.cam for s in self.session.dataset.query})

    def gallery_cameras(self) -> list[int]:
        """Cameras of the gallery, sorted (for the results' camera filter)."""
        return [] if self.session is None else sorted({s.cam for s in self.session.dataset.gallery})

    @property
    def has_times(self) -> bool:
        return self.session is not None and self.session.has_times

    @property
    def base_method(self) -> str:
        return "qaconv" if self.session is None else self.session.method

    def query_ap(self, query: int) -> float:
        if self.is_extra(query) or self.metrics is None:
            return math.nan
        return float(self.metrics.ap[query])

    # ------------------------------------------------------------------ settings
    def requested_settings(self) -> PostSettings:
        """The settings the toggles ask for (TLift only where the data has timestamps)."""
        return PostSettings(rerank=self.rerank if self.rerank_on else None,
                            tlift=self.tlift if (self.tlift_on and self.has_times) else None)

    def show_settings(self, settings: PostSettings) -> None:
        """Set the toggles and parameters to ``settings`` (e.g. back to the applied ones)."""
        self.rerank_on = settings.rerank is not None
        if settings.rerank is not None:
            self.rerank = settings.rerank
        self.tlift_on = settings.tlift is not None
        if settings.tlift is not None:
            self.tlift = settings.tlift

    def set_distances(self, settings: PostSettings, distmat: np.ndarray, metrics: Metrics | None) -> None:
        """Store a newly computed distance matrix and the settings it was computed with."""
        # The selection follows the image: found under the settings it was made in.
        item = None if self.session is None else self.selected_item()
        # Order matters: listeners of `distmat` read `applied` and `metrics`.
        object.__setattr__(self, "applied", settings)
        object.__setattr__(self, "metrics", metrics)
        self._field_changed("applied")
        self._field_changed("metrics")
        EventedModel.__setattr__(self, "distmat", distmat)
        self._reselect(item, extend=True)
        self.events.applied.emit(settings)
        self.events.metrics.emit(metrics)

    def set_metrics(self, metrics: Metrics | None) -> None:
        """The metrics of the applied distances, computed after they were shown."""
        object.__setattr__(self, "metrics", metrics)
        self._field_changed("metrics")
        self.events.metrics.emit(metrics)

    def extra_rows_changed(self) -> None:
        """External queries got rows for more settings: rankings are recomputed on demand."""
        self._field_changed("extra_queries")
        self.events.extra_queries.emit(self.extra_queries)
        pending, self._pending_follow = self._pending_follow, None
        if pending is not None and pending[0] == self.selected_query:
            self.select_gallery(pending[1])

    # ------------------------------------------------------------------ query browser
    def visible_queries(self) -> list[int]:
        """Query numbers after filters and sort; external images first, always shown."""
        if self._visible_cache is not None:
            return self._visible_cache
        if self.session is None:
            self._visible_cache = []
            return self._visible_cache
        queries = self.session.dataset.query
        pid_text = self.filter_pid.strip()
        name_text = self.filter_name.strip().lower()
        keep = []
        for i, s in enumerate(queries):
            if self.filter_cam is not None and s.cam != self.filter_cam:
                continue
            if pid_text and str(s.pid) != pid_text.lstrip("0") and str(s.pid) != pid_text:
                continue
            if name_text and name_text not in os.path.basename(s.path).lower():
                continue
            keep.append(i)
        if self.sort_key == "identity":
            keep.sort(key=lambda i: (queries[i].pid, queries[i].cam, os.path.basename(queries[i].path)))
        elif self.sort_key == "ap":
            # Worst first; queries without a true match (NaN) last.
            keep.sort(key=lambda i: (math.isnan(self.query_ap(i)), self.query_ap(i), i))
        else:
            keep.sort(key=lambda i: os.path.basename(queries[i].path))
        n = self.num_dataset_queries
        self._visible_cache = list(range(n, n + len(self.extra_queries))) + keep
        return self._visible_cache

    # ------------------------------------------------------------------ results
    def distance_row(self, query: int, settings: PostSettings | None = None) -> np.ndarray | None:
        """Distances ``[g]`` of one query under ``settings`` (default: applied)."""
        settings = self.applied if settings is None else settings
        if self.is_extra(query):
            return self.extra_queries[query - self.num_dataset_queries].row(settings)
        matrix = self.distmat if settings == self.applied else (
            self.raw_distmat if settings.is_raw else None)
        return None if matrix is None else matrix[query]

    def occluded(self, query: int):
        """The occlusion panel's ranking of an occluded copy of ``query`` when the grid shows it
        (a :class:`~viewer.occlusion.state.RankingOverride`), else None."""
        override = self.override
        return override if override is not None and override.query == query else None

    def score_row(self, query: int) -> np.ndarray:
        """QAConv logits ``[g]`` of one query (higher = more similar)."""
        if self.is_extra(query):
            return self.extra_queries[query - self.num_dataset_queries].logits
        return self.session.logits["qg"][query]

    def ranking(self, query: int) -> Ranking | None:
        """The query's ranked list under the applied settings (cached until distances change)."""
        if query < 0 or query >= self.num_queries or self.session is None:
            return None
        cached = self._ranking_cache.get(query)
        if cached is not None:
            return cached
        dist = self.distance_row(query)
        if dist is None:
            return None
        raw = None if self.applied.is_raw else self.distance_row(query, PostSettings())
        sample = self.query_sample(query)
        if self._gallery_labels is None:  # the session rebuilds these arrays on every call
            self._gallery_labels = (self.session.gallery_pids, self.session.gallery_cams)
        ranking = rank_query(dist, raw, sample.pid, sample.cam, *self._gallery_labels)
        self._ranking_cache[query] = ranking
        return ranking

    def results(self, query: int | None = None) -> list[ResultItem]:
        """The tiles of the results grid: top-k, junk hidden or not."""
        query = self.selected_query if query is None else query
        override = self.override
        if override is not None and override.query == query:
            positions = visible_positions(override.ranking, self.top_k, self.junk_mode == "hide")
            return result_items(override.ranking, positions, override.dist_row, override.score_row)
        ranking = self.ranking(query)
        if ranking is None:
            return []
        keep = None
        if self.filter_gallery_cam is not None:
            keep = self.session.gallery_cams[ranking.order] == self.filter_gallery_cam
        positions = visible_positions(ranking, self.top_k, self.junk_mode == "hide", keep)
        return result_items(ranking, positions, self.distance_row(query), self.score_row(query))

    def selected_item(self) -> ResultItem | None:
        items = self.results()
        if 0 <= self.selected_result < len(items):
            return items[self.selected_result]
        return None

    # ------------------------------------------------------------------ navigation
    def step_query(self, step: int) -> None:
        """Select the previous (-1) or next (+1) query in the browser's order."""
        visible = self.visible_queries()
        if not visible:
            return
        if self.selected_query in visible:
            index = min(max(visible.index(self.selected_query) + step, 0), len(visible) - 1)
        else:
            index = 0
        self.select_query(visible[index])

    def select_query(self, query: int) -> None:
        """Select a query and its first result (listeners of either see both already set)."""
        changed = self.selected_result != 0
        object.__setattr__(self, "selected_result", 0)
        self._field_changed("selected_result")
        self.selected_query = query
        if changed:
            self.events.selected_result.emit(0)

    def step_result(self, step: int) -> None:
        """Select the previous/next tile; past the last one, more results are shown first."""
        count = len(self.results())
        if step > 0 and self.selected_result + step >= count and self.top_k < self.max_top_k:
            self.top_k = min(self.top_k + max(self.MORE_STEP, step), self.max_top_k)
            count = len(self.results())
        if count:
            self.selected_result = min(max(self.selected_result + step, 0), count - 1)

    @property
    def max_top_k(self) -> int:
        """Top-k can reach the whole gallery."""
        return 1 if self.session is None else max(1, len(self.session.dataset.gallery))

    def select_gallery(self, gallery_index: int, *, extend: bool = True) -> bool:
        """Select the tile of a gallery image in the current query's list.

        ``extend`` lets top-k grow so that the image is shown. Returns whether it is selected
        (False: not in the visible list, e.g. junk while junk is hidden).
        """
        ranking = self.ranking(self.selected_query)
        if ranking is None:
            return False
        position = ranking.position_of(gallery_index)
        if self.junk_mode == "hide" and ranking.is_junk[position]:
            return False
        shown = int(ranking.ranks[position]) if self.junk_mode == "hide" else position + 1
        if shown > self.top_k:
            if not extend:
                return False
            object.__setattr__(self, "top_k", min(self.max_top_k, -(-shown // self.MORE_STEP) * self.MORE_STEP))
            self._field_changed("top_k")
            self.events.top_k.emit(self.top_k)
        index = next(i for i, item in enumerate(self.results()) if item.gallery_index == gallery_index)
        self.selected_result = index
        return True

    def select_rank(self, rank: int) -> bool:
        """Select the result with this 1-based rank (the protocol's count, junk not counted)."""
        ranking = self.ranking(self.selected_query)
        if ranking is None:
            return False
        hits = np.flatnonzero(ranking.ranks == rank)
        return bool(hits.size) and self.select_gallery(int(ranking.order[hits[0]]))

    def select_first_true_match(self) -> bool:
        """Select the selected query's first true match (showing more results if needed)."""
        ranking = self.ranking(self.selected_query)
        if ranking is None or ranking.first_hit_rank < 1:
            return False
        position = int(np.flatnonzero(ranking.status == "true")[0])
        return self.select_gallery(int(ranking.order[position]))
