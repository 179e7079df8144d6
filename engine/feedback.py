"""Relevance feedback: re-rank one query's gallery from results marked the same person or not.

:func:`refine` is the one entry (the viewer and ``python -m engine feedback-bench`` call it):
a distance row over the gallery (lower = closer) with the marked positives first in the order
given, the marked negatives last, and the rest re-scored from the marks (docs/arithmetic.md
section 12). With no marks it is the session's ranking row of the same stages, bit for bit.

What the marks add, all from products the session already has:

- every confirmed positive is another query: its row against the gallery is a column of the
  g-g block, re-ranked with the queries' own k-reciprocal encoding when re-ranking is on
  (:func:`engine.postprocess.rerank.jaccard_rows`) and lifted by TLift as its own probe when
  TLift is on;
- a negative pushes down (a bounded amount) what matches it better than the person's best
  confirmed view does, and the items seen close in time to it in its camera that look like it,
  unless they are also close to a confirmed sighting (people walking together);
- a confirmed sighting anchors time: items of a camera where the person was confirmed, close
  in time to that sighting, are lifted (TLift's kernel, docs/arithmetic.md 9.3, with the
  confirmed sightings as the pivots), and so are items of other cameras seen a plausible
  transit time away (:mod:`engine.postprocess.transit_model`, learned from the g-g block).

The two published baselines the benchmark compares with live here too, on the same rows:
:func:`query_shift` (Rocchio on similarities) and :func:`relevance_score` (Delussu et al.).
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.postprocess.params import RerankParams, TLiftParams, rerank_params, tlift_params
from engine.postprocess.transit_model import TransitModel, learn_transits

__all__ = ["FeedbackParams", "FeedbackRows", "feedback_rows", "pin", "query_shift", "refine",
           "refine_score", "relevance_score", "session_transits"]

# Gallery rows (stage distances of gallery items as queries) kept per stage: 1,024 rows of
# Market's 15,913 are 65 MB.
_ROW_CACHE = 1024


@dataclass(frozen=True)
class FeedbackParams:
    """How :func:`refine` weighs the marks (docs/arithmetic.md section 12). The defaults were
    chosen by measurement with ``python -m engine feedback-bench`` (docs/results.md
    "Relevance feedback")."""

    negative: float = 1.0     # push-down per standard deviation a negative matches better...
    negative_cap: float = 1.0  # ...up to this many (one look-alike is no proof)
    anchor: float = 4.0       # lift of items close in time to a confirmed sighting of their camera
    neg_anchor: float = 2.0   # push-down of items close in time to a negative that look like it
    sigma: float = 4.0        # seconds: the anchors' time kernel
    transit: float = 3.0      # lift of items of other cameras a plausible transit from a sighting
    # Marks may be wrong. A positive counts in proportion to how well the query's own row
    # finds it (its standard score there: weight 0 at trust_lo, 1 from trust_hi on); a negative
    # the query's row finds too well is doubted (weight 1 up to doubt_lo, 0 from doubt_hi on).
    trust_lo: float = 1.0
    trust_hi: float = 3.0
    doubt_lo: float = 3.0
    doubt_hi: float = 5.0


class FeedbackRows:
    """The rows feedback works on, for one set of stages (re-ranking, TLift: records or None).

    ``base [q, g]``: the chain's distances of those stages (:meth:`Session.distances`);
    ``qg``, ``gg``: the raw distance blocks; ``qq`` and ``neighbours`` (re-ranking's
    :func:`~engine.postprocess.rerank.top_ranks`, optional) only with re-ranking. Cameras and
    times (seconds, or None) of queries and gallery. ``transits``: the cameras' transit model
    (:func:`~engine.postprocess.transit_model.learn_transits`; learned here from ``gg`` when
    None and there are times, ``False`` for none). :meth:`gallery_rows` gives gallery items as
    queries in the same stages.
    """

    def __init__(self, base, qg, gg, *, query_cams, gallery_cams, query_times=None,
                 gallery_times=None, rerank: RerankParams | None = None,
                 tlift: TLiftParams | None = None, qq=None, neighbours=None,
                 transits: TransitModel | None | bool = None):
        self.base, self.qg, self.gg = base, qg, gg
        self.rerank, self.tlift = rerank, tlift
        self.query_cams, self.gallery_cams = np.asarray(query_cams), np.asarray(gallery_cams)
        self.query_times = None if query_times is None else np.asarray(query_times, np.float64)
        self.gallery_times = None if gallery_times is None else np.asarray(gallery_times, np.float64)
        self._camera_masks = [self.gallery_cams == c for c in np.unique(self.gallery_cams)]
        if transits is None and self.gallery_times is not None:
            transits = learn_transits(gg, self.gallery_cams, self.gallery_times)
        self.transits = transits or None
        self._encoding = None
        if rerank is not None:
            from engine.postprocess.rerank import encoding

            self._encoding = encoding(qg, qq, gg, rerank.k1, rerank.k2, neighbours=neighbours)
        self._rows: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def of_session(cls, session, rerank: RerankParams | None, tlift: TLiftParams | None):
        """The rows of ``session`` (exhaustive blocks; scored here when missing)."""
        if session.uses_shortlist:
            raise ValueError("feedback needs the exhaustive g-g block; two-stage retrieval keeps "
                             "only a neighbour graph")
        session.score(("qg", "qq", "gg") if rerank is not None else ("qg", "gg"))
        near = None if rerank is None else session.neighbours(max(rerank.k1 + 1, rerank.k2))
        return cls(session.distances(rerank, tlift), session.distance_block("qg"),
                   session.distance_block("gg"), query_cams=session.query_cams,
                   gallery_cams=session.gallery_cams,
                   query_times=session.times_of(session.dataset.query),
                   gallery_times=session.times_of(session.dataset.gallery), rerank=rerank,
                   tlift=tlift, qq=None if rerank is None else session.distance_block("qq"),
                   neighbours=near, transits=session_transits(session) or False)

    @property
    def num_gallery(self) -> int:
        return self.base.shape[1]

    def _stage_rows(self, items: list[int]) -> np.ndarray:
        rows = np.array(self.gg[:, items].T, np.float32)  # D[q + j, item]: the item's column
        if self._encoding is not None:
            from engine.postprocess.rerank import jaccard_rows

            rows = jaccard_rows(self._encoding, np.asarray(items) + self.base.shape[0], rows,
                                self.rerank.lambda_value)
        if self.tlift is not None:
            from engine.postprocess.pipeline import lift_distances

            # Each item alone is its probe window (its pivots: its own best matches per
            # camera): a camera id of its own, which TLift uses for nothing else (9.1).
            rows = lift_distances(rows, np.arange(len(items)), self.gallery_times[items],
                                  self.gallery_cams, self.gallery_times, self.tlift,
                                  relative=self.rerank is None)
        return rows

    def gallery_rows(self, items: Sequence[int]) -> np.ndarray:
        """Stage distances ``[len(items), g]`` (float32) of gallery ``items`` to the gallery:
        the g-g block's columns, re-ranked and lifted as the queries' rows are."""
        items = [int(i) for i in items]
        with self._lock:
            found = {i: self._rows.get(i) for i in items}
        missing = [i for i in dict.fromkeys(items) if found[i] is None]
        if missing:
            for i, row in zip(missing, self._stage_rows(missing), strict=True):
                row.flags.writeable = False
                found[i] = row
            with self._lock:
                self._rows.update((i, found[i]) for i in missing)
                while len(self._rows) > _ROW_CACHE:
                    self._rows.popitem(last=False)
        out = np.empty((len(items), self.num_gallery), np.float32)
        for k, i in enumerate(items):
            out[k] = found[i]
        return out

    def standard(self, rows) -> np.ndarray:
        """Distance rows ``[r, g]`` as similarities in standard deviations above the mean of
        their gallery camera (float64): each camera's best match stands out alike, whatever
        that camera's light does to every distance."""
        d = np.asarray(rows, np.float64)
        out = np.empty(d.shape)
        for mask in self._camera_masks:
            part = d[:, mask]
            spread = part.std(axis=1, keepdims=True)
            out[:, mask] = (part.mean(axis=1, keepdims=True) - part) / np.where(spread > 0, spread, 1.0)
        return out

    def time_weight(self, cams, times, sigma: float, weights=None) -> np.ndarray:
        """``max`` over sightings ``(cam, time)`` in each gallery item's camera of TLift's kernel
        ``exp(-(t_g - t) ^ 2 / sigma ^ 2)`` (times compared within a camera only, as TLift
        does); zeros without times."""
        w = np.zeros(self.num_gallery)
        if self.gallery_times is None:
            return w
        weights = np.ones(len(cams)) if weights is None else weights
        for cam, t, c in zip(cams, times, weights, strict=True):
            same = self.gallery_cams == cam
            w[same] = np.maximum(w[same], c * np.exp(-((self.gallery_times[same] - t) / sigma) ** 2))
        return w

    def transit_weight(self, cams, times, weights) -> np.ndarray:
        """``max`` over sightings ``(cam, time)`` (weights ``[n]``) of how plausible each
        gallery item's camera and time are as the same person's next or previous sighting
        (:meth:`TransitModel.plausibility`); zeros without a transit model."""
        w = np.zeros(self.num_gallery)
        if self.transits is None:
            return w
        for cam, t, c in zip(cams, times, weights, strict=True):
            if c > 0:
                w = np.maximum(w, c * self.transits.plausibility(
                    int(cam), float(t), self.gallery_cams, self.gallery_times))
        return w


