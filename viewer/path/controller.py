"""Keeps the path view's :class:`~viewer.path.state.PathModel` in line with the window: the
selected query, its marks, the list on screen, TLift's sigma and K. The camera-pair transits
of TLift's pivots (a pass over the q-g scores, once per session and K) and the session's
learned transit model (a pass over the g-g block, once per session, shared with relevance
feedback) are computed in background jobs; the chart itself is a few points, built on the
GUI thread."""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from viewer.controller import Controller
from viewer.path.state import PathModel, build_path

__all__ = ["PathController", "pivot_transits_job", "learned_transits_job", "CANDIDATES"]

#: The best unmarked results drawn faded.
CANDIDATES = 5


def pivot_transits_job(session, k: int, *, progress, cancel):
    """``engine.analysis.transit.pivot_transits`` of the session (None without timestamps)."""
    from engine.analysis.transit import pivot_transits

    query_times = session.times_of(session.dataset.query)
    gallery_times = session.times_of(session.dataset.gallery)
    if query_times is None or gallery_times is None:
        return None
    progress("camera-pair transits", 0, 1)
    return pivot_transits(session.logits["qg"], session.query_cams, query_times,
                          session.gallery_cams, gallery_times, k=k)


def learned_transits_job(session, *, progress, cancel):
    """``engine.feedback.session_transits`` (None without timestamps or a g-g block)."""
    from engine.feedback import session_transits

    progress("learn camera transits", 0, 1)
    return session_transits(session, cancel)


class PathController(QObject):
    """Builds the path of the selected query while the view is shown."""

    changed = Signal()
    #: The session's pair transits arrived (the path can be drawn with its legs scored).
    transits_ready = Signal()

    def __init__(self, controller: Controller, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.main = controller
        self.viewer = controller.state
        self.model = PathModel(reason="Select a query to see its path.")
        self.active = False
        self._transits = None    # (session, k, {(a, b): PairTransit} or None)
        self._learned = None     # (session, TransitModel or None)
        for name in ("selected_query", "marks", "overrides", "distmat", "session", "tlift"):
            self.viewer.events[name].connect(lambda *_a: self.refresh())

    def set_active(self, active: bool) -> None:
        self.active = active
        if active:
            self.refresh()

    def transits(self):
        """TLift's pivot transits of this session and K, or None while (or when not) known."""
        viewer = self.viewer
        session, k = viewer.session, viewer.tlift.k
        if self._transits is not None and self._transits[:2] == (session, k):
            return self._transits[2]
        if session is not None and viewer.has_times and not self.main.jobs.is_busy("path"):
            def done(result) -> None:
                if session is viewer.session:
                    self._transits = (session, k, result)
                    self.transits_ready.emit()
                    self.refresh()

            self.main.jobs.submit(pivot_transits_job, session, k, name="camera-pair transits",
                                  group="path", pool="io", busy=False, on_result=done)
        return None

    def learned(self):
        """The session's learned transit model, or None while (or when not) known. Learned
        once the g-g block is scored (re-ranking's background scoring or the first mark does
        that); the path view alone never starts scoring it."""
        viewer = self.viewer
        session = viewer.session
        if self._learned is not None and self._learned[0] is session:
            return self._learned[1]
        if session is not None and viewer.has_times and "gg" in session.logits \
                and not self.main.jobs.is_busy("path-learned"):
            def done(result) -> None:
                if session is viewer.session:
                    self._learned = (session, result)
                    self.refresh()

            self.main.jobs.submit(learned_transits_job, session, name="camera transit model",
                                  group="path-learned", pool="io", busy=False, on_result=done)
        return None

    def ready(self) -> bool:
        """Whether the path can be drawn in full now (else the transits are being computed)."""
        return not self.viewer.has_times or self.transits() is not None

    def refresh(self) -> None:
        if not self.active:
            return
        viewer = self.viewer
        query = viewer.selected_query
        if viewer.session is None or not 0 <= query < viewer.num_queries:
            self.model = build_path(None, (), (), (), None, viewer.tlift.sigma)
        elif not viewer.has_times:
            self.model = PathModel(reason="This dataset's images carry no capture times, so "
                                          "there is no time axis to draw the path on.")
        else:
            key = viewer.query_key(query)
            marks = viewer.marks
            positives = [] if key is None or marks is None else marks.positives(key)
            negatives = set() if key is None or marks is None else set(marks.negatives(key))
            candidates = [(it.gallery_index, it.rank) for it in viewer.results(query)
                          if it.status != "junk" and it.gallery_index not in negatives
                          and it.gallery_index not in positives][:CANDIDATES]
            self.model = build_path(viewer.query_sample(query), viewer.session.dataset.gallery,
                                    positives, candidates, self.transits(), viewer.tlift.sigma,
                                    self.learned())
        self.changed.emit()

    def select(self, gallery_index: int) -> bool:
        """A point was clicked: select that image in the grid (the query: nothing to select)."""
        return gallery_index >= 0 and self.viewer.select_gallery(gallery_index)
