"""The viewer tried as a new user (issue 9, section 8): what the loading page says, camera names
that agree between the window and the CSV, the export dialog's refusals and memory, the filters'
focus and hints."""
from __future__ import annotations

import csv
import os

import pytest
from PySide6.QtCore import Qt

from engine.data.samples import Dataset, Sample
from engine.export import COLUMNS, ranked_rows
from viewer.tasks import LoadRequest, describe_request
from viewer.widgets.export_dialog import ExportChoice, ExportDialog
from viewer.widgets.query_browser import count_text


def test_the_loading_page_names_what_is_opened():
    assert "Demo" in describe_request(LoadRequest())
    text = describe_request(LoadRequest(checkpoint="/tmp/random.pt"))
    assert "Demo" not in text and "/tmp/random.pt" in text
    text = describe_request(LoadRequest(data="/data/x"))
    assert "None" not in text and "/data/x" in text and "demo model" in text
    text = describe_request(LoadRequest(data="/data/x", checkpoint="/m.pt"))
    assert text == "Dataset: /data/x\nCheckpoint: /m.pt"


def test_window_subtitle_for_a_foreign_checkpoint(qtbot, tmp_path):
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    junk = tmp_path / "random.pt"
    junk.write_bytes(os.urandom(256))
    with qtbot.waitSignal(win.controller.load_finished, timeout=60000):
        win.start_load(LoadRequest(data=str(tmp_path / "missing"), checkpoint=str(junk),
                                   device="cpu", cache_dir=str(tmp_path / "c")))
    subtitle = win.loading.subtitle.text()
    assert "Demo" not in subtitle and str(junk) in subtitle and "None" not in subtitle
    win.close()


def test_camera_names_are_the_datasets_own():
    assert Dataset(name="market1501", root="/").camera_name(0) == "c1"
    assert Dataset(name="csv", root="/").camera_name(0) == "c0"  # the manifest's own number
    query = Sample("/q.jpg", 1, 2, 5.0)
    gallery = [Sample("/g.jpg", 1, 0, 6.0)]
    row = next(ranked_rows([[0.5]], [[1.0]], [query], gallery, method="qaconv", camera_base=1))
    assert row[2] == "3" and row[6] == "1"


def test_window_and_csv_show_the_same_cameras(qtbot, window, loaded, tmp_path):
    from viewer.formatting import camera_base, format_cam

    win = window
    query = win.state.visible_queries()[0]
    win.state.select_query(query)
    sample = loaded.session.dataset.query[query]
    path = tmp_path / "one.csv"
    with qtbot.waitSignal(win.controller.export_finished, timeout=20000):
        win.controller.export(str(path), all_queries=False, top_k=3)
    with open(path, newline="") as fh:
        first = next(csv.DictReader(fh))
    shown = format_cam(sample.cam, camera_base(win.state))
    assert shown == f"c{first['query_cam']}" and shown in win.header.where.text()
    assert [win.browser.filters.camera.itemText(i) for i in range(1, 3)] == ["c1", "c2"]


def test_csv_method_of_a_query_without_time_drops_tlift():
    gallery = [Sample("/g.jpg", 1, 0, 6.0)]
    external = Sample("/ext.jpg", None, None, None)
    timed = Sample("/q.jpg", 1, 1, 5.0)
    rows = list(ranked_rows([[0.5], [0.4]], [[1.0], [2.0]], [external, timed], gallery,
                            method="qaconv+rr+tlift"))
    assert [r[COLUMNS.index("method")] for r in rows] == ["qaconv+rr", "qaconv+rr+tlift"]


def test_identity_filter_that_is_not_a_number_says_so(qtbot, window):
    win = window
    win.browser.filters.pid.setText("jk")
    assert win.state.visible_queries() == [] or win.state.extra_queries
    assert "not a number" in win.browser.count.text()
    win.browser.filters.pid.setText("99999")
    assert "no query matches" in win.browser.count.text()
    win.browser.filters.pid.setText("")
    assert count_text(5, 5, "") == "5 queries"


def test_after_picking_a_camera_down_walks_the_queries(qtbot, window):
    win = window
    combo = win.browser.filters.camera
    combo.setFocus()
    combo.setCurrentIndex(1)
    combo.activated.emit(1)  # what a pick from the list sends
    assert win.focusWidget() is win.browser.list
    visible = win.state.visible_queries()
    win.state.select_query(visible[0])
    qtbot.keyClick(win.browser.list, Qt.Key.Key_Down)
    assert win.state.selected_query == visible[1] and combo.currentIndex() == 1


@pytest.fixture
def dialog(qtbot):
    d = ExportDialog(20, "/tmp/ranked_lists.csv")
    qtbot.addWidget(d)
    return d


def test_export_dialog_refuses_names_it_cannot_write(dialog, tmp_path):
    for bad, says in (("", "empty"), (str(tmp_path), "folder"),
                      (str(tmp_path / "no" / "x.csv"), "does not exist")):
        dialog.path.setText(bad)
        dialog.accept()
        assert dialog.result() == 0 and says in dialog.problem.text()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    dialog.path.setText(str(fifo))
    dialog.accept()
    assert dialog.result() == 0 and "not a regular file" in dialog.problem.text()


def test_export_dialog_asks_before_replacing(dialog, tmp_path, monkeypatch):
    existing = tmp_path / "old.csv"
    existing.write_text("keep")
    asked = []
    monkeypatch.setattr(dialog, "confirm_replace", lambda path: asked.append(path) or False)
    dialog.path.setText(str(existing))
    dialog.accept()
    assert asked == [str(existing)] and dialog.result() == 0
    monkeypatch.setattr(dialog, "confirm_replace", lambda path: True)
    dialog.accept()
    assert dialog.result() == 1
    new = ExportDialog(20, "/tmp/ranked_lists.csv")
    new.path.setText(str(tmp_path / "new.csv"))
    new.accept()
    assert new.result() == 1
    new.deleteLater()


def test_export_dialog_remembers_the_last_folder_and_options(qtbot, tmp_path):
    last = ExportChoice(path=str(tmp_path / "exports" / "mine.csv"), all_queries=True, top_k=None)
    d = ExportDialog(20, os.path.expanduser("~/ranked_lists.csv"), last=last)
    qtbot.addWidget(d)
    assert d.all.isChecked() and d.full.isChecked()
    assert os.path.dirname(d.choice().path) == str(tmp_path / "exports")
