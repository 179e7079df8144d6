"""Background jobs: results, progress and errors arrive on the GUI thread; cancel; shutdown."""
from __future__ import annotations

import threading
import time

import pytest

from engine.jobs import Cancelled, check_cancel
from viewer.workers import JobRunner, Worker


@pytest.fixture
def runner(qtbot):
    r = JobRunner()
    yield r
    assert r.shutdown(5000)
    for pool in r.pools.values():
        assert pool.activeThreadCount() == 0


def test_result_and_progress_arrive_on_the_gui_thread(qtbot, runner):
    seen = {"threads": set(), "progress": []}

    def job(n, *, progress, cancel):
        seen["worker_thread"] = threading.current_thread() is threading.main_thread()
        for i in range(n):
            check_cancel(cancel)
            progress("count", i + 1, n)
        return n * 2

    worker = Worker(job, 3, name="count")

    def on_progress(stage, done, total):
        seen["threads"].add(threading.current_thread() is threading.main_thread())
        seen["progress"].append((stage, done, total))

    worker.signals.progress.connect(on_progress)
    with qtbot.waitSignal(worker.signals.returned, timeout=5000) as blocker:
        runner.start(worker)
    assert blocker.args == [6]
    assert seen["worker_thread"] is False
    assert seen["threads"] == {True}
    assert seen["progress"][-1] == ("count", 3, 3)  # the final step is never throttled away


def test_generator_jobs_yield_progress_and_return(qtbot, runner):
    def job():
        for i in range(4):
            yield ("steps", i + 1, 4)
        return "done"

    worker = Worker(job)
    steps = []
    worker.signals.progress.connect(lambda *a: steps.append(a))
    with qtbot.waitSignal(worker.signals.returned, timeout=5000) as blocker:
        runner.start(worker)
    assert blocker.args == ["done"]
    assert steps[-1] == ("steps", 4, 4)


def test_an_exception_becomes_an_error_with_detail(qtbot, runner):
    def job(*, progress, cancel):
        raise ValueError("the checkpoint does not fit: neck 32 vs 128")

    worker = Worker(job, name="load")
    with qtbot.waitSignal(worker.signals.errored, timeout=5000) as blocker:
        runner.start(worker)
    error = blocker.args[0]
    assert error.title == "load failed"
    assert "does not fit" in error.message
    assert "Traceback" in error.detail and "ValueError" in error.detail


def test_cancel_is_cooperative(qtbot, runner):
    started = threading.Event()

    def job(*, progress, cancel):
        started.set()
        while True:  # until cancelled
            check_cancel(cancel)
            time.sleep(0.005)

    worker = Worker(job)
    runner.start(worker, group="post")
    assert started.wait(5)
    with qtbot.waitSignal(worker.signals.cancelled, timeout=5000):
        runner.cancel("post")
    qtbot.waitUntil(lambda: not runner.is_busy(), timeout=5000)


def test_a_new_job_of_a_group_cancels_the_previous_one(qtbot, runner):
    gate = threading.Event()

    def slow(*, progress, cancel):
        while not gate.is_set():
            check_cancel(cancel)
            time.sleep(0.005)
        return "slow"

    first, second = Worker(slow), Worker(lambda *, progress, cancel: "fast")
    cancelled, returned = [], []
    first.signals.cancelled.connect(lambda: cancelled.append(1))
    second.signals.returned.connect(returned.append)
    runner.start(first, group="post")
    with qtbot.waitSignal(second.signals.finished, timeout=5000):
        runner.start(second, group="post")
    assert cancelled == [1] and returned == ["fast"]


def test_shutdown_cancels_and_waits(qtbot):
    runner = JobRunner()
    started = threading.Event()

    def job(*, progress, cancel):
        started.set()
        while True:
            if cancel():
                raise Cancelled("stop")
            time.sleep(0.005)

    runner.start(Worker(job))
    assert started.wait(5)
    assert runner.shutdown(5000)
    assert all(pool.activeThreadCount() == 0 for pool in runner.pools.values())


def test_progress_reports_stop_a_job_without_a_cancel_argument(qtbot, runner):
    started = threading.Event()

    def generate_like(*, progress, cancel):
        # Like the demo generator: reports progress, never polls cancel itself.
        started.set()
        for i in range(10_000):
            progress("rendering", i, 10_000)
            time.sleep(0.002)
        return "finished anyway"

    worker = Worker(generate_like)
    runner.start(worker)
    assert started.wait(5)
    with qtbot.waitSignal(worker.signals.cancelled, timeout=5000):
        worker.cancel()


def test_busy_lasts_until_every_result_is_stored(qtbot):
    """A job started from another job's result keeps the window busy until its own result is
    stored, even when its thread ends before the GUI has handled the first job's end."""
    from viewer.controller import Controller

    controller = Controller()
    state = controller.state
    stored, busy_seen = [], []

    def second_result(value) -> None:
        stored.append(value)

    def first_result(_value) -> None:
        controller._job(lambda *, progress, cancel: "second", name="second", on_result=second_result)
        time.sleep(0.3)  # the second job's thread finishes while the GUI is still here

    state.events.busy.connect(lambda value: busy_seen.append((value, list(stored))))
    controller._job(lambda *, progress, cancel: "first", name="first", on_result=first_result)
    qtbot.waitUntil(lambda: stored == ["second"] and not state.busy, timeout=5000)
    # Idle was never announced before the second result was stored.
    assert all(stored_then == ["second"] for value, stored_then in busy_seen if value == "")
    assert controller.shutdown(5000)
