"""QAConv scoring speed on the CPU against the machine's own matmul rate and a plain einsum.

At the published shapes (D = 128, 24 x 8 maps, hw = 192) one pair costs ``2 * hw * hw * D``
flops of similarities (9.4 MFLOP); the maxima and the head are comparatively free. The script
measures, in one process:

- a large float32 ``torch.matmul`` (the machine's practical peak),
- ``engine.scoring.score_matrix`` (the engine's path: folded head, blocked matmul + max),
- a straightforward einsum formulation of SPEC.md section 2 (``einsum('pcs,gcr->pgrs')``,
  max both ways, the module's BatchNorm / Linear / BatchNorm head), chunked to the same
  memory budget, and at the engine's CPU block size,
- the engine's kernel at several block sizes (why ``CPU_BLOCK_PAIRS`` is what it is),

and prints pairs/s, effective GFLOP/s and the ratios (targets: >= 0.5 of the matmul rate,
faster than einsum). Not part of the test suite.

    python benchmarks/bench_scoring.py [--probes 32] [--gallery 256] [--rounds 5]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from engine.models.qaconv import (
    CPU_BLOCK_PAIRS,
    QAConv,
    block_shape,
    folded_scores,
    gallery_columns,
    probe_rows,
)
from engine.scoring import DEFAULT_SCORING_BUDGET, score_matrix


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def einsum_scores(matcher: QAConv, probe: torch.Tensor, gallery: torch.Tensor,
                  block: tuple[int, int]) -> torch.Tensor:
    """SPEC.md section 2 as written, one chunk of pairs at a time."""
    p, c = probe.shape[:2]
    g, hw = gallery.shape[0], matcher.hw
    P, G = probe.reshape(p, c, hw), gallery.reshape(g, c, hw)
    out = torch.empty(p, g)
    pc, gc = block
    for i in range(0, p, pc):
        for j in range(0, g, gc):
            sim = torch.einsum("pcs,gcr->pgrs", P[i:i + pc], G[j:j + gc])        # [pc, gc, hw, hw]
            maxima = torch.stack((sim.max(dim=2).values, sim.max(dim=3).values), dim=2)
            out[i:i + pc, j:j + gc] = matcher.head(maxima)                       # [pc, gc]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=32, help="probe images (default 32)")
    parser.add_argument("--gallery", type=int, default=256, help="gallery images (default 256)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds; every method runs once per round, interleaved, and its "
                             "best round counts (the machine may be shared)")
    parser.add_argument("--budget-mb", type=float, default=DEFAULT_SCORING_BUDGET / 2**20,
                        help="memory budget for scoring, MiB (default: the engine's default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    d, h, w = 128, 24, 8
    hw = h * w
    budget = int(args.budget_mb * 2**20)
    p, g = args.probes, args.gallery
    flops_per_pair = 2 * hw * hw * d
    torch.manual_seed(0)
    probe = F.normalize(torch.randn(p, d, h, w), dim=1)
    gallery = F.normalize(torch.randn(g, d, h, w), dim=1)
    probe16, gallery16 = probe.numpy().astype("float16"), gallery.numpy().astype("float16")
    matcher = QAConv(d, h, w).eval()
    rows, cols = probe_rows(probe), gallery_columns(gallery)
    weight, bias = matcher.folded_head()
    # The einsum is an order of magnitude slower: time it on a quarter of the gallery.
    g_einsum = max(1, g // 4)
    einsum_budget_block = block_shape(p, g_einsum, hw, budget // 2, 4)
    einsum_engine_block = block_shape(p, g_einsum, hw, budget // 2, 4, CPU_BLOCK_PAIRS)
    a, b = torch.randn(4096, 1024), torch.randn(1024, 4096)

    # name -> (function, flops per call, pairs per call)
    methods = {
        "float32 matmul 4096x1024 @ 1024x4096": (lambda: torch.matmul(a, b), 2 * 4096 * 1024 * 4096, 0),
        "engine score_matrix (torch fp32 maps)": (
            lambda: score_matrix(matcher, probe, gallery, memory_budget=budget), 0, p * g),
        "engine score_matrix (numpy fp16 maps, stored)": (
            lambda: score_matrix(matcher, probe16, gallery16, memory_budget=budget), 0, p * g),
        f"einsum, same budget ({einsum_budget_block[0]}x{einsum_budget_block[1]} pairs/chunk)": (
            lambda: einsum_scores(matcher, probe, gallery[:g_einsum], einsum_budget_block), 0, p * g_einsum),
        f"einsum, engine's block ({einsum_engine_block[0]}x{einsum_engine_block[1]})": (
            lambda: einsum_scores(matcher, probe, gallery[:g_einsum], einsum_engine_block), 0, p * g_einsum),
    }
    for block in ((1, 8), (2, 8), (2, 16), (4, 16), (8, 8), (4, 32), (8, 32), (16, 64)):
        methods[f"  kernel block {block[0]}x{block[1]}"] = (
            lambda blk=block: folded_scores(rows, cols, weight, bias, hw=hw, block=blk), 0, p * g)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; D={d}, {h}x{w} (hw={hw}); "
          f"{p} x {g} pairs per call, {flops_per_pair / 1e6:.2f} MFLOP per pair; "
          f"budget {budget / 2**20:.0f} MiB; best of {args.rounds} interleaved rounds")
    best = {name: float("inf") for name in methods}
    for fn, _, _ in methods.values():   # warm-up
        fn()
    for _ in range(args.rounds):
        for name, (fn, _, _) in methods.items():
            best[name] = min(best[name], timed(fn))

    rate = {}
    for name, (_, flops, pairs) in methods.items():
        flops = flops or pairs * flops_per_pair
        rate[name] = flops / best[name] / 1e9
    peak = rate["float32 matmul 4096x1024 @ 1024x4096"]
    for name, (_, _, pairs) in methods.items():
        extra = f"{pairs / best[name]:10.0f} pairs/s" if pairs else " " * 17
        print(f"{name:52s} {rate[name]:8.1f} GFLOP/s {extra} {rate[name] / peak:6.2f} x matmul")

    # Same numbers, different paths: a benchmark that scores wrong is no benchmark.
    check = torch.from_numpy(score_matrix(matcher, probe[:8], gallery[:32], memory_budget=budget))
    torch.testing.assert_close(check, einsum_scores(matcher, probe[:8], gallery[:32], (8, 32)),
                               atol=1e-4, rtol=1e-4)
    engine = rate["engine score_matrix (torch fp32 maps)"]
    einsum_names = [n for n in methods if n.startswith("einsum")]
    print(f"ratios: engine / matmul = {engine / peak:.2f} (target >= 0.5); "
          f"engine / einsum = {engine / rate[einsum_names[0]]:.1f}x (same budget), "
          f"{engine / rate[einsum_names[1]]:.1f}x (same block)")


if __name__ == "__main__":
    main()
