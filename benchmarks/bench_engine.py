"""Feature store size, extraction speed and training speed, each next to a same-process baseline.

- store: bytes per image of the fp16 feature store at the published shape (D=128, 24x8) and at
  the demo model's shape; the DESIGN target is at most 50 KB per image.
- extraction: images/s through ``extract_maps`` (decode, resize, forward, fp16 copy) against the
  bare backbone forward on tensors already in memory (the ceiling): the ratio is the share of
  time spent computing rather than loading.
- training: images/s of ``train_one_epoch`` (augmentation, forward, class-memory focal loss,
  backward, step) against a forward-only pass of the same batches.

Run: python benchmarks/bench_engine.py [--arch resnet18 --height 128 --width 64] [--images 256]
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--images", type=int, default=256, help="images to extract")
    ap.add_argument("--batches", type=int, default=4, help="training batches to time")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()

    from engine.data.samplers import RandomBatchSampler
    from engine.data.synthetic import generate
    from engine.data.transforms import TrainTransform
    from engine.features import FeatureStore, Preprocessing, extract_maps, load_input
    from engine.models.config import ModelConfig
    from engine.models.reid import build_criterion, build_model
    from engine.train import TrainConfig, TrainImages, make_optimizer, train_one_epoch

    torch.manual_seed(0)
    device = torch.device("cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # ---------------------------------------------------------------- store size
        store = FeatureStore(tmp / "cache")
        for shape in ((128, 24, 8), (128, args.height // 16, args.width // 16)):
            store.save(f"k{shape}", np.zeros((10,) + shape, np.float16))
            size = (tmp / "cache" / "features" / f"k{shape}" / "maps.npy").stat().st_size / 10
            print(f"feature store: D={shape[0]}, {shape[1]}x{shape[2]}: {size / 1024:.1f} KB/image "
                  f"(target <= 50 KB: {'met' if size <= 50 * 1024 else 'NOT met'})")

        # ---------------------------------------------------------------- extraction
        ds = generate(tmp / "A", domain="A", seed=0, num_train_ids=40, num_test_ids=20,
                      num_distractors=10, num_junk=2)
        paths = [s.path for s in (ds.gallery + ds.train)][:args.images]
        cfg = ModelConfig(arch=args.arch, height=args.height, width=args.width, pretrained="none")
        model = build_model(cfg).eval()
        prep = Preprocessing(cfg.height, cfg.width)
        batch = torch.stack([load_input(p, prep) for p in paths[:64]])
        with torch.no_grad():
            model.features(batch)  # warm-up
            t = time.perf_counter()
            reps = max(1, len(paths) // 64)
            for _ in range(reps):
                model.features(batch)
            bare = reps * 64 / (time.perf_counter() - t)
        t = time.perf_counter()
        extract_maps(model.backbone, paths, prep, device=device, batch_size=64)
        full = len(paths) / (time.perf_counter() - t)
        print(f"extraction ({args.arch}, {args.height}x{args.width}): {full:.1f} images/s; bare forward "
              f"{bare:.1f} images/s; ratio {full / bare:.2f}")

        # ---------------------------------------------------------------- training
        tcfg = dataclasses.replace(TrainConfig(), batch_size=args.batch_size, workers=0,
                                   max_batches=args.batches)
        model = build_model(cfg)
        criterion = build_criterion(model, "focal", ds.num_train_pids)
        opt = make_optimizer(model, criterion, tcfg)
        images = TrainImages(ds.train, TrainTransform(cfg.height, cfg.width), seed=0)
        loader = torch.utils.data.DataLoader(
            images, batch_sampler=RandomBatchSampler(len(images), args.batch_size))
        train_one_epoch(model, criterion, opt, loader, device, 1, max_batches=1)  # warm-up, fills memory
        stats = train_one_epoch(model, criterion, opt, loader, device, 2, max_batches=args.batches)
        x = torch.rand(args.batch_size, 3, cfg.height, cfg.width)
        with torch.no_grad():
            t = time.perf_counter()
            for _ in range(args.batches):
                model.features(x)
            fwd = args.batches * args.batch_size / (time.perf_counter() - t)
        print(f"training (focal class memory, {ds.num_train_pids} classes, batch {args.batch_size}): "
              f"{stats['images_per_s']:.1f} images/s; forward-only {fwd:.1f} images/s; "
              f"ratio {stats['images_per_s'] / fwd:.2f}")


if __name__ == "__main__":
    main()
