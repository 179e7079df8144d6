"""OpenMP's wait policy and the engine used as a library: TLift right after re-ranking.

Usage::

    python benchmarks/bench_wait_policy.py [--queries 600] [--gallery 3000] [--rounds 5]

``import engine`` sets ``OMP_WAIT_POLICY=PASSIVE`` unless the environment names a policy. Each
setting runs in a fresh process (OpenMP reads the policy once, when its runtime loads):

- ``PASSIVE``: ``import engine`` as a library user does;
- ``default``: the same, with the variable removed again before numba loads, which is what a
  library user got before the engine set it (OpenMP's default: spin a while after each
  parallel region).

In each process, ``re_rank`` then ``tlift`` on random distances (``--queries`` x
``--gallery``, 6 cameras, times over an hour), ``--rounds`` times: TLift is timed right after
re-ranking and again after a pause of ``--pause`` seconds ("calm"). Kernels are compiled or
loaded first. Prints the median of each, the in-process ratio (right after / calm) and the
ratio of the two settings right after re-ranking. The load average is printed: on a busy
machine spinning threads cost more.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(args: argparse.Namespace) -> None:
    import engine  # noqa: F401  (sets the wait policy unless the environment has one)

    if args.setting == "default":
        os.environ.pop("OMP_WAIT_POLICY", None)
    import numpy as np

    from engine.postprocess import re_rank, tlift

    rng = np.random.default_rng(0)
    q, g = args.queries, args.gallery
    features = rng.standard_normal((q + g, 32)).astype(np.float32)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    dist = 2.0 - 2.0 * features @ features.T  # [q+g, q+g] square Euclidean distances
    q_g, q_q, g_g = dist[:q, q:], dist[:q, :q], dist[q:, q:]
    q_cams, g_cams = rng.integers(0, 6, q), rng.integers(0, 6, g)
    q_times, g_times = rng.uniform(0, 3600, q), rng.uniform(0, 3600, g)

    def lift(distances: np.ndarray) -> float:
        start = time.perf_counter()
        tlift(1.0 - distances, q_cams, q_times, g_cams, g_times)
        return time.perf_counter() - start

    lift(re_rank(q_g, q_q, g_g))  # compile or load the kernels
    after, calm = [], []
    for _ in range(args.rounds):
        rr = re_rank(q_g, q_q, g_g)
        after.append(lift(rr))
        time.sleep(args.pause)
        calm.append(lift(rr))
    print(json.dumps({"after": statistics.median(after), "calm": statistics.median(calm),
                      "policy": os.environ.get("OMP_WAIT_POLICY", "unset")}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=600)
    parser.add_argument("--gallery", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds before the calm TLift")
    parser.add_argument("--setting", choices=("PASSIVE", "default"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.setting:
        child(args)
        return 0

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start; "
          f"re_rank then tlift on {args.queries} x {args.gallery}, median of {args.rounds} rounds",
          flush=True)
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    results = {}
    for setting in ("PASSIVE", "default"):
        out = subprocess.run([sys.executable, __file__, "--setting", setting,
                              *(argv if argv is not None else sys.argv[1:])],
                             env=env, capture_output=True, text=True, check=True)
        results[setting] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'setting':10s} {'TLift after re_rank':>20s} {'TLift calm':>12s} {'after / calm':>13s}")
    for setting, r in results.items():
        print(f"{setting:10s} {r['after']:18.4f} s {r['calm']:10.4f} s {r['after'] / r['calm']:12.2f}x")
    print(f"right after re_rank, default / PASSIVE: "
          f"{results['default']['after'] / results['PASSIVE']['after']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
