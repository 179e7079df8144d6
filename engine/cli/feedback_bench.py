"""Measure relevance feedback with a simulated user: no feedback, Query Shift, Relevance Score and refine.

Per query, each round the simulated user labels the top --per-round results not yet labelled
from the ground truth (same-camera images of the query's identity are junk, neither labelled
nor counted; distractors are "not the same"), --noise flips that share of the labels, and each
method ranks again from the labels so far (engine.analysis.feedback_sim). Printed per stage
(raw, +RR, +RR+TLift) and round: rank-1, mAP and the mAP over positives not yet labelled
(labelled items leave the list; "counted": the queries that still have such a positive), and
refine's margin over the better baseline on that last one.
Query Shift is Rocchio on similarities (s + 0.65 mean s(pos, g) - 0.35 mean s(neg, g)),
Relevance Score d_neg / (d_neg + d_pos) with the nearest labelled positive and negative; every
method pins labelled positives first and negatives last (engine.feedback).
"""
from __future__ import annotations

import argparse
import time

from engine.cli._common import (
    StageBar,
    add_cache_argument,
    add_data_arguments,
    add_device_argument,
    load_data,
    tlift_k_for,
)

STAGES = {"raw": (False, False), "+RR": (True, False), "+RR+TLift": (True, True)}
FIGURES = (("rank-1", "rank1"), ("mAP", "mean_ap"), ("unseen mAP", "unseen_map"))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_device_argument(parser)
    add_cache_argument(parser)
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (model.pt)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of labelling (default: 5)")
    parser.add_argument("--per-round", type=int, default=5,
                        help="results the user labels per query and round (default: 5)")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="share of labels flipped, 0 to 1 (default: 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the label noise (default: 0)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated stages among {', '.join(STAGES)} (default: all; "
                             "TLift is skipped without timestamps)")
    parser.add_argument("--methods", default=None,
                        help="comma-separated methods (default: none, query shift, "
                             "relevance score, refine)")


def _stages(text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in STAGES]
    if unknown or not names:
        raise ValueError(f"--stages takes {', '.join(STAGES)}; got {text!r}")
    return names


def format_table(stage: str, results: dict, rounds: int) -> str:
    """One stage's figures in percent: a line per method and figure, a column per round."""
    head = f"{'stage':<10} {'method':<16} {'figure':<11}" + "".join(
        f" {'r' + str(r):>6}" for r in range(rounds + 1))
    lines = [head]
    for name, figures in results.items():
        for label, attr in FIGURES:
            values = getattr(figures, attr)
            lines.append(f"{stage:<10} {name:<16} {label:<11}" + "".join(f" {100 * v:6.1f}" for v in values))
    if "refine" in results:
        lines.append(f"{stage:<10} {'refine':<16} {'counted':<11}"
                     + "".join(f" {n:6d}" for n in results["refine"].unseen_queries))
    baselines = [results[m] for m in ("query shift", "relevance score") if m in results]
    if "refine" in results and baselines:
        margin = [100 * (results["refine"].unseen_map[r] - max(b.unseen_map[r] for b in baselines))
                  for r in range(1, rounds + 1)]
        lines.append(f"{stage:<10} {'refine - best':<16} {'unseen mAP':<11} {'':>6}"
                     + "".join(f" {m:+6.1f}" for m in margin))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from engine.analysis.feedback_sim import METHODS, simulate
    from engine.feedback import feedback_rows
    from engine.postprocess.params import RerankParams, TLiftParams
    from engine.session import Session

    stages = _stages(args.stages)
    methods = list(METHODS) if args.methods is None else [m.strip() for m in args.methods.split(",")]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"--methods takes {', '.join(METHODS)}; got {', '.join(unknown)}")
    session = Session.open(load_data(args), args.checkpoint, device=args.device,
                           cache_dir=args.cache_dir)
    if "+RR+TLift" in stages and not session.has_times:
        print("+RR+TLift skipped: this dataset's images have no capture times, which TLift needs")
        stages.remove("+RR+TLift")
    print(f"{len(session.dataset.query)} queries x {len(session.dataset.gallery)} gallery images; "
          f"{args.rounds} rounds of {args.per_round} labels, noise {args.noise:g}", flush=True)
    labels = (session.query_pids, session.gallery_pids, session.query_cams, session.gallery_cams)
    for stage in stages:
        rr_on, tl_on = STAGES[stage]
        session.score(("qg", "qq", "gg"), progress=StageBar())
        rr = RerankParams() if rr_on else None
        tl = TLiftParams(k=tlift_k_for(TLiftParams.k, session.query_cams,
                                       session.gallery_cams)) if tl_on else None
        rows = feedback_rows(session, rr, tl)
        results = {}
        for name in methods:
            t0 = time.perf_counter()
            results[name] = simulate(rows, METHODS[name], *labels, rounds=args.rounds,
                                     per_round=args.per_round, noise=args.noise, seed=args.seed)
            print(f"  {stage} {name}: {time.perf_counter() - t0:.1f} s", flush=True)
        print(format_table(stage, results, args.rounds), flush=True)
    return 0
