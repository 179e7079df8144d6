"""TLift without re-ranking: which similarity to lift (issue 9, section 7).

SPEC 9 lifts a similarity in [0, 1] by ``(w + alpha)``. After re-ranking that similarity spans
most of [0, 1]; without it, QAConv's ``sigmoid(logit / 10)`` spans a narrow band and the time
weight swamps appearance. For each model (name=checkpoint) this prints rank-1 / mAP on the
dataset for: raw (no TLift), TLift on the unscaled similarity (the old behaviour), TLift on the
similarity rescaled to [0, 1] per query (what the pipeline now does), rescaled over the whole
matrix, and, for QAConv, on ``sigmoid(logit)`` (temperature 1 instead of 10); and RR, RR+TLift
for reference. Scores are cached under --cache-dir.

Run:
  python benchmarks/tlift_alone.py --data DIR qaconv=assets/demo/model.pt [global=RUN/model.pt]
"""
from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="name=checkpoint pairs")
    ap.add_argument("--data", required=True, help="dataset with timestamps (e.g. synthetic B)")
    ap.add_argument("--cache-dir", default=None)
    args = ap.parse_args()

    import numpy as np

    from engine.postprocess.pipeline import similarity_from_logits, unit_range_per_query
    from engine.postprocess.tlift import tlift
    from engine.session import RerankParams, Session, TLiftParams

    print(f"{'model':<10} {'similarity lifted':<44} {'rank-1':>7} {'mAP':>7}")
    for spec in args.models:
        name, _, path = spec.partition("=")
        session = Session.open(args.data, path, device="cpu", cache_dir=args.cache_dir)
        session.score(("qg",))
        logits = session.logits["qg"].astype(np.float64)
        if session.method == "qaconv":
            base = similarity_from_logits(logits)
        else:
            base = (1.0 + np.clip(logits, -1.0, 1.0)) / 2.0
        times = (session.times_of(session.dataset.query), session.times_of(session.dataset.gallery))

        def lifted(sim, session=session, times=times):
            return 1.0 - tlift(sim, session.query_cams, times[0], session.gallery_cams, times[1])

        spread = base.max(axis=1) - base.min(axis=1)
        options = [("raw (no TLift)", 1.0 - base),
                   (f"TLift on s as is (row spread {spread.mean():.2f})", lifted(base)),
                   ("TLift on s rescaled per query to [0,1]", lifted(unit_range_per_query(base))),
                   ("TLift on s rescaled over the matrix", lifted(
                       (base - base.min()) / max(base.max() - base.min(), 1e-12)))]
        if session.method == "qaconv":
            options.append(("TLift on sigmoid(logit) (T=1)", lifted(similarity_from_logits(10 * logits))))
        options.append(("pipeline +TLift", session.distances(None, TLiftParams())))
        options.append(("pipeline +RR", session.distances(RerankParams(), None)))
        options.append(("pipeline +RR+TLift", session.distances(RerankParams(), TLiftParams())))
        for label, dist in options:
            m = session.evaluate(dist)
            print(f"{name:<10} {label:<44} {100 * m.rank1:7.1f} {100 * m.mean_ap:7.1f}", flush=True)


if __name__ == "__main__":
    main()
