"""Feeds the match inspector: the pair follows the window's selection; its correspondence and
its scores under raw / +RR / +RR+TLift come from the engine.

A pair's correspondence is one small matrix product (NumPy, about 0.1 ms at the demo's 16 x 8
maps), computed on the GUI thread once the model's folded head is known (QAConv; a global model's
split needs none). An imported global model stores embeddings, not maps: its pair is explained
from the two images by the model (a forward pass each) in a background job. A model whose score
has no exact split gets a message instead of a picture. The head
needs the model (and torch, seconds) only the first time for a checkpoint; that first load runs
as a background job, and the head is cached on disk for the next launch. Distances of the
post-processing not currently applied are computed in the background too, and only when the
score blocks they need are already there (re-ranking's q-q and g-g).
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from engine.jobs import check_cancel
from viewer.inspector.state import InspectorState, method_scores
from viewer.state import PostSettings
from viewer.tasks import compute_distances

log = logging.getLogger(__name__)

__all__ = ["InspectorController", "explain_pair", "load_folded_head"]


def load_folded_head(session, *, progress, cancel):
    """Background job: load the model (first use) and fold its head for the inspector."""
    progress("load the model for the match inspector", 0, 1)
    check_cancel(cancel)
    head = session.folded_head()
    progress("load the model for the match inspector", 1, 1)
    return head


def explain_pair(session, query_image, gallery_index: int, *, progress, cancel):
    """Background job: the exact split of one pair from its two images (a model that stores
    embeddings, :meth:`engine.session.Session.explain_pair`; loads the model on first use)."""
    progress("explain the pair", 0, 1)
    corr = session.explain_pair(query_image, gallery_index, cancel=cancel)
    progress("explain the pair", 1, 1)
    return corr


class InspectorController(QObject):
    """Owns the :class:`InspectorState` of one window and keeps it in line with the selection."""

    #: The inspector asks to be shown (Enter, double-click, the Inspect button).
    show_requested = Signal()

    def __init__(self, controller, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.controller = controller
        self.state = controller.state
        self.inspector = InspectorState()
        controller.match_requested.connect(self.open_pair)
        for name in ("selected_query", "selected_result", "top_k", "junk_mode"):
            self.state.events[name].connect(self._follow_selection)
        for name in ("distmat", "extra_queries", "overrides"):
            self.state.events[name].connect(self._follow)
        self._probe = None  # the override whose probe the shown pair has, if any
        self.state.events.session.connect(self._session_changed)

    # ------------------------------------------------------------------ opening and closing
    def open(self) -> None:
        """Show the selected result (the Inspect button)."""
        item = self.state.selected_item()
        if item is not None:
            self.open_pair(self.state.selected_query, item.gallery_index)
        else:
            self.inspector.open = True

    def open_pair(self, query: int, gallery_index: int) -> None:
        self.inspector.open = True
        self.show_pair(query, gallery_index)
        self.show_requested.emit()

    def close(self) -> None:
        self.inspector.open = False
        self.inspector.hover = None

    def is_ready(self) -> bool:
        """The pair's correspondence and every score that can be computed are there."""
        ins = self.inspector
        return ((ins.correspondence is not None or bool(ins.unavailable)) and not self.state.busy
                and not any(s.note == "computing…" for s in ins.scores)
                and not self.controller.jobs.is_busy("inspect-head")
                and not self.controller.jobs.is_busy("inspect-pair")
                and not self.controller.jobs.is_busy("inspect-scores"))

    def _session_changed(self, _session=None) -> None:
        self.inspector.pair = None
        self.inspector.correspondence = None
        self.inspector.unavailable = ""
        self.inspector.scores = ()

    def _follow(self, _value=None) -> None:
        """The ranking changed: show the selected pair (scores and ranks anew) when open."""
        if not self.inspector.open or self.state.session is None:
            return
        item = self.state.selected_item()
        if item is not None:
            self.show_pair(self.state.selected_query, item.gallery_index)

    def _follow_selection(self, _value=None) -> None:
        """The selection changed: show the selected pair when open and not shown already."""
        item = None if self.state.session is None else self.state.selected_item()
        if item is not None and (self.state.selected_query, item.gallery_index) != self.inspector.pair:
            self._follow()

    # ------------------------------------------------------------------ the pair
    def probe_map(self, query: int):
        state = self.state
        override = state.override(query)
        if override is not None and override.maps is not None:  # the grid ranks an edited copy
            return override.maps
        if state.is_extra(query):
            return state.extra_queries[query - state.num_dataset_queries].maps
        return state.session.query_maps[query]

    def show_pair(self, query: int, gallery_index: int) -> None:
        inspector, session = self.inspector, self.state.session
        if session is None:
            return
        pair = (query, gallery_index)
        probe = self.state.override(query)  # e.g. an occluded copy, when the grid ranks it
        if pair != inspector.pair or inspector.correspondence is None or probe is not self._probe:
            self._probe = probe
            if session.stores_embeddings:  # no maps stored: the model explains the two images
                inspector.show(pair, None)
                self._explain(session, pair, probe)
            elif session.head_ready:
                try:
                    corr = session.correspondences(self.probe_map(query), gallery_index)
                except ValueError as exc:  # no exact split for this model: say so, draw none
                    inspector.show(pair, None, str(exc))
                else:
                    inspector.show(pair, corr)
            else:
                inspector.show(pair, None)
                self._load_head(session)
        self.update_scores()

    def _explain(self, session, pair: tuple[int, int], probe) -> None:
        """Split ``pair``'s score from its images in the background: the query's file (a dataset
        query or an external image) or the edited copy the grid ranks, and the gallery image."""
        query, gallery_index = pair
        image = (probe.image if probe is not None and probe.image is not None
                 else self.state.query_sample(query).path)

        def current() -> bool:
            return (session is self.state.session and self.inspector.pair == pair
                    and self._probe is probe)

        def explained(corr) -> None:
            if current():
                self.inspector.show(pair, corr)

        def failed(err) -> None:  # e.g. no exact split for this model: say so, draw none
            if current():
                self.inspector.show(pair, None, err.message)

        self.controller.jobs.submit(explain_pair, session, image, gallery_index,
                                    name="explain the pair", group="inspect-pair",
                                    on_result=explained, on_error=failed, busy=False, report=False)

    def _load_head(self, session) -> None:
        if self.controller.jobs.is_busy("inspect-head"):
            return

        def loaded(_head) -> None:
            if session is self.state.session and self.inspector.pair is not None:
                self.inspector.correspondence = None
                self.show_pair(*self.inspector.pair)

        self.controller.jobs.submit(load_folded_head, session, name="load the model for the inspector",
                                    group="inspect-head", on_result=loaded)

    # ------------------------------------------------------------------ scores per method
    def _settings(self) -> dict[str, PostSettings]:
        state = self.state
        out = {"raw": PostSettings(), "+RR": PostSettings(rerank=state.rerank)}
        if state.has_times:
            out["+RR+TLift"] = PostSettings(rerank=state.rerank, tlift=state.tlift)
        return out

    def _row(self, query: int, settings: PostSettings):
        state = self.state
        if state.is_extra(query):
            return state.extra_queries[query - state.num_dataset_queries].row(settings)
        if settings == state.applied:
            return state.distmat[query]
        if settings.is_raw:
            return state.raw_distmat[query]
        cached = self.controller.cache.get(settings)
        return None if cached is None else cached[0][query]

    def update_scores(self) -> None:
        """The pair's value and rank under each method; missing ones computed in the background."""
        state, inspector = self.state, self.inspector
        if inspector.pair is None or state.session is None:
            inspector.scores = ()
            return
        query, gallery_index = inspector.pair
        session = state.session
        rows, notes, missing = {}, {}, []
        override = state.override(query)
        for method, settings in self._settings().items():
            if override is not None:  # ranked once, under the settings applied then
                if settings == override.settings:
                    rows[method] = override.dist_row
                else:
                    notes[method] = f"not computed for the {override.description.probe or 'list shown'}"
                continue
            if settings.tlift is not None and state.is_extra(query):
                notes[method] = "no timestamp for an external image"
                continue
            row = self._row(query, settings)
            if row is None:
                if settings.rerank is not None and not {"qq", "gg"} <= set(session.logits):
                    notes[method] = "not computed (switch re-ranking on)"
                else:
                    notes[method] = "computing…"
                    missing.append(settings)
            rows[method] = row
        if not state.has_times:
            notes["+RR+TLift"] = "no timestamps in this dataset"
        sample = state.query_sample(query)
        logits = state.score_row(query) if override is None else override.score_row
        inspector.scores = tuple(method_scores(
            rows, notes, gallery_index, float(logits[gallery_index]),
            sample.pid, sample.cam, session.gallery_pids, session.gallery_cams,
            raw_label="cosine" if session.method == "global" else "logit"))
        if missing and not self.controller.jobs.is_busy("inspect-scores"):
            self._compute(session, missing)

    def _compute(self, session, missing: list[PostSettings]) -> None:
        extras = list(self.state.extra_queries)

        def run(*, progress, cancel):
            return [compute_distances(session, s, extras, progress=progress, cancel=cancel)
                    for s in missing]

        def done(results) -> None:
            if session is not self.state.session:
                return
            for result in results:
                self.controller.cache.put(result.settings, result.distmat, result.metrics)
                for extra, row in zip(extras, result.extra_rows, strict=False):
                    extra.rows[result.settings.without_tlift().key()] = row
            self.update_scores()

        self.controller.jobs.submit(run, name="scores for the inspector", group="inspect-scores",
                                    on_result=done, busy=False)
