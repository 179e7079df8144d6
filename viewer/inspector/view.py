"""The match inspector: query and one result side by side with the local matches drawn (QAConv's,
or the exact split of a global model's cosine).

Thin: everything it draws comes from :class:`viewer.inspector.state.InspectorState` (heatmaps,
levels, lines, the lit-up match, band sums), which takes it from the engine. One pyqtgraph
scene holds both images so that lines can run from one to the other; heatmaps are
``ImageItem`` s sharing one ``ColorBarItem``.
"""
from __future__ import annotations

import os

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSignalBlocker, Qt
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGraphicsLineItem,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QToolTip,
    QVBoxLayout,
    QWidget,
)

from engine.data import read_image_rgb
from engine.explain.inspect import BAND_NAMES, SIDES
from engine.outputs import session_inputs, write_output
from viewer import style
from viewer.formatting import camera_base, format_cam, format_rank, format_time
from viewer.inspector.state import InspectorState, SceneLayout, kinds_for, nearest_segment
from viewer.state import ViewerState
from viewer.widgets.flow_layout import FlowRow, joined

__all__ = ["MatchInspector"]

SIMILARITY_MAP = "viridis"
CONTRIBUTION_MAP = "CET-D1"      # diverging, blue < 0 < red, white at the centre
LINE_MAP = "plasma"
GAP = 14.0                       # scene pixels between the two images (model-input pixels)
LINE_HIT_PX = 4.0                # the pointer is on a line within this many screen pixels of it
# The heatmap kinds as the combo box names them, for each way of scoring.
KIND_TEXT = {
    "qaconv": {"pair": "this pair: logit per location",
               "similarity": "best-match similarity (a, b)",
               "contribution": "contribution to the logit (w·a, w·b)",
               "relative": "contribution vs. an average match (w·(a−μ))"},
    "global": {"pair": "this pair: cosine per location",
               "similarity": "cosine of the best pair of locations",
               "contribution": "contribution to the cosine, halves (A·b, a·B)"},
}
KIND_TIP = {
    "qaconv": "This pair: each location's w·(a−μ) plus that of the other side's locations that "
              "matched it; they add up to the logit (with the bias) and follow the pair. The most "
              "faithful in the deletion test (README).\nSimilarity: how well each location is found "
              "in the other image.\nContribution: each location's share of the logit (they add up "
              "to it with the bias).\nvs. an average match: the same, less what a typical match (μ) "
              "would give.",
    "global": "This pair: each location's terms A_i·B_j summed over the other image, "
              "cos(a, b) = Σ_ij A_i·B_j / (N M |a| |b|); one side's add up to the cosine. "
              "The most faithful in the deletion test (README).\nCosine: each location and the "
              "location of the other image with the largest term.\nContribution: the same split, "
              "halved, so that query + gallery add up to the cosine.",
}
STATUS_TEXT = {"true": "same identity", "false": "different identity",
               "junk": "same identity, same camera (junk)", "": "identity unknown"}


def _who(sample, base: int) -> str:
    if sample.pid is None:
        return "external image (no identity)"
    who = "distractor" if sample.pid == 0 else f"identity {sample.pid:04d}"
    when = format_time(sample.time)
    return f"{who} · camera {format_cam(sample.cam, base)}" + (f" · t {when}" if when else "")


