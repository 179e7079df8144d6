"""Keyboard navigation: up/down or j/k through queries, left/right through results, Enter opens
the selected match; the window's application-wide shortcuts; and the window's own keys (S / D / C:
mark the selected result).

An application event filter sees the keys before the focused widget does, so the keys work
wherever the focus is in the window, except in widgets that need them for typing or stepping a
value (line edits, spin boxes, combo boxes), which keep them. The shortcuts made global with
:meth:`KeyNavigator.make_global` (Ctrl+E, Ctrl+O) fire wherever the focus is, also in a text
field whose platform key bindings claim the same keys (Ctrl+E is "end of line" under X11).
"""
from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

from viewer.state import ViewerState

__all__ = ["KeyNavigator"]

_TEXT_WIDGETS = (QLineEdit, QAbstractSpinBox, QComboBox, QPlainTextEdit)


class KeyNavigator(QObject):
    """Installed on the application; acts only on key presses meant for ``window``."""

    def __init__(self, window: QWidget, state: ViewerState, on_activate: Callable[[], None],
                 more: dict[Qt.Key, Callable[[], None]] | None = None):
        super().__init__(window)
        self.window, self.state, self.on_activate = window, state, on_activate
        self.actions = {
            Qt.Key.Key_Up: lambda: state.step_query(-1),
            Qt.Key.Key_K: lambda: state.step_query(-1),
            Qt.Key.Key_Down: lambda: state.step_query(+1),
            Qt.Key.Key_J: lambda: state.step_query(+1),
            Qt.Key.Key_Left: lambda: state.step_result(-1),
            Qt.Key.Key_Right: lambda: state.step_result(+1),
            Qt.Key.Key_Return: on_activate,
            Qt.Key.Key_Enter: on_activate,
            **(more or {}),
        }
        self.global_keys: set[QKeySequence] = set()
        QApplication.instance().installEventFilter(self)

    def make_global(self, action: QAction) -> None:
        """Let ``action``'s shortcut fire wherever the focus is, in any of the app's windows."""
        action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
        self.global_keys.update(action.shortcuts())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ShortcutOverride:
            # A focused text field asks first whether it may keep the keys; for a global
            # shortcut it may not (filtered, the event stays unaccepted: the shortcut fires).
            return QKeySequence(event.keyCombination()) in self.global_keys
        if event.type() != QEvent.Type.KeyPress:
            return False
        action = self.actions.get(Qt.Key(event.key()))
        if action is None or event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        focus = QApplication.focusWidget()
        # The event passes through the filter once per widget it propagates to: act on the
        # first delivery only (to the focused widget, or to the window when nothing has focus).
        if obj is not (focus if focus is not None else self.window):
            return False
        if not isinstance(obj, QWidget) or obj.window() is not self.window:
            return False
        if isinstance(obj, _TEXT_WIDGETS) or isinstance(obj.parent(), QAbstractSpinBox):
            return False
        if getattr(obj, "wants_arrow_keys", False):  # e.g. the occlusion square's canvas
            return False
        if self.state.session is None:
            return False
        action()
        return True

    def uninstall(self) -> None:
        app = QApplication.instance()
        if app is not None:
            app.removeEventFilter(self)
