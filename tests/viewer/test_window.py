"""The main window on a tiny synthetic set: grid order, RR/TLift toggles, browser, keyboard,
external queries, errors and cancel. RR and TLift expectations are computed here from the
session's logits with ``re_rank`` / ``tlift`` called directly."""
from __future__ import annotations

import copy
import csv
import dataclasses
import math
import shutil
import threading

import numpy as np
from PySide6.QtCore import Qt

from engine.jobs import check_cancel
from engine.postprocess.rerank import re_rank
from engine.postprocess.tlift import tlift
from tests.viewer.conftest import distance_from_logits, grid_gallery_order, reversed_override
from viewer.state import PostSettings
from viewer.tasks import Loaded


def _assert_grid_follows(win, query: int, expected_row: np.ndarray) -> None:
    """The grid lists the top-k of ``expected_row`` in ascending order (ties within 1e-6)."""
    order = grid_gallery_order(win)
    k = min(win.state.top_k, len(expected_row))
    assert len(order) == k
    assert len(set(order)) == k
    np.testing.assert_allclose(expected_row[order], np.sort(expected_row)[:k], atol=1e-6)


def _wait_applied(qtbot, win, predicate) -> None:
    qtbot.waitUntil(lambda: predicate(win.state.applied) and not win.state.busy, timeout=20000)


