"""The occlusion dock on the tiny set: the square's ranking (mouse and keyboard) against the
engine's ranking of the same occluded image computed here, previews, RR, the sensitivity
map, cancel, and that only the GUI thread touches the state the widgets draw."""
from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from engine.data import read_image_rgb
from engine.data.transforms import RandomOcclusion, resize
from engine.explain.occlusion import occlude, preview_rng, sensitivity_map
from engine.postprocess.pipeline import final_distances
from tests.viewer.conftest import grid_gallery_order
from viewer.occlusion.view import KEY_STEP


@pytest.fixture
def panel(qtbot, window):
    """The window with its occlusion dock open on a query that has a true match."""
    win = window
    session = win.state.session
    q = next(q for q, s in enumerate(session.dataset.query)
             if ((session.gallery_pids == s.pid) & (session.gallery_cams != s.cam)).any())
    win.state.select_query(q)
    win.occlusion.show()
    occ = win.occlusion.controller
    qtbot.waitUntil(lambda: occ.state.image is not None and len(occ.state.previews) == 3,
                    timeout=20000)
    gui = threading.current_thread()
    calls = []

    def record(_value=None):
        calls.append(threading.current_thread() is gui)

    for name in occ.state.events:
        occ.state.events[name].connect(record)
    win.state.events.overrides.connect(record)
    yield win, occ
    assert calls and all(calls), "the panel's state was changed off the GUI thread"


def _expected_rows(session, image, occluded, rerank=None):
    """Distances [g] of the unoccluded and occluded image, by the engine, one image at a time."""
    rows = []
    for img in (image, occluded):
        maps = session.maps_for_image(img)[None]
        logits = session.score_maps(maps)
        if rerank is None:
            rows.append(final_distances(logits)[0])
        else:
            self_logit = session.model.score(maps, maps, device="cpu")
            rows.append(final_distances(logits, self_logit, session.logits["gg"], rerank=rerank)[0])
    return rows


def _assert_grid_shows(win, before, after):
    order = grid_gallery_order(win)
    k = min(win.state.top_k, len(after))
    assert len(order) == k
    np.testing.assert_allclose(after[order], np.sort(after)[:k], atol=1e-6)
    session, query = win.state.session, win.state.query_sample(win.state.selected_query)
    junk = (session.gallery_pids == query.pid) & (session.gallery_cams == query.cam)
    before_rank = {}  # ranks of the unoccluded image's list, junk not counted
    for g in np.argsort(before.astype(np.float32)):
        if not junk[g]:
            before_rank[int(g)] = len(before_rank) + 1
    for item in win.grid.model_.items:
        want = None if junk[item.gallery_index] else before_rank[item.gallery_index] - item.rank
        assert item.movement == want


def test_dragging_the_square_ranks_the_occluded_query(qtbot, panel):
    win, occ = panel
    session, query = win.state.session, win.state.selected_query
    image = read_image_rgb(session.dataset.query[query].path)
    raw_order = grid_gallery_order(win)
    canvas = win.occlusion.panel.canvas
    # A mouse drag ends with the ROI's "finished" signal: emit it as a release does.
    with qtbot.waitSignal(occ.rank_finished, timeout=20000) as blocker:
        canvas.roi.setSize((30, 30), finish=False)
        canvas.roi.setPos((10, 20), finish=True)
    assert blocker.args == [True]
    assert occ.state.box == (10, 20, 30, 30)
    before, after = _expected_rows(session, image, occlude(image, (10, 20, 30, 30)))
    _assert_grid_shows(win, before, after)
    assert "→" in win.occlusion.panel.numbers.text()
    titles = [label.text() for label in win.findChildren(QLabel, "title")]
    assert any(t.startswith("Occluded (square)") for t in titles)

    # Keyboard: the arrow moves the square (not the result selection) and, after a pause, ranks.
    canvas.view.setFocus()
    selected = win.state.selected_item().gallery_index
    with qtbot.waitSignal(occ.rank_finished, timeout=20000):
        qtbot.keyClick(canvas.view, Qt.Key.Key_Right)
    assert win.state.selected_item().gallery_index == selected
    assert occ.state.box == (10 + KEY_STEP, 20, 30, 30)
    before, after = _expected_rows(session, image, occlude(image, occ.state.box))
    _assert_grid_shows(win, before, after)

    # Another fill re-ranks the same square with it.
    with qtbot.waitSignal(occ.rank_finished, timeout=20000):
        win.occlusion.panel.fill.setCurrentIndex(win.occlusion.panel.fill.findData("zeros"))
    before, after = _expected_rows(session, image, occlude(image, occ.state.box, "zeros"))
    _assert_grid_shows(win, before, after)

    win.occlusion.panel.reset_button.click()
    assert win.state.overrides == {}
    assert grid_gallery_order(win) == raw_order


