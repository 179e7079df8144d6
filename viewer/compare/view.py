"""The comparison panel: per-query AP of model A against model B, the queries each wins.

Thin: it draws what :class:`viewer.compare.state.CompareState` and the window's state hold; a
click on a point or a list entry selects that query in the window (the grid then shows both
models' ranks on every tile).
"""
from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer import style
from viewer.compare.controller import CompareController
from viewer.compare.state import model_name, query_label
from viewer.formatting import format_percent

__all__ = ["ComparePanel", "CompareDock"]

A_COLOR, B_COLOR, TIE_COLOR = style.FIRST_MODEL.name(), style.SECOND_MODEL.name(), "#a0a4aa"
QUERY_ROLE = Qt.ItemDataRole.UserRole + 1


class ComparePanel(QWidget):
    def __init__(self, ctl: CompareController, parent=None):
        super().__init__(parent)
        self.ctl, self.state, self.compare = ctl, ctl.state, ctl.compare
        self.models = QLabel("")
        self.models.setWordWrap(True)
        self.models.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary = QLabel("")
        self.summary.setObjectName("title")
        self.summary.setWordWrap(True)
        self.status = QLabel("")
        self.status.setObjectName("dim")
        self.status.setWordWrap(True)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.close_button = QPushButton("Stop comparing")
        self.close_button.setToolTip("Forget model B: the grid shows model A's ranks alone")
        self.close_button.clicked.connect(lambda _c=False: self.ctl.close())

        self.view = pg.PlotWidget()
        self.view.setMinimumSize(260, 240)
        plot = self.plot = self.view.getPlotItem()
        plot.setLabel("bottom", "AP, model A")
        plot.setLabel("left", "AP, model B")
        plot.setXRange(0, 1, padding=0.03)
        plot.setYRange(0, 1, padding=0.03)
        plot.setAspectLocked(True)
        plot.showGrid(x=True, y=True, alpha=0.2)
        plot.addItem(pg.PlotCurveItem([0, 1], [0, 1], pen=pg.mkPen(TIE_COLOR, width=1,
                                                                    style=Qt.PenStyle.DashLine)))
        self.points = pg.ScatterPlotItem(size=7, hoverable=True, tip=self._tip)
        self.points.sigClicked.connect(self._clicked)
        plot.addItem(self.points)
        self.marker = pg.ScatterPlotItem(size=15, pen=pg.mkPen(style.TEXT.name(), width=2),
                                         brush=None)
        plot.addItem(self.marker)

        self.a_title, self.b_title = QLabel(""), QLabel("")
        self.a_list, self.b_list = QListWidget(), QListWidget()
        for title, widget in ((self.a_title, self.a_list), (self.b_title, self.b_list)):
            title.setObjectName("title")
            widget.itemClicked.connect(self._list_clicked)
            widget.itemActivated.connect(self._list_clicked)
        lists = QGridLayout()
        lists.addWidget(self.a_title, 0, 0)
        lists.addWidget(self.b_title, 0, 1)
        lists.addWidget(self.a_list, 1, 0)
        lists.addWidget(self.b_list, 1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.models)
        layout.addWidget(self.summary)
        layout.addWidget(self.status)
        layout.addWidget(self.bar)
        layout.addWidget(self.view, 3)
        layout.addLayout(lists, 2)
        layout.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignRight)

        compare = self.compare
        for name in ("result", "source", "busy", "error"):
            compare.events[name].connect(lambda _v: self.redraw())
        compare.events.progress.connect(self._show_progress)
        for name in ("metrics", "applied", "session"):
            self.state.events[name].connect(lambda _v: self.redraw())
        self.state.events.selected_query.connect(lambda _q: self._mark_selected())
        self._queries = np.zeros(0, np.int64)
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        compare, state = self.compare, self.state
        result = self.ctl.current()
        self.bar.setVisible(compare.busy)
        self.close_button.setEnabled(bool(compare.source))
        a_name = model_name(state.session.checkpoint) if state.session is not None else "–"
        method = state.applied.method(state.base_method)
        if not compare.source:
            self.models.setText("File > Compare with model… opens a second checkpoint (this "
                                "tool's or another project's) on this dataset.")
        else:
            b_method = "" if result is None else f" ({result.session.method})"
            a_map = format_percent(None if state.metrics is None else state.metrics.mean_ap)
            b_map = format_percent(None if result is None or result.metrics is None
                                   else result.metrics.mean_ap)
            self.models.setText(
                f"<span style='color:{A_COLOR}'>■</span> <b>A</b> {a_name} ({state.base_method}) "
                f"· mAP {a_map}<br><span style='color:{B_COLOR}'>■</span> <b>B</b> "
                f"{model_name(compare.source)}{b_method} · mAP {b_map}"
                f"<br><span style='color:#656d76'>stage: {method}</span>")
        if compare.error:
            self.status.setText(compare.error)
        elif compare.busy:
            self.status.setText(f"scoring model B for {method}…")
        elif compare.source and result is None:
            self.status.setText("waiting for the window's ranking")
        else:
            self.status.setText("Click a point or a query to show it. Each tile shows its rank "
                                "under A (left) and B (right, orange)." if result is not None else "")
        comparison = compare.current(state.applied, state.metrics)
        self._draw(comparison)

    def _draw(self, comparison) -> None:
        self.a_list.clear()
        self.b_list.clear()
        if comparison is None:
            self.points.setData([])
            self._queries = np.zeros(0, np.int64)
            self.summary.setText("")
            self.a_title.setText("A better")
            self.b_title.setText("B better")
            self._mark_selected()
            return
        queries = np.flatnonzero(comparison.valid)
        colors = np.full(len(comparison.valid), TIE_COLOR, dtype=object)
        colors[comparison.a_wins] = A_COLOR
        colors[comparison.b_wins] = B_COLOR
        self._queries = queries
        self.points.setData(x=comparison.ap_a[queries], y=comparison.ap_b[queries], data=queries,
                            brush=[pg.mkBrush(c) for c in colors[queries]],
                            pen=pg.mkPen("w", width=0.5))
        self.summary.setText(f"Per-query AP: {comparison.summary()}")
        self.a_title.setText(f"A better ({len(comparison.a_wins)}) · AP A vs B")
        self.b_title.setText(f"B better ({len(comparison.b_wins)}) · AP A vs B")
        session = self.state.session
        for widget, wins in ((self.a_list, comparison.a_wins), (self.b_list, comparison.b_wins)):
            for q in wins:
                a, b = comparison.ap_a[q], comparison.ap_b[q]
                item = QListWidgetItem(f"{a:.2f} vs {b:.2f}  {query_label(session, int(q))}")
                item.setData(QUERY_ROLE, int(q))
                item.setToolTip(f"AP model A {a:.3f}, model B {b:.3f}: click to show the query")
                widget.addItem(item)
        self._mark_selected()

    def _mark_selected(self) -> None:
        comparison = self.compare.current(self.state.applied, self.state.metrics)
        q = self.state.selected_query
        if comparison is None or not 0 <= q < len(comparison.valid) or not comparison.valid[q]:
            self.marker.setData([])
            return
        self.marker.setData(x=[comparison.ap_a[q]], y=[comparison.ap_b[q]])

    def _show_progress(self, progress) -> None:
        if progress is None:
            return
        stage, done, total = progress
        self.bar.setRange(0, max(total, 0))
        self.bar.setValue(done if total else 0)
        self.bar.setFormat(f"{stage} %v/%m" if total else stage)

    def _tip(self, x: float, y: float, data) -> str:
        session = self.state.session
        if session is None or data is None or (isinstance(data, float) and math.isnan(data)):
            return ""
        return f"{query_label(session, int(data))}\nAP model A {x:.3f}, model B {y:.3f}"

    # ------------------------------------------------------------------ clicks
    def _clicked(self, _item, points, _event=None) -> None:
        if len(points):
            self.ctl.select_query(int(points[0].data()))

    def _list_clicked(self, item: QListWidgetItem) -> None:
        self.ctl.select_query(int(item.data(QUERY_ROLE)))


class CompareDock(QDockWidget):
    """The comparison panel in a dock beside the grid."""

    def __init__(self, controller, parent=None):
        super().__init__("Compare models", parent)
        self.setObjectName("compareDock")
        self.compare_controller = CompareController(controller)
        self.panel = ComparePanel(self.compare_controller)
        self.setWidget(self.panel)
        self.setAllowedAreas(Qt.DockWidgetArea.RightDockWidgetArea
                             | Qt.DockWidgetArea.BottomDockWidgetArea)
        self.visibilityChanged.connect(
            lambda visible: setattr(self.compare_controller.compare, "visible", bool(visible)))

    def closeEvent(self, event) -> None:
        """Closing the panel stops comparing: tiles without a visible model B would puzzle."""
        self.compare_controller.close()
        super().closeEvent(event)

    def shutdown(self) -> None:
        self.compare_controller.shutdown()
