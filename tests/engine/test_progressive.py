"""Progressive work: the raw ranking is ready before any re-ranking block is scored."""
from __future__ import annotations

import argparse

from engine.blocks import BlockCache
from engine.cli import evaluate as cli_evaluate
from engine.session import Session


def _args(**kw):
    parser = argparse.ArgumentParser()
    cli_evaluate.add_arguments(parser)
    return parser.parse_args(["--data", "x", "--checkpoint", "y", *kw.get("extra", [])])


def test_evaluate_yields_the_raw_row_before_scoring_rerank_blocks(tmp_path, tiny_synth, random_checkpoint):
    _, dataset = tiny_synth
    session = Session.open(dataset, random_checkpoint, device="cpu", cache_dir=tmp_path / "c")
    rows = cli_evaluate.stage_rows(session, _args(extra=["--rerank", "--tlift"]))
    name, metrics = next(rows)
    assert name == "raw" and 0.0 <= metrics.rank1 <= 1.0
    assert set(session.logits) == {"qg"}          # q-q and g-g not scored yet
    assert [n for n, _ in rows] == ["+RR", "+RR+TLift"]
    assert {"qq", "gg"} <= set(session.logits)


def test_a_block_wanted_by_two_threads_is_scored_once(tmp_path, tiny_synth, monkeypatch, random_checkpoint):
    """The viewer scores q-q / g-g in the background while a re-ranking request may want them."""
    import threading

    import numpy as np

    from engine.postprocess.params import RerankParams

    _, dataset = tiny_synth
    session = Session.open(dataset, random_checkpoint, device="cpu", cache_dir=tmp_path / "c")
    session.extract()
    scored, inside = [], threading.Event()
    real = BlockCache._score_resumable

    def counting(self, name, *args):
        scored.append(name)
        inside.set()
        return real(self, name, *args)

    monkeypatch.setattr(BlockCache, "_score_resumable", counting)
    background = threading.Thread(target=session.score, args=(("qq", "gg"),))
    background.start()
    inside.wait(30)
    reranked = session.distances(RerankParams())   # waits for the blocks instead of rescoring them
    background.join(60)
    assert sorted(scored) == ["gg", "qg", "qq"]
    # The distance blocks are converted once, kept read-only, and give the same ranking again.
    assert session.distance_block("gg") is session.distance_block("gg")
    assert not session.distance_block("gg").flags.writeable
    np.testing.assert_array_equal(session.distances(RerankParams()), reranked)
