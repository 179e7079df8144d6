"""Evaluate a checkpoint on a dataset: rank-1/5/10, mAP and mINP, optionally with RR and TLift.

With --rerank and/or --tlift it prints one row per stage (raw, +RR, +RR+TLift), the layout of
the QAConv appendix's Tables 5 and 6. Scores are cached, so a second run is fast.
"""
from __future__ import annotations

import argparse

from ._common import StageBar, add_cache_argument, add_data_arguments, add_device_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_device_argument(parser)
    add_cache_argument(parser)
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (model.pt)")
    parser.add_argument("--rerank", action="store_true", help="add k-reciprocal re-ranking rows")
    parser.add_argument("--tlift", action="store_true", help="add temporal lifting rows")
    parser.add_argument("--k1", type=int, default=20)
    parser.add_argument("--k2", type=int, default=6)
    parser.add_argument("--lambda-value", type=float, default=0.3)
    parser.add_argument("--tau", type=float, default=100.0)
    parser.add_argument("--sigma", type=float, default=200.0)
    parser.add_argument("--tlift-k", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--csv", default=None, help="also write the rows to this CSV file")


def stage_rows(session, args) -> list[tuple[str, object]]:
    from engine.session import RerankParams, TLiftParams

    rr = RerankParams(args.k1, args.k2, args.lambda_value)
    tl = TLiftParams(args.tau, args.sigma, args.tlift_k, args.alpha)
    stages = [("raw", None, None)]
    if args.rerank:
        stages.append(("+RR", rr, None))
    if args.tlift:
        if not session.has_times:
            raise ValueError("TLift needs timestamps, and this dataset's images have none")
        stages.append(("+RR+TLift", rr, tl) if args.rerank else ("+TLift", None, tl))
    bar = StageBar()
    rows, previous = [], None
    for name, r, t in stages:
        if name == "+RR+TLift":
            # Lift the +RR matrix just evaluated (it is not needed again) instead of
            # re-ranking a second time.
            from dataclasses import asdict

            from engine.postprocess.pipeline import lift_distances

            dist = lift_distances(
                previous, session.query_cams, session.times_of(session.dataset.query),
                session.gallery_cams, session.times_of(session.dataset.gallery), **asdict(t))
        else:
            dist = session.distances(r, t, progress=bar)
        rows.append((name, session.evaluate(dist)))
        previous = dist
    return rows


def _at(m, k: int) -> float:
    """CMC at rank ``k`` (the last value when the gallery is shorter than ``k``)."""
    return float(m.cmc[min(k, len(m.cmc)) - 1])


def format_rows(method: str, rows) -> str:
    lines = [f"{'method':<10} {'stage':<10} {'rank-1':>7} {'rank-5':>7} {'rank-10':>7} "
             f"{'mAP':>7} {'mINP':>7}"]
    for name, m in rows:
        lines.append(f"{method:<10} {name:<10} {100 * _at(m, 1):7.2f} {100 * _at(m, 5):7.2f} "
                     f"{100 * _at(m, 10):7.2f} {100 * m.mean_ap:7.2f} {100 * m.mean_inp:7.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from engine.session import Session
    from engine.utils import atomic_write_text

    session = Session.open(args.data, args.checkpoint, device=args.device, layout=args.layout,
                           cache_dir=args.cache_dir)
    rows = stage_rows(session, args)
    print(format_rows(session.method, rows))
    if args.csv:
        text = "method,stage,rank1,rank5,rank10,mAP,mINP\n" + "".join(
            f"{session.method},{n},{_at(m, 1):.6f},{_at(m, 5):.6f},{_at(m, 10):.6f},"
            f"{m.mean_ap:.6f},{m.mean_inp:.6f}\n" for n, m in rows)
        atomic_write_text(args.csv, text)
    return 0
