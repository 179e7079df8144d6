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
                        "ordered by (without post-processing QAConv's logit or a global model's "
                        "cosine, higher = more similar; "
                        "distance with RR/TLift, lower = closer) and capture time (h:mm:ss.s).\n"
                        "Ranks follow the Market-1501 protocol: junk items are shown (greyed) or "
                        "hidden but never counted, so ranks agree with the header, the CSV and "
                        "the match inspector.")

        policy = self.sizePolicy()
        policy.setHeightForWidth(True)
        self.setSizePolicy(policy)

    def _row_height(self) -> int:
        return max(20, self.fontMetrics().height() + 6)

    def _entries(self, width: int) -> list[tuple[int, int, tuple]]:
        """``(x, row, entry)`` of each entry: left to right, wrapped at ``width``."""
        fm = self.fontMetrics()
        placed, x, row = [], 0, 0
        for entry in LEGEND_ENTRIES:
            kind, _, text = entry
            w = (20 if kind in ("border", "dashed") else 0) + fm.horizontalAdvance(text) + 16
            if x and x + w > width:
                x, row = 0, row + 1
            placed.append((x, row, entry))
            x += w
        return placed

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        width = sum(22 + fm.horizontalAdvance(text) + 14 for _, _, text in LEGEND_ENTRIES)
        return QSize(width, self._row_height())

    def minimumSizeHint(self) -> QSize:
        return QSize(120, self._row_height())

    def heightForWidth(self, width: int) -> int:
        """Narrow, the entries wrap onto more rows rather than being cut."""
        return (self._entries(width)[-1][1] + 1) * self._row_height()

    def paintEvent(self, _event) -> None:
        painter = QPainter(self)
        fm = self.fontMetrics()
        h = self._row_height()
        for x, row, (kind, color, text) in self._entries(self.width()):
            top = row * h
            if kind in ("border", "dashed"):
                pen = QPen(color, 3)
                if kind == "dashed":
                    pen.setStyle(Qt.PenStyle.DashLine)
                painter.setPen(pen)
                painter.drawRect(QRect(x + 2, top + (h - 14) // 2, 12, 14))
                x += 20
                painter.setPen(style.TEXT)
            else:
                painter.setPen(color)
            painter.drawText(QRect(x, top, fm.horizontalAdvance(text) + 2, h),
                             Qt.AlignmentFlag.AlignVCenter, text)
        painter.end()
