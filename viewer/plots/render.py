"""Drawing of the analysis plots with pyqtgraph for the viewer's plots panel (the command
line's ``evaluate --plots`` draws its PNGs without Qt: :mod:`engine.analysis.plot_png`).

The numbers come from :mod:`engine.analysis.plot_data`; nothing here computes more than a unit change
(fractions to percent, FPR to its log axis).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QColor

from engine.analysis.plot_data import FPR_TARGETS, CameraPairs, PlotSet, StageAnalysis
from engine.postprocess.params import TLiftParams
from engine.postprocess.pipeline import SweepPoint

__all__ = ["PARAM_LABELS", "SUBSET_TITLES", "draw_camera_pairs", "draw_cmc", "draw_distribution",
           "draw_roc", "draw_sweep", "image_png", "stage_color", "sweep_position"]

TRUE_COLOR = QColor("#2e9e44")
FALSE_COLOR = QColor("#d64541")
RANK1_COLOR = QColor("#2b6cb0")
MAP_COLOR = QColor("#d97706")
SUBSET_TITLES = {"all": "all pairs", "same_camera": "same camera",
                 "other_camera": "other camera"}
PARAM_LABELS = {"tau": "tau (s)", "sigma": "sigma (s)", "k": "K", "alpha": "alpha"}


def stage_color(name: str) -> QColor:
    """One colour per post-processing stage, the same in every plot."""
    if name.endswith("+rr+tlift"):
        return QColor("#2e9e44")
    if name.endswith("+tlift"):
        return QColor("#8250df")
    if name.endswith("+rr"):
        return QColor("#d97706")
    return QColor("#2b6cb0")


def _pen(color: QColor, width: float = 2.0, style=Qt.PenStyle.SolidLine):
    pen = pg.mkPen(color, width=width)
    pen.setStyle(style)
    return pen


def _plain_numbers(axis: pg.AxisItem) -> None:
    """Tick labels in the data's own units: no "(x0.001)" rescaling of small ranges."""
    if axis.autoSIPrefix:
        axis.enableAutoSIPrefix(False)
        # pyqtgraph 0.14 still computes a scale while switching the prefix off: reset it.
        axis.autoSIPrefixScale, axis.labelUnitPrefix = 1.0, ""
        axis._updateLabel()


def _reset(plot: pg.PlotItem, title: str, x: str, y: str, legend=(-8, 8)) -> pg.LegendItem:
    """Clear a plot for a redraw; ``legend`` is its offset (negative = from the right/bottom)."""
    plot.clear()
    if plot.legend is not None:
        plot.legend.clear()
        plot.legend.setOffset(legend)
    else:
        plot.addLegend(offset=legend, labelTextSize="9pt", brush=pg.mkBrush(255, 255, 255, 210))
    for side in ("bottom", "left"):
        _plain_numbers(plot.getAxis(side))
    plot.setTitle(title, size="10pt")
    plot.setLabel("bottom", x)
    plot.setLabel("left", y)
    plot.showGrid(x=True, y=True, alpha=0.25)
    return plot.legend


def draw_cmc(plot: pg.PlotItem, plots: PlotSet) -> None:
    """Matching rate (%) against rank, one curve per stage."""
    _reset(plot, "CMC", "rank", "matching rate (%)", legend=(-8, -8))
    for s in plots.stages:
        ranks = np.arange(1, len(s.cmc) + 1)
        plot.plot(ranks, 100.0 * s.cmc, pen=_pen(stage_color(s.name)),
                  name=f"{s.name}  R1 {100 * s.rank1:.1f}  mAP {100 * s.mean_ap:.1f}")
    plot.setLogMode(False, False)
    plot.setXRange(1, max(len(s.cmc) for s in plots.stages), padding=0.02)
    plot.setYRange(0, 100, padding=0.02)


