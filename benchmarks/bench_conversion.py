"""Logits -> distances: the engine's float32 tiles vs. a whole-matrix float64 formulation.

Usage::

    python benchmarks/bench_conversion.py            # a 6,000 x 6,000 block
    python benchmarks/bench_conversion.py --n 15913  # Market's gallery x gallery block

The baseline is the plain NumPy way, and the engine's before issue 12: cast the float32 logits
to float64, ``sigmoid(-logit / 10)`` split by sign (``np.where``), then round the result to
float32. Both give the same float32 numbers (checked). Time is the best of ``--repeat`` runs;
memory is the peak traced by ``tracemalloc`` (NumPy reports its buffers to it) during the call,
result included, as a multiple of the float32 result.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import peak_bytes, timed  # benchmarks/ is on sys.path when run as a script

from engine.postprocess import distance_from_logits  # noqa: E402


def float64_distances(logits):
    """``sigmoid(-logit / 10)`` on a float64 copy of the whole matrix, rounded to float32."""
    x = -np.asarray(logits, dtype=np.float64) / 10.0
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=6000, help="block side (default 6000)")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each; the best is kept")
    args = parser.parse_args(argv)
    logits = np.random.default_rng(0).normal(0.0, 40.0, (args.n, args.n)).astype(np.float32)
    result_bytes = 4 * args.n * args.n
    print(f"logits -> distances, {args.n} x {args.n} float32 ({result_bytes / 2**20:.0f} MiB result)")
    t_engine, out_engine = timed(distance_from_logits, logits, repeat=args.repeat)
    t_base, out_base = timed(float64_distances, logits, repeat=args.repeat)
    assert np.array_equal(out_engine, out_base), "the two paths must give the same float32 numbers"
    del out_engine, out_base
    m_engine, m_base = peak_bytes(distance_from_logits, logits), peak_bytes(float64_distances, logits)
    print(f"engine (float32 tiles): {t_engine:7.2f} s   peak {m_engine / result_bytes:5.2f} x result")
    print(f"float64 whole matrix  : {t_base:7.2f} s   peak {m_base / result_bytes:5.2f} x result")
    print(f"engine {t_base / t_engine:.1f}x faster, {m_base / m_engine:.1f}x less memory; same numbers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
