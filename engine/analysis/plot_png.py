"""The analysis plots as PNG files, drawn with OpenCV + NumPy (Qt-free; ``evaluate --plots``).

Plain static figures of the same :class:`~engine.analysis.plot_data.PlotSet` the CSVs hold: CMC, ROC
(log FPR), the current stage's true/false score densities and camera-pair matrices, and the TLift
sweeps. The viewer's panel draws the interactive versions with pyqtgraph.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from engine.analysis.plot_data import SUBSETS, CameraPairs, PlotSet

__all__ = ["PLOT_BOX", "png_files", "stage_color"]

FONT, AA = cv2.FONT_HERSHEY_SIMPLEX, cv2.LINE_AA
INK, GRID, FRAME = (40, 35, 31), (225, 225, 225), (110, 110, 110)  # BGR
TRUE_COLOR, FALSE_COLOR = (68, 158, 46), (65, 69, 214)  # #2e9e44, #d64541
RANK1_COLOR, MAP_COLOR = (176, 108, 43), (6, 119, 217)  # #2b6cb0, #d97706
#: Plot area (x0, y0, x1, y1) of the single-plot figures (cmc.png, roc.png), 800 x 520.
PLOT_BOX = (70, 50, 780, 470)


def stage_color(name: str) -> tuple[int, int, int]:
    """BGR colour of a stage, the viewer's order: raw blue, +rr orange, +tlift purple,
    +rr+tlift green."""
    for suffix, bgr in (("+rr+tlift", (68, 158, 46)), ("+tlift", (223, 80, 130)),
                        ("+rr", (6, 119, 217))):
        if name.endswith(suffix):
            return bgr
    return (176, 108, 43)


def _text(img, text, x, y, scale=0.45, color=INK, align="left"):
    """``text`` with its baseline at ``y``; ``align`` left / center / right of ``x``."""
    w = cv2.getTextSize(text, FONT, scale, 1)[0][0]
    x -= {"left": 0, "center": w // 2, "right": w}[align]
    cv2.putText(img, text, (int(x), int(y)), FONT, scale, color, 1, AA)


def nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    """Round tick values within ``[lo, hi]`` (about ``count`` of them)."""
    step = 10 ** math.floor(math.log10(max(hi - lo, 1e-12) / count))
    step *= next(m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= count)
    return [float(v) for v in np.arange(math.ceil(lo / step) * step, hi + step * 1e-6, step)]


class Axes:
    """A plot box on ``img``: grid, tick labels and title drawn at once; ``line`` maps data."""

    def __init__(self, img, box, xlim, ylim, *, title="", xlabel="", ylabel="", xticks=(),
                 yticks=(), xlabels=None, log_x=False):
        self.img, self.box, self.log_x = img, box, log_x
        self.xlim = tuple(math.log10(v) for v in xlim) if log_x else xlim
        self.ylim = ylim
        x0, y0, x1, y1 = box
        for v, label in zip(xticks, xlabels or [f"{v:g}" for v in xticks], strict=True):
            px = int(self.px([v], [ylim[0]])[0, 0])
            cv2.line(img, (px, y0), (px, y1), GRID, 1, AA)
            _text(img, label, px, y1 + 17, align="center")
        for v in yticks:
            py = int(self.px([xlim[0]], [v])[0, 1])
            cv2.line(img, (x0, py), (x1, py), GRID, 1, AA)
            _text(img, f"{v:g}", x0 - 6, py + 5, align="right")
        cv2.rectangle(img, (x0, y0), (x1, y1), FRAME, 1, AA)
        _text(img, title, (x0 + x1) // 2, y0 - 24, 0.55, align="center")
        _text(img, xlabel, (x0 + x1) // 2, y1 + 38, align="center")
        _text(img, ylabel, x0, y0 - 6, 0.4)

    def px(self, x, y) -> np.ndarray:
        """Pixel ``[n, 2]`` (int32) of data points, clipped to the box."""
        x = np.log10(np.asarray(x, float)) if self.log_x else np.asarray(x, float)
        (x0, y0, x1, y1), (a, b), (c, d) = self.box, self.xlim, self.ylim
        u = x0 + (x - a) / (b - a) * (x1 - x0)
        v = y1 - (np.asarray(y, float) - c) / (d - c) * (y1 - y0)
        return np.stack([np.clip(u, x0, x1), np.clip(v, y0, y1)], 1).round().astype(np.int32)

    def line(self, x, y, color, width=2, dashed=False, dots=False):
        p = self.px(x, y)
        if dashed:  # vertical or horizontal 2-point line as dashes
            n = max(int(np.abs(p[1] - p[0]).max() / 8), 1)
            for t in range(0, n, 2):
                a, b = p[0] + (p[1] - p[0]) * t / n, p[0] + (p[1] - p[0]) * (t + 1) / n
                cv2.line(self.img, tuple(int(v) for v in a), tuple(int(v) for v in b), color, 1, AA)
            return
        cv2.polylines(self.img, [p.reshape(-1, 1, 2)], False, color, width, AA)
        for q in p if dots else ():
            cv2.circle(self.img, (int(q[0]), int(q[1])), 4, color, -1, AA)

    def legend(self, entries, corner="lower right"):
        """``[(colour, text), ...]`` in a white box at a corner inside the plot box."""
        x0, y0, x1, y1 = self.box
        w = max(cv2.getTextSize(t, FONT, 0.45, 1)[0][0] for _, t in entries) + 40
        h = 20 * len(entries) + 8
        lx = x1 - w - 8 if "right" in corner else x0 + 8
        ly = y1 - h - 8 if "lower" in corner else y0 + 8
        cv2.rectangle(self.img, (lx, ly), (lx + w, ly + h), (255, 255, 255), -1)
        cv2.rectangle(self.img, (lx, ly), (lx + w, ly + h), GRID, 1)
        for i, (color, text) in enumerate(entries):
            y = ly + 18 + 20 * i
            cv2.line(self.img, (lx + 6, y - 5), (lx + 28, y - 5), color, 3, AA)
            _text(self.img, text, lx + 34, y)


def _canvas(width, height):
    return np.full((height, width, 3), 255, np.uint8)


def _pct(v) -> str:
    return "-" if v is None or math.isnan(v) else f"{100 * v:.1f}%"


def cmc_image(plots: PlotSet) -> np.ndarray:
    img, n = _canvas(800, 520), max(len(s.cmc) for s in plots.stages)
    ax = Axes(img, PLOT_BOX, (1, n), (0, 100), title="CMC", xlabel="rank",
              ylabel="matching rate (%)", xticks=[1] + list(range(10, n + 1, 10)),
              yticks=range(0, 101, 20))
    for s in plots.stages:
        ax.line(np.arange(1, len(s.cmc) + 1), 100 * s.cmc, stage_color(s.name))
    ax.legend([(stage_color(s.name), f"{s.name}  R1 {100 * s.rank1:.1f}  mAP {100 * s.mean_ap:.1f}")
               for s in plots.stages])
    return img


def roc_image(plots: PlotSet, at: float = 1e-3) -> np.ndarray:
    img = _canvas(800, 520)
    low = min([float(s.roc.fpr[s.roc.fpr > 0].min()) for s in plots.stages if s.roc.num_false]
              or [1e-4])
    decades = [10.0 ** e for e in range(math.floor(math.log10(low)), 1)]
    ax = Axes(img, PLOT_BOX, (decades[0], 1.0), (0, 100), title="ROC (pairs, junk removed)",
              xlabel="false positive rate (log)", ylabel="true positive rate (%)", xticks=decades,
              xlabels=[f"1e{round(math.log10(d))}" if d < 1 else "1" for d in decades],
              yticks=range(0, 101, 20), log_x=True)
    for s in plots.stages:
        keep = s.roc.fpr > 0
        if keep.any():
            ax.line(s.roc.fpr[keep], 100 * s.roc.tpr[keep], stage_color(s.name))
    ax.legend([(stage_color(s.name), f"{s.name}  TPR@1e{round(math.log10(at))} {_pct(s.roc.at.get(at))}")
               for s in plots.stages])
    return img


def distributions_image(plots: PlotSet) -> np.ndarray:
    stage, img = plots.stage(), _canvas(1260, 440)
    h = stage.histogram
    _text(img, f"{stage.name}: pair score densities, true (green) / false (red)", 630, 24, 0.55,
          align="center")
    for i, subset in enumerate(SUBSETS):
        dens = {label: h.density(subset, label) for label in ("true", "false")}
        top = max(float(d.max()) for d in dens.values()) * 1.05 or 1.0
        n_true, n_false = (int(h.counts[(subset, lab)].sum()) for lab in ("true", "false"))
        ax = Axes(img, (70 + 410 * i, 80, 420 + 410 * i, 380), (h.edges[0], h.edges[-1]),
                  (0, top), title=f"{subset.replace('_', ' ')}: {n_true:,} true / {n_false:,} false",
                  xlabel="score (1 - distance)", ylabel="density",
                  xticks=nice_ticks(h.edges[0], h.edges[-1]), yticks=nice_ticks(0, top))
        xs = np.repeat(h.edges, 2)
        for label, color in (("false", FALSE_COLOR), ("true", TRUE_COLOR)):
            if dens[label].any():
                ax.line(xs, np.concatenate([[0], np.repeat(dens[label], 2), [0]]), color)
    return img


def _matrix(img, x0, y0, values, cameras: CameraPairs, title, cell=64):
    """A colour-mapped matrix (rows: query cameras, columns: gallery cameras), values in cells."""
    nq, ng = values.shape
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    level = np.nan_to_num((values - lo) / max(hi - lo, 1e-9) * 255).astype(np.uint8)
    colors = cv2.applyColorMap(level, cv2.COLORMAP_VIRIDIS)  # [nq, ng, 3]
    _text(img, title, x0 + ng * cell // 2, y0 - 12, 0.5, align="center")
    for i in range(nq):
        _text(img, f"c{cameras.query_cams[i] + 1}", x0 - 8, y0 + i * cell + cell // 2 + 5,
              align="right")
        for j in range(ng):
            a, v = (x0 + j * cell, y0 + i * cell), values[i, j]
            color = (235, 235, 235) if math.isnan(v) else tuple(int(c) for c in colors[i, j])
            cv2.rectangle(img, a, (a[0] + cell, a[1] + cell), color, -1)
            dark = math.isnan(v) or level[i, j] > 150  # viridis is light at its top
            _text(img, "-" if math.isnan(v) else f"{100 * v:.1f}", a[0] + cell // 2,
                  a[1] + cell // 2 + 5, 0.45, INK if dark else (255, 255, 255), align="center")
    for j in range(ng):
        _text(img, f"c{cameras.gallery_cams[j] + 1}", x0 + j * cell + cell // 2,
              y0 + nq * cell + 18, align="center")
    _text(img, "gallery camera", x0 + ng * cell // 2, y0 + nq * cell + 40, align="center")
    return ng * cell


def camera_pairs_image(plots: PlotSet, cell: int = 64) -> np.ndarray:
    stage = plots.stage()
    c = stage.cameras
    nq, ng = c.rank1.shape
    width = 2 * (ng * cell + 110) + 40
    img = _canvas(width, nq * cell + 150)
    _text(img, f"{stage.name}: per (query camera, gallery camera)", width // 2, 24, 0.55,
          align="center")
    x = 90
    for values, name in ((c.rank1, "rank-1 (%)"), (c.mean_ap, "mAP (%)")):
        _text(img, "query", x - 8, 62, 0.4, align="right")
        x += _matrix(img, x, 80, values, c, name, cell) + 130
    return img


def sweep_image(plots: PlotSet) -> np.ndarray:
    img, base = _canvas(330 * len(plots.sweeps) + 20, 440), plots.sweep_base or {}
    _text(img, f"{plots.sweep_stage}: each TLift parameter varied alone; rank-1 (blue), "
          "mAP (orange), dashed = base", img.shape[1] // 2, 24, 0.5, align="center")
    for i, (name, points) in enumerate(plots.sweeps.items()):
        ys = [100 * p.rank1 for p in points] + [100 * p.mean_ap for p in points]
        lo, hi = min(ys), max(ys)
        pad = max(hi - lo, 2.0) * 0.1
        vals, x = [p.value for p in points], np.arange(len(points))
        # every other value labelled (ten do not fit), counted from the base value
        first = vals.index(base[name]) % 2 if base.get(name) in vals else 0
        ax = Axes(img, (60 + 330 * i, 80, 330 + 330 * i, 380), (-0.5, len(points) - 0.5),
                  (lo - pad, hi + pad), title=f"rank-1 and mAP vs {name}", xlabel=name,
                  ylabel="%", xticks=x[first::2], xlabels=[f"{v:g}" for v in vals[first::2]],
                  yticks=nice_ticks(lo - pad, hi + pad))
        if name in base:
            b = float(np.interp(base[name], np.sort(vals), np.argsort(vals).astype(float)))
            ax.line([b, b], [lo - pad, hi + pad], FRAME, dashed=True)
        ax.line(x, ys[:len(points)], RANK1_COLOR, dots=True)
        ax.line(x, ys[len(points):], MAP_COLOR, dots=True)
    return img


def png_files(plots: PlotSet) -> dict[str, bytes]:
    """``cmc``, ``roc``, ``score_distributions``, ``camera_pairs`` and (with sweeps)
    ``tlift_sweep`` as PNG, ``{"cmc.png": content, ...}`` (for
    :func:`engine.outputs.write_output_folder`)."""
    images = {"cmc": cmc_image, "roc": roc_image, "score_distributions": distributions_image,
              "camera_pairs": camera_pairs_image}
    if plots.sweeps:
        images["tlift_sweep"] = sweep_image
    files = {}
    for name, draw in images.items():
        ok, data = cv2.imencode(".png", draw(plots))
        if not ok:
            raise ValueError(f"could not encode {name}.png")
        files[f"{name}.png"] = data.tobytes()
    return files
