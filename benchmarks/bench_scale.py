"""Market scale: launch to first paint, peak memory, and two-stage retrieval against exhaustive.

Usage (the Market-scale synthetic set and the demo checkpoint)::

    python -m engine synth --domain B --market-scale --train-ids 0 --out /tmp/mkt
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_scale.py --data /tmp/mkt \\
        --cache-dir /tmp/cache-mkt [--queries 1000] [--ks 100,300,500] [--launch]

Two-stage retrieval (``--ks``): for each K, the QAConv pairs scored and the time taken by
shortlisted scoring (q-g, q-q, g-g) as ratios to exhaustive scoring measured in the same
process; the share of each query's exhaustive top-50 among its K candidates; rank-1 and mAP
raw, +RR and +RR+TLift, and their differences to exhaustive. The exhaustive blocks come from
the cache (scored now, resumably, when absent); their scoring time is measured here on a
sample (``--sample`` queries x the whole gallery) and scaled to the full blocks by pairs, since
scoring all 110M pairs again would take many minutes on a shared CPU. ``--queries N``
measures on a smaller set of the same kind: the first N queries, the gallery images of their
identities and the same share of the other gallery images (distractors).

Toggles (``--toggles``, blocks cached): the first computation of each RR / TLift setting as the
viewer runs it, against recomputing it from the logits in the same process (see ``toggles``).

Launch (``--launch``): wall time from starting ``run_viewer.py --screenshot`` to its first
paint, and its peak RSS, for a warm cache (every block stored) and a cold one (feature maps
stored, no score block: the maps take the same time either way and are reported apart), with
exhaustive scoring and with two-stage retrieval. The warm exhaustive launch is the baseline of
the ratios.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks._timing import timed  # noqa: E402


def _metrics_row(session, distmat):
    m = session.evaluate(distmat)
    return 100 * m.rank1, 100 * m.mean_ap


def _stages(dist_fn, has_times, rerank=True):
    from engine.postprocess.params import RerankParams, TLiftParams

    stages = [("raw", None, None)] + ([("+RR", RerankParams(), None)] if rerank else [])
    if has_times and rerank:
        stages.append(("+RR+TLift", RerankParams(), TLiftParams()))
    return {name: dist_fn(r, t) for name, r, t in stages}


def _subset(dataset, nq):
    """The first ``nq`` queries, the gallery of their identities and the same share of the
    distractors: a smaller set of the same kind (indices into the full query and gallery)."""
    qi = np.arange(min(nq, len(dataset.query)))
    if len(qi) == len(dataset.query):
        return qi, np.arange(len(dataset.gallery))
    pids = {dataset.query[i].pid for i in qi}
    share = len(pids) / len({s.pid for s in dataset.query})
    same = [j for j, s in enumerate(dataset.gallery) if s.pid in pids]
    others = [j for j, s in enumerate(dataset.gallery) if s.pid not in pids]
    extra = others[:: max(1, round(1 / share))] if share > 0 else []
    return qi, np.array(sorted(same + extra))


def _session_on(full, qi, gi, args, cache_dir, shortlist=None):
    """A session over a subset of ``full``'s images, given ``full``'s maps (nothing extracted)."""
    from engine.data import Dataset
    from engine.session import Session

    data = Dataset(full.dataset.name, full.dataset.root, query=[full.dataset.query[i] for i in qi],
                   gallery=[full.dataset.gallery[j] for j in gi])
    s = Session.open(data, args.checkpoint, device="cpu", cache_dir=cache_dir, shortlist=shortlist)
    s.query_maps = np.asarray(full.query_maps[qi])
    s.gallery_maps = np.asarray(full.gallery_maps[gi])
    return s


def two_stage(args) -> None:
    import torch

    from engine.session import Session
    from engine.shortlist import band_features, top_candidates

    full = Session.open(args.data, args.checkpoint, device="cpu", cache_dir=args.cache_dir)
    full.extract()
    qi, gi = _subset(full.dataset, args.queries or len(full.dataset.query))
    exh = _session_on(full, qi, gi, args, args.cache_dir)
    nq, ng = len(qi), len(gi)
    print(f"set: {len(full.dataset.query)} queries x {len(full.dataset.gallery)} gallery; measured on "
          f"{nq} queries x {ng} gallery" + (" (the first queries, their identities' gallery images "
                                            "and the same share of the others)" if nq < len(full.dataset.query) else ""))

    # Exhaustive scoring rate, measured now on a sample of queries x the whole gallery.
    sample = min(args.sample, nq)
    t_sample, _ = timed(lambda: exh.model.score(exh.query_maps[:sample], exh.gallery_maps,
                                                device=exh.device, memory_budget=exh.memory_budget),
                        repeat=2)  # the first call also loads the model
    rate = sample * ng / t_sample
    exh_pairs = nq * ng + nq * (nq + 1) // 2 + ng * (ng + 1) // 2
    print(f"exhaustive QAConv ({torch.get_num_threads()} torch threads): {rate:,.0f} pairs/s on "
          f"{sample} x {ng} -> q-g {nq * ng / 1e6:.1f}M pairs = {nq * ng / rate:.0f} s; with q-q and "
          f"g-g {exh_pairs / 1e6:.1f}M pairs = {exh_pairs / rate:.0f} s")

    blocks = ("qg", "qq", "gg") if args.rerank else ("qg",)
    t0 = time.perf_counter()
    exh.score(blocks)  # cached, or computed now in resumable tiles
    print(f"exhaustive blocks {', '.join(blocks)}: {time.perf_counter() - t0:.0f} s "
          f"(cache hits {exh.cache_hits})")
    t_post_exh, exh_d = timed(lambda: _stages(exh.distances, exh.has_times, args.rerank))
    exh_rows = {k: _metrics_row(exh, d) for k, d in exh_d.items()}
    top50 = np.argsort(-exh.logits["qg"], axis=1, kind="stable")[:, :50]
    print(f"exhaustive: post-processing {t_post_exh:.1f} s; "
          + "  ".join(f"{k} {r1:.2f}/{ap:.2f}" for k, (r1, ap) in exh_rows.items()) + "  (rank-1/mAP)")

    for k in args.ks:
        with tempfile.TemporaryDirectory() as cache:
            s = _session_on(full, qi, gi, args, cache, shortlist=k)
            t_score, _ = timed(lambda s=s: s.score(blocks))
            t_post, dists = timed(lambda s=s: _stages(s.distances, s.has_times, args.rerank))
        pairs, exh_work = nq * min(k, ng), nq * ng
        if args.rerank:
            pairs += _pairs(s.graphs["qq"][0]) + _pairs(s.graphs["gg"][0])
            exh_work = exh_pairs
        cand = top_candidates(band_features(s.query_maps), band_features(s.gallery_maps), k)
        kept = np.mean([np.isin(top50[i], cand[i]).mean() for i in range(nq)])
        rows = {name: _metrics_row(s, d) for name, d in dists.items()}
        print(f"K={k:>5}: QAConv pairs {pairs / 1e6:6.2f}M = 1/{exh_work / pairs:.1f} of exhaustive; "
              f"scoring {t_score:6.1f} s = 1/{exh_work / rate / t_score:.1f} of exhaustive's; "
              f"post-processing {t_post:5.1f} s ({t_post / t_post_exh:.2f}x exhaustive's); "
              f"exhaustive top-50 kept {100 * kept:.1f}%")
        print("         " + "  ".join(
            f"{name} {r1:.2f}/{ap:.2f} ({r1 - exh_rows[name][0]:+.2f}/{ap - exh_rows[name][1]:+.2f})"
            for name, (r1, ap) in rows.items()) + "  (rank-1/mAP, change vs exhaustive)")


def _pairs(neighbours) -> int:
    from engine.shortlist import shortlist_pairs

    return len(shortlist_pairs(neighbours)[0])


def _launch(args, cache_dir, shortlist: str) -> tuple[float | None, float]:
    """(seconds to first paint, peak RSS in GiB) of one ``run_viewer.py --screenshot``."""
    cmd = [sys.executable, str(ROOT / "run_viewer.py"), "--device", "cpu", "--data", args.data,
           "--cache-dir", str(cache_dir), "--shortlist", shortlist, "--no-rerank-cache"]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    env = {**os.environ, "REID_VIEWER_REPORT_PAINT": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd + ["--screenshot", os.path.join(tmp, "s.png")], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        painted, peak = None, 0
        status = Path(f"/proc/{proc.pid}/status")
        os.set_blocking(proc.stdout.fileno(), False)
        while proc.poll() is None:
            line = proc.stdout.readline()
            if painted is None and line.startswith("FIRST_PAINT"):
                painted = time.perf_counter() - t0
            try:
                hwm = [x for x in status.read_text().splitlines() if x.startswith("VmHWM")]
                peak = max(peak, int(hwm[0].split()[1]) if hwm else 0)
            except OSError:
                pass
            time.sleep(0.05)
        rest = proc.stdout.read() or ""
        if painted is None and "FIRST_PAINT" in rest:
            painted = time.perf_counter() - t0
    return painted, peak / 2**20


def launch(args) -> None:
    print(f"launch to first paint (run_viewer.py --screenshot; --shortlist off / auto), "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    results = {("warm", "exhaustive"): _launch(args, args.cache_dir, "off")}

    def fresh(cache):  # feature maps stored (hard links), no score block
        shutil.copytree(Path(args.cache_dir) / "features", Path(cache) / "features", copy_function=os.link)

    if args.cold_exhaustive:
        with tempfile.TemporaryDirectory() as cache:
            fresh(cache)
            results[("cold", "exhaustive")] = _launch(args, cache, "off")
    with tempfile.TemporaryDirectory() as cache:
        fresh(cache)
        # "auto": the viewer times a small block and picks two-stage retrieval when exhaustive
        # scoring would take minutes; the second launch finds its blocks cached.
        results[("cold", "two-stage")] = _launch(args, cache, "auto")
        results[("warm", "two-stage")] = _launch(args, cache, "auto")
    base = results[("warm", "exhaustive")][0]
    for (temp, mode), (seconds, rss) in results.items():
        if seconds is None:
            print(f"  {temp} {mode:<10}: never painted")
            continue
        target = f"; {seconds / 5.0:.2f}x the 5 s target" if temp == "warm" else ""
        print(f"  {temp} {mode:<10}: first paint {seconds:6.1f} s ({seconds / base:.2f}x warm "
              f"exhaustive{target}); peak RSS {rss:.2f} GiB")


def toggles(args) -> None:
    """First computation of each RR / TLift setting once the blocks are cached, as the viewer
    runs it (the ranking, then its metrics; +RR+TLift lifting the window's +RR matrix), after
    the background preparation the viewer does after its first paint. Baseline, in the same
    process: the same settings through ``final_distances`` from the logits, as the engine did
    before it kept converted blocks and neighbour lists (conversion and neighbour search on
    every toggle)."""
    from engine.evaluation import evaluate
    from engine.postprocess import final_distances
    from engine.postprocess.params import RerankParams, TLiftParams
    from engine.session import Session
    from viewer.state import PostSettings
    from viewer.tasks import compute_distances, score_rerank_blocks

    quiet = dict(progress=lambda *a: None, cancel=lambda: False)
    session = Session.open(args.data, args.checkpoint, device="cpu", cache_dir=args.cache_dir)
    t0 = time.perf_counter()
    session.score(("qg",))
    print(f"toggles on {session.logits['qg'].shape[0]:,} x {session.logits['qg'].shape[1]:,}, "
          f"load average {os.getloadavg()[0]:.1f}: q-g loaded in {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    score_rerank_blocks(session, **quiet)
    print(f"  background preparation after first paint (load q-q, g-g; convert; neighbour lists; "
          f"TLift kernels): {time.perf_counter() - t0:.1f} s")
    context = dict(query_cams=session.query_cams, query_times=session.times_of(session.dataset.query),
                   gallery_cams=session.gallery_cams, gallery_times=session.times_of(session.dataset.gallery))
    labels = (session.query_pids, session.gallery_pids, session.query_cams, session.gallery_cams)
    cache = {}
    steps = [("TLift", PostSettings(tlift=TLiftParams())), ("+RR", PostSettings(rerank=RerankParams())),
             ("+RR+TLift", PostSettings(rerank=RerankParams(), tlift=TLiftParams())),
             ("k1 = 15", PostSettings(rerank=RerankParams(k1=15))), ("raw", PostSettings())]
    for name, settings in steps:
        rr = cache.get(settings.without_tlift().key()) if settings.rerank and settings.tlift else None
        t0 = time.perf_counter()
        # As the window does: the ranking first, its metrics in a job of their own.
        result = compute_distances(session, settings, [], reranked=rr, metrics=False, **quiet)
        took = time.perf_counter() - t0
        t0 = time.perf_counter()
        evaluate(result.distmat, *labels)
        metrics_after = time.perf_counter() - t0
        cache[settings.key()] = result.distmat
        logits = [session.logits[n] for n in ("qg", "qq", "gg")] if settings.rerank else [session.logits["qg"]]
        t0 = time.perf_counter()
        before = final_distances(*logits, rerank=settings.rerank and dataclasses.asdict(settings.rerank),
                                 tlift=settings.tlift and dataclasses.asdict(settings.tlift), **context)
        evaluate(before, *labels)
        base = time.perf_counter() - t0
        same = np.array_equal(before, result.distmat)
        print(f"  {name:<10}: ranking {took:5.2f} s ({took:.2f}x the 1 s target), its metrics "
              f"{metrics_after:4.2f} s after; recomputed from the logits with metrics {base:5.2f} s "
              f"({base / (took + metrics_after):.1f}x both){'' if same else '  RESULTS DIFFER'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--checkpoint", default=str(ROOT / "viewer" / "demo" / "model.pt"))
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--queries", type=int, default=None, help="evaluate the first N queries")
    parser.add_argument("--sample", type=int, default=64,
                        help="queries scored against the whole gallery to time exhaustive scoring")
    parser.add_argument("--ks", type=lambda t: [int(v) for v in t.split(",")], default=[100, 300])
    parser.add_argument("--rerank", action="store_true",
                        help="also +RR and +RR+TLift (scores the exhaustive q-q and g-g unless cached)")
    parser.add_argument("--launch", action="store_true", help="also time launches of the viewer")
    parser.add_argument("--cold-exhaustive", action="store_true",
                        help="with --launch, also a cold exhaustive launch (q-g scored: minutes)")
    parser.add_argument("--no-two-stage", action="store_true")
    parser.add_argument("--toggles", action="store_true",
                        help="also time the first RR / TLift toggles on cached blocks")
    args = parser.parse_args()
    if not args.no_two_stage:
        two_stage(args)
    if args.toggles:
        toggles(args)
    if args.launch:
        launch(args)


if __name__ == "__main__":
    main()
