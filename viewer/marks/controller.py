"""Marks from the user, re-ranking from them in background jobs, and keeping them on disk.

A mark changes the :class:`~viewer.marks.state.MarkBook` at once (the tile shows it), is written
to the cache folder (a few hundred bytes), and starts ``engine.feedback.refine`` for the query
in a background job under the applied post-processing; its row replaces the query's list on
screen (a :class:`~viewer.marks.state.FeedbackOverride`). A change of the RR/TLift settings
re-ranks the selected query's marks under the new settings; other queries are re-ranked when
they are selected.
"""
from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, Signal

from viewer.controller import Controller
from viewer.marks.state import (
    KIND_LABELS,
    FeedbackOverride,
    MarkBook,
    dataset_digest,
    feedback_override,
    marks_file,
)
from viewer.state import JobError

log = logging.getLogger(__name__)

__all__ = ["MarksController", "load_marks_job", "refine_job"]


# ---------------------------------------------------------------------- jobs (no Qt)
def refine_job(session, query: int, positives: list[int], negatives: list[int], rerank, tlift,
               *, progress, cancel):
    """The query's distance row re-ranked from its marks (``engine.feedback.refine``)."""
    from engine.feedback import refine

    progress("re-rank from marks", 0, 1)
    return refine(session, query, positives, negatives, rerank=rerank, tlift=tlift)


def load_marks_job(session, *, progress, cancel):
    """The session's mark book from the cache folder (an empty one when there is none or it
    cannot be read: the reason is logged) and the file it is kept in."""
    dataset = session.dataset
    gallery = [s.path for s in dataset.gallery]
    digest = dataset_digest([s.path for s in dataset.query] + gallery)
    path = marks_file(session.cache_dir, digest, session.model_digest)
    try:
        book = MarkBook.load(path, gallery, dataset=digest, checkpoint=session.model_digest)
    except (OSError, ValueError) as exc:
        log.warning("marks in %s not used: %s", path, exc)
        book = MarkBook(digest, session.model_digest)
    return book, path


