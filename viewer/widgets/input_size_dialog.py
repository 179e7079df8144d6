"""Ask for the input size of another project's checkpoint when its file does not tell."""
from __future__ import annotations

import os
import re

from PySide6.QtWidgets import QInputDialog, QWidget

__all__ = ["ask_input_size", "parse_size"]


def parse_size(text: str) -> tuple[int, int] | None:
    """``"384 x 128"`` (or ``384x128``, ``384,128``) -> ``(384, 128)``; None when it is not two
    positive whole numbers."""
    match = re.fullmatch(r"\s*(\d+)\s*[x×,*]\s*(\d+)\s*", text or "")
    if match is None:
        return None
    height, width = int(match.group(1)), int(match.group(2))
    return (height, width) if height > 0 and width > 0 else None


def ask_input_size(parent: QWidget | None, needs) -> tuple[int, int] | None:
    """The ``(height, width)`` the user picks for ``needs`` (viewer.tasks.NeedsSize), from its
    candidates or typed; None when cancelled."""
    items = [f"{h} x {w}" for h, w in needs.candidates] or ["256 x 128"]
    text, ok = QInputDialog.getItem(
        parent, "Input size",
        f"{os.path.basename(needs.source)}: {needs.message}\n\n"
        "The image size (height x width) it was trained with:", items, 0, True)
    return parse_size(text) if ok else None
