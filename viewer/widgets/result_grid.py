"""The ranked results: top-k gallery tiles with rank, score, camera, time, movement and a border
coloured by identity (green right, red wrong, grey junk); the user's marks as a badge (blue
"same", amber "not") with a frame of the mark's colour round the tile.

A tile is painted by a delegate from the state's :class:`~viewer.ranking.ResultItem` and a cached
thumbnail, so only the tiles in view cost anything to draw.
"""
from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QFont, QPainter, QPen
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate

from viewer import style
from viewer.formatting import (
    camera_base,
    format_cam,
    format_method_value,
    format_movement,
    format_rank,
    format_time,
    method_value_label,
)
from viewer.marks.state import KIND_LABELS
from viewer.ranking import ResultItem
from viewer.state import ViewerState
from viewer.widgets.thumbnails import ThumbnailCache

__all__ = ["ResultModel", "ResultGrid"]

ITEM_ROLE = Qt.ItemDataRole.UserRole + 1
STATUS_TEXT = {"true": "same identity", "false": "different identity",
               "junk": "same identity, same camera (junk)", "": "identity unknown"}


def second_rank(state: ViewerState, item: ResultItem) -> int | None:
    """The second model's rank of a tile's image (0: junk), or None when there is no second
    model's list for the query shown (no comparison, an external query, an edited copy)."""
    ranks = state.second_ranks
    if ranks is None or state.override(state.selected_query) is not None:
        return None
    return ranks.rank(state.selected_query, item.gallery_index)


def rank_labels(state: ViewerState, item: ResultItem) -> tuple[str, str]:
    """The tile's rank (``#3``) and, while a second model is compared, ``("A #3", "B #12")``:
    the second model's rank takes the place of the movement arrows."""
    second = second_rank(state, item)
    if second is None:
        return format_rank(item.rank), ""
    return f"A {format_rank(item.rank)}", f"B {format_rank(second)}"


