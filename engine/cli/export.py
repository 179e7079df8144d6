"""Write ranked lists of every query (or the top-k of each) to a CSV file.

Columns: query, query_pid, query_cam, rank, gallery, gallery_pid, gallery_cam, gallery_time,
score, distance, match, method. The file is written atomically: an error leaves no partial file.
"""
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
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--top-k", type=int, default=None, help="rows per query (default: all)")
    parser.add_argument("--rerank", action="store_true", help="rank after k-reciprocal re-ranking")
    parser.add_argument("--tlift", action="store_true", help="rank after temporal lifting")


def run(args: argparse.Namespace) -> int:
    from engine.export import write_ranked_csv
    from engine.outputs import check_output_path, run_inputs
    from engine.postprocess.params import RerankParams, TLiftParams
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    data = load_data(args)
    inputs = run_inputs(args.checkpoint, data, cache_dir=args.cache_dir)
    check_output_path(args.out, force=args.force, inputs=inputs)  # before the work
    session, world = open_session(args, data, blocks=("qg", "qq", "gg") if args.rerank else ("qg",))
    if not world.main:  # a torchrun rank: its share is done, rank 0 ranks and writes
        return 0
    bar = StageBar()
    distmat = session.distances(RerankParams() if args.rerank else None,
                                TLiftParams() if args.tlift else None, progress=bar)
    method = session.method + ("+rr" if args.rerank else "") + ("+tlift" if args.tlift else "")
    rows = write_ranked_csv(args.out, distmat, session.logits["qg"], session.dataset.query,
                            session.dataset.gallery, method=method, top_k=args.top_k,
                            camera_base=session.dataset.camera_base, inputs=inputs,
                            progress=lambda d, t: bar("export", d, t))
    print(f"wrote {rows} rows for {len(session.dataset.query)} queries to {args.out}")
    return 0
