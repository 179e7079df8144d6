"""Thumbnails as QPixmaps, decoded once at the size they are shown and kept (GUI thread only)."""
from __future__ import annotations

from collections import OrderedDict

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QImageReader, QPixmap

__all__ = ["ThumbnailCache"]


class ThumbnailCache:
    """Least-recently-used cache of scaled thumbnails keyed by (path, width, height).

    The reader decodes straight to the target size (``setScaledSize``), so a cache miss costs a
    fraction of a millisecond for a re-id crop; an unreadable file gives a grey placeholder
    pixmap rather than an error, since the browser must keep working.
    """

    def __init__(self, max_items: int = 6000):
        self.max_items = max_items
        self._items: OrderedDict[tuple[str, int, int], QPixmap] = OrderedDict()

    def get(self, path: str, width: int, height: int) -> QPixmap:
        key = (path, width, height)
        pixmap = self._items.get(key)
        if pixmap is not None:
            self._items.move_to_end(key)
            return pixmap
        pixmap = self._load(path, width, height)
        self._items[key] = pixmap
        if len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return pixmap

    @staticmethod
    def _load(path: str, width: int, height: int) -> QPixmap:
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        size = reader.size()
        if size.isValid():
            reader.setScaledSize(size.scaled(QSize(width, height), Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        if image.isNull():
            pixmap = QPixmap(width, height)
            pixmap.fill(QColor("#d0d7de"))
            return pixmap
        return QPixmap.fromImage(image)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)

