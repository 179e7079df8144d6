"""Plot data for judging a ranking: CMC curves, true/false pair scores, ROC, per-camera-pair
accuracy and TLift parameter sweeps (Qt-free; shared by ``evaluate --plots`` and the viewer).

Every function takes a distance matrix ``[q, g]`` as the pipeline produces it (smaller = closer)
and the pids / cameras of queries and gallery. Pair scores are ``1 - distance``: the unit
similarity every post-processing stage works in (``sigmoid(logit / 10)`` for raw QAConv, the
re-ranked or lifted similarity after RR / TLift), so all stages share one scale.

The Market-1501 protocol's junk is removed everywhere: a gallery item with the query's pid *and*
camera is neither a true nor a false pair. So the "same camera" pairs are all false pairs (their
true counterparts are junk), and a true pair always crosses cameras.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, astuple, dataclass

import numpy as np

from engine.evaluation import evaluate
from engine.jobs import CancelFn, ProgressFn, check_cancel, report
from engine.postprocess.params import stage_name, tlift_params
from engine.postprocess.pipeline import SweepPoint, relative_similarity, tlift_sweep

__all__ = [
    "APPENDIX_VALUES",
    "FPR_TARGETS",
    "CameraPairs",
    "PairScores",
    "PlotSet",
    "Roc",
    "ScoreHistogram",
    "SUBSETS",
    "StageAnalysis",
    "analyse_stage",
    "analyse_stages",
    "camera_pairs",
    "cmc_curve",
    "iter_stage_distances",
    "pair_scores",
    "roc_curve",
    "score_histogram",
    "settings_key",
    "stage_distances",
    "tlift_sweeps",
    "tpr_at_fpr",
]

#: The values of the QAConv appendix's parameter study (Tables 7 and 8).
APPENDIX_VALUES = {
    "tau": [50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 450.0, 500.0],
    "sigma": [50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 350.0, 400.0, 450.0, 500.0],
    "k": [5, 10, 15, 20, 30, 40, 50, 100, 150, 200],
    "alpha": [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0],
}
#: False positive rates at which the true positive rate is reported.
FPR_TARGETS = (1e-2, 1e-3, 1e-4)
#: Subsets of the pair-score distributions.
SUBSETS = ("all", "same_camera", "other_camera")


def cmc_curve(distmat, query_pids, gallery_pids, query_cams, gallery_cams,
              max_rank: int = 50) -> np.ndarray:
    """CMC ``[min(max_rank, g)]``: ``cmc[k]`` = share of valid queries with a hit in the top k+1."""
    return evaluate(distmat, query_pids, gallery_pids, query_cams, gallery_cams, max_rank).cmc


# ---------------------------------------------------------------------- pair scores
@dataclass(frozen=True)
class PairScores:
    """Scores (``1 - distance``, float32) of every query-gallery pair, junk removed.

    Attributes
    ----------
    true : ndarray [n_true]
        Same pid, different camera.
    false_same_camera : ndarray [n_fs]
        Different pid (distractors included), same camera.
    false_other_camera : ndarray [n_fo]
        Different pid, different camera.
    """

    true: np.ndarray
    false_same_camera: np.ndarray
    false_other_camera: np.ndarray

    @property
    def false(self) -> np.ndarray:
        return np.concatenate([self.false_same_camera, self.false_other_camera])

    def subset(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(true, false)`` scores of ``all``, ``same_camera`` or ``other_camera`` pairs."""
        if name == "all":
            return self.true, self.false
        if name == "same_camera":
            return self.true[:0], self.false_same_camera
        if name == "other_camera":
            return self.true, self.false_other_camera
        raise ValueError(f"subset must be one of {SUBSETS}, got {name!r}")


