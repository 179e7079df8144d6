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
import operator
import os
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from psygnal import Signal, SignalGroup, SignalGroupDescriptor
from psygnal._group_descriptor import evented_setattr  # documented, not yet exported

from engine.data.samples import Sample
from engine.evaluation import Metrics
from engine.export import method_for
from engine.postprocess.params import RerankParams, TLiftParams, stage_name
from viewer.ranking import (
    Ranking,
    RankingDescription,
    RankingOverride,
    ResultItem,
    describe_ranking,
    first_counted,
    rank_query,
    result_items,
    visible_positions,
)

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
        return stage_name(base, self.rerank is not None, self.tlift is not None)

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


class _Derived:
    """Values derived from some fields, dropped when any of those fields holds another object
    than when they were derived (no invalidation hook to forget)."""

    def __init__(self):
        self._sources: tuple = ()
        self._values: dict = {}

    def values_for(self, *sources: Any) -> dict:
        """The values derived from ``sources`` so far (empty when a source changed)."""
        if len(sources) != len(self._sources) or any(
                a is not b for a, b in zip(sources, self._sources, strict=True)):
            self._sources, self._values = sources, {}
        return self._values

    def clear(self) -> None:
        self._sources, self._values = (), {}


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


class ViewerEvents(SignalGroup):
    """A change event per field of :class:`ViewerState`, plus notes for the status bar."""

    message = Signal(str)           # a transient one-line note


