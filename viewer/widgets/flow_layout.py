"""A layout that places its widgets left to right and wraps them onto more rows when the width
runs out, so a row of controls never sets a wide minimum width (the window fits 1024 px with
the occlusion dock open)."""
from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLayout, QLayoutItem, QWidget

__all__ = ["FlowLayout", "FlowRow", "joined"]


class FlowLayout(QLayout):
    """Items at their preferred width, left to right, wrapped; each row centred vertically.

    An item wider than the layout gets the layout's width (a word-wrapped label, a nested
    flow): its height then follows from its height for that width.
    """

    def __init__(self, parent: QWidget | None = None, spacing: int = 8, row_spacing: int = 4):
        super().__init__(parent)
        self._items: list[QLayoutItem] = []
        self._spacing, self._row_spacing = spacing, row_spacing
        self.setContentsMargins(0, 0, 0, 0)

    # ------------------------------------------------------------------ QLayout
    def addItem(self, item: QLayoutItem) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def itemAt(self, index: int):
        return self._items[index] if 0 <= index < len(self._items) else None

    def takeAt(self, index: int):
        return self._items.pop(index) if 0 <= index < len(self._items) else None

    def expandingDirections(self) -> Qt.Orientation:
        return Qt.Orientation(0)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        return self._arrange(QRect(0, 0, width, 0), apply=False)

    def setGeometry(self, rect: QRect) -> None:
        super().setGeometry(rect)
        self._arrange(rect, apply=True)

    def sizeHint(self) -> QSize:
        """Everything on one row."""
        items = self._visible()
        width = sum(i.sizeHint().width() for i in items) + self._spacing * max(len(items) - 1, 0)
        height = max((i.sizeHint().height() for i in items), default=0)
        return QSize(width, height).grownBy(self.contentsMargins())

    def minimumSize(self) -> QSize:
        """As narrow as the widest item's minimum: one item per row."""
        items = self._visible()
        width = max((i.minimumSize().width() for i in items), default=0)
        height = max((i.minimumSize().height() for i in items), default=0)
        return QSize(width, height).grownBy(self.contentsMargins())

    # ------------------------------------------------------------------ placement
    def _visible(self) -> list[QLayoutItem]:
        return [item for item in self._items if not item.isEmpty()]

    def _arrange(self, rect: QRect, *, apply: bool) -> int:
        """Place the items in ``rect`` (when ``apply``); the height they take."""
        margins = self.contentsMargins()
        area = rect.marginsRemoved(margins)
        rows: list[list[tuple[QLayoutItem, int, int]]] = [[]]
        x = 0
        for item in self._visible():
            hint = item.sizeHint()
            width = max(min(_one_line_width(item, hint), area.width()), item.minimumSize().width())
            height = item.heightForWidth(width) if item.hasHeightForWidth() else hint.height()
            if rows[-1] and x + width > area.width():
                rows.append([])
                x = 0
            rows[-1].append((item, width, height))
            x += width + self._spacing
        y = area.y()
        for row in rows:
            row_height = max((h for _, _, h in row), default=0)
            x = area.x()
            for item, width, height in row:
                if apply:
                    item.setGeometry(QRect(x, y + (row_height - height) // 2, width, height))
                x += width + self._spacing
            y += row_height + self._row_spacing
        used = y - self._row_spacing - area.y() if rows[0] else 0
        return used + margins.top() + margins.bottom()


def _one_line_width(item: QLayoutItem, hint: QSize) -> int:
    """A word-wrapped label's width on one line (its size hint would wrap it early)."""
    label = item.widget()
    if isinstance(label, QLabel) and label.wordWrap() and label.textFormat() != Qt.TextFormat.RichText:
        margins = label.contentsMargins()
        return (label.fontMetrics().horizontalAdvance(label.text()) + 2 * label.margin()
                + margins.left() + margins.right() + 2)
    return hint.width()


class FlowRow(QWidget):
    """A widget holding a :class:`FlowLayout` of ``widgets``."""

    def __init__(self, *widgets: QWidget, spacing: int = 8, parent: QWidget | None = None):
        super().__init__(parent)
        self.flow = FlowLayout(self, spacing=spacing)
        for widget in widgets:
            self.flow.addWidget(widget)


def joined(*widgets: QWidget) -> QWidget:
    """``widgets`` side by side in one widget: a flow never separates them (a label and its
    control)."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        row.addWidget(widget)
    return holder
