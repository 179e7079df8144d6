"""What the path view draws for one query (Qt-free): its sightings on camera rows and a time
axis, the legs between consecutive sightings with their transit's plausibility, and the
camera-pair transit table (docs/arithmetic.md section 13).

Sightings are the query and the gallery images marked "same person"; the best unmarked
results are drawn faded as candidates. Without capture times there is no time axis: ``reason``
says why the view is empty.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.analysis.transit import (
    PairTransit,
    confirmed_transits,
    time_order,
    transit_plausibility,
)

if TYPE_CHECKING:  # importing engine.postprocess loads numba: not on the GUI's start
    from engine.postprocess.transit_model import TransitModel

__all__ = ["QUERY", "CONFIRMED", "CANDIDATE", "LEARNED", "PIVOTS", "PathPoint", "PathLeg",
           "PairRow", "PathModel", "build_path", "format_seconds"]

QUERY, CONFIRMED, CANDIDATE = "query", "confirmed", "candidate"


@dataclass(frozen=True)
class PathPoint:
    """One image on the chart; ``gallery`` is -1 for the query."""

    kind: str
    gallery: int
    path: str
    cam: int
    time: float
    rank: int = 0          # the rank shown in the grid (0: the query, or junk)


@dataclass(frozen=True)
class PathLeg:
    """Consecutive sightings: ``transit`` seconds from ``start`` to ``end``; ``expected``: the
    pair's most likely transit (None: unknown) and ``plausibility`` in [0, 1] (NaN: unknown),
    both from ``basis``: the learned transit model when it knows the pair, else TLift's pivots."""

    start: PathPoint
    end: PathPoint
    transit: float
    expected: float | None
    plausibility: float
    basis: str = ""

LEARNED, PIVOTS = "transit model", "TLift pivots"


@dataclass(frozen=True)
class PairRow:
    """A camera pair in the transit table: from confirmed sightings, the learned transit
    model's most likely transit from ``start`` to a later ``end`` (and the matches behind it),
    and TLift's pivots."""

    start: int
    end: int
    confirmed: PairTransit | None
    model: PairTransit | None
    learned: float | None = None
    learned_count: int = 0


@dataclass(frozen=True)
class PathModel:
    cameras: tuple[int, ...] = ()        # the chart's rows, top to bottom
    points: tuple[PathPoint, ...] = ()   # sightings in time order, then candidates
    legs: tuple[PathLeg, ...] = ()
    pairs: tuple[PairRow, ...] = ()
    reason: str = ""                     # why nothing is drawn ("" when something is)
    note: str = ""                       # a hint under the chart

    @property
    def sightings(self) -> tuple[PathPoint, ...]:
        return tuple(p for p in self.points if p.kind != CANDIDATE)


def build_path(query, gallery: Sequence, positives: Sequence[int], candidates: Sequence[tuple[int, int]],
               model: Mapping[tuple[int, int], PairTransit] | None, sigma: float,
               learned: TransitModel | None = None) -> PathModel:
    """The chart of one query.

    ``query``: its Sample (path, cam, time); ``gallery``: the gallery Samples; ``positives``:
    gallery indices marked the same person; ``candidates``: (gallery index, rank) of the best
    unmarked results; ``model``: the pair transits of TLift's pivots (None: not computed yet);
    ``sigma``: TLift's kernel width (seconds), scoring a leg against the pivots' median;
    ``learned``: the session's transit model (:func:`engine.feedback.session_transits`), which
    scores a leg of a pair it knows as relevance feedback does (docs/arithmetic.md 12.4).
    """
    if query is None:
        return PathModel(reason="Select a query to see its path.")
    if query.time is None or query.cam is None:
        return PathModel(reason="This query has no capture time (or camera), so it has no place "
                                "on a time axis: the path needs timestamps.")
    timed = [g for g in positives if gallery[g].time is not None]
    if len(timed) < len(positives):
        missing = len(positives) - len(timed)
        note = f"{missing} confirmed sighting(s) without a capture time are left out."
    else:
        note = ""
    sightings = [PathPoint(QUERY, -1, query.path, int(query.cam), float(query.time))]
    sightings += [PathPoint(CONFIRMED, int(g), gallery[g].path, int(gallery[g].cam),
                            float(gallery[g].time)) for g in timed]
    sightings = [sightings[i] for i in time_order([p.time for p in sightings])]
    marked = set(positives)
    faded = [PathPoint(CANDIDATE, int(g), gallery[g].path, int(gallery[g].cam),
                       float(gallery[g].time), int(rank))
             for g, rank in candidates if g not in marked and gallery[g].time is not None]
    legs = [_leg(start, end, model, sigma, learned)
            for start, end in zip(sightings, sightings[1:], strict=False)]
    confirmed = confirmed_transits([p.cam for p in sightings], [p.time for p in sightings])
    pairs = tuple(PairRow(a, b, confirmed.get((a, b)), None if model is None else model.get((a, b)),
                          None if learned is None else learned.most_likely(a, b),
                          0 if learned is None else learned.counts.get((a, b), 0))
                  for a, b in sorted(confirmed))
    cameras = tuple(sorted({p.cam for p in sightings} | {p.cam for p in faded}))
    if len(sightings) == 1:
        note = " ".join(filter(None, ("Mark results 'same person' (S) to add sightings to the "
                                      "path.", note)))
    return PathModel(cameras=cameras, points=tuple(sightings) + tuple(faded), legs=tuple(legs),
                     pairs=pairs, note=note)


def _leg(start: PathPoint, end: PathPoint, model, sigma: float, learned) -> PathLeg:
    transit = end.time - start.time
    if learned is not None and (start.cam, end.cam) in learned.density:
        plausible = float(learned.plausibility(start.cam, start.time, [end.cam], [end.time])[0])
        likely = learned.most_likely(start.cam, end.cam, 1 if transit >= 0 else -1)
        return PathLeg(start, end, transit, likely, plausible, LEARNED)
    expected = None if model is None else getattr(model.get((start.cam, end.cam)), "median", None)
    return PathLeg(start, end, transit, expected, transit_plausibility(transit, expected, sigma),
                   "" if expected is None else PIVOTS)


def format_seconds(value: float | None) -> str:
    """``+2:05`` / ``-0:40`` (minutes:seconds), ``–`` when unknown."""
    if value is None or not math.isfinite(value):
        return "–"
    minutes, seconds = divmod(int(round(abs(value))), 60)
    return f"{'-' if value < 0 else '+'}{minutes}:{seconds:02d}"