def test_query_click_shows_the_top_k_in_engine_order(qtbot, window, loaded):
    win = window
    win.state.top_k = 9
    for row in (0, 3, 5):
        index = win.browser.list.model_.index(row)
        rect = win.browser.list.visualRect(index)
        win.browser.list.scrollTo(index)
        rect = win.browser.list.visualRect(index)
        qtbot.mouseClick(win.browser.list.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        query = win.browser.list.model_.queries[row]
        assert win.state.selected_query == query
        _assert_grid_follows(win, query, loaded.raw_distmat[query])
        assert grid_gallery_order(win) == list(np.argsort(loaded.raw_distmat[query])[:9])
    # State -> widget: selecting in the state moves the list's current row.
    last = win.state.visible_queries()[-1]
    win.state.select_query(last)
    assert win.browser.list.model_.queries[win.browser.list.currentIndex().row()] == last


def test_rerank_toggle_gives_the_order_of_re_rank(qtbot, window, loaded):
    win, session = window, loaded.session
    win.state.top_k = 15
    win.state.select_query(2)
    win.postprocess.rerank.setChecked(True)
    assert win.state.rerank_on
    _wait_applied(qtbot, win, lambda a: a.rerank is not None)
    d = {name: distance_from_logits(session.logits[name]) for name in ("qg", "qq", "gg")}
    expected = re_rank(d["qg"], d["qq"], d["gg"], k1=20, k2=6, lambda_value=0.3)
    _assert_grid_follows(win, 2, expected[2])
    query = session.dataset.query[2]
    raw_ranks = {}  # the raw list's ranks, junk (same identity and camera) not counted
    for g in np.argsort(loaded.raw_distmat[2]):
        if (session.gallery_pids[g], session.gallery_cams[g]) != (query.pid, query.cam):
            raw_ranks[int(g)] = len(raw_ranks) + 1
    for item in win.grid.model_.items:  # in ranks, junk not counted (and without an arrow)
        want = None if item.status == "junk" else raw_ranks[item.gallery_index] - item.rank
        assert item.movement == want

    # A parameter change recomputes with it.
    win.postprocess.rerank.spins["k1"].setValue(8)
    _wait_applied(qtbot, win, lambda a: a.rerank is not None and a.rerank.k1 == 8)
    expected = re_rank(d["qg"], d["qq"], d["gg"], k1=8, k2=6, lambda_value=0.3)
    _assert_grid_follows(win, 2, expected[2])
    assert win.metrics.method.text() == "qaconv+rr"

    # Off again: back to the raw order, without arrows.
    win.postprocess.rerank.setChecked(False)
    _wait_applied(qtbot, win, lambda a: a.is_raw)
    _assert_grid_follows(win, 2, loaded.raw_distmat[2])
    assert all(item.movement is None for item in win.grid.model_.items)


def test_tlift_toggle_gives_the_order_of_tlift(qtbot, window, loaded):
    win, session = window, loaded.session
    ds = session.dataset
    q_cams = np.array([s.cam for s in ds.query])
    g_cams = np.array([s.cam for s in ds.gallery])
    q_times = np.array([s.time for s in ds.query], np.float64)
    g_times = np.array([s.time for s in ds.gallery], np.float64)
    win.state.top_k = 15
    win.state.select_query(4)
    assert win.postprocess.tlift.isEnabled() and win.postprocess.tlift_reason.isHidden()
    win.postprocess.tlift.setChecked(True)
    _wait_applied(qtbot, win, lambda a: a.tlift is not None and a.rerank is None)
    # Without RR, TLift lifts each query's similarity relative to its best, exp((s - max) / std).
    sim = 1.0 - distance_from_logits(session.logits["qg"])
    relative = np.exp((sim - sim.max(axis=1, keepdims=True)) / sim.std(axis=1, keepdims=True))
    lifted = tlift(relative, q_cams, q_times, g_cams, g_times,
                   tau=100.0, sigma=200.0, k=10, alpha=0.2)
    _assert_grid_follows(win, 4, 1.0 - lifted[4])

    win.postprocess.rerank.setChecked(True)
    _wait_applied(qtbot, win, lambda a: a.tlift is not None and a.rerank is not None)
    d = {name: distance_from_logits(session.logits[name]) for name in ("qg", "qq", "gg")}
    d_rr = re_rank(d["qg"], d["qq"], d["gg"], k1=20, k2=6, lambda_value=0.3)
    lifted = tlift(1.0 - d_rr, q_cams, q_times, g_cams, g_times, tau=100.0, sigma=200.0, k=10, alpha=0.2)
    _assert_grid_follows(win, 4, 1.0 - lifted[4])
    assert "rr+tlift" in win.postprocess.showing.text()


def test_tlift_is_disabled_with_a_reason_without_timestamps(qtbot, window, loaded):
    win = window
    session = copy.copy(loaded.session)
    ds = session.dataset
    session.dataset = dataclasses.replace(ds, query=[s._replace(time=None) for s in ds.query],
                                          gallery=[s._replace(time=None) for s in ds.gallery])
    win.controller._loaded(Loaded(session, loaded.raw_distmat, loaded.raw_metrics))
    assert not win.postprocess.tlift.isEnabled()
    assert not win.postprocess.tlift_reason.isHidden()
    assert "timestamps" in win.postprocess.tlift_reason.text()
    win.state.tlift_on = True  # even if asked for, nothing is computed
    assert win.state.requested_settings().tlift is None


def test_browser_filters_and_sort_through_the_widgets(qtbot, window, loaded):
    win = window
    queries = loaded.session.dataset.query
    pid = queries[7].pid
    qtbot.keyClicks(win.browser.filters.pid, str(pid))
    assert win.state.filter_pid == str(pid)
    shown = win.browser.list.model_.queries
    assert shown and all(queries[q].pid == pid for q in shown)
    assert win.browser.count.text().startswith(f"{len(shown)} of ")
    win.browser.filters.pid.clear()
    cam_index = 2
    win.browser.filters.camera.setCurrentIndex(cam_index)
    cam = win.browser.filters.camera.itemData(cam_index)
    assert win.state.filter_cam == cam
    assert all(queries[q].cam == cam for q in win.browser.list.model_.queries)
    win.state.filter_cam = None  # state -> widget
    assert win.browser.filters.camera.currentIndex() == 0
    win.browser.filters.sort.setCurrentIndex(win.browser.filters.sort.findData("ap"))
    assert win.state.sort_key == "ap"
    aps = [win.state.query_ap(q) for q in win.browser.list.model_.queries]
    finite = [a for a in aps if a == a]
    assert finite == sorted(finite)


def test_keyboard_navigation(qtbot, window, loaded):
    win = window
    visible = win.state.visible_queries()
    win.state.select_query(visible[0])
    win.grid.setFocus()
    qtbot.keyClick(win.grid, Qt.Key.Key_Down)
    assert win.state.selected_query == visible[1]
    qtbot.keyClick(win.grid, Qt.Key.Key_J)
    assert win.state.selected_query == visible[2]
    qtbot.keyClick(win.grid, Qt.Key.Key_K)
    assert win.state.selected_query == visible[1]
    qtbot.keyClick(win.grid, Qt.Key.Key_Right)
    qtbot.keyClick(win.grid, Qt.Key.Key_Right)
    assert win.state.selected_item().rank == 3  # results #1 to #3, junk stepped over
    assert win.grid.currentIndex().row() == win.state.selected_result
    qtbot.keyClick(win.grid, Qt.Key.Key_Left)
    expected_gallery = win.state.selected_item().gallery_index
    assert win.state.selected_item().rank == 2
    with qtbot.waitSignal(win.controller.match_requested, timeout=2000) as blocker:
        qtbot.keyClick(win.grid, Qt.Key.Key_Return)
    assert blocker.args == [visible[1], expected_gallery]
    # Typing in a text field types; it does not navigate.
    qtbot.keyClicks(win.browser.filters.name, "jk")
    assert win.browser.filters.name.text() == "jk"
    assert win.state.selected_query == visible[1]


def test_external_image_query(qtbot, window, loaded, tmp_path):
    win, session = window, loaded.session
    source = session.dataset.gallery[3].path
    path = tmp_path / "someone.jpg"
    shutil.copy(source, path)
    before = win.state.num_queries
    win.controller.add_external_query(str(path))
    qtbot.waitUntil(lambda: win.state.num_queries == before + 1 and not win.state.busy, timeout=20000)
    query = win.state.selected_query
    assert win.state.is_extra(query)
    assert win.browser.list.model_.queries[0] == query  # external images are listed first
    items = win.grid.model_.items
    assert items and all(item.status == "" for item in items)  # no right/wrong marks
    logits = session.score_maps(session.maps_for_image(str(path))[None])[0]
    _assert_grid_follows(win, query, distance_from_logits(logits))
    assert "no right/wrong" in win.header.note_text
    # Re-ranking covers the external query too (alone as the query set).
    win.postprocess.rerank.setChecked(True)
    _wait_applied(qtbot, win, lambda a: a.rerank is not None)
    d_qg = distance_from_logits(logits)[None]
    d_self = distance_from_logits(np.asarray(
        session.model.score(session.maps_for_image(str(path))[None],
                            session.maps_for_image(str(path))[None], device=session.device)))
    expected = re_rank(d_qg, d_self, distance_from_logits(session.logits["gg"]))
    win.state.select_query(query)
    _assert_grid_follows(win, query, expected[0])


def test_a_non_image_query_shows_an_error_and_loses_nothing(qtbot, window, tmp_path):
    win = window
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    before, selected = win.state.num_queries, win.state.selected_query
    win.controller.add_external_query(str(bad))
    qtbot.waitUntil(lambda: win.state.error is not None and not win.state.busy, timeout=20000)
    assert win.state.error is not None and "notes.jpg" in win.state.error.message
    assert win.banner.isVisible() and "not a readable image" in win.banner.text.text()
    assert win.state.num_queries == before and win.state.selected_query == selected
    qtbot.mouseClick(win.banner.dismiss_button, Qt.MouseButton.LeftButton)
    assert not win.banner.isVisible()


def test_a_failing_job_shows_its_error_and_the_window_stays_usable(qtbot, window, loaded, monkeypatch):
    win = window
    import viewer.controller as controller_module

    def broken(*args, progress, cancel, **_kwargs):
        raise RuntimeError("out of memory while re-ranking (simulated)")

    monkeypatch.setattr(controller_module, "compute_distances", broken)
    win.postprocess.rerank.setChecked(True)
    qtbot.waitUntil(lambda: win.state.error is not None and not win.state.busy, timeout=10000)
    assert "simulated" in win.banner.text.text() and win.banner.isVisible()
    assert "RuntimeError" in win.banner.details.toPlainText()
    assert not win.state.rerank_on and not win.postprocess.rerank.isChecked()  # toggles put back
    assert win.state.applied.is_raw
    # Still usable: navigation works and the next recomputation succeeds.
    visible = win.state.visible_queries()
    win.state.select_query(visible[1])
    _assert_grid_follows(win, visible[1], loaded.raw_distmat[visible[1]])
    monkeypatch.undo()
    win.postprocess.rerank.setChecked(True)
    _wait_applied(qtbot, win, lambda a: a.rerank is not None)


def test_cancelling_a_job_keeps_the_current_results(qtbot, window, monkeypatch):
    win = window
    import viewer.controller as controller_module

    started = threading.Event()

    def endless(*args, progress, cancel, **_kwargs):
        started.set()
        while True:
            check_cancel(cancel)
            progress("post-process", 1, 100)
            threading.Event().wait(0.01)

    monkeypatch.setattr(controller_module, "compute_distances", endless)
    win.postprocess.tlift.setChecked(True)
    qtbot.waitUntil(lambda: started.is_set() and win.job_progress.isVisible(), timeout=10000)
    qtbot.mouseClick(win.job_progress.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not win.state.busy, timeout=10000)
    assert not win.state.tlift_on and win.state.applied == PostSettings()
    assert win.state.error is None
    assert not win.job_progress.isVisible()


def test_load_job_and_bad_inputs(qtbot, loaded, load_request, tmp_path):
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    win.show()
    assert win.pages.currentIndex() == 0  # the loading page first
    with qtbot.waitSignal(win.controller.load_finished, timeout=60000) as blocker:
        win.start_load(load_request)
    assert blocker.args == [True]
    assert win.pages.currentIndex() == 1 and win.grid.model_.rowCount() == win.state.top_k
    assert "device: cpu" in win.status_info.device.text()
    assert "cache: all" in win.status_info.cache.text()  # `loaded` filled the cache
    shown = win.state.selected_query

    empty = tmp_path / "not_a_dataset"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00" * 64)
    # A real checkpoint whose weights do not fit the model its settings describe.
    from engine.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(load_request.checkpoint)
    misfit = tmp_path / "misfit.pt"
    save_checkpoint(misfit, {**state, "config": {**state["config"], "neck": 16}})
    cases = [
        (dataclasses.replace(load_request, data=str(empty)), "layout"),
        (dataclasses.replace(load_request, checkpoint=str(garbage)), "checkpoint"),
        (dataclasses.replace(load_request, checkpoint=str(misfit)), "does not fit"),
    ]
    import torch

    if not torch.cuda.is_available():  # with a GPU this loads (tests/viewer/test_cuda_viewer.py)
        cases.append((dataclasses.replace(load_request, device="cuda"), "CUDA"))
    for request, word in cases:
        with qtbot.waitSignal(win.controller.load_finished, timeout=60000) as blocker:
            win.start_load(request)
        assert blocker.args == [False]
        assert win.banner.isVisible() and word.lower() in win.state.error.message.lower()
        # Nothing lost: the loaded session stays on screen.
        assert win.pages.currentIndex() == 1 and win.state.selected_query == shown
        win.state.error = None
    win.close()
    from tests.viewer.conftest import assert_no_job_running

    assert_no_job_running(win.controller)


def test_scrolling_to_the_end_shows_more_results(qtbot, window, loaded):
    win = window
    win.state.top_k = 24
    bar = win.grid.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0, timeout=5000)
    bar.setValue(bar.maximum())
    assert win.state.top_k == 48 and win.display.top_k.value() == 48
    assert win.statusBar().currentMessage() == ("Top-k raised from 24 to 48 by scrolling past "
                                                "the last result")
    assert win.grid.model_.rowCount() == 48
    assert grid_gallery_order(win) == list(np.argsort(loaded.raw_distmat[win.state.selected_query])[:48])


