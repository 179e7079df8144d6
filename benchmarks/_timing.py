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


def latency_stats(values: list[float]) -> str:
    """Median, p95 and max of wall times in seconds, printed in milliseconds."""
    import statistics

    values = sorted(values)
    p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
    return (f"median {1000 * statistics.median(values):7.1f} ms  p95 {1000 * p95:7.1f} ms  "
            f"max {1000 * values[-1]:7.1f} ms  (n={len(values)})")


def peak_bytes(fn, *args) -> int:
    """Peak Python/NumPy heap growth (tracemalloc) while ``fn(*args)`` runs, in bytes."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        result = fn(*args)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    del result
    return peak
