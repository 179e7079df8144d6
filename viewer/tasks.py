"""What the viewer's background jobs do: plain functions over the engine (no Qt here).

Each takes ``progress(stage, done, total)`` and ``cancel() -> bool`` keyword arguments, as the
engine does, so :class:`viewer.jobs.JobService` can run it and the tests can call it directly.
"""
from __future__ import annotations

import dataclasses
import importlib.resources
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data.samples import Sample
from engine.evaluation import Metrics
from engine.jobs import check_cancel
from engine.postprocess.params import RerankParams
from viewer.state import ExtraQuery, PostSettings

log = logging.getLogger(__name__)

__all__ = ["LoadRequest", "Loaded", "describe_request", "Computed", "demo_root", "demo_checkpoint",
           "load_session", "compute_distances", "score_rerank_blocks", "pending_blocks",
           "choose_shortlist", "AUTO_SHORTLIST_SECONDS", "score_external", "extra_row",
           "extra_rows", "export_ranked_csv",
           "safe_evaluate", "NeedsSize", "open_model"]


def demo_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the demo's synthetic domain B lives (generated on first use)."""
    from engine.utils import default_cache_dir  # imports torch: keep it off the GUI's start

    return Path(cache_dir or default_cache_dir()) / "demo" / "B"


def demo_checkpoint() -> Path:
    """The shipped demo checkpoint (trained on synthetic domain A), package data of viewer.demo."""
    # pip installs a package as a folder, so the resource is a file torch can open by path.
    return Path(importlib.resources.files("viewer.demo") / "model.pt")


@dataclass(frozen=True)
class LoadRequest:
    """What to open: ``data`` None means the demo (generated when absent)."""

    data: str | None = None
    checkpoint: str | None = None
    device: str = "auto"
    cache_dir: str | None = None
    layout: str | None = None
    # Also score q-q and g-g in the background after the first paint, so switching RR on is
    # fast (False: only when RR is first switched on). Never before the first paint.
    rerank_blocks: bool = True
    # Two-stage retrieval: "auto" (when exhaustive scoring would take more than
    # AUTO_SHORTLIST_SECONDS), a number of candidates K, or None to force exhaustive scoring.
    shortlist: int | str | None = "auto"
    # The input size of another project's checkpoint, when its file does not tell (asked).
    height: int | None = None
    width: int | None = None


# Two-stage retrieval is chosen when exhaustive scoring (q-g, q-q and g-g) would take longer.
AUTO_SHORTLIST_SECONDS = 180.0


def describe_request(request: LoadRequest) -> str:
    """What a load opens, for the loading page (the demo only when it is the demo's data)."""
    if request.data is None and request.checkpoint is None:
        return "Demo: synthetic domain B, ranked by a model trained on domain A"
    data = "Dataset: the demo's synthetic domain B" if request.data is None else \
        f"Dataset: {request.data}"
    model = "Checkpoint: the demo model (trained on synthetic domain A)" \
        if request.checkpoint is None else f"Checkpoint: {request.checkpoint}"
    return f"{data}\n{model}"


@dataclass
class Loaded:
    """A ready session and its ranking without post-processing."""

    session: object                 # engine.session.Session
    raw_distmat: np.ndarray         # [q, g] float32
    raw_metrics: Metrics | None
    steps: dict[str, float] = field(default_factory=dict)   # seconds per step
    generated_demo: bool = False
    prefetch: bool = False          # score the re-ranking blocks in the background now
    scoring_note: str = ""          # how scoring was chosen (two-stage retrieval or not)
    model_note: str = ""            # what a converted checkpoint was found to be ("": native)


@dataclass(frozen=True)
class NeedsSize:
    """Another project's checkpoint whose input size its file does not tell: the user picks
    one of ``candidates`` (``(height, width)`` pairs) and the load or comparison is asked again."""

    source: str
    candidates: tuple[tuple[int, int], ...]
    message: str


def open_model(source: str, cache_dir: str | None, height: int | None = None,
               width: int | None = None) -> tuple[str, str] | NeedsSize:
    """``(checkpoint of this tool, what was found)`` for any model file (another project's
    converted once into the cache: :func:`engine.cli._common.native_model`), or
    :class:`NeedsSize` when the converter needs the input size."""
    from engine.cli._common import native_model
    from engine.models import importing

    needs_size = getattr(importing, "NeedsInputSize", None)  # added with the converters
    try:
        return native_model(source, cache_dir, height=height, width=width)
    except Exception as exc:
        if needs_size is None or not isinstance(exc, needs_size):
            raise
        candidates = tuple((int(h), int(w)) for h, w in getattr(exc, "candidates", ()) or ())
        return NeedsSize(str(source), candidates, str(exc))