def test_ctrl_e_and_ctrl_o_shortcuts(qtbot, window, loaded, tmp_path, monkeypatch):
    import viewer.main_window as main_window_module
    from viewer.widgets.export_dialog import ExportChoice

    win = window
    target = tmp_path / "shortcut.csv"

    class FakeDialog:
        def __init__(self, top_k, default_path, parent=None, last=None):
            self.top_k = top_k

        def exec(self):
            return 1

        def choice(self):
            return ExportChoice(path=str(target), all_queries=False, top_k=self.top_k)

    monkeypatch.setattr(main_window_module, "ExportDialog", FakeDialog)
    win.activateWindow()
    win.grid.setFocus()
    with qtbot.waitSignal(win.controller.export_finished, timeout=20000) as blocker:
        qtbot.keyClick(win.grid, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert blocker.args == [str(target), win.state.top_k] and target.is_file()

    image = tmp_path / "q.jpg"
    shutil.copy(loaded.session.dataset.gallery[0].path, image)
    monkeypatch.setattr(main_window_module.QFileDialog, "getOpenFileName",
                        staticmethod(lambda *a, **k: (str(image), "")))
    before = win.state.num_queries
    qtbot.keyClick(win.grid, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: win.state.num_queries == before + 1 and not win.state.busy, timeout=20000)


def test_an_image_added_while_settings_change_is_ranked_for_the_new_settings(qtbot, window, loaded,
                                                                             tmp_path):
    win, session = window, loaded.session
    path = tmp_path / "racing.jpg"
    shutil.copy(session.dataset.gallery[5].path, path)
    win.postprocess.rerank.setChecked(True)        # recomputation starts...
    win.controller.add_external_query(str(path))   # ...and the image is scored beside it
    query = win.state.num_dataset_queries
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None and not win.state.busy
                    and win.state.num_queries == query + 1, timeout=20000)
    win.state.select_query(query)
    maps = session.maps_for_image(str(path))[None]
    d_qg = distance_from_logits(session.score_maps(maps))
    d_self = distance_from_logits(np.asarray(session.model.score(maps, maps, device=session.device)))
    expected = re_rank(d_qg, d_self, distance_from_logits(session.logits["gg"]))
    _assert_grid_follows(win, query, expected[0])


