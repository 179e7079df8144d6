"""The window at 1024 x 700 and 1280 x 800: the occlusion dock opens at a usable width without
widening the window, keeps its width across resizes and launches (remembered in the settings,
a temporary folder here: conftest.user_settings_folder), and the query list keeps its width
when the dock opens or an occluded ranking is shown."""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication


def _settle(qtbot, win, width, height):
    win.resize(width, height)
    for _ in range(3):
        QApplication.processEvents()
        qtbot.wait(20)


def _open_dock(qtbot, win):
    dock = win.occlusion
    dock.show()
    qtbot.waitUntil(lambda: dock.panel is not None and dock.controller.state.image is not None,
                    timeout=20000)
    qtbot.wait(50)   # the width is set once the dock is laid out
    QApplication.processEvents()
    return dock


def _whole_in_view(widget, viewport) -> bool:
    """``widget`` lies inside ``viewport`` left to right (nothing cut at the side)."""
    left = widget.mapTo(viewport, QPoint(0, 0)).x()
    return 0 <= left and left + widget.width() <= viewport.width()


def test_occlusion_dock_opens_usable_at_1024_and_keeps_its_width(qtbot, window, loaded):
    from tests.viewer.conftest import assert_no_job_running
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = window
    win.inspector.build()   # its page counts too: the tabs are as wide as the widest page
    _settle(qtbot, win, 1024, 700)
    dock = _open_dock(qtbot, win)
    panel, scroll = dock.panel, dock.widget()
    assert win.width() == 1024, "opening the dock widened the window"
    assert scroll.viewport().width() >= panel.minimumSizeHint().width()
    for widget in (panel.canvas, panel.fill, panel.rank_button, panel.reset_button, panel.numbers):
        assert _whole_in_view(widget, scroll.viewport()), widget
    assert panel.canvas.width() >= 160
    opened = dock.width()
    assert opened >= 300
    # Across resizes of the window.
    for size in ((1600, 1000), (1280, 800), (1024, 700)):
        _settle(qtbot, win, *size)
        assert dock.width() == opened and win.width() == size[0], size

    # A width the user dragged to is the next launch's.
    win.resizeDocks([dock], [380], Qt.Orientation.Horizontal)
    _settle(qtbot, win, 1280, 800)
    dragged = dock.width()
    assert abs(dragged - 380) <= 8
    win.close()
    again = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(again)
    _settle(qtbot, again, 1280, 800)
    again.show()
    again.controller._loaded(loaded)
    dock = _open_dock(qtbot, again)
    assert dock.width() == dragged
    again.close()
    assert_no_job_running(again.controller)


def test_the_query_list_keeps_its_width(qtbot, window):
    win = window
    _settle(qtbot, win, 1280, 800)
    width = win.browser.width()
    dock = _open_dock(qtbot, win)
    assert win.browser.width() == width, "opening the dock squeezed the query list"
    centre = win.splitter.widget(1).minimumSizeHint().width()
    for size in ((1280, 800), (1024, 700)):
        _settle(qtbot, win, *size)
        width = win.browser.width()
        with qtbot.waitSignal(dock.controller.rank_finished, timeout=20000):
            dock.controller.apply_square()
        _settle(qtbot, win, *size)
        assert win.results_title.text().startswith("Occluded")
        assert win.browser.width() == width, size
        assert win.splitter.widget(1).minimumSizeHint().width() == centre
        dock.controller.reset()


def test_a_narrow_header_shortens_its_note_to_two_lines(qtbot, window):
    """At 1024 px with the dock open the header's note is cut to about two lines (whole in its
    tooltip) so that the grid keeps a row of tiles; wide, it is shown whole."""
    win = window
    _settle(qtbot, win, 1600, 1000)
    header = win.header
    whole = header.note_text
    assert whole and header.note.text() == whole and header.note.toolTip() == ""
    _settle(qtbot, win, 1024, 700)
    _open_dock(qtbot, win)
    _settle(qtbot, win, 1024, 700)
    line = header.note.fontMetrics().lineSpacing()
    assert header.note.height() <= 2 * line + 4
    assert header.note.text().endswith("…") and header.note.toolTip() == whole
    assert whole.startswith(header.note.text()[:-1])
    assert win.grid.viewport().height() >= 200   # a row of tiles
