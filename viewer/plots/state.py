"""The analysis plots panel as plain data (no Qt): what it shows, and the jobs that compute it.

The panel follows the window's settings: its stages are raw, +RR (with the RR parameters set in
the window, when the re-ranking blocks are there or RR is on), +TLift and +RR+TLift (with the
TLift parameters, when the data has times). The score distributions and the camera-pair matrix
show the *current* stage, the one the results grid ranks by. TLift sweeps vary one parameter at
a time around the window's TLift settings, on the stage TLift lifts (RR when RR is on).
"""
from __future__ import annotations

import dataclasses
import operator
import time
from dataclasses import dataclass

import numpy as np
from psygnal import evented

from engine.analysis.plot_data import (
    APPENDIX_VALUES,
    PlotSet,
    analyse_stages,
    settings_key,
    stage_distances,
    tlift_sweeps,
)
from engine.postprocess.params import RerankParams, TLiftParams, stage_name
from viewer.state import PostSettings, ViewerState

__all__ = ["PlotRequest", "PlotResult", "PlotsState", "SweepRequest", "SweepResult",
           "compute_plots", "compute_sweeps", "plot_request", "query_marks", "sweep_request"]

# Bytes of stage distances a refresh keeps for the next one (two demo matrices are ~4 MB; at
# Market scale each is ~214 MB, and those are recomputed instead of held).
KEEP_BYTES = 256 << 20


@dataclass(frozen=True)
class PlotRequest:
    """The stages to plot: their RR / TLift settings (None = stage not offered) and which of
    them is the window's current one."""

    rerank: RerankParams | None
    tlift: TLiftParams | None
    current: str

    def key(self) -> tuple:
        return (settings_key(self.rerank, self.tlift), self.current)


@dataclass(frozen=True)
class PlotResult:
    request: PlotRequest
    plots: PlotSet
    sweep_base: np.ndarray   # [q, g] the distances TLift lifts (raw, or +RR when RR is on)
    seconds: float
    distances: dict          # {settings_key: [q, g]} of the stages the window does not cache
    analyses: dict           # {(stage name, settings_key): StageAnalysis}, for the next refresh


@dataclass(frozen=True)
class SweepRequest:
    """A TLift sweep: the stage it varies and the settings each parameter varies around."""

    stage: str
    base: TLiftParams
    rerank: RerankParams | None

    def key(self) -> tuple:
        return (self.stage, settings_key(self.rerank, self.base))


@dataclass(frozen=True)
class SweepResult:
    request: SweepRequest
    sweeps: dict
    seconds: float


@evented(equality_operators={"plots": operator.is_, "sweep": operator.is_})
@dataclass(eq=False)
class PlotsState:
    """What the plots panel shows; every field emits ``events.<field>(new, old)`` when it is
    assigned a different value (results compare by identity)."""

    visible: bool = False
    plots: PlotResult | None = None      # of the latest refresh
    busy: bool = False                   # a refresh is running
    progress: tuple | None = None        # (stage, done, total) of the refresh, or None
    error: str = ""                      # why the last refresh or sweep failed, "" = fine
    sweep: SweepResult | None = None
    sweep_progress: tuple | None = None  # (done, total) of a running sweep, or None
    subset: str = "all"                  # score distributions: all | same_camera | other_camera
    log_density: bool = False            # score distributions on a log density axis
    camera_metric: str = "rank1"         # camera matrix: rank1 | mean_ap


def _offers_rerank(state: ViewerState) -> bool:
    logits = state.session.logits if state.session is not None else {}
    return state.rerank_on or ("qq" in logits and "gg" in logits)


def plot_request(state: ViewerState) -> PlotRequest | None:
    """The stages for the window's settings; None while the window has no distances yet or a
    recomputation of the current stage is still running."""
    if state.session is None or state.distmat is None:
        return None
    if state.requested_settings() != state.applied:
        return None
    applied = state.applied
    return PlotRequest(rerank=state.rerank if _offers_rerank(state) else None,
                       tlift=state.tlift if state.has_times else None,
                       current=stage_name(state.base_method, applied.rerank is not None,
                                          applied.tlift is not None))


def sweep_request(state: ViewerState) -> SweepRequest | None:
    """The sweep for the window's settings (None without timestamps)."""
    if state.session is None or not state.has_times:
        return None
    rerank = state.rerank if state.rerank_on else None
    return SweepRequest(stage=stage_name(state.base_method, rerank is not None, True),
                        base=state.tlift, rerank=rerank)