def _pair_masks(query_pids, gallery_pids, query_cams, gallery_cams):
    same_pid = np.asarray(query_pids)[:, None] == np.asarray(gallery_pids)[None, :]  # [q, g]
    same_cam = np.asarray(query_cams)[:, None] == np.asarray(gallery_cams)[None, :]  # [q, g]
    return same_pid, same_cam


def pair_scores(distmat, query_pids, gallery_pids, query_cams, gallery_cams) -> PairScores:
    """Split the pairs of a distance matrix into true and false (same / other camera) scores."""
    dist = np.asarray(distmat, dtype=np.float32)
    same_pid, same_cam = _pair_masks(query_pids, gallery_pids, query_cams, gallery_cams)
    if same_pid.shape != dist.shape:
        raise ValueError(f"distmat has shape {dist.shape}, labels give {same_pid.shape}")
    score = np.float32(1.0) - dist  # [q, g]
    return PairScores(true=score[same_pid & ~same_cam],
                      false_same_camera=score[~same_pid & same_cam],
                      false_other_camera=score[~same_pid & ~same_cam])


@dataclass(frozen=True)
class ScoreHistogram:
    """Counts of true and false pair scores per subset over shared bin edges.

    ``counts[(subset, label)]`` with subset in ``all / same_camera / other_camera`` and label in
    ``true / false`` is an int64 array ``[bins]``; ``edges`` is ``[bins + 1]``.
    """

    edges: np.ndarray
    counts: dict[tuple[str, str], np.ndarray]

    def density(self, subset: str, label: str) -> np.ndarray:
        """Counts normalised to unit area (zeros when the subset has no pair of this label)."""
        counts = self.counts[(subset, label)]
        total = counts.sum()
        return counts / (total * np.diff(self.edges)) if total else np.zeros(len(counts))


def score_histogram(pairs: PairScores, bins: int = 60) -> ScoreHistogram:
    """Histograms of every subset on common edges spanning all scores of the stage."""
    scores = [pairs.true, pairs.false_same_camera, pairs.false_other_camera]
    present = [s for s in scores if s.size]
    lo = min(float(s.min()) for s in present) if present else 0.0
    hi = max(float(s.max()) for s in present) if present else 1.0
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)  # as np.histogram makes them for (bins, range)

    def count(scores: np.ndarray) -> np.ndarray:
        # bins + range (not an edges array) takes NumPy's fast path for equal bins
        return np.histogram(scores, bins=bins, range=(lo, hi))[0].astype(np.int64)

    t, fs, fo = count(pairs.true), count(pairs.false_same_camera), count(pairs.false_other_camera)
    counts = {("all", "true"): t, ("all", "false"): fs + fo,
              ("same_camera", "true"): np.zeros(bins, np.int64), ("same_camera", "false"): fs,
              ("other_camera", "true"): t, ("other_camera", "false"): fo}
    return ScoreHistogram(edges=edges, counts=counts)


# ---------------------------------------------------------------------- ROC
@dataclass(frozen=True)
class Roc:
    """Verification ROC of the pair scores (a pair is accepted when its score >= a threshold).

    ``tpr[i]`` is the largest true positive rate of any threshold whose false positive rate is at
    most ``fpr[i]``: the ROC's upper envelope, sampled at ``fpr = k / num_false`` for log-spaced
    ``k`` (a log FPR axis starts at ``1 / num_false``). ``at[x]`` is that rate at ``x`` in
    :data:`FPR_TARGETS`; below ``1 / num_false`` it is the rate at FPR 0, so read it with
    ``num_false`` in mind. NaN without true or false pairs.
    """

    fpr: np.ndarray
    tpr: np.ndarray
    at: dict[float, float]
    num_true: int
    num_false: int