class MatchInspector(QWidget):
    """Draws one pair of the :class:`InspectorState`; writes the user's choices back to it."""

    def __init__(self, state: ViewerState, inspector_controller, parent=None):
        super().__init__(parent)
        self.state = state
        self.ctl = inspector_controller
        self.inspector: InspectorState = inspector_controller.inspector
        self.layout_: SceneLayout | None = None
        self._image_cache: dict[str, np.ndarray] = {}
        self._line_items: list[QGraphicsLineItem] = []
        self._lines: list = []           # the engine Line of each drawn item
        self._build_controls()
        self._build_scene()
        self._build_side_panel()
        # Focused on opening (main window), the drawing takes the keys: viewer.keyboard steps
        # through results and queries from it.
        self.setFocusProxy(self.view)

        top = QVBoxLayout(self)
        top.setContentsMargins(6, 6, 6, 6)
        top.addWidget(self.nav_row)
        top.addWidget(self.display_row)
        body = QHBoxLayout()
        body.addWidget(self.view, 1)
        body.addWidget(self.side, 0)
        top.addLayout(body, 1)

        ins = self.inspector
        for name in ("pair", "correspondence"):
            ins.events[name].connect(self.refresh)
        ins.events.scores.connect(self._show_scores)
        self.state.events.marks.connect(self._show_mark)
        for name in ("kind", "heatmap_on", "opacity"):
            ins.events[name].connect(self._draw_heatmaps)
        ins.events.kind.connect(lambda _k: self._show_bands())
        for name in ("line_mode", "line_side", "top_n", "threshold_share"):
            ins.events[name].connect(self._draw_lines)
        for name in ("hover", "pinned"):
            ins.events[name].connect(self._draw_focus)
        for name in ("kind", "heatmap_on", "opacity", "line_mode", "line_side", "top_n", "threshold_share"):
            ins.events[name].connect(self._show_controls)
        self._show_controls()
        self.refresh()

    # ------------------------------------------------------------------ construction
    def _button(self, text: str, tip: str, slot) -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        button.clicked.connect(lambda _c=False: slot())
        return button

    def _build_controls(self) -> None:
        state, ins = self.state, self.inspector
        self.back_button = self._button("◀ Grid (Esc)", "Back to the ranked results", self.ctl.close)
        self.prev_query = self._button("▲ Query", "Previous query (Up)", lambda: state.step_query(-1))
        self.next_query = self._button("▼ Query", "Next query (Down)", lambda: state.step_query(+1))
        self.prev_result = self._button("◀ Result", "Previous result (Left)", lambda: state.step_result(-1))
        self.next_result = self._button("Result ▶", "Next result (Right)", lambda: state.step_result(+1))
        self.export_button = self._button("Export PNG…", "Save this view as a PNG image", self._export_dialog)
        self.title = QLabel()
        self.title.setObjectName("big")
        self.title.setWordWrap(True)
        # Both rows wrap when narrow (the occlusion dock open at 1024 px): their width never
        # sets the window's minimum.
        self.nav_row = FlowRow(self.back_button, self.prev_query, self.next_query, self.prev_result,
                               self.next_result, self.title, self.export_button)

        self.heatmap_on = QCheckBox("Heatmap")
        self.heatmap_on.toggled.connect(lambda on: setattr(ins, "heatmap_on", bool(on)))
        self.kind = QComboBox()
        self._kinds_method = None
        self._fill_kinds("qaconv")
        self.kind.currentIndexChanged.connect(lambda _i: setattr(ins, "kind", self.kind.currentData()))
        # As wide as its shorter entries (the list shows them whole): the row fits 1024 px.
        self.kind.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.kind.setMinimumContentsLength(18)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setFixedWidth(90)
        self.opacity.setToolTip("Heatmap opacity")
        self.opacity.valueChanged.connect(lambda v: setattr(ins, "opacity", v / 100.0))
        self.line_mode = QComboBox()
        self.line_mode.addItem("top n by contribution", "top")
        self.line_mode.addItem("top % by similarity", "threshold")
        self.line_mode.addItem("no lines", "off")
        self.line_mode.currentIndexChanged.connect(
            lambda _i: setattr(ins, "line_mode", self.line_mode.currentData()))
        self.top_n = QSpinBox()
        self.top_n.setRange(1, 9999)
        self.top_n.setPrefix("n = ")
        self.top_n.valueChanged.connect(lambda v: setattr(ins, "top_n", int(v)))
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(1, 100)          # percent of each side's locations
        self.threshold.setSingleStep(1)
        self.threshold.setPageStep(10)
        self.threshold.setFixedWidth(90)
        self.threshold.setToolTip("Draw the lines of this share of the locations, the most similar "
                                  "first: the similarity cut follows the pair's own range")
        self.threshold.valueChanged.connect(lambda v: setattr(ins, "threshold_share", v / 100.0))
        self.threshold_label = QLabel()
        self.line_side = QComboBox()
        self.line_side.addItem("query → gallery", "probe")
        self.line_side.addItem("gallery → query", "gallery")
        self.line_side.addItem("both directions", "both")
        self.line_side.currentIndexChanged.connect(
            lambda _i: setattr(ins, "line_side", self.line_side.currentData()))
        self.display_row = FlowRow(self.heatmap_on, self.kind, joined(QLabel("opacity"), self.opacity),
                                   joined(QLabel("Lines:"), self.line_mode), self.top_n,
                                   self.threshold, self.threshold_label, self.line_side)

    def _build_scene(self) -> None:
        self.view = pg.GraphicsLayoutWidget()
        self.view.setBackground("w")
        self.view.setMinimumSize(360, 300)
        self.vb = self.view.addViewBox(row=0, col=0, lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setMouseEnabled(False, False)
        self.vb.setDefaultPadding(0.02)
        self.photos = {side: pg.ImageItem(axisOrder="row-major") for side in SIDES}
        self.heat = {side: pg.ImageItem(axisOrder="row-major") for side in SIDES}
        self.captions = {side: pg.TextItem(anchor=(0, 1), color=style.TEXT) for side in SIDES}
        for side in SIDES:
            self.vb.addItem(self.photos[side])
            self.heat[side].setZValue(1)
            self.vb.addItem(self.heat[side])
            self.vb.addItem(self.captions[side])
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=SIMILARITY_MAP,
                                        interactive=False, width=14)
        self.colorbar.setImageItem([self.heat[s] for s in SIDES])
        self.view.addItem(self.colorbar, row=0, col=1)
        self.cmaps = {name: pg.colormap.get(name) for name in (SIMILARITY_MAP, CONTRIBUTION_MAP, LINE_MAP)}
        self.line_cmap = self.cmaps[LINE_MAP]
        self.focus_rects = [QGraphicsRectItem() for _ in range(2)]
        self.focus_line = QGraphicsLineItem()
        for item, color in zip(self.focus_rects + [self.focus_line],
                               (QColor("#ffffff"), QColor("#ffd400"), QColor("#ffd400")), strict=True):
            pen = QPen(color, 3)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(5)
            item.setVisible(False)
            self.vb.addItem(item)
        scene = self.view.scene()
        scene.sigMouseMoved.connect(self.hover_scene_pos)
        self._leave = _LeaveFilter(lambda: setattr(self.inspector, "hover", None), self)
        self.view.viewport().installEventFilter(self._leave)
        scene.sigMouseClicked.connect(lambda ev: self.click_scene_pos(ev.scenePos()))

    def _build_side_panel(self) -> None:
        self.side = QWidget()
        self.side.setFixedWidth(300)
        lay = QVBoxLayout(self.side)
        lay.setContentsMargins(6, 0, 0, 0)
        self.pair_text = QLabel()
        self.pair_text.setWordWrap(True)
        self.pair_text.setTextFormat(Qt.TextFormat.RichText)
        self.scores_text = QLabel()
        self.scores_text.setWordWrap(True)
        self.sum_text = QLabel()
        self.sum_text.setWordWrap(True)
        self.sum_text.setToolTip("The score is exactly additive over locations: QAConv's logit is "
                                 "every location's w·a (query) and w·b (gallery) plus the head's "
                                 "bias; a global model's cosine is the sum of its pair terms")
        self.focus_text = QLabel()
        self.focus_text.setWordWrap(True)
        self.focus_text.setObjectName("dim")
        self.bands_plot = pg.PlotWidget()
        self.bands_plot.setBackground("w")
        self.bands_plot.setFixedHeight(150)
        self.bands_plot.setMenuEnabled(False)
        self.bands_plot.setMouseEnabled(False, False)
        self.bands_plot.hideButtons()
        # The title as a label: inside the plot its width would widen the plot past the panel.
        self.bands_title = QLabel()
        axis = self.bands_plot.getAxis("left")
        axis.setTicks([[(2 - i, name) for i, name in enumerate(BAND_NAMES)]])
        axis.setWidth(52)  # room for every band's name, whatever the x range
        self.bands_plot.disableAutoRange()
        self.bands_plot.setYRange(-0.6, 2.6, padding=0)
        self.bands_plot.addItem(pg.InfiniteLine(pos=0, angle=90, pen=pg.mkPen("#888888")))
        self.bars = pg.BarGraphItem(x0=[0, 0, 0], y=[2, 1, 0], height=0.6, width=[0, 0, 0])
        self.bands_plot.addItem(self.bars)
        self.bands_text = QLabel()
        self.bands_text.setObjectName("dim")
        self.bands_text.setWordWrap(True)
        self.legend_text = QLabel()
        self.legend_text.setObjectName("dim")
        self.legend_text.setWordWrap(True)
        for w in (self.pair_text, self.scores_text, self.sum_text, self.bands_title, self.bands_plot,
                  self.bands_text,
                  self.focus_text, self.legend_text):
            lay.addWidget(w)
        lay.addStretch(1)

    # ------------------------------------------------------------------ state -> widgets
    def _fill_kinds(self, method: str) -> None:
        """The combo box's kinds for this way of scoring (a global model has no relative split)."""
        if method == self._kinds_method:
            return
        self._kinds_method = method
        corr = self.inspector.correspondence
        texts = KIND_TEXT.get(method, KIND_TEXT["qaconv"])
        with QSignalBlocker(self.kind):
            self.kind.clear()
            for kind in kinds_for(corr):
                self.kind.addItem(texts[kind], kind)
        self.kind.setToolTip(KIND_TIP.get(method, KIND_TIP["qaconv"]))
        if self.kind.findData(self.inspector.kind) < 0:
            self.inspector.kind = self.kind.itemData(0)

    def _show_controls(self, _value=None) -> None:
        ins = self.inspector
        for widget, value in ((self.heatmap_on, None), (self.kind, ins.kind),
                              (self.line_mode, ins.line_mode), (self.line_side, ins.line_side)):
            with QSignalBlocker(widget):
                if value is None:
                    widget.setChecked(ins.heatmap_on)
                else:
                    widget.setCurrentIndex(max(widget.findData(value), 0))
        for widget, value in ((self.opacity, round(ins.opacity * 100)), (self.top_n, ins.top_n),
                              (self.threshold, round(ins.threshold_share * 100))):
            with QSignalBlocker(widget):
                widget.setValue(value)
        self.top_n.setVisible(ins.line_mode == "top")
        self.threshold.setVisible(ins.line_mode == "threshold")
        self.threshold_label.setVisible(ins.line_mode == "threshold")
        self.kind.setEnabled(ins.heatmap_on)
        self.opacity.setEnabled(ins.heatmap_on)

    def _image(self, path: str) -> np.ndarray:
        image = self._image_cache.get(path)
        if image is None:
            if len(self._image_cache) > 64:
                self._image_cache.clear()
            try:
                image = read_image_rgb(path)
            except ValueError:
                image = np.full((8, 4, 3), 200, np.uint8)
            self._image_cache[path] = image
        return image

    def _show_mark(self, *_args) -> None:
        """The result's caption: its rank and the user's mark (``✓ same`` / ``✗ not``)."""
        if self.inspector.pair is None or self.state.session is None:
            return
        query, gallery_index = self.inspector.pair
        item = self._current_item(gallery_index)
        mark = self.state.mark_of(query, gallery_index)
        text = f"result {'' if item is None else format_rank(item.rank)}".strip()
        self.captions["gallery"].setText(text + (f" · {style.MARK_BADGES[mark]}" if mark else ""))

    def refresh(self, _value=None) -> None:
        """A new pair (or its correspondence arrived): redraw everything."""
        ins, state = self.inspector, self.state
        session = state.session
        if ins.pair is None or session is None:
            self.title.setText("No match selected: press Enter on a result")
            for side in SIDES:
                self.photos[side].clear()
                self.heat[side].clear()
            self._clear_lines()
            return
        query, gallery_index = ins.pair
        samples = {"probe": state.query_sample(query), "gallery": session.dataset.gallery[gallery_index]}
        corr = ins.correspondence
        if corr is not None:
            self._fill_kinds(corr.method)
            self._show_controls()
        map_h, map_w = (corr.probe_heatmap.shape if corr is not None
                        else session.prep.feature_size)
        self.layout_ = layout = SceneLayout(map_h, map_w, float(session.prep.height),
                                            float(session.prep.width), GAP)
        occluded = state.override(query)  # the grid ranks another list, e.g. an occluded copy
        for side in SIDES:
            image = (occluded.image if side == "probe" and occluded is not None and occluded.image is not None
                     else self._image(samples[side].path))
            self.photos[side].setImage(image, levels=(0, 255))
            self.photos[side].setRect(QRectF(layout.origin(side), 0, layout.image_w, layout.image_h))
        item = self._current_item(gallery_index)
        rank = "" if item is None else format_rank(item.rank)
        described = state.describe(query)  # the list the pair is ranked in
        probe = "" if described is None else described.probe
        self.captions["probe"].setText(f"query, {probe}" if probe else "query")
        self._show_mark()
        for side in SIDES:
            self.captions[side].setPos(layout.origin(side), -1)
        self.vb.setRange(QRectF(0, -12, layout.width, layout.image_h + 12), padding=0.01)
        under = "" if described is None else f" under {described.label}"
        self.title.setText(f"Match inspector · {rank or 'result'}{under}")
        self.pair_text.setText(self._pair_html(samples, item))
        self._draw_heatmaps()
        self._draw_lines()
        self._draw_focus()
        self._show_scores()
        self._show_bands()
        lo, hi = ins.similarity_range()
        self.legend_text.setText(
            f"Lines: colour = similarity of the match (dark {lo:.3f} … yellow {hi:.3f}). "
            "Click a location to pin it (click again to unpin).")

    def _current_item(self, gallery_index: int):
        from viewer.ranking import result_items

        query = self.inspector.pair[0]
        occluded = self.state.override(query)
        if occluded is not None:  # the list the grid shows instead, e.g. an occluded copy's
            pos = occluded.ranking.position_of(gallery_index)
            return result_items(occluded.ranking, np.array([pos]), occluded.dist_row,
                                occluded.score_row)[0]
        ranking = self.state.ranking(query)
        if ranking is None:
            return None
        pos = ranking.position_of(gallery_index)
        return result_items(ranking, np.array([pos]), self.state.distance_row(query),
                            self.state.score_row(query))[0]

    def _pair_html(self, samples, item) -> str:
        q, g = samples["probe"], samples["gallery"]
        status = "" if item is None else STATUS_TEXT[item.status]
        color = style.STATUS_COLORS.get("" if item is None else item.status, style.TEXT).name()
        base = camera_base(self.state)
        return (f"<b>Query</b>: {_who(q, base)}<br><span style='color:#656d76'>{os.path.basename(q.path)}</span>"
                f"<br><b>Result</b>: {_who(g, base)}<br><span style='color:#656d76'>"
                f"{os.path.basename(g.path)}</span><br><span style='color:{color}'><b>{status}</b></span>")

    def _show_scores(self, _value=None) -> None:
        ins = self.inspector
        lines = [s.text() for s in ins.scores]
        self.scores_text.setText("<b>Score of this pair</b><br>" + "<br>".join(lines))
        if ins.correspondence is None:
            self.sum_text.setText(f"<b>No picture</b>: {ins.unavailable}" if ins.unavailable
                                  else "computing the local matches…")
            return
        corr = ins.correspondence
        d = 3 if corr.has_relative else 4  # a cosine's halves: 0.500 + 0.500 would not read 0.999
        rows = "".join(
            f"<tr><td>{split}</td><td align=right>{p:+.{d}f}</td><td align=right>{g:+.{d}f}</td>"
            f"<td align=right>{b:+.{d}f}</td><td align=right>{p + g + b:.{d}f}</td></tr>"
            for split, p, g, b in ins.sums())
        score = "logit" if corr.has_relative else "cosine"
        if corr.has_relative:
            foot = f"μ = {corr.centre:.3f}: a typical match's similarity"
        else:
            foot = ("exact: cos(a, b) = Σ<sub>ij</sub> A<sub>i</sub>·B<sub>j</sub> / (N M |a| |b|); "
                    "each side's terms alone add up to the cosine, shown halved here")
            if corr.note:
                foot += f"; {corr.note}"
        self.sum_text.setText(
            f"<b>Contributions add up to the {score} {corr.logit:.3f}</b>"
            "<table cellspacing=0 cellpadding=1><tr><td></td><td>Σ query</td><td>Σ gallery</td>"
            f"<td>bias</td><td>= {score}</td></tr>{rows}</table>"
            f"<span style='color:#656d76'>{foot}</span>")

    def _show_bands(self) -> None:
        bands = self.inspector.bands()
        if bands is None:
            self.bars.setOpts(width=[0, 0, 0])
            self.bands_text.clear()
            return
        total = bands["total"]
        self.bands_title.setText(f"<b>Per body band</b>: Σ {self.inspector.split_label()}, query + gallery")
        cmap = self.cmaps[CONTRIBUTION_MAP]
        m = float(np.abs(total).max()) or 1.0
        brushes = [cmap.map(0.5 + 0.5 * v / m, mode="qcolor") for v in total]
        self.bars.setOpts(x0=np.minimum(total, 0), width=np.abs(total), y=[2, 1, 0], brushes=brushes)
        lo, hi = min(0.0, float(total.min())), max(0.0, float(total.max()))
        self.bands_plot.setXRange(lo - 0.05 * (hi - lo), hi + 0.15 * (hi - lo), padding=0)
        self.bands_text.setText(" · ".join(
            f"{name} {t:+.2f} (q {p:+.2f}, g {g:+.2f})"
            for name, t, p, g in zip(BAND_NAMES, total, bands["probe"], bands["gallery"], strict=True)))

    def _draw_heatmaps(self, _value=None) -> None:
        ins, layout = self.inspector, self.layout_
        if ins.correspondence is None or layout is None:
            for side in SIDES:
                self.heat[side].clear()
            return
        cmap = self.cmaps[SIMILARITY_MAP if ins.kind == "similarity" else CONTRIBUTION_MAP]
        if self.colorbar.colorMap() is not cmap:
            self.colorbar.setColorMap(cmap)
        self.colorbar.getAxis("right").enableAutoSIPrefix(False)
        levels = ins.levels()
        for side in SIDES:
            item = self.heat[side]
            item.setImage(ins.heatmap(side), autoLevels=False)
            item.setRect(QRectF(layout.origin(side), 0, layout.image_w, layout.image_h))
            item.setOpacity(ins.opacity)
            item.setVisible(ins.heatmap_on)
        self.colorbar.setLevels(values=levels)
        self.colorbar.setVisible(ins.heatmap_on)

    def _clear_lines(self) -> None:
        for item in self._line_items:
            self.vb.removeItem(item)
        self._line_items, self._lines = [], []

    def _draw_lines(self, _value=None) -> None:
        self._clear_lines()
        layout = self.layout_
        if layout is None:
            return
        ins = self.inspector
        sides = SIDES if ins.line_side == "both" else (ins.line_side,)
        cuts = [ins.similarity_cut(side) for side in sides]
        self.threshold_label.setText(f"top {round(ins.threshold_share * 100)}%" + (
            "" if None in cuts else f" (≥ {min(cuts):.3f})"))
        lines = ins.lines()
        lo, hi = ins.similarity_range()
        centres = {side: layout.centres(side) for side in SIDES}
        for line in lines:
            other = "gallery" if line.side == "probe" else "probe"
            (x0, y0), (x1, y1) = centres[line.side][line.source], centres[other][line.target]
            color = self.line_cmap.map((line.similarity - lo) / (hi - lo), mode="qcolor")
            item = QGraphicsLineItem(x0, y0, x1, y1)
            pen = QPen(color, 2)
            pen.setCosmetic(True)
            item.setPen(pen)
            item.setZValue(2)
            self.vb.addItem(item)
            self._line_items.append(item)
            self._lines.append(line)

    def line_segments(self) -> list[tuple[float, float, float, float]]:
        """The drawn lines as ``(x0, y0, x1, y1)`` in scene coordinates (for tests)."""
        return [(it.line().x1(), it.line().y1(), it.line().x2(), it.line().y2()) for it in self._line_items]

    def _draw_focus(self, _value=None) -> None:
        ins, layout = self.inspector, self.layout_
        focus = ins.focus()
        for item in self.focus_rects + [self.focus_line]:
            item.setVisible(focus is not None and layout is not None)
        if focus is None or layout is None:
            self.focus_text.setText("Hover a location on either image to light up its match.")
            return
        other = "gallery" if focus.side == "probe" else "probe"
        for rect, side, index in ((self.focus_rects[0], focus.side, focus.source),
                                  (self.focus_rects[1], other, focus.target)):
            rect.setRect(QRectF(*layout.cell_rect(side, index)))
        a = layout.centres(focus.side)[focus.source]
        b = layout.centres(other)[focus.target]
        self.focus_line.setLine(a[0], a[1], b[0], b[1])
        back = ins.correspondence.matches(other)[focus.target]
        names = {"probe": "query", "gallery": "gallery"}
        row, col = divmod(focus.source, layout.map_w)
        trow, tcol = divmod(focus.target, layout.map_w)
        pinned = " (pinned)" if ins.pinned is not None else ""
        split = ins.split_label()
        self.focus_text.setText(
            f"<b>{names[focus.side]} row {row}, col {col}{pinned}</b> → {names[other]} row {trow}, "
            f"col {tcol}<br>similarity {focus.similarity:.3f} · contribution {split} "
            f"{focus.contribution:+.3f}" + ("" if back == focus.source else
                                             "<br>(its own best match is elsewhere)"))

    # ------------------------------------------------------------------ pointer
    def hover_scene_pos(self, scene_pos: QPointF) -> None:
        if self.layout_ is None:
            return
        p = self.vb.mapSceneToView(scene_pos)
        self.inspector.hover = self.layout_.location_at(p.x(), p.y())
        text = self.describe_at(scene_pos)
        if text:
            where = self.view.mapToGlobal(self.view.mapFromScene(scene_pos))
            QToolTip.showText(where, text, self.view.viewport())
        else:
            QToolTip.hideText()

    def describe_at(self, scene_pos: QPointF) -> str:
        """The hover tooltip: the location under the pointer (the numbers the side panel shows
        for it) and the drawn line passing within :data:`LINE_HIT_PX` screen pixels of the
        pointer, hit-tested on the segment itself; empty over neither."""
        ins, layout = self.inspector, self.layout_
        if layout is None or ins.correspondence is None:
            return ""
        p = self.vb.mapSceneToView(scene_pos)
        where = layout.location_at(p.x(), p.y())
        parts = [] if where is None else [self._describe(ins.location(*where))]
        if self._line_items:
            ends = [(self.vb.mapViewToScene(it.line().p1()), self.vb.mapViewToScene(it.line().p2()))
                    for it in self._line_items]
            index, dist = nearest_segment([(a.x(), a.y(), b.x(), b.y()) for a, b in ends],
                                          scene_pos.x(), scene_pos.y())
            line = self._lines[index]
            if dist <= LINE_HIT_PX and where != (line.side, line.source):
                parts.append("line: " + self._describe(line))
        return "\n".join(parts)

    def _describe(self, line) -> str:
        """``query row 4, col 3 → gallery row 5, col 1 · similarity 0.996 · w·(a−μ) +0.021``."""
        names = {"probe": "query", "gallery": "gallery"}
        other = "gallery" if line.side == "probe" else "probe"
        w = self.layout_.map_w
        (row, col), (trow, tcol) = divmod(line.source, w), divmod(line.target, w)
        split = self.inspector.split_label()
        return (f"{names[line.side]} row {row}, col {col} → {names[other]} row {trow}, col {tcol} · "
                f"similarity {line.similarity:.3f} · {split} {line.contribution:+.3f}")

    def click_scene_pos(self, scene_pos: QPointF) -> None:
        if self.layout_ is None:
            return
        p = self.vb.mapSceneToView(scene_pos)
        self.inspector.toggle_pin(self.layout_.location_at(p.x(), p.y()))

    def scene_pos_of(self, side: str, index: int) -> QPointF:
        """Scene position of a location's centre (for tests and the pointer handlers)."""
        x, y = self.layout_.centres(side)[index]
        return self.vb.mapViewToScene(QPointF(float(x), float(y)))

    # ------------------------------------------------------------------ export
    def export_png(self, path: str, *, force: bool = True) -> bool:
        """Save the whole view as PNG, atomically (complete file or none); never over one of the
        session's inputs (:mod:`engine.outputs`). ``force``: replace an existing file (the file
        dialog asked)."""
        pixmap = self.grab()

        def save(tmp) -> None:
            if not pixmap.save(str(tmp), "PNG"):
                raise OSError(f"could not write a PNG to {path}")

        try:
            write_output(path, save, force=force, inputs=session_inputs(self.state.session),
                         flag="file name")
        except (OSError, ValueError) as exc:
            self.state.events.message.emit(f"export failed: {exc}")
            return False
        self.state.events.message.emit(f"saved the match view to {path}")
        return True

    def _export_dialog(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        default = os.path.join(os.path.expanduser("~"), "match.png")
        path, _ = QFileDialog.getSaveFileName(self, "Export the match view", default, "PNG image (*.png)")
        if path:
            named = path.lower().endswith(".png")  # the dialog asked before replacing this name
            self.export_png(path if named else path + ".png", force=named)


class _LeaveFilter(QObject):
    """Calls ``on_leave`` when the pointer leaves the watched widget (hover ends there)."""

    def __init__(self, on_leave, parent=None):
        super().__init__(parent)
        self.on_leave = on_leave

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Leave:
            self.on_leave()
        return False
