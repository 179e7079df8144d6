"""Flags and helpers shared by several subcommands."""
from __future__ import annotations

import argparse
import logging
import math
import os
import sys

log = logging.getLogger(__name__)


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


def max_threads() -> int:
    """The most CPU threads a run may ask for: the cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Every numeric flag of the subcommands and the launcher: (lowest, highest, whole number).
# Times are bounded so that their squares stay normal floats (TLift divides by sigma^2);
# alpha so that the lifted similarity stays within float32.
_SECONDS = (1e-150, 1e150, False)
_RANGES: dict[str, tuple[float, float, bool]] = {
    "batch_size": (1, 4096, True),
    "k1": (1, 1_000_000, True),
    "k2": (1, 1_000_000, True),
    "lambda_value": (0.0, 1.0, False),
    "tau": _SECONDS,
    "sigma": _SECONDS,
    "tlift_k": (1, math.inf, True),
    "alpha": (0.0, 1e6, False),
    "shortlist": (1, 1_000_000, True),
    "top_k": (1, math.inf, True),
    "rounds": (0, 1000, True),
    "per_round": (1, math.inf, True),
    "noise": (0.0, 1.0, False),
}


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse a numeric flag outside its range with one line naming it, before any work."""
    ranges = dict(_RANGES, threads=(1, max_threads(), True))
    for dest, (low, high, whole) in ranges.items():
        value = getattr(args, dest, None)
        if value is None or isinstance(value, str):
            continue
        if not low <= value <= high:  # NaN fails too
            kind = "a whole number" if whole else "a number"
            bound = f">= {low:g}" if high == math.inf else f"in {low:g}..{high:g}"
            where = " (the cores this process may use)" if dest == "threads" else ""
            raise ValueError(f"--{dest.replace('_', '-')} must be {kind} {bound}{where}, got {value}")


def tlift_k_for(k: int, query_cams, gallery_cams) -> int:
    """``--tlift-k`` clamped to the largest block TLift takes its K-th value from (the queries
    of one camera x the gallery items of one camera): any larger K picks the same pivots and
    only costs memory (K = 10^6 asked for gigabytes)."""
    import numpy as np

    largest = int(np.bincount(query_cams).max()) * int(np.bincount(gallery_cams).max())
    if k > largest:
        log.info("--tlift-k %d is more than the %d entries of TLift's largest block: using %d "
                 "(the same result)", k, largest, largest)
    return int(min(k, largest))


def open_session(args: argparse.Namespace, data, *, blocks: tuple[str, ...] = ("qg",), **options):
    """The command's :class:`~engine.session.Session` and this process's world.

    Under ``torchrun`` (more than one rank) each rank first does its share of extracting the
    maps and scoring ``blocks`` (:mod:`engine.sharded`); only rank 0 (``world.main``) goes on
    to rank and write, finding everything in the cache as one process would have left it.
    """
    import atexit
    import os

    from engine.distributed import World
    from engine.session import Session

    world, device = World(), args.device
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from engine.distributed import init_from_env, shutdown
        from engine.utils import resolve_device

        world, resolved = init_from_env(resolve_device(args.device))
        device = str(resolved)
        atexit.register(shutdown)
    session = Session.open(data, args.checkpoint, device=device, cache_dir=args.cache_dir, **options)
    if world.active:
        from engine.sharded import share_work

        share_work(session, world, blocks)
    return session, world
