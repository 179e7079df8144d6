"""Plot data (engine.analysis.plot_data) against brute-force formulations on small random cases."""
from __future__ import annotations

import numpy as np
import pytest

from engine.analysis.plot_data import (
    APPENDIX_VALUES,
    FPR_TARGETS,
    analyse_stage,
    camera_pairs,
    cmc_curve,
    pair_scores,
    roc_curve,
    score_histogram,
    tlift_sweeps,
    tpr_at_fpr,
)
from engine.evaluation import evaluate
from engine.postprocess import TLiftParams, final_distances, lift_distances, tlift_sweep


@pytest.fixture
def case():
    """A small ranking problem with ties, distractors, several cameras and times."""
    rng = np.random.default_rng(3)
    q, g = 30, 90
    qp = rng.integers(1, 12, q)
    gp = rng.integers(0, 12, g)  # 0 = distractor
    qc, gc = rng.integers(0, 4, q), rng.integers(0, 4, g)
    same = qp[:, None] == gp[None, :]
    dist = rng.random((q, g)) - 0.4 * same  # true pairs tend to be closer
    dist = np.round(dist, 2).astype(np.float32)  # ties
    return {"distmat": dist, "query_pids": qp, "gallery_pids": gp, "query_cams": qc,
            "gallery_cams": gc, "query_times": rng.random(q) * 500,
            "gallery_times": rng.random(g) * 500}


def _labels(case):
    return case["query_pids"], case["gallery_pids"], case["query_cams"], case["gallery_cams"]


def _brute_pairs(case):
    true, false_same, false_other = [], [], []
    for i in range(len(case["query_pids"])):
        for j in range(len(case["gallery_pids"])):
            s = 1.0 - float(case["distmat"][i, j])
            same_pid = case["query_pids"][i] == case["gallery_pids"][j]
            same_cam = case["query_cams"][i] == case["gallery_cams"][j]
            if same_pid and same_cam:
                continue  # junk
            (true if same_pid else false_same if same_cam else false_other).append(s)
    return np.array(true), np.array(false_same), np.array(false_other)


def test_pair_scores_split_like_a_loop(case):
    pairs = pair_scores(case["distmat"], *_labels(case))
    true, false_same, false_other = _brute_pairs(case)
    for got, want in [(pairs.true, true), (pairs.false_same_camera, false_same),
                      (pairs.false_other_camera, false_other)]:
        np.testing.assert_allclose(np.sort(got), np.sort(want), atol=1e-6)
    t, f = pairs.subset("same_camera")
    assert t.size == 0 and f.size == false_same.size


def test_histogram_counts_every_pair_once(case):
    pairs = pair_scores(case["distmat"], *_labels(case))
    hist = score_histogram(pairs, bins=17)
    true, false_same, false_other = _brute_pairs(case)
    assert hist.counts[("all", "true")].sum() == true.size
    assert hist.counts[("all", "false")].sum() == false_same.size + false_other.size
    assert hist.counts[("same_camera", "false")].sum() == false_same.size
    e = hist.edges
    for subset, label, scores in [("other_camera", "false", false_other),
                                  ("same_camera", "false", false_same), ("all", "true", true)]:
        np.testing.assert_array_equal(hist.counts[(subset, label)],
                                      np.histogram(scores.astype(np.float32), e)[0])
    area = (hist.density("all", "true") * np.diff(e)).sum()
    assert area == pytest.approx(1.0)


def _brute_tpr(true, false, fpr):
    """Max TPR over every threshold (each score, and +inf) whose FPR <= fpr."""
    best = float("nan")
    for t in np.concatenate([np.unique(np.concatenate([true, false])), [np.inf]]):
        f = (false >= t).mean()
        if f <= fpr + 1e-12:
            tp = (true >= t).mean()
            best = tp if np.isnan(best) else max(best, tp)
    return best


def test_roc_equals_threshold_scan(case):
    pairs = pair_scores(case["distmat"], *_labels(case))
    true, false = pairs.true.astype(np.float64), pairs.false.astype(np.float64)
    roc = roc_curve(pairs.true, pairs.false)
    assert roc.num_true == true.size and roc.num_false == false.size
    for x, y in zip(roc.fpr[::7], roc.tpr[::7], strict=True):
        assert y == pytest.approx(_brute_tpr(true, false, x))
    for x in FPR_TARGETS:
        want = _brute_tpr(true, false, x)
        np.testing.assert_allclose(roc.at[x], want)
        np.testing.assert_allclose(tpr_at_fpr(pairs.true, pairs.false, x), want)
    assert np.all(np.diff(roc.tpr) >= 0) and roc.fpr[-1] == 1.0 and roc.tpr[-1] == 1.0


