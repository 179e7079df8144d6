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

:class:`JobRunner` owns the thread pools; quitting cancels every job and waits for it.
"""
from __future__ import annotations

import inspect
import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.jobs import Cancelled
from viewer.state import JobError

__all__ = ["Worker", "JobRunner", "job_error"]

log = logging.getLogger(__name__)

# Progress signals are rate-limited: the engine may report thousands of steps a second.
_PROGRESS_INTERVAL = 0.03


def job_error(title: str, exc: BaseException) -> JobError:
    """A :class:`JobError` from an exception: its message, and the traceback as detail."""
    message = str(exc) or type(exc).__name__
    detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return JobError(title=title, message=message, detail=detail)


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(str, int, int)        # stage, done, total
    returned = Signal(object)               # the job's result
    errored = Signal(object)                # JobError
    cancelled = Signal()
    finished = Signal()                     # after returned / errored / cancelled


class Worker(QRunnable):
    """One job. Create it in the GUI thread, connect to ``signals``, start it with a JobRunner."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "", **kwargs: Any):
        super().__init__()
        self.setAutoDelete(False)  # Python keeps the reference; Qt must not delete it under us
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.name = name or getattr(fn, "__name__", "job")
        self.signals = WorkerSignals()
        self._cancel = threading.Event()
        self._last_progress = 0.0
        self.is_running = False
        self.is_finished = False

    # ------------------------------------------------------------------ control
    def cancel(self) -> None:
        """Ask the job to stop at its next check; ``cancelled`` is emitted when it has."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

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
        self.is_running = True
        self.signals.started.emit()
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
            self.is_running = False
            self.is_finished = True
            self.signals.finished.emit()


class JobRunner(QObject):
    """Starts workers on three pools and keeps them until they finish.

    ``session`` jobs (loading, extraction, scoring, post-processing) use a pool of one thread, so
    they run one after another; ``background`` jobs (scoring the re-ranking blocks after the
    first paint) run beside them on one thread, so a TLift toggle never waits behind them (the
    session scores each block under a lock: a re-ranking request waits only for the blocks it
    needs); ``io`` jobs (exports) run beside both. A job may belong to a ``group``: starting a
    new job of a group cancels the group's earlier ones (the latest request wins).
    """

    job_started = Signal(object)    # Worker
    job_finished = Signal(object)   # Worker

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.pools = {"session": QThreadPool(self), "background": QThreadPool(self), "io": QThreadPool(self)}
        self.pools["session"].setMaxThreadCount(1)
        self.pools["background"].setMaxThreadCount(1)
        self.pools["io"].setMaxThreadCount(2)
        self._workers: list[tuple[Worker, str | None]] = []

    @property
    def workers(self) -> list[Worker]:
        return [w for w, _ in self._workers]

    def start(self, worker: Worker, *, pool: str = "session", group: str | None = None) -> Worker:
        if group is not None:
            self.cancel(group)
        self._workers.append((worker, group))
        worker.signals.finished.connect(lambda w=worker: self._done(w))
        self.job_started.emit(worker)
        self.pools[pool].start(worker)
        return worker

    def _done(self, worker: Worker) -> None:
        self._workers = [(w, g) for w, g in self._workers if w is not worker]
        self.job_finished.emit(worker)

    def cancel(self, group: str | None = None) -> None:
        """Cancel the jobs of ``group`` (all jobs when None)."""
        for worker, g in self._workers:
            if group is None or g == group:
                worker.cancel()

    def is_busy(self, group: str | None = None) -> bool:
        return any(group is None or g == group for _, g in self._workers)

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until every pool is idle; True when they are."""
        return all(pool.waitForDone(timeout_ms) for pool in self.pools.values())

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        """Cancel everything and wait for the threads (called when the window closes)."""
        self.cancel()
        for pool in self.pools.values():
            pool.clear()  # jobs still queued never start
        return self.wait(timeout_ms)
