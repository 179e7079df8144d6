"""Colours, sizes and the application style sheet, in one place so every widget agrees."""
from __future__ import annotations

from PySide6.QtGui import QColor

MATCH = QColor("#2e9e44")        # same identity
MISMATCH = QColor("#d64541")     # different identity
JUNK = QColor("#a0a4aa")         # same identity, same camera (ignored by the protocol)
UNKNOWN = QColor("#6b7785")      # external query: identity unknown
ACCENT = QColor("#2b6cb0")       # selection
MOVED_UP = QColor("#2e9e44")
MOVED_DOWN = QColor("#d64541")
TEXT = QColor("#1f2328")
TEXT_DIM = QColor("#656d76")
TILE_BG = QColor("#ffffff")
SELECTED_BG = QColor("#e3edf9")
FIRST_MODEL = QColor("#2b6cb0")  # model A in a comparison (the window's model)
SECOND_MODEL = QColor("#c26a12") # model B
# The user's marks (relevance feedback): not the identity colours, which say what the data knows.
MARK_COLORS = {"same": QColor("#1f6feb"), "different": QColor("#bf8700")}
MARK_BADGES = {"same": "✓ same", "different": "✗ not"}

STATUS_COLORS = {"true": MATCH, "false": MISMATCH, "junk": JUNK, "": UNKNOWN}

# Result tiles: thumbnail box and tile size in pixels.
RESULT_THUMB = (80, 160)
RESULT_TILE = (112, 242)
# Query browser rows.
QUERY_THUMB = (32, 64)
QUERY_ROW_HEIGHT = 72

STYLE_SHEET = """
QMainWindow, QWidget#panel { background: #f6f8fa; }
QLabel#title { font-size: 13px; font-weight: 600; color: #1f2328; }
QLabel#dim { color: #656d76; }
QLabel#big { font-size: 15px; font-weight: 600; }
QGroupBox { font-weight: 600; border: 1px solid #d0d7de; border-radius: 6px;
            margin-top: 10px; padding: 8px 6px 6px 6px; background: #ffffff; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; }
QFrame#card { background: #ffffff; border: 1px solid #d0d7de; border-radius: 6px; }
QFrame#errorBanner { background: #ffebe9; border: 1px solid #ff8182; border-radius: 6px; }
QLabel#errorText { color: #82071e; }
QListView { background: #ffffff; border: 1px solid #d0d7de; border-radius: 6px; }
QStatusBar QLabel { color: #3d444d; padding: 0 6px; }
"""
