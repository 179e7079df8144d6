"""k-reciprocal re-ranking: engine vs. the loop formulation of docs/arithmetic.md section 8 (speed, memory).

Usage::

    python benchmarks/bench_rerank.py            # q = 500, g = 2500 (N = 3000)
    python benchmarks/bench_rerank.py --quick    # q = 150, g = 750 (N = 900)

Prints wall time of both (best of ``--repeat`` for the engine, one run of the loop), the speed-up,
the largest absolute difference between their results, and the peak memory of each.

Memory is measured with ``tracemalloc``, which NumPy feeds with every array buffer it allocates:
the peak of traced memory during the call minus what was traced before it, so the caller's input
blocks are *not* counted, everything the function allocates (including its result) is. Memory
runs are separate from timed runs because tracing slows Python code. The engine's peak is also
measured at a few smaller N: its only N^2 allocation is the ``[q, g]`` result, the rest is
fitted as ``b N + c``; with the caller's float32 inputs (``q_g``, ``q_q``, ``g_g``), inputs plus
result are ``4 N^2`` bytes, which gives the largest N that fits in 8 GiB.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import peak_bytes, timed  # benchmarks/ is on sys.path when run as a script

from engine.postprocess import re_rank  # noqa: E402

GIB = 2**30


def loop_re_rank(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3):
    """docs/arithmetic.md section 8 as a loop over rows with dense N x N matrices (Zhong et al.'s layout)."""
    num_q = q_g.shape[0]
    full = np.concatenate(
        [np.concatenate([q_q, q_g], axis=1), np.concatenate([q_g.T, g_g], axis=1)], axis=0
    ).astype(np.float32)
    dist = np.transpose(full / np.max(full, axis=0))
    del full
    n = dist.shape[0]
    rank = np.argsort(dist, axis=1).astype(np.int32)
    k_half = int(np.around(k1 / 2.0))

    def reciprocal(ranks, i, k):
        forward = ranks[i, : k + 1]
        backward = ranks[forward, : k + 1]
        return forward[np.where(backward == i)[0]]

    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        r_i = reciprocal(rank, i, k1)
        expansion = r_i
        for c in r_i:
            r_c = reciprocal(rank, c, k_half)
            if len(np.intersect1d(r_c, r_i)) > 2.0 / 3.0 * len(r_c):
                expansion = np.append(expansion, r_c)
        expansion = np.unique(expansion)
        weight = np.exp(-dist[i, expansion])
        v[i, expansion] = weight / np.sum(weight)
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = np.mean(v[rank[i, :k2]], axis=0)
        v = v_qe
        del v_qe
    del rank
    # Inverted index: which rows use column k.
    inverted = [np.where(v[:, k] != 0)[0] for k in range(n)]
    jaccard = np.zeros((num_q, n), dtype=np.float32)
    for i in range(num_q):
        overlap = np.zeros(n, dtype=np.float32)
        for k in np.where(v[i] != 0)[0]:
            rows = inverted[k]
            overlap[rows] += np.minimum(v[i, k], v[rows, k])
        jaccard[i] = 1 - overlap / (2 - overlap)
    final = jaccard * (1 - lambda_value) + dist[:num_q] * lambda_value
    return final[:, num_q:]


def make_blocks(q, g, seed=0, dim=64, identities=None):
    """Euclidean distances of clustered unit vectors, as contiguous float32 blocks."""
    rng = np.random.default_rng(seed)
    identities = identities or max(2, (q + g) // 10)
    pids = rng.integers(0, identities, q + g)
    x = rng.normal(size=(identities, dim))[pids] + 0.8 * rng.normal(size=(q + g, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    full = np.sqrt(np.maximum(2.0 - 2.0 * (x @ x.T), 0.0)).astype(np.float32)
    return tuple(np.ascontiguousarray(b) for b in (full[:q, q:], full[:q, :q], full[q:, q:]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (q=150, g=750) for a fast check")
    parser.add_argument("--q", type=int, default=None, help="number of queries (default 500, quick 150)")
    parser.add_argument("--g", type=int, default=None, help="gallery size (default 2500, quick 750)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the engine; the best is kept")
    parser.add_argument("--no-loop", action="store_true", help="skip the (slow) loop formulation")
    parser.add_argument("--no-memory", action="store_true",
                        help="time only (Market scale: q=3368 g=15913 --no-loop --no-memory)")
    parser.add_argument("--compare-with", metavar="FILE", default=None,
                        help="another version's engine/postprocess/rerank.py, timed on the same "
                             "input (before/after a change; e.g. from a git worktree)")
    args = parser.parse_args(argv)
    q = args.q or (150 if args.quick else 500)
    g = args.g or (750 if args.quick else 2500)
    n = q + g
    blocks = make_blocks(q, g)
    dense_unit = 4 * n * n  # bytes of one dense N x N float32 array

    print(f"re-ranking, q={q} g={g} N={n} (k1=20, k2=6, lambda=0.3); one N x N float32 = {dense_unit / 2**20:.1f} MiB")
    t_engine, out_engine = timed(re_rank, *blocks, repeat=args.repeat)
    if args.compare_with:
        import importlib.util

        spec = importlib.util.spec_from_file_location("other_rerank", args.compare_with)
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
        t_other, out_other = timed(other.re_rank, *blocks, repeat=args.repeat)
        print(f"{args.compare_with}: {t_other:8.3f} s; this engine {t_other / t_engine:.1f}x faster, "
              f"max |diff| {np.abs(out_engine - out_other).max():.1e}")
        del out_other
    if args.no_memory:
        print(f"engine : {t_engine:8.3f} s")
        return 0
    m_engine = peak_bytes(re_rank, *blocks)
    print(f"engine : {t_engine:8.3f} s   peak {m_engine / 2**20:8.1f} MiB = {m_engine / dense_unit:.2f} x N^2 float32")
    if not args.no_loop:
        t_loop, out_loop = timed(loop_re_rank, *blocks)
        m_loop = peak_bytes(loop_re_rank, *blocks)
        print(f"loop   : {t_loop:8.3f} s   peak {m_loop / 2**20:8.1f} MiB = {m_loop / dense_unit:.2f} x N^2 float32")
        print(f"speed-up {t_loop / t_engine:.1f}x, memory ratio {m_loop / m_engine:.1f}x, "
              f"max |engine - loop| = {np.abs(out_engine - out_loop).max():.2e}")

    # Memory model of the engine at the same q : g ratio. Its only N^2 allocation is the [q, g]
    # float32 result; the rest (rank heads, sparse V, chunk buffers) is fitted as b N + c.
    sizes = sorted({max(60, n // 4), max(120, n // 2), max(180, 3 * n // 4), n})
    extra = []
    for size in sizes:
        qs = max(1, round(size * q / n))
        extra.append(peak_bytes(re_rank, *make_blocks(qs, size - qs, seed=1)) - 4 * qs * (size - qs))
    b, c = np.polyfit(np.array(sizes, float), np.array(extra, float), 1)
    print("engine peak minus its [q, g] result, by N: "
          + ", ".join(f"{s}: {e / 2**20:.1f} MiB" for s, e in zip(sizes, extra, strict=True)))
    print(f"fit: peak ~ 4 q g + {b:.0f} N + {c / 2**20:.1f} MiB (bytes)")
    # With the caller's float32 inputs (q_g, q_q, g_g), inputs + result = 4 (q + g)^2 = 4 N^2 bytes.
    largest = (-b + np.sqrt(b * b - 4 * 4.0 * (c - 8 * GIB))) / (2 * 4.0)
    print(f"largest N in 8 GiB (inputs + result 4 N^2 bytes + the fitted rest): ~{largest:,.0f} "
          f"(q={q / n * largest:,.0f}, g={g / n * largest:,.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