def draw_roc(plot: pg.PlotItem, plots: PlotSet, legend: pg.LegendItem, fpr: float = 1e-3) -> None:
    """TPR (%) against FPR on a log axis, one curve per stage; TPR at ``fpr`` in ``legend``,
    laid out off the plot (the curves fill the whole log-FPR range)."""
    _reset(plot, "ROC (pairs, junk removed)", "false positive rate",
           "true positive rate (%)").setVisible(False)
    legend.clear()
    legend.addItem(pg.PlotDataItem(pen=None), f"TPR at FPR {fpr:g}:")  # a heading: no sample
    plot.setLogMode(True, False)
    for s in plots.stages:
        keep = s.roc.fpr > 0
        name = f"{s.name}  {_pct(s.roc.at.get(fpr))}"
        curve = plot.plot(s.roc.fpr[keep], 100.0 * s.roc.tpr[keep], pen=_pen(stage_color(s.name)))
        legend.addItem(curve, name)
    for x in FPR_TARGETS:
        plot.addItem(pg.InfiniteLine(math.log10(x), angle=90,
                                     pen=_pen(QColor("#8c959f"), 1, Qt.PenStyle.DashLine)))
    plot.setYRange(0, 100, padding=0.02)


def _pct(value) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def draw_distribution(plot: pg.PlotItem, stage: StageAnalysis, subset: str,
                      marks: tuple[np.ndarray, np.ndarray] | None = None,
                      log_y: bool = False) -> None:
    """Density of true and false pair scores of one subset; the query's own pairs as ticks
    under the axis. ``log_y`` shows both classes when one is far denser than the other."""
    h = stage.histogram
    _reset(plot, "", "score (1 - distance)", "density (log)" if log_y else "density")
    plot.legend.setVisible(False)  # it would cover the histograms: the title says it all
    n_true, n_false = (int(h.counts[(subset, label)].sum()) for label in ("true", "false"))
    true_text = (f"true ({n_true:,})" if subset != "same_camera"
                 else "no true pairs (same id + camera = junk)")
    plot.setTitle(f"{stage.name}, {SUBSET_TITLES[subset]}<br>"
                  f'<span style="color:{TRUE_COLOR.name()}">{true_text}</span> / '
                  f'<span style="color:{FALSE_COLOR.name()}">false ({n_false:,})</span>'
                  + (" pairs; ▲ this query's" if marks is not None else " pairs"), size="9pt")
    plot.setLogMode(False, log_y)
    densities = {label: h.density(subset, label) for label in ("true", "false")}
    positive = np.concatenate([d[d > 0] for d in densities.values()])
    top = float(positive.max()) if positive.size else 1.0
    floor = float(positive.min()) / 3.0 if positive.size else 1e-3
    for label, color in (("false", FALSE_COLOR), ("true", TRUE_COLOR)):
        fill = QColor(color)
        fill.setAlpha(60)
        y = np.maximum(densities[label], floor) if log_y else densities[label]
        # fillLevel is in view coordinates: log10 units on a log axis
        plot.plot(h.edges, y, stepMode="center", fillLevel=math.log10(floor) if log_y else 0,
                  brush=fill, pen=_pen(color, 1.5), name=f"{label} pairs")
    if log_y:
        # view coordinates are log10 here (items added directly are not transformed)
        low, high = math.log10(floor) - 0.4, math.log10(top) + 0.1
        mark_y = low + 0.15
    else:
        low, high, mark_y = -0.08 * top, 1.05 * top, -0.04 * top
    if marks is not None:
        for scores, color, name in ((marks[1], FALSE_COLOR, "this query: false"),
                                    (marks[0], TRUE_COLOR, "this query: true")):
            if len(scores):
                plot.addItem(pg.ScatterPlotItem(
                    scores, np.full(len(scores), mark_y), symbol="t1", size=9,
                    pen=pg.mkPen(color.darker(130)), brush=pg.mkBrush(color), name=name))
    plot.setYRange(low, high, padding=0)


