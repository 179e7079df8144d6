"""``evaluate --compare B``: both models' rows per stage and the queries each wins."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.evaluation import AP_TIE, compare_ap

DEMO = Path(__file__).resolve().parents[2] / "viewer" / "demo" / "model.pt"


def test_compare_ap_matches_a_query_by_query_count():
    rng = np.random.default_rng(3)
    ap_a = rng.random(200)
    ap_b = np.where(rng.random(200) < 0.2, ap_a, rng.random(200))   # some exact ties
    ap_b[5] = ap_a[5] + AP_TIE / 2                                   # a tie within rounding
    ap_a[rng.random(200) < 0.1] = np.nan                             # invalid queries
    ap_b[7] = np.nan
    got = compare_ap(ap_a, ap_b)
    a_wins, b_wins, ties = [], [], []
    for q, (x, y) in enumerate(zip(ap_a, ap_b, strict=True)):
        if np.isnan(x) or np.isnan(y):
            continue
        (ties if abs(x - y) <= AP_TIE else a_wins if x > y else b_wins).append(q)
    assert sorted(got.a_wins) == a_wins and sorted(got.b_wins) == b_wins
    assert list(got.ties) == ties and 5 in ties and 7 not in ties
    assert got.valid.sum() == len(a_wins) + len(b_wins) + len(ties)
    gaps = ap_a[got.a_wins] - ap_b[got.a_wins]                       # largest gap first
    assert np.all(np.diff(gaps) <= 0)
    assert np.all(np.diff(ap_b[got.b_wins] - ap_a[got.b_wins]) <= 0)
    assert got.summary() == (f"A wins {len(a_wins)}, B wins {len(b_wins)}, ties {len(ties)} "
                             f"(of {len(a_wins) + len(b_wins) + len(ties)} queries)")
    with pytest.raises(ValueError, match="different query sets"):
        compare_ap(ap_a, ap_b[:-1])


def _rows(out: str, prefix: str) -> dict[str, list[str]]:
    """``{stage: [method, rank-1, ...]}`` of the lines starting with ``prefix``."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and cells[0] == prefix and len(cells) == 8:
            rows[cells[2]] = cells[1:2] + cells[3:]
    return rows


@pytest.mark.slow
def test_compare_prints_each_models_rows_and_the_wins(tiny_synth, tmp_path, run_cli,
                                                      random_checkpoint):
    from engine.session import Session

    root, dataset = tiny_synth
    cache = tmp_path / "cache"
    code, out, err = run_cli("evaluate", "--data", root, "--checkpoint", DEMO, "--compare",
                             random_checkpoint, "--device", "cpu", "--cache-dir", cache,
                             "--rerank", "--csv", tmp_path / "rows.csv")
    assert code == 0, err
    a_rows, b_rows = _rows(out, "A"), _rows(out, "B")
    assert list(a_rows) == list(b_rows) == ["raw", "+RR"]
    # Each model's rows are what evaluating it alone prints.
    for checkpoint, rows in ((DEMO, a_rows), (random_checkpoint, b_rows)):
        code, alone, _ = run_cli("evaluate", "--data", root, "--checkpoint", checkpoint,
                                 "--device", "cpu", "--cache-dir", cache, "--rerank")
        assert code == 0
        want = {line.split()[1]: line.split()[:1] + line.split()[2:]
                for line in alone.splitlines() if line.split()[:1] == ["qaconv"]}
        assert want == rows
    # The wins, counted query by query from each model's own per-query AP.
    for stage, rerank in (("raw", None), ("+RR", True)):
        aps = []
        for checkpoint in (DEMO, random_checkpoint):
            session = Session.open(dataset, checkpoint, device="cpu", cache_dir=cache)
            from engine.postprocess.params import RerankParams

            aps.append(session.evaluate(session.distances(RerankParams() if rerank else None)).ap)
        valid = ~np.isnan(aps[0]) & ~np.isnan(aps[1])
        a = int(np.sum(valid & (aps[0] > aps[1] + AP_TIE)))
        b = int(np.sum(valid & (aps[1] > aps[0] + AP_TIE)))
        line = next(x for x in out.splitlines() if x.startswith(f"{stage}: per-query AP:"))
        assert line == (f"{stage}: per-query AP: A wins {a}, B wins {b}, ties "
                        f"{int(valid.sum()) - a - b} (of {int(valid.sum())} queries)")
    lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert lines[0] == "model,method,stage,rank1,rank5,rank10,mAP,mINP"
    assert [x.split(",")[:3] for x in lines[1:]] == [
        ["A", "qaconv", "raw"], ["B", "qaconv", "raw"], ["A", "qaconv", "+RR"], ["B", "qaconv", "+RR"]]
    assert float(lines[1].split(",")[6]) * 100 == pytest.approx(float(a_rows["raw"][4]), abs=0.006)


def test_compare_refuses_plots_and_a_missing_file_in_one_line(tiny_synth, tmp_path, run_cli,
                                                              random_checkpoint):
    root, _ = tiny_synth
    code, out, err = run_cli("evaluate", "--data", root, "--checkpoint", DEMO, "--compare",
                             random_checkpoint, "--plots", tmp_path / "p")
    assert code == 2 and "--plots is not available with --compare" in err and not out
    code, _, err = run_cli("evaluate", "--data", root, "--checkpoint", DEMO, "--compare",
                           tmp_path / "absent.pt", "--cache-dir", tmp_path / "c")
    assert code == 2 and "absent.pt" in err and len(err.strip().splitlines()) == 1


def test_a_foreign_checkpoint_is_converted_and_what_was_found_printed(tmp_path, monkeypatch,
                                                                      random_checkpoint):
    from engine.cli._common import native_model
    from engine.models import importing

    # A native file with a sidecar is used as it is, without asking the converter.
    monkeypatch.setattr(importing, "native_checkpoint", lambda *a, **k: pytest.fail("read"))
    assert native_model(random_checkpoint, tmp_path) == (str(random_checkpoint), "")
    # Without its sidecar it is read, and still used as it is.
    bare = tmp_path / "bare.pt"
    shutil.copy(random_checkpoint, bare)
    monkeypatch.undo()
    assert native_model(bare, tmp_path) == (str(bare), "")
    # Another project's file: the converter's output, and what its settings say.
    foreign = tmp_path / "their.pth.tar"
    foreign.write_bytes(b"not read here")
    converted = tmp_path / "cache" / "converted.pt"
    calls = []

    def convert(src, cache_dir=None, **kwargs):
        calls.append((Path(src), kwargs))
        converted.parent.mkdir(exist_ok=True)
        shutil.copy(random_checkpoint, converted)
        shutil.copy(random_checkpoint.with_suffix(".json"), converted.with_suffix(".json"))
        return converted

    monkeypatch.setattr(importing, "native_checkpoint", convert)
    path, note = native_model(foreign, tmp_path, height=32, width=None)
    assert path == str(converted) and calls == [(foreign, {"height": 32})]
    assert note.startswith("their.pth.tar: ") and "resnet18 (qaconv), input 32 x 16, converted into" in note