@dataclass
class Computed:
    """Distances for one settings choice, for the dataset's queries and the external ones."""

    settings: PostSettings
    distmat: np.ndarray                                     # [q, g] float32
    metrics: Metrics | None
    extra_rows: list[np.ndarray] = field(default_factory=list)  # one [g] row per external query
    seconds: float = 0.0
    # The re-ranked distances TLift lifted, with their metrics: RR alone, for free (the cache
    # keeps them, so switching TLift off, or the plots panel, need not re-rank again).
    rerank_only: tuple[PostSettings, np.ndarray, Metrics | None] | None = None


def safe_evaluate(session, distmat: np.ndarray) -> Metrics | None:
    """Metrics, or None when no query has a true match on another camera."""
    try:
        return session.evaluate(distmat)
    except ValueError as exc:
        log.warning("no metrics: %s", exc)
        return None


#: Query x gallery pairs up to which the launch evaluates the raw ranking before the first
#: paint (about 0.1 s); above it the metrics follow the first paint (0.6 s at Market size).
EVALUATE_BEFORE_PAINT = 5_000_000


def evaluate_distances(session, distmat: np.ndarray, *, progress, cancel) -> Metrics | None:
    """:func:`safe_evaluate` as a background job (the window's metrics after a new ranking)."""
    return safe_evaluate(session, distmat)


def load_session(request: LoadRequest, *, progress, cancel) -> Loaded | NeedsSize:
    """Open dataset and checkpoint, extract and score (cached), compute the raw ranking.

    The demo (``request.data is None``) is generated into the cache folder first when absent;
    its checkpoint is :func:`demo_checkpoint` unless ``request.checkpoint`` is given. Another
    project's checkpoint is converted first (:func:`open_model`); :class:`NeedsSize` when its
    input size must be asked for.
    """
    from engine.session import Session

    steps: dict[str, float] = {}
    generated = False
    # The checkpoint first: a missing one should not cost the minutes of making the demo set.
    checkpoint = request.checkpoint or str(demo_checkpoint())
    if not os.path.isfile(checkpoint):
        hint = (" (the demo checkpoint is made by training on synthetic domain A; "
                "pass --checkpoint FILE to use another)" if request.checkpoint is None else "")
        raise FileNotFoundError(f"checkpoint {checkpoint} does not exist{hint}")
    model_note = ""
    if request.checkpoint is not None:
        progress("open model", 0, 1)
        opened = open_model(checkpoint, request.cache_dir, request.height, request.width)
        if isinstance(opened, NeedsSize):
            return opened
        checkpoint, model_note = opened
    data = request.data
    if data is None:
        root = demo_root(request.cache_dir)
        if not (root / "query").is_dir():
            from engine.data.synthetic import generate

            t0 = time.perf_counter()
            progress("generate demo data", 0, 0)
            # The viewer needs only the test split, which does not depend on the train
            # split's size: skipping train writes ~1.8k files instead of ~6k.
            generate(root, domain="B", seed=0, num_train_ids=0,
                     workers=max(1, min(4, os.cpu_count() or 1)), progress=progress)
            steps["generate demo"] = time.perf_counter() - t0
            generated = True
        data = str(root)
    check_cancel(cancel)
    t0 = time.perf_counter()
    progress("open dataset and checkpoint", 0, 1)
    session = Session.open(data, checkpoint, device=request.device, layout=request.layout,
                           cache_dir=request.cache_dir)
    steps["open"] = time.perf_counter() - t0
    check_cancel(cancel)
    # The first paint needs only q-g: q-q and g-g come later (score_rerank_blocks, or RR on).
    session.extract(progress, cancel)
    session.shortlist, note = choose_shortlist(session, request.shortlist, progress=progress)
    session.score(("qg",), progress=progress, cancel=cancel)
    t0 = time.perf_counter()
    raw = session.distances(None, None, progress=progress, cancel=cancel)
    # A large set is painted before it is evaluated (the window evaluates it in the background).
    metrics = safe_evaluate(session, raw) if raw.size <= EVALUATE_BEFORE_PAINT else None
    steps["raw ranking"] = time.perf_counter() - t0
    steps.update({k: v for k, v in session.timings.steps.items() if k not in ("post-process",)})
    return Loaded(session=session, raw_distmat=raw, raw_metrics=metrics, steps=steps,
                  generated_demo=generated, prefetch=request.rerank_blocks, scoring_note=note,
                  model_note=model_note)


