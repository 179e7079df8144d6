"""Evaluate a checkpoint on a dataset: rank-1/5/10, mAP and mINP, optionally with RR and TLift.

With --rerank and/or --tlift it prints one row per stage (raw, +RR, +RR+TLift), the layout of
the QAConv appendix's Tables 5 and 6. Scores are cached, so a second run is fast. TLift needs the
images' capture times: on a dataset without them, --tlift is skipped with one line saying so and
the other rows and plots are written as usual.

With --plots DIR it also writes the analysis plots of every stage, each as PNG and CSV: CMC,
ROC (with TPR at FPR 1e-2, 1e-3, 1e-4), true/false pair score distributions, rank-1/mAP per
(query camera, gallery camera) and, with --tlift, the TLift parameter sweeps. The files are
written all or none; --csv and --plots are checked before any scoring (engine.outputs).
Each row is printed when ready: the raw one before the blocks only re-ranking needs are scored.
``--shortlist K`` scores only K candidates per query (two-stage retrieval, engine.shortlist) and
first prints the first stage's recall of the exhaustive top items per K, measured on sampled queries.

``--compare B`` evaluates a second model on the same queries with the same stages: each stage
prints model A's row, model B's row, and how many queries each model wins (higher per-query AP)
and ties. Either checkpoint may be another project's file (converted into the cache first,
engine.models.importing).
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
    tlift_k_for,
)
from engine.postprocess.params import RerankParams, TLiftParams


def add_tlift_arguments(parser: argparse.ArgumentParser) -> None:
    """TLift's parameters as flags, defaulting to :class:`TLiftParams`' defaults."""
    parser.add_argument("--tau", type=float, default=TLiftParams.tau)
    parser.add_argument("--sigma", type=float, default=TLiftParams.sigma)
    parser.add_argument("--tlift-k", type=int, default=TLiftParams.k)
    parser.add_argument("--alpha", type=float, default=TLiftParams.alpha)


def tlift_from_args(args: argparse.Namespace, session=None) -> TLiftParams:
    """TLift's flags as a record; with ``session``, K clamped to TLift's largest block there
    (:func:`engine.cli._common.tlift_k_for`: the same result, bounded memory)."""
    k = args.tlift_k
    if session is not None:
        k = tlift_k_for(k, session.query_cams, session.gallery_cams)
    return TLiftParams(args.tau, args.sigma, k, args.alpha)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    add_device_argument(parser)
    add_cache_argument(parser)
    parser.add_argument("--checkpoint", required=True,
                        help="model checkpoint (model.pt, or another project's file: converted "
                             "into the cache first)")
    parser.add_argument("--compare", default=None, metavar="B",
                        help="a second checkpoint to evaluate beside --checkpoint on the same "
                             "queries and stages: prints both rows per stage and the number of "
                             "queries each model wins (higher AP) and ties; --csv then has a "
                             "first column 'model' (A or B); not with --plots")
    parser.add_argument("--rerank", action="store_true", help="add k-reciprocal re-ranking rows")
    parser.add_argument("--tlift", action="store_true",
                        help="add temporal lifting rows; TLift needs the images' capture times, "
                             "so on a dataset without them it is skipped (one line says so) and "
                             "the other rows are printed as usual")
    parser.add_argument("--k1", type=int, default=RerankParams.k1)
    parser.add_argument("--k2", type=int, default=RerankParams.k2)
    parser.add_argument("--lambda-value", type=float, default=RerankParams.lambda_value)
    add_tlift_arguments(parser)
    parser.add_argument("--csv", default=None, help="also write the rows to this CSV file")
    parser.add_argument("--plots", default=None, metavar="DIR",
                        help="write the analysis plots (PNG) and their data (CSV) into DIR")
    parser.add_argument("--no-sweep", action="store_true",
                        help="with --plots and --tlift: skip the TLift parameter sweeps "
                             "(40 TLift runs)")
    parser.add_argument("--force", action="store_true",
                        help="replace --csv and the files in --plots if they exist; write --plots "
                             "inside the dataset, cache or checkpoint folder")
    parser.add_argument("--shortlist", type=int, default=None, metavar="K",
                        help="two-stage retrieval: QAConv scores only the K candidates per query "
                             "(and per item for re-ranking) that band matching on coarsened "
                             "maps selects; prints that first stage's recall of the exhaustive "
                             "top items per K; default: exhaustive")


TLIFT_SKIPPED = "TLift skipped: this dataset's images have no capture times, which TLift needs"


def _params(session, args) -> tuple[RerankParams | None, TLiftParams | None]:
    """The re-ranking and TLift steps asked for (None: off; TLift None without timestamps)."""
    rr = RerankParams(args.k1, args.k2, args.lambda_value) if args.rerank else None
    if not args.tlift or not session.has_times:  # without timestamps TLift is skipped (run says so)
        return rr, None
    return rr, tlift_from_args(args, session)


def stage_distances(session, args, *, quiet: bool = False):
    """Yield ``(row name, distmat)`` per stage as each is computed: raw, then +RR, +RR+TLift
    (the +RR matrix lifted: re-ranking runs once) or +TLift, as asked. ``quiet``: do not say
    that TLift is skipped (a second model on the same data)."""
    from engine.analysis.plot_data import iter_stage_distances

    rr, tl = _params(session, args)
    if args.tlift and tl is None and not quiet:
        print(TLIFT_SKIPPED, flush=True)
    names = iter(["raw"] + (["+RR"] if rr else []) + (["+RR+TLift" if rr else "+TLift"] if tl else []))
    for (_, dist), name in zip(iter_stage_distances(session, rr, tl, tlift_alone=False,
                                                    progress=StageBar()), names, strict=True):
        yield name, dist


def stage_rows(session, args):
    """Yield ``(stage, Metrics)`` per stage as each is computed."""
    for name, dist in stage_distances(session, args):
        yield name, session.evaluate(dist)


def plot_file_names() -> list[str]:
    """Every file ``--plots`` may write (the sweep's only with --tlift)."""
    from engine.analysis.plot_csv import PLOT_NAMES

    return [f"{name}.{kind}" for name in PLOT_NAMES for kind in ("csv", "png")]


def write_plots(session, args, distances, inputs) -> list:
    """Every analysis plot of the evaluated stages into ``args.plots``, as CSV and PNG: all of
    them or none (``engine.outputs.write_output_folder``)."""
    import dataclasses

    from engine.analysis.plot_csv import csv_files
    from engine.analysis.plot_data import analyse_stages, tlift_sweeps
    from engine.analysis.plot_png import png_files
    from engine.outputs import write_output_folder
    from engine.postprocess.params import stage_name

    rr, tl = _params(session, args)
    names = {"raw": (False, False), "+RR": (True, False), "+TLift": (False, True),
             "+RR+TLift": (True, True)}
    dists = {stage_name(session.method, *names[n]): d for n, d in distances}
    bar = StageBar()
    plots = analyse_stages(dists, session.query_pids, session.gallery_pids, session.query_cams,
                           session.gallery_cams, progress=bar)
    if tl is not None and not args.no_sweep:
        base = dataclasses.asdict(tl)
        base_dist = dists[stage_name(session.method, rr is not None, False)]
        sweeps = tlift_sweeps(
            base_dist, query_pids=session.query_pids, gallery_pids=session.gallery_pids,
            query_cams=session.query_cams, gallery_cams=session.gallery_cams,
            query_times=session.times_of(session.dataset.query),
            gallery_times=session.times_of(session.dataset.gallery), base=base,
            relative=rr is None, progress=lambda d, t: bar("sweep", d, t))
        plots = dataclasses.replace(plots, sweeps=sweeps, sweep_base=base,
                                    sweep_stage=stage_name(session.method, rr is not None, True))
    return write_output_folder(args.plots, {**csv_files(plots), **png_files(plots)},
                               force=args.force, inputs=inputs)


def print_shortlist_recall(session, k: int) -> None:
    """The first stage's recall of the exhaustive top items at K and around it, from sampled
    queries (engine.shortlist.sampled_ranks), and whether K loses matches."""
    from engine import shortlist

    session.extract(StageBar())
    size = len(session.gallery_maps)
    if k >= size:  # every pair is a candidate: exhaustive scoring
        return
    ranks = shortlist.sampled_ranks(session)
    ks = sorted({n for n in (k // 4, k // 2, k, 2 * k, 4 * k) if 1 <= n < size})
    cells = "  ".join(f"K={n} {100 * shortlist.recall_at(ranks, n):.1f}%" for n in ks)
    print(f"first stage (band matching) keeps of the exhaustive top-{shortlist.RECALL_TOP} of "
          f"{len(ranks)} sampled queries: {cells}")
    enough = shortlist.lossless_shortlist(ranks, size, start=k)
    if enough != k:
        print(f"K = {k} loses matches (recall below {100 * shortlist.RECALL_NEEDED:.0f}%); "
              + (f"K = {enough} keeps them" if enough else "only exhaustive scoring keeps them"),
              flush=True)


def _at(m, k: int) -> float:
    """CMC at rank ``k`` (the last value when the gallery is shorter than ``k``)."""
    return float(m.cmc[min(k, len(m.cmc)) - 1])


HEADER = (f"{'method':<10} {'stage':<10} {'rank-1':>7} {'rank-5':>7} {'rank-10':>7} "
          f"{'mAP':>7} {'mINP':>7}")
COMPARE_HEADER = f"{'model':<6}" + HEADER
CSV_HEADER = "method,stage,rank1,rank5,rank10,mAP,mINP\n"


def format_row(method: str, name: str, m) -> str:
    return (f"{method:<10} {name:<10} {100 * _at(m, 1):7.2f} {100 * _at(m, 5):7.2f} "
            f"{100 * _at(m, 10):7.2f} {100 * m.mean_ap:7.2f} {100 * m.mean_inp:7.2f}")


def csv_row(method: str, name: str, m) -> str:
    return (f"{method},{name},{_at(m, 1):.6f},{_at(m, 5):.6f},{_at(m, 10):.6f},"
            f"{m.mean_ap:.6f},{m.mean_inp:.6f}\n")


def format_rows(method: str, rows) -> str:
    return "\n".join([HEADER] + [format_row(method, name, m) for name, m in rows])


def run(args: argparse.Namespace) -> int:
    import sys

    from engine.outputs import (
        check_output_folder,
        check_output_path,
        run_inputs,
        write_output_bytes,
    )
    if args.compare is not None:
        return run_compare(args)
    data = load_data(args)
    # Every output is checked before the minutes of extraction and scoring.
    inputs = run_inputs(args.checkpoint, data, cache_dir=args.cache_dir)
    if args.csv is not None:
        check_output_path(args.csv, force=args.force, inputs=inputs, flag="--csv")
    if args.plots is not None:
        check_output_folder(args.plots, plot_file_names(), force=args.force, inputs=inputs)
    blocks = ("qg", "qq", "gg") if args.rerank else ("qg",)
    session, world = open_session(args, data, blocks=blocks, shortlist=args.shortlist,
                                  checkpoint=open_checkpoint(args.checkpoint, args.cache_dir))
    if not world.main:  # a torchrun rank: its share is done, rank 0 ranks and writes
        return 0
    if session.uses_shortlist:
        print_shortlist_recall(session, session.shortlist)
    rows, distances = [], []
    try:
        # Each row is printed as soon as it is computed: a later stage that fails (or is
        # interrupted) does not take the finished ones with it.
        for name, dist in stage_distances(session, args):
            m = session.evaluate(dist)
            if not rows:
                print(HEADER)
            rows.append((name, m))
            if args.plots:
                distances.append((name, dist))
            print(format_row(session.method, name, m), flush=True)
    finally:
        if args.csv and rows:
            text = CSV_HEADER + "".join(csv_row(session.method, n, m) for n, m in rows)
            write_output_bytes(args.csv, text.encode("utf-8"), force=args.force, inputs=inputs,
                               flag="--csv")
            if sys.exc_info()[0] is not None:
                print(f"wrote the {len(rows)} finished row(s) to {args.csv}", file=sys.stderr)
    if args.plots:
        written = write_plots(session, args, distances, inputs)
        print(f"wrote {len(written)} plot files to {args.plots}")
    return 0


def open_checkpoint(src: str, cache_dir) -> str:
    """A checkpoint of this tool for ``src`` (another project's file converted into the cache;
    what was found is printed)."""
    from engine.cli._common import native_model

    path, note = native_model(src, cache_dir)
    if note:
        print(note, flush=True)
    return path


def _same_items(a, b) -> None:
    """Refuse to compare per-query APs of two sessions whose query or gallery lists differ (an
    image one model's extraction found undecodable)."""
    for split in ("query", "gallery"):
        if [s.path for s in getattr(a.dataset, split)] != [s.path for s in getattr(b.dataset, split)]:
            raise ValueError(f"the two models were evaluated on different {split} images "
                             "(an image failed to decode for one of them); run again: the "
                             "undecodable images are now left out for both")


def run_compare(args: argparse.Namespace) -> int:
    """``--compare B``: both models' rows per stage, and the queries each wins."""
    import dataclasses

    from engine.evaluation import compare_ap
    from engine.outputs import check_output_path, run_inputs, write_output_bytes
    from engine.session import Session

    if args.plots is not None:
        raise ValueError("--plots is not available with --compare: write the plots of each "
                         "model with its own evaluate run")
    data = load_data(args)
    a_inputs = run_inputs(args.checkpoint, data, cache_dir=args.cache_dir)
    b_inputs = run_inputs(args.compare, cache_dir=args.cache_dir)
    inputs = dataclasses.replace(a_inputs, files=a_inputs.files + b_inputs.files)
    if args.csv is not None:
        check_output_path(args.csv, force=args.force, inputs=inputs, flag="--csv")
    sessions = {}
    for label, src in (("A", args.checkpoint), ("B", args.compare)):
        path = open_checkpoint(src, args.cache_dir)
        sessions[label] = Session.open(data, path, device=args.device, cache_dir=args.cache_dir,
                                       shortlist=args.shortlist)
    for label, src in (("A", args.checkpoint), ("B", args.compare)):
        print(f"{label}: {src} ({sessions[label].method})")
    a, b = sessions["A"], sessions["B"]
    rows = []
    try:
        print(COMPARE_HEADER)
        stages = zip(stage_distances(a, args), stage_distances(b, args, quiet=True), strict=True)
        for (name, dist_a), (_, dist_b) in stages:
            _same_items(a, b)
            ma, mb = a.evaluate(dist_a), b.evaluate(dist_b)
            rows += [("A", a.method, name, ma), ("B", b.method, name, mb)]
            print(f"{'A':<6}" + format_row(a.method, name, ma))
            print(f"{'B':<6}" + format_row(b.method, name, mb))
            print(f"{name}: per-query AP: {compare_ap(ma.ap, mb.ap).summary()}", flush=True)
    finally:
        if args.csv and rows:
            text = "model," + CSV_HEADER + "".join(f"{label}," + csv_row(method, n, m)
                                                   for label, method, n, m in rows)
            write_output_bytes(args.csv, text.encode("utf-8"), force=args.force, inputs=inputs,
                               flag="--csv")
    return 0
