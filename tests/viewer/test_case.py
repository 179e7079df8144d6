"""Cases: a saved case holds its files and reopens to the same screen (query, marks, settings,
list); one made on another dataset or checkpoint is refused with a message and applies
nothing."""
from __future__ import annotations

import csv
import json

import pytest
from PIL import Image

from tests.viewer.conftest import grid_gallery_order
from viewer.case.state import CASE_FILE, SIGHTINGS_COLUMNS, check_case, read_case
from viewer.marks.state import DIFFERENT, SAME, FeedbackOverride


def _marked_window(qtbot, win):
    qtbot.waitUntil(lambda: win.state.marks is not None, timeout=10000)
    session = win.state.session
    q = next(q for q, s in enumerate(session.dataset.query)
             if ((session.gallery_pids == s.pid) & (session.gallery_cams != s.cam)).sum() >= 2)
    win.state.select_query(q)
    win.state.rerank_on = True
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None and not win.state.busy,
                    timeout=60000)
    hits = [int(g) for g in ((session.gallery_pids == session.dataset.query[q].pid)
                             & (session.gallery_cams != session.dataset.query[q].cam)).nonzero()[0]]
    wrong = next(it.gallery_index for it in win.state.results() if it.status == "false")
    for g, kind in ((hits[1], SAME), (wrong, DIFFERENT), (hits[0], SAME)):
        with qtbot.waitSignal(win.marks_ctl.refined, timeout=20000):
            win.marks_ctl.mark(q, g, kind)
    return q, [hits[1], hits[0]], wrong


def test_saved_case_reopens_to_the_same_screen(qtbot, window, refine_calls, tmp_path):
    win = window
    q, positives, wrong = _marked_window(qtbot, win)
    key = win.state.query_key(q)
    marks = win.state.marks.marks(key)
    order = grid_gallery_order(win)
    folder = tmp_path / "case"
    with qtbot.waitSignal(win.case_ctl.saved, timeout=30000) as saved:
        win.save_case(str(folder))
    assert saved.args == [str(folder)]

    record = json.loads((folder / CASE_FILE).read_text())
    assert record["query"]["file"] == win.state.query_sample(q).path
    assert record["settings"]["rerank"] is not None and record["settings"]["tlift"] is None
    assert [(m["index"], m["mark"], m["time"]) for m in record["marks"]] == \
        [(m.gallery, m.kind, m.time) for m in marks]
    with open(folder / "sightings.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == SIGHTINGS_COLUMNS
    assert rows[0]["mark"] == "query" and len(rows) == 1 + len(marks)
    gallery = win.state.session.dataset.gallery
    assert {r["file"]: r["mark"] for r in rows[1:]} == {gallery[m.gallery].path: m.kind for m in marks}
    shown = win.state.shown_ranking(q)
    for r in rows[1:]:
        g = next(m.gallery for m in marks if gallery[m.gallery].path == r["file"])
        assert r["rank"] == str(int(shown.ranks[shown.position_of(g)]) or "")
    times = [float(r["time"]) for r in rows[1:]]
    assert times == sorted(times)
    sheet = Image.open(folder / "contact_sheet.png")
    assert sheet.width > sheet.height  # query + 2 confirmed sightings side by side
    assert Image.open(folder / "path.png").size[0] > 200
    # The path view was drawn with its legs scored (the pair transits were waited for).
    path = win.path_dock.controller.model
    assert path.legs and all(0.0 <= leg.plausibility <= 1.0 for leg in path.legs)

    # Another screen: RR off, marks of the query cleared, another query selected.
    win.marks_ctl.clear_query(q)
    win.state.rerank_on = False
    qtbot.waitUntil(lambda: win.state.applied.rerank is None and not win.state.busy, timeout=60000)
    win.state.select_query((q + 1) % win.state.num_dataset_queries)

    assert win.open_case(str(folder))
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None and isinstance(
        win.state.override(q), FeedbackOverride) and win.state.override(q).settings
        == win.state.applied and not win.state.busy, timeout=60000)
    assert win.state.selected_query == q
    assert win.state.marks.marks(key) == marks
    assert grid_gallery_order(win) == order
    assert win.state.rerank_on
    # Saving over the same case folder replaces its files.
    with qtbot.waitSignal(win.case_ctl.saved, timeout=30000) as saved:
        win.save_case(str(folder))
    assert saved.args == [str(folder)]


@pytest.mark.parametrize("field", ["dataset", "checkpoint"])
def test_case_of_another_dataset_or_checkpoint_is_refused(qtbot, window, refine_calls, tmp_path,
                                                         field):
    win = window
    q, _positives, _wrong = _marked_window(qtbot, win)
    folder = tmp_path / "case"
    with qtbot.waitSignal(win.case_ctl.saved, timeout=30000):
        win.save_case(str(folder))
    record = json.loads((folder / CASE_FILE).read_text())
    record[field]["digest"] = "0" * 32
    (folder / CASE_FILE).write_text(json.dumps(record))
    before = win.state.marks.marks(win.state.query_key(q))
    win.marks_ctl.clear_query(q)
    assert not win.open_case(str(folder))
    assert win.state.error is not None and f"another {field}" in win.state.error.message
    assert win.state.marks.marks(win.state.query_key(q)) == ()
    assert before  # the case had marks; none were applied


def test_read_case_refuses_damage_and_moved_images():
    with pytest.raises(ValueError, match="version"):
        read_case({"version": 99})
    with pytest.raises(ValueError, match="damaged"):
        read_case({"version": 1, "settings": {}})
    good = {"version": 1, "dataset": {"digest": "d"}, "checkpoint": {"digest": "c"},
            "query": {"file": "/q.jpg"}, "settings": {"rerank": None, "tlift": None},
            "marks": [{"gallery": "/g1.jpg", "index": 1, "mark": "same", "time": 1.0}]}
    case = read_case(good)
    assert check_case(case, dataset="d", checkpoint="c", query_paths=["/x.jpg", "/q.jpg"],
                      gallery_paths=["/g0.jpg", "/g1.jpg"]) == 1
    with pytest.raises(ValueError, match="not in the open gallery"):
        check_case(case, dataset="d", checkpoint="c", query_paths=["/q.jpg"],
                   gallery_paths=["/g1.jpg", "/g0.jpg"])
    with pytest.raises(ValueError, match="queries"):
        check_case(case, dataset="d", checkpoint="c", query_paths=["/x.jpg"],
                   gallery_paths=["/g0.jpg", "/g1.jpg"])
