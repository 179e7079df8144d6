"""Relevance-feedback marks in the viewer: the mark book (order, clearing, files keyed by the
dataset and checkpoint), marks by key and menu re-ranking the list in a background job, marks
surviving the RR toggle and a relaunch, and the CSV's mark column.

``engine.feedback.refine`` is replaced by the stand-in of conftest's ``refine_calls``.
"""
from __future__ import annotations

import csv

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine.export import COLUMNS
from tests.viewer.conftest import grid_gallery_order
from viewer.marks.state import DIFFERENT, SAME, FeedbackOverride, MarkBook, marks_file

GALLERY = [f"/g/{i}.jpg" for i in range(6)]


# ---------------------------------------------------------------------- the mark book
def test_book_keeps_the_order_of_marking_and_clears():
    book = MarkBook("d", "c")
    assert book.set("q", 3, SAME, 1.0) and book.set("q", 1, DIFFERENT, 2.0)
    assert book.set("q", 0, SAME, 3.0)
    assert not book.set("q", 3, SAME, 4.0)           # the same mark again: nothing changes
    assert book.positives("q") == [3, 0] and book.negatives("q") == [1]
    assert book.set("q", 3, DIFFERENT, 5.0)           # changed: takes the end of the order
    assert book.positives("q") == [0] and book.negatives("q") == [1, 3]
    assert book.set("q", 1, None, 6.0) and book.kind_of("q", 1) is None
    assert book.counts("q") == (1, 1) and book.counts("other") == (0, 0)
    assert book.clear_query("q") and len(book) == 0
    with pytest.raises(ValueError):
        book.set("q", 2, "maybe", 7.0)


def test_book_file_round_trip_and_refusals(tmp_path):
    book = MarkBook("data-digest", "ckpt-digest")
    book.set("/q/a.jpg", 4, SAME, 10.5)
    book.set("/q/a.jpg", 2, DIFFERENT, 11.0)
    book.set("/q/b.jpg", 5, SAME, 12.0)
    path = marks_file(tmp_path, "data-digest", "ckpt-digest")
    book.save(path, GALLERY)
    back = MarkBook.load(path, GALLERY, dataset="data-digest", checkpoint="ckpt-digest")
    assert back.marks("/q/a.jpg") == book.marks("/q/a.jpg")
    assert back.marks("/q/b.jpg") == book.marks("/q/b.jpg")
    # Another checkpoint or dataset: refused, saying which.
    with pytest.raises(ValueError, match="checkpoint"):
        MarkBook.load(path, GALLERY, dataset="data-digest", checkpoint="other")
    with pytest.raises(ValueError, match="dataset"):
        MarkBook.load(path, GALLERY, dataset="other", checkpoint="ckpt-digest")
    # A gallery image no longer at its index: its mark is dropped, never moved to another image.
    moved = list(GALLERY)
    moved[4] = "/g/new.jpg"
    back = MarkBook.load(path, moved, dataset="data-digest", checkpoint="ckpt-digest")
    assert back.marks("/q/a.jpg")[0].gallery == 2 and len(back.marks("/q/a.jpg")) == 1
    # No marks left: the file goes.
    for q in back.queries():
        back.clear_query(q)
    back.save(path, GALLERY)
    assert not path.exists()


# ---------------------------------------------------------------------- in the window
def _query_with_match(session) -> int:
    return next(q for q, s in enumerate(session.dataset.query)
                if ((session.gallery_pids == s.pid) & (session.gallery_cams != s.cam)).sum() >= 1)


def _mark_tile(qtbot, win, gallery_index: int, key) -> None:
    """Select the tile of ``gallery_index`` and press ``key``."""
    assert win.state.select_gallery(gallery_index)
    with qtbot.waitSignal(win.marks_ctl.refined, timeout=20000):
        qtbot.keyClick(QApplication.focusWidget() or win, key)