@dataclass(eq=False, repr=False)  # no arrays in error messages
class ViewerState:
    """Dataset, engine session, distances, toggles, selection and filters of one window.

    Every field emits ``events.<field>(new, old)`` when it is assigned a different value
    (arrays and engine objects compare by identity). ``session`` comes first: the other fields'
    defaults are assigned while it is still None.
    """

    events: ClassVar[SignalGroupDescriptor] = SignalGroupDescriptor(
        signal_group_class=ViewerEvents, patch_setattr=False,
        equality_operators={name: operator.is_ for name in (
            "session", "raw_distmat", "raw_metrics", "distmat", "metrics", "extra_queries",
            "overrides", "second_ranks", "marks")})

    session: Any = None               # engine.session.Session once loaded
    raw_distmat: Any = None           # [q, g] float32 without post-processing
    raw_metrics: Any = None           # Metrics of raw_distmat (None if no query is valid)
    distmat: Any = None               # [q, g] float32 under `applied`
    metrics: Any = None               # Metrics of distmat
    applied: PostSettings = field(default_factory=PostSettings)   # settings of distmat
    rerank_on: bool = False
    rerank: RerankParams = field(default_factory=RerankParams)
    tlift_on: bool = False
    tlift: TLiftParams = field(default_factory=TLiftParams)
    extra_queries: tuple = ()         # tuple[ExtraQuery, ...]
    selected_query: int = -1
    selected_result: int = 0          # index into the visible result tiles
    top_k: int = 24
    junk_mode: str = "grey"           # "grey" | "hide"
    filter_cam: int | None = None     # None = any
    filter_gallery_cam: int | None = None   # the results show this gallery camera only
    filter_pid: str = ""              # identity text, "" = any
    filter_name: str = ""             # substring of the file name, "" = any
    sort_key: str = "file"            # one of SORT_KEYS
    busy: str = ""                    # description of the running session job, "" = idle
    progress: tuple | None = None     # (stage, done, total) of the running job, or None
    error: JobError | None = None     # to show, or None
    status: StatusInfo = field(default_factory=StatusInfo)
    load_failed: JobError | None = None   # when nothing could be loaded
    # query -> viewer.ranking.RankingOverride, the list shown instead of the query's own (an
    # occluded copy of it, ...). Replaced, never changed in place: see set_override.
    overrides: Mapping[int, RankingOverride] = field(default_factory=dict)
    # A second model's ranks of the gallery (viewer.compare.state.SecondRanks), for the same
    # settings as `applied`, shown on every tile beside this model's; None: no comparison.
    second_ranks: Any = None

    # The user's same / different marks of every query (viewer.marks.state.MarkBook) for the
    # session's dataset and checkpoint; None before they are read. Changed in place, then
    # announced by marks_changed().
    marks: Any = None

    # Changing these keeps the selected gallery image selected (see __setattr__).
    _FOLLOW_SELECTION: ClassVar[tuple[str, ...]] = ("junk_mode", "top_k")
    #: Results added when Right or scrolling goes past the last tile.
    MORE_STEP: ClassVar[int] = 24

    def __post_init__(self) -> None:
        # Values derived from fields, each kept with the fields it was derived from.
        self._rankings = _Derived()     # query -> Ranking
        self._visible = _Derived()      # None -> the browser's query list
        self._labels = _Derived()       # None -> (gallery pids, gallery cams)
        # (session, query, selected_result, gallery index): the image to select again once an
        # external query's row for the new settings arrives, while that selection stands.
        self._pending_follow: tuple | None = None

    @evented_setattr("events")
    def _assign(self, name: str, value: Any) -> None:
        """Assign an attribute; a field emits its change event."""
        super().__setattr__(name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        """Assign a field; a new junk mode or top-k keeps the same image selected (its event
        comes after the field's own)."""
        if name not in self._FOLLOW_SELECTION or self.session is None:
            self._assign(name, value)
            return
        item = self.selected_item()
        self._assign(name, value)
        self._reselect(item, extend=name != "top_k")

    @contextmanager
    def _batched(self, *names: str):
        """Hold the events of ``names`` until the block ends, then emit them in that order: a
        listener of any of them sees all the block's assignments made."""
        with ExitStack() as stack:
            for name in reversed(names):  # the last entered resumes first
                stack.enter_context(self.events[name].paused())
            yield

    def _reselect(self, item: ResultItem | None, *, extend: bool) -> None:
        """Select ``item``'s gallery image again after the list changed."""
        if item is None:
            return
        query = self.selected_query
        if self.select_gallery(item.gallery_index, extend=extend):
            return
        if self.ranking(query) is None:
            # An external query's row for new settings comes a moment later.
            self._pending_follow = (self.session, query, self.selected_result, item.gallery_index)
            return
        items = self.results()     # no longer in the list: the nearest ranked tile that is
        if self.selected_result >= len(items):
            counted = [i for i, it in enumerate(items) if it.status != "junk"]
            self.selected_result = counted[-1] if counted else max(len(items) - 1, 0)

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
        """Store a newly computed distance matrix and the settings it was computed with; the
        selected image stays selected."""
        # The selection follows the image: found under the settings it was made in.
        item = None if self.session is None else self.selected_item()
        # Listeners of `distmat` read `applied` and `metrics`.
        with self._batched("distmat", "applied", "metrics"):
            self.applied = settings
            self.metrics = metrics
            self.distmat = distmat
        self._reselect(item, extend=True)

    def marks_changed(self) -> None:
        """The mark book changed in place: tiles and the header read it again."""
        self.events.marks.emit(self.marks, self.marks)

    def query_key(self, query: int) -> str | None:
        """The name marks are kept under: a dataset query's path (None for an external image,
        which has no marks)."""
        if self.session is None or not 0 <= query < self.num_dataset_queries:
            return None
        return self.session.dataset.query[query].path

    def mark_of(self, query: int, gallery_index: int) -> str | None:
        """The user's mark of a gallery image for ``query``: ``same``, ``different`` or None."""
        key = self.query_key(query)
        return None if key is None or self.marks is None else self.marks.kind_of(key, gallery_index)

    def extra_rows_changed(self) -> None:
        """External queries got rows for more settings (their ``rows`` grew in place): rankings
        are recomputed on demand, and the image that waited for its row is selected again."""
        self._rankings.clear()
        self.events.extra_queries.emit(self.extra_queries, self.extra_queries)
        pending, self._pending_follow = self._pending_follow, None
        if pending is not None and pending[:3] == (self.session, self.selected_query,
                                                   self.selected_result):
            self.select_gallery(pending[3])

    # ------------------------------------------------------------------ query browser
    def visible_queries(self) -> list[int]:
        """Query numbers after filters and sort; external images first, always shown."""
        cache = self._visible.values_for(self.session, self.extra_queries, self.metrics, self.filter_cam,
                                  self.filter_pid, self.filter_name, self.sort_key)
        if None not in cache:
            cache[None] = self._filter_and_sort()
        return cache[None]

    def _filter_and_sort(self) -> list[int]:
        if self.session is None:
            return []
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
        return list(range(n, n + len(self.extra_queries))) + keep

    # ------------------------------------------------------------------ results
    def distance_row(self, query: int, settings: PostSettings | None = None) -> np.ndarray | None:
        """Distances ``[g]`` of one query under ``settings`` (default: applied)."""
        settings = self.applied if settings is None else settings
        if self.is_extra(query):
            return self.extra_queries[query - self.num_dataset_queries].row(settings)
        matrix = self.distmat if settings == self.applied else (
            self.raw_distmat if settings.is_raw else None)
        return None if matrix is None else matrix[query]

    def override(self, query: int) -> RankingOverride | None:
        """The list shown for ``query`` instead of its own ranking, if any."""
        return self.overrides.get(query)

    def shown_ranking(self, query: int) -> Ranking | None:
        """The ranking the grid shows for ``query``: its override's, else its own."""
        override = self.override(query)
        return self.ranking(query) if override is None else override.ranking

    def set_override(self, query: int, override: RankingOverride | None) -> None:
        """Show ``override`` for ``query`` instead of its ranking (None: its own ranking again);
        the selected image stays selected where the new list shows it."""
        if self.overrides.get(query) is override:
            return
        item = self.selected_item() if query == self.selected_query else None
        overrides = {q: o for q, o in self.overrides.items() if q != query}
        if override is not None:
            overrides[query] = override
        self.overrides = overrides
        if item is not None and not self.select_gallery(item.gallery_index, extend=False):
            self.selected_result = self.default_result()

    def describe(self, query: int, *, own: bool = False) -> RankingDescription | None:
        """What the grid shows for ``query``: which image, ranked by which method with the stages
        actually applied, its AP (None before it is ranked). The one description the header,
        the grid, the inspector, the occlusion panel and the CSV export read. ``own``: the
        query's own ranking even while an override replaces it."""
        override = None if own else self.override(query)
        if override is not None:
            return override.description
        ranking = self.ranking(query)
        if ranking is None:
            return None
        # The stages applied to this image: TLift skips one without timestamp.
        method = method_for(self.query_sample(query), self.applied.method(self.base_method))
        note = ("TLift is not applied to this image (it has no timestamp)."
                if self.applied.tlift is not None and not method.endswith("+tlift") else "")
        return describe_ranking(ranking, method, note=note,
                                versus="" if self.applied.is_raw else "no post-processing")

    def score_row(self, query: int) -> np.ndarray:
        """QAConv logits ``[g]`` of one query (higher = more similar)."""
        if self.is_extra(query):
            return self.extra_queries[query - self.num_dataset_queries].logits
        return self.session.logits["qg"][query]

    def ranking(self, query: int) -> Ranking | None:
        """The query's ranked list under the applied settings (cached until distances change)."""
        if query < 0 or query >= self.num_queries or self.session is None:
            return None
        cache = self._rankings.values_for(self.session, self.distmat, self.raw_distmat,
                                   self.extra_queries, self.applied)
        cached = cache.get(query)
        if cached is not None:
            return cached
        dist = self.distance_row(query)
        if dist is None:
            return None
        raw = None if self.applied.is_raw else self.distance_row(query, PostSettings())
        sample = self.query_sample(query)
        labels = self._labels.values_for(self.session)
        if None not in labels:  # the session rebuilds these arrays on every call
            labels[None] = (self.session.gallery_pids, self.session.gallery_cams)
        ranking = rank_query(dist, raw, sample.pid, sample.cam, *labels[None])
        cache[query] = ranking
        return ranking

    def results(self, query: int | None = None) -> list[ResultItem]:
        """The tiles of the results grid: top-k, junk hidden or not."""
        query = self.selected_query if query is None else query
        override = self.override(query)
        if override is not None:
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
        """Select a query and its first ranked result, junk skipped (listeners of either see
        both already set)."""
        with self._batched("selected_query", "selected_result"):
            self.selected_result = self.default_result(query)
            self.selected_query = query

    def default_result(self, query: int | None = None) -> int:
        """The tile selected when nothing else is: the first the protocol ranks (junk stays
        visible and can be clicked, but is never chosen for the user); 0 when all are junk."""
        index = first_counted(self.results(query))
        return 0 if index is None else index

    def step_result(self, step: int) -> None:
        """Select the ``step``-th ranked tile after (before, when negative) the selected one,
        junk skipped; past the last one, more results are shown first."""
        if step == 0:
            return
        while True:
            items = self.results()
            current = self.selected_result
            if step > 0:
                ahead = [i for i, it in enumerate(items) if i > current and it.status != "junk"]
            else:
                ahead = [i for i, it in reversed(list(enumerate(items)))
                         if i < current and it.status != "junk"]
            if len(ahead) >= abs(step) or step < 0 or self.top_k >= self.max_top_k:
                break
            self.show_more(self.top_k + max(self.MORE_STEP, step), "to step past the last result")
        if ahead:
            self.selected_result = ahead[min(abs(step), len(ahead)) - 1]

    def show_more(self, top_k: int, why: str) -> None:
        """Raise top-k to ``top_k`` (at most the gallery) to show what the user went to, and say
        so in the status bar: the setting never changes silently."""
        top_k = min(top_k, self.max_top_k)
        if top_k <= self.top_k:
            return
        before = self.top_k
        # Without the follow rule of __setattr__: a longer list keeps every tile where it was.
        self._assign("top_k", top_k)
        self.events.message.emit(f"Top-k raised from {before} to {top_k} {why}")

    @property
    def max_top_k(self) -> int:
        """Top-k can reach the whole gallery."""
        return 1 if self.session is None else max(1, len(self.session.dataset.gallery))

    def select_gallery(self, gallery_index: int, *, extend: bool = True) -> bool:
        """Select the tile of a gallery image in the current query's list.

        ``extend`` lets top-k grow so that the image is shown. Returns whether it is selected
        (False: not in the visible list, e.g. junk while junk is hidden).
        """
        ranking = self.shown_ranking(self.selected_query)
        if ranking is None:
            return False
        position = ranking.position_of(gallery_index)
        if self.junk_mode == "hide" and ranking.is_junk[position]:
            return False
        shown = int(ranking.ranks[position]) if self.junk_mode == "hide" else position + 1
        if shown > self.top_k:
            if not extend:
                return False
            rank = int(ranking.ranks[position])
            self.show_more(-(-shown // self.MORE_STEP) * self.MORE_STEP,
                           f"to show the result at rank {rank}" if rank > 0 else "to show that result")
        index = next((i for i, item in enumerate(self.results())
                      if item.gallery_index == gallery_index), None)
        if index is None:  # filtered out (another gallery camera)
            return False
        self.selected_result = index
        return True

    def select_rank(self, rank: int) -> bool:
        """Select the result with this 1-based rank (the protocol's count, junk not counted)."""
        ranking = self.shown_ranking(self.selected_query)
        if ranking is None:
            return False
        hits = np.flatnonzero(ranking.ranks == rank)
        return bool(hits.size) and self.select_gallery(int(ranking.order[hits[0]]))

    def select_first_true_match(self) -> bool:
        """Select the selected query's first true match (showing more results if needed)."""
        ranking = self.shown_ranking(self.selected_query)
        if ranking is None or ranking.first_hit_rank < 1:
            return False
        position = int(np.flatnonzero(ranking.status == "true")[0])
        return self.select_gallery(int(ranking.order[position]))
