"""The occlusion panel (a dock beside the query): drag a square over the query to rank an
occluded copy, previews of the training augmentations, and a sensitivity heatmap.

Thin widgets over :class:`viewer.occlusion.state.OcclusionState`; the work runs in
:class:`viewer.occlusion.controller.OcclusionController`'s jobs. pyqtgraph is imported when the
dock is first shown (it costs most of a second, which the first paint should not pay).
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from viewer.occlusion.controller import OcclusionController
from viewer.occlusion.state import (
    FILL_LABELS,
    FILL_TIPS,
    PREVIEW_LABELS,
    PREVIEW_SHORT,
    SENSITIVITY_MODES,
    OcclusionOverride,
    before_after_text,
)
from viewer.progress import ProgressClock
from viewer.widgets.job_progress import show_progress

__all__ = ["OcclusionDock", "OcclusionPanel", "rgb_pixmap"]

# Square moves and resizes by this many image pixels per key press.
KEY_STEP = 2
# After the last key press, the square counts as released after this pause (ms).
KEY_RELEASE_MS = 350
SQUARE_PEN = QColor("#2b6cb0")
PREVIEW_PEN = QColor("#e8590c")


def rgb_pixmap(image: np.ndarray, scale: int = 1, box=None) -> QPixmap:
    """A QPixmap of an RGB ``uint8 [H, W, 3]`` image, scaled up, with ``box`` (x, y, w, h) outlined."""
    image = np.ascontiguousarray(image)
    h, w = image.shape[:2]
    qimage = QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    pixmap = QPixmap.fromImage(qimage.scaled(w * scale, h * scale))
    if box is not None:
        painter = QPainter(pixmap)
        painter.setPen(QPen(PREVIEW_PEN, 2))
        x, y, bw, bh = box
        painter.drawRect(x * scale, y * scale, bw * scale - 1, bh * scale - 1)
        painter.end()
    return pixmap


class QueryCanvas(QWidget):
    """The query image with the draggable square (handles) and the sensitivity heatmap.

    Keys while it has focus: arrows move the square, ``+``/``-`` resize it, Enter ranks now,
    Backspace resets. A mouse release, or a pause after the last key, ranks the occluded query.
    """

    wants_arrow_keys = True   # viewer.keyboard leaves the arrows to this widget

    def __init__(self, state, viewer, on_release, parent=None):
        import pyqtgraph as pg

        super().__init__(parent)
        self.state, self.viewer, self.on_release = state, viewer, on_release
        self._moving = False   # dragged or moved by keys, not yet ranked
        self.view = pg.GraphicsLayoutWidget()
        self.view.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.view.wants_arrow_keys = True
        self.view.keyPressEvent = self.keyPressEvent  # the view holds the focus
        self.view.setBackground("w")
        self.box_view = self.view.addViewBox(row=0, col=0, lockAspect=True, invertY=True,
                                             enableMouse=False)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.heat = pg.ImageItem(axisOrder="row-major")
        self.heat.setOpacity(0.5)
        self.heat.setZValue(5)
        self.box_view.addItem(self.image)
        self.box_view.addItem(self.heat)
        self.cmap = pg.colormap.get("CET-D1A")
        self.colorbar = pg.ColorBarItem(colorMap=self.cmap, interactive=False, width=12)
        self.colorbar.setImageItem(self.heat)
        self.view.addItem(self.colorbar, row=0, col=1)
        self.roi = pg.ROI((0, 0), (10, 10), pen=pg.mkPen(SQUARE_PEN, width=2),
                          hoverPen=pg.mkPen("#e8590c", width=2), snapSize=1.0,
                          translateSnap=True, scaleSnap=True, removable=False)
        self.roi.addScaleHandle((1, 1), (0, 0), lockAspect=True)
        self.roi.addScaleHandle((0, 0), (1, 1), lockAspect=True)
        self.roi.setZValue(10)
        self.box_view.addItem(self.roi)
        self.roi.sigRegionChangeFinished.connect(self._roi_released)
        self.roi.sigRegionChanged.connect(self._roi_moved)
        self._syncing = False
        self._key_timer = QTimer(self)
        self._key_timer.setSingleShot(True)
        self._key_timer.setInterval(KEY_RELEASE_MS)
        self._key_timer.timeout.connect(self._keys_released)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self.setMinimumSize(160, 200)
        for name in ("image", "box", "fill"):
            state.events[name].connect(lambda _v: self.refresh())
        for name in ("sensitivity", "show_heatmap"):
            state.events[name].connect(lambda _v: self.refresh_heat())
        viewer.events.overrides.connect(lambda _v: self._show_occluded())
        self.refresh()
        self.refresh_heat()

    def sizeHint(self) -> QSize:
        return QSize(260, 320)

    # ------------------------------------------------------------------ state -> widget
    def refresh(self) -> None:
        image, box = self.state.image, self.state.box
        self.roi.setVisible(image is not None and box is not None)
        if image is None:
            self.image.clear()
            return
        h, w = image.shape[:2]
        self.roi.maxBounds = QRectF(0, 0, w, h)
        self.box_view.setRange(QRectF(0, 0, w, h), padding=0.02)
        if box is not None:
            self._syncing = True
            try:
                x, y, bw, bh = box
                self.roi.setPos((x, y), update=False, finish=False)
                self.roi.setSize((bw, bh), finish=False)
            finally:
                self._syncing = False
        self._show_occluded()

    def _roi_moved(self, _roi=None) -> None:
        if not self._syncing:
            self._moving = True
            self._show_occluded()

    def _show_occluded(self) -> None:
        """The query; with the square filled while it moves or while its ranking is shown
        (at rest and reset, only its outline), so what is drawn is what was ranked."""
        from engine.explain.occlusion import occlude

        image = self.state.image
        if image is None:
            return
        if self.roi.isVisible() and (self._moving or self._square_shown()):
            image = occlude(image, self._box_from_roi(), self.state.fill)
        self.image.setImage(image, autoLevels=False, levels=(0, 255))

    def _square_shown(self) -> bool:
        """Whether the grid shows the ranking of the query occluded by the square."""
        override = self.viewer.override(self.state.query)
        return isinstance(override, OcclusionOverride) and override.source == "square"

    def refresh_heat(self) -> None:
        result = self.state.sensitivity
        show = result is not None and self.state.show_heatmap and result.query == self.state.query
        self.heat.setVisible(show)
        self.colorbar.setVisible(show)
        if not show:
            return
        values = np.asarray(result.values, np.float32)
        limit = float(max(np.abs(values).max(), 1e-6))
        self.heat.setImage(values, autoLevels=False)
        self.heat.setRect(QRectF(*result.extent()))
        self.colorbar.setLevels((-limit, limit))

    # ------------------------------------------------------------------ widget -> state
    def _box_from_roi(self) -> tuple[int, int, int, int]:
        pos, size = self.roi.pos(), self.roi.size()
        side = max(1, int(round(min(size.x(), size.y()))))
        return int(round(pos.x())), int(round(pos.y())), side, side

    def _roi_released(self, _roi=None) -> None:
        if self._syncing or self.state.image is None:
            return
        self.state.box = self._box_from_roi()
        self._moving = False
        self.on_release()

    def _keys_released(self) -> None:
        self._moving = False
        self.on_release()

    def keyPressEvent(self, event) -> None:
        image, box = self.state.image, self.state.box
        if image is None or box is None:
            return
        h, w = image.shape[:2]
        x, y, side, _ = box
        key = event.key()
        moves = {Qt.Key.Key_Left: (-KEY_STEP, 0), Qt.Key.Key_Right: (KEY_STEP, 0),
                 Qt.Key.Key_Up: (0, -KEY_STEP), Qt.Key.Key_Down: (0, KEY_STEP)}
        if key in moves:
            dx, dy = moves[key]
            x, y = x + dx, y + dy
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            x, y, side = x - KEY_STEP // 2, y - KEY_STEP // 2, side + KEY_STEP
        elif key == Qt.Key.Key_Minus:
            x, y, side = x + KEY_STEP // 2, y + KEY_STEP // 2, max(2, side - KEY_STEP)
        elif key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._key_timer.stop()
            self._keys_released()
            return
        elif key == Qt.Key.Key_Backspace:
            self.state.events.reset_requested.emit()
            return
        else:
            event.ignore()
            return
        side = min(side, h, w)
        x, y = min(max(x, 0), w - side), min(max(y, 0), h - side)
        self._moving = True
        self.state.box = (x, y, side, side)
        self._key_timer.start()


class PreviewTile(QToolButton):
    """One augmentation preview: the occluded query with its box outlined; click ranks it."""

    def __init__(self, index: int, on_click, parent=None):
        super().__init__(parent)
        self.index = index
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextUnderIcon)
        self.setAutoRaise(True)
        self.clicked.connect(lambda: on_click(self.index))

    def show_preview(self, preview) -> None:
        self.setIcon(rgb_pixmap(preview.image, 1, preview.box))
        self.setIconSize(QSize(56, 112))
        self.setText(PREVIEW_SHORT.get(preview.name, preview.name))
        box = "no region" if preview.box is None else "box x={} y={} w={} h={}".format(*preview.box)
        self.setToolTip(f"{PREVIEW_LABELS.get(preview.name, preview.name)} ({box}); "
                        "click to rank this image as the query")


class OcclusionPanel(QWidget):
    """The square, its fill, Reset, the before/after numbers, previews and the sensitivity map."""

    def __init__(self, controller: OcclusionController, parent=None):
        super().__init__(parent)
        self.controller = controller
        self.state = state = controller.state
        self.viewer = controller.viewer
        self.canvas = QueryCanvas(state, controller.viewer, controller.apply_square)
        state.events.reset_requested.connect(controller.reset)

        self.fill = QComboBox()
        for key, label in FILL_LABELS.items():
            self.fill.addItem(label, key)
            self.fill.setItemData(self.fill.count() - 1, FILL_TIPS[key], Qt.ItemDataRole.ToolTipRole)
        self.fill.currentIndexChanged.connect(self._fill_changed)
        self.rank_button = QPushButton("Rank")
        self.rank_button.setToolTip("Rank the query with the square (also: release the square, Enter)")
        self.rank_button.clicked.connect(controller.apply_square)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the unoccluded query's ranking (Backspace)")
        self.reset_button.clicked.connect(controller.reset)
        row = QHBoxLayout()
        row.addWidget(QLabel("Fill"))
        row.addWidget(self.fill, 1)
        row.addWidget(self.rank_button)
        row.addWidget(self.reset_button)
        self.numbers = QLabel()
        self.numbers.setWordWrap(True)
        self.numbers.setObjectName("title")
        self.note = QLabel()
        self.note.setObjectName("dim")
        self.note.setWordWrap(True)
        hint = QLabel("Drag the square or its corner handles; keys: arrows move, +/− resize, "
                      "Enter ranks, Backspace resets.")
        hint.setObjectName("dim")
        hint.setWordWrap(True)

        # Previews of the training augmentations.
        previews = QGroupBox("Training augmentations on this query")
        self.tiles = [PreviewTile(i, controller.rank_preview) for i in range(3)]
        tiles = QHBoxLayout()
        for tile in self.tiles:
            tiles.addWidget(tile)
        tiles.addStretch(1)
        self.new_sample = QPushButton("New sample")
        self.new_sample.setToolTip("Draw new random boxes (the transforms training uses)")
        self.new_sample.clicked.connect(lambda: controller.new_previews())
        previews_layout = QVBoxLayout(previews)
        previews_layout.addLayout(tiles)
        previews_hint = QLabel("Click one to rank it as the query.")
        previews_hint.setObjectName("dim")
        previews_hint.setWordWrap(True)
        under = QHBoxLayout()
        under.addWidget(previews_hint, 1)
        under.addWidget(self.new_sample)
        previews_layout.addLayout(under)

        # Sensitivity map.
        sens = QGroupBox("Sensitivity map")
        self.mode = QComboBox()
        for key, label in SENSITIVITY_MODES.items():
            self.mode.addItem(label, key)
        # As wide as the dock allows (the list shows the entries whole).
        self.mode.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.mode.setMinimumContentsLength(12)
        self.mode.currentIndexChanged.connect(
            lambda _i: setattr(state, "mode", self.mode.currentData()))
        self.side = QSpinBox()
        self.side.setRange(0, 512)
        self.side.setSpecialValueText("auto (⅓ width)")
        self.side.setSuffix(" px")
        self.side.valueChanged.connect(lambda v: setattr(state, "side", v))
        self.stride = QSpinBox()
        self.stride.setRange(0, 512)
        self.stride.setSpecialValueText("auto (½ side)")
        self.stride.setSuffix(" px")
        self.stride.valueChanged.connect(lambda v: setattr(state, "stride", v))
        self.compute = QPushButton("Compute")
        self.compute.clicked.connect(controller.compute_sensitivity)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(controller.cancel_sensitivity)
        self.progress = QProgressBar()
        self._clock = ProgressClock()
        self.show_heat = QCheckBox("Show heatmap")
        self.show_heat.toggled.connect(lambda on: setattr(state, "show_heatmap", on))
        self.sens_text = QLabel()
        self.sens_text.setObjectName("dim")
        self.sens_text.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Shows", self.mode)
        form.addRow("Square", self.side)
        form.addRow("Stride", self.stride)
        buttons = QHBoxLayout()
        buttons.addWidget(self.compute)
        buttons.addWidget(self.cancel)
        buttons.addWidget(self.show_heat)
        sens_layout = QVBoxLayout(sens)
        sens_layout.addLayout(form)
        sens_layout.addLayout(buttons)
        sens_layout.addWidget(self.progress)
        sens_layout.addWidget(self.sens_text)

        for button in (self.rank_button, self.reset_button, self.new_sample, self.compute, self.cancel):
            # As wide as the text, not the style's 80 px: the dock fits beside the window's
            # centre at 1024 px.
            button.setMinimumWidth(button.fontMetrics().horizontalAdvance(button.text()) + 20)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(hint)
        layout.addLayout(row)
        layout.addWidget(self.numbers)
        layout.addWidget(self.note)
        layout.addWidget(previews)
        layout.addWidget(sens)

        for name in ("previews",):
            state.events[name].connect(lambda _v: self._show_previews())
        for name in ("running", "sens_progress", "sensitivity", "show_heatmap", "note",
                     "fill", "mode", "side", "stride", "image"):
            state.events[name].connect(lambda _v: self.refresh())
        self.viewer.events.overrides.connect(lambda _v: self.refresh())
        self._show_previews()
        self.refresh()

    def _fill_changed(self, _index: int) -> None:
        fill = self.fill.currentData()
        if fill != self.state.fill:
            self.state.fill = fill
            shown = self.controller.shown()
            if shown is not None and shown.source == "square":
                self.controller.apply_square()  # the square on show, refilled

    def _show_previews(self) -> None:
        previews = self.state.previews
        for i, tile in enumerate(self.tiles):
            tile.setVisible(i < len(previews))
            if i < len(previews):
                tile.show_preview(previews[i])

    def refresh(self) -> None:
        state = self.state
        for widget, value in ((self.fill, state.fill), (self.mode, state.mode)):
            widget.blockSignals(True)
            widget.setCurrentIndex(max(0, widget.findData(value)))
            widget.blockSignals(False)
        for spin, value in ((self.side, state.side), (self.stride, state.stride)):
            spin.blockSignals(True)
            spin.setValue(value)
            spin.blockSignals(False)
        self.show_heat.blockSignals(True)
        self.show_heat.setChecked(state.show_heatmap)
        self.show_heat.blockSignals(False)
        has_image = state.image is not None
        running = state.running
        if running == "rank":
            self.numbers.setText("Ranking the occluded query…")
        else:
            own = self.viewer.describe(state.query, own=True) if state.query >= 0 else None
            self.numbers.setText(before_after_text(self.controller.shown(), own))
        self.note.setText(state.note)
        for widget in (self.rank_button, self.reset_button, self.new_sample, self.compute):
            widget.setEnabled(has_image)
        self.compute.setEnabled(has_image and running != "sensitivity")
        self.cancel.setEnabled(running == "sensitivity")
        self.progress.setVisible(running == "sensitivity")
        if state.sens_progress is not None:
            show_progress(self.progress, self._clock, "sensitivity", *state.sens_progress, label="")
        self.show_heat.setEnabled(state.sensitivity is not None)
        self.sens_text.setText("" if state.sensitivity is None else state.sensitivity.describe())


class OcclusionDock(QDockWidget):
    """A dock holding the :class:`OcclusionPanel`, built when first shown.

    It is never narrower than the panel's content (nothing is cut off: it scrolls vertically,
    never sideways) and opens at the width it had last time (``settings`` key
    :data:`WIDTH_KEY`), else at :data:`DEFAULT_WIDTH`, as far as the window leaves room.
    """

    WIDTH_KEY = "occlusion/dock_width"
    DEFAULT_WIDTH = 340

    def __init__(self, controller: OcclusionController, parent=None, settings=None):
        super().__init__("Occlusion", parent)
        self.setObjectName("occlusionDock")
        self.controller = controller
        self.settings = settings    # a QSettings, or None: nothing remembered
        self.panel: OcclusionPanel | None = None
        self.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea
                             | Qt.DockWidgetArea.RightDockWidgetArea)
        self.visibilityChanged.connect(self._visibility)

    def _visibility(self, visible: bool) -> None:
        if visible and self.panel is None:
            self.panel = OcclusionPanel(self.controller)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
            scroll.setWidget(self.panel)
            bar = scroll.verticalScrollBar().sizeHint().width()
            scroll.setMinimumWidth(self.panel.minimumSizeHint().width() + bar + 2 * scroll.frameWidth())
            self.setWidget(scroll)
        if visible and not self.isFloating():
            # Once the dock is laid out: a width asked for before that is not kept.
            QTimer.singleShot(0, self._restore_width)
        elif not visible:
            self.save_width()
        self.controller.set_active(visible)

    def saved_width(self) -> int:
        value = None if self.settings is None else self.settings.value(self.WIDTH_KEY)
        try:
            return max(int(value), 0)
        except (TypeError, ValueError):
            return self.DEFAULT_WIDTH

    def _restore_width(self) -> None:
        window = self.parent()
        if self.isVisible() and not self.isFloating() and hasattr(window, "resizeDocks"):
            window.resizeDocks([self], [max(self.saved_width(), self.minimumSizeHint().width())],
                               Qt.Orientation.Horizontal)

    def save_width(self) -> None:
        """Remember the width for the next opening and the next launch."""
        if self.settings is not None and self.panel is not None and not self.isFloating():
            self.settings.setValue(self.WIDTH_KEY, self.width())
