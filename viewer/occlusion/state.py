"""The occlusion panel's state as plain data (no Qt): the query image, the square, the fill,
the augmentation previews, the occluded ranking and the sensitivity map.

:class:`OcclusionOverride` is what the results grid shows instead of the query's own list while
an occluded copy is ranked (the query's entry in ``ViewerState.overrides``); its movement arrows
compare the occluded ranking with the unoccluded image ranked the same way. Both lists are
described (``viewer.ranking.RankingDescription``) with the method that ranked them, which is not
the one of the query's own list when that has the other queries' re-ranking or TLift.
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from psygnal import Signal, SignalGroup, SignalGroupDescriptor

from viewer.ranking import RankingDescription, RankingOverride, describe_ranking, rank_query

__all__ = ["OcclusionOverride", "SensitivityResult", "OcclusionState", "OcclusionEvents", "before_after_text",
           "make_override", "ranked_alone_note", "methods_note", "SENSITIVITY_MODES", "FILL_LABELS", "FILL_TIPS",
           "PREVIEW_LABELS", "PREVIEW_SHORT"]

FILL_LABELS = {"white": "white", "mean": "mean colour", "noise": "noise", "zeros": "black"}
FILL_TIPS = {"white": "white, as random occlusion fills", "mean": "the image's mean colour",
             "noise": "uniform noise, as random erasing fills", "zeros": "black, as cutout fills"}
SENSITIVITY_MODES = {"logit": "logit drop of the selected result",
                     "rank": "change of the first true match's rank"}
PREVIEW_LABELS = {"random_occlusion": "random occlusion", "random_erasing": "random erasing",
                  "cutout": "cutout"}
PREVIEW_SHORT = {"random_occlusion": "occlusion", "random_erasing": "erasing", "cutout": "cutout"}


@dataclass(frozen=True)
class OcclusionOverride(RankingOverride):
    """An occluded copy of ``query`` ranked, shown in the grid instead of the query's list; its
    movement arrows compare with the unoccluded image ranked the same way (``before``)."""

    source: str = "square"         # "square" or an augmentation's name
    before: RankingDescription | None = None   # the unoccluded image ranked the same way


def ranked_alone_note(method: str) -> str:
    """How an edited copy of a query (and the unoccluded image it is compared with) is ranked."""
    rerank = " (re-ranked with itself as the query set)" if "+rr" in method else ""
    return (f"Each image is ranked alone{rerank} and without TLift (an edited image has no "
            "timestamp).")


def make_override(query: int, result, source: str, pid: int | None, cam: int | None,
                  gallery_pids: np.ndarray, gallery_cams: np.ndarray, settings=None,
                  method: str = "qaconv") -> OcclusionOverride:
    """The grid's list for an :class:`engine.explain.occlusion.OccludedRanking` of ``query``, ranked
    under ``settings`` (the applied ones without TLift), whose stages ``method`` names."""
    after = rank_query(result.after, result.before, pid, cam, gallery_pids, gallery_cams)
    before = rank_query(result.before, None, pid, cam, gallery_pids, gallery_cams)
    what = "square" if source == "square" else PREVIEW_LABELS.get(source, source)
    how = ranked_alone_note(method)
    return OcclusionOverride(
        query=query, ranking=after, dist_row=result.after, score_row=result.after_logits,
        description=describe_ranking(after, method, probe="occluded copy", note=how,
                                     title=f"Occluded ({what}) · ▲▼ vs. original",
                                     versus="the query without occlusion, ranked the same way"),
        settings=settings, image=result.occluded, maps=getattr(result, "occluded_maps", None),
        source=source, before=describe_ranking(before, method, probe="query, unoccluded", note=how))


def before_after_text(override: OcclusionOverride | None, own: RankingDescription | None = None) -> str:
    """``… both ranked by qaconv+rr: AP 0.512 → 0.301 · first true match: rank 1 → 4``
    (or why there are no numbers). ``own``: the query's own list, named too when its numbers
    come from another method (the header showed them before the occluded copy replaced it)."""
    if override is None:
        return "Drag the square over the query, or click a preview, to rank an occluded copy."
    before, after = override.before, override.description
    if not after.identity_known or (math.isnan(before.ap) and math.isnan(after.ap)):
        return "No identity known (or no true match on another camera): no AP to compare."

    def ap(v: float) -> str:
        return "–" if math.isnan(v) else f"{v:.3f}"

    def rank(v: int) -> str:
        return "–" if v < 1 else str(v)

    text = (f"Unoccluded → occluded, both ranked by {after.method}:\n"
            f"AP {ap(before.ap)} → {ap(after.ap)}  ·  first true match: "
            f"rank {rank(before.first_hit_rank)} → {rank(after.first_hit_rank)}")
    # Raw, the query's own list is the unoccluded image's; re-ranked with the other queries or
    # lifted by timestamps, it is another list, named so that its numbers are not "before".
    uses = [what for stage, what in (("+rr", "re-ranked with the other queries"),
                                     ("+tlift", "lifted by timestamps")) if own and stage in own.method]
    if own is not None and not own.probe and uses:
        text += f"\n(The query's own list, {own.method}, {' and '.join(uses)}: {own.numbers()}.)"
    return text


def methods_note(rerank_on: bool, tlift_on: bool) -> str:
    """Which post-processing applies to an occluded query under the applied settings."""
    parts = ["QAConv"]
    if rerank_on:
        parts.append("+ re-ranking (this image alone as the query set)")
    note = "An occluded query is ranked by " + " ".join(parts) + "."
    if tlift_on:
        note += (" TLift is not applied: an edited image is ranked like an external image, "
                 "without timestamp.")
    return note


@dataclass(frozen=True)
class SensitivityResult:
    """A finished sensitivity map and what it was computed for."""

    query: int
    mode: str                      # "logit" | "rank"
    values: np.ndarray             # [rows, cols]: logit drop, or rank change (+ = worse)
    side: int
    stride: int
    gallery_index: int             # the pair's gallery image ("logit" mode), else -1
    before_rank: int = -1          # "rank" mode: first true match's rank without occlusion
    target: str = ""               # the pair's gallery image as the user knows it
    fill: str = ""                 # the square's fill (engine.explain.occlusion.FILLS)
    ranking: str = ""              # "rank" mode: how each occluded copy was ranked ("qaconv+rr")

    def extent(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` in image pixels of the heatmap: one stride-sized cell per square,
        centred on the square's centre."""
        rows, cols = self.values.shape
        offset = (self.side - self.stride) / 2.0
        return offset, offset, cols * self.stride, rows * self.stride

    def describe(self) -> str:
        """The map's title: what it shows, with which fill and ranking, and its range."""
        v = self.values
        fill = FILL_LABELS.get(self.fill, self.fill)
        if self.mode == "logit":
            return (f"QAConv logit drop for {self.target or f'gallery #{self.gallery_index}'}, "
                    f"{fill} square: max {v.max():+.2f}, min {v.min():+.2f} "
                    "(red = occluding there lowers the score)")
        return (f"first true match at rank {self.before_rank} unoccluded; with the {fill} square: "
                f"rank {self.before_rank + int(v.min())} to {self.before_rank + int(v.max())} "
                f"(red = drops down the list) · ranked by {self.ranking}, no TLift (an edited "
                "image has no timestamp)")


