"""``evaluate`` stage rows: +RR+TLift lifts the session's kept +RR matrix instead of re-ranking twice."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engine.cli import evaluate as evaluate_cli
from engine.postprocess import final_distances, pipeline
from engine.postprocess.params import RerankParams, TLiftParams
from engine.session import Session


def test_rerank_runs_once_and_the_lifted_row_is_unchanged(tmp_path, tiny_synth, monkeypatch,
                                                          random_checkpoint):
    _, dataset = tiny_synth
    session = Session.open(dataset, random_checkpoint, device="cpu", cache_dir=tmp_path / "c")
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


def test_tlift_on_a_set_without_timestamps_is_skipped_and_the_rest_written(tiny_synth, tmp_path,
                                                                           capsys):
    import shutil

    from engine.__main__ import main

    _, dataset = tiny_synth
    # The same images in a CSV manifest without a time column: no timestamps.
    data = tmp_path / "set"
    data.mkdir()
    rows = ["path,pid,camera,split"]
    for split in ("query", "gallery"):
        for i, s in enumerate(getattr(dataset, split)):
            name = f"{split}_{i}.jpg"
            shutil.copy(s.path, data / name)
            rows.append(f"{name},{s.pid},{s.cam},{split}")
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    checkpoint = Path(__file__).resolve().parents[2] / "viewer" / "demo" / "model.pt"
    code = main(["evaluate", "--data", str(data), "--checkpoint", str(checkpoint), "--device", "cpu",
                 "--cache-dir", str(tmp_path / "cache"), "--rerank", "--tlift",
                 "--plots", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines().count(evaluate_cli.TLIFT_SKIPPED) == 1
    assert [line.split()[1] for line in out.splitlines() if line.startswith("qaconv")] == ["raw", "+RR"]
    with open(tmp_path / "plots" / "cmc.csv") as fh:
        methods = {line.split(",")[1] for line in list(fh)[1:]}
    assert methods == {"qaconv", "qaconv+rr"}
    assert any(p.suffix == ".png" for p in (tmp_path / "plots").iterdir())


def test_help_states_the_tlift_rule():
    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    assert "skipped" in " ".join(parser.format_help().split())


def test_shortlist_prints_the_first_stage_recall_per_k(tiny_synth, tmp_path, capsys):
    import re

    from engine.__main__ import main

    root, dataset = tiny_synth
    checkpoint = Path(__file__).resolve().parents[2] / "viewer" / "demo" / "model.pt"
    code = main(["evaluate", "--data", str(root), "--checkpoint", str(checkpoint), "--device", "cpu",
                 "--cache-dir", str(tmp_path / "cache"), "--shortlist", "4"])
    out = capsys.readouterr().out
    assert code == 0
    line = next(x for x in out.splitlines() if x.startswith("first stage (band matching)"))
    cells = [(int(k), float(v)) for k, v in re.findall(r"K=(\d+) ([\d.]+)%", line)]
    assert [k for k, _ in cells] == [1, 2, 4, 8, 16][:len(cells)] and len(cells) >= 4
    assert all(0 <= v <= 100 for _, v in cells)
    assert [v for _, v in cells] == sorted(v for _, v in cells)   # more candidates keep more
    if cells[2][1] < 99:
        assert "K = 4 loses matches" in out
