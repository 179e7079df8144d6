"""The path dock: a camera x time chart (pyqtgraph) of the selected query's sightings, faded
candidates, legs coloured by how plausible their transit is, and the camera-pair table."""
from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QDockWidget,
    QGraphicsItem,
    QGraphicsPixmapItem,
    QLabel,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer import style
from viewer.formatting import camera_base, format_cam, format_time
from viewer.path.controller import PathController
from viewer.path.state import CANDIDATE, LEARNED, QUERY, format_seconds
from viewer.widgets.thumbnails import ThumbnailCache

__all__ = ["PathDock", "plausibility_color"]

THUMB = (32, 64)
UNKNOWN = QColor("#8c959f")


def plausibility_color(value: float) -> QColor:
    """Red (0: implausible) through amber to green (1: as expected); grey when unknown."""
    if not math.isfinite(value):
        return UNKNOWN
    value = min(max(value, 0.0), 1.0)
    hue = 120.0 * value / 360.0   # 0 red, 1/3 green
    return QColor.fromHsvF(hue, 0.8, 0.8)


class TimeAxis(pg.AxisItem):
    """Seconds written as ``h:mm:ss``."""

    def tickStrings(self, values, scale, spacing):
        return [format_time(v * scale)[:-2] for v in values]


class CameraAxis(pg.AxisItem):
    """Rows named by camera."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.names: list[str] = []

    def tickStrings(self, values, scale, spacing):
        return [self.names[int(v)] if float(v).is_integer() and 0 <= int(v) < len(self.names)
                else "" for v in values]


class PathDock(QDockWidget):
    """The person's path of the selected query; click a point to select it in the grid."""

    def __init__(self, controller: PathController, thumbnails: ThumbnailCache, parent=None):
        super().__init__("Person's path (camera × time)", parent)
        self.setObjectName("pathDock")
        self.controller, self.thumbnails = controller, thumbnails
        self.cameras = CameraAxis("left")
        self.plot = pg.PlotWidget(axisItems={"bottom": TimeAxis("bottom"), "left": self.cameras},
                                  background="w")
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.getPlotItem().hideButtons()
        self.plot.setLabel("bottom", "capture time")
        self.note = QLabel()
        self.note.setObjectName("dim")
        self.note.setWordWrap(True)
        self.table = QTableWidget(0, 4)
        self.table.setHorizontalHeaderLabels(["cameras", "confirmed: median (n)",
                                              "learned: most likely (n)",
                                              "TLift pivots: median (n)"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setToolTip("Transit per camera pair: the median over consecutive confirmed "
                              "sightings; the most likely one under the transit model learned "
                              "from the gallery's confident cross-camera matches (n: matches "
                              "behind it; docs/arithmetic.md 12.4); the median over TLift's "
                              "pivots (the K best matches of every query of the first camera in "
                              "the second; docs/arithmetic.md 13)")
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setSizes([320, 120])
        layout.addWidget(self.note)
        layout.addWidget(split, 1)
        self.setWidget(body)
        self.scatter = None
        controller.changed.connect(self.draw)
        self.visibilityChanged.connect(lambda on: controller.set_active(bool(on)))

    def draw(self) -> None:
        model = self.controller.model
        plot = self.plot.getPlotItem()
        plot.clear()
        self.scatter = None
        self.note.setText(model.reason or model.note or
                          "Black frame: the query; blue: marked same person; faded: the best "
                          "unmarked results. Legs: green = a transit the learned transit model "
                          "finds likely for the pair (TLift's pivots where it has none), red = "
                          "unlikely, grey dashed = unknown. Click a point to select it in the "
                          "grid.")
        base = camera_base(self.controller.viewer)
        self.cameras.names = [format_cam(c, base) for c in model.cameras]
        self._fill_table(model, base)
        if model.reason or not model.points:
            return
        row = {cam: i for i, cam in enumerate(model.cameras)}
        for leg in model.legs:
            color = plausibility_color(leg.plausibility)
            pen = QPen(color, 3)
            if not math.isfinite(leg.plausibility):
                pen.setStyle(Qt.PenStyle.DashLine)
            pen.setCosmetic(True)
            plot.addItem(pg.PlotDataItem([leg.start.time, leg.end.time],
                                         [row[leg.start.cam], row[leg.end.cam]], pen=pen))
            text = format_seconds(leg.transit)
            if math.isfinite(leg.plausibility):
                likely = "likely" if leg.basis == LEARNED else "pivots"
                text += f"  p={leg.plausibility:.2f} ({likely} {format_seconds(leg.expected)})"
            label = pg.TextItem(text, color=color.darker(130), anchor=(0.5, 1.4))
            label.setPos((leg.start.time + leg.end.time) / 2, (row[leg.start.cam] + row[leg.end.cam]) / 2)
            plot.addItem(label)
        spots = []
        for point in model.points:
            faded = point.kind == CANDIDATE
            pixmap = self.thumbnails.get(point.path, *THUMB)
            item = QGraphicsPixmapItem(pixmap)
            item.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
            item.setOffset(-pixmap.width() / 2, -pixmap.height() / 2)
            item.setOpacity(0.35 if faded else 1.0)
            item.setZValue(5 if faded else 10)   # a candidate never hides a sighting
            item.setPos(point.time, row[point.cam])
            item.setToolTip(point.path)
            plot.addItem(item)
            color = (style.TEXT if point.kind == QUERY else
                     style.JUNK if faded else style.MARK_COLORS["same"])

            spots.append({"pos": (point.time, row[point.cam]), "data": point.gallery,
                          "size": THUMB[1] + 6, "symbol": "s",
                          "pen": pg.mkPen(color, width=1 if faded else 3), "brush": None})
        self.scatter = pg.ScatterPlotItem(spots=spots, pxMode=True)
        self.scatter.sigClicked.connect(self._clicked)
        plot.addItem(self.scatter)
        times = [p.time for p in model.points]
        pad = max(30.0, 0.08 * (max(times) - min(times)))
        plot.setXRange(min(times) - pad, max(times) + pad, padding=0)
        plot.setYRange(-0.6, len(model.cameras) - 0.4, padding=0)
        self.plot.getAxis("left").setTicks([[(i, n) for i, n in enumerate(self.cameras.names)]])

    def _fill_table(self, model, base: int) -> None:
        self.table.setRowCount(len(model.pairs))
        for i, pair in enumerate(model.pairs):
            cells = (f"{format_cam(pair.start, base)} → {format_cam(pair.end, base)}",
                     "–" if pair.confirmed is None else
                     f"{format_seconds(pair.confirmed.median)} ({pair.confirmed.count})",
                     "–" if pair.learned is None else
                     f"{format_seconds(pair.learned)} ({pair.learned_count})",
                     "–" if pair.model is None else
                     f"{format_seconds(pair.model.median)} ({pair.model.count})")
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def _clicked(self, _scatter, points, _event=None) -> None:
        if len(points):
            self.controller.select(int(points[0].data()))
