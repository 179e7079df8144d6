"""TLift: the engine vs. the authors' formulation (speed, agreement).

Usage::

    python benchmarks/bench_tlift.py            # p = 1000, g = 5000, 6 cameras, random times
    python benchmarks/bench_tlift.py --market   # 3,368 x 15,913, Market-like cameras and times
    python benchmarks/bench_tlift.py --quick    # p = 200, g = 1000

The baseline, ``row_loop_tlift``, is the authors' formulation: one loop over probes and gallery
cameras, the inner step (the temporal weights of the camera's gallery items) vectorised with
NumPy. Both run in this process on the same input; the engine is timed as the best of
``--repeat`` runs, the baseline once. ``--market`` takes the cameras and times of the query and
gallery of ``synth --domain A --market-scale`` (planned, not rendered) with similarities from
random identity features, so windows, co-occurrence and time spans are Market-like.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import timed  # benchmarks/ is on sys.path when run as a script

from engine.utils import configure_threads  # noqa: E402

configure_threads()  # as the CLI and the viewer do, before torch is imported

from engine.postprocess import tlift  # noqa: E402


def _pivots(scores, q, q_cams, q_times, cols, tau, k):
    """Gallery columns (camera ``cols``) of the window block's entries >= its K-th largest value."""
    window = np.flatnonzero((q_cams == q_cams[q]) & (np.abs(q_times - q_times[q]) < tau))
    block = scores[np.ix_(window, cols)]
    values = np.sort(block.ravel())[::-1]
    threshold = values[k - 1] if values.size > k else values[-1]
    return cols[np.nonzero(block >= threshold)[1]]


def row_loop_tlift(scores, q_cams, q_times, g_cams, g_times, tau=100.0, sigma=200.0, k=10, alpha=0.2):
    """docs/arithmetic.md section 9 per probe and gallery camera, step 3 vectorised over the camera's items."""
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


def market_features(seed=0, dim=32):
    """Unit features of Market-scale synthetic queries and gallery (random identity features plus
    per-image noise), with their cameras and times: ``(qf, gf, q_cams, q_times, g_cams, g_times)``."""
    from engine.data.synthetic import MARKET_SCALE
    from engine.data.synthetic.benchmark import _settings, plan_benchmark
    from engine.data.synthetic.domains import get_domain

    sizes = {**MARKET_SCALE, "num_train_ids": 0, "num_train_images": None}
    _, _, images, _ = plan_benchmark(_settings(get_domain("A"), seed, **sizes))
    query = [im for im in images if im.split == "query"]
    gallery = [im for im in images if im.split == "gallery" and im.pid != -1]
    rng = np.random.default_rng(seed)
    people = rng.normal(size=(max(im.detection.person for im in images) + 1, dim))

    def features(items):
        x = people[[im.detection.person for im in items]] + rng.normal(size=(len(items), dim))
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def column(items, field):
        return np.array([getattr(im.detection, field) for im in items])

    return (features(query), features(gallery), column(query, "cam"), column(query, "time"),
            column(gallery, "cam"), column(gallery, "time"))


def market_case(seed=0, dim=32):
    """Cameras and times of Market-scale synthetic queries and gallery, similarities from features.

    Similarities are ``(1 + cos) / 2`` of random identity features plus per-image noise, so true
    matches score high and TLift's pivots behave as on real scores.
    """
    qf, gf, q_cams, q_times, g_cams, g_times = market_features(seed, dim)
    return (1.0 + qf @ gf.T) / 2.0, q_cams, q_times, g_cams, g_times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (p=200, g=1000) for a fast check")
    parser.add_argument("--market", action="store_true",
                        help="Market-1501 sizes, cameras and times (synthetic, planned not rendered)")
    parser.add_argument("--p", type=int, default=None, help="number of probes (default 1000, quick 200)")
    parser.add_argument("--g", type=int, default=None, help="gallery size (default 5000, quick 1000)")
    parser.add_argument("--cameras", type=int, default=6, help="number of cameras")
    parser.add_argument("--hours", type=float, default=2.0, help="time span of the recordings per camera")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the engine; the best is kept")
    args = parser.parse_args(argv)
    if args.market:
        t0 = time.perf_counter()
        case = market_case()
        label = f"Market-like (synthetic A --market-scale, planned in {time.perf_counter() - t0:.1f} s)"
    else:
        p = args.p or (200 if args.quick else 1000)
        g = args.g or (1000 if args.quick else 5000)
        case = make_case(p, g, args.cameras, args.hours)
        label = f"random: cameras={args.cameras} span={args.hours} h"
    scores, q_cams, q_times, _, _ = case
    p, g = scores.shape
    window = [int(((q_cams == q_cams[i]) & (np.abs(q_times - q_times[i]) < 100.0)).sum()) for i in range(p)]
    print(f"TLift, p={p} g={g}, {label} (tau=100, sigma=200, K=10, alpha=0.2); "
          f"mean probe window {np.mean(window):.1f}")

    t_engine, out_engine = timed(tlift, *case, repeat=args.repeat)
    print(f"engine   : {t_engine:8.3f} s")
    t_rows, out_rows = timed(row_loop_tlift, *case)
    print(f"row loop : {t_rows:8.3f} s   (authors' formulation)")
    print(f"engine speed-up vs row loop {t_rows / t_engine:.1f}x, "
          f"max |diff| {np.abs(out_engine - out_rows).max():.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
