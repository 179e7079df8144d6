"""The time left of a long job (viewer/progress.py, driven by a fake clock), as the progress bar
words it, and the stages the job service logs."""
from __future__ import annotations

import logging

import pytest

from viewer.progress import MIN_SECONDS, ProgressClock, format_time_left
from viewer.state import ViewerState


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_time_left_is_the_remaining_count_at_the_rate_since_the_stage_began(clock):
    progress = ProgressClock(clock)
    # An uneven stage: 50 items in the first 2 s, then 10 items a second.
    reports = [(0.0, 0), (2.0, 50), (5.0, 80), (12.0, 150)]
    for t, done in reports:
        clock.now = 100.0 + t
        progress.update("extract gallery", done, 400)
    # Brute force: items done since the first report over the seconds since then.
    rate = (150 - 0) / 12.0
    assert progress.seconds_left("extract gallery") == pytest.approx((400 - 150) / rate)
    assert progress.text("extract gallery", 150, 400) == "extract gallery 150/400 · about 20 s left"
    assert progress.text("extract gallery", 150, 400, label="") == "150/400 · about 20 s left"


def test_no_estimate_before_the_stage_has_run_a_while_or_moved(clock):
    progress = ProgressClock(clock)
    progress.update("score qg", 10, 100)
    clock.now += MIN_SECONDS / 2
    assert progress.text("score qg", 20, 100) == "score qg 20/100"          # too early
    clock.now += MIN_SECONDS
    assert progress.text("score qg", 30, 100) == "score qg 30/100 · about 10 s left"  # 70 at 20 per 3 s
    other = ProgressClock(clock)
    other.update("rendering", 5, 100)
    clock.now += 10
    assert other.text("rendering", 5, 100) == "rendering 5/100"             # no progress yet
    assert other.text("generate demo data", 0, 0) == "generate demo data"   # no total
    assert other.text("open dataset and checkpoint", 0, 1) == "open dataset and checkpoint"
    clock.now += 10
    assert other.text("rendering", 100, 100) == "rendering 100/100"         # done


def test_interleaved_stages_keep_their_own_rates_and_a_restart_forgets(clock):
    progress = ProgressClock(clock)
    for step in range(5):                  # two jobs reporting in turn
        clock.now = 100.0 + 10 * step
        progress.update("score qg", 100 * step, 1000)     # 10 items/s: 600 left = 60 s
        progress.update("score gg", 10 * step, 1000)      # 1 item/s: 960 left = 960 s
    assert progress.seconds_left("score qg") == pytest.approx(60.0)
    assert progress.seconds_left("score gg") == pytest.approx(960.0)
    clock.now += 10
    progress.update("score qg", 5, 1000)                # counted again from the start
    assert progress.seconds_left("score qg") is None
    clock.now += 10
    progress.update("score qg", 105, 1000)
    assert progress.seconds_left("score qg") == pytest.approx(895 / 10.0)
    progress.update("score qg", 105, 2000)              # a new total: a new stage
    assert progress.seconds_left("score qg") is None


def test_a_stage_that_ends_is_returned_with_its_duration(clock):
    progress = ProgressClock(clock)
    assert progress.update("extract query", 0, 436) is None
    clock.now += 3.0
    assert progress.update("extract query", 436, 436) is None
    clock.now += 1.0
    ended = progress.update("extract gallery", 64, 1258)
    # A stage lasts until the next one begins.
    assert (ended.stage, ended.seconds, ended.done, ended.total) == ("extract query", 4.0, 436, 436)
    assert str(ended) == "extract query (436/436) took 4.0 s"
    clock.now += 2.0
    assert str(progress.update("open", 0, 0)) == "extract gallery (64/1258) took 2.0 s"
    clock.now += 3.0
    assert str(progress.update("extract gallery", 0, 1258)) == "open took 3.0 s"  # no count
    clock.now += 5.0
    last = progress.finish()
    assert (last.stage, last.seconds) == ("extract gallery", 5.0)   # restarted at 0
    assert progress.finish() is None


@pytest.mark.parametrize("seconds, text", [
    (3, "a few seconds left"), (42, "about 40 s left"), (58, "about 60 s left"),
    (170, "about 3 min left"), (61, "about 1 min left"), (5400, "about 1.5 h left"),
])
def test_time_left_is_rounded_for_people(seconds, text):
    assert format_time_left(seconds) == text


def test_the_progress_bar_says_the_count_and_the_time_left(qtbot, clock):
    from viewer.widgets.job_progress import JobProgress

    state = ViewerState()
    for show_stage, prefix in ((False, "extract gallery "), (True, "")):
        widget = JobProgress(state, show_stage=show_stage)
        qtbot.addWidget(widget)
        widget.show()
        widget.clock = ProgressClock(clock)
        state.busy = "Loading"
        clock.now = 0.0
        state.progress = ("extract gallery", 200, 3400)
        clock.now = 10.0
        state.progress = ("extract gallery", 1200, 3400)     # 100 items/s: 22 s left
        assert widget.bar.text() == f"{prefix}1200/3400 · about 20 s left"
        assert widget.bar.maximum() == 3400 and widget.bar.value() == 1200
        state.progress = None
        state.busy = ""
        widget.close()


def test_the_job_service_logs_each_stage(qtbot, caplog):
    from viewer.jobs import JobService

    def job(*, progress, cancel):
        for stage, n in (("first", 3), ("second", 2)):
            for i in range(n):
                progress(stage, i + 1, n)
        return "done"

    service = JobService(ViewerState())
    caplog.set_level(logging.DEBUG, logger="viewer.jobs")
    results = []
    service.submit(job, name="two stages", on_result=results.append)
    qtbot.waitUntil(lambda: results == ["done"] and not service.is_busy(), timeout=5000)
    assert service.shutdown(5000)
    messages = [r.getMessage() for r in caplog.records if r.name == "viewer.jobs"]
    assert any(m.startswith("two stages: first (3/3) took ") for m in messages), messages
    assert any(m.startswith("two stages: second (2/2) took ") for m in messages), messages
    assert any(m.startswith("two stages: finished after ") for m in messages), messages


def test_show_progress_sets_range_value_and_words(qtbot, clock):
    from PySide6.QtWidgets import QProgressBar

    from viewer.widgets.job_progress import show_progress

    bar = QProgressBar()
    qtbot.addWidget(bar)
    progress = ProgressClock(clock)
    show_progress(bar, progress, "sensitivity", 0, 40, label="")
    clock.now += 30.0
    show_progress(bar, progress, "sensitivity", 12, 40, label="")   # 28 left at 0.4 a second
    assert (bar.minimum(), bar.maximum(), bar.value()) == (0, 40, 12)
    assert bar.text() == "12/40 · about 1 min left"
    show_progress(bar, progress, "generate demo data", 0, 0)
    assert (bar.minimum(), bar.maximum()) == (0, 0)                 # indeterminate


def test_a_single_step_stage_is_logged_without_a_count(clock):
    progress = ProgressClock(clock)
    progress.update("open dataset and checkpoint", 0, 1)
    clock.now += 14.0
    assert str(progress.update("extract query", 0, 436)) == "open dataset and checkpoint took 14.0 s"
