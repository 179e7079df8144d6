"""Overall accuracy of the current settings beside the ranking without post-processing."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QGroupBox, QLabel

from viewer.formatting import format_percent
from viewer.state import ViewerState

__all__ = ["MetricsPanel"]

ROWS = [("rank1", "Rank-1"), ("mean_ap", "mAP"), ("mean_inp", "mINP")]


def _metric(metrics, name: str):
    if metrics is None:
        return None
    return metrics.rank1 if name == "rank1" else getattr(metrics, name)


class MetricsPanel(QGroupBox):
    """A small table: metric x (current settings, no post-processing)."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__("Accuracy (all queries)", parent)
        self.state = state
        grid = QGridLayout(self)
        grid.setContentsMargins(8, 4, 8, 4)
        self.method = QLabel("current")
        self.method.setAlignment(Qt.AlignmentFlag.AlignRight)
        raw = QLabel("raw")
        raw.setAlignment(Qt.AlignmentFlag.AlignRight)
        raw.setObjectName("dim")
        grid.addWidget(self.method, 0, 1)
        grid.addWidget(raw, 0, 2)
        self.cells = {}
        for row, (name, label) in enumerate(ROWS, start=1):
            grid.addWidget(QLabel(label), row, 0)
            current, base = QLabel(), QLabel()
            current.setAlignment(Qt.AlignmentFlag.AlignRight)
            base.setAlignment(Qt.AlignmentFlag.AlignRight)
            base.setObjectName("dim")
            font = current.font()
            font.setBold(True)
            current.setFont(font)
            grid.addWidget(current, row, 1)
            grid.addWidget(base, row, 2)
            self.cells[name] = (current, base)
        self.valid = QLabel()
        self.valid.setObjectName("dim")
        self.valid.setWordWrap(True)
        grid.addWidget(self.valid, len(ROWS) + 1, 0, 1, 3)
        for name in ("metrics", "raw_metrics", "applied", "session"):
            state.events[name].connect(self.refresh)
        self.refresh()

    def refresh(self, _value=None) -> None:
        state = self.state
        self.method.setText(state.applied.method(state.base_method))
        for name, (current, base) in self.cells.items():
            current.setText(format_percent(_metric(state.metrics, name)))
            base.setText(format_percent(_metric(state.raw_metrics, name)))
        metrics = state.metrics
        self.valid.setText("" if metrics is None else
                           f"{metrics.num_valid} of {len(metrics.valid)} queries have a true match")