def test_previews_are_the_transforms_and_rank_with_one_click(qtbot, panel):
    win, occ = panel
    session = win.state.session
    image = read_image_rgb(session.dataset.query[win.state.selected_query].path)
    base = resize(image, session.prep.height, session.prep.width)
    expected, (top, left, h, w) = RandomOcclusion().apply(base, preview_rng(occ.state.preview_seed, 0))
    assert occ.state.previews[0].box == (left, top, w, h)
    with qtbot.waitSignal(occ.rank_finished, timeout=20000):
        win.occlusion.panel.tiles[0].click()
    assert win.state.override(win.state.selected_query).source == "random_occlusion"
    before, after = _expected_rows(session, image, expected)
    _assert_grid_shows(win, before, after)

    seed = occ.state.preview_seed
    win.occlusion.panel.new_sample.click()
    qtbot.waitUntil(lambda: occ.state.preview_seed == seed + 1 and
                    occ.state.previews[0].box != (left, top, w, h), timeout=20000)


def test_with_rerank_the_occluded_query_is_reranked_alone(qtbot, panel):
    win, occ = panel
    session = win.state.session
    image = read_image_rgb(session.dataset.query[win.state.selected_query].path)
    with qtbot.waitSignal(occ.rank_finished, timeout=20000):
        occ.apply_square()
    # Switching RR on ranks the occluded query again, the new way.
    with qtbot.waitSignal(occ.rank_finished, timeout=30000):
        win.postprocess.rerank.setChecked(True)
    assert win.state.applied.rerank is not None
    rr = {"k1": 20, "k2": 6, "lambda_value": 0.3}
    before, after = _expected_rows(session, image, occlude(image, occ.state.box), rerank=rr)
    _assert_grid_shows(win, before, after)
    assert "re-ranking" in win.occlusion.panel.note.text()
    with qtbot.waitSignal(occ.rank_finished, timeout=30000):
        win.postprocess.tlift.setChecked(True)
    assert "TLift is not applied" in win.occlusion.panel.note.text()


def test_sensitivity_map_and_cancel(qtbot, panel):
    win, occ = panel
    session = win.state.session
    image = read_image_rgb(session.dataset.query[win.state.selected_query].path)
    item = win.state.selected_item()
    with qtbot.waitSignal(occ.sensitivity_finished, timeout=30000) as blocker:
        win.occlusion.panel.compute.click()
    assert blocker.args == [True]
    result = occ.state.sensitivity
    assert (result.side, result.stride) == (21, 10)  # a third of the 64 px crop, half of that
    np.testing.assert_allclose(result.values, sensitivity_map(session, image, item.gallery_index),
                               atol=1e-4)
    assert win.occlusion.panel.canvas.heat.isVisible()

    # A long map (side 4, stride 1: thousands of positions) cancelled from the panel.
    win.occlusion.panel.side.setValue(4)
    win.occlusion.panel.stride.setValue(1)
    with qtbot.waitSignal(occ.sensitivity_finished, timeout=30000) as blocker:
        win.occlusion.panel.compute.click()
        qtbot.waitUntil(lambda: occ.state.sens_progress not in (None, (0, 0)), timeout=20000)
        win.occlusion.panel.cancel.click()
    assert blocker.args == [False]
    assert occ.state.running == "" and occ.state.sensitivity is result
    assert win.occlusion.panel.compute.isEnabled()
    # The window is still usable: the square ranks.
    with qtbot.waitSignal(occ.rank_finished, timeout=20000) as blocker:
        occ.apply_square()
    assert blocker.args == [True]

    # The rank mode gives first-true-match rank changes.
    win.occlusion.panel.mode.setCurrentIndex(win.occlusion.panel.mode.findData("rank"))
    win.occlusion.panel.side.setValue(0)
    win.occlusion.panel.stride.setValue(0)
    with qtbot.waitSignal(occ.sensitivity_finished, timeout=30000):
        win.occlusion.panel.compute.click()
    assert occ.state.sensitivity.mode == "rank"
    assert "first true match" in win.occlusion.panel.sens_text.text()


