"""Background jobs: run engine work off the GUI thread, with progress, result, error and cancel.

Modelled on superqt's ``thread_worker``: a job is a callable that either

- takes ``progress(stage, done, total)`` and ``cancel() -> bool`` keyword arguments (the engine's
  convention; ``progress`` also raises :class:`engine.jobs.Cancelled` once cancel was asked for,
  so functions that report progress but take no ``cancel`` stop too) and returns its result, or
- is a generator that yields ``(stage, done, total)`` progress tuples and returns its result
  (cancel is then checked between yields).

The worker emits ``progress``, ``returned``, ``errored``, ``cancelled`` and ``finished`` signals.
The signal object lives in the GUI thread, so connected callables run there: only the GUI thread
touches widgets. Cancelling is cooperative: it sets a flag that the engine polls through
``cancel()`` and answers by raising :class:`engine.jobs.Cancelled`.

:class:`JobService` is the one place where the window and its views submit jobs: it owns the
thread pools, cancels the previous job of a group, reports progress and errors to the window's
state, and on quit cancels every job and waits for it.
"""
from __future__ import annotations

import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.jobs import Cancelled
from viewer.progress import ProgressClock, StageTime
from viewer.state import JobError, ViewerState

__all__ = ["Worker", "JobService", "job_error"]

# How long a closing window waits for its jobs, in all, before the process exits without them.
EXIT_WAIT_MS = 5_000

log = logging.getLogger(__name__)

# Packages that a worker thread and the GUI thread may both import for the first time at the
# same moment: numba's error formatting (re-ranking's kernels, loaded by a background job after
# the first paint) and pyqtgraph (imported by the GUI thread right after the first paint) both
# import colorama, whose package and submodules import each other. Two threads importing such a
# package at once can fail with a KeyError from the import system (a circular import across
# threads), so the GUI thread imports them before any job starts. tests/viewer/test_jobs.py
# checks that this list covers what the two sides share.
SHARED_IMPORTS = ("colorama",)

# Progress signals are rate-limited: the engine may report thousands of steps a second.
_PROGRESS_INTERVAL = 0.03
# Stages and jobs that ran at least this long are logged at INFO (shorter ones at DEBUG).
LOG_SECONDS = 1.0


def job_error(title: str, exc: BaseException) -> JobError:
    """A :class:`JobError` from an exception: its message, and the traceback as detail."""
    message = str(exc) or type(exc).__name__
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return JobError(title=title, message=message, detail=detail)


class WorkerSignals(QObject):
    progress = Signal(str, int, int)        # stage, done, total
    returned = Signal(object)               # the job's result
    errored = Signal(object)                # JobError
    cancelled = Signal()
    finished = Signal()                     # after returned / errored / cancelled


