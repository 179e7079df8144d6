"""Keeps the plots panel's data in line with the window's settings, in background jobs.

A change of the RR / TLift toggles or parameters, or newly applied distances, schedules a
refresh (after a short pause, and only while the panel is open; a closed panel refreshes when
it opens). A refresh waits until the window's own recomputation has applied the same settings,
and reuses the distances it cached. Its jobs run on the window's job service, in the ``panel``
pool, so the window's jobs never queue behind a refresh or a sweep: a refresh reads score
blocks that are already there (it never scores), and a sweep works on arrays only. They report
to the panel, not to the window's banner and progress bar.
"""
from __future__ import annotations

import dataclasses

from PySide6.QtCore import QObject, QTimer

from viewer.controller import Controller
from viewer.jobs import Worker
from viewer.plots.state import (
    PlotResult,
    PlotsState,
    SweepResult,
    compute_plots,
    compute_sweeps,
    known_distances,
    plot_request,
    session_labels,
    sweep_request,
)

__all__ = ["PlotsController"]

REFRESH_DELAY_MS = 150


class PlotsController(QObject):
    def __init__(self, controller: Controller, plots: PlotsState | None = None, parent=None):
        super().__init__(parent or controller)
        self.controller, self.state = controller, controller.state
        self.plots = plots or PlotsState()
        self.jobs = controller.jobs
        self._closed = False
        self._dirty = True
        self._running = None  # the request of the refresh job in flight
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REFRESH_DELAY_MS)
        self._timer.timeout.connect(self.refresh)
        for name in ("rerank", "tlift", "rerank_on", "tlift_on", "applied"):
            self.state.events[name].connect(lambda _v: self.schedule())
        self.state.events.session.connect(self._new_session)
        self.plots.events.visible.connect(lambda visible: visible and self._dirty and self.schedule(0))

    # ------------------------------------------------------------------ refresh
    def _new_session(self, _session) -> None:
        """Another dataset: nothing shown or kept belongs to it."""
        self._cancel()
        self._running = None
        self.plots.sweep = None
        self.plots.plots = None
        self.schedule(0)

    def schedule(self, delay_ms: int = REFRESH_DELAY_MS) -> None:
        self._dirty = True
        if self.plots.visible and not self._closed:
            self._timer.start(delay_ms)

    def refresh(self) -> Worker | None:
        """Recompute the plots for the current settings (unless they are up to date)."""
        self._timer.stop()
        request = plot_request(self.state)
        if request is None:
            return None  # the distances are being recomputed: their `applied` event comes back
        current = self.plots.plots
        if not self._dirty and current is not None and current.request == request:
            return None
        if self._running is not None and self._running == request and self.jobs.is_busy("plots"):
            self._dirty = False
            return None  # the job for exactly these settings is already on its way
        self._dirty = False
        self._running = request
        session = self.state.session
        plots = self.plots

        def done(result: PlotResult) -> None:
            plots.busy, plots.progress = False, None
            if session is self.state.session and not self._closed:
                plots.error = ""
                plots.plots = result

        def failed(err) -> None:
            plots.busy, plots.progress = False, None
            plots.error = f"{err.title}: {err.message}"

        def cancelled() -> None:
            plots.busy, plots.progress = False, None

        def progress(*stage_done_total) -> None:
            plots.progress = stage_done_total

        plots.busy = True
        return self.jobs.submit(compute_plots, session, request,
                                known_distances(self.controller.cache, request, current),
                                previous=current, name="plots", group="plots", pool="panel",
                                busy=False, report=False, on_result=done, on_error=failed,
                                on_cancel=cancelled, on_progress=progress)

    # ------------------------------------------------------------------ sweeps
    def run_sweeps(self, values: dict | None = None) -> Worker | None:
        """Sweep the four TLift parameters around the current settings (in the background)."""
        request = sweep_request(self.state)
        result = self.plots.plots
        if request is None:
            self.plots.error = "TLift sweeps need timestamps, and this dataset's images have none"
            return None
        if result is None or result.request != plot_request(self.state):
            # The sweep lifts the distances of the latest refresh: they must be current.
            self.plots.error = "the plots are still being computed; run the sweeps in a moment"
            return None
        session = self.state.session
        labels = session_labels(session)
        plots = self.plots

        def done(sweep: SweepResult) -> None:
            plots.sweep_progress = None
            if session is self.state.session and not self._closed:
                plots.error = ""
                plots.sweep = sweep

        def stopped(err=None) -> None:
            plots.sweep_progress = None
            if err is not None:
                plots.error = f"{err.title}: {err.message}"

        def progress(_stage: str, done_: int, total: int) -> None:
            plots.sweep_progress = (done_, total)

        plots.sweep_progress = (0, 1)
        return self.jobs.submit(compute_sweeps, result.sweep_base, labels, request, values=values,
                                name="TLift sweeps", group="sweep", pool="panel", busy=False,
                                report=False, on_result=done, on_error=stopped, on_cancel=stopped,
                                on_progress=progress)

    def cancel_sweeps(self) -> None:
        self.jobs.cancel("sweep")

    def _cancel(self) -> None:
        self.jobs.cancel("plots")
        self.jobs.cancel("sweep")

    def shutdown(self) -> None:
        """Cancel the panel's jobs and refresh no more (the window is closing; its job service
        waits for the threads)."""
        self._closed = True
        self._timer.stop()
        self._cancel()

    def sweeps_current(self) -> bool:
        """Whether the shown sweeps were computed for the window's present settings."""
        sweep = self.plots.sweep
        return sweep is not None and sweep.request == sweep_request(self.state)

    # ------------------------------------------------------------------ user actions
    def set_tlift_parameter(self, parameter: str, value: float) -> None:
        """A click on a sweep point: use that value (TLift switched on)."""
        if parameter == "k":
            value = int(value)
        self.state.tlift = dataclasses.replace(self.state.tlift, **{parameter: value})
        self.state.tlift_on = True

    def select_camera_pair(self, query_cam: int, gallery_cam: int) -> None:
        """A click on a camera-pair cell: queries of that camera, results of that gallery camera."""
        state = self.state
        state.filter_cam = int(query_cam)
        state.filter_gallery_cam = int(gallery_cam)
        visible = state.visible_queries()
        if visible and state.selected_query not in visible:
            state.select_query(visible[0])
