"""``evaluate`` stage rows: +RR+TLift lifts the session's kept +RR matrix instead of re-ranking twice."""
from __future__ import annotations

import argparse

import numpy as np

from engine.cli import evaluate as evaluate_cli
from engine.postprocess import final_distances, pipeline
from engine.postprocess.params import RerankParams, TLiftParams
from engine.session import Session
from tests.engine.test_features_checkpoint import _tiny_checkpoint


def test_rerank_runs_once_and_the_lifted_row_is_unchanged(tmp_path, tiny_synth, monkeypatch):
    _, dataset = tiny_synth
    session = Session.open(dataset, _tiny_checkpoint(tmp_path), device="cpu", cache_dir=tmp_path / "c")
    reranked, real = [], pipeline.rerank_step

    def counting(*args, **kwargs):
        reranked.append(args[3])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "rerank_step", counting)
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    args = parser.parse_args(["--data", "x", "--checkpoint", "y", "--rerank", "--tlift",
                              "--tau", "150"])
    rows = dict(evaluate_cli.stage_rows(session, args))
    assert list(rows) == ["raw", "+RR", "+RR+TLift"]
    assert reranked == [RerankParams()]

    # The chain from the logits, from scratch, gives the same numbers.
    context = dict(query_cams=session.query_cams, query_times=session.times_of(session.dataset.query),
                   gallery_cams=session.gallery_cams,
                   gallery_times=session.times_of(session.dataset.gallery))
    want = final_distances(session.logits["qg"], session.logits["qq"], session.logits["gg"],
                           rerank=True, tlift={"tau": 150.0}, **context)
    expected = session.evaluate(want)
    assert rows["+RR+TLift"].mean_ap == expected.mean_ap
    np.testing.assert_array_equal(rows["+RR+TLift"].cmc, expected.cmc)
    reranked.clear()
    np.testing.assert_array_equal(session.distances(RerankParams(), TLiftParams(tau=150.0)), want)
    assert reranked == []                      # the kept +RR matrix, lifted again
    kept = session.distances(RerankParams())
    assert not kept.flags.writeable            # kept read-only: a caller cannot spoil it
    session.distances(RerankParams(k1=10), TLiftParams())
    assert reranked == [RerankParams(k1=10)]
