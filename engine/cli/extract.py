"""Extract query and gallery feature maps into the on-disk feature store."""
from __future__ import annotations

import argparse

from engine.cli._common import (
    StageBar,
    add_cache_argument,
    add_data_arguments,
    add_device_argument,
    load_data,
    open_session,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_device_argument(parser)
    add_cache_argument(parser)
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (model.pt)")
    parser.add_argument("--batch-size", type=int, default=64)


def run(args: argparse.Namespace) -> int:
    session, world = open_session(args, load_data(args), blocks=(), batch_size=args.batch_size)
    if not world.main:  # a torchrun rank: its share is extracted, rank 0 reports
        return 0
    session.extract(progress=StageBar())
    for split in ("query", "gallery"):
        maps = getattr(session, f"{split}_maps")
        state = "cached" if session.cache_hits[f"features {split}"] else "extracted"
        took = session.timings.steps[f"extract {split}"]
        print(f"{split:<8} {maps.shape[0]:>6} maps {tuple(maps.shape[1:])} fp16, "
              f"{maps[0].nbytes / 1024:.1f} KB/image, {state} in {took:.1f} s "
              f"({maps.shape[0] / max(took, 1e-9):.0f} images/s)")
    print(f"store: {session.features.root}")
    return 0
