"""The analysis plots panel: CMC, ROC, score distributions, camera pairs and TLift sweeps.

Thin: it draws what :class:`viewer.plots.state.PlotsState` holds with :mod:`viewer.plots.render`,
shows the value under the mouse, exports each plot (PNG through pyqtgraph's exporter, CSV from
:mod:`engine.analysis.plot_csv`), and turns clicks into state changes through the plots controller.
"""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.analysis.plot_csv import plot_csv
from engine.analysis.plot_data import FPR_TARGETS
from engine.outputs import session_inputs, write_output_bytes
from viewer.plots.controller import PlotsController
from viewer.plots.render import (
    PARAM_LABELS,
    SUBSET_TITLES,
    draw_camera_pairs,
    draw_cmc,
    draw_distribution,
    draw_roc,
    draw_sweep,
    image_png,
)
from viewer.plots.state import plot_request, query_marks
from viewer.progress import ProgressClock
from viewer.widgets.job_progress import show_progress

__all__ = ["PlotTile", "PlotsPanel"]

SWEEP_PARAMS = ("tau", "sigma", "k", "alpha")


class PlotTile(QFrame):
    """A titled pyqtgraph view with PNG / CSV buttons and a one-line read-out of the hover."""

    def __init__(self, title: str, parent=None):
        super().__init__(parent)
        self.setObjectName("card")
        self.title = QLabel(title)
        self.title.setObjectName("title")
        self.png = QToolButton(text="PNG")
        self.png.setToolTip("Save this plot as a PNG image")
        self.csv = QToolButton(text="CSV")
        self.csv.setToolTip("Save this plot's data as CSV")
        self.controls = QHBoxLayout()
        self.controls.setContentsMargins(0, 0, 0, 0)
        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addStretch(1)
        header.addLayout(self.controls)
        header.addWidget(self.png)
        header.addWidget(self.csv)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setMinimumSize(300, 220)
        self.readout = QLabel(" ")
        self.readout.setObjectName("dim")
        # A longer read-out must not widen the tile: hovering would re-lay out the whole panel.
        self.readout.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.readout.setMinimumWidth(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setSpacing(2)
        layout.addLayout(header)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.readout)


