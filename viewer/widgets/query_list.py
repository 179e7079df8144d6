"""The list of queries (thumbnail, identity, camera, file, AP), bound to the state's selection."""
from __future__ import annotations

import math
import os

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QFont, QPainter, QPen
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate

from viewer import style
from viewer.formatting import camera_base, format_cam
from viewer.state import ViewerState
from viewer.widgets.thumbnails import ThumbnailCache

__all__ = ["QueryListModel", "QueryList"]

QUERY_ROLE = Qt.ItemDataRole.UserRole + 1


class QueryListModel(QAbstractListModel):
    """Rows = ``state.visible_queries()`` (filtered and sorted by the state)."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        self.queries: list[int] = []

    def refresh(self) -> None:
        self.beginResetModel()
        self.queries = list(self.state.visible_queries())
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self.queries)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        query = self.queries[index.row()]
        if role == QUERY_ROLE:
            return query
        if role == Qt.ItemDataRole.DisplayRole:
            return os.path.basename(self.state.query_sample(query).path)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self.state.query_sample(query).path
        return None

    def row_of(self, query: int) -> int:
        try:
            return self.queries.index(query)
        except ValueError:
            return -1


class QueryDelegate(QStyledItemDelegate):
    """Paints a row: thumbnail, ``pid · camera``, file name and the query's AP."""

    def __init__(self, state: ViewerState, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.state, self.thumbnails = state, thumbnails

    def sizeHint(self, option, index) -> QSize:
        return QSize(120, style.QUERY_ROW_HEIGHT)

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        query = index.data(QUERY_ROLE)
        sample = self.state.query_sample(query)
        rect = option.rect
        painter.save()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.fillRect(rect, style.SELECTED_BG if selected else style.TILE_BG)
        if selected:
            painter.fillRect(QRect(rect.left(), rect.top(), 3, rect.height()), style.ACCENT)
        tw, th = style.QUERY_THUMB
        pixmap = self.thumbnails.get(sample.path, tw, th)
        x = rect.left() + 10 + (tw - pixmap.width()) // 2
        y = rect.top() + (rect.height() - pixmap.height()) // 2
        painter.drawPixmap(x, y, pixmap)
        left = rect.left() + tw + 20
        width = rect.width() - tw - 28
        extra = self.state.is_extra(query)
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(style.TEXT)
        title = "external image" if extra else f"ID {sample.pid:04d} · {format_cam(sample.cam, camera_base(self.state))}"
        painter.drawText(QRect(left, rect.top() + 8, width, 20), Qt.AlignmentFlag.AlignLeft, title)
        painter.setFont(option.font)
        painter.setPen(style.TEXT_DIM)
        name = painter.fontMetrics().elidedText(os.path.basename(sample.path),
                                                Qt.TextElideMode.ElideMiddle, width)
        painter.drawText(QRect(left, rect.top() + 28, width, 18), Qt.AlignmentFlag.AlignLeft, name)
        ap = self.state.query_ap(query)
        note = "no identity" if extra else ("no true match" if math.isnan(ap) else f"AP {ap:.3f}")
        painter.drawText(QRect(left, rect.top() + 46, width, 18), Qt.AlignmentFlag.AlignLeft, note)
        painter.setPen(QPen(style.JUNK, 1))
        painter.drawLine(rect.left(), rect.bottom(), rect.right(), rect.bottom())
        painter.restore()


class QueryList(QListView):
    """The query browser's list; a click selects the query in the state."""

    def __init__(self, state: ViewerState, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.state = state
        self.model_ = QueryListModel(state, self)
        self.setModel(self.model_)
        self.setItemDelegate(QueryDelegate(state, thumbnails, self))
        self.setUniformItemSizes(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self._syncing = False
        self.selectionModel().currentChanged.connect(self._on_current_changed)
        for name in ("session", "extra_queries", "filter_cam", "filter_pid", "filter_name",
                     "sort_key"):
            state.events[name].connect(self._refresh)
        state.events.metrics.connect(self._metrics_changed)
        state.events.selected_query.connect(self._show_selection)

    def _refresh(self, _value=None) -> None:
        self._syncing = True
        try:
            self.model_.refresh()
        finally:
            self._syncing = False
        self._show_selection(self.state.selected_query)

    def _metrics_changed(self, _metrics) -> None:
        # New APs reorder the list only when it is sorted by AP; otherwise repainting the
        # visible rows (which show the AP) is enough.
        if self.state.sort_key == "ap":
            self._refresh()
        else:
            self.viewport().update()

    def _show_selection(self, query: int) -> None:
        row = self.model_.row_of(query)
        self._syncing = True
        try:
            if row < 0:
                self.selectionModel().clearSelection()
            else:
                index = self.model_.index(row)
                self.selectionModel().setCurrentIndex(
                    index, self.selectionModel().SelectionFlag.ClearAndSelect)
                self.scrollTo(index)
        finally:
            self._syncing = False

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._syncing or not current.isValid():
            return
        self.state.select_query(self.model_.queries[current.row()])
