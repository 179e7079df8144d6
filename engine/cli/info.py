"""Show what a dataset folder holds: layout, split sizes, cameras, skipped files."""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder (or its parent, or a CSV manifest)")
    parser.add_argument("--layout", default=None, help="layout name; detected when omitted")


def run(args: argparse.Namespace) -> int:
    from engine.data import load_dataset

    dataset = load_dataset(args.data, args.layout, require=())
    print(dataset.summary())
    print("timestamps:", "yes" if dataset.has_times else "no (TLift unavailable)")
    return 0
