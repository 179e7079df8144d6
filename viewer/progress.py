"""How far a long job is and how long it has left, as the progress bar says it (no Qt here).

Every job reports ``progress(stage, done, total)`` (engine/jobs.py, viewer/jobs.py). A
:class:`ProgressClock` remembers when it first saw each stage and at what count, and estimates
the time left of a stage from the rate since then:
``"extract gallery 1200/3400 · about 40 s left"``. The window's progress bar
(viewer/widgets/job_progress.py) words every busy job with it, and :class:`viewer.jobs.JobService`
logs each stage's duration with it. The clock is injected, so tests drive it by hand.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ProgressClock", "StageTime", "format_time_left", "MIN_SECONDS"]

#: No estimate before a stage has run this long: the first batches include warm-up.
MIN_SECONDS = 2.0


def format_time_left(seconds: float) -> str:
    """``"about 40 s left"``: rounded to what a person plans with."""
    if seconds < 10:
        return "a few seconds left"
    if seconds < 60:
        return f"about {5 * round(seconds / 5):.0f} s left"
    if seconds < 3600:
        return f"about {max(1, round(seconds / 60)):.0f} min left"
    return f"about {seconds / 3600:.1f} h left"


@dataclass(frozen=True)
class StageTime:
    """A stage that ended: its name, the seconds it ran and the last count it reported."""

    stage: str
    seconds: float
    done: int
    total: int

    def __str__(self) -> str:
        count = f" ({self.done}/{self.total})" if self.total > 1 else ""
        return f"{self.stage}{count} took {self.seconds:.1f} s"


@dataclass
class _Seen:
    start: float        # when the stage was first seen (or restarted)
    start_done: int     # its count then
    done: int = 0
    total: int = 0
    last: float = 0.0   # when it last reported


class ProgressClock:
    """The time left of each stage, from its rate since the stage was first reported.

    Stages are kept apart by name, so two jobs reporting in turn (the window's load and its
    background scoring) each keep their own rate. A count that goes back, or a new total,
    restarts the stage.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._stages: dict[str, _Seen] = {}
        self._current: str | None = None

    def update(self, stage: str, done: int, total: int) -> StageTime | None:
        """Record a report; returns the stage that just ended when this one is another."""
        now = self._clock()
        ended = None
        if self._current is not None and self._current != stage:
            last = self._stages.get(self._current)
            if last is not None:
                # A stage lasts until the next one begins (one without counts reports once).
                ended = StageTime(self._current, now - last.start, last.done, last.total)
        seen = self._stages.get(stage)
        if seen is None or done < seen.done or total != seen.total:
            seen = self._stages[stage] = _Seen(now, done)
        seen.done, seen.total, seen.last = done, total, now
        self._current = stage
        return ended

    def finish(self) -> StageTime | None:
        """The stage running when the job ended (None when none reported); forgets all."""
        last = self._stages.get(self._current) if self._current is not None else None
        ended = None if last is None else StageTime(self._current, self._clock() - last.start,
                                                    last.done, last.total)
        self._stages.clear()
        self._current = None
        return ended

    def seconds_left(self, stage: str) -> float | None:
        """Seconds until ``stage`` is done at its rate so far; None until that rate is known."""
        seen = self._stages.get(stage)
        if seen is None or seen.total <= 0:
            return None
        elapsed, progressed = seen.last - seen.start, seen.done - seen.start_done
        if elapsed < MIN_SECONDS or progressed <= 0:
            return None
        return max(0.0, (seen.total - seen.done) * elapsed / progressed)

    def text(self, stage: str, done: int, total: int, *, label: str | None = None) -> str:
        """Record the report and word it: ``"LABEL 1200/3400 · about 40 s left"``; ``label``
        defaults to the stage, "" leaves it out; a step without a count (a total of 0 or 1,
        "open dataset and checkpoint" 0/1) is the label alone."""
        self.update(stage, done, total)
        name = stage if label is None else label
        if total <= 1:
            return name
        parts = [f"{name} {done}/{total}".strip()]
        left = self.seconds_left(stage) if done < total else None
        if left is not None:
            parts.append(format_time_left(left))
        return " · ".join(parts)
