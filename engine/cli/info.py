"""Show what a dataset folder holds: layout, split sizes, cameras, skipped files."""
from __future__ import annotations

import argparse

from engine.cli._common import add_data_arguments, load_data


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)


def run(args: argparse.Namespace) -> int:
    dataset = load_data(args, require=())
    print(dataset.summary())
    print("timestamps:", "yes" if dataset.has_times else "no (TLift unavailable)")
    return 0
