"""Vary one TLift parameter and print rank-1 / mAP per value (the appendix's Tables 7 and 8).

The other parameters stay at their defaults (``TLiftParams``: tau 100, sigma 200, K 10,
alpha 0.2) unless given.
Scores (and the re-ranked similarity) are computed once and cached, so each point costs only
TLift and the evaluation.

Example:
  python -m engine sweep --data DIR --checkpoint model.pt --param tau --values 50 100 150 200
"""
from __future__ import annotations

import argparse

from engine.analysis.plot_data import APPENDIX_VALUES
from engine.cli._common import (
    StageBar,
    add_cache_argument,
    add_data_arguments,
    add_device_argument,
    check_numbers,
    load_data,
    tlift_k_for,
)
from engine.cli.evaluate import add_tlift_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_device_argument(parser)
    add_cache_argument(parser)
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (model.pt)")
    parser.add_argument("--param", required=True, choices=sorted(APPENDIX_VALUES),
                        help="the TLift parameter to vary")
    parser.add_argument("--values", type=float, nargs="+", default=None,
                        help="its values (default: the appendix's ten values)")
    parser.add_argument("--no-rerank", action="store_true",
                        help="lift the raw similarity instead of the re-ranked one")
    add_tlift_arguments(parser)
    parser.add_argument("--csv", default=None, help="also write the table to this CSV file")
    parser.add_argument("--force", action="store_true", help="replace --csv if it exists")


def _check_values(param: str, values: list[float]) -> None:
    """``--values`` within the range of the ``--param`` they stand for (its flag's rule)."""
    flag = "tlift_k" if param == "k" else param
    for value in values:
        if param == "k" and not value.is_integer():
            raise ValueError(f"--values of k must be whole numbers, got {value:g}")
        try:
            check_numbers(argparse.Namespace(**{flag: value}))
        except ValueError as exc:
            raise ValueError(f"--values of {param}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from engine.analysis.plot_data import tlift_sweeps
    from engine.cli.evaluate import tlift_from_args
    from engine.outputs import check_output_path, run_inputs, write_output_bytes
    from engine.postprocess.params import RerankParams
    from engine.session import Session

    if args.values is not None:
        _check_values(args.param, args.values)
    data = load_data(args)
    inputs = run_inputs(args.checkpoint, data, cache_dir=args.cache_dir)
    if args.csv is not None:  # before the minutes of scoring
        check_output_path(args.csv, force=args.force, inputs=inputs, flag="--csv")
    session = Session.open(data, args.checkpoint, device=args.device, cache_dir=args.cache_dir)
    if not session.has_times:
        raise ValueError("TLift needs timestamps, and this dataset's images have none")
    values = args.values or APPENDIX_VALUES[args.param]
    if args.param == "k":
        values = [tlift_k_for(int(v), session.query_cams, session.gallery_cams) for v in values]
    bar = StageBar()
    distmat = session.distances(None if args.no_rerank else RerankParams(), None, progress=bar)
    base = tlift_from_args(args, session)
    # Without RR the pipeline lifts each query's relative similarity: the sweep does the same.
    points = tlift_sweeps(
        distmat, values={args.param: values}, base=base, relative=args.no_rerank,
        query_pids=session.query_pids, gallery_pids=session.gallery_pids,
        query_cams=session.query_cams, gallery_cams=session.gallery_cams,
        query_times=session.times_of(session.dataset.query),
        gallery_times=session.times_of(session.dataset.gallery),
        progress=lambda d, t: bar("sweep", d, t))[args.param]
    stage = "RR+TLift" if not args.no_rerank else "TLift"
    name = {"k": "K"}.get(args.param, args.param)
    print(f"{session.method} {stage}, varying {name}")
    print(f"{name:>8} " + " ".join(f"{p.value:>7g}" for p in points))
    print(f"{'rank-1':>8} " + " ".join(f"{100 * p.rank1:7.2f}" for p in points))
    print(f"{'mAP':>8} " + " ".join(f"{100 * p.mean_ap:7.2f}" for p in points))
    if args.csv:
        text = f"{args.param},rank1,mAP\n" + "".join(
            f"{p.value:g},{p.rank1:.6f},{p.mean_ap:.6f}\n" for p in points)
        write_output_bytes(args.csv, text.encode("utf-8"), force=args.force, inputs=inputs,
                           flag="--csv")
    return 0