def test_enter_on_an_occluded_ranking_inspects_the_occluded_copy(qtbot, panel):
    """The inspector opened from an occluded ranking matches the occluded image, not the query."""
    win, occ = panel
    session, query = win.state.session, win.state.selected_query
    image = read_image_rgb(session.dataset.query[query].path)
    with qtbot.waitSignal(occ.rank_finished, timeout=20000):
        win.occlusion.panel.canvas.roi.setSize((30, 30), finish=False)
        win.occlusion.panel.canvas.roi.setPos((10, 20), finish=True)
    override = win.state.override(query)
    assert override is not None and override.maps is not None
    item = win.state.selected_item()
    win.inspector_ctl.open()
    qtbot.waitUntil(win.inspector_ctl.is_ready, timeout=20000)
    ins = win.inspector_ctl.inspector
    assert ins.pair == (query, item.gallery_index)
    # Its logit is the occluded copy's score against that gallery image, as the grid shows it.
    occluded_maps = session.maps_for_image(occlude(image, (10, 20, 30, 30)))[None]
    expected = session.score_maps(occluded_maps)[0, item.gallery_index]
    original = session.logits["qg"][query, item.gallery_index]
    assert abs(ins.correspondence.logit - expected) < 1e-3 and abs(expected - original) > 1e-4
    view = win.inspector.build()
    np.testing.assert_array_equal(view.photos["probe"].image, override.image)
    assert "occluded" in view.captions["probe"].textItem.toPlainText()
    scored = [s for s in ins.scores if s.value is not None]
    assert len(scored) == 1   # ranked once; the other methods say so
    value = override.score_row if scored[0].method == "raw" else override.dist_row
    assert abs(scored[0].value - value[item.gallery_index]) < 1e-6
    assert all("occluded copy" in s.note for s in ins.scores if s.value is None)
    # Back to the query's own ranking: the inspector follows.
    win.occlusion.panel.reset_button.click()
    qtbot.waitUntil(win.inspector_ctl.is_ready, timeout=20000)
    assert abs(ins.correspondence.logit - original) < 1e-3


def test_rank_change_map_agrees_with_the_square_placed_by_hand(qtbot, panel):
    """A cell of the rank-change map, with the panel's fill and RR on, equals ranking the query
    with the square dragged onto the same box; the map's title names the fill and the ranking."""
    from engine.explain.occlusion import square_boxes

    win, occ = panel
    win.postprocess.rerank.setChecked(True)
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None, timeout=30000)
    panel_ = win.occlusion.panel
    panel_.fill.setCurrentIndex(panel_.fill.findData("noise"))
    panel_.mode.setCurrentIndex(panel_.mode.findData("rank"))
    with qtbot.waitSignal(occ.sensitivity_finished, timeout=60000):
        panel_.compute.click()
    result = occ.state.sensitivity
    assert result.fill == "noise" and "noise" in panel_.sens_text.text()
    assert "qaconv+rr" in panel_.sens_text.text()
    h, w = occ.state.image.shape[:2]
    boxes = square_boxes(h, w, result.side, result.stride)
    cell = int(np.argmax(np.abs(result.values).ravel()))     # where the square matters most
    occ.state.box = boxes[cell]
    with qtbot.waitSignal(occ.rank_finished, timeout=30000):
        occ.apply_square()
    override = win.state.override(win.state.selected_query)
    assert override.before.first_hit_rank == result.before_rank
    assert override.ranking.first_hit_rank == result.before_rank + result.values.ravel()[cell]


def test_the_sensitivity_map_is_cleared_when_its_fill_or_ranking_changes(qtbot, panel):
    """A map is shown only under the settings it was made with: its fill, and for the rank
    change its ranking (re-ranking on or off); the logit map does not depend on re-ranking."""
    win, occ = panel
    p = win.occlusion.panel

    def compute(mode: str):
        p.mode.setCurrentIndex(p.mode.findData(mode))
        with qtbot.waitSignal(occ.sensitivity_finished, timeout=30000) as blocker:
            p.compute.click()
        assert blocker.args == [True] and occ.state.sensitivity.mode == mode
        assert p.canvas.heat.isVisible() and p.sens_text.text()
        return occ.state.sensitivity

    def assert_cleared(message="Sensitivity map cleared"):
        assert occ.state.sensitivity is None and occ.state.running == ""
        assert not p.canvas.heat.isVisible() and p.sens_text.text() == ""
        assert win.statusBar().currentMessage().startswith(message)

    logit_map = compute("logit")
    win.postprocess.rerank.setChecked(True)
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None, timeout=60000)
    assert occ.state.sensitivity is logit_map   # QAConv logits: the same with or without RR
    p.fill.setCurrentIndex(p.fill.findData("noise"))
    assert_cleared()

    rank_map = compute("rank")
    assert rank_map.fill == "noise" and "+rr" in rank_map.ranking
    win.postprocess.rerank.setChecked(False)
    qtbot.waitUntil(lambda: win.state.applied.rerank is None, timeout=60000)
    assert_cleared()
    # One being computed when the fill changes is stopped, and nothing stale arrives after.
    p.mode.setCurrentIndex(p.mode.findData("logit"))
    p.side.setValue(4)
    p.stride.setValue(1)
    p.compute.click()
    qtbot.waitUntil(lambda: occ.state.sens_progress not in (None, (0, 0)), timeout=20000)
    with qtbot.waitSignal(occ.sensitivity_finished, timeout=30000) as blocker:
        p.fill.setCurrentIndex(p.fill.findData("white"))
    assert blocker.args == [False]
    assert_cleared("sensitivity map: cancelled")
