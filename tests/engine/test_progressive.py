"""Progressive work: the raw ranking is ready before any re-ranking block is scored."""
from __future__ import annotations

import argparse

from engine.cli import evaluate as cli_evaluate
from engine.session import Session

from .test_features_checkpoint import _tiny_checkpoint


def _args(**kw):
    parser = argparse.ArgumentParser()
    cli_evaluate.add_arguments(parser)
    return parser.parse_args(["--data", "x", "--checkpoint", "y", *kw.get("extra", [])])


def test_evaluate_yields_the_raw_row_before_scoring_rerank_blocks(tmp_path, tiny_synth):
    _, dataset = tiny_synth
    session = Session.open(dataset, _tiny_checkpoint(tmp_path), device="cpu", cache_dir=tmp_path / "c")
    rows = cli_evaluate.stage_rows(session, _args(extra=["--rerank", "--tlift"]))
    name, metrics = next(rows)
    assert name == "raw" and 0.0 <= metrics.rank1 <= 1.0
    assert set(session.logits) == {"qg"}          # q-q and g-g not scored yet
    assert [n for n, _ in rows] == ["+RR", "+RR+TLift"]
    assert {"qq", "gg"} <= set(session.logits)
