"""Cooperative cancellation and progress reporting for long engine computations.

Long functions (re-ranking, scoring, sweeps) take two optional callables:

- ``progress(done, total)``: called from time to time with integer counts of work units;
- ``cancel() -> bool``: polled between units of work; returning True makes the function raise
  :class:`Cancelled` at the next check, leaving no partial result behind.

Both run on the worker's thread: the viewer wraps them to forward to the GUI thread.
"""
from __future__ import annotations

from collections.abc import Callable

__all__ = ["Cancelled", "ProgressFn", "CancelFn", "check_cancel", "report"]

ProgressFn = Callable[[int, int], None]
CancelFn = Callable[[], bool]


class Cancelled(Exception):
    """Raised inside a computation when its ``cancel()`` callback asked it to stop."""


def check_cancel(cancel: CancelFn | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` is given and returns True."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled by the caller")


def report(progress: ProgressFn | None, done: int, total: int) -> None:
    """Call ``progress(done, total)`` if a callback was given."""
    if progress is not None:
        progress(int(done), int(total))
