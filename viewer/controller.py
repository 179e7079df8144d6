"""Runs the engine for the window: starts background jobs and stores their products in the state.

The controller is the only place that turns a state change into engine work: a change of the
post-processing toggles or parameters starts (after a short pause, so typing a number is one
request) a recomputation unless the result is cached; loading, external queries and exports are
jobs too. Results, errors and cancellations come back on the GUI thread and are written to
:class:`viewer.state.ViewerState`; widgets only ever look at the state.
"""
from __future__ import annotations

import logging
import os
import time

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from viewer.jobs import EXIT_WAIT_MS, JobService, Worker
from viewer.state import DistanceCache, JobError, PostSettings, StatusInfo, ViewerState
from viewer.tasks import (
    Computed,
    Loaded,
    LoadRequest,
    NeedsSize,
    compute_distances,
    evaluate_distances,
    export_ranked_csv,
    extra_rows,
    load_session,
    pending_blocks,
    score_external,
    score_rerank_blocks,
)

log = logging.getLogger(__name__)

__all__ = ["Controller"]

# Pause after the last parameter edit before recomputing (ms).
RECOMPUTE_DELAY_MS = 250


class Controller(QObject):
    """Owns the state and the job service of one window."""

    #: (query number, gallery index): Enter / double-click on a result; the match inspector
    #: (viewer.inspector.controller) opens on it.
    match_requested = Signal(int, int)
    #: Emitted once a load finished (successfully or not); for the launcher's --screenshot.
    load_finished = Signal(bool)
    #: Emitted after an export finished: (path, rows) or (path, -1) on failure.
    export_finished = Signal(str, int)
    #: (viewer.tasks.NeedsSize, LoadRequest): another project's checkpoint whose input size
    #: must be asked for; the window asks and loads again with it.
    input_size_needed = Signal(object, object)

    def __init__(self, state: ViewerState | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state or ViewerState()
        self.jobs = JobService(self.state, self)
        self.cache = DistanceCache()
        self.last_request: LoadRequest | None = None
        self._post_worker: Worker | None = None
        self._load_summary, self._scoring_note, self._model_note = ("", ""), "", ""
        self._closed = False
        self._without_metrics: set = set()  # settings whose evaluation found no true match
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RECOMPUTE_DELAY_MS)
        self._timer.timeout.connect(self.recompute)
        for name in ("rerank_on", "tlift_on"):
            # A toggle is one deliberate click: no need to wait for more input.
            self.state.events[name].connect(lambda _v: self._schedule(0))
        for name in ("rerank", "tlift"):
            self.state.events[name].connect(lambda _v: self._schedule(RECOMPUTE_DELAY_MS))

    # ------------------------------------------------------------------ helpers
    def _status(self, last_step: str, detail: str = "") -> None:
        session = self.state.session
        if session is None:
            return
        hits = session.cache_hits
        if hits:
            cached = sum(bool(v) for v in hits.values())
            cache = (f"cache: all {cached} products reused" if cached == len(hits)
                     else f"cache: {cached}/{len(hits)} reused, {len(hits) - cached} computed")
        else:
            cache = "cache: -"
        self.state.status = StatusInfo(device=f"device: {session.device}", cache=cache,
                                       last_step=last_step, detail=detail)

    # ------------------------------------------------------------------ loading
    def load(self, request: LoadRequest) -> Worker:
        """Open a dataset and checkpoint in the background; the current session stays until then."""
        self.last_request = request
        self.jobs.cancel("prefetch")  # blocks of the previous data (finished tiles are kept)
        return self.jobs.submit(load_session, request, name="load", group="load",
                                on_result=self._loaded, on_error=lambda e: self._load_failed(e),
                                on_cancel=lambda: self._load_failed(None))

    def _load_failed(self, err: JobError | None) -> None:
        if self.state.session is None:
            # Nothing on screen yet: the loading page shows the message; no banner as well.
            self.state.error = None
            self.state.load_failed = err or JobError("load cancelled", "loading was cancelled")
        QTimer.singleShot(0, self, lambda: self.load_finished.emit(False))

    def _loaded(self, loaded: Loaded | NeedsSize) -> None:
        state = self.state
        if isinstance(loaded, NeedsSize):
            request = self.last_request
            self._load_failed(JobError("input size needed", f"{loaded.message} (choose the input "
                                       "size to open it with)"))
            self.input_size_needed.emit(loaded, request)
            return
        self.jobs.cancel("post")  # anything computed for the previous session is moot
        self.cache.clear()
        self._without_metrics.clear()
        self.cache.put(PostSettings(), loaded.raw_distmat, loaded.raw_metrics)
        state.load_failed = None
        state.extra_queries = ()
        state.overrides = {}  # numbered by the previous data's queries
        state.applied = PostSettings()
        state.raw_distmat = loaded.raw_distmat
        state.raw_metrics = loaded.raw_metrics
        state.session = loaded.session
        state.set_distances(PostSettings(), loaded.raw_distmat, loaded.raw_metrics)
        if loaded.raw_metrics is None:  # a large set: painted first, evaluated now
            self._evaluate(PostSettings(), loaded.raw_distmat)
        total = sum(loaded.steps.values())
        self._scoring_note, self._model_note = loaded.scoring_note, loaded.model_note
        if loaded.model_note:
            state.events.message.emit(loaded.model_note)
        self._load_summary = (f"loaded in {total:.1f} s",
                              "\n".join(f"{k}: {v:.2f} s" for k, v in loaded.steps.items()))
        self._status_loaded()
        if not state.has_times:
            state.tlift_on = False
        visible = state.visible_queries()
        state.select_query(visible[0] if visible else -1)
        # Toggles set before the data arrived (or kept from the previous data) apply now.
        self._schedule(0)
        if loaded.prefetch and pending_blocks(loaded.session):
            self._prefetch(loaded.session)
        # After the job's own `finished` (queued behind this callback) has cleared the busy state.
        QTimer.singleShot(0, self, lambda: self.load_finished.emit(True))

    def _status_loaded(self) -> None:
        """Status after loading: time taken, two-stage retrieval, blocks still to score."""
        session = self.state.session
        (last, detail), note = self._load_summary, self._scoring_note
        if self._model_note:
            last = "converted model · " + last
            detail = self._model_note + "\n" + detail
        if note:
            k = session.shortlist if session is not None else None
            last += f" · two-stage retrieval (K={k})" if k is not None else ""
            detail = note + "\n" + detail
        pending = pending_blocks(session) if session is not None else ()
        if pending:
            names = ", ".join(n[0] + "-" + n[1] for n in pending)
            last += f" · pending: {names} (for re-ranking)"
            detail += f"\npending: {names} scores, computed in the background or when re-ranking is switched on"
        self._status(last, detail)

    def _prefetch(self, session) -> Worker:
        """Score q-q and g-g in the background after the first paint (cancellable, resumable)."""
        def done(_names) -> None:
            if session is self.state.session and self.state.applied.is_raw:
                self._status_loaded()

        return self.jobs.submit(score_rerank_blocks, session, name="score re-ranking blocks",
                                group="prefetch", pool="background", on_result=done,
                                on_cancel=lambda: self._status_loaded() if session is self.state.session else None)

    # ------------------------------------------------------------------ post-processing
    def _schedule(self, delay_ms: int) -> None:
        if self._closed:
            return
        self._timer.start(delay_ms)

    def recompute(self) -> Worker | None:
        """Bring the distances in line with the requested settings (cached, or a background job)."""
        self._timer.stop()
        state = self.state
        if state.session is None or self._closed:
            return None
        wanted = state.requested_settings()
        if wanted == state.applied:
            self.jobs.cancel("post")
            return None
        cached = self.cache.get(wanted)
        if cached is not None:
            self.jobs.cancel("post")
            self._apply(wanted, *cached, seconds=0.0)
            return None

        def revert(*_args) -> None:
            # A job cancelled because a newer request replaced it must not undo that request.
            if self._post_worker is worker:
                self._revert()

        session = state.session

        def computed(result: Computed) -> None:
            # A job queued before a new dataset was loaded finishes for the old one: drop it.
            if session is self.state.session:
                self._computed(result)

        reranked = self.cache.get(wanted.without_tlift()) if wanted.rerank and wanted.tlift else None
        # The new ranking is shown first; its metrics follow from a job of their own (_apply).
        worker = self.jobs.submit(compute_distances, session, wanted, list(state.extra_queries),
                                  reranked=None if reranked is None else reranked[0], metrics=False,
                                  name=f"compute {wanted.method(state.base_method)}", group="post",
                                  on_result=computed, on_cancel=revert, on_error=revert)
        self._post_worker = worker
        return worker

    def _computed(self, result: Computed) -> None:
        if result.rerank_only is not None:
            self.cache.put(*result.rerank_only)
        self.cache.put(result.settings, result.distmat, result.metrics)
        for extra, row in zip(self.state.extra_queries, result.extra_rows, strict=False):
            extra.rows[result.settings.without_tlift().key()] = row
        if result.settings == self.state.requested_settings():
            self._apply(result.settings, result.distmat, result.metrics, seconds=result.seconds)

    def _apply(self, settings: PostSettings, distmat: np.ndarray, metrics, *, seconds: float) -> None:
        t0 = time.perf_counter()
        self.state.set_distances(settings, distmat, metrics)
        method = settings.method(self.state.base_method)
        took = seconds + time.perf_counter() - t0
        self._status(f"{method}: {took:.2f} s" + (" (cached)" if seconds == 0.0 else ""))
        if metrics is None and settings.key() not in self._without_metrics:
            self._evaluate(settings, distmat)
        self._fill_extra_rows()

    def _evaluate(self, settings: PostSettings, distmat: np.ndarray) -> Worker:
        """Metrics of a ranking already shown (evaluating every query takes most of a
        Market-size toggle); the panels fill in when they arrive."""
        session = self.state.session

        def done(metrics) -> None:
            if session is not self.state.session:
                return
            if metrics is None:  # no query has a true match: do not try again
                self._without_metrics.add(settings.key())
                return
            if self.cache.get(settings) is not None:
                self.cache.put(settings, distmat, metrics)
            if settings.is_raw and self.state.raw_distmat is distmat:
                self.state.raw_metrics = metrics
            if self.state.applied == settings and self.state.distmat is distmat:
                self.state.metrics = metrics

        # Beside the session's jobs (io pool), so the next toggle does not queue behind it.
        return self.jobs.submit(evaluate_distances, session, distmat, name="evaluate", group="metrics",
                                pool="io", on_result=done, busy=False)

    def _fill_extra_rows(self) -> Worker | None:
        """Rank the external queries that lack a row for the applied settings (background)."""
        state = self.state
        settings = state.applied
        missing = [e for e in state.extra_queries if e.row(settings) is None]
        if not missing or state.session is None:
            return None
        session = state.session

        def store(rows: list[np.ndarray]) -> None:
            if session is not state.session:
                return
            for extra, row in zip(missing, rows, strict=True):
                extra.rows[settings.without_tlift().key()] = row
            state.extra_rows_changed()

        return self.jobs.submit(extra_rows, session, missing, settings, name="rank external queries",
                                on_result=store)

    def _revert(self) -> None:
        """A recomputation did not finish: show the settings the results are for again."""
        if self._closed:
            return
        self.state.show_settings(self.state.applied)
        self._timer.stop()

    # ------------------------------------------------------------------ external queries
    def add_external_query(self, path: str) -> Worker | None:
        state = self.state
        if state.session is None:
            state.error = JobError("no dataset loaded", "open a dataset before adding a query image")
            return None
        if not os.path.isfile(path):  # a FIFO or device would block the reader for ever
            state.error = JobError("not an image file", f"{path} is not a regular file")
            return None
        settings = [PostSettings()]
        if not state.applied.is_raw:
            settings.append(state.applied)

        session = state.session

        def added(extra) -> None:
            if session is not state.session:
                return  # another dataset was loaded meanwhile
            state.extra_queries = state.extra_queries + (extra,)
            state.select_query(state.num_queries - 1)
            state.events.message.emit(f"added {os.path.basename(path)} as a query")
            self._fill_extra_rows()  # the settings may have changed while it was scored

        return self.jobs.submit(score_external, session, path, settings,
                                name=f"open {os.path.basename(path)} as query", on_result=added)

    # ------------------------------------------------------------------ export
    def export(self, path: str, *, all_queries: bool, top_k: int | None) -> Worker | None:
        """Write the current query's list (or every query's) to CSV in the background."""
        from engine.outputs import session_inputs

        state = self.state
        if state.session is None or state.distmat is None:
            state.error = JobError("nothing to export", "no ranking has been computed yet")
            return None
        queries = list(state.session.dataset.query) + [e.sample for e in state.extra_queries]
        extras = state.extra_queries
        if extras:
            rows = [e.row(state.applied) for e in extras]
            if any(r is None for r in rows):
                state.error = JobError("not ready", "the external queries are still being ranked "
                                       "for the current settings; export again in a moment")
                return None
            distmat = np.vstack([state.distmat] + [r[None] for r in rows])
            scores = np.vstack([state.session.logits["qg"]] + [e.logits[None] for e in extras])
        else:
            distmat, scores = state.distmat, state.session.logits["qg"]
        if all_queries:
            indices = list(range(len(queries)))
        elif state.selected_query >= 0:
            indices = [state.selected_query]
        else:
            state.error = JobError("nothing to export", "select a query first")
            return None
        # One query: named as on screen (ViewerState.describe); every query: the applied method,
        # which the writer narrows per query to the stages applied to it (method_for), as
        # describe does.
        method = (state.applied.method(state.base_method) if all_queries
                  else state.describe(state.selected_query).csv_method)
        override = None if all_queries else state.override(state.selected_query)
        others: tuple[str, ...] = ()
        if override is not None:  # the list the grid shows, alone
            others = tuple(s.path for s in queries)
            queries, indices = [queries[state.selected_query]], [0]
            distmat, scores = override.dist_row[None], override.score_row[None]

        marks = {}      # row -> {gallery index: mark}, the CSV's mark column
        feedback = {}   # row -> (positives, negatives): re-ranked in the job, as on screen
        if state.marks is not None:
            rows_of = {0: state.selected_query} if override is not None else {q: q for q in indices}
            for row, query in rows_of.items():
                key = state.query_key(query)
                if key is not None and state.marks.marks(key):
                    marks[row] = {m.gallery: m.kind for m in state.marks.marks(key)}
                    if override is None:  # (the one list of an override is already as shown)
                        feedback[row] = (state.marks.positives(key), state.marks.negatives(key))

        def done(rows: int) -> None:
            state.events.message.emit(f"wrote {rows} rows to {path}")
            self.export_finished.emit(path, rows)

        return self.jobs.submit(export_ranked_csv, path, distmat, scores, queries,
                                list(state.session.dataset.gallery), method=method, top_k=top_k,
                                query_indices=indices, camera_base=state.session.dataset.camera_base,
                                inputs=session_inputs(state.session), other_inputs=others,
                                marks=marks, feedback=feedback, session=state.session,
                                settings=state.applied, name="export CSV", pool="io", on_result=done,
                                on_error=lambda e: self.export_finished.emit(path, -1),
                                on_cancel=lambda: self.export_finished.emit(path, -1))

    # ------------------------------------------------------------------ navigation / lifetime
    def open_selected_match(self) -> None:
        """Enter on a result: ask for the match view of (query, gallery item)."""
        item = self.state.selected_item()
        if item is not None:
            self.match_requested.emit(self.state.selected_query, item.gallery_index)

    def cancel_jobs(self) -> None:
        """Cancel the jobs the window reports (the progress bar's Cancel button)."""
        self.jobs.cancel_reported()

    def shutdown(self, timeout_ms: int = EXIT_WAIT_MS) -> bool:
        """Cancel every job and wait for the threads; no callback runs after this."""
        self._closed = True
        self._timer.stop()
        return self.jobs.shutdown(timeout_ms)
