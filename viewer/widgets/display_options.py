"""How many results to show (top-k) and whether junk items are greyed or hidden."""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSpinBox, QWidget

from ..state import ViewerState

__all__ = ["DisplayOptions"]

JUNK_LABELS = {"grey": "greyed", "hide": "hidden"}


class DisplayOptions(QWidget):
    """Two-way binding of ``top_k`` and ``junk_mode``."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        self.top_k = QSpinBox()
        self.top_k.setRange(1, state.max_top_k)
        self.top_k.setValue(state.top_k)
        self.top_k.setToolTip("Number of ranked gallery images shown (scroll for more; up to "
                              "the whole gallery)")
        self.junk = QComboBox()
        for mode, label in JUNK_LABELS.items():
            self.junk.addItem(label, mode)
        self.junk.setToolTip("Same identity and same camera as the query: ignored by the "
                             "Market-1501 protocol")
        self.junk.setCurrentIndex(self.junk.findData(state.junk_mode))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Top-k"))
        layout.addWidget(self.top_k)
        layout.addSpacing(10)
        layout.addWidget(QLabel("Junk"))
        layout.addWidget(self.junk)

        self.top_k.valueChanged.connect(lambda v: setattr(state, "top_k", int(v)))
        self.junk.currentIndexChanged.connect(
            lambda _i: setattr(state, "junk_mode", self.junk.currentData()))
        state.events.top_k.connect(self._show_top_k)
        state.events.session.connect(self._set_range)
        state.events.junk_mode.connect(self._show_junk)

    def _set_range(self, _session=None) -> None:
        with QSignalBlocker(self.top_k):
            self.top_k.setRange(1, self.state.max_top_k)
            self.top_k.setValue(self.state.top_k)

    def _show_top_k(self, value: int) -> None:
        with QSignalBlocker(self.top_k):
            self.top_k.setValue(value)

    def _show_junk(self, mode: str) -> None:
        with QSignalBlocker(self.junk):
            self.junk.setCurrentIndex(max(self.junk.findData(mode), 0))