_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_KEPT_LOCK = threading.Lock()


def session_transits(session, cancel=None) -> TransitModel | None:
    """The session's transit model (docs/arithmetic.md 12.4), learned once from the raw g-g
    block (scored here when missing) and kept with the session: feedback of every set of stages
    and the viewer's path view share it. None without times or with two-stage retrieval (no
    g-g block)."""
    times = session.times_of(session.dataset.gallery)
    if times is None or session.uses_shortlist:
        return None
    with _KEPT_LOCK:
        kept = _KEPT.setdefault(session, {})
        learning = kept.setdefault("transits lock", threading.Lock())
    with learning:  # feedback's warm-up and the path view may ask at once: learned once
        found = kept.get("transits")
        if found is None:
            found = kept["transits"] = learn_transits(session.distance_block("gg", cancel),
                                                      session.gallery_cams, times)
    return found


def feedback_rows(session, rerank=None, tlift=None) -> FeedbackRows:
    """The session's :class:`FeedbackRows` of these stages, built once and kept with it."""
    rr, tl = rerank_params(rerank), tlift_params(tlift)
    key = (None if rr is None else (rr.k1, rr.k2, rr.lambda_value),
           None if tl is None else (tl.tau, tl.sigma, tl.k, tl.alpha))
    with _KEPT_LOCK:
        found = _KEPT.setdefault(session, {}).get(key)
    if found is None:
        found = FeedbackRows.of_session(session, rr, tl)
        with _KEPT_LOCK:
            found = _KEPT[session].setdefault(key, found)
    return found


