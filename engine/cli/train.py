"""Train a QAConv (or global-baseline) model on a dataset's train split.

Writes OUT/last.pt (full state, for --resume) and OUT/model.pt (weights and settings) after
every epoch, atomically; Ctrl-C leaves the last complete epoch on disk.

Example:
  python -m engine train --data DIR --out runs/qaconv --arch resnet50 --loss focal
"""
from __future__ import annotations

import argparse
import dataclasses
import logging

from engine.cli._common import add_data_arguments, add_device_argument, load_data

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from engine.data.samplers import SAMPLERS
    from engine.data.transforms import OCCLUSIONS
    from engine.models.config import METHODS, TRAINABLE_ARCHS
    from engine.train import LOSSES, TrainConfig

    add_data_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--out", required=True, help="output folder for checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    m = parser.add_argument_group("model")
    m.add_argument("--arch", default="resnet50", choices=TRAINABLE_ARCHS, help="backbone (default resnet50)")
    m.add_argument("--neck", type=int, default=128, help="feature channels D (default 128)")
    m.add_argument("--height", type=int, default=384, help="input height, multiple of 16 (default 384)")
    m.add_argument("--width", type=int, default=128, help="input width, multiple of 16 (default 128)")
    m.add_argument("--pretrained", default="auto",
                   help="ImageNet weights: auto (torchvision cache if present), none, or a file path")
    m.add_argument("--imagenet-norm", action="store_true", help="normalise inputs by ImageNet mean/std")
    m.add_argument("--method", default="qaconv", choices=METHODS,
                   help="qaconv, or the global-feature baseline (global)")
    d = TrainConfig()
    t = parser.add_argument_group("training")
    t.add_argument("--loss", default=None, choices=LOSSES,
                   help="loss (default: focal for qaconv, global for the baseline)")
    t.add_argument("--sampler", default=d.sampler, choices=SAMPLERS, help="batch sampler")
    t.add_argument("--batch-size", type=int, default=d.batch_size)
    t.add_argument("--k", type=int, default=d.k, help="images per identity for pk/graph sampling")
    t.add_argument("--augment", default=d.augment, choices=OCCLUSIONS, help="occlusion augmentation")
    t.add_argument("--no-flip", action="store_true", help="no horizontal flips")
    t.add_argument("--rotation", type=float, default=d.rotation, help="max rotation in degrees")
    t.add_argument("--color-jitter", type=float, default=d.color_jitter, help="colour gain range")
    t.add_argument("--lr", type=float, default=d.lr, help="learning rate of neck and matcher")
    t.add_argument("--backbone-lr-mult", type=float, default=None,
                   help="trunk lr as a fraction of --lr (default 0.1 with ImageNet weights, 1 without)")
    t.add_argument("--max-epochs", type=int, default=d.max_epochs)
    t.add_argument("--max-batches", type=int, default=None, help="cap batches per epoch")
    t.add_argument("--amp", default=d.amp, choices=("auto", "on", "off"),
                   help="mixed precision: auto = on CUDA only; on = also bfloat16 on the CPU")
    t.add_argument("--seed", type=int, default=d.seed)
    t.add_argument("--workers", type=int, default=d.workers, help="data-loader worker processes")
    t.add_argument("--no-sync-bn", action="store_true",
                   help="under torchrun, let each rank's trunk BatchNorms use its own slice's "
                        "statistics (default: synchronised, as one process with the whole batch)")


def configs_from_args(args: argparse.Namespace):
    from engine.models.config import ModelConfig
    from engine.train import TrainConfig

    model_cfg = ModelConfig(arch=args.arch, neck=args.neck, height=args.height, width=args.width,
                            pretrained=args.pretrained, imagenet_norm=args.imagenet_norm,
                            method=args.method)
    loss = args.loss or ("global" if args.method == "global" else "focal")
    train_cfg = dataclasses.replace(
        TrainConfig(), loss=loss, sampler=args.sampler, batch_size=args.batch_size, k=args.k,
        augment=args.augment, flip=not args.no_flip, rotation=args.rotation,
        color_jitter=args.color_jitter, lr=args.lr, backbone_lr_mult=args.backbone_lr_mult,
        max_epochs=args.max_epochs,
        max_batches=args.max_batches, amp=args.amp, seed=args.seed, workers=args.workers,
        sync_bn=not args.no_sync_bn)
    return model_cfg, train_cfg


def run(args: argparse.Namespace) -> int:
    import os

    from engine.checkpoint import CheckpointError
    from engine.distributed import init_from_env, shutdown
    from engine.utils import resolve_device

    # Every argument is checked before any work (loading the dataset, building the model).
    model_cfg, train_cfg = configs_from_args(args)
    if model_cfg.pretrained not in ("auto", "none") and not os.path.isfile(model_cfg.pretrained):
        raise CheckpointError(f"--pretrained {model_cfg.pretrained}: no such file "
                              "(give auto, none or a weights file)")
    # Under torchrun (WORLD_SIZE > 1) this process is one rank: it trains on its slice of every
    # batch; rank 0 prints and writes the checkpoints.
    world, device = init_from_env(resolve_device(args.device))
    try:
        return _train(args, model_cfg, train_cfg, device, world)
    finally:
        shutdown()


def _train(args, model_cfg, train_cfg, device, world) -> int:
    import os

    from tqdm import tqdm

    from engine.train import fit

    dataset = load_data(args, require=("train",))
    say = print if world.main else (lambda *a, **k: None)
    say(dataset.summary())
    bar = None

    def on_batch(done: int, total: int, loss: float) -> None:
        nonlocal bar
        if not world.main:
            return
        if bar is None:
            bar = tqdm(total=total, unit="batch", leave=False, dynamic_ncols=True)
        bar.update(done - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}")

    epochs_run = 0

    def on_epoch(epoch: int, stats: dict) -> None:
        nonlocal bar, epochs_run
        epochs_run += 1
        if bar is not None:
            bar.close()
            bar = None
        say(f"epoch {epoch:3d}  loss {stats['loss']:.4f}  skipped {stats['skipped']}  "
              f"{stats['images_per_s']:.1f} img/s  lr {stats['lr']:.2e}", flush=True)

    ranks = f" x {world.size} ranks (each a slice of every batch)" if world.active else ""
    say(f"device {device}{ranks}; training {model_cfg.method} ({model_cfg.arch}, {model_cfg.height}x"
        f"{model_cfg.width}) with {train_cfg.loss} loss, {train_cfg.sampler} sampler")
    path = fit(dataset, model_cfg, train_cfg, args.out, device=device, resume=args.resume,
               epoch_callback=on_epoch, batch_progress=on_batch)
    if epochs_run:
        say(f"saved {path}")
    else:
        say(f"no epoch to run (--max-epochs {train_cfg.max_epochs} already reached); "
              f"{path} {'unchanged' if os.path.isfile(path) else 'not written'}")
    return 0
