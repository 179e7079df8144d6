"""QAConv scoring speed against the same device's own matmul rate and a plain einsum.

At the published shapes (D = 128, 24 x 8 maps, hw = 192) one pair costs ``2 * hw * hw * D``
flops of similarities (9.4 MFLOP); the maxima and the head are comparatively free. The script
measures, in one process, on the CPU (float32, the engine's CPU dtype):

- a large float32 ``torch.matmul`` (the machine's practical peak),
- ``engine.models.scoring.score_matrix`` (the engine's path: folded head, blocked matmul + max),
- a straightforward einsum formulation of docs/arithmetic.md section 2 (``einsum('pcs,gcr->pgrs')``,
  max both ways, the module's BatchNorm / Linear / BatchNorm head), chunked to the same
  memory budget, and at the engine's CPU block size,
- the engine's kernel at several block sizes (why ``CPU_BLOCK_PAIRS`` is what it is);

with ``--device cuda`` the same in float16 (the engine's CUDA dtype) against the same GPU's
float16 matmul rate, from maps stored in fp16 on the host (as the feature store holds them,
transfers included) and from maps already on the GPU. It prints pairs/s, effective GFLOP/s
and the ratios (targets: >= 0.5 of the matmul rate, faster than einsum). Without CUDA,
``--device cuda`` stops with a message (exit status 2). Not part of the test suite.

    python benchmarks/bench_scoring.py [--device cpu|cuda] [--probes P] [--gallery G] [--rounds 5]
"""
from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from _timing import timed  # benchmarks/ is on sys.path when run as a script

from engine.models.qaconv import (
    CPU_BLOCK_PAIRS,
    QAConv,
    block_shape,
    folded_scores,
    gallery_columns,
    probe_rows,
)
from engine.models.scoring import DEFAULT_SCORING_BUDGET, default_score_dtype, score_matrix
from engine.utils import resolve_device


