"""Timing helper shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""
from __future__ import annotations

import time


def timed(fn, *args, repeat=1):
    """Best wall time of ``repeat`` calls of ``fn(*args)`` and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, result
