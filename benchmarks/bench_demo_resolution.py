"""What a finer demo model would cost: cold-launch work and training speed per input size.

The demo model (ResNet-18 to layer3, D = 128) takes 128x64 crops (8x4 maps). A larger input
gives finer maps (256x128 -> 16x8) but extraction grows with the pixels and QAConv scoring with
the square of the locations. This script measures, in one process and on the demo set, the
launch work of each input size (extract query and gallery, score q-g, q-q, g-g) on samples of
the set, extrapolates it to the whole set, and prints each as a ratio to the shipped 128x64.
Training is measured as seconds per batch once the class memory is full (400 classes, batch 32),
its steady state.

Usage::

    python benchmarks/bench_demo_resolution.py [--data DIR] [--sizes 128x64 192x96 256x128]

Weights do not change any of these timings, so the models start from the shipped trunk.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _timing import timed  # noqa: E402


def launch_costs(data, height: int, width: int, sample: int, device) -> dict[str, float]:
    """Seconds each launch step would take on the whole set, from timed samples."""
    import numpy as np

    from engine.features import extract_maps
    from engine.models.config import ModelConfig, Preprocessing
    from engine.models.reid import build_model

    cfg = ModelConfig(arch="resnet18", neck=128, height=height, width=width,
                      pretrained=str(ROOT / "viewer" / "demo" / "model.pt"))
    model = build_model(cfg).eval()
    prep = Preprocessing(height, width, False)
    paths = [s.path for s in data.gallery[:sample]]
    backbone = model.backbone_for_maps()
    extract_maps(backbone, paths[:8], prep, device=device)  # warm-up
    t_extract, maps = timed(lambda: extract_maps(backbone, paths, prep, device=device))
    per_image = t_extract / len(paths)
    maps = np.concatenate([maps] * 4)[: 2 * sample]  # enough maps for a wide scoring block
    model.score(maps[:8], maps[:8], device=device)
    t_score, _ = timed(lambda: model.score(maps[:sample // 2], maps, device=device))
    per_pair = t_score / ((sample // 2) * len(maps))
    q, g = len(data.query), len(data.gallery)
    return {"extract": per_image * (q + g), "score qg": per_pair * q * g,
            "score qq": per_pair * q * q / 2, "score gg": per_pair * g * g / 2}


def training_step(data, height: int, width: int, classes: int, batch: int, device) -> float:
    """Seconds per training step of QAConv + class memory (focal) with a full memory."""
    import torch

    from engine.losses import build_criterion
    from engine.models.config import ModelConfig
    from engine.models.reid import build_model

    cfg = ModelConfig(arch="resnet18", neck=128, height=height, width=width,
                      pretrained=str(ROOT / "viewer" / "demo" / "model.pt"))
    model = build_model(cfg).to(device).train()
    criterion = build_criterion(model, "focal", classes).to(device)
    with torch.no_grad():  # a full memory: the cost per step no longer grows
        feats = model.features(torch.rand(batch, 3, height, width, device=device))
        for start in range(0, classes, batch):
            labels = torch.arange(start, min(classes, start + batch), device=device)
            criterion.update_memory(feats[: len(labels)], labels)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)
    images = torch.rand(batch, 3, height, width, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)

    def step():
        optimizer.zero_grad()
        criterion(model.features(images), labels).backward()
        optimizer.step()

    step()
    seconds, _ = timed(step, repeat=2)
    return seconds


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="the demo set (default: generate it in the cache)")
    parser.add_argument("--sizes", nargs="+", default=["128x64", "192x96", "256x128"])
    parser.add_argument("--sample", type=int, default=128, help="images timed per size")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 keeps the ratios steady on a shared machine)")
    parser.add_argument("--no-train", action="store_true", help="skip the training-step timing")
    args = parser.parse_args(argv)

    import torch

    from engine.data import load_dataset
    from viewer.tasks import demo_root

    root = Path(args.data) if args.data else demo_root()
    if not root.exists():
        from engine.data.synthetic import generate

        generate(root, domain="B", seed=0)
    data = load_dataset(root)
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print(f"demo set: {len(data.query)} queries x {len(data.gallery)} gallery; "
          f"torch threads {torch.get_num_threads()}")
    rows = {}
    for size in args.sizes:
        height, width = (int(v) for v in size.split("x"))
        t0 = time.perf_counter()
        costs = launch_costs(data, height, width, args.sample, device)
        if not args.no_train:
            costs["train step"] = training_step(data, height, width, 400, 32, device)
        rows[size] = costs
        print(f"  measured {size} in {time.perf_counter() - t0:.1f} s")
    base = rows[args.sizes[0]]
    print(f"\nestimated seconds on the whole demo set (ratio to {args.sizes[0]} in brackets)")
    header = ["size", "maps", "extract", "score qg", "first paint*", "score qq+gg", "all blocks"]
    if not args.no_train:
        header.append("train step")
    print("  ".join(f"{h:>14}" for h in header))
    for size, c in rows.items():
        h, w = (int(v) // 16 for v in size.split("x"))
        first = c["extract"] + c["score qg"]
        full = first + c["score qq"] + c["score gg"]
        b_first = base["extract"] + base["score qg"]
        b_full = b_first + base["score qq"] + base["score gg"]
        cells = [size, f"{h}x{w}",
                 f"{c['extract']:.1f} ({c['extract'] / base['extract']:.1f}x)",
                 f"{c['score qg']:.1f} ({c['score qg'] / base['score qg']:.1f}x)",
                 f"{first:.1f} ({first / b_first:.1f}x)",
                 f"{c['score qq'] + c['score gg']:.1f}",
                 f"{full:.1f} ({full / b_full:.1f}x)"]
        if not args.no_train:
            cells.append(f"{c['train step']:.2f} ({c['train step'] / base['train step']:.1f}x)")
        print("  ".join(f"{x:>14}" for x in cells))
    print("* first paint = extraction + q-g scoring (re-ranking blocks computed later); "
          "demo generation not included")


if __name__ == "__main__":
    main()
