"""A dismissible banner showing the last error (message, and the detail on demand).

Errors are shown in the window rather than in a modal dialog, so a failure never blocks the
window: the user reads it, dismisses it, and carries on.
"""
from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

from viewer.state import ViewerState

__all__ = ["ErrorBanner", "rich_text"]


class ErrorBanner(QFrame):
    """Bound to ``state.error``: shown while it is set; Dismiss clears it."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.state = state
        self.text = QLabel()
        self.text.setObjectName("errorText")
        self.text.setWordWrap(True)
        self.details_button = QPushButton("Details")
        self.details_button.setCheckable(True)
        self.dismiss_button = QPushButton("Dismiss")
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setMaximumHeight(160)
        self.details.hide()

        row = QHBoxLayout()
        row.addWidget(self.text, 1)
        row.addWidget(self.details_button)
        row.addWidget(self.dismiss_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addLayout(row)
        layout.addWidget(self.details)

        self.details_button.toggled.connect(self.details.setVisible)
        self.dismiss_button.clicked.connect(lambda: setattr(state, "error", None))
        state.events.error.connect(self.show_error)
        self.show_error(state.error)

    def show_error(self, error) -> None:
        if error is None:
            self.hide()
            return
        self.text.setText(f"<b>{rich_text(error.title)}</b>: {rich_text(error.message)}")
        self.details.setPlainText(error.detail or error.message)
        self.details_button.setChecked(False)
        self.details_button.setVisible(bool(error.detail))
        self.show()


def rich_text(text: str) -> str:
    """Plain text as rich text (the title is bold): markup escaped, line breaks kept."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\n", "<br>").replace("  ", "&nbsp;&nbsp;")
