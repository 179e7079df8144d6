"""Keeps model B's ranking in line with the window's: opens it, re-scores it when the window's
settings or dataset change, and turns clicks into the window's selection.

Scoring model B (extraction, the score blocks, post-processing) is a background job on the
window's job service (its progress in the panel and the window's progress bar). While B's
ranking is for other settings than the window's, the grid shows A's ranks alone.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from viewer.compare.state import CompareResult, CompareState, SecondRanks, score_second_model
from viewer.controller import Controller
from viewer.jobs import Worker
from viewer.state import JobError
from viewer.tasks import NeedsSize

__all__ = ["CompareController"]


class CompareController(QObject):
    #: (viewer.tasks.NeedsSize): model B's input size must be asked for (then :meth:`open`
    #: again with it).
    input_size_needed = Signal(object)
    #: A comparison job ended (True: B's ranking is shown); for tests and --screenshot.
    finished = Signal(bool)

    def __init__(self, controller: Controller, compare: CompareState | None = None, parent=None):
        super().__init__(parent or controller)
        self.controller, self.state = controller, controller.state
        self.compare = compare or CompareState()
        self.jobs = controller.jobs
        self._size: tuple[int | None, int | None] = (None, None)
        self._closed = False
        self._worker: Worker | None = None   # the latest job: an older one's end changes nothing
        self.state.events.applied.connect(lambda _v: self._follow())
        self.state.events.session.connect(self._new_session)

    # ------------------------------------------------------------------ model B
    def open(self, source: str, height: int | None = None, width: int | None = None) -> Worker | None:
        """Open ``source`` as model B on the window's dataset (any format the engine opens)."""
        self.compare.source = str(source)
        self._size = (height, width)
        self.compare.result = None
        self.state.second_ranks = None
        return self.refresh(reopen=True)

    def refresh(self, reopen: bool = False) -> Worker | None:
        """Rank the dataset with model B under the window's applied settings (a job)."""
        compare, state = self.compare, self.state
        if not compare.source or state.session is None or self._closed:
            return None
        settings, session = state.applied, state.session
        previous = compare.result
        b_session = None if reopen or previous is None else previous.session
        compare.busy, compare.error = True, ""

        def latest() -> bool:
            return self._worker is worker and not self._closed

        def done(result) -> None:
            if not latest():
                return
            compare.busy, compare.progress = False, None
            if isinstance(result, NeedsSize):
                compare.error = f"{result.message}: choose the input size"
                self.input_size_needed.emit(result)
                self.finished.emit(False)
                return
            if session is not self.state.session:
                return
            compare.result = result
            self._show_ranks()
            if result.note:
                state.events.message.emit(f"model B: {result.note}")
            self.finished.emit(True)

        def failed(err: JobError) -> None:
            if not latest():
                return
            compare.busy, compare.progress = False, None
            compare.error = f"{err.title}: {err.message}"
            self.finished.emit(False)

        def cancelled() -> None:
            if not latest():
                return
            compare.busy, compare.progress = False, None
            self.finished.emit(False)

        def progress(*stage_done_total) -> None:
            if latest():
                compare.progress = stage_done_total

        height, width = self._size
        worker = self._worker = self.jobs.submit(score_second_model, compare.source, session, settings,
                                b_session=b_session, height=height, width=width,
                                name="score model B", group="compare", pool="background",
                                report=False, on_result=done, on_error=failed,
                                on_cancel=cancelled, on_progress=progress)
        return worker

    def _show_ranks(self) -> None:
        """B's ranks on the tiles, only while they are for the settings the grid shows."""
        result = self.compare.result
        current = result is not None and result.settings == self.state.applied
        ranks = self.state.second_ranks
        if not current:
            self.state.second_ranks = None
        elif ranks is None or ranks.result is not result:
            self.state.second_ranks = SecondRanks(result)

    def _follow(self) -> None:
        """The window applied other settings: B follows (its blocks are cached)."""
        self._show_ranks()
        result = self.compare.result
        if result is not None and result.settings != self.state.applied:
            self.refresh()

    def _new_session(self, _session) -> None:
        """Another dataset: B is opened on it again."""
        self.jobs.cancel("compare")
        self.compare.result = None
        self.state.second_ranks = None
        if self.compare.source:
            self.refresh(reopen=True)

    def close(self) -> None:
        """Stop comparing: no second model, the grid shows A's ranks alone."""
        self.jobs.cancel("compare")
        self.compare.source = ""
        self.compare.result = None
        self.compare.error = ""
        self.state.second_ranks = None

    def shutdown(self) -> None:
        self._closed = True
        self.jobs.cancel("compare")

    # ------------------------------------------------------------------ user actions
    def select_query(self, query: int) -> None:
        """A click on a point or a list entry: that query in the window (its filters cleared
        when they hide it)."""
        state = self.state
        if query not in state.visible_queries():
            state.filter_cam, state.filter_pid, state.filter_name = None, "", ""
        state.select_query(int(query))

    def current(self) -> CompareResult | None:
        result = self.compare.result
        return result if result is not None and result.settings == self.state.applied else None

