"""Feature store size, extraction and training speed, and (on CUDA) peak GPU memory, each next
to a same-process baseline or the published figure.

- store: bytes per image of the fp16 feature store at the published shape (D=128, 24x8) and at
  the model's shape; the docs/architecture.md target is at most 50 KB per image.
- extraction: images/s through ``extract_maps`` (decode, resize, forward, fp16 copy) against the
  bare backbone forward on tensors already on the device (the ceiling): the ratio is the share
  of time spent computing rather than loading.
- training: images/s of ``train_one_epoch`` (augmentation, forward, loss, backward, step; fp16
  autocast + GradScaler on CUDA, as ``fit`` runs it) against a forward-only pass of the same
  batches. QAConv trains with the class memory + focal loss; ``--method global`` trains the
  softmax baseline.
- memory (``--device cuda``): ``torch.cuda.max_memory_allocated`` of a training step and of
  inference (extraction of one batch, then scoring under the engine's default budget, the
  larger of the two), printed beside appendix section 7 of the paper (DukeMTMC-reID,
  ResNet-50: QAConv about 2.83 GB training / 2.3 GB inference; softmax baseline 2.78 / 1.7 GB).
  For that comparison the class memory (or classifier) has Duke's 702 training identities,
  every class already written, as after the first epoch.

Defaults: the demo's shapes on the CPU (ResNet-18, 128x64, batch 32); the paper's on CUDA
(ResNet-50, 384x128, batch 64). Without CUDA, ``--device cuda`` stops with a message (exit 2).

Run: python benchmarks/bench_engine.py [--device cpu|cuda] [--method qaconv|global]
     [--arch A --height H --width W --batch-size B] [--images N] [--batches N]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

# Appendix section 7 (DukeMTMC-reID, ResNet-50), GB: (training, inference).
APPENDIX_GB = {"qaconv": (2.83, 2.3), "global": (2.78, 1.7)}
DUKE_TRAIN_IDS = 702


def _gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.2f} GB ({nbytes / 2**30:.2f} GiB)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--method", default="qaconv", choices=("qaconv", "global"),
                    help="qaconv (class memory + focal) or global (the softmax baseline)")
    ap.add_argument("--arch", default=None, help="default resnet18 on the CPU, resnet50 on CUDA")
    ap.add_argument("--height", type=int, default=None, help="default 128 on the CPU, 384 on CUDA")
    ap.add_argument("--width", type=int, default=None, help="default 64 on the CPU, 128 on CUDA")
    ap.add_argument("--batch-size", type=int, default=None, help="default 32 on the CPU, 64 on CUDA")
    ap.add_argument("--images", type=int, default=None, help="images to extract (256 / 1024)")
    ap.add_argument("--batches", type=int, default=None, help="training batches to time (4 / 20)")
    ap.add_argument("--classes", type=int, default=None,
                    help=f"training identities of the loss (default: the synthetic set's on the "
                         f"CPU, {DUKE_TRAIN_IDS} as DukeMTMC-reID on CUDA)")
    ap.add_argument("--workers", type=int, default=None, help="data-loader workers (0 / 4)")
    args = ap.parse_args()

    from engine.utils import resolve_device

    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    gpu = device.type == "cuda"

    def pick(value, cpu, cuda):
        return value if value is not None else (cuda if gpu else cpu)

    arch = pick(args.arch, "resnet18", "resnet50")
    height, width = pick(args.height, 128, 384), pick(args.width, 64, 128)
    batch_size = pick(args.batch_size, 32, 64)
    n_images, n_batches = pick(args.images, 256, 1024), pick(args.batches, 4, 20)
    workers = pick(args.workers, 0, 4)

    from engine.data.samplers import RandomBatchSampler
    from engine.data.synthetic import generate
    from engine.data.transforms import TrainTransform
    from engine.features import FeatureStore, extract_maps, load_input
    from engine.losses import build_criterion
    from engine.models.config import ModelConfig, Preprocessing
    from engine.models.reid import build_model
    from engine.train import TrainConfig, TrainImages, make_optimizer, train_one_epoch
    from engine.utils import autocast_dtype, seed_worker

    def sync() -> None:
        if gpu:
            torch.cuda.synchronize(device)

    def reset_peak() -> int:
        """Start a peak-memory window; returns the bytes allocated now (model, buffers)."""
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)

    torch.manual_seed(0)
    where = torch.cuda.get_device_name(device) if gpu else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, device {device} ({where}); {args.method}, {arch}, "
          f"{height}x{width}, batch {batch_size}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # ---------------------------------------------------------------- store size
        store = FeatureStore(tmp / "cache")
        for shape in ((128, 24, 8), (128, height // 16, width // 16)):
            store.save(f"k{shape}", np.zeros((10,) + shape, np.float16))
            size = (tmp / "cache" / "features" / f"k{shape}" / "maps.npy").stat().st_size / 10
            print(f"feature store: D={shape[0]}, {shape[1]}x{shape[2]}: {size / 1024:.1f} KB/image "
                  f"(target <= 50 KB: {'met' if size <= 50 * 1024 else 'NOT met'})")

        # ---------------------------------------------------------------- extraction
        ds = generate(tmp / "A", domain="A", seed=0, num_train_ids=40, num_test_ids=20,
                      num_distractors=10, num_junk=2)
        paths = [s.path for s in (ds.gallery + ds.train)]
        paths = (paths * (-(-n_images // len(paths))))[:n_images]
        cfg = ModelConfig(arch=arch, height=height, width=width, pretrained="none", method=args.method)
        model = build_model(cfg).to(device).eval()
        prep = Preprocessing(cfg.height, cfg.width)
        batch = torch.stack([load_input(p, prep) for p in paths[:batch_size]]).to(device)
        infer_base = reset_peak() if gpu else 0
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.float16, enabled=gpu):
            model.features(batch)  # warm-up
            sync()
            t = time.perf_counter()
            reps = max(1, n_images // batch_size)
            for _ in range(reps):
                model.features(batch)
            sync()
            bare = reps * batch_size / (time.perf_counter() - t)
        t = time.perf_counter()
        extract_maps(model.backbone, paths, prep, device=device, batch_size=batch_size,
                     num_workers=workers)
        full = len(paths) / (time.perf_counter() - t)
        print(f"extraction ({arch}, {height}x{width}, batch {batch_size}): {full:.1f} images/s; "
              f"bare forward {bare:.1f} images/s; ratio {full / bare:.2f}")
        if gpu:
            extract_peak = torch.cuda.max_memory_allocated(device)
            # Scoring at a size where the engine's default budget is what bounds the memory:
            # 512 probes x 4096 gallery maps stored in fp16, as the feature store holds them.
            d, h, w = model.config.feature_shape
            del batch
            probe = F.normalize(torch.randn(512, d, h, w), dim=1).numpy().astype(np.float16)
            gallery = F.normalize(torch.randn(4096, d, h, w), dim=1).numpy().astype(np.float16)
            reset_peak()
            t = time.perf_counter()
            model.score(probe, gallery, device=device)  # QAConv logits, or the baseline's cosines
            sync()
            score_peak = torch.cuda.max_memory_allocated(device)
            print(f"scoring 512 x 4096 maps: {time.perf_counter() - t:.2f} s")
            print(f"peak GPU memory, inference: {_gb(max(extract_peak, score_peak))} "
                  f"(extraction of a batch of {batch_size}: {_gb(extract_peak)}; scoring: "
                  f"{_gb(score_peak)}; model and input batch {_gb(infer_base)}); appendix: about "
                  f"{APPENDIX_GB[args.method][1]} GB")
        del model

        # ---------------------------------------------------------------- training
        num_classes = args.classes or (DUKE_TRAIN_IDS if gpu else ds.num_train_pids)
        loss = "global" if args.method == "global" else "focal"
        tcfg = dataclasses.replace(TrainConfig(), batch_size=batch_size, workers=workers,
                                   max_batches=n_batches, loss=loss)
        model = build_model(cfg).to(device)
        model.freeze_bn = False
        criterion = build_criterion(model, loss, num_classes).to(device)
        if hasattr(criterion, "memory"):
            # Every class written, as after the first epoch: the memory loss at full size.
            with torch.no_grad():
                criterion.memory.copy_(F.normalize(torch.randn_like(criterion.memory), dim=1))
                criterion.valid.fill_(True)
        opt = make_optimizer(model, criterion, tcfg)
        images = TrainImages(ds.train, TrainTransform(cfg.height, cfg.width), seed=0)
        loader = torch.utils.data.DataLoader(
            images, batch_sampler=RandomBatchSampler(len(images), batch_size), num_workers=workers,
            worker_init_fn=seed_worker, pin_memory=gpu, persistent_workers=workers > 0)
        # As ``fit`` with amp="auto": fp16 autocast + GradScaler on CUDA, float32 on the CPU.
        amp, amp_dtype = gpu, autocast_dtype(device)
        scaler = torch.amp.GradScaler(device.type) if amp else None
        run = dict(amp=amp, amp_dtype=amp_dtype, scaler=scaler)
        train_base = reset_peak() if gpu else 0
        train_one_epoch(model, criterion, opt, loader, device, 1, max_batches=1, **run)  # warm-up
        stats = {"images_per_s": 0.0, "batches": 0}
        epoch = 2
        while stats["batches"] < n_batches:  # the sampler's epoch may be shorter than asked
            more = train_one_epoch(model, criterion, opt, loader, device, epoch,
                                   max_batches=n_batches - stats["batches"], **run)
            done = stats["batches"] + more["batches"]
            stats = {"batches": done, "images_per_s": (
                stats["images_per_s"] * stats["batches"] + more["images_per_s"] * more["batches"]) / done}
            epoch += 1
        sync()
        train_peak = torch.cuda.max_memory_allocated(device) if gpu else 0
        x = torch.rand(batch_size, 3, cfg.height, cfg.width, device=device)
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp):
            sync()
            t = time.perf_counter()
            for _ in range(n_batches):
                model.features(x)
            sync()
            fwd = n_batches * batch_size / (time.perf_counter() - t)
        what = f"{loss} class memory" if args.method == "qaconv" else "softmax"
        print(f"training ({what}, {num_classes} classes, batch {batch_size}, "
              f"{'fp16 AMP + GradScaler' if scaler else 'float32'}): "
              f"{stats['images_per_s']:.1f} images/s; forward-only {fwd:.1f} images/s; "
              f"ratio {stats['images_per_s'] / fwd:.2f}")
        if gpu:
            print(f"peak GPU memory, training: {_gb(train_peak)} (model, optimiser and loss state "
                  f"{_gb(train_base)} before the first step); appendix: about "
                  f"{APPENDIX_GB[args.method][0]} GB")
            if args.method == "global":
                print("note: this baseline shares QAConv's trunk (ResNet to layer3); the "
                      "appendix's softmax baseline used all four layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