def test_tpr_at_fpr_with_ties_across_classes():
    true = np.array([0.9, 0.8, 0.8, 0.05], np.float32)
    false = np.array([0.8] + [0.1] * 99, np.float32)  # one false pair tied with two true ones
    # FPR 1e-2 lets one false pair through: the 0.8 threshold admits it and three true pairs.
    assert tpr_at_fpr(true, false, 1e-2) == pytest.approx(0.75)
    # Below one false pair in a hundred only thresholds above 0.8 remain.
    assert tpr_at_fpr(true, false, 0.009) == pytest.approx(0.25)
    assert roc_curve(true, false).at[1e-2] == pytest.approx(_brute_tpr(true, false, 1e-2))
    assert np.isnan(tpr_at_fpr(true[:0], false, 0.1)) and np.isnan(tpr_at_fpr(true, false[:0], 0.1))


def _brute_ap_rank1(dist_row, qpid, qcam, gpids, gcams):
    order = np.argsort(dist_row)
    keep = [j for j in order if not (gpids[j] == qpid and gcams[j] == qcam)]
    hits = [gpids[j] == qpid for j in keep]
    if not any(hits):
        return None
    precisions, found = [], 0
    for r, h in enumerate(hits, start=1):
        if h:
            found += 1
            precisions.append(found / r)
    return float(hits[0]), float(np.mean(precisions))


def test_camera_pairs_equal_a_per_query_loop(case):
    qp, gp, qc, gc = _labels(case)
    result = camera_pairs(case["distmat"], qp, gp, qc, gc)
    for i, a in enumerate(result.query_cams):
        for j, b in enumerate(result.gallery_cams):
            cols = np.flatnonzero(gc == b)
            scores = [_brute_ap_rank1(case["distmat"][r, cols], qp[r], qc[r], gp[cols], gc[cols])
                      for r in np.flatnonzero(qc == a)]
            scores = [s for s in scores if s is not None]
            assert result.num_queries[i, j] == len(scores)
            if not scores:
                assert np.isnan(result.rank1[i, j]) and np.isnan(result.mean_ap[i, j])
                continue
            assert result.rank1[i, j] == pytest.approx(np.mean([s[0] for s in scores]))
            assert result.mean_ap[i, j] == pytest.approx(np.mean([s[1] for s in scores]))
    assert np.isnan(np.diag(result.rank1)).all()  # same camera: only junk matches


def test_stage_cmc_is_evaluates(case):
    labels = _labels(case)
    stage = analyse_stage("x", case["distmat"], *labels)
    want = evaluate(case["distmat"], *labels)
    np.testing.assert_array_equal(stage.cmc, want.cmc)
    np.testing.assert_array_equal(cmc_curve(case["distmat"], *labels), want.cmc)
    assert stage.rank1 == want.rank1 and stage.mean_ap == want.mean_ap


def test_lift_of_rerank_is_the_pipelines_rr_plus_tlift(case):
    rng = np.random.default_rng(0)
    q, g = case["distmat"].shape
    x = rng.normal(size=(q + g, 5))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    logits = 30.0 * x @ x.T  # symmetric, as QAConv's
    blocks = logits[:q, q:], logits[:q, :q], logits[q:, q:]
    ctx = {k: case[k] for k in ("query_cams", "query_times", "gallery_cams", "gallery_times")}
    params = {"tau": 50.0, "sigma": 100.0, "k": 5, "alpha": 0.3}
    rr = final_distances(*blocks, rerank=True)
    kept = rr.copy()
    want = final_distances(*blocks, rerank=True, tlift=params, **ctx)
    lifted = lift_distances(rr, **ctx, params=TLiftParams(**params))
    np.testing.assert_array_equal(lifted, want)
    np.testing.assert_array_equal(rr, kept)              # a new array: the input is kept
    assert lift_distances(rr, **ctx, params=TLiftParams(**params), out=rr) is rr
    np.testing.assert_array_equal(rr, want)              # or lifted in place when asked


def test_sweeps_equal_tlift_sweep_rows(case):
    labels = {k: case[k] for k in ("query_pids", "gallery_pids", "query_cams", "gallery_cams",
                                   "query_times", "gallery_times")}
    values = {"tau": [60.0, 120.0], "k": [3, 7]}
    seen = []
    sweeps = tlift_sweeps(case["distmat"], values=values, base={"alpha": 0.3},
                          progress=lambda d, t: seen.append((d, t)), **labels)
    assert list(sweeps) == ["tau", "k"] and seen[-1] == (4, 4)
    sim = 1.0 - case["distmat"].astype(np.float64)
    for name, vals in values.items():
        want = tlift_sweep(sim, name, vals, base={"alpha": 0.3}, **labels)
        assert sweeps[name] == want
    assert set(APPENDIX_VALUES) == {"tau", "sigma", "k", "alpha"}
    assert all(len(v) == 10 for v in APPENDIX_VALUES.values())
