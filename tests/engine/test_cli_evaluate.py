"""``evaluate`` stage rows: +RR+TLift lifts the +RR matrix instead of re-ranking twice."""
from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from engine.cli import evaluate as evaluate_cli
from engine.evaluation import evaluate
from engine.postprocess import final_distances


class _Session:
    """The part of :class:`engine.session.Session` that ``stage_rows`` uses, counting RR runs."""

    def __init__(self, rng, q=10, g=40):
        pids = rng.integers(1, 6, q + g)
        x = rng.normal(size=(6, 5))[pids] + 0.8 * rng.normal(size=(q + g, 5))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        logits = 40.0 * (x @ x.T) - 10.0
        self.logits = {"qg": logits[:q, q:], "qq": logits[:q, :q], "gg": logits[q:, q:]}
        cams, times = rng.integers(0, 3, q + g), rng.random(q + g) * 600
        self.query_pids, self.gallery_pids = pids[:q], pids[q:]
        self.query_cams, self.gallery_cams = cams[:q], cams[q:]
        self.dataset = SimpleNamespace(query=list(times[:q]), gallery=list(times[q:]))
        self.has_times = True
        self.reranked = 0

    def times_of(self, samples):
        return np.asarray(samples)

    def distances(self, rerank=None, tlift=None, progress=None, cancel=None):
        self.reranked += rerank is not None
        return final_distances(
            self.logits["qg"], self.logits["qq"], self.logits["gg"],
            rerank=None if rerank is None else asdict(rerank),
            tlift=None if tlift is None else asdict(tlift),
            query_cams=self.query_cams, query_times=self.times_of(self.dataset.query),
            gallery_cams=self.gallery_cams, gallery_times=self.times_of(self.dataset.gallery))

    def evaluate(self, distmat):
        return evaluate(distmat, self.query_pids, self.gallery_pids, self.query_cams,
                        self.gallery_cams)


def test_rerank_runs_once_and_the_lifted_row_is_unchanged():
    from engine.session import RerankParams, TLiftParams

    parser = argparse.ArgumentParser()
    evaluate_cli.add_arguments(parser)
    args = parser.parse_args(["--data", "x", "--checkpoint", "y", "--rerank", "--tlift",
                              "--tau", "150"])
    session = _Session(np.random.default_rng(0))
    rows = dict(evaluate_cli.stage_rows(session, args))
    assert list(rows) == ["raw", "+RR", "+RR+TLift"]
    assert session.reranked == 1
    expected = session.evaluate(session.distances(RerankParams(), TLiftParams(tau=150.0)))
    assert rows["+RR+TLift"].mean_ap == expected.mean_ap
    np.testing.assert_array_equal(rows["+RR+TLift"].cmc, expected.cmc)


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
    checkpoint = Path(__file__).resolve().parents[2] / "assets" / "demo" / "model.pt"
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
    checkpoint = Path(__file__).resolve().parents[2] / "assets" / "demo" / "model.pt"
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
