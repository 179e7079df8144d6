"""torchrun with N Gloo ranks against one process on the same work: training images/s, scoring
time, peak memory per rank, what crosses the network, and what synchronising the trunk's
BatchNorms changes.

The baseline is one process of ``python -m engine train|evaluate`` with as many torch threads
as the ranks have in all (N ranks x 1 thread against 1 process x N threads), on the same
synthetic set, the same model and the same global batch. Ratios > 1: the ranks are faster.

    python benchmarks/bench_distributed.py [--ranks 2] [--ids 40] [--steps 8] [--batch 32]
        [--shortlist 50] [--scoring-only]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RANK_RUN = """
import os, resource, sys
from engine.__main__ import main
code = main(sys.argv[1:])
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"PEAK_RSS rank {os.environ.get('RANK', '0')} {rss:.0f} MB", file=sys.stderr, flush=True)
sys.exit(code)
"""


def run(argv: list[str], ranks: int, threads: int) -> tuple[float, str, str]:
    """Wall seconds, stdout and stderr of ``python -m engine ARGV`` (under torchrun with ranks > 1)."""
    script = Path(tempfile.gettempdir()) / "reid_rank_run.py"
    script.write_text(RANK_RUN)
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={ranks}"] if ranks > 1 else [sys.executable])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    done = subprocess.run([*launch, str(script), *map(str, argv), "--threads", str(threads)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    took = time.perf_counter() - start
    if done.returncode:
        sys.exit(f"failed: {' '.join(map(str, argv))}\n{done.stderr[-3000:]}")
    return took, done.stdout, done.stderr


def peak_rss(stderr: str) -> list[int]:
    return [int(mb) for _, mb in re.findall(r"PEAK_RSS rank (\d+) (\d+) MB", stderr)]


def images_per_s(stdout: str) -> float:
    return float(re.findall(r"([\d.]+) img/s", stdout)[-1])


def max_weight_gap(a: Path, b: Path) -> float:
    """Largest absolute difference between the weights (and statistics) of two checkpoints."""
    from engine.checkpoint import load_checkpoint

    wa, wb = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return max((wa[k].float() - wb[k].float()).abs().max().item()
               for k in wa if wa[k].is_floating_point())


def traffic(batch: int, ranks: int, map_values: int, backbone_params: int, bn_channels: int,
            shared_params: int, feature_bytes: int = 4) -> dict[str, float]:
    """Bytes each rank sends and receives per training step (ring all-reduce: 2 (N-1)/N of the
    data; all-gather: (N-1)/N of the gathered batch)."""
    part = (ranks - 1) / ranks
    return {"gather maps": part * batch * map_values * feature_bytes,
            "all-reduce trunk gradients": 2 * part * backbone_params * 4,
            "all-reduce BatchNorm statistics": 2 * part * (2 * bn_channels + 1) * 8,
            "all-reduce matcher/loss gradients": 2 * part * shared_params * 4}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--ids", type=int, default=40, help="training identities of the set")
    parser.add_argument("--steps", type=int, default=8, help="training steps timed")
    parser.add_argument("--batch", type=int, default=32, help="global batch")
    parser.add_argument("--effect-steps", type=int, default=2,
                        help="steps after which the BatchNorm settings' weights are compared")
    parser.add_argument("--shortlist", type=int, default=50,
                        help="K of the two-stage retrieval run timed with evaluate")
    parser.add_argument("--scoring-only", action="store_true", help="skip the training figures")
    args = parser.parse_args()
    n = args.ranks
    from engine.data.synthetic import generate

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "A"
        generate(data, domain="A", seed=0, num_train_ids=args.ids, num_test_ids=args.ids,
                 num_distractors=20, num_junk=5)
        model = ["--arch", "resnet18", "--neck", "64", "--height", "128", "--width", "64",
                 "--pretrained", "none", "--device", "cpu"]
        train = ["train", "--data", data, *model, "--batch-size", args.batch, "--sampler", "pk",
                 "--k", "4", "--max-epochs", "1", "--max-batches", args.steps, "--workers", "0"]
        print(f"{n} Gloo ranks x 1 thread against 1 process x {n} threads; resnet18 to layer3, "
              f"128x64 input (8x4 maps, D=64), global batch {args.batch}, {args.steps} steps; "
              f"load {os.getloadavg()[0]:.1f}")
        if not args.scoring_only:
            train_figures(args, train, tmp)
        evaluate_figures(args, data, tmp)
    return 0


def train_figures(args, train: list, tmp: Path) -> None:
    """Training images/s and peak RSS, and what synchronising the BatchNorms changes."""
    n = args.ranks
    t1, out1, err1 = run([*train, "--out", tmp / "one"], 1, n)
    tn, outn, errn = run([*train, "--out", tmp / "ranks"], n, 1)
    ips1, ipsn = images_per_s(out1), images_per_s(outn)
    print(f"training   1 process {ips1:6.1f} img/s, {n} ranks {ipsn:6.1f} img/s: x{ipsn / ips1:.2f} "
          f"(wall with start-up {t1:.0f} s vs {tn:.0f} s)")
    print(f"peak RSS   1 process {peak_rss(err1)} MB; per rank {peak_rss(errn)} MB")
    # What synchronising the trunk's BatchNorms changes, after a few steps (later on, runs
    # from random weights drift apart even between 1 and 2 threads of one process).
    short = [*train[:-4], "--max-batches", args.effect_steps, "--workers", "0"]
    run([*short, "--out", tmp / "e-one"], 1, 1)
    for label, out, ranks, extra in (
            (f"1 process, {n} threads (float-order noise)", "e-threads", 1, []),
            (f"{n} ranks, BatchNorm synchronised", "e-sync", n, []),
            (f"{n} ranks, BatchNorm per rank (--no-sync-bn)", "e-local", n, ["--no-sync-bn"])):
        run([*short, "--out", tmp / out, *extra], ranks, 1 if ranks > 1 else n)
        gap = max_weight_gap(tmp / "e-one" / "model.pt", tmp / out / "model.pt")
        print(f"after {args.effect_steps} steps, {label:<46}: weights differ from 1 process x 1 "
              f"thread by at most {gap:.1e}")


def evaluate_figures(args, data: Path, tmp: Path) -> None:
    """Evaluate's wall time and peak RSS, exhaustive and two-stage (and what the ranks gather),
    and the traffic per training step."""
    import torch

    from engine.checkpoint import save_checkpoint
    from engine.models import ModelConfig, build_model
    from engine.session import Session
    from engine.shortlist import shortlist_pairs

    n = args.ranks
    cfg = ModelConfig(arch="resnet18", neck=64, height=128, width=64, pretrained="none")
    torch.manual_seed(0)
    net = build_model(cfg)
    ckpt = tmp / "random.pt"
    save_checkpoint(ckpt, {"config": cfg.to_dict(), "model": net.state_dict()})
    evaluate = ["evaluate", "--data", data, "--checkpoint", ckpt, "--device", "cpu", "--rerank"]
    s1, _, e1 = run([*evaluate, "--cache-dir", tmp / "c1"], 1, n)
    sn, _, en = run([*evaluate, "--cache-dir", tmp / "cn"], n, 1)
    print(f"evaluate (extract + score q-g, q-q, g-g + RR): 1 process {s1:.1f} s, {n} ranks "
          f"{sn:.1f} s: x{s1 / sn:.2f}; peak RSS 1 process {peak_rss(e1)} MB, per rank {peak_rss(en)} MB")
    # Two-stage retrieval on the maps the runs above left (both cache folders hold them).
    k = args.shortlist
    shortlisted = [*evaluate, "--shortlist", k]
    s1, out1, e1 = run([*shortlisted, "--cache-dir", tmp / "c1"], 1, n)
    sn, outn, en = run([*shortlisted, "--cache-dir", tmp / "cn"], n, 1)
    same = [r for r in out1.splitlines() if r.startswith("qaconv")] == \
        [r for r in outn.splitlines() if r.startswith("qaconv")]
    print(f"evaluate --shortlist {k} (score q-g and the q-q / g-g graphs + RR): 1 process "
          f"{s1:.1f} s, {n} ranks {sn:.1f} s: x{s1 / sn:.2f}; rows identical: {same}; peak RSS "
          f"1 process {peak_rss(e1)} MB, per rank {peak_rss(en)} MB")
    session = Session.open(data, ckpt, device="cpu", cache_dir=tmp / "cn", shortlist=k)
    q, g = len(session.dataset.query), len(session.dataset.gallery)
    session.prepare(rerank=True)
    pairs = {name: len(shortlist_pairs(nb)[0]) for name, (nb, _) in session.blocks.graphs.items()}
    lists = sum(nb.nbytes for nb, _ in session.blocks.graphs.values())
    logits = 4 * (q * k + sum(pairs.values()))
    print(f"  gathered: candidate logits on rank 0 {logits / 2**10:.0f} KiB (q-g {q} x {k}, "
          f"distinct graph pairs {pairs}); K-neighbour lists on every rank "
          f"{lists / 2**10:.0f} KiB; the dense q-g, q-q, g-g blocks would be "
          f"{4 * (q + g) ** 2 / 2**10:.0f} KiB")

    def counts(config):
        model = build_model(config)
        trunk = sum(p.numel() for p in model.backbone.parameters())
        chans = sum(m.num_features for m in model.backbone.modules()
                    if isinstance(m, torch.nn.BatchNorm2d))
        head = sum(p.numel() for p in model.matcher.parameters())
        d, h, w = config.feature_shape
        return d * h * w, trunk, chans, head

    published = ModelConfig(arch="resnet50", neck=128, height=384, width=128, pretrained="none")
    print("\nper training step, each rank sends about as much as it receives:")
    for label, ranks, batch, config in (
            (f"this run ({n} ranks, batch {args.batch})", n, args.batch, cfg),
            ("published setting (8 ranks, batch 64, ResNet-50 to layer3, 384x128, D=128)", 8, 64,
             published)):
        volume = traffic(batch, ranks, *counts(config))
        print(f"  {label}: {sum(volume.values()) / 2**20:.1f} MiB in all")
        for what, value in volume.items():
            print(f"    {what:<36} {value / 2**20:9.3f} MiB")


if __name__ == "__main__":
    raise SystemExit(main())
