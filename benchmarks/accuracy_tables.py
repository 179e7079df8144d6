"""Accuracy tables on the synthetic benchmark: the paper's comparisons, measured on our data.

For each trained model (name=checkpoint) it prints rank-1 and mAP on the target domain without
post-processing, with k-reciprocal re-ranking and with RR + TLift (the appendix's Tables 5/6
layout), and on the source domain's own test split; then, for the first model, the sweep of
every TLift parameter over the appendix's values (Tables 7/8). Scores are cached under
--cache-dir, so re-running costs only the post-processing.

Run (after training, see viewer/demo/README.md):
  python benchmarks/accuracy_tables.py --target data/synth/B --source data/synth/A \
      qaconv=runs/demo/model.pt global=runs/global/model.pt
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="name=checkpoint pairs")
    ap.add_argument("--target", required=True, help="target-domain dataset (e.g. synthetic B)")
    ap.add_argument("--source", default=None, help="source-domain dataset (its test split is scored too)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--no-sweep", action="store_true", help="skip the TLift parameter sweeps")
    ap.add_argument("--csv", default=None, help="write all rows to this CSV file")
    args = ap.parse_args()

    from engine.cli.sweep import APPENDIX_VALUES
    from engine.postprocess.pipeline import tlift_sweep
    from engine.session import RerankParams, Session, TLiftParams
    from engine.utils import atomic_write_text

    rows = []
    print(f"{'model':<22} {'data':<6} {'stage':<10} {'rank-1':>7} {'mAP':>7}   (seconds)")
    sessions = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        for label, data in (("target", args.target), ("source", args.source)):
            if data is None:
                continue
            t = time.perf_counter()
            s = Session.open(data, path, cache_dir=args.cache_dir)
            stages = [("raw", None, None)]
            if label == "target":
                sessions[name] = s
                stages += [("+RR", RerankParams(), None), ("+RR+TLift", RerankParams(), TLiftParams())]
            for stage, rr, tl in stages:
                m = s.evaluate(s.distances(rr, tl))
                rows.append((name, label, stage, m.rank1, m.mean_ap))
                print(f"{name:<22} {label:<6} {stage:<10} {100 * m.rank1:7.2f} {100 * m.mean_ap:7.2f}"
                      f"   ({time.perf_counter() - t:.0f})", flush=True)
    if not args.no_sweep:
        name, s = next(iter(sessions.items()))
        base_sim = 1.0 - s.distances(RerankParams(), None).astype("float64")
        defaults = {"tau": 100.0, "sigma": 200.0, "k": 10, "alpha": 0.2}
        for param, values in APPENDIX_VALUES.items():
            base = {k: v for k, v in defaults.items() if k != param}
            points = tlift_sweep(base_sim, param, values, query_pids=s.query_pids,
                                 gallery_pids=s.gallery_pids, query_cams=s.query_cams,
                                 gallery_cams=s.gallery_cams,
                                 query_times=s.times_of(s.dataset.query),
                                 gallery_times=s.times_of(s.dataset.gallery), base=base)
            print(f"\n{name} RR+TLift on target, varying {param}")
            print(f"{param:>8} " + " ".join(f"{p.value:>7g}" for p in points))
            print(f"{'rank-1':>8} " + " ".join(f"{100 * p.rank1:7.2f}" for p in points))
            print(f"{'mAP':>8} " + " ".join(f"{100 * p.mean_ap:7.2f}" for p in points))
            rows += [(name, f"sweep-{param}", f"{p.value:g}", p.rank1, p.mean_ap) for p in points]
    if args.csv:
        atomic_write_text(args.csv, "model,data,stage,rank1,mAP\n" + "".join(
            f"{a},{b},{c},{d:.6f},{e:.6f}\n" for a, b, c, d, e in rows))


if __name__ == "__main__":
    main()
