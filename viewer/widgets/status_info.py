"""Status bar labels: device, cache state and how long the last step took."""
from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from viewer.state import StatusInfo, ViewerState

__all__ = ["StatusInfoWidget"]


class StatusInfoWidget(QWidget):
    """Bound to ``state.status``."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.device, self.cache, self.last_step = QLabel(), QLabel(), QLabel()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for label in (self.device, self.cache, self.last_step):
            layout.addWidget(label)
        state.events.status.connect(self.show_status)
        self.show_status(state.status)

    def show_status(self, status: StatusInfo) -> None:
        self.device.setText(status.device)
        self.cache.setText(status.cache)
        self.last_step.setText(status.last_step)
        self.setToolTip(status.detail)