def test_marks_rerank_survive_rr_relaunch_and_export(qtbot, window, loaded, refine_calls, tmp_path):
    from tests.viewer.conftest import assert_no_job_running
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = window
    qtbot.waitUntil(lambda: win.state.marks is not None, timeout=10000)
    session = win.state.session
    q = _query_with_match(session)
    win.state.select_query(q)
    key = win.state.query_key(q)
    own = grid_gallery_order(win)

    # S on the 5th tile, D on the 2nd, S on the 3rd of the query's own list.
    first, negative, second = own[4], own[1], own[2]
    _mark_tile(qtbot, win, first, Qt.Key.Key_S)
    _mark_tile(qtbot, win, negative, Qt.Key.Key_D)
    _mark_tile(qtbot, win, second, Qt.Key.Key_S)
    assert win.state.marks.positives(key) == [first, second]
    assert win.state.marks.negatives(key) == [negative]
    assert refine_calls[-1][:3] == (q, [first, second], [negative])
    assert not any(call[5] for call in refine_calls), "refine ran on the GUI thread"

    # The grid: positives first in the order marked, the negative gone from the top; badges.
    order = grid_gallery_order(win)
    assert order[:2] == [first, second] and negative not in order
    assert isinstance(win.state.override(q), FeedbackOverride)
    assert win.state.mark_of(q, first) == SAME and win.state.mark_of(q, negative) == DIFFERENT
    assert "2 same · 1 different" in win.header.marks.text()
    assert "feedback" in win.results_title.text() or "marks" in win.results_title.text()

    # Clear a mark with C: the list follows.
    _mark_tile(qtbot, win, second, Qt.Key.Key_C)
    assert win.state.marks.positives(key) == [first]
    assert grid_gallery_order(win)[0] == first

    # RR on: the marks stay and the list is re-ranked from them under the new settings.
    with qtbot.waitSignal(win.marks_ctl.refined, timeout=60000):
        win.state.rerank_on = True
    assert win.state.applied.rerank is not None
    assert refine_calls[-1][3] == win.state.applied.rerank
    assert win.state.override(q).settings == win.state.applied
    assert grid_gallery_order(win)[0] == first and negative not in grid_gallery_order(win)
    with qtbot.waitSignal(win.marks_ctl.refined, timeout=60000):
        win.state.rerank_on = False
    assert win.state.marks.positives(key) == [first]

    # The CSV export carries the marks.
    out = tmp_path / "marked.csv"
    with qtbot.waitSignal(win.controller.export_finished, timeout=20000):
        win.controller.export(str(out), all_queries=False, top_k=None)
    with open(out, newline="") as fh:
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in list(csv.reader(fh))[1:]]
    gallery = session.dataset.gallery
    marked = {r["gallery"]: r["mark"] for r in rows if r["mark"]}
    assert marked == {gallery[first].path: SAME, gallery[negative].path: DIFFERENT}
    assert rows[0]["gallery"] == gallery[first].path
    assert rows[0]["method"].endswith("+feedback")
    # Every query: the marked one's list re-ranked from its marks as on screen, the others not.
    out_all = tmp_path / "all.csv"
    with qtbot.waitSignal(win.controller.export_finished, timeout=20000):
        win.controller.export(str(out_all), all_queries=True, top_k=2)
    with open(out_all, newline="") as fh:
        rows = [dict(zip(COLUMNS, r, strict=True)) for r in list(csv.reader(fh))[1:]]
    query_path = session.dataset.query[q].path
    mine = [r for r in rows if r["query"] == query_path]
    assert mine[0]["gallery"] == gallery[first].path and mine[0]["mark"] == SAME
    assert all(r["method"].endswith("+feedback") for r in mine)
    assert not any(r["method"].endswith("+feedback") or r["mark"] for r in rows
                   if r["query"] != query_path)
    assert refine_calls[-1][5] is False   # refined in the export job, off the GUI thread

    # Relaunch: a new window on the same data and checkpoint reads the marks back and shows the
    # query re-ranked from them when it is selected.
    win.close()
    again = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(again)
    again.show()
    again.controller._loaded(loaded)
    qtbot.waitUntil(lambda: again.state.marks is not None, timeout=10000)
    assert again.state.marks.marks(key) == win.state.marks.marks(key)
    again.state.select_query(q)
    qtbot.waitUntil(lambda: isinstance(again.state.override(q), FeedbackOverride), timeout=20000)
    assert grid_gallery_order(again)[0] == first and negative not in grid_gallery_order(again)
    again.close()
    assert_no_job_running(again.controller)


