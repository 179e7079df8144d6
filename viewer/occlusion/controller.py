"""Runs the occlusion panel's engine work in background jobs and stores the results.

Ranking an occluded query and the sensitivity map run on the session pool (one thread, so they
never use the model at the same time as another job); the previews, plain array work, run on
the io pool. Results come back on the GUI thread and go into :class:`OcclusionState` and the
query's entry in ``ViewerState.overrides`` (the grid's list); widgets only read the states.
"""
from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from engine.data import read_image_rgb
from viewer.controller import Controller
from viewer.formatting import camera_base, format_cam
from viewer.occlusion.state import (
    OcclusionOverride,
    OcclusionState,
    SensitivityResult,
    make_override,
    methods_note,
)
from viewer.state import JobError

log = logging.getLogger(__name__)

__all__ = ["OcclusionController", "previews_job", "rank_job", "sensitivity_job"]


# ---------------------------------------------------------------------- jobs (no Qt)
def previews_job(image, height: int, width: int, seed: int, *, progress, cancel):
    from engine.explain.occlusion import augmentation_previews

    progress("augmentation previews", 0, 1)
    return tuple(augmentation_previews(image, height, width, seed=seed))


def rank_job(session, image, box, fill: str, occluded, rerank, before, *, progress, cancel):
    from engine.explain.occlusion import rank_occluded

    return rank_occluded(session, image, box, fill, rerank=rerank, occluded=occluded,
                         before=before,
                         progress=lambda d, t: progress("rank the occluded query", d, t),
                         cancel=cancel)


def sensitivity_job(session, image, query: int, mode: str, gallery_index: int, pid, cam,
                    side: int, stride: int, fill: str, rerank, target: str = "", *, progress,
                    cancel):
    from engine.explain.occlusion import rank_change_map, sensitivity_map

    def report(done: int, total: int) -> None:
        progress("sensitivity map", done, total)

    if mode == "logit":
        values = sensitivity_map(session, image, gallery_index, side, stride, fill,
                                 progress=report, cancel=cancel)
        return SensitivityResult(query, mode, values, side, stride, gallery_index, target=target,
                                 fill=fill)
    result = rank_change_map(session, image, pid, cam, side, stride, fill, rerank=rerank,
                             progress=report, cancel=cancel)
    return SensitivityResult(query, mode, result.change, side, stride, -1, result.before,
                             fill=fill, ranking=result.ranking)


