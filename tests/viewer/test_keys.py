"""Keys on the main window: the match inspector takes the keys however it opens, the File
shortcuts fire wherever the focus is, and going past the last tile raises Top-k out loud."""
from __future__ import annotations

from PySide6.QtCore import QEvent, QKeyCombination, Qt
from PySide6.QtWidgets import QApplication, QDockWidget, QLineEdit

import viewer.main_window as main_window_module


def _focus():
    focus = QApplication.focusWidget()
    assert focus is not None, "nothing has the keyboard focus"
    return focus


def test_the_inspector_takes_the_keys_however_it_is_opened(qtbot, window):
    win, state = window, window.state
    win.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None or win.isActiveWindow())
    visible = state.visible_queries()
    # A user who changed the line mode in the inspector earlier: the page remembers that control.
    state.select_query(visible[0])
    win.inspect_button.click()
    qtbot.waitUntil(lambda: win.tabs.currentWidget() is win.inspector)
    win.inspector.view.line_mode.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is win.inspector.view.line_mode)
    qtbot.keyClick(_focus(), Qt.Key.Key_Escape)
    assert win.tabs.currentWidget() is win.splitter

    def first_true_match_then_enter():
        win.header.first_match.setFocus()
        qtbot.mouseClick(win.header.first_match, Qt.MouseButton.LeftButton)
        qtbot.keyClick(_focus(), Qt.Key.Key_Return)

    def double_click():
        rect = win.grid.visualRect(win.grid.model_.index(state.selected_result))
        qtbot.mouseClick(win.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        qtbot.mouseDClick(win.grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())

    def tab():
        bar = win.tabs.tabBar()
        qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.tabRect(1).center())

    ways = {"Go to first true match, Enter": first_true_match_then_enter,
            "double-click": double_click, "Inspect button": win.inspect_button.click, "tab": tab}
    for i, (how, open_it) in enumerate(ways.items()):
        query = visible[i % len(visible)]
        state.select_query(query)
        open_it()
        qtbot.waitUntil(lambda: win.tabs.currentWidget() is win.inspector)
        assert win.inspector.isAncestorOf(_focus()), how
        before = state.selected_result
        qtbot.keyClick(_focus(), Qt.Key.Key_Right)
        assert state.selected_result == before + 1, how
        qtbot.keyClick(_focus(), Qt.Key.Key_Down)
        assert state.selected_query == visible[visible.index(query) + 1], how
        assert win.inspector_ctl.inspector.pair[0] == state.selected_query, how
        qtbot.keyClick(_focus(), Qt.Key.Key_Escape)
        assert win.tabs.currentWidget() is win.splitter, how
        assert _focus() is win.grid, how  # and back in the grid, the keys step there


class _ClaimsCtrlE(QLineEdit):
    """A text field whose key bindings claim Ctrl+E (X11's "end of line" does)."""

    def event(self, event):
        if (event.type() == QEvent.Type.ShortcutOverride and event.keyCombination()
                == QKeyCombination(Qt.KeyboardModifier.ControlModifier, Qt.Key.Key_E)):
            event.accept()
            return True
        return super().event(event)


def test_ctrl_e_exports_wherever_the_focus_is(qtbot, window, monkeypatch):
    win = window
    opened = []

    class FakeDialog:
        def __init__(self, *args, **kwargs):
            opened.append(1)

        def exec(self):
            return 0

    monkeypatch.setattr(main_window_module, "ExportDialog", FakeDialog)
    field = _ClaimsCtrlE()
    win.browser.layout().addWidget(field)
    # And a field in another of the app's windows (a floating dock, as the plots are).
    dock = QDockWidget("tool", win)
    other = _ClaimsCtrlE()
    dock.setWidget(other)
    win.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
    dock.setFloating(True)
    dock.show()
    for widget in (field, win.display.top_k, other):
        widget.window().activateWindow()
        widget.setFocus()
        qtbot.waitUntil(lambda w=widget: _focus() is w or _focus().parent() is w)
        count = len(opened)
        qtbot.keyClick(_focus(), Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
        assert len(opened) == count + 1, f"Ctrl+E in {type(widget).__name__} did not export"
    assert field.text() == "" and other.text() == ""


def test_going_past_top_k_raises_it_and_says_so(qtbot, window):
    win, state = window, window.state
    messages = []
    state.events.message.connect(messages.append)
    query = next(q for q in state.visible_queries() if state.ranking(q).first_hit_rank > 2)
    rank = state.ranking(query).first_hit_rank
    state.top_k = 2
    state.select_query(query)
    assert state.select_first_true_match()
    shown = state.selected_item()
    assert shown.rank == rank and state.top_k >= rank and win.display.top_k.value() == state.top_k
    assert messages == [f"Top-k raised from 2 to {state.top_k} to show the result at rank {rank}"]
    assert win.statusBar().currentMessage() == messages[-1]
    # Right past the last tile: more tiles, said again.
    state.selected_result = len(state.results()) - 1
    before = state.top_k
    state.step_result(+1)
    assert state.top_k == before + 24 and state.selected_result == before
    assert messages[-1] == f"Top-k raised from {before} to {before + 24} to step past the last result"
    # A change the user makes is not announced.
    state.top_k = 5
    assert len(messages) == 2
