"""The job service: results, progress and errors arrive on the GUI thread; groups, cancel, busy
state and shutdown."""
from __future__ import annotations

import threading
import time

import pytest

from engine.jobs import Cancelled, check_cancel
from viewer.jobs import JobService
from viewer.state import ViewerState


@pytest.fixture
def jobs(qtbot):
    service = JobService(ViewerState())
    yield service
    assert service.shutdown(5000)
    for pool in service.pools.values():
        assert pool.activeThreadCount() == 0


def _until_endless(started: threading.Event):
    def job(*, progress, cancel):
        started.set()
        while True:  # until cancelled
            check_cancel(cancel)
            time.sleep(0.005)
    return job


def test_result_and_progress_arrive_on_the_gui_thread(qtbot, jobs):
    seen = {"threads": set(), "progress": [], "result": []}

    def job(n, *, progress, cancel):
        seen["worker_thread"] = threading.current_thread() is threading.main_thread()
        for i in range(n):
            check_cancel(cancel)
            progress("count", i + 1, n)
        return n * 2

    def on_progress(stage, done, total):
        seen["threads"].add(threading.current_thread() is threading.main_thread())
        seen["progress"].append((stage, done, total))

    def on_result(value):
        seen["threads"].add(threading.current_thread() is threading.main_thread())
        seen["result"].append(value)

    jobs.submit(job, 3, name="count", on_result=on_result, on_progress=on_progress)
    qtbot.waitUntil(lambda: seen["result"] == [6] and not jobs.is_busy(), timeout=5000)
    assert seen["worker_thread"] is False
    assert seen["threads"] == {True}
    assert seen["progress"][-1] == ("count", 3, 3)  # the final step is never throttled away


def test_generator_jobs_yield_progress_and_return(qtbot, jobs):
    def job():
        for i in range(4):
            yield ("steps", i + 1, 4)
        return "done"

    steps, results = [], []
    jobs.submit(job, name="steps", on_result=results.append, on_progress=lambda *a: steps.append(a))
    qtbot.waitUntil(lambda: results == ["done"], timeout=5000)
    assert steps[-1] == ("steps", 4, 4)


@pytest.mark.parametrize("report", [True, False])
def test_an_exception_becomes_an_error_with_detail(qtbot, jobs, report):
    def job(*, progress, cancel):
        raise ValueError("the checkpoint does not fit: neck 32 vs 128")

    errors = []
    jobs.submit(job, name="load", on_error=errors.append, report=report)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    error = errors[0]
    assert error.title == "load failed"
    assert "does not fit" in error.message
    assert "Traceback" in error.detail and "ValueError" in error.detail
    # Reported jobs show the error in the window's banner; a panel's own jobs do not.
    assert jobs.state.error == (error if report else None)


def test_cancel_is_cooperative_and_reported(qtbot, jobs):
    started, cancelled, messages = threading.Event(), [], []
    jobs.state.events.message.connect(messages.append)
    jobs.submit(_until_endless(started), name="endless", group="post",
                on_cancel=lambda: cancelled.append(1))
    assert started.wait(5)
    jobs.cancel("other")  # another group: goes on
    assert jobs.is_busy("post")
    jobs.cancel("post")
    qtbot.waitUntil(lambda: not jobs.is_busy(), timeout=5000)
    assert cancelled == [1] and messages == ["endless: cancelled"]


def test_a_new_job_of_a_group_cancels_the_previous_one(qtbot, jobs):
    gate = threading.Event()

    def slow(*, progress, cancel):
        while not gate.is_set():
            check_cancel(cancel)
            time.sleep(0.005)
        return "slow"

    cancelled, returned = [], []
    jobs.submit(slow, name="first", group="post", on_result=returned.append,
                on_cancel=lambda: cancelled.append(1))
    jobs.submit(lambda *, progress, cancel: "fast", name="second", group="post",
                on_result=returned.append)
    qtbot.waitUntil(lambda: not jobs.is_busy(), timeout=5000)
    assert cancelled == [1] and returned == ["fast"]


def test_the_progress_bars_cancel_leaves_a_panels_jobs_running(qtbot, jobs):
    window_started, panel_started = threading.Event(), threading.Event()
    jobs.submit(_until_endless(window_started), name="window", group="post")
    jobs.submit(_until_endless(panel_started), name="panel", group="plots", pool="panel",
                busy=False, report=False)
    assert window_started.wait(5) and panel_started.wait(5)
    jobs.cancel_reported()
    qtbot.waitUntil(lambda: not jobs.is_busy("post"), timeout=5000)
    assert jobs.is_busy("plots")
    jobs.cancel("plots")
    qtbot.waitUntil(lambda: not jobs.is_busy(), timeout=5000)


def test_shutdown_cancels_waits_and_calls_back_no_more(qtbot):
    jobs = JobService(ViewerState())
    started, calls = threading.Event(), []

    def job(*, progress, cancel):
        started.set()
        while True:
            if cancel():
                raise Cancelled("stop")
            time.sleep(0.005)

    jobs.submit(job, name="endless", on_cancel=lambda: calls.append("cancel"))
    jobs.submit(lambda *, progress, cancel: "queued", name="queued", on_result=calls.append)
    assert started.wait(5)
    assert jobs.shutdown(5000)
    assert all(pool.activeThreadCount() == 0 for pool in jobs.pools.values())
    qtbot.wait(50)  # let queued signals arrive: their callbacks must not run
    assert calls == []