def draw_camera_pairs(plot: pg.PlotItem, cameras: CameraPairs, metric: str,
                      title: str = "") -> pg.ImageItem:
    """A query-camera x gallery-camera matrix of rank-1 or mAP (%), values written in cells."""
    values = 100.0 * (cameras.rank1 if metric == "rank1" else cameras.mean_ap)  # [cq, cg]
    plot.clear()
    plot.setLogMode(False, False)
    plot.setTitle(title or f"{'rank-1' if metric == 'rank1' else 'mAP'} (%) per camera pair",
                  size="10pt")
    plot.setLabel("bottom", "gallery camera")
    plot.setLabel("left", "query camera")
    plot.showGrid(x=False, y=False)
    shown = np.where(np.isnan(values), np.nan, values)
    image = pg.ImageItem(shown.T, axisOrder="col-major")  # x = gallery camera, y = query camera
    image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
    finite = values[np.isfinite(values)]
    image.setLevels((float(finite.min()) if finite.size else 0.0,
                     float(finite.max()) if finite.size else 100.0))
    plot.addItem(image)
    nq, ng = values.shape
    lo, hi = image.getLevels()
    for i in range(nq):
        for j in range(ng):
            v = values[i, j]
            # viridis is light at its top: dark text there, white text on the dark end
            light = not math.isnan(v) and (v - lo) > 0.6 * max(hi - lo, 1e-9)
            text = pg.TextItem("–" if math.isnan(v) else f"{v:.1f}", anchor=(0.5, 0.5),
                               color="#1f2328" if math.isnan(v) or light else "w")
            text.setPos(j + 0.5, i + 0.5)
            plot.addItem(text)
    plot.getAxis("bottom").setTicks([[(j + 0.5, f"c{c + 1}") for j, c in
                                      enumerate(cameras.gallery_cams)]])
    plot.getAxis("left").setTicks([[(i + 0.5, f"c{c + 1}") for i, c in
                                    enumerate(cameras.query_cams)]])
    plot.invertY(True)
    plot.setRange(xRange=(0, ng), yRange=(0, nq), padding=0)
    plot.setMouseEnabled(False, False)
    return image


def sweep_position(values: list[float], value: float) -> float:
    """Where ``value`` sits on a sweep's evenly spaced axis (interpolated between its points)."""
    values = [float(v) for v in values]
    if value in values:
        return float(values.index(value))
    order = np.argsort(values)
    return float(np.interp(value, np.asarray(values)[order], order.astype(float)))


def draw_sweep(plot: pg.PlotItem, parameter: str, points: list[SweepPoint],
               base_value: float | None = None) -> list[pg.PlotDataItem]:
    """Rank-1 and mAP (%) against one TLift parameter, its values evenly spaced as in the
    appendix's tables; the default (dashed) and the value the sweep started from (dotted)."""
    _reset(plot, "", PARAM_LABELS[parameter], "%")
    plot.legend.setVisible(False)  # the title names the two curves in their colours
    plot.setTitle(f'<span style="color:{RANK1_COLOR.name()}">rank-1</span> and '
                  f'<span style="color:{MAP_COLOR.name()}">mAP</span> vs {PARAM_LABELS[parameter]}',
                  size="10pt")
    plot.setLogMode(False, False)
    values = [p.value for p in points]
    x = np.arange(len(points), dtype=float)
    curves = []
    for key, color, name in (("rank1", RANK1_COLOR, "rank-1"), ("mean_ap", MAP_COLOR, "mAP")):
        y = np.array([100.0 * getattr(p, key) for p in points])
        curves.append(plot.plot(x, y, pen=_pen(color), symbol="o", symbolSize=7,
                                symbolBrush=pg.mkBrush(color), symbolPen=pg.mkPen(color),
                                name=name))
    default = getattr(TLiftParams(), parameter)
    # Every other value labelled (ten labels do not fit a narrow plot), the default always.
    anchor = values.index(default) if default in values else 0
    labelled = {i for i in range(len(values)) if (i - anchor) % 2 == 0}
    plot.getAxis("bottom").setTicks([
        [(i, f"{v:g}") for i, v in enumerate(values) if i in labelled],
        [(i, "") for i in range(len(values)) if i not in labelled]])
    plot.addItem(pg.InfiniteLine(sweep_position(values, default), angle=90,
                                 pen=_pen(QColor("#57606a"), 1.2, Qt.PenStyle.DashLine),
                                 label="default", labelOpts={"position": 0.92, "color": "#57606a"}))
    if base_value is not None and base_value != default:
        plot.addItem(pg.InfiniteLine(sweep_position(values, base_value), angle=90,
                                     pen=_pen(QColor("#8250df"), 1.2, Qt.PenStyle.DotLine),
                                     label="current", labelOpts={"position": 0.8,
                                                                 "color": "#8250df"}))
    plot.setXRange(-0.3, len(points) - 0.7, padding=0)
    return curves


# ---------------------------------------------------------------------- files
def image_png(item) -> bytes:
    """PNG bytes of a pyqtgraph item or layout, through pyqtgraph's ImageExporter."""
    from pyqtgraph.exporters import ImageExporter

    exporter = ImageExporter(item)
    exporter.parameters()["width"] = int(item.boundingRect().width()) * 2  # sharper text
    image = exporter.export(toBytes=True)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):
        raise OSError("could not encode the plot as PNG")
    buffer.close()
    return bytes(data.data())