def compute_plots(session, request: PlotRequest, known: dict, *, progress, cancel,
                  previous: PlotResult | None = None) -> PlotResult:
    """Distances of every stage (reusing ``known`` ones) and their analysis (a background job).

    A stage whose settings did not change since ``previous`` keeps its analysis.
    """
    t0 = time.perf_counter()
    method = session.method
    dists = stage_distances(session, request.rerank, request.tlift, known=known,
                            progress=progress, cancel=cancel)
    keys = {stage_name(method, rr is not None, tl is not None): settings_key(rr, tl)
            for rr in (None, request.rerank) for tl in (None, request.tlift)}
    reuse = previous.analyses if previous is not None else {}
    todo = {name: d for name, d in dists.items() if (name, keys[name]) not in reuse}
    fresh = analyse_stages(todo, session.query_pids, session.gallery_pids, session.query_cams,
                           session.gallery_cams, progress=progress,
                           cancel=cancel).stages if todo else ()
    analyses = {**{k: v for k, v in reuse.items() if k[0] in dists and k[1] == keys[k[0]]},
                **{(s.name, keys[s.name]): s for s in fresh}}
    plots = PlotSet(stages=tuple(analyses[(name, keys[name])] for name in dists),
                    current=request.current)
    # What a sweep lifts: the re-ranked distances when the current stage is re-ranked.
    lifts_rr = request.rerank is not None and "+rr" in request.current
    base = dists[stage_name(method, lifts_rr, False)]
    # +RR alone and +TLift alone are never the window's distances while the other is on:
    # kept for the next refresh, which then recomputes only the stage whose settings changed.
    keep = {}
    for rr, tl in ((request.rerank, None), (None, request.tlift)):
        name = stage_name(method, rr is not None, tl is not None)
        if (rr is None) != (tl is None) and name in dists:
            keep[settings_key(rr, tl)] = dists[name]
    if sum(d.nbytes for d in keep.values()) > KEEP_BYTES:
        keep = {}
    return PlotResult(request, plots, base, time.perf_counter() - t0, keep, analyses)


def known_distances(cache, request: PlotRequest, previous: PlotResult | None = None) -> dict:
    """Distance matrices already computed for the request's stages (by settings key): by the
    window (its cache) or by the previous refresh."""
    known = dict(previous.distances) if previous is not None else {}
    for rr in (None, request.rerank):
        for tl in (None, request.tlift):
            hit = cache.get(PostSettings(rr, tl))
            if hit is not None:
                known[settings_key(rr, tl)] = hit[0]
    return known


def compute_sweeps(distmat: np.ndarray, labels: dict, request: SweepRequest, *, progress,
                   cancel, values: dict | None = None) -> SweepResult:
    """Rank-1 / mAP of each TLift parameter over the appendix's values (a background job)."""
    t0 = time.perf_counter()
    sweeps = tlift_sweeps(distmat, **labels, values=values or APPENDIX_VALUES,
                          base=dataclasses.asdict(request.base), relative=request.rerank is None,
                          progress=lambda d, t: progress("sweep", d, t), cancel=cancel)
    return SweepResult(request, sweeps, time.perf_counter() - t0)


def session_labels(session) -> dict:
    """The pids, cameras and times :func:`engine.analysis.plot_data.tlift_sweeps` needs."""
    return {"query_pids": session.query_pids, "gallery_pids": session.gallery_pids,
            "query_cams": session.query_cams, "gallery_cams": session.gallery_cams,
            "query_times": session.times_of(session.dataset.query),
            "gallery_times": session.times_of(session.dataset.gallery)}


def query_marks(state: ViewerState, subset: str = "all") -> tuple[np.ndarray, np.ndarray] | None:
    """Scores (``1 - distance``) of the selected query's true and false pairs in the current
    distances, junk removed, for one subset of the distributions; None for no dataset query."""
    query = state.selected_query
    if state.session is None or state.distmat is None or query < 0 or state.is_extra(query):
        return None
    sample = state.session.dataset.query[query]
    score = np.float32(1.0) - np.asarray(state.distmat[query], np.float32)  # [g]
    same_pid = state.session.gallery_pids == sample.pid
    same_cam = state.session.gallery_cams == sample.cam
    true, false = same_pid & ~same_cam, ~same_pid
    if subset == "same_camera":
        true, false = true & same_cam, false & same_cam
    elif subset == "other_camera":
        false = false & ~same_cam
    return score[true], score[false]