class PlotsPanel(QWidget):
    """Every analysis plot of the current settings, refreshed by a :class:`PlotsController`."""

    def __init__(self, plots_controller: PlotsController, parent=None):
        super().__init__(parent)
        self.ctl = plots_controller
        self._sweep_drawn = False
        self._cams_hovered = None   # (query camera, gallery camera) of the last hovered cell
        self.state, self.plots = plots_controller.state, plots_controller.plots

        self.status = QLabel("")
        self.status.setObjectName("dim")
        self.status.setWordWrap(True)
        self.busy = QProgressBar()
        self.busy.setMaximumWidth(180)
        self.busy.setTextVisible(False)

        self.cmc = PlotTile("CMC")
        self.cmc_plot = self.cmc.view.addPlot()
        self.roc = PlotTile("ROC")
        self.roc_plot = self.roc.view.addPlot(row=0, col=0)
        # Below the plot, not over it: the curves fill the whole log-FPR range.
        self.roc_legend = pg.LegendItem(labelTextSize="8pt", verSpacing=-6)
        self.roc.view.addItem(self.roc_legend, row=1, col=0)
        self.fpr = QComboBox()
        for x in FPR_TARGETS:
            self.fpr.addItem(f"TPR at FPR {x:g}", x)
        self.fpr.setCurrentIndex(1)
        self.roc.controls.addWidget(self.fpr)
        self.dist = PlotTile("Score distributions")
        self.dist_plot = self.dist.view.addPlot()
        self.subset = QComboBox()
        for key, label in SUBSET_TITLES.items():
            self.subset.addItem(label, key)
        self.subset.setToolTip("Pairs of the query's camera and another camera; true pairs of "
                               "the same camera are junk under the protocol")
        self.log_y = QCheckBox("log")
        self.log_y.setToolTip("Density on a log axis: shows the true pairs beside the far more "
                              "numerous false ones")
        self.dist.controls.addWidget(self.log_y)
        self.dist.controls.addWidget(self.subset)
        self.cams = PlotTile("Camera pairs")
        self.cams_plot = self.cams.view.addPlot()
        self.metric = QComboBox()
        self.metric.addItem("rank-1", "rank1")
        self.metric.addItem("mAP", "mean_ap")
        self.cams.controls.addWidget(self.metric)
        self.cams.view.setToolTip("Click a cell: queries of that camera, results of that "
                                  "gallery camera")
        self.sweep = PlotTile("TLift parameter sweeps")
        self.sweep_plots = {p: self.sweep.view.addPlot(row=0, col=i)
                            for i, p in enumerate(SWEEP_PARAMS)}
        self.run_sweep = QPushButton("Run sweeps")
        self.run_sweep.setToolTip("Rank-1 and mAP as each TLift parameter varies alone over the "
                                  "QAConv appendix's values (40 TLift runs, in the background)")
        self.cancel_sweep = QPushButton("Cancel")
        self.sweep_bar = QProgressBar()
        self.sweep_bar.setMaximumWidth(180)
        self._sweep_clock = ProgressClock()
        self.sweep.controls.addWidget(self.sweep_bar)
        self.sweep.controls.addWidget(self.cancel_sweep)
        self.sweep.controls.addWidget(self.run_sweep)
        self.sweep.view.setToolTip("Click a point to use that value")

        top = QHBoxLayout()
        top.addWidget(self.status, 1)
        top.addWidget(self.busy)
        grid = QGridLayout()
        grid.setSpacing(6)
        grid.addWidget(self.cmc, 0, 0)
        grid.addWidget(self.roc, 0, 1)
        grid.addWidget(self.dist, 0, 2)
        grid.addWidget(self.cams, 1, 0)
        grid.addWidget(self.sweep, 1, 1, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(top)
        layout.addLayout(grid, 1)

        # ---------------------------------------------------------------- wiring
        self.tiles = {"cmc": self.cmc, "roc": self.roc, "score_distributions": self.dist,
                      "camera_pairs": self.cams, "tlift_sweep": self.sweep}
        for name, tile in self.tiles.items():
            tile.png.clicked.connect(lambda _c=False, n=name: self._ask_export(n, "png"))
            tile.csv.clicked.connect(lambda _c=False, n=name: self._ask_export(n, "csv"))
        self.fpr.currentIndexChanged.connect(lambda _i: self._draw_roc())
        self.subset.currentIndexChanged.connect(
            lambda _i: setattr(self.plots, "subset", self.subset.currentData()))
        self.log_y.toggled.connect(lambda on: setattr(self.plots, "log_density", bool(on)))
        self.plots.events.log_density.connect(self._show_log)
        self.metric.currentIndexChanged.connect(
            lambda _i: setattr(self.plots, "camera_metric", self.metric.currentData()))
        self.run_sweep.clicked.connect(lambda: self.ctl.run_sweeps())
        self.cancel_sweep.clicked.connect(self.ctl.cancel_sweeps)
        self.plots.events.plots.connect(self._draw_all)
        self.plots.events.subset.connect(self._show_subset)
        self.plots.events.camera_metric.connect(self._show_metric)
        self.plots.events.sweep.connect(lambda _s: self._draw_sweep())
        for name in ("busy", "progress", "error"):
            self.plots.events[name].connect(lambda _v: self._show_status())
        self.plots.events.sweep_progress.connect(lambda _v: self._show_sweep_status())
        for name in ("selected_query", "distmat"):
            self.state.events[name].connect(lambda _v: self._draw_distribution())
        for name in ("tlift", "rerank", "rerank_on", "session"):
            self.state.events[name].connect(lambda _v: self._show_sweep_status())
        self.cmc.view.scene().sigMouseMoved.connect(self._hover_cmc)
        self.roc.view.scene().sigMouseMoved.connect(self._hover_roc)
        self.dist.view.scene().sigMouseMoved.connect(self._hover_dist)
        self.cams.view.scene().sigMouseMoved.connect(self._hover_cams)
        self.cams.view.scene().sigMouseClicked.connect(self._click_cams)
        self.sweep.view.scene().sigMouseMoved.connect(self._hover_sweep)
        self.sweep.view.scene().sigMouseClicked.connect(self._click_sweep)
        self._draw_all()
        self._show_status()
        self._show_sweep_status()

    # ------------------------------------------------------------------ drawing
    @property
    def data(self):
        result = self.plots.plots
        return None if result is None else result.plots

    def _draw_all(self, _value=None) -> None:
        data = self.data
        for tile in self.tiles.values():
            tile.png.setEnabled(data is not None)
            tile.csv.setEnabled(data is not None)
        if data is None:
            return
        draw_cmc(self.cmc_plot, data)
        self._draw_roc()
        self._draw_distribution()
        self._draw_cameras()
        if not self._sweep_drawn:
            self._draw_sweep()  # otherwise redrawn when the sweep changes, not with the stages
        self._show_status()

    def _draw_roc(self) -> None:
        if self.data is not None:
            draw_roc(self.roc_plot, self.data, self.roc_legend, fpr=self.fpr.currentData())

    def _draw_distribution(self) -> None:
        data = self.data
        if data is None:
            return
        marks = query_marks(self.state, self.plots.subset) if self._current_matches() else None
        draw_distribution(self.dist_plot, data.stage(), self.plots.subset, marks,
                          log_y=self.plots.log_density)

    def _show_log(self, on: bool) -> None:
        with QSignalBlocker(self.log_y):
            self.log_y.setChecked(on)
        self._draw_distribution()

    def _current_matches(self) -> bool:
        """Whether the window's distances are those of the plotted current stage."""
        result = self.plots.plots
        return result is not None and plot_request(self.state) == result.request

    def _draw_cameras(self) -> None:
        if self.data is not None:
            stage = self.data.stage()
            name = "rank-1" if self.plots.camera_metric == "rank1" else "mAP"
            draw_camera_pairs(self.cams_plot, stage.cameras, self.plots.camera_metric,
                              f"{stage.name}: {name} (%)")  # the axes name the cameras
            self._show_cams_readout()  # the hovered cell's numbers in the stage just drawn

    def _draw_sweep(self) -> None:
        sweep = self.plots.sweep
        self._sweep_drawn = True
        enabled = sweep is not None
        self.sweep.png.setEnabled(enabled)
        self.sweep.csv.setEnabled(enabled)
        for name, plot in self.sweep_plots.items():
            if sweep is None:
                plot.clear()
                plot.setTitle(f"TLift: {PARAM_LABELS[name]}", size="10pt")
                continue
            draw_sweep(plot, name, sweep.sweeps[name], getattr(sweep.request.base, name))
        self._show_sweep_status()

    def _show_subset(self, subset: str) -> None:
        with QSignalBlocker(self.subset):
            self.subset.setCurrentIndex(max(self.subset.findData(subset), 0))
        self._draw_distribution()

    def _show_metric(self, metric: str) -> None:
        with QSignalBlocker(self.metric):
            self.metric.setCurrentIndex(max(self.metric.findData(metric), 0))
        self._draw_cameras()

    def _show_status(self) -> None:
        plots = self.plots
        self.busy.setVisible(plots.busy)
        if plots.busy and plots.progress:
            _stage, done, total = plots.progress
            self.busy.setRange(0, max(total, 1))
            self.busy.setValue(done)
        elif plots.busy:
            self.busy.setRange(0, 0)
        result = plots.plots
        if plots.error:
            text = f"⚠ {plots.error}"
        elif result is None:
            text = ("computing the plots…" if plots.busy or self.state.session is not None
                    else "the plots appear once a dataset is loaded")
        else:
            names = ", ".join(s.name for s in result.plots.stages)
            text = (f"Stages: {names}. Current (distributions, camera pairs): "
                    f"{result.plots.current}. Computed in {result.seconds:.2f} s"
                    + (" — updating…" if plots.busy else ""))
        self.status.setText(text)

    def _show_sweep_status(self) -> None:
        running = self.plots.sweep_progress is not None
        self.sweep_bar.setVisible(running)
        self.cancel_sweep.setVisible(running)
        self.run_sweep.setEnabled(not running and self.state.has_times)
        if running:
            show_progress(self.sweep_bar, self._sweep_clock, "sweep", *self.plots.sweep_progress,
                          label="")
        sweep = self.plots.sweep
        if self.state.session is None:
            text = ""
        elif not self.state.has_times:
            text = "TLift needs timestamps; this dataset has none"
        elif running:
            text = "sweeping…"
        elif sweep is None:
            text = "Run sweeps: rank-1 / mAP as tau, sigma, K, alpha vary (click a point to use it)"
        elif not self.ctl.sweeps_current():
            text = (f"{sweep.request.stage}, computed in {sweep.seconds:.1f} s for other "
                    "settings: run again to update")
        else:
            text = (f"{sweep.request.stage}, each parameter varied alone ({sweep.seconds:.1f} s);"
                    " click a point to use that value")
        self.sweep.readout.setText(text)

    # ------------------------------------------------------------------ hover and clicks
    @staticmethod
    def _at(plot: pg.PlotItem, pos):
        if not plot.sceneBoundingRect().contains(pos):
            return None
        p = plot.vb.mapSceneToView(pos)
        return p.x(), p.y()

    def _hover_cmc(self, pos) -> None:
        data, at = self.data, self._at(self.cmc_plot, pos)
        if data is None or at is None:
            return
        rank = int(round(at[0]))
        if not 1 <= rank <= len(data.stages[0].cmc):
            return
        values = ", ".join(f"{s.name} {100 * s.cmc[rank - 1]:.1f}%" for s in data.stages
                           if rank <= len(s.cmc))
        self.cmc.readout.setText(f"rank {rank}: {values}")

    def _hover_roc(self, pos) -> None:
        data, at = self.data, self._at(self.roc_plot, pos)
        if data is None or at is None:
            return
        fpr = 10.0 ** at[0]
        parts = []
        for s in data.stages:
            if len(s.roc.fpr):
                i = int(np.argmin(np.abs(np.log10(s.roc.fpr) - at[0])))
                parts.append(f"{s.name} {100 * s.roc.tpr[i]:.1f}%")
        self.roc.readout.setText(f"FPR {fpr:.2g}: TPR " + ", ".join(parts))

    def _hover_dist(self, pos) -> None:
        data, at = self.data, self._at(self.dist_plot, pos)
        if data is None or at is None:
            return
        h = data.stage().histogram
        i = int(np.searchsorted(h.edges, at[0], side="right")) - 1
        if not 0 <= i < len(h.edges) - 1:
            return
        subset = self.plots.subset
        t, f = h.counts[(subset, "true")][i], h.counts[(subset, "false")][i]
        self.dist.readout.setText(f"score {h.edges[i]:.4g}–{h.edges[i + 1]:.4g}: {t} true, "
                                  f"{f:,} false pairs (density {h.density(subset, 'true')[i]:.3g}"
                                  f" / {h.density(subset, 'false')[i]:.3g})")

    def _cell(self, pos):
        data, at = self.data, self._at(self.cams_plot, pos)
        if data is None or at is None:
            return None
        cams = data.stage().cameras
        i, j = int(math.floor(at[1])), int(math.floor(at[0]))
        if 0 <= i < len(cams.query_cams) and 0 <= j < len(cams.gallery_cams):
            return cams, i, j
        return None

    def _hover_cams(self, pos) -> None:
        cell = self._cell(pos)
        if cell is None:
            return
        cams, i, j = cell
        self._cams_hovered = (int(cams.query_cams[i]), int(cams.gallery_cams[j]))
        self._show_cams_readout()

    def _show_cams_readout(self) -> None:
        """The last hovered camera pair's numbers, read from the stage drawn now."""
        if self._cams_hovered is None or self.data is None:
            return
        cams = self.data.stage().cameras
        qcam, gcam = self._cams_hovered
        if qcam not in cams.query_cams or gcam not in cams.gallery_cams:
            self.cams.readout.setText(" ")
            return
        i, j = list(cams.query_cams).index(qcam), list(cams.gallery_cams).index(gcam)
        qc, gc = qcam + 1, gcam + 1
        if cams.num_queries[i, j] == 0:
            why = "same camera: every true match is junk" if qc == gc else "no true match"
            self.cams.readout.setText(f"query c{qc} x gallery c{gc}: {why}")
            return
        self.cams.readout.setText(
            f"query c{qc} x gallery c{gc}: rank-1 {100 * cams.rank1[i, j]:.1f}%, "
            f"mAP {100 * cams.mean_ap[i, j]:.1f}% over {cams.num_queries[i, j]} queries "
            "(click to browse them)")

    def _click_cams(self, event) -> None:
        cell = self._cell(event.scenePos())
        if cell is not None:
            cams, i, j = cell
            self.ctl.select_camera_pair(int(cams.query_cams[i]), int(cams.gallery_cams[j]))

    def _sweep_point(self, pos):
        sweep = self.plots.sweep
        if sweep is None:
            return None
        for name, plot in self.sweep_plots.items():
            at = self._at(plot, pos)
            if at is not None:
                i = int(round(at[0]))
                points = sweep.sweeps[name]
                if 0 <= i < len(points):
                    return name, points[i]
        return None

    def _hover_sweep(self, pos) -> None:
        hit = self._sweep_point(pos)
        if hit is not None:
            name, p = hit
            self.sweep.readout.setText(f"{PARAM_LABELS[name]} = {p.value:g}: rank-1 "
                                       f"{100 * p.rank1:.1f}%, mAP {100 * p.mean_ap:.1f}% — "
                                       "click to use this value")

    def _click_sweep(self, event) -> None:
        hit = self._sweep_point(event.scenePos())
        if hit is not None:
            name, p = hit
            self.ctl.set_tlift_parameter(name, p.value)

    # ------------------------------------------------------------------ export
    def plot_data_csv(self, name: str) -> str:
        """The CSV text of one plot (the sweep's with the sweep's own stage)."""
        data = self.data
        if name == "tlift_sweep":
            sweep = self.plots.sweep
            data = dataclasses.replace(data, sweeps=sweep.sweeps, sweep_stage=sweep.request.stage,
                                       sweep_base=dataclasses.asdict(sweep.request.base))
        return plot_csv(data, name)

    def export(self, name: str, path: str) -> None:
        """Write one plot to ``path`` as PNG (``.png``) or CSV (anything else), atomically; an
        existing file is replaced (the file dialog asked), never one of the session's inputs
        (:mod:`engine.outputs`)."""
        if path.lower().endswith(".png"):
            data = image_png(self.tiles[name].view.ci)
        else:
            data = self.plot_data_csv(name).encode("utf-8")
        write_output_bytes(path, data, force=True, inputs=session_inputs(self.state.session),
                           flag="file name")

    def _ask_export(self, name: str, kind: str) -> None:
        default = os.path.join(os.path.expanduser("~"), f"{name}.{kind}")
        pattern = "PNG images (*.png)" if kind == "png" else "CSV files (*.csv)"
        path, _ = QFileDialog.getSaveFileName(self, f"Save {name} as {kind.upper()}", default,
                                              pattern)  # asks before replacing a file
        if not path:
            return
        try:
            self.export(name, path)
        except (OSError, ValueError) as exc:
            self.plots.error = f"could not save {path}: {exc}"
        else:
            self.state.events.message.emit(f"saved {path}")
