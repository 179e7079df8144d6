"""The match inspector's state as plain data (no Qt here): which pair, what is drawn, and the
numbers drawn, all derived from the engine's :class:`~engine.explain.inspect.Correspondence`.

Coordinates: the inspector lays the two images side by side in one scene, each drawn in the
model's input size (``image_w x image_h`` pixels, what the feature map covers): the query at
``x in [0, image_w)``, the gallery image at ``x in [image_w + gap, 2 * image_w + gap)``, ``y``
growing downwards. :class:`SceneLayout` converts between map locations and that scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from psygnal import evented

from engine.explain.inspect import (
    SIDES,
    Correspondence,
    Line,
    band_sums,
    location_centres,
    matched_location,
    pair_heatmap,
    select_lines,
)
from viewer.ranking import rank_query

__all__ = ["InspectorState", "SceneLayout", "MethodScore", "method_scores", "nearest_segment", "KINDS",
           "DEFAULT_KIND", "LINE_MODES", "LINE_SIDES", "kinds_for"]

# "pair": the pair's whole score carried onto each side's locations (both directions,
# engine.explain.inspect.pair_heatmap); the others are the correspondence's own maps.
KINDS = ("pair", "similarity", "contribution", "relative")
DEFAULT_KIND = "pair"
LINE_MODES = ("top", "threshold", "off")
LINE_SIDES = ("probe", "gallery", "both")


@dataclass(frozen=True)
class SceneLayout:
    """Where the two images and their map locations are in the inspector's scene."""

    map_h: int
    map_w: int
    image_h: float
    image_w: float
    gap: float

    def origin(self, side: str) -> float:
        """Left edge of ``side``'s image."""
        return 0.0 if side == "probe" else self.image_w + self.gap

    @property
    def width(self) -> float:
        return 2 * self.image_w + self.gap

    def centres(self, side: str) -> np.ndarray:
        """Centres ``[H*W, 2]`` (x, y) of ``side``'s locations in scene coordinates."""
        c = location_centres(self.map_h, self.map_w, self.image_h, self.image_w)
        c[:, 0] += self.origin(side)
        return c

    def cell_rect(self, side: str, index: int) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` of one location's cell in the scene."""
        row, col = divmod(int(index), self.map_w)
        cw, ch = self.image_w / self.map_w, self.image_h / self.map_h
        return self.origin(side) + col * cw, row * ch, cw, ch

    def location_at(self, x: float, y: float) -> tuple[str, int] | None:
        """The ``(side, flat index)`` under a scene point, or None outside both images."""
        if not 0 <= y < self.image_h:
            return None
        for side in SIDES:
            u = x - self.origin(side)
            if 0 <= u < self.image_w:
                row = min(int(y * self.map_h / self.image_h), self.map_h - 1)
                col = min(int(u * self.map_w / self.image_w), self.map_w - 1)
                return side, row * self.map_w + col
        return None


def nearest_segment(segments: np.ndarray, x: float, y: float) -> tuple[int, float]:
    """``(index, distance)`` of the segment ``[n, 4]`` (x0, y0, x1, y1) nearest to the point,
    measured to the segment itself (not its bounding box); ``(-1, inf)`` without segments."""
    seg = np.asarray(segments, np.float64).reshape(-1, 4)
    if not len(seg):
        return -1, float("inf")
    a, d = seg[:, :2], seg[:, 2:] - seg[:, :2]
    length2 = (d * d).sum(axis=1)
    t = np.clip(((np.array([x, y]) - a) * d).sum(axis=1) / np.maximum(length2, 1e-12), 0.0, 1.0)
    dist = np.hypot(*(a + t[:, None] * d - np.array([x, y])).T)
    best = int(np.argmin(dist))
    return best, float(dist[best])


@dataclass(frozen=True)
class MethodScore:
    """The pair under one post-processing: its value and its rank (protocol count)."""

    method: str            # "raw", "+RR", "+RR+TLift"
    label: str             # "logit" or "cosine" (higher = closer), or "distance" (lower = closer)
    value: float | None    # None when not available
    rank: int | None       # 1-based, junk not counted; 0 = junk; None when not available
    note: str = ""         # why it is not available

    def text(self) -> str:
        if self.value is None:
            return f"{self.method}: {self.note or 'not computed'}"
        rank = "" if self.rank is None else (" · junk" if self.rank == 0 else f" · rank {self.rank}")
        fmt = ".4f" if self.label == "distance" else ".3f"
        return f"{self.method}: {self.label} {self.value:{fmt}}{rank}"


def method_scores(rows: dict[str, np.ndarray | None], notes: dict[str, str], gallery_index: int,
                  raw_logit: float, query_pid, query_cam, gallery_pids, gallery_cams,
                  raw_label: str = "logit") -> list[MethodScore]:
    """The pair's value and rank under raw / +RR / +RR+TLift (``raw_label``: what the raw score
    is, ``"logit"`` for QAConv, ``"cosine"`` for a global model).

    ``rows`` maps ``"raw"``, ``"+RR"``, ``"+RR+TLift"`` to the query's distance row ``[g]``
    (None when not computed; ``notes`` then says why).
    """
    out = []
    for method in ("raw", "+RR", "+RR+TLift"):
        row = rows.get(method)
        label = raw_label if method == "raw" else "distance"
        if row is None:
            out.append(MethodScore(method, label, None, None, notes.get(method, "not computed")))
            continue
        ranking = rank_query(row, None, query_pid, query_cam, gallery_pids, gallery_cams)
        rank = int(ranking.ranks[ranking.position_of(gallery_index)])
        value = raw_logit if method == "raw" else float(row[gallery_index])
        out.append(MethodScore(method, label, value, rank))
    return out


def kinds_for(corr: Correspondence | None) -> tuple[str, ...]:
    """The heatmap kinds that differ for this correspondence: a global model's relative split is
    its contribution itself (no head), so it is left out."""
    if corr is not None and not corr.has_relative:
        return tuple(k for k in KINDS if k != "relative")
    return KINDS


@evented
@dataclass(eq=False)
class InspectorState:
    """What the match inspector shows; derived numbers come from the engine's correspondence.

    Every field emits ``events.<field>(new, old)`` when it is assigned a different value.
    """

    open: bool = False                # the inspector is the visible page
    pair: tuple[int, int] | None = None     # (query number, gallery index) shown, or None
    correspondence: Correspondence | None = None    # of `pair` (None while computing)
    # Why `pair` has no correspondence (a model whose score does not split exactly), else "".
    unavailable: str = ""
    scores: tuple = ()                # tuple[MethodScore, ...] of `pair`
    # One of KINDS. The default is the pair heatmap, the most faithful in the deletion test
    # (README "How faithful is the picture?"); relative = contribution vs. an average match.
    kind: str = DEFAULT_KIND
    heatmap_on: bool = True
    opacity: float = 0.55             # heatmap opacity in [0, 1]
    line_mode: str = "top"            # one of LINE_MODES
    line_side: str = "probe"          # lines from query locations, gallery locations or both
    top_n: int = 10
    # "threshold" mode: the share of each side's locations drawn, most similar first (the cut
    # follows the pair: a head whose similarities all lie in 0.97-1.00 draws as useful a subset
    # as one spread over 0-1).
    threshold_share: float = 0.1
    hover: tuple[str, int] | None = None    # (side, index) under the pointer, or None
    pinned: tuple[str, int] | None = None   # (side, index) clicked, or None

    def __post_init__(self) -> None:
        # Connected first, so the pair's other listeners see its locations forgotten already.
        self.events.pair.connect(self._forget_locations)

    def _forget_locations(self) -> None:
        """Another pair: the location under the pointer or pinned belonged to the last one."""
        self.hover = None
        self.pinned = None

    def show(self, pair: tuple[int, int], correspondence: Correspondence | None,
             unavailable: str = "") -> None:
        """Show another pair with its correspondence (or why it has none): one event (``pair``,
        or ``correspondence`` for the same pair), so the view redraws once."""
        with self.events.correspondence.blocked(), self.events.unavailable.blocked():
            self.correspondence = correspondence  # the pair's event redraws it
            self.unavailable = unavailable
        if pair == self.pair:
            self.events.correspondence.emit(correspondence, correspondence)
        else:
            self.pair = pair

    # ------------------------------------------------------------------ derived numbers
    def heatmap(self, side: str) -> np.ndarray | None:
        """The ``[H, W]`` map drawn over ``side``'s image: the pair heatmap, ``a``/``b``,
        ``w*a``/``w*b`` or ``w*(a-mu)``/``w*(b-mu)`` (a global model: the matched cosines or its
        exact split, docs/arithmetic.md 2.9)."""
        corr: Correspondence | None = self.correspondence
        if corr is None:
            return None
        if self.kind == "pair":
            return pair_heatmap(corr, side)
        if self.kind == "similarity":
            return corr.heatmap(side)
        if self.kind == "relative":
            return corr.relative_contribution(side)
        return corr.contribution(side)

    def levels(self) -> tuple[float, float]:
        """Colour-scale limits shared by both heatmaps; symmetric around 0 for contributions."""
        maps = [self.heatmap(side) for side in SIDES]
        if maps[0] is None:
            return (0.0, 1.0)
        values = np.concatenate([m.ravel() for m in maps]).astype(np.float64)
        if self.kind != "similarity":
            m = float(np.abs(values).max()) or 1.0
            return (-m, m)
        lo, hi = float(values.min()), float(values.max())
        return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)

    def lines(self) -> list[Line]:
        """Correspondence lines to draw (strongest contribution first)."""
        corr = self.correspondence
        if corr is None or self.line_mode == "off":
            return []
        sides = SIDES if self.line_side == "both" else (self.line_side,)
        out: list[Line] = []
        for side in sides:
            if self.line_mode == "top":
                out += select_lines(corr, side, top_n=self.top_n, relative=self.relative)
            else:
                out += select_lines(corr, side, top_n=None, threshold=self.similarity_cut(side),
                                    relative=self.relative)
        return out

    def similarity_cut(self, side: str) -> float | None:
        """The "threshold" mode's similarity on ``side``: the ``threshold_share`` most similar of
        its locations (at least one; ties at the cut included) lie at or above it."""
        corr = self.correspondence
        if corr is None:
            return None
        sim = np.sort(corr.heatmap(side).ravel())[::-1]
        keep = min(sim.size, max(1, int(np.ceil(self.threshold_share * sim.size - 1e-9))))
        return float(sim[keep - 1])

    def similarity_range(self) -> tuple[float, float]:
        """Limits of the line colours: the pair's best-match similarities, both sides."""
        corr = self.correspondence
        if corr is None:
            return (0.0, 1.0)
        values = np.concatenate([corr.probe_heatmap.ravel(), corr.gallery_heatmap.ravel()])
        lo, hi = float(values.min()), float(values.max())
        if hi - lo < 1e-3:  # (nearly) identical images: one colour, not rounding noise
            mid = 0.5 * (lo + hi)
            lo, hi = mid - 5e-4, mid + 5e-4
        return lo, hi

    def focus(self) -> Line | None:
        """The location lit up: the pinned one, else the one under the pointer."""
        where = self.pinned or self.hover
        return None if where is None else self.location(*where)

    def location(self, side: str, index: int) -> Line | None:
        """Location ``index`` of ``side`` and its best match, with the contribution of the split
        the lines use (:attr:`relative`); None without a correspondence."""
        if self.correspondence is None:
            return None
        line = matched_location(self.correspondence, side, index)
        if self.relative:
            rel = float(self.correspondence.relative_contribution(side).reshape(-1)[index])
            line = Line(line.side, line.source, line.target, line.similarity, rel)
        return line

    def toggle_pin(self, where: tuple[str, int] | None) -> None:
        """A click: pin that location, or unpin when it is already pinned (or off the images)."""
        self.pinned = None if (where is None or where == self.pinned) else where

    @property
    def relative(self) -> bool:
        """Lines, bands and the lit-up match use ``w*(a-mu)`` unless the ``w*a`` map is shown.

        Ordered by ``w*a``, the strongest locations are those the head weighs most for any pair;
        ``w*(a-mu)`` ranks them by what this pair adds over a typical match.
        """
        return self.kind != "contribution"

    def split_label(self) -> str:
        """The name of the split the lines, bands and lit-up match use: ``w·(a−μ)``, ``w·a``, or
        a global model's ``share`` of the cosine."""
        corr = self.correspondence
        if corr is not None and not corr.has_relative:
            return "share"
        return "w·(a−μ)" if self.relative else "w·a"

    def bands(self) -> dict[str, np.ndarray] | None:
        """Contributions per body band (top, middle, bottom thirds): query, gallery, total."""
        corr = self.correspondence
        if corr is None:
            return None
        if self.relative:
            maps = [corr.relative_contribution(side) for side in SIDES]
        else:
            maps = [corr.contribution(side) for side in SIDES]
        probe, gallery = band_sums(maps[0]), band_sums(maps[1])
        return {"probe": probe, "gallery": gallery, "total": probe + gallery}

    def sums(self) -> list[tuple[str, float, float, float]]:
        """The score as the sums the contribution maps add up to: ``(split, query, gallery, bias)``
        for ``w*a`` and for the relative split (a global model: its one split)."""
        corr = self.correspondence
        if corr is None:
            return []
        if not corr.has_relative:
            return [("share", float(corr.probe_contribution.sum(dtype=np.float64)),
                     float(corr.gallery_contribution.sum(dtype=np.float64)), float(corr.bias))]
        out = []
        for split, maps, bias in (
                ("w·a", [corr.contribution(s) for s in SIDES], corr.bias),
                ("w·(a−μ)", [corr.relative_contribution(s) for s in SIDES], corr.relative_bias)):
            out.append((split, float(maps[0].sum(dtype=np.float64)),
                        float(maps[1].sum(dtype=np.float64)), float(bias)))
        return out