def choose_shortlist(session, mode: int | str | None, *, progress=None) -> tuple[int | None, str]:
    """``(K or None, note)``: two-stage retrieval or exhaustive scoring, and why (status bar).

    ``mode`` "auto" picks two-stage retrieval when exhaustive scoring is not cached and, at the
    rate measured on a small block, would take longer than :data:`AUTO_SHORTLIST_SECONDS`; its K
    is the smallest of DEFAULT_SHORTLIST, twice that, ... that the first stage's recall, measured
    on sampled queries (engine.shortlist.sampled_ranks), says loses no matches; exhaustive when
    none below the gallery size does. The maps must be extracted.
    """
    if mode is None or session.method != "qaconv":
        return None, ""
    if mode != "auto":
        k = int(mode)
        return k, f"two-stage retrieval: QAConv scores {k} candidates per item"
    from engine import shortlist

    if session.blocks.stored("qg"):
        return None, ""
    size = len(session.gallery_maps)
    ranks = shortlist.sampled_ranks(session, measure=False)   # measured by an earlier launch
    k = None if ranks is None else shortlist.lossless_shortlist(ranks, size, shortlist.DEFAULT_SHORTLIST)
    if k is not None and session.blocks.stored("qg", shortlist=k):
        seconds = None
    else:
        if progress is not None:
            progress("measure scoring speed", 0, 1)
        seconds = shortlist.estimate_exhaustive_seconds(session)
        if seconds <= AUTO_SHORTLIST_SECONDS:
            return None, ""
        if progress is not None:
            progress("measure the first stage's recall", 0, 1)
        k = shortlist.lossless_shortlist(shortlist.sampled_ranks(session), size,
                                         shortlist.DEFAULT_SHORTLIST)
    took = "" if seconds is None else f" (exhaustive scoring would take about {seconds / 60:.0f} min)"
    if k is None:
        return None, (f"exhaustive scoring{took}: two-stage retrieval would lose matches at "
                      "every K below the gallery size")
    return k, (f"two-stage retrieval: QAConv scores {k} candidates per item{took}; "
               "View > Reload with exhaustive scoring (or run_viewer.py --shortlist off) forces "
               "exhaustive scoring")


def score_rerank_blocks(session, *, progress, cancel) -> tuple[str, ...]:
    """Prepare the first RR / TLift toggle after the first paint: load the compiled kernels of
    re-ranking and TLift (compiled on a machine's first run), score (or load) the q-q and g-g blocks re-ranking needs
    and convert the blocks to distances once. Returns the names of the blocks."""
    from engine.postprocess.pipeline import warm_up

    progress("prepare re-ranking and TLift", 0, 1)
    warm_up()  # their compiled kernels
    session.score(("qq", "gg"), progress=progress, cancel=cancel)
    if not session.uses_shortlist:
        from engine.postprocess.rerank import expand

        progress("prepare re-ranking", 0, 1)
        defaults = RerankParams()
        near = session.neighbours(max(defaults.k1 + 1, defaults.k2), cancel=cancel)  # converts the blocks
        expand(near, defaults.k1)
    return ("qq", "gg")


def pending_blocks(session) -> tuple[str, ...]:
    """Blocks re-ranking needs that the session does not hold yet."""
    have = set(session.logits) | set(session.graphs)
    return tuple(n for n in ("qq", "gg") if n not in have)


def extra_row(session, extra: ExtraQuery, settings: PostSettings, *, cancel=None) -> np.ndarray:
    """Distances ``[g]`` of an external query under ``settings`` (TLift skipped: no timestamp).

    Re-ranking uses the external image alone as the query set (``N = 1 + g``), so adding an
    image never changes the dataset queries' lists.
    """
    from engine.explain.occlusion import external_distances

    row = external_distances(session, extra.logits[None, :], rerank=settings.rerank, cancel=cancel,
                             self_logits=[extra.self_logit])
    return np.asarray(row[0], np.float32)


def extra_rows(session, extras: list[ExtraQuery], settings: PostSettings, *,
               progress, cancel) -> list[np.ndarray]:
    """Rows ``[g]`` of external queries under ``settings`` (those they do not have yet)."""
    rows = []
    for i, extra in enumerate(extras):
        progress("external queries", i, len(extras))
        row = extra.row(settings)
        rows.append(row if row is not None else extra_row(session, extra, settings, cancel=cancel))
    return rows