# ---------------------------------------------------------------------- the controller
class OcclusionController(QObject):
    """Binds the panel's :class:`OcclusionState` to the window's controller and state."""

    #: True when an occluded ranking was stored, False when it failed or was cancelled.
    rank_finished = Signal(bool)
    sensitivity_finished = Signal(bool)

    def __init__(self, controller: Controller, parent: QObject | None = None):
        super().__init__(parent or controller)
        self.main = controller
        self.viewer = controller.state
        self.state = OcclusionState()
        self.active = False
        self._last = None   # (source, box, fill, occluded) of the ranking on show
        self._session = None
        self._before: dict = {}  # {(session, query, settings): OccludedRanking}, the latest
        for name in ("selected_query", "session"):
            self.viewer.events[name].connect(lambda _v: self.sync_query())
        self._sens_mode = ""  # the mode of the sensitivity map being computed
        self.viewer.events.applied.connect(lambda _v: self._settings_changed())
        self.state.events.fill.connect(lambda _v: self._drop_sensitivity("the fill changed"))

    # ------------------------------------------------------------------ query
    def set_active(self, active: bool) -> None:
        """The panel was shown (True) or hidden; hidden, it does no work and shows nothing."""
        self.active = active
        if active:
            self.sync_query()
        else:
            self.reset()

    def sync_query(self) -> None:
        """Follow the selected query: its image, a fresh square and previews, no override."""
        viewer, state = self.viewer, self.state
        query = viewer.selected_query
        if (self.active and query == state.query and viewer.session is self._session
                and state.image is not None):
            return
        self.main.jobs.cancel("occlusion")
        self.main.jobs.cancel("sensitivity")
        if viewer.session is self._session:
            self._drop_override()  # of the query the panel leaves (a new session has none)
        self._session = viewer.session
        self._before = {}
        self._last = None
        state.sensitivity = None
        state.previews = ()
        state.query = query
        if not self.active or viewer.session is None or not 0 <= query < viewer.num_queries:
            state.image = None
            return
        path = viewer.query_sample(query).path
        try:
            image = read_image_rgb(path)
        except (OSError, ValueError) as exc:
            state.image = None
            viewer.error = JobError("cannot read the query image", str(exc))
            return
        h, w = image.shape[:2]
        side = max(4, round(w / 2))
        state.box = ((w - side) // 2, max(0, h // 3 - side // 2), side, side)
        state.image = image
        self._update_note()
        self.new_previews(seed=state.preview_seed)

    def shown(self) -> OcclusionOverride | None:
        """The occluded ranking the grid shows for the panel's query, if any."""
        override = self.viewer.override(self.state.query)
        return override if isinstance(override, OcclusionOverride) else None

    def _drop_override(self) -> None:
        if self.shown() is not None:
            self.viewer.set_override(self.state.query, None)

    def _update_note(self) -> None:
        applied = self.viewer.applied
        self.state.note = methods_note(applied.rerank is not None, applied.tlift is not None)

    # ------------------------------------------------------------------ previews
    def new_previews(self, seed: int | None = None) -> None:
        state, session = self.state, self.viewer.session
        if state.image is None or session is None:
            return
        state.preview_seed = state.preview_seed + 1 if seed is None else seed
        query = state.query

        def store(previews) -> None:
            if state.query == query:
                state.previews = previews

        self.main.jobs.submit(previews_job, state.image, session.prep.height, session.prep.width,
                              state.preview_seed, name="augmentation previews", pool="io",
                              group="previews", busy=False, on_result=store)

    # ------------------------------------------------------------------ ranking
    def apply_square(self) -> None:
        """Rank the query with the square (state.box, state.fill) in the background."""
        state = self.state
        if state.image is None or state.box is None:
            return
        self._rank("square", tuple(int(v) for v in state.box), state.fill, None)

    def rank_preview(self, index: int) -> None:
        previews = self.state.previews
        if 0 <= index < len(previews):
            self._rank(previews[index].name, None, "white", previews[index].image)

    def _rank(self, source: str, box, fill: str, occluded) -> None:
        viewer, state = self.viewer, self.state
        session, query = viewer.session, state.query
        if session is None or state.image is None:
            return
        self._last = (source, box, fill, occluded)
        settings = viewer.applied
        sample = viewer.query_sample(query)
        state.running = "rank"
        # The unoccluded image's ranking is the same for every release: kept per settings.
        key = (session, query, settings.without_tlift().key())
        before = self._before.get(key)

        def done(result) -> None:
            state.running = ""
            self._before = {key: result}
            if session is not viewer.session or query != viewer.selected_query:
                self.rank_finished.emit(False)
                return
            ranked = settings.without_tlift()
            viewer.set_override(query, make_override(query, result, source, sample.pid, sample.cam,
                                                     session.gallery_pids, session.gallery_cams,
                                                     ranked, ranked.method(viewer.base_method)))
            self._update_note()
            self.rank_finished.emit(True)

        def failed(*_args) -> None:
            state.running = ""
            self.rank_finished.emit(False)

        self.main.jobs.submit(rank_job, session, state.image, box, fill, occluded, settings.rerank,
                              before, name="rank the occluded query", group="occlusion", on_result=done,
                              on_error=failed, on_cancel=failed)

    def _settings_changed(self) -> None:
        self._update_note()
        shown = self.state.sensitivity
        if (shown is not None and shown.mode == "rank") or (
                self.state.running == "sensitivity" and self._sens_mode == "rank"):
            # A rank-change map ranks with re-ranking as applied (a logit map does not).
            self._drop_sensitivity("the post-processing changed")
        if self._last is not None and self.shown() is not None:
            self._rank(*self._last)  # post-processing changed: rank it again the new way

    def reset(self) -> None:
        """Back to the query's own ranking; the square returns to its start."""
        self.main.jobs.cancel("occlusion")
        self._drop_override()
        self._last = None
        self.state.running = ""
        image = self.state.image
        if image is not None:
            h, w = image.shape[:2]
            side = max(4, round(w / 2))
            self.state.box = ((w - side) // 2, max(0, h // 3 - side // 2), side, side)

    # ------------------------------------------------------------------ sensitivity
    def compute_sensitivity(self) -> None:
        from engine.explain.occlusion import resolve_square

        viewer, state = self.viewer, self.state
        session, query = viewer.session, state.query
        if session is None or state.image is None:
            return
        sample = viewer.query_sample(query)
        gallery_index, target = -1, ""
        if state.mode == "logit":
            item = viewer.selected_item()
            if item is None:
                viewer.error = JobError("no result selected", "select a result in the grid first")
                return
            gallery_index = item.gallery_index
            g = session.dataset.gallery[gallery_index]
            who = "a distractor" if g.pid == 0 else f"ID {g.pid}"
            place = (f"the result at rank {item.rank}" if item.rank > 0
                     else "the junk result (same identity and camera, not ranked)")
            target = f"{place} ({who}, {format_cam(g.cam, camera_base(viewer))})"
        elif sample.pid is None:
            viewer.error = JobError("identity unknown", "the rank of the first true match needs "
                                    "the query's identity; this is an external image")
            return
        h, w = state.image.shape[:2]
        try:
            side, stride = resolve_square(w, state.side or None, state.stride or None)
            if side > min(h, w):
                raise ValueError(f"the square ({side} px) is larger than the image ({w} x {h})")
        except ValueError as exc:
            viewer.error = JobError("cannot compute the sensitivity map", str(exc))
            return
        state.running = "sensitivity"
        state.sens_progress = (0, 0)
        self._sens_mode = state.mode

        def done(result: SensitivityResult) -> None:
            state.running = ""
            state.sens_progress = None
            if session is viewer.session and state.query == query:
                state.sensitivity = result
                state.show_heatmap = True
            self.sensitivity_finished.emit(True)

        def failed(*_args) -> None:
            state.running = ""
            state.sens_progress = None
            self.sensitivity_finished.emit(False)

        def progress(_stage: str, done_: int, total: int) -> None:
            if state.running:
                state.sens_progress = (done_, total)

        self.main.jobs.submit(sensitivity_job, session, state.image, query, state.mode,
                              gallery_index, sample.pid, sample.cam, side, stride, state.fill,
                              viewer.applied.rerank, target, name="sensitivity map",
                              group="sensitivity", on_result=done, on_error=failed,
                              on_cancel=failed, on_progress=progress)

    def cancel_sensitivity(self) -> None:
        self.main.jobs.cancel("sensitivity")

    def _drop_sensitivity(self, why: str) -> None:
        """Clear the map (and stop the one being computed): it was made under other settings."""
        if self.state.sensitivity is None and self.state.running != "sensitivity":
            return
        self.cancel_sensitivity()
        self.state.sensitivity = None
        self.viewer.events.message.emit(f"Sensitivity map cleared: {why}; compute it again")