def test_marks_menu_marks_the_tile_under_the_pointer(qtbot, window, refine_calls):
    win = window
    qtbot.waitUntil(lambda: win.state.marks is not None, timeout=10000)
    q = _query_with_match(win.state.session)
    win.state.select_query(q)
    menu = win.marks_menu()
    texts = [a.text() for a in menu.actions()]
    assert texts[:3] == ["Same person\tS", "Different person\tD", "Clear mark\tC"]
    win.state.selected_result = 2
    target = win.state.selected_item().gallery_index
    with qtbot.waitSignal(win.marks_ctl.refined, timeout=20000):
        menu.actions()[1].trigger()
    assert win.state.mark_of(q, target) == DIFFERENT
    with qtbot.waitSignal(win.marks_ctl.refined, timeout=20000):
        menu.actions()[3].trigger()   # clear all: the query's own list again
    assert win.state.override(q) is None and win.state.marks.counts(win.state.query_key(q)) == (0, 0)


def test_marking_in_the_match_inspector(qtbot, window, refine_calls):
    """S / D while the inspector shows a pair mark that pair's result; its caption says so."""
    win = window
    qtbot.waitUntil(lambda: win.state.marks is not None, timeout=10000)
    q = _query_with_match(win.state.session)
    win.state.select_query(q)
    win.state.selected_result = 2
    win.grid.setFocus()
    qtbot.keyClick(win.grid, Qt.Key.Key_Return)
    view = win.inspector.build()
    qtbot.waitUntil(lambda: win.inspector_ctl.is_ready(), timeout=30000)
    _q, first = win.inspector_ctl.inspector.pair
    with qtbot.waitSignal(win.marks_ctl.refined, timeout=20000):
        qtbot.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_S)
    # Marked the same person: it leads the list and stays the inspected pair, captioned.
    assert win.state.mark_of(q, first) == SAME
    assert win.inspector_ctl.inspector.pair == (q, first)
    assert win.state.results()[0].gallery_index == first
    assert "✓ same" in view.captions["gallery"].textItem.toPlainText()
    # D on the next result: it goes to the end and the tile in its place is inspected next.
    win.state.selected_result = 3
    qtbot.waitUntil(lambda: win.inspector_ctl.inspector.pair[1] != first, timeout=5000)
    _q, second = win.inspector_ctl.inspector.pair
    with qtbot.waitSignal(win.marks_ctl.refined, timeout=20000):
        qtbot.keyClick(QApplication.focusWidget() or win, Qt.Key.Key_D)
    assert win.state.mark_of(q, second) == DIFFERENT
    assert win.state.selected_result == 3
    assert second not in [it.gallery_index for it in win.state.results()]
    assert win.inspector_ctl.inspector.pair[1] == win.state.selected_item().gallery_index


def test_marks_with_the_engines_refine(qtbot, window, loaded):
    """The real engine.feedback.refine behind the window: a true match marked the same person
    leads, a result marked different goes last; the marks file is removed afterwards."""
    import shutil
    from pathlib import Path

    win = window
    qtbot.waitUntil(lambda: win.state.marks is not None, timeout=10000)
    session = win.state.session
    q = _query_with_match(session)
    win.state.select_query(q)
    sample = session.dataset.query[q]
    hits = ((session.gallery_pids == sample.pid) & (session.gallery_cams != sample.cam)).nonzero()[0]
    first = int(win.state.results()[0].gallery_index)
    try:
        with qtbot.waitSignal(win.marks_ctl.refined, timeout=60000):
            win.marks_ctl.mark(q, int(hits[-1]), SAME)
        with qtbot.waitSignal(win.marks_ctl.refined, timeout=60000):
            win.marks_ctl.mark(q, first if first != int(hits[-1]) else
                               int(win.state.results()[1].gallery_index), DIFFERENT)
        assert win.state.error is None, win.state.error
        shown = win.state.shown_ranking(q)
        assert int(shown.order[0]) == int(hits[-1])
        assert int(shown.order[-1]) == win.state.marks.negatives(win.state.query_key(q))[0]
    finally:
        shutil.rmtree(Path(session.cache_dir) / "marks", ignore_errors=True)
