"""The key to the tile borders and movement arrows."""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QPainter, QPen
from PySide6.QtWidgets import QWidget

from viewer import style

__all__ = ["Legend", "LEGEND_ENTRIES"]

LEGEND_ENTRIES = [
    ("border", style.MATCH, "same identity"),
    ("border", style.MISMATCH, "different identity"),
    ("dashed", style.JUNK, "junk (same ID and camera): not ranked"),
    ("text", style.TEXT_DIM, "▲▼ moved · ✓✗ marks"),
]


class Legend(QWidget):
    """One row of swatches and labels, painted (cheap, and crisp at any scale)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setToolTip("Tile: rank and movement; identity and camera; the value the list is "
                        "ordered by (QAConv logit without post-processing, higher = more similar; "
                        "distance with RR/TLift, lower = closer) and capture time (h:mm:ss.s).\n"
                        "Ranks follow the Market-1501 protocol: junk items are shown (greyed) or "
                        "hidden but never counted, so ranks agree with the header, the CSV and "
                        "the match inspector.")

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        width = sum(22 + fm.horizontalAdvance(text) + 14 for _, _, text in LEGEND_ENTRIES)
        return QSize(width, max(20, fm.height() + 6))

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self.sizeHint().height())

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        fm = self.fontMetrics()
        x, h = 0, self.height()
        for kind, color, text in LEGEND_ENTRIES:
            if kind in ("border", "dashed"):
                pen = QPen(color, 3)
                if kind == "dashed":
                    pen.setStyle(Qt.PenStyle.DashLine)
                painter.setPen(pen)
                painter.drawRect(QRect(x + 2, (h - 14) // 2, 12, 14))
                x += 20
                painter.setPen(style.TEXT)
                label = text
            else:
                painter.setPen(color)
                label = text
            painter.drawText(QRect(x, 0, fm.horizontalAdvance(label) + 2, h),
                             Qt.AlignmentFlag.AlignVCenter, label)
            x += fm.horizontalAdvance(label) + 16
        painter.end()