@torch.no_grad()
def einsum_scores(matcher: QAConv, probe: torch.Tensor, gallery: torch.Tensor,
                  block: tuple[int, int]) -> torch.Tensor:
    """docs/arithmetic.md section 2 as written, one chunk of pairs at a time (on the maps' device)."""
    p, c = probe.shape[:2]
    g, hw = gallery.shape[0], matcher.hw
    P, G = probe.reshape(p, c, hw), gallery.reshape(g, c, hw)
    out = torch.empty(p, g, device=probe.device)
    pc, gc = block
    for i in range(0, p, pc):
        for j in range(0, g, gc):
            sim = torch.einsum("pcs,gcr->pgrs", P[i:i + pc], G[j:j + gc])        # [pc, gc, hw, hw]
            maxima = torch.stack((sim.max(dim=2).values, sim.max(dim=3).values), dim=2)
            out[i:i + pc, j:j + gc] = matcher.head(maxima.float())               # [pc, gc]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cpu (float32) or cuda (float16); default cpu")
    parser.add_argument("--probes", type=int, default=None,
                        help="probe images (default 32 on the CPU, 256 on CUDA)")
    parser.add_argument("--gallery", type=int, default=None,
                        help="gallery images (default 256 on the CPU, 4096 on CUDA)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds; every method runs once per round, interleaved, and its "
                             "best round counts (the machine may be shared)")
    parser.add_argument("--budget-mb", type=float, default=DEFAULT_SCORING_BUDGET / 2**20,
                        help="memory budget for scoring, MiB (default: the engine's default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    on_gpu = device.type == "cuda"
    dtype = default_score_dtype(device)       # float32 on the CPU, float16 on CUDA
    dname = str(dtype).removeprefix("torch.")

    def synced(fn):
        """``fn`` timed to the end of its GPU work."""
        if not on_gpu:
            return fn

        def run():
            out = fn()
            torch.cuda.synchronize()
            return out
        return run

    d, h, w = 128, 24, 8
    hw = h * w
    budget = int(args.budget_mb * 2**20)
    p = args.probes or (256 if on_gpu else 32)
    g = args.gallery or (4096 if on_gpu else 256)
    flops_per_pair = 2 * hw * hw * d
    torch.manual_seed(0)
    probe = F.normalize(torch.randn(p, d, h, w), dim=1)
    gallery = F.normalize(torch.randn(g, d, h, w), dim=1)
    probe16, gallery16 = probe.numpy().astype("float16"), gallery.numpy().astype("float16")
    matcher = QAConv(d, h, w).eval()
    # The einsum is an order of magnitude slower: time it on a quarter of the gallery.
    g_einsum = max(1, g // 4)
    itemsize = torch.empty((), dtype=dtype).element_size()
    einsum_budget_block = block_shape(p, g_einsum, hw, budget // 2, itemsize)
    n = 8192 if on_gpu else 4096
    a = torch.randn(n, 1024, device=device, dtype=dtype)
    b = torch.randn(1024, n, device=device, dtype=dtype)
    matmul_name = f"{dname} matmul {n}x1024 @ 1024x{n}"
    einsum_name = f"einsum, same budget ({einsum_budget_block[0]}x{einsum_budget_block[1]} pairs/chunk)"
    probe_dev, gallery_dev = probe.to(device, dtype), gallery.to(device, dtype)

    # name -> (function, flops per call, pairs per call)
    methods = {matmul_name: (lambda: torch.matmul(a, b), 2 * n * 1024 * n, 0)}
    if on_gpu:
        methods.update({
            "engine score_matrix (fp16 maps on the GPU)": (
                lambda: score_matrix(matcher, probe_dev, gallery_dev, device=device,
                                     memory_budget=budget), 0, p * g),
            "engine score_matrix (numpy fp16 maps, stored)": (
                lambda: score_matrix(matcher, probe16, gallery16, device=device,
                                     memory_budget=budget), 0, p * g),
        })
    else:
        methods.update({
            "engine score_matrix (torch fp32 maps)": (
                lambda: score_matrix(matcher, probe, gallery, memory_budget=budget), 0, p * g),
            "engine score_matrix (numpy fp16 maps, stored)": (
                lambda: score_matrix(matcher, probe16, gallery16, memory_budget=budget), 0, p * g),
        })
    head = matcher.to(device)  # the einsum's head runs beside its maps; score_matrix folds it
    methods[einsum_name] = (
        lambda: einsum_scores(head, probe_dev, gallery_dev[:g_einsum], einsum_budget_block), 0,
        p * g_einsum)
    if not on_gpu:
        einsum_engine_block = block_shape(p, g_einsum, hw, budget // 2, 4, CPU_BLOCK_PAIRS)
        methods[f"einsum, engine's block ({einsum_engine_block[0]}x{einsum_engine_block[1]})"] = (
            lambda: einsum_scores(head, probe, gallery[:g_einsum], einsum_engine_block), 0,
            p * g_einsum)
        rows, cols = probe_rows(probe), gallery_columns(gallery)
        weight, bias = matcher.folded_head()
        for block in ((1, 8), (2, 8), (2, 16), (4, 16), (8, 8), (4, 32), (8, 32), (16, 64)):
            methods[f"  kernel block {block[0]}x{block[1]}"] = (
                lambda blk=block: folded_scores(rows, cols, weight, bias, hw=hw, block=blk), 0, p * g)

    where = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, {where}, {dname}; D={d}, {h}x{w} (hw={hw}); "
          f"{p} x {g} pairs per call, {flops_per_pair / 1e6:.2f} MFLOP per pair; "
          f"budget {budget / 2**20:.0f} MiB; best of {args.rounds} interleaved rounds")
    best = {name: float("inf") for name in methods}
    for fn, _, _ in methods.values():   # warm-up
        synced(fn)()
    for _ in range(args.rounds):
        for name, (fn, _, _) in methods.items():
            best[name] = min(best[name], timed(synced(fn))[0])

    rate = {}
    for name, (_, flops, pairs) in methods.items():
        flops = flops or pairs * flops_per_pair
        rate[name] = flops / best[name] / 1e9
    peak = rate[matmul_name]
    for name, (_, _, pairs) in methods.items():
        extra = f"{pairs / best[name]:10.0f} pairs/s" if pairs else " " * 17
        print(f"{name:52s} {rate[name]:8.1f} GFLOP/s {extra} {rate[name] / peak:6.2f} x matmul")

    # Same numbers, different paths: a benchmark that scores wrong is no benchmark. The
    # reference is float32 on the CPU; fp16 on the GPU agrees to well under 1e-2.
    check = torch.from_numpy(score_matrix(matcher.cpu(), probe16[:8], gallery16[:32], device=device,
                                          memory_budget=budget))
    reference = einsum_scores(matcher, torch.from_numpy(probe16[:8]).float(),
                              torch.from_numpy(gallery16[:32]).float(), (8, 32))
    tol = 1e-2 if on_gpu else 1e-4
    torch.testing.assert_close(check, reference, atol=tol, rtol=tol)
    engine_name = next(name for name in methods if name.startswith("engine"))
    engine = rate[engine_name]
    einsums = [rate[name] for name in methods if name.startswith("einsum")]
    print(f"ratios: engine / {dname} matmul = {engine / peak:.2f} (target >= 0.5); "
          f"engine / einsum = " + ", ".join(f"{engine / r:.1f}x" for r in einsums)
          + (" (same budget, same block)" if len(einsums) > 1 else " (same budget)"))


if __name__ == "__main__":
    sys.exit(main())