def compute_distances(session, settings: PostSettings, extras: list[ExtraQuery], *,
                      progress, cancel, reranked: np.ndarray | None = None,
                      metrics: bool = True) -> Computed:
    """The distance matrix and metrics for ``settings``, and the external queries' rows.

    ``reranked``: the re-ranked matrix of ``settings.without_tlift()`` when the window has it
    already (kept unchanged), so +RR+TLift only lifts it (:meth:`engine.session.Session.distances`). ``metrics``
    False leaves the metrics to a later :func:`evaluate_distances` (None here), so that the
    window can show the new ranking before evaluating every query.
    """
    evaluate_now = safe_evaluate if metrics else (lambda _session, _distmat: None)
    t0 = time.perf_counter()
    rerank_only = None
    if settings.rerank is not None and settings.tlift is not None and reranked is None:
        # The session keeps the +RR matrix it lifts: hand it to the window's cache as well.
        reranked = session.distances(settings.rerank, None, progress=progress, cancel=cancel)
        check_cancel(cancel)
        rerank_only = (settings.without_tlift(), reranked, evaluate_now(session, reranked))
    distmat = session.distances(settings.rerank, settings.tlift, progress=progress, cancel=cancel,
                                reranked=reranked)
    check_cancel(cancel)
    result_metrics = evaluate_now(session, distmat)
    rows = extra_rows(session, extras, settings, progress=progress, cancel=cancel)
    return Computed(settings=settings, distmat=distmat, metrics=result_metrics, extra_rows=rows,
                    seconds=time.perf_counter() - t0, rerank_only=rerank_only)


def score_external(session, path: str, settings: list[PostSettings], *, progress, cancel) -> ExtraQuery:
    """Turn an image file into an external query with its rows for the given settings.

    Raises ``ValueError`` naming the file when it is not a readable image.
    """
    from engine.data import read_image_rgb

    progress("read image", 0, 1)
    image = read_image_rgb(path)  # a non-image fails here with a clear message
    check_cancel(cancel)
    progress("extract features", 0, 1)
    maps = session.maps_for_image(image)                      # [D, h, w] float16
    check_cancel(cancel)
    progress("score against gallery", 0, 1)
    logits = session.score_maps(maps[None])                   # [1, g]
    # The image against itself: the q-q block re-ranking needs (symmetric, so one value).
    self_logit = np.asarray(session.model.score(maps[None], maps[None], device=session.device,
                                                memory_budget=session.memory_budget), np.float32)
    extra = ExtraQuery(sample=Sample(os.path.abspath(path), None, None, None),
                       logits=np.asarray(logits[0], np.float32), self_logit=self_logit, maps=maps)
    for i, s in enumerate(settings):
        progress("rank", i, len(settings))
        extra.rows[s.without_tlift().key()] = extra_row(session, extra, s, cancel=cancel)
    return extra


def export_ranked_csv(path: str, distmat: np.ndarray, scores: np.ndarray, queries: list[Sample],
                      gallery: list[Sample], *, method: str, top_k: int | None,
                      query_indices: list[int], progress, cancel, camera_base: int = 1,
                      inputs=(), other_inputs: tuple[str, ...] = (), marks=None,
                      feedback=None, session=None, settings=None) -> int:
    """Write ranked lists to CSV via :func:`engine.export.write_ranked_csv`; returns rows written.

    Refuses to replace the session's ``inputs`` (:func:`engine.outputs.session_inputs`), the
    query images (external ones included) and ``other_inputs`` (the queries left out of
    ``queries``); ``marks``: row -> {gallery index: mark}, the ``mark`` column. ``feedback``:
    row -> (positives, negatives): those rows (dataset queries, numbered as in ``session``) are
    re-ranked from their marks first (``engine.feedback.refine`` under ``settings``), as the
    window shows them."""

    from engine.export import write_ranked_csv
    from engine.outputs import RunInputs

    if feedback:
        from engine.feedback import refine

        distmat = np.array(distmat, dtype=np.float32, copy=True)
        for done, (row, (positives, negatives)) in enumerate(sorted(feedback.items())):
            check_cancel(cancel)
            progress("re-rank the marked queries", done, len(feedback))
            distmat[row] = refine(session, row, positives, negatives, rerank=settings.rerank,
                                  tlift=settings.tlift)

    inputs = RunInputs.of(inputs)
    extra = tuple(s.path for s in queries) + tuple(other_inputs)
    inputs = dataclasses.replace(inputs, files=inputs.files + extra)
    return write_ranked_csv(path, distmat, scores, queries, gallery, method=method, top_k=top_k,
                            query_indices=query_indices, camera_base=camera_base, inputs=inputs,
                            marks=marks, refined=tuple(feedback or ()),
                            progress=lambda d, t: progress("export", d, t), cancel=cancel)
