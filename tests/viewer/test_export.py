"""CSV export: the rows equal the engine's ranking; failures leave no partial file."""
from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from engine.export import COLUMNS, write_ranked_csv
from engine.jobs import Cancelled
from engine.outputs import OutputRefused
from engine.session import RerankParams


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == COLUMNS
    return [dict(zip(COLUMNS, r, strict=True)) for r in rows[1:]]


def _check_against_loop(rows, distmat, scores, queries, gallery, query_indices, top_k, method,
                        camera_base=0):
    """Every row checked against a plain per-query loop over the gallery (cameras written as
    the 0-based index plus ``camera_base``)."""
    by_query: dict[str, list[dict]] = {}
    for r in rows:
        by_query.setdefault(r["query"], []).append(r)
    assert list(by_query) == [queries[i].path for i in query_indices]
    index_of = {s.path: j for j, s in enumerate(gallery)}
    for qi in query_indices:
        q = queries[qi]
        lst = by_query[q.path]
        count = len(gallery) if top_k is None else min(top_k, len(gallery))
        assert len(lst) == count
        sorted_distances = sorted(float(np.float32(distmat[qi, j])) for j in range(len(gallery)))
        previous = -np.inf
        seen = set()
        counted = 0  # the protocol's rank: junk is not counted and has no rank
        for position, r in enumerate(lst, start=1):
            j = index_of[r["gallery"]]
            g = gallery[j]
            if r["match"] == "junk":
                assert r["rank"] == ""
            else:
                counted += 1
                assert int(r["rank"]) == counted
            assert float(r["distance"]) == pytest.approx(float(distmat[qi, j]), abs=1e-7)
            assert float(r["distance"]) >= previous - 1e-9  # ascending
            assert float(r["distance"]) == pytest.approx(sorted_distances[position - 1], abs=1e-7)
            previous = float(r["distance"])
            assert float(r["score"]) == pytest.approx(float(scores[qi, j]), rel=1e-6, abs=1e-6)
            assert r["query_pid"] == str(q.pid) and r["query_cam"] == str(q.cam + camera_base)
            assert r["gallery_pid"] == str(g.pid) and r["gallery_cam"] == str(g.cam + camera_base)
            assert float(r["gallery_time"]) == pytest.approx(g.time)
            want = "false" if g.pid != q.pid else ("junk" if g.cam == q.cam else "true")
            assert r["match"] == want
            assert r["method"] == method
            seen.add(j)
        assert len(seen) == count


def test_csv_equals_the_engines_ranking(loaded, tmp_path):
    session = loaded.session
    distmat = session.distances(RerankParams(k1=10))
    scores = session.logits["qg"]
    queries, gallery = session.dataset.query, session.dataset.gallery
    path = tmp_path / "all.csv"
    n = write_ranked_csv(path, distmat, scores, queries, gallery, method="qaconv+rr")
    rows = _read(path)
    assert n == len(rows) == len(queries) * len(gallery)
    _check_against_loop(rows, distmat, scores, queries, gallery, range(len(queries)), None, "qaconv+rr")
    # Top-k of a subset, in the given order.
    path = tmp_path / "some.csv"
    write_ranked_csv(path, distmat, scores, queries, gallery, method="qaconv+rr", top_k=5,
                     query_indices=[7, 2])
    _check_against_loop(_read(path), distmat, scores, queries, gallery, [7, 2], 5, "qaconv+rr")


def _leftovers(folder):
    return [name for name in os.listdir(folder) if name.endswith(".tmp")]


