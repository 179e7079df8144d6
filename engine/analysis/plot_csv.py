"""The analysis plots' data as CSV text and files (one file per plot; shared by the CLI's
``evaluate --plots`` and the viewer's per-plot CSV export).

Files (``method`` is the stage, e.g. ``qaconv+rr+tlift``; cameras are 0-based as in the engine;
rates are fractions):

- ``cmc.csv``: ``rank,method,value``
- ``roc.csv``: ``method,fpr,tpr`` (the largest TPR at FPR <= fpr)
- ``tpr_at_fpr.csv``: ``method,fpr,tpr,num_true,num_false``
- ``score_distributions.csv``: ``method,subset,label,bin_low,bin_high,count,density``
- ``camera_pairs.csv``: ``method,query_cam,gallery_cam,rank1,mAP,num_queries``
- ``tlift_sweep.csv``: ``method,parameter,value,rank1,mAP,is_base`` (when swept)
"""
from __future__ import annotations

import math

from engine.analysis.plot_data import FPR_TARGETS, SUBSETS, PlotSet

__all__ = ["PLOT_NAMES", "csv_files", "plot_csv"]

#: Every plot, in the order the files are written; the CSV is ``<name>.csv``.
PLOT_NAMES = ("cmc", "roc", "tpr_at_fpr", "score_distributions", "camera_pairs", "tlift_sweep")


def _num(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _cmc(plots: PlotSet) -> list[list]:
    return [[k + 1, s.name, float(v)] for s in plots.stages for k, v in enumerate(s.cmc)]


def _roc(plots: PlotSet) -> list[list]:
    return [[s.name, float(x), float(y)] for s in plots.stages
            for x, y in zip(s.roc.fpr, s.roc.tpr, strict=True)]


def _tpr_at(plots: PlotSet) -> list[list]:
    return [[s.name, x, s.roc.at[x], s.roc.num_true, s.roc.num_false]
            for s in plots.stages for x in FPR_TARGETS]


def _distributions(plots: PlotSet) -> list[list]:
    rows = []
    for s in plots.stages:
        h = s.histogram
        for subset in SUBSETS:
            for label in ("true", "false"):
                counts, density = h.counts[(subset, label)], h.density(subset, label)
                rows += [[s.name, subset, label, float(h.edges[i]), float(h.edges[i + 1]),
                          int(counts[i]), float(density[i])] for i in range(len(counts))]
    return rows


def _cameras(plots: PlotSet) -> list[list]:
    rows = []
    for s in plots.stages:
        c = s.cameras
        for i, qc in enumerate(c.query_cams):
            for j, gc in enumerate(c.gallery_cams):
                rows.append([s.name, int(qc), int(gc), float(c.rank1[i, j]),
                             float(c.mean_ap[i, j]), int(c.num_queries[i, j])])
    return rows


def _sweep(plots: PlotSet) -> list[list]:
    base = plots.sweep_base or {}
    return [[plots.sweep_stage, name, p.value, p.rank1, p.mean_ap, int(p.value == base.get(name))]
            for name, points in (plots.sweeps or {}).items() for p in points]


_TABLES = {
    "cmc": ("rank,method,value", _cmc),
    "roc": ("method,fpr,tpr", _roc),
    "tpr_at_fpr": ("method,fpr,tpr,num_true,num_false", _tpr_at),
    "score_distributions": ("method,subset,label,bin_low,bin_high,count,density", _distributions),
    "camera_pairs": ("method,query_cam,gallery_cam,rank1,mAP,num_queries", _cameras),
    "tlift_sweep": ("method,parameter,value,rank1,mAP,is_base", _sweep),
}


def plot_csv(plots: PlotSet, name: str) -> str:
    """The CSV text of one plot (header line included)."""
    if name not in _TABLES:
        raise ValueError(f"unknown plot {name!r}; plots: {', '.join(PLOT_NAMES)}")
    header, rows = _TABLES[name]
    return header + "\n" + "".join(",".join(_num(v) for v in row) + "\n" for row in rows(plots))


def csv_files(plots: PlotSet) -> dict[str, bytes]:
    """Every plot's CSV file, ``{"cmc.csv": content, ...}`` (for
    :func:`engine.outputs.write_output_folder`); ``tlift_sweep.csv`` only when the set holds
    sweeps."""
    return {f"{name}.csv": plot_csv(plots, name).encode("utf-8") for name in PLOT_NAMES
            if name != "tlift_sweep" or plots.sweeps}
