"""TLift: engine vs. loop formulations of SPEC.md section 9 (speed, agreement).

Usage::

    python benchmarks/bench_tlift.py            # p = 1000, g = 5000, 6 cameras
    python benchmarks/bench_tlift.py --quick    # p = 200, g = 1000

Two baselines, both run in this process on the same input:

- ``loop``: the specification read literally, one probe, one gallery camera and one gallery item
  at a time (NumPy only inside: the window block, its threshold, the mean over pivots);
- ``row loop``: one probe and one gallery camera at a time, step 3 vectorised over the camera's
  gallery items. A stricter baseline, reported for context.

The engine is timed as the best of ``--repeat`` runs; each baseline runs once.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import timed  # benchmarks/ is on sys.path when run as a script

from engine.postprocess import tlift  # noqa: E402


def _pivots(scores, q, q_cams, q_times, cols, tau, k):
    """Gallery columns (camera ``cols``) of the window block's entries >= its K-th largest value."""
    window = np.flatnonzero((q_cams == q_cams[q]) & (np.abs(q_times - q_times[q]) < tau))
    block = scores[np.ix_(window, cols)]
    values = np.sort(block.ravel())[::-1]
    threshold = values[k - 1] if values.size > k else values[-1]
    return cols[np.nonzero(block >= threshold)[1]]


def loop_tlift(scores, q_cams, q_times, g_cams, g_times, tau=100.0, sigma=200.0, k=10, alpha=0.2):
    """SPEC.md section 9: per probe, per gallery camera, per gallery item."""
    lifted = np.empty(scores.shape)
    cameras = [np.flatnonzero(g_cams == c) for c in np.unique(g_cams)]
    for q in range(scores.shape[0]):
        for cols in cameras:
            pivot_times = g_times[_pivots(scores, q, q_cams, q_times, cols, tau, k)]
            for j in cols:
                w = np.mean(np.exp(-((g_times[j] - pivot_times) ** 2) / sigma**2))
                lifted[q, j] = (w + alpha) * scores[q, j]
    return lifted


def row_loop_tlift(scores, q_cams, q_times, g_cams, g_times, tau=100.0, sigma=200.0, k=10, alpha=0.2):
    """As :func:`loop_tlift` with step 3 vectorised over the camera's gallery items."""
    lifted = np.empty(scores.shape)
    cameras = [np.flatnonzero(g_cams == c) for c in np.unique(g_cams)]
    for q in range(scores.shape[0]):
        for cols in cameras:
            pivot_times = g_times[_pivots(scores, q, q_cams, q_times, cols, tau, k)]
            w = np.exp(-((g_times[cols][None, :] - pivot_times[:, None]) ** 2) / sigma**2).mean(axis=0)
            lifted[q, cols] = (w + alpha) * scores[q, cols]
    return lifted


def make_case(p, g, cameras=6, hours=2.0, seed=0):
    """Random similarities with probe/gallery times spread over ``hours`` on each camera."""
    rng = np.random.default_rng(seed)
    span = hours * 3600.0
    scores = rng.random((p, g)) ** 3  # most pairs dissimilar, a few similar
    return (scores, rng.integers(0, cameras, p), rng.random(p) * span,
            rng.integers(0, cameras, g), rng.random(g) * span)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (p=200, g=1000) for a fast check")
    parser.add_argument("--p", type=int, default=None, help="number of probes (default 1000, quick 200)")
    parser.add_argument("--g", type=int, default=None, help="gallery size (default 5000, quick 1000)")
    parser.add_argument("--cameras", type=int, default=6, help="number of cameras")
    parser.add_argument("--hours", type=float, default=2.0, help="time span of the recordings per camera")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the engine; the best is kept")
    parser.add_argument("--no-literal-loop", action="store_true", help="skip the slow per-item loop")
    args = parser.parse_args(argv)
    p = args.p or (200 if args.quick else 1000)
    g = args.g or (1000 if args.quick else 5000)
    case = make_case(p, g, args.cameras, args.hours)
    _, q_cams, q_times, _, _ = case
    window = [int(((q_cams == q_cams[i]) & (np.abs(q_times - q_times[i]) < 100.0)).sum()) for i in range(p)]
    print(f"TLift, p={p} g={g} cameras={args.cameras} span={args.hours} h "
          f"(tau=100, sigma=200, K=10, alpha=0.2); mean probe window {np.mean(window):.1f}")

    t_engine, out_engine = timed(tlift, *case, repeat=args.repeat)
    print(f"engine   : {t_engine:8.3f} s")
    t_rows, out_rows = timed(row_loop_tlift, *case)
    print(f"row loop : {t_rows:8.3f} s   speed-up {t_rows / t_engine:6.1f}x   "
          f"max |diff| {np.abs(out_engine - out_rows).max():.1e}")
    if not args.no_literal_loop:
        t_loop, out_loop = timed(loop_tlift, *case)
        print(f"loop     : {t_loop:8.3f} s   speed-up {t_loop / t_engine:6.1f}x   "
              f"max |diff| {np.abs(out_engine - out_loop).max():.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