def test_unwritable_paths_fail_cleanly(loaded, tmp_path):
    session = loaded.session
    args = (loaded.raw_distmat, session.logits["qg"], session.dataset.query, session.dataset.gallery)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputRefused, match="cannot write"):
        write_ranked_csv(blocker / "out.csv", *args, method="qaconv")
    folder = tmp_path / "existing_dir"
    folder.mkdir()
    with pytest.raises(OutputRefused, match="existing_dir"):
        write_ranked_csv(folder, *args, method="qaconv")
    assert os.listdir(folder) == [] and _leftovers(tmp_path) == []
    # A cancelled export leaves nothing either.
    target = tmp_path / "cancelled.csv"
    with pytest.raises(Cancelled):
        write_ranked_csv(target, *args, method="qaconv", cancel=lambda: True)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_export_from_the_window(qtbot, window, loaded, tmp_path):
    win, session = window, loaded.session
    win.postprocess.rerank.setChecked(True)
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None and not win.state.busy, timeout=20000)
    expected = session.distances(RerankParams())
    query = win.state.visible_queries()[3]
    win.state.select_query(query)
    path = tmp_path / "current.csv"
    with qtbot.waitSignal(win.controller.export_finished, timeout=20000) as blocker:
        win.controller.export(str(path), all_queries=False, top_k=win.state.top_k)
    assert blocker.args[1] == win.state.top_k
    rows = _read(path)
    _check_against_loop(rows, expected, session.logits["qg"], session.dataset.query,
                        session.dataset.gallery, [query], win.state.top_k, "qaconv+rr",
                        camera_base=1)  # the window exports Market's own c1.. numbers
    # The grid shows the same list as the file.
    assert [r["gallery"] for r in rows] == [
        session.dataset.gallery[item.gallery_index].path for item in win.grid.model_.items]

    with qtbot.waitSignal(win.controller.export_finished, timeout=20000):
        win.controller.export(str(tmp_path / "all.csv"), all_queries=True, top_k=None)
    _check_against_loop(_read(tmp_path / "all.csv"), expected, session.logits["qg"],
                        session.dataset.query, session.dataset.gallery,
                        range(len(session.dataset.query)), None, "qaconv+rr", camera_base=1)

    blocker_file = tmp_path / "blocker"
    blocker_file.write_text("x")
    with qtbot.waitSignal(win.controller.export_finished, timeout=20000) as blocker:
        win.controller.export(str(blocker_file / "x.csv"), all_queries=True, top_k=None)
    assert blocker.args[1] == -1
    qtbot.waitUntil(lambda: win.state.error is not None, timeout=5000)
    assert "cannot write" in win.state.error.message and win.banner.isVisible()
    assert not (blocker_file / "x.csv").exists()


# --------------------------------------------------------------------------- issue 19: inputs
def test_plot_and_match_view_exports_never_replace_the_sessions_inputs(qtbot, window, loaded,
                                                                      tmp_path):
    from pathlib import Path

    session = loaded.session
    checkpoint = Path(session.checkpoint)
    image = Path(session.dataset.gallery[0].path)
    protected = [checkpoint, checkpoint.with_suffix(".json"), image]
    before = {p: p.read_bytes() for p in protected}
    link = tmp_path / "link.png"
    link.symlink_to(image)
    alias = tmp_path / "alias.png"  # another name of a dataset image: the PNG branch
    os.link(image, alias)
    window.show_plots()
    dock = window.plots_dock
    qtbot.waitUntil(lambda: dock.plots_controller.plots.plots is not None, timeout=20_000)
    view = window.inspector.build()
    try:
        for path in [*protected, link, alias]:
            # the file dialogs' confirmation is no licence to replace an input
            with pytest.raises(OutputRefused, match="inputs|symbolic link"):
                dock.panel.export("cmc", str(path))
            assert not view.export_png(str(path), force=True)
        for path in protected:  # the ranked-list export: the same guard
            with qtbot.waitSignal(window.controller.export_finished, timeout=20000) as done:
                window.controller.export(str(path), all_queries=True, top_k=2)
            assert done.args[1] == -1
        assert {p: p.read_bytes() for p in protected} == before and link.is_symlink()
        dock.panel.export("roc", str(tmp_path / "roc.png"))  # an ordinary new file is written
        assert (tmp_path / "roc.png").read_bytes()[:4] == b"\x89PNG"
    finally:
        dock.shutdown()


def test_an_external_query_must_be_a_regular_file(window, tmp_path):
    fifo = tmp_path / "query.jpg"
    os.mkfifo(fifo)  # reading it would block the job for ever
    assert window.controller.add_external_query(str(fifo)) is None
    assert "not a regular file" in window.state.error.message
    assert not any("query.jpg" in w.name for w in window.controller.jobs.workers)


def test_screenshot_refuses_inputs_and_existing_files_before_loading(load_request, data_args,
                                                                     tmp_path, launch, capsys):
    from pathlib import Path

    checkpoint = Path(load_request.checkpoint)
    image = next((Path(load_request.data) / "query").iterdir())
    before = {p: p.read_bytes() for p in (checkpoint, checkpoint.with_suffix(".json"), image)}
    link = tmp_path / "link.png"
    link.symlink_to(checkpoint)
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    old = tmp_path / "old.png"
    old.write_bytes(b"keep")
    cases = [([str(checkpoint), "--inspect", "1", "--force"], "inputs"),
             ([str(checkpoint.with_suffix(".json")), "--force"], "inputs"),
             ([str(image), "--force"], "inputs"),
             ([str(link), "--force"], "symbolic link"),
             ([str(fifo), "--force"], "not a regular file"),
             ([str(old)], "--force")]
    for flags, named in cases:
        code = launch(*data_args, "--screenshot", *flags)
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if "error:" in line]
        assert code == 2 and len(errors) == 1 and named in errors[0], err
    assert {p: p.read_bytes() for p in before} == before and old.read_bytes() == b"keep"
