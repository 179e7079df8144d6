"""What the window shows before any data is loaded: progress of the first load, or why it failed."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.state import ViewerState
from viewer.widgets.error_banner import rich_text
from viewer.widgets.job_progress import JobProgress

__all__ = ["LoadingPage"]


class LoadingPage(QWidget):
    """A centred card: the load's stage and progress, or the error with ways to go on."""

    open_data_requested = Signal()
    open_checkpoint_requested = Signal()
    retry_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        card = QFrame()
        card.setObjectName("card")
        card.setFixedWidth(560)
        title = QLabel("ReID Inspector")
        title.setObjectName("big")
        self.subtitle = QLabel("Preparing the demo: synthetic domain B, model trained on domain A")
        self.subtitle.setObjectName("dim")
        self.subtitle.setWordWrap(True)
        self.progress = JobProgress(state)
        # Stage text above a full-width bar, Cancel under it on the right.
        self.progress.layout().setDirection(self.progress.layout().Direction.TopToBottom)
        self.progress.layout().setAlignment(self.progress.cancel_button, Qt.AlignmentFlag.AlignRight)
        self.progress.cancel_requested.connect(self.cancel_requested)
        self.failure = QLabel()
        self.failure.setObjectName("errorText")
        self.failure.setWordWrap(True)
        self.failure.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.detail = QPlainTextEdit()
        self.detail.setReadOnly(True)
        self.detail.setMaximumHeight(140)
        self.detail.hide()
        buttons = QHBoxLayout()
        self.details_button = QPushButton("Details")
        self.details_button.setCheckable(True)
        self.details_button.toggled.connect(self.detail.setVisible)
        buttons.addWidget(self.details_button)
        self.open_data = QPushButton("Open dataset…")
        self.open_checkpoint = QPushButton("Open model…")
        self.retry = QPushButton("Retry")
        for button in (self.open_data, self.open_checkpoint, self.retry):
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.open_data.clicked.connect(self.open_data_requested)
        self.open_checkpoint.clicked.connect(self.open_checkpoint_requested)
        self.retry.clicked.connect(self.retry_requested)
        self.failure_box = QWidget()
        box = QVBoxLayout(self.failure_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.failure)
        box.addWidget(self.detail)
        box.addLayout(buttons)

        inner = QVBoxLayout(card)
        inner.setContentsMargins(20, 18, 20, 18)
        inner.addWidget(title)
        inner.addWidget(self.subtitle)
        inner.addSpacing(8)
        inner.addWidget(self.progress)
        inner.addWidget(self.failure_box)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)
        state.events.load_failed.connect(self._show_failure)
        self._show_failure(state.load_failed)

    def set_subtitle(self, text: str) -> None:
        self.subtitle.setText(text)

    def _show_failure(self, error) -> None:
        self.failure_box.setVisible(error is not None)
        if error is not None:
            self.failure.setText(f"<b>Could not load.</b> {rich_text(error.message)}")
            self.detail.setPlainText(error.detail or error.message)