def _indices(values, name: str, size: int) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= int(v) < size:
            raise ValueError(f"{name} must be gallery indices in [0, {size}), got {v!r}")
        out.append(int(v))
    if len(set(out)) != len(out):
        raise ValueError(f"{name} lists a gallery index twice")
    return out


def pin(score: np.ndarray, positives: list[int], negatives: list[int]) -> np.ndarray:
    """A distance row (float32 ``[g]``) from ``score`` (higher = closer): the positives first
    in their order (in ``[0, 1)``), the rest by score (in ``[1, 2]``), the negatives last in
    their order (2 and up)."""
    s = np.asarray(score, np.float64)
    lo, hi = s.min(), s.max()
    out = 2.0 - (s - lo) / (hi - lo if hi > lo else 1.0)
    out[positives] = np.arange(len(positives)) / max(len(positives), 1)
    out[negatives] = 2.0 + np.arange(1, len(negatives) + 1)
    return out.astype(np.float32)


def refine_score(rows: FeedbackRows, query: int, positives: list[int], negatives: list[int],
                 params: FeedbackParams = FeedbackParams()) -> np.ndarray:
    """:func:`refine`'s score of every gallery item (float64 ``[g]``, higher = closer;
    docs/arithmetic.md section 12.3)."""
    z = rows.standard(np.vstack([rows.base[query][None], rows.gallery_rows(positives)]))
    own = z[0]  # the query's own row
    trust = np.clip((own[positives] - params.trust_lo) / (params.trust_hi - params.trust_lo), 0, 1)
    weights = np.concatenate([[1.0], trust])
    views = z
    if rows.rerank is not None:  # the raw rows too: re-ranking's coarse ranks, QAConv's detail
        raw = rows.standard(np.vstack([rows.qg[query][None], rows.gg[positives]]))
        views = 0.5 * (z + raw)
    score = weights @ views / weights.sum()
    if rows.gallery_times is not None and rows.query_times is not None:
        cams = np.concatenate([[rows.query_cams[query]], rows.gallery_cams[positives]])
        times = np.concatenate([[rows.query_times[query]], rows.gallery_times[positives]])
        near_sighting = rows.time_weight(cams, times, params.sigma, weights)
    else:
        cams = times = None
        near_sighting = np.zeros(rows.num_gallery)
    if negatives:
        belief = np.clip((params.doubt_hi - own[negatives]) / (params.doubt_hi - params.doubt_lo), 0, 1)
        zn = rows.standard(rows.gallery_rows(negatives))
        doubt = belief
        if rows.rerank is not None:  # stage and raw rows of each negative
            zn = np.vstack([zn, rows.standard(rows.gg[negatives])])
            doubt = np.concatenate([belief, belief])
        # What a negative resembles more than the person's best-matching confirmed view.
        best_view = np.where((weights > 0)[:, None], views, -np.inf).max(axis=0)
        excess = np.maximum(zn - np.maximum(score, best_view), 0.0) * doubt[:, None]   # [n, g]
        push = excess.max(axis=0)
        score = score - params.negative * np.minimum(push, params.negative_cap)
        if params.neg_anchor and rows.gallery_times is not None:
            seen = rows.time_weight(rows.gallery_cams[negatives], rows.gallery_times[negatives],
                                    params.sigma, belief)
            # Companions walk together: near a negative and near a sighting is not evidence.
            score -= params.neg_anchor * seen * (1.0 - near_sighting) * (push > 0)
    if cams is not None:
        score += params.anchor * near_sighting
        if params.transit:
            score += params.transit * rows.transit_weight(cams, times, weights)
    return score