def test_the_title_header_grid_and_export_read_the_current_querys_override(qtbot, window, loaded,
                                                                        tmp_path):
    win, state, session = window, window.state, loaded.session
    a = next(q for q in state.visible_queries()
             if not math.isnan(state.ranking(q).ap) and q < state.num_dataset_queries)
    b = next(q for q in state.visible_queries() if q != a)
    state.select_query(a)
    override = reversed_override(state, loaded, a)
    state.set_override(a, override)
    order = [int(g) for g in override.ranking.order[:state.top_k]]
    assert grid_gallery_order(win) == order
    assert np.all(np.diff(override.dist_row[order]) >= 0)  # nearest first by its distances
    assert win.results_title.text() == "Farthest first"
    numbers = win.header.numbers.text()
    assert f"AP {override.ranking.ap:.3f}" in numbers and "list shown" in numbers
    # Another query shows its own list; coming back shows the override again.
    state.select_query(b)
    assert win.results_title.text() == "Ranked gallery" and "list shown" not in win.header.numbers.text()
    state.select_query(a)
    assert win.results_title.text() == "Farthest first" and grid_gallery_order(win) == order
    path = tmp_path / "shown.csv"
    with qtbot.waitSignal(win.controller.export_finished, timeout=20000) as blocker:
        win.controller.export(str(path), all_queries=False, top_k=5)
    assert blocker.args[1] == 5
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["gallery"] for r in rows] == [session.dataset.gallery[g].path for g in order[:5]]
    assert all(r["query"] == session.dataset.query[a].path for r in rows)
    assert all(r["method"] == "qaconv (list shown)" for r in rows)
