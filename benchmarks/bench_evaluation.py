"""Evaluation (CMC / mAP / mINP): engine vs. a per-query loop, at Market-1501 test size.

Usage::

    python benchmarks/bench_evaluation.py           # 3368 queries x 15913 gallery
    python benchmarks/bench_evaluation.py --quick   # 800 x 4000

The loop baseline is the usual formulation of docs/arithmetic.md section 7 (torchreid's
``eval_market1501``): one 2-D argsort of the distance matrix, then one Python iteration per
query. The engine avoids the full argsort where it can (see ``engine/evaluation.py``), so the
time of ``np.argsort`` alone is printed for scale. Both are run in this process on the same synthetic distance matrix (750 identities,
6 cameras, pid-0 distractors, a few queries without a match); each is timed as the best of
``--repeat`` runs, and their metrics are compared.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import timed  # benchmarks/ is on sys.path when run as a script

from engine.evaluation import evaluate  # noqa: E402


def loop_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """Per-query loop: returns (cmc, mAP, mINP)."""
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for i in range(distmat.shape[0]):
        order = indices[i]
        keep = ~((g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i]))
        hits = matches[i][keep]
        if not hits.any():
            continue
        found = hits.cumsum()
        last = np.flatnonzero(hits)[-1]
        all_inp.append(found[last] / (last + 1.0))
        cmc = np.minimum(found, 1)
        all_cmc.append(cmc[:max_rank])
        precision = found / np.arange(1.0, len(found) + 1.0)
        all_ap.append((precision * hits).sum() / hits.sum())
    cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc)
    return cmc, float(np.mean(all_ap)), float(np.mean(all_inp))


def make_case(q, g, identities=750, cameras=6, seed=0):
    """A distance matrix where true matches tend to be closer, with Market-like labels."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(1, identities + 1, q)
    q_pids[:5] = identities + 1  # queries without any match
    g_pids = rng.integers(1, identities + 1, g)
    g_pids[rng.random(g) < 0.15] = 0  # distractors
    q_cams = rng.integers(0, cameras, q)
    g_cams = rng.integers(0, cameras, g)
    distmat = rng.random((q, g), dtype=np.float32)
    distmat -= 0.2 * (q_pids[:, None] == g_pids[None, :])
    return distmat, q_pids, g_pids, q_cams, g_cams


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (800 x 4000) for a fast check")
    parser.add_argument("--q", type=int, default=None, help="number of queries (default 3368, quick 800)")
    parser.add_argument("--g", type=int, default=None, help="gallery size (default 15913, quick 4000)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each; the best is kept")
    args = parser.parse_args(argv)
    q = args.q or (800 if args.quick else 3368)
    g = args.g or (4000 if args.quick else 15913)
    case = make_case(q, g)
    print(f"evaluation, {q} queries x {g} gallery (max_rank 50)")

    t_sort, _ = timed(lambda d: np.argsort(d, axis=1), case[0], repeat=args.repeat)
    t_engine, metrics = timed(evaluate, *case, repeat=args.repeat)
    t_loop, (cmc, mean_ap, mean_inp) = timed(loop_evaluate, *case, repeat=args.repeat)
    print(f"engine        : {t_engine:7.3f} s")
    print(f"per-query loop: {t_loop:7.3f} s   speed-up {t_loop / t_engine:.2f}x")
    print(f"(for scale: np.argsort of the matrix alone takes {t_sort:.3f} s; the loop needs it, "
          "the engine sorts values only)")
    print(f"agreement: max |cmc| diff {np.abs(metrics.cmc - cmc).max():.1e}, "
          f"|mAP| diff {abs(metrics.mean_ap - mean_ap):.1e}, |mINP| diff {abs(metrics.mean_inp - mean_inp):.1e}; "
          f"rank-1 {metrics.rank1:.4f}, mAP {metrics.mean_ap:.4f}, valid queries {metrics.num_valid}/{q}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
