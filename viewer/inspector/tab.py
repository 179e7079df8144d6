"""The match inspector's page, built on first need: pyqtgraph (most of a second to import) is
not paid before the window's first paint."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

__all__ = ["InspectorTab"]


class InspectorTab(QWidget):
    """Holds a :class:`~viewer.inspector.view.MatchInspector` once :meth:`build` ran."""

    def __init__(self, state, inspector_controller, parent=None):
        super().__init__(parent)
        self.state, self.ctl = state, inspector_controller
        self.view = None
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._placeholder = QLabel("Select a result and press Enter (or double-click it) to see "
                                   "why it matches.")
        self._placeholder.setObjectName("dim")
        self._layout.addWidget(self._placeholder)
        inspector_controller.inspector.events.open.connect(lambda on: on and self.build())

    def build(self):
        """Create the inspector view (idempotent); returns it."""
        if self.view is None:
            from viewer.inspector.view import MatchInspector

            self.view = MatchInspector(self.state, self.ctl, self)
            self._placeholder.hide()
            self._layout.addWidget(self.view)
        return self.view

    def showEvent(self, event) -> None:
        self.build()
        super().showEvent(event)
