"""Flags and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import sys


def add_data_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--data", required=required,
                        help="dataset folder (or its parent, or a CSV manifest)")
    parser.add_argument("--layout", default=None,
                        help="dataset layout (market1501, dukemtmc, msmt17, cuhk03-np-detected, "
                             "cuhk03-np-labeled, folder, csv); detected when omitted")
    parser.add_argument("--allow-outside-paths", action="store_true",
                        help="let a CSV manifest or an MSMT17 list name images outside the "
                             "dataset's folder (refused by default)")


def load_data(args: argparse.Namespace, require: tuple[str, ...] = ("query", "gallery")):
    """The dataset named by ``--data``/``--layout``/``--allow-outside-paths``."""
    from engine.data import load_dataset

    return load_dataset(args.data, args.layout, require=require,
                        allow_outside=getattr(args, "allow_outside_paths", False))


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to run: auto picks CUDA when present (default: auto)")
    add_threads_argument(parser)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: $OMP_NUM_THREADS, else 2 or the "
                             "number of cores if fewer; idle threads sleep, see README)")


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", default=None,
                        help="folder for cached feature maps and scores "
                             "(default: $REID_CACHE_DIR or ~/.cache/reid-inspector)")


class StageBar:
    """A one-line progress display for ``progress(stage, done, total)`` callbacks."""

    def __init__(self, stream=None):
        self._stream, self.stage = stream, None

    @property
    def stream(self):
        return self._stream or sys.stderr  # looked up when used: tests replace sys.stderr

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self.stage and self.stage is not None:
            self.stream.write("\n")
        self.stage = stage
        width = 30
        filled = int(width * done / max(total, 1))
        self.stream.write(f"\r{stage:<16} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
            self.stage = None
        self.stream.flush()