class Worker(QRunnable):
    """One job. Created in the GUI thread (its ``signals`` live there) by :class:`JobService`."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any):
        super().__init__()
        self.setAutoDelete(False)  # Python keeps the reference; Qt must not delete it under us
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.name = name or getattr(fn, "__name__", "job")
        self.signals = WorkerSignals()
        self._cancel = threading.Event()
        self._last_progress = 0.0

    # ------------------------------------------------------------------ control
    def cancel(self) -> None:
        """Ask the job to stop at its next check; ``cancelled`` is emitted when it has."""
        self._cancel.set()

    # ------------------------------------------------------------------ worker thread
    def _progress(self, stage: str, done: int, total: int) -> None:
        # Raising here makes even engine functions without a ``cancel`` argument (e.g. the demo
        # generator) stop at their next progress report; their writes are atomic.
        if self._cancel.is_set():
            raise Cancelled("cancelled by the user")
        now = time.perf_counter()
        if done >= total or now - self._last_progress >= _PROGRESS_INTERVAL:
            self._last_progress = now
            self.signals.progress.emit(str(stage), int(done), int(total))

    def _call(self) -> Any:
        if inspect.isgeneratorfunction(self.fn):
            gen = self.fn(*self.args, **self.kwargs)
            try:
                while True:
                    if self._cancel.is_set():
                        gen.close()
                        raise Cancelled("cancelled by the user")
                    step = next(gen)
                    if step is not None:
                        self._progress(*step)
            except StopIteration as stop:
                return stop.value
        return self.fn(*self.args, progress=self._progress, cancel=self._cancel.is_set, **self.kwargs)

    def run(self) -> None:  # noqa: D401 - QRunnable API
        try:
            if self._cancel.is_set():  # cancelled while queued: do not start the work at all
                raise Cancelled("cancelled before it started")
            result = self._call()
        except Cancelled:
            self.signals.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the window
            log.debug("job %s failed", self.name, exc_info=True)
            self.signals.errored.emit(job_error(f"{self.name} failed", exc))
        else:
            if self._cancel.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.returned.emit(result)
        finally:
            self.signals.finished.emit()


@dataclass(eq=False)
class _Job:
    worker: Worker
    group: str | None
    busy: bool      # shown in the window's progress bar
    report: bool    # failures and cancellations reported to the window
    clock: ProgressClock    # its stages' durations, logged
    started: float = 0.0


def _log_stage(job: str, ended: StageTime | None) -> None:
    if ended is not None:
        log.log(logging.INFO if ended.seconds >= LOG_SECONDS else logging.DEBUG,
                "%s: %s", job, ended)


def _import_shared() -> None:
    """Import :data:`SHARED_IMPORTS` on the calling (GUI) thread; an absent one is skipped."""
    import importlib

    for name in SHARED_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


class JobService(QObject):
    """The one place where the window and its views start background jobs.

    Pools: ``session`` jobs (loading, extraction, scoring, post-processing, the occlusion's
    model work) run one after another on one thread; ``background`` jobs (scoring the
    re-ranking blocks after the first paint) run beside them on one thread, so a TLift toggle
    never waits behind them (the session scores each block under a lock: a re-ranking request
    waits only for the blocks it needs); ``io`` jobs (exports, evaluation, previews) and
    ``panel`` jobs (the plots panel's refreshes and sweeps, which only read arrays that are
    already there) run beside both, so the window's jobs never queue behind a panel.

    A job may belong to a ``group``: submitting a job of a group cancels the group's earlier
    ones (the latest request wins). A ``busy`` job is shown in the window's progress bar until
    the GUI has handled its end; a job that ``report``\\ s has its error shown in the window's
    banner and its cancellation in the status bar. After :meth:`shutdown` no callback runs.
    """

    def __init__(self, state: ViewerState, parent: QObject | None = None):
        super().__init__(parent)
        _import_shared()
        self.state = state
        self.pools = {}
        for pool, threads in (("session", 1), ("background", 1), ("io", 2), ("panel", 2)):
            self.pools[pool] = QThreadPool(self)
            self.pools[pool].setMaxThreadCount(threads)
        self._jobs: list[_Job] = []
        self._closed = False

    @property
    def workers(self) -> list[Worker]:
        """The jobs whose end the GUI has not handled yet, oldest first."""
        return [job.worker for job in self._jobs]

    def submit(self, fn: Callable[..., Any], *args: Any, name: str,
               on_result: Callable[[Any], None] | None = None,
               on_error: Callable[[JobError], None] | None = None,
               on_cancel: Callable[[], None] | None = None,
               on_progress: Callable[[str, int, int], None] | None = None,
               group: str | None = None, pool: str = "session", busy: bool = True,
               report: bool = True, **kwargs: Any) -> Worker:
        """Run ``fn(*args, **kwargs)`` on ``pool``; the callbacks run on the GUI thread."""
        worker = Worker(fn, *args, name=name, **kwargs)
        job = _Job(worker, group, busy, report, ProgressClock(), time.monotonic())
        state = self.state

        def progress(stage: str, done: int, total: int) -> None:
            if self._closed:
                return
            _log_stage(name, job.clock.update(stage, done, total))
            if busy:
                state.progress = (stage, done, total)
            if on_progress is not None:
                on_progress(stage, done, total)

        def returned(result: Any) -> None:
            if not self._closed and on_result is not None:
                on_result(result)

        def errored(err: JobError) -> None:
            if self._closed:
                return
            if report:
                log.error("%s: %s", err.title, err.message)
                state.error = err
            if on_error is not None:
                on_error(err)

        def cancelled() -> None:
            if self._closed:
                return
            if report:
                state.events.message.emit(f"{name}: cancelled")
            if on_cancel is not None:
                on_cancel()

        worker.signals.progress.connect(progress)
        worker.signals.returned.connect(returned)
        worker.signals.errored.connect(errored)
        worker.signals.cancelled.connect(cancelled)
        worker.signals.finished.connect(lambda: self._finished(job))
        if group is not None:
            self.cancel(group)
        self._jobs.append(job)
        if busy:
            state.busy = name
            state.progress = (name, 0, 0)
        self.pools[pool].start(worker)
        return worker

    def _finished(self, job: _Job) -> None:
        self._jobs.remove(job)
        _log_stage(job.worker.name, job.clock.finish())
        seconds = time.monotonic() - job.started
        log.log(logging.INFO if seconds >= LOG_SECONDS else logging.DEBUG,
                "%s: finished after %.1f s", job.worker.name, seconds)
        if self._closed or not job.busy:
            return
        # Jobs whose end the GUI has not handled yet, even if their thread is done: their
        # results are still to be stored, so the window is still busy.
        others = [j.worker for j in self._jobs if j.busy]
        self.state.busy = others[-1].name if others else ""
        if not others:
            self.state.progress = None

    def cancel(self, group: str | None = None) -> None:
        """Cancel the jobs of ``group`` (every job when None)."""
        for job in self._jobs:
            if group is None or job.group == group:
                job.worker.cancel()

    def cancel_reported(self) -> None:
        """Cancel the jobs the window reports (the progress bar's Cancel); a panel's own jobs go on."""
        for job in self._jobs:
            if job.report:
                job.worker.cancel()

    def is_busy(self, group: str | None = None) -> bool:
        """Whether a job of ``group`` (any job when None) has not finished yet."""
        return any(group is None or job.group == group for job in self._jobs)

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until every pool is idle, at most ``timeout_ms`` in all (-1: no bound); True
        when they are."""
        if timeout_ms < 0:
            return all(pool.waitForDone(-1) for pool in self.pools.values())
        deadline = time.monotonic() + timeout_ms / 1000
        return all(pool.waitForDone(max(0, round((deadline - time.monotonic()) * 1000)))
                   for pool in self.pools.values())

    def shutdown(self, timeout_ms: int = EXIT_WAIT_MS) -> bool:
        """Cancel everything and wait for the threads, at most ``timeout_ms`` in all (the window
        is closing); no callback runs after this. False when a job outlived the bound."""
        self._closed = True
        self.cancel()
        for pool in self.pools.values():
            pool.clear()  # jobs still queued never start
        return self.wait(timeout_ms)