def refine(session, query_index: int, positives: Sequence[int] = (), negatives: Sequence[int] = (),
           *, rerank=None, tlift=None, params: FeedbackParams | None = None) -> np.ndarray:
    """One query's distance row over the gallery after marks (float32 ``[g]``, lower = closer).

    ``positives``: gallery indices marked the same person, in the order marked; ``negatives``:
    marked not the same. ``rerank`` / ``tlift`` as :meth:`engine.session.Session.distances`.
    Without marks: that method's row for ``query_index``, bit for bit. With marks: the positives
    first in their order, the negatives last in theirs, the rest by :func:`refine_score` with
    ``params`` (:class:`FeedbackParams`' defaults when None). The first call for a set of stages
    builds their :class:`FeedbackRows` (the chain's matrix, re-ranking's encoding: seconds at
    Market size), kept with the session; a viewer warms it with :func:`feedback_rows` in a job.
    """
    rows = feedback_rows(session, rerank, tlift)
    num_q = rows.base.shape[0]
    if isinstance(query_index, bool) or not isinstance(query_index, (int, np.integer)) \
            or not 0 <= int(query_index) < num_q:
        raise ValueError(f"query_index must be in [0, {num_q}), got {query_index!r}")
    pos = _indices(positives, "positives", rows.num_gallery)
    neg = _indices(negatives, "negatives", rows.num_gallery)
    both = set(pos) & set(neg)
    if both:
        raise ValueError(f"gallery item {min(both)} is marked both the same person and not")
    if not pos and not neg:
        return np.array(rows.base[int(query_index)], np.float32)
    return pin(refine_score(rows, int(query_index), pos, neg, params or FeedbackParams()), pos, neg)


def query_shift(rows: FeedbackRows, query: int, positives: list[int], negatives: list[int],
                alpha: float = 0.65, beta: float = 0.35) -> np.ndarray:
    """Rocchio on similarities ``s = 1 - d``: ``s_q + alpha mean s(pos, g) - beta mean s(neg, g)``
    (a term left out when it has no marks); float64 ``[g]``, higher = closer."""
    score = 1.0 - rows.base[query].astype(np.float64)
    if positives:
        score = score + alpha * (1.0 - rows.gallery_rows(positives).astype(np.float64)).mean(axis=0)
    if negatives:
        score = score - beta * (1.0 - rows.gallery_rows(negatives).astype(np.float64)).mean(axis=0)
    return score


def relevance_score(rows: FeedbackRows, query: int, positives: list[int],
                    negatives: list[int]) -> np.ndarray:
    """Relevance Score ``d_neg / (d_neg + d_pos)``: ``d_pos`` the distance to the nearest of the
    query and the positives, ``d_neg`` to the nearest negative; without negatives ``-d_pos``.
    float64 ``[g]``, higher = closer."""
    d_pos = rows.base[query].astype(np.float64)
    if positives:
        d_pos = np.minimum(d_pos, rows.gallery_rows(positives).min(axis=0))
    if not negatives:
        return -d_pos
    d_neg = rows.gallery_rows(negatives).astype(np.float64).min(axis=0)
    total = d_neg + d_pos
    return np.divide(d_neg, total, out=np.full_like(total, 0.5), where=total > 0)