class ResultModel(QAbstractListModel):
    """Rows = ``state.results()``: the visible tiles of the selected query."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        self.items: list[ResultItem] = []

    def refresh(self) -> None:
        self.beginResetModel()
        self.items = self.state.results()
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008 - Qt signature
        return 0 if parent.isValid() else len(self.items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self.items[index.row()]
        if role == ITEM_ROLE:
            return item
        if role == Qt.ItemDataRole.DisplayRole:
            return format_rank(item.rank)
        if role == Qt.ItemDataRole.ToolTipRole:
            sample = self.state.session.dataset.gallery[item.gallery_index]
            described = self.state.describe(self.state.selected_query)
            rank = f"rank {item.rank}" if item.rank else "junk: not ranked by the protocol"
            lines = [sample.path, f"{rank} · {STATUS_TEXT[item.status]}",
                     f"identity {sample.pid} · camera {format_cam(sample.cam, camera_base(self.state))}",
                     f"raw score (QAConv logit) {item.score:.3f}",
                     f"distance under {described.label} {item.distance:.4f} (the list's order)"]
            if sample.time is not None:
                lines.append(f"time {format_time(sample.time)} ({sample.time:.2f} s)")
            second = second_rank(self.state, item)
            if second is not None:
                lines.append(f"{self.state.second_ranks.name}: "
                             + (f"rank {second}" if second else "junk: not ranked"))
            mark = self.state.mark_of(self.state.selected_query, item.gallery_index)
            if mark is not None:
                lines.append(f"your mark: {KIND_LABELS[mark]}")
            lines.append("Enter / double-click: open in the match inspector")
            lines.append("S / D / C or right-click: mark same person / different person / clear")
            if item.movement is not None:
                lines.append(f"moved {item.movement:+d} ranks vs. {described.versus}")
            return "\n".join(lines)
        return None


class ResultDelegate(QStyledItemDelegate):
    """Paints one tile: coloured frame, thumbnail, ``#rank`` + movement, identity/camera, the
    active method's value (logit, cosine or distance), capture time."""

    def __init__(self, state: ViewerState, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.state, self.thumbnails = state, thumbnails

    def sizeHint(self, option, index) -> QSize:
        return QSize(*style.RESULT_TILE)

    def paint(self, painter: QPainter, option, index: QModelIndex) -> None:
        item: ResultItem = index.data(ITEM_ROLE)
        sample = self.state.session.dataset.gallery[item.gallery_index]
        rect = option.rect.adjusted(2, 2, -2, -2)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        junk = item.status == "junk"
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        mark = self.state.mark_of(self.state.selected_query, item.gallery_index)
        painter.setPen(QPen(style.ACCENT, 2) if selected else QPen(style.JUNK.lighter(130), 1))
        if mark is not None and not selected:
            painter.setPen(QPen(style.MARK_COLORS[mark], 3))
        painter.setBrush(style.SELECTED_BG if selected else style.TILE_BG)
        painter.drawRoundedRect(rect, 5, 5)

        tw, th = style.RESULT_THUMB
        frame = QRect(rect.left() + (rect.width() - tw) // 2 - 3, rect.top() + 6, tw + 6, th + 6)
        color = style.STATUS_COLORS[item.status]
        pen = QPen(color, 4)
        if junk:
            pen.setStyle(Qt.PenStyle.DashLine)
        painter.setPen(pen)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(frame.adjusted(2, 2, -2, -2))
        pixmap = self.thumbnails.get(sample.path, tw - 2, th - 2)
        if junk:
            painter.setOpacity(0.35)
        painter.drawPixmap(frame.left() + (frame.width() - pixmap.width()) // 2,
                           frame.top() + (frame.height() - pixmap.height()) // 2, pixmap)
        painter.setOpacity(1.0)
        if mark is not None:
            self._badge(painter, option, frame, mark)

        top = frame.bottom() + 4
        left, width = rect.left() + 6, rect.width() - 12
        bold = QFont(option.font)
        bold.setBold(True)
        painter.setFont(bold)
        painter.setPen(style.JUNK if junk else style.TEXT)
        label, second = rank_labels(self.state, item)
        painter.drawText(QRect(left, top, width, 18), Qt.AlignmentFlag.AlignLeft, label)
        moved = format_movement(item.movement)
        if second:
            painter.setPen(style.SECOND_MODEL)
            painter.drawText(QRect(left, top, width, 18), Qt.AlignmentFlag.AlignRight, second)
        elif moved:
            painter.setPen(style.MOVED_UP if item.movement > 0 else
                           style.MOVED_DOWN if item.movement < 0 else style.TEXT_DIM)
            painter.drawText(QRect(left, top, width, 18), Qt.AlignmentFlag.AlignRight, moved)
        small = QFont(option.font)
        small.setPointSizeF(max(option.font.pointSizeF() - 1.0, 7.0))
        painter.setFont(small)
        painter.setPen(style.TEXT_DIM)
        line2 = QRect(left, top + 17, width, 16)
        line3 = QRect(left, top + 32, width, 16)
        line4 = QRect(left, top + 47, width, 16)
        who = "distractor" if sample.pid == 0 else f"ID {sample.pid}"
        painter.drawText(line2, Qt.AlignmentFlag.AlignLeft, who)
        painter.drawText(line2, Qt.AlignmentFlag.AlignRight, format_cam(sample.cam, camera_base(self.state)))
        label = method_value_label(self.state.describe(self.state.selected_query).method)
        value = item.distance if label == "dist" else item.score
        painter.drawText(line3, Qt.AlignmentFlag.AlignLeft, format_method_value(label, value))
        painter.drawText(line4, Qt.AlignmentFlag.AlignLeft, format_time(sample.time))
        painter.restore()


    @staticmethod
    def _badge(painter: QPainter, option, frame: QRect, mark: str) -> None:
        """The user's mark over the image's top edge: ``✓ same`` or ``✗ not``."""
        font = QFont(option.font)
        font.setBold(True)
        font.setPointSizeF(max(option.font.pointSizeF() - 1.0, 7.0))
        painter.setFont(font)
        badge = QRect(frame.left() + 4, frame.top() + 4, frame.width() - 8, 18)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(style.MARK_COLORS[mark])
        painter.drawRoundedRect(badge, 4, 4)
        painter.setPen(style.TILE_BG)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, style.MARK_BADGES[mark])


class ResultGrid(QListView):
    """Tiles of the selected query's ranked list; click selects, Enter/double-click activates."""

    activated_result = Signal()
    #: Right-click on a tile (already selected): the global position for the marks menu.
    menu_requested = Signal(QPoint)

    def __init__(self, state: ViewerState, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.state = state
        self.model_ = ResultModel(state, self)
        self.setModel(self.model_)
        self.setItemDelegate(ResultDelegate(state, thumbnails, self))
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setSpacing(4)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self._syncing = False
        self.selectionModel().currentChanged.connect(self._on_current_changed)
        self.doubleClicked.connect(lambda _index: self.activated_result.emit())
        for name in ("selected_query", "distmat", "junk_mode", "extra_queries", "session",
                     "overrides", "filter_gallery_cam", "second_ranks"):
            state.events[name].connect(self.refresh)
        state.events.top_k.connect(self._more_or_less)
        state.events.selected_result.connect(self._show_selection)
        state.events.marks.connect(lambda *_a: self.viewport().update())
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.customContextMenuRequested.connect(self._context_menu)

    def _context_menu(self, pos: QPoint) -> None:
        """Right-click selects the tile under the pointer and asks for the marks menu."""
        index = self.indexAt(pos)
        if not index.isValid():
            return
        self.state.selected_result = index.row()
        self.menu_requested.emit(self.viewport().mapToGlobal(pos))

    def _scrolled(self, value: int) -> None:
        """Scrolling to the end of the list shows more results (as Right past the last tile)."""
        bar = self.verticalScrollBar()
        if self._syncing or bar.maximum() == 0 or value < bar.maximum():
            return
        state = self.state
        if state.session is None:
            return
        state.show_more(state.top_k + state.MORE_STEP, "by scrolling past the last result")

    def _more_or_less(self, _top_k: int) -> None:
        # Same query, longer or shorter list: keep the scroll position.
        value = self.verticalScrollBar().value()
        self.refresh()
        self._syncing = True
        try:
            self.verticalScrollBar().setValue(value)
        finally:
            self._syncing = False

    def refresh(self, _value=None) -> None:
        self._syncing = True
        try:
            self.model_.refresh()
            self.doItemsLayout()  # lay out now, so the scroll range is right at once
        finally:
            self._syncing = False
        self._show_selection(self.state.selected_result)

    def _show_selection(self, position: int) -> None:
        self._syncing = True
        try:
            if 0 <= position < self.model_.rowCount():
                index = self.model_.index(position)
                self.selectionModel().setCurrentIndex(
                    index, self.selectionModel().SelectionFlag.ClearAndSelect)
                self.scrollTo(index)
            else:
                self.selectionModel().clearSelection()
        finally:
            self._syncing = False

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not self._syncing and current.isValid():
            self.state.selected_result = current.row()