def test_progress_reports_stop_a_job_without_a_cancel_argument(qtbot, jobs):
    started, cancelled = threading.Event(), []

    def generate_like(*, progress, cancel):
        # Like the demo generator: reports progress, never polls cancel itself.
        started.set()
        for i in range(10_000):
            progress("rendering", i, 10_000)
            time.sleep(0.002)
        return "finished anyway"

    worker = jobs.submit(generate_like, name="render", on_cancel=lambda: cancelled.append(1))
    assert started.wait(5)
    worker.cancel()
    qtbot.waitUntil(lambda: cancelled == [1], timeout=5000)


def test_busy_shows_the_latest_job_and_clears_with_the_last(qtbot, jobs):
    state = jobs.state
    gate, started = threading.Event(), threading.Event()

    def held(*, progress, cancel):
        started.set()
        progress("holding", 1, 2)
        while not gate.is_set():
            check_cancel(cancel)
            time.sleep(0.005)

    jobs.submit(held, name="held")
    jobs.submit(lambda *, progress, cancel: None, name="quiet", pool="io", busy=False)
    assert state.busy == "held" and state.progress == ("held", 0, 0)
    assert started.wait(5)
    qtbot.waitUntil(lambda: state.progress == ("holding", 1, 2), timeout=5000)
    gate.set()
    qtbot.waitUntil(lambda: not jobs.is_busy(), timeout=5000)
    assert state.busy == "" and state.progress is None


def test_busy_lasts_until_every_result_is_stored(qtbot, jobs):
    """A job started from another job's result keeps the window busy until its own result is
    stored, even when its thread ends before the GUI has handled the first job's end."""
    state = jobs.state
    stored, busy_seen = [], []

    def first_result(_value) -> None:
        jobs.submit(lambda *, progress, cancel: "second", name="second", on_result=stored.append)
        time.sleep(0.3)  # the second job's thread finishes while the GUI is still here

    state.events.busy.connect(lambda value: busy_seen.append((value, list(stored))))
    jobs.submit(lambda *, progress, cancel: "first", name="first", on_result=first_result)
    qtbot.waitUntil(lambda: stored == ["second"] and not state.busy, timeout=5000)
    # Idle was never announced before the second result was stored.
    assert all(stored_then == ["second"] for value, stored_then in busy_seen if value == "")


def test_shutdown_waits_no_longer_than_its_bound(qtbot):
    """A job that never polls cancel does not hold the window's quit beyond the bound."""
    jobs = JobService(ViewerState())
    started, release = threading.Event(), threading.Event()

    def stubborn(*, progress, cancel):
        started.set()
        release.wait(30)

    for pool in ("session", "background", "io", "panel"):
        jobs.submit(stubborn, name=pool, pool=pool, busy=False)
    assert started.wait(5)
    assert jobs.shutdown(100) is False
    release.set()
    assert jobs.wait(5000)


_FIRST_PAINT = ("import torch, PySide6.QtWidgets, engine.session, viewer.main_window, "
                "viewer.controller, viewer.tasks")


def _modules_imported_by(statement: str) -> set[str]:
    """The modules ``statement`` imports in a fresh process that has already imported what the
    window has at its first paint."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (f"{_FIRST_PAINT}\nimport sys\nbefore = set(sys.modules)\n{statement}\n"
            "print('\\n'.join(sorted(set(sys.modules) - before)))")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(done.stdout.split())


@pytest.mark.slow
def test_packages_both_threads_import_after_the_first_paint_are_imported_first():
    # After the first paint a background job loads re-ranking's compiled kernels (numba) while
    # the GUI thread imports pyqtgraph for the inspector and the plots. A package both import for
    # the first time can fail with a KeyError when the two imports interleave (CI saw it with
    # colorama), so JobService imports the shared ones on the GUI thread beforehand.
    from viewer.jobs import SHARED_IMPORTS

    worker = _modules_imported_by("from engine.postprocess.pipeline import warm_up; warm_up()")
    gui = _modules_imported_by("import pyqtgraph, pyqtgraph.exporters, viewer.inspector.view, "
                               "viewer.plots.view, viewer.occlusion.view")
    shared = {name.partition(".")[0] for name in worker & gui}
    assert shared <= set(SHARED_IMPORTS), sorted(shared - set(SHARED_IMPORTS))


def test_the_job_service_imports_the_shared_packages_on_its_thread(qtbot, monkeypatch):
    import sys

    from viewer import jobs as jobs_module

    monkeypatch.setattr(jobs_module, "SHARED_IMPORTS", ("json.tool", "no_such_package_xyz"))
    monkeypatch.delitem(sys.modules, "json.tool", raising=False)
    service = JobService(ViewerState())
    assert "json.tool" in sys.modules  # imported; the absent one is skipped without an error
    service.shutdown(1000)