# ---------------------------------------------------------------------- the controller
class MarksController(QObject):
    """Binds the state's mark book to the engine: marks, re-ranks, saves."""

    #: A query's list was re-ranked from its marks (or its marks were cleared): the query.
    refined = Signal(int)
    #: The session's marks were read (from the cache folder).
    loaded = Signal()

    def __init__(self, controller: Controller, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.main = controller
        self.viewer = controller.state
        self.path = None   # where the session's marks are kept
        self.viewer.events.session.connect(lambda _v: self._session_changed())
        self.viewer.events.applied.connect(lambda _v: self._settings_changed())
        self.viewer.events.selected_query.connect(lambda _v: self._sync_selected())

    # ------------------------------------------------------------------ session
    def _session_changed(self) -> None:
        viewer = self.viewer
        viewer.marks, self.path = None, None
        self.main.jobs.cancel("marks")
        session = viewer.session
        if session is None:
            return

        def done(result) -> None:
            if session is not viewer.session:
                return
            viewer.marks, self.path = result
            self.loaded.emit()
            self._sync_selected()

        self.main.jobs.submit(load_marks_job, session, name="read marks", group="marks-load",
                              pool="io", busy=False, on_result=done)

    # ------------------------------------------------------------------ marking
    def mark_selected(self, kind: str | None) -> bool:
        """Mark the selected tile of the selected query (None: clear its mark)."""
        item = self.viewer.selected_item()
        if item is None:
            return False
        return self.mark(self.viewer.selected_query, item.gallery_index, kind)

    def mark(self, query: int, gallery_index: int, kind: str | None) -> bool:
        """Mark ``gallery_index`` for ``query`` as ``kind`` (``same`` / ``different``; None
        clears it), keep it on disk and re-rank the query. Returns whether the mark changed."""
        viewer = self.viewer
        key = viewer.query_key(query)
        if viewer.marks is None or key is None:
            viewer.events.message.emit("marks are made on the dataset's own queries"
                                       if key is None else "marks are still being read")
            return False
        if not viewer.marks.set(key, gallery_index, kind, time.time()):
            return False
        viewer.marks_changed()
        self.save()
        name = viewer.session.dataset.gallery[gallery_index].path.rsplit("/", 1)[-1]
        viewer.events.message.emit(f"{name}: " + (KIND_LABELS[kind] if kind else "mark cleared"))
        self.refine(query)
        return True

    def clear_query(self, query: int) -> None:
        """Forget every mark of ``query`` and show its own list again."""
        key = self.viewer.query_key(query)
        if key is not None and self.viewer.marks is not None and self.viewer.marks.clear_query(key):
            self.viewer.marks_changed()
            self.save()
            self.refine(query)

    def save(self) -> None:
        viewer = self.viewer
        if self.path is None or viewer.marks is None:
            return
        try:
            viewer.marks.save(self.path, [s.path for s in viewer.session.dataset.gallery])
        except OSError as exc:
            viewer.error = JobError("marks not saved", str(exc))

    # ------------------------------------------------------------------ re-ranking
    def refine(self, query: int):
        """Re-rank ``query`` from its marks in a background job (no marks: its own list)."""
        viewer = self.viewer
        key = viewer.query_key(query)
        marks = () if key is None or viewer.marks is None else viewer.marks.marks(key)
        current = viewer.override(query)
        if not marks:
            if isinstance(current, FeedbackOverride):
                viewer.set_override(query, None)
            self.refined.emit(query)
            return None
        if current is not None and not isinstance(current, FeedbackOverride):
            viewer.events.message.emit("marks kept; the list re-ranks from them once the "
                                       "occluded copy's list is closed")
            return None
        session, settings = viewer.session, viewer.applied
        positives = viewer.marks.positives(key)
        negatives = viewer.marks.negatives(key)

        def done(row) -> None:
            if session is not viewer.session or settings != viewer.applied:
                return  # the settings changed meanwhile: _settings_changed asked again
            if viewer.marks.marks(key) != marks:
                return  # a newer mark's job is on its way (each is short: none is cancelled)
            other = viewer.override(query)
            if other is not None and not isinstance(other, FeedbackOverride):
                return
            own = viewer.distance_row(query)
            sample = viewer.query_sample(query)
            place = viewer.selected_result if query == viewer.selected_query else None
            selected = viewer.selected_item() if place is not None else None
            viewer.set_override(query, feedback_override(
                query, marks, row, own, viewer.score_row(query), sample.pid, sample.cam,
                session.gallery_pids, session.gallery_cams,
                method=settings.method(viewer.base_method), settings=settings))
            now = viewer.selected_item()
            if selected is not None and (now is None or now.gallery_index != selected.gallery_index):
                # The selected image left the tiles (marked different): the tile in its place is
                # selected, not the top of the list, so marking down a list walks on.
                viewer.selected_result = min(place, max(len(viewer.results()) - 1, 0))
            self.refined.emit(query)

        return self.main.jobs.submit(refine_job, session, query, positives, negatives,
                                     settings.rerank, settings.tlift, name="re-rank from marks",
                                     on_result=done)

    def _settings_changed(self) -> None:
        """RR/TLift changed: the marked lists were ranked under the old settings."""
        viewer = self.viewer
        stale = [q for q, o in viewer.overrides.items()
                 if isinstance(o, FeedbackOverride) and o.settings != viewer.applied]
        for query in stale:
            if query != viewer.selected_query:
                viewer.set_override(query, None)
        # The selected query's list under the new settings (also when a job for the old ones,
        # whose result will be dropped, has not shown one yet).
        self._sync_selected()

    def _sync_selected(self) -> None:
        """A query with marks is shown re-ranked from them when it is selected."""
        viewer = self.viewer
        query = viewer.selected_query
        key = viewer.query_key(query)
        if key is None or viewer.marks is None or not viewer.marks.marks(key):
            return
        current = viewer.override(query)
        if (isinstance(current, FeedbackOverride) and current.settings == viewer.applied
                and current.marks == viewer.marks.marks(key)):
            return
        self.refine(query)
