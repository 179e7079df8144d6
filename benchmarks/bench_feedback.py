"""Relevance feedback: time of one engine.feedback.refine call against Query Shift's (the field's baseline).

Usage::

    python benchmarks/bench_feedback.py --data DIR --checkpoint FILE   # a dataset (the demo set)
    python benchmarks/bench_feedback.py --market                       # Market-1501 sizes

Per stage (raw, +RR, +RR+TLift) it builds the rows once (the chain's matrix, re-ranking's
encoding: what the viewer keeps once the blocks are cached), then times calls for random
queries with 5 positives and 10 negatives, each call with marks the stage has not seen before
(so the marks' rows are computed inside the timed call, as after a click), and the same calls
of the Query Shift baseline on the same rows. ``--market`` uses 3,368 x 15,913 distances made
from random identity features with the cameras and times of ``synth --market-scale`` (planned,
not rendered), as ``bench_tlift.py --market``. Budgets: 100 ms on the demo, 1 s at Market size
(a dataset of more than 10,000 gallery images counts as Market size).
"""
from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import latency_stats  # benchmarks/ is on sys.path when run as a script

from engine.feedback import FeedbackRows, feedback_rows, query_shift, refine_score  # noqa: E402
from engine.postprocess.params import RerankParams, TLiftParams  # noqa: E402

STAGES = {"raw": (None, None), "+RR": (RerankParams(), None),
          "+RR+TLift": (RerankParams(), TLiftParams())}


@functools.cache
def market_blocks(seed=0):
    """Market-size distance blocks ``(1 - cos) / 2`` of random identity features, cameras,
    times and re-ranking's neighbour lists: ``(qg, qq, gg, q_cams, q_times, g_cams, g_times, near)``."""
    from bench_tlift import market_features

    from engine.postprocess.rerank import top_ranks

    qf, gf, q_cams, q_times, g_cams, g_times = market_features(seed)
    qf, gf = qf.astype(np.float32), gf.astype(np.float32)
    qg, qq, gg = ((1.0 - a @ b.T) / 2.0 for a, b in ((qf, gf), (qf, qf), (gf, gf)))
    near = top_ranks(qg, qq, gg, RerankParams.k1 + 1)
    return qg, qq, gg, q_cams, q_times, g_cams, g_times, near


def market_rows(rerank, tlift) -> FeedbackRows:
    """FeedbackRows of :func:`market_blocks` for these stages."""
    from engine.postprocess.pipeline import post_process

    qg, qq, gg, q_cams, q_times, g_cams, g_times, near = market_blocks()
    base = post_process(qg, qq, gg, rerank=rerank, tlift=tlift, neighbours=near,
                        query_cams=q_cams, query_times=q_times, gallery_cams=g_cams,
                        gallery_times=g_times)
    return FeedbackRows(base, qg, gg, query_cams=q_cams, gallery_cams=g_cams, query_times=q_times,
                        gallery_times=g_times, rerank=rerank, tlift=tlift, qq=qq, neighbours=near)


def time_calls(rows: FeedbackRows, calls: int, seed: int = 0):
    """Wall times of refine_score and query_shift on the same fresh marks, per call."""
    rng = np.random.default_rng(seed)
    g = rows.num_gallery
    refine_t, shift_t = [], []
    for _ in range(calls):
        q = int(rng.integers(rows.base.shape[0]))
        marks = rng.choice(g, 15, replace=False)
        pos, neg = [int(i) for i in marks[:5]], [int(i) for i in marks[5:]]
        t0 = time.perf_counter()
        refine_score(rows, q, pos, neg)
        refine_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        query_shift(rows, q, pos, neg)   # the marks' rows are kept now: only the formula
        shift_t.append(time.perf_counter() - t0)
    return refine_t, shift_t


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data")
    parser.add_argument("--checkpoint")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--market", action="store_true", help="Market-1501 sizes (synthetic features)")
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--stages", default=",".join(STAGES))
    args = parser.parse_args(argv)
    session = None
    if not args.market:
        if not (args.data and args.checkpoint):
            parser.error("give --data and --checkpoint, or --market")
        from engine.session import Session

        session = Session.open(args.data, args.checkpoint, device="cpu", cache_dir=args.cache_dir)
    # The targets (docs/architecture.md): 100 ms on the demo, 1 s at Market size.
    budget = 1.0 if args.market or len(session.dataset.gallery) > 10_000 else 0.1
    for stage in args.stages.split(","):
        rerank, tlift = STAGES[stage]
        t0 = time.perf_counter()
        rows = market_rows(rerank, tlift) if args.market else feedback_rows(session, rerank, tlift)
        setup = time.perf_counter() - t0
        q, g = rows.base.shape
        refine_t, shift_t = time_calls(rows, args.calls)
        med = float(np.median(refine_t))
        print(f"{stage:<10} {q} x {g}: rows built once in {setup:.1f} s")
        print(f"  refine      {latency_stats(refine_t)}  = {med / budget:.2f} of the {budget:g} s budget")
        print(f"  query shift {latency_stats(shift_t)}  (refine / query shift: "
              f"{med / max(float(np.median(shift_t)), 1e-9):.1f}x)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