def _tpr_for_counts(true_sorted: np.ndarray, false_desc: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Largest TPR letting at most ``k`` false pairs through, for each ``k`` (int array).

    A threshold admits at most k false pairs iff it lies above the (k+1)-th largest false score;
    the best such threshold admits every true score strictly above that value.
    """
    n_true, n_false = len(true_sorted), len(false_desc)
    if n_true == 0:
        return np.full(len(k), np.nan)
    out = np.ones(len(k))
    inside = k < n_false
    bound = false_desc[k[inside]]
    out[inside] = (n_true - np.searchsorted(true_sorted, bound, side="right")) / n_true
    return out


def tpr_at_fpr(true, false, fpr: float) -> float:
    """Largest TPR over thresholds whose FPR is at most ``fpr`` (NaN without pairs to tell)."""
    true_sorted = np.sort(np.asarray(true, np.float32))
    false_desc = np.sort(np.asarray(false, np.float32))[::-1]
    if len(false_desc) == 0:
        return float("nan")
    k = np.array([int(np.floor(fpr * len(false_desc) + 1e-9))])
    return float(_tpr_for_counts(true_sorted, false_desc, k)[0])


def roc_curve(true, false, points: int = 200) -> Roc:
    """The ROC of true vs false pair scores on about ``points`` log-spaced FPR values."""
    true_sorted = np.sort(np.asarray(true, np.float32))
    false_desc = np.sort(np.asarray(false, np.float32))[::-1]
    n_false = len(false_desc)
    if n_false == 0:
        return Roc(np.zeros(0), np.zeros(0), {x: float("nan") for x in FPR_TARGETS},
                   len(true_sorted), 0)
    k = np.unique(np.round(np.logspace(0, np.log10(n_false), points)).astype(np.int64))
    tpr = _tpr_for_counts(true_sorted, false_desc, k)
    kx = np.array([int(np.floor(x * n_false + 1e-9)) for x in FPR_TARGETS])
    at = dict(zip(FPR_TARGETS, _tpr_for_counts(true_sorted, false_desc, kx).tolist(), strict=True))
    return Roc(fpr=k / n_false, tpr=tpr, at=at, num_true=len(true_sorted), num_false=n_false)


# ---------------------------------------------------------------------- camera pairs
@dataclass(frozen=True)
class CameraPairs:
    """Rank-1 and mAP per (query camera, gallery camera): each query of camera ``query_cams[i]``
    ranked against the gallery images of camera ``gallery_cams[j]`` alone.

    ``rank1`` / ``mean_ap`` are ``[len(query_cams), len(gallery_cams)]`` fractions, NaN where no
    query has a true match in that camera (always on the diagonal: same-camera matches are junk);
    ``num_queries`` counts the valid queries of each cell.
    """

    query_cams: np.ndarray
    gallery_cams: np.ndarray
    rank1: np.ndarray
    mean_ap: np.ndarray
    num_queries: np.ndarray


def camera_pairs(distmat, query_pids, gallery_pids, query_cams, gallery_cams) -> CameraPairs:
    """Per camera pair, :func:`engine.evaluation.evaluate` on the block of those cameras."""
    dist = np.asarray(distmat, dtype=np.float32)
    query_pids, gallery_pids = np.asarray(query_pids), np.asarray(gallery_pids)
    query_cams, gallery_cams = np.asarray(query_cams), np.asarray(gallery_cams)
    qcams, gcams = np.unique(query_cams), np.unique(gallery_cams)
    rank1 = np.full((len(qcams), len(gcams)), np.nan)
    mean_ap = np.full((len(qcams), len(gcams)), np.nan)
    count = np.zeros((len(qcams), len(gcams)), np.int64)
    for i, qc in enumerate(qcams):
        rows = np.flatnonzero(query_cams == qc)
        for j, gc in enumerate(gcams):
            cols = np.flatnonzero(gallery_cams == gc)
            block_pids = gallery_pids[cols]
            if not np.isin(query_pids[rows], block_pids).any() or qc == gc:
                continue  # no true match at all (or only junk): evaluate would refuse
            m = evaluate(dist[np.ix_(rows, cols)], query_pids[rows], block_pids,
                         query_cams[rows], gallery_cams[cols], max_rank=1)
            rank1[i, j], mean_ap[i, j], count[i, j] = m.rank1, m.mean_ap, m.num_valid
    return CameraPairs(qcams, gcams, rank1, mean_ap, count)


# ---------------------------------------------------------------------- one stage
@dataclass(frozen=True)
class StageAnalysis:
    """Everything the plots show of one post-processing stage."""

    name: str
    rank1: float
    mean_ap: float
    cmc: np.ndarray
    histogram: ScoreHistogram
    roc: Roc
    cameras: CameraPairs


def analyse_stage(name: str, distmat, query_pids, gallery_pids, query_cams, gallery_cams,
                  *, max_rank: int = 50, bins: int = 60) -> StageAnalysis:
    """CMC, score histograms, ROC and camera-pair accuracy of one distance matrix."""
    labels = (query_pids, gallery_pids, query_cams, gallery_cams)
    metrics = evaluate(distmat, *labels, max_rank=max_rank)
    pairs = pair_scores(distmat, *labels)
    return StageAnalysis(name=name, rank1=metrics.rank1, mean_ap=metrics.mean_ap,
                         cmc=metrics.cmc, histogram=score_histogram(pairs, bins),
                         roc=roc_curve(pairs.true, pairs.false),
                         cameras=camera_pairs(distmat, *labels))


def settings_key(rerank, tlift) -> tuple:
    """A hashable key of (RerankParams or None, TLiftParams or None), as the viewer's cache uses."""
    return (None if rerank is None else astuple(rerank), None if tlift is None else astuple(tlift))


def iter_stage_distances(session, rerank, tlift, *, tlift_alone: bool = True, known=None,
                         progress=None, cancel: CancelFn | None = None):
    """Yield ``(stage name, distmat [q, g] float32)`` for every stage a session offers, each
    computed once and yielded as soon as it exists (raw, +rr, +tlift, +rr+tlift).

    Parameters
    ----------
    session : engine.session.Session
    rerank : RerankParams or None
        Settings of the re-ranking stages; None leaves them out.
    tlift : TLiftParams or None
        Settings of the TLift stages; None (or a dataset without times) leaves them out.
    tlift_alone : bool
        Include TLift on the raw similarity as well as on the re-ranked one.
    known : dict, optional
        ``{settings_key(rerank, tlift): distmat}`` already computed (e.g. by the viewer's
        cache); reused as they are.
    progress : callable, optional
        ``progress(stage, done, total)``.
    """
    known = dict(known or {})
    if tlift is not None and not session.has_times:
        tlift = None

    def get(rr, tl, reranked=None):
        hit = known.get(settings_key(rr, tl))
        return hit if hit is not None else session.distances(rr, tl, progress=progress,
                                                             cancel=cancel, reranked=reranked)

    base = session.method
    yield stage_name(base, False, False), get(None, None)
    reranked = None
    if rerank is not None:
        reranked = get(rerank, None)
        yield stage_name(base, True, False), reranked
    if tlift is not None:
        if tlift_alone or rerank is None:
            yield stage_name(base, False, True), get(None, tlift)
        if rerank is not None:
            check_cancel(cancel)
            # +RR+TLift lifts the +RR matrix just yielded: re-ranking runs once.
            yield stage_name(base, True, True), get(rerank, tlift, reranked)


def stage_distances(session, rerank, tlift, **kwargs) -> dict[str, np.ndarray]:
    """``{stage name: distmat}`` of :func:`iter_stage_distances` (same arguments), in order."""
    return dict(iter_stage_distances(session, rerank, tlift, **kwargs))


# ---------------------------------------------------------------------- sweeps
def tlift_sweeps(
    distmat,
    *,
    query_pids,
    gallery_pids,
    query_cams,
    gallery_cams,
    query_times,
    gallery_times,
    values: dict[str, Sequence[float]] | None = None,
    base: dict | None = None,
    relative: bool = False,
    max_rank: int = 50,
    progress: ProgressFn | None = None,
    cancel: CancelFn | None = None,
) -> dict[str, list[SweepPoint]]:
    """Rank-1 and mAP as each TLift parameter varies alone (:func:`tlift_sweep` per parameter).

    Parameters
    ----------
    distmat : array_like [q, g]
        Distances to lift: raw or re-ranked (TLift lifts ``1 - distmat``).
    values : dict, optional
        ``{parameter: values}``; default :data:`APPENDIX_VALUES` (all four parameters).
    base : TLiftParams or dict, optional
        The fixed values of the other parameters (default: TLift's defaults).
    relative : bool
        Lift each query's relative similarity, as the pipeline does without re-ranking
        (:func:`engine.postprocess.pipeline.relative_similarity`).
    progress : callable, optional
        ``progress(done, total)`` over all points of all parameters.
    """
    values = {p: list(v) for p, v in (values or APPENDIX_VALUES).items()}
    similarity = 1.0 - np.asarray(distmat).astype(np.float64)
    if relative:
        similarity = relative_similarity(similarity)
    base = asdict(tlift_params(True if base is None else base))
    total = sum(len(v) for v in values.values())
    done = 0
    out = {}
    for parameter, vals in values.items():
        if parameter == "k":
            vals = [int(v) for v in vals]
        offset = done
        out[parameter] = tlift_sweep(
            similarity, parameter, vals, query_pids=query_pids, gallery_pids=gallery_pids,
            query_cams=query_cams, gallery_cams=gallery_cams, query_times=query_times,
            gallery_times=gallery_times, max_rank=max_rank,
            base={k: v for k, v in base.items() if k != parameter},
            progress=None if progress is None else (lambda d, t, o=offset: report(progress, o + d, total)),
            cancel=cancel)
        done += len(vals)
    return out


# ---------------------------------------------------------------------- a full set
@dataclass(frozen=True)
class PlotSet:
    """The data of every analysis plot: each stage's analysis and, optionally, TLift sweeps.

    Attributes
    ----------
    stages : tuple of StageAnalysis
        In pipeline order (raw, +rr, +tlift, +rr+tlift, those evaluated).
    current : str
        The stage whose score distributions and camera-pair matrix are shown.
    sweeps : dict or None
        ``{parameter: [SweepPoint, ...]}`` of :func:`tlift_sweeps`.
    sweep_stage : str
        The stage the sweeps vary (``...+rr+tlift`` or ``...+tlift``).
    sweep_base : dict or None
        The TLift settings the sweeps start from (each parameter varies alone around them).
    """

    stages: tuple[StageAnalysis, ...]
    current: str
    sweeps: dict[str, list[SweepPoint]] | None = None
    sweep_stage: str = ""
    sweep_base: dict | None = None

    def stage(self, name: str | None = None) -> StageAnalysis:
        """The stage called ``name`` (default: the current one)."""
        name = self.current if name is None else name
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage {name!r}; have {[s.name for s in self.stages]}")


def analyse_stages(distmats: dict[str, np.ndarray], query_pids, gallery_pids, query_cams,
                   gallery_cams, *, current: str | None = None, max_rank: int = 50,
                   progress=None, cancel: CancelFn | None = None) -> PlotSet:
    """:func:`analyse_stage` of every ``{name: distmat}``; ``current`` defaults to the last."""
    stages = []
    for i, (name, dist) in enumerate(distmats.items()):
        check_cancel(cancel)
        if progress is not None:
            progress("analyse", i, len(distmats))
        stages.append(analyse_stage(name, dist, query_pids, gallery_pids, query_cams,
                                    gallery_cams, max_rank=max_rank))
    if progress is not None:
        progress("analyse", len(distmats), len(distmats))
    return PlotSet(stages=tuple(stages), current=current or stages[-1].name)