class OcclusionEvents(SignalGroup):
    """A change event per field of :class:`OcclusionState`, plus the canvas's reset request."""

    reset_requested = Signal()      # Backspace on the canvas


@dataclass(eq=False, repr=False)  # no arrays in error messages
class OcclusionState:
    """What the occlusion panel shows; the occlusion controller fills it.

    Every field emits ``events.<field>(new, old)`` when it is assigned a different value
    (the image and the previews compare by identity).
    """

    events: ClassVar[SignalGroupDescriptor] = SignalGroupDescriptor(
        signal_group_class=OcclusionEvents,
        equality_operators={"image": operator.is_, "previews": operator.is_,
                            "sensitivity": operator.is_})

    query: int = -1                  # the query the panel works on
    image: np.ndarray | None = None  # uint8 [H, W, 3], the query in its own pixels
    box: tuple | None = None         # (x, y, w, h) of the square, image pixels
    fill: str = "white"
    previews: tuple = ()             # tuple[engine.explain.occlusion.Preview, ...]
    preview_seed: int = 0
    side: int = 0                    # sensitivity square; 0 = default for the image
    stride: int = 0
    mode: str = "logit"              # one of SENSITIVITY_MODES
    sensitivity: SensitivityResult | None = None
    show_heatmap: bool = True
    running: str = ""                # "" | "rank" | "sensitivity"
    sens_progress: tuple | None = None   # (done, total) of the sensitivity job
    note: str = ""                   # which post-processing applies
