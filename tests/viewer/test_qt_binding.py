"""The Qt binding itself: a PySide6 release that leaks references to None crashes a long session."""
from __future__ import annotations

import sys

from PySide6.QtGui import QImage, QPainter, QPixmap


def test_painting_keeps_the_reference_count_of_none(qapp):
    # PySide6 6.12.0 dropped one reference to None per QPainter.save/restore/drawPixmap call;
    # after enough repaints the interpreter aborts ("none_dealloc"). pyproject pins it out.
    image, pixmap = QImage(32, 32, QImage.Format.Format_RGB32), QPixmap(4, 4)
    painter = QPainter(image)
    try:
        before = sys.getrefcount(None)
        for _ in range(200):
            painter.save()
            painter.drawPixmap(0, 0, pixmap)
            painter.restore()
        after = sys.getrefcount(None)
    finally:
        painter.end()
    assert after - before > -50, f"None lost {before - after} references in 600 QPainter calls"
