"""TLift without re-ranking: which similarity to lift (issue 9, section 7).

docs/arithmetic.md section 9 lifts a similarity in [0, 1] by ``(w + alpha)``. After re-ranking that similarity is near
0 except for a query's few neighbours; without it, QAConv's ``sigmoid(logit / 10)`` spans a
narrow band and the time weight swamps appearance. For each model (name=checkpoint) this prints
rank-1 / mAP for: raw (no TLift); TLift on the similarity as it is (the old behaviour), rescaled
per query to [0, 1] (min-max), min-max raised to a power, ``relative_similarity`` (what the
pipeline lifts now), and for QAConv ``sigmoid(logit)`` (temperature 1 instead of 10); then the
pipeline's +TLift, +RR and +RR+TLift. With --pooled it does the same for a global-feature
baseline made from the model's own maps (average-pooled, L2-normalised, cosine), for when no
trained global checkpoint is at hand. Scores are cached under --cache-dir.

Run:
  python benchmarks/tlift_alone.py --data DIR [--pooled] qaconv=viewer/demo/model.pt [global=RUN/model.pt]
"""
from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="name=checkpoint pairs")
    ap.add_argument("--data", required=True, help="dataset with timestamps (e.g. synthetic B)")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--pooled", action="store_true",
                    help="also the pooled-map cosine baseline of each model")
    args = ap.parse_args()

    import numpy as np

    from engine.postprocess.pipeline import (
        final_distances_from_similarity,
        relative_similarity,
        similarity_from_logits,
    )
    from engine.postprocess.tlift import tlift
    from engine.session import RerankParams, Session, TLiftParams

    def unit_range(sim):
        low = sim.min(axis=1, keepdims=True)
        return (sim - low) / (sim.max(axis=1, keepdims=True) - low)

    def report(name, session, base, pipeline, extra=()):
        times = (session.times_of(session.dataset.query), session.times_of(session.dataset.gallery))

        def lifted(sim):
            return 1.0 - tlift(sim, session.query_cams, times[0], session.gallery_cams, times[1])

        spread = (base.max(axis=1) - base.min(axis=1)).mean()
        options = [("raw (no TLift)", 1.0 - base),
                   (f"TLift on s as is (mean row spread {spread:.3f})", lifted(base)),
                   ("TLift on min-max per query", lifted(unit_range(base))),
                   ("TLift on (min-max per query)^4", lifted(unit_range(base) ** 4)),
                   ("TLift on (min-max per query)^8", lifted(unit_range(base) ** 8)),
                   ("TLift on exp((s - max) / std) per query", lifted(relative_similarity(base))),
                   *[(label, lifted(sim)) for label, sim in extra],
                   *pipeline()]
        for label, dist in options:
            m = session.evaluate(dist)
            print(f"{name:<14} {label:<46} {100 * m.rank1:7.1f} {100 * m.mean_ap:7.1f}", flush=True)

    print(f"{'model':<14} {'similarity lifted':<46} {'rank-1':>7} {'mAP':>7}")
    for spec in args.models:
        name, _, path = spec.partition("=")
        session = Session.open(args.data, path, device="cpu", cache_dir=args.cache_dir)
        session.score(("qg", "qq", "gg"))
        logits = session.logits["qg"].astype(np.float64)
        if session.method == "qaconv":
            base = similarity_from_logits(logits)
            extra = [("TLift on sigmoid(logit) (T=1)", similarity_from_logits(10 * logits))]
        else:
            base, extra = (1.0 + np.clip(logits, -1.0, 1.0)) / 2.0, []

        def pipeline(session=session):
            return [("pipeline +TLift", session.distances(None, TLiftParams())),
                    ("pipeline +RR", session.distances(RerankParams(), None)),
                    ("pipeline +RR+TLift", session.distances(RerankParams(), TLiftParams()))]

        report(name, session, base, pipeline, extra)
        if args.pooled:
            def pooled(maps):
                v = np.asarray(maps, np.float32).mean(axis=(2, 3))      # [n, D]
                return v / np.linalg.norm(v, axis=1, keepdims=True)

            q, g = pooled(session.query_maps), pooled(session.gallery_maps)
            cos = {"qg": q @ g.T, "qq": q @ q.T, "gg": g @ g.T}
            context = dict(query_cams=session.query_cams, gallery_cams=session.gallery_cams,
                           query_times=session.times_of(session.dataset.query),
                           gallery_times=session.times_of(session.dataset.gallery))

            def pooled_pipeline(cos=cos, context=context):
                return [(f"pipeline {label}", final_distances_from_similarity(
                            cos["qg"], cos["qq"], cos["gg"], rerank=rr, tlift=tl, **context))
                        for label, rr, tl in (("+TLift", None, True), ("+RR", True, None),
                                              ("+RR+TLift", True, True))]

            report(f"{name}-pooled", session, (1.0 + np.clip(cos["qg"], -1, 1)) / 2.0,
                   pooled_pipeline)


if __name__ == "__main__":
    main()
