"""The left panel: query filters, the query list and "open image as query"."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from viewer.state import ViewerState
from viewer.widgets.query_filters import QueryFilters
from viewer.widgets.query_list import QueryList
from viewer.widgets.thumbnails import ThumbnailCache

__all__ = ["QueryBrowser"]


class QueryBrowser(QWidget):
    """Filters, a count of the shown queries, the list and an "Open image…" button."""

    open_image_requested = Signal()

    def __init__(self, state: ViewerState, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.setObjectName("panel")
        self.state = state
        title = QLabel("Queries")
        title.setObjectName("title")
        self.filters = QueryFilters(state)
        self.count = QLabel()
        self.count.setObjectName("dim")
        self.list = QueryList(state, thumbnails)
        self.open_button = QPushButton("Open image as query…")
        self.open_button.setToolTip("Rank the gallery for any image file (Ctrl+O)")
        self.open_button.clicked.connect(self.open_image_requested)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 4, 8)
        layout.addWidget(title)
        layout.addWidget(self.filters)
        layout.addWidget(self.count)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.open_button)
        for name in ("session", "extra_queries", "filter_cam", "filter_pid", "filter_name"):
            state.events[name].connect(self._update_count)
        # A camera or sort picked from its list hands the keys back to the query list, so Up
        # and Down walk the queries again instead of changing the camera.
        for combo in (self.filters.camera, self.filters.sort):
            combo.activated.connect(lambda _i: self.list.setFocus())

    def _update_count(self, _value=None) -> None:
        total = self.state.num_queries
        shown = len(self.state.visible_queries())
        self.count.setText(count_text(shown, total, self.state.filter_pid))


def count_text(shown: int, total: int, pid_text: str) -> str:
    """The line above the query list: how many are shown and, when none, why."""
    pid_text = pid_text.strip()
    if pid_text and not pid_text.isdigit():
        return f"identity filter {pid_text!r} is not a number: no query matches"
    if shown == 0 and total:
        return f"no query matches the filters (0 of {total})"
    return f"{shown} of {total} queries" if shown != total else f"{total} queries"
