"""Score-to-distance pipeline: raw, re-ranking, TLift and their order; the TLift sweep."""
from __future__ import annotations

import numpy as np
import pytest

from engine.evaluation import evaluate
from engine.jobs import Cancelled
from engine.postprocess import (
    distance_from_logits,
    final_distances,
    final_distances_from_similarity,
    re_rank,
    similarity_from_logits,
    tlift,
    tlift_sweep,
)


@pytest.fixture
def scene():
    """Logits of a small symmetric matcher, with pids, cameras and times."""
    rng = np.random.default_rng(0)
    q, g, dim = 12, 50, 6
    pids = rng.integers(1, 8, q + g)
    centres = rng.normal(size=(8, dim))
    x = centres[pids - 1] + 0.7 * rng.normal(size=(q + g, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    logits = 40.0 * (x @ x.T) - 10.0  # roughly the range of QAConv logits
    cams = rng.integers(0, 3, q + g)
    times = rng.random(q + g) * 600
    return {
        "x": x, "logits": logits, "q": q,
        "qg": logits[:q, q:], "qq": logits[:q, :q], "gg": logits[q:, q:],
        "query_pids": pids[:q], "gallery_pids": pids[q:],
        "query_cams": cams[:q], "gallery_cams": cams[q:],
        "query_times": times[:q], "gallery_times": times[q:],
    }


def _context(scene):
    return {key: scene[key] for key in ("query_cams", "query_times", "gallery_cams", "gallery_times")}


def test_sigmoid_of_a_tenth_without_overflow():
    logits = np.array([-1e5, -300.0, -10.0, 0.0, 7.5, 300.0, 1e5])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        sim = similarity_from_logits(logits, dtype=np.float64)
        dist = distance_from_logits(logits, dtype=np.float64)
        sim32, dist32 = similarity_from_logits(logits), distance_from_logits(logits)
    with np.errstate(over="ignore"):
        expected = 1.0 / (1.0 + np.exp(-logits / 10.0))
        expected_dist = 1.0 / (1.0 + np.exp(logits / 10.0))
    np.testing.assert_allclose(sim, expected, rtol=1e-12, atol=0)
    # Full relative precision where 1 - sigmoid would cancel to a few digits or to 0.
    np.testing.assert_allclose(dist, expected_dist, rtol=1e-12, atol=0)
    assert sim32.dtype == dist32.dtype == np.float32
    np.testing.assert_allclose(sim32, expected, rtol=1e-7, atol=0)
    np.testing.assert_allclose(dist32, expected_dist, rtol=1e-7, atol=0)


def test_float32_conversion_equals_float64_in_tiles_without_a_full_copy(monkeypatch):
    import tracemalloc

    from engine.postprocess import pipeline

    monkeypatch.setattr(pipeline, "_TILE_ELEMENTS", 4096)
    rng = np.random.default_rng(3)
    logits = (rng.normal(0.0, 40.0, (900, 1000))).astype(np.float32)
    view = logits[:, 100:]  # not contiguous: rows are tiled as they are
    expected = 1.0 / (1.0 + np.exp(view.astype(np.float64) / 10.0))
    tracemalloc.start()
    try:
        dist = distance_from_logits(view)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert dist.dtype == np.float32 and dist.shape == view.shape
    np.testing.assert_allclose(dist, expected, rtol=1e-6, atol=0)
    np.testing.assert_allclose(similarity_from_logits(view), 1.0 - expected, rtol=1e-6, atol=1e-7)
    # The result (3.2 MB) plus tile temporaries (a few times 32 KB), not a float64 copy (6.5 MB).
    assert peak < dist.nbytes + 512 * 1024, peak


def test_raw_distances_rank_like_negative_logits(scene):
    dist = final_distances(scene["qg"])
    assert dist.dtype == np.float32
    np.testing.assert_allclose(dist, 1.0 - 1.0 / (1.0 + np.exp(-scene["qg"] / 10.0)), atol=1e-7)
    np.testing.assert_array_equal(np.argsort(dist, axis=1), np.argsort(-scene["qg"], axis=1))


def test_rerank_runs_on_one_minus_sigmoid_distances(scene):
    dist = final_distances(scene["qg"], scene["qq"], scene["gg"], rerank={"k1": 6, "k2": 3})
    expected = re_rank(
        *(1.0 - similarity_from_logits(scene[b]) for b in ("qg", "qq", "gg")), k1=6, k2=3
    )
    np.testing.assert_allclose(dist, expected, atol=1e-6)


def _relative_rows(sim):
    """Each row as exp((s - max) / std) of that row, written out with a plain loop."""
    out = np.empty_like(sim, dtype=np.float64)
    for i, row in enumerate(np.asarray(sim, np.float64)):
        best = max(row)
        std = float(np.sqrt(sum((v - row.mean()) ** 2 for v in row) / len(row)))
        out[i] = [1.0 if std == 0 else float(np.exp((v - best) / std)) for v in row]
    return out


def test_tlift_alone_lifts_each_querys_relative_similarity(scene):
    dist = final_distances(scene["qg"], tlift={"tau": 150.0}, **_context(scene))
    lifted = tlift(_relative_rows(similarity_from_logits(scene["qg"])), scene["query_cams"],
                   scene["query_times"], scene["gallery_cams"], scene["gallery_times"], tau=150.0)
    np.testing.assert_allclose(dist, 1.0 - lifted, atol=1e-6)


def test_relative_similarity_keeps_each_rows_order_and_ignores_scale():
    from engine.postprocess.pipeline import relative_similarity

    rng = np.random.default_rng(3)
    sim = np.vstack([rng.uniform(0.27, 0.52, size=(4, 9)), np.full((1, 9), 0.4)])
    out = relative_similarity(sim)
    np.testing.assert_allclose(out, _relative_rows(sim), atol=1e-7)  # float32
    order = np.argsort(sim[:4], axis=1, kind="stable")
    assert (np.argsort(out[:4], axis=1, kind="stable") == order).all()
    assert np.allclose(out.max(axis=1), 1.0) and (out > 0).all() and (out[4] == 1.0).all()
    np.testing.assert_allclose(relative_similarity(3.0 * sim[:4] - 1.0), out[:4], atol=1e-7)


def test_rerank_then_tlift(scene):
    dist = final_distances(scene["qg"], scene["qq"], scene["gg"], rerank=True, tlift=True, **_context(scene))
    d_rr = re_rank(*(1.0 - similarity_from_logits(scene[b]) for b in ("qg", "qq", "gg")))
    lifted = tlift(1.0 - d_rr.astype(np.float64), scene["query_cams"], scene["query_times"],
                   scene["gallery_cams"], scene["gallery_times"])
    np.testing.assert_allclose(dist, 1.0 - lifted, atol=1e-6)


def test_cosine_path_matches_zhong_rerank_on_squared_euclidean(scene):
    x, q = scene["x"], scene["q"]
    cos = x @ x.T
    dist = final_distances_from_similarity(cos[:q, q:], cos[:q, :q], cos[q:, q:], rerank=True)
    squared = np.maximum(2.0 - 2.0 * cos, 0.0).astype(np.float32)
    expected = re_rank(squared[:q, q:], squared[:q, :q], squared[q:, q:])
    # Column normalisation removes the factor 4 between (1 - cos) / 2 and 2 - 2 cos.
    np.testing.assert_allclose(dist, expected, atol=1e-5)
    raw = final_distances_from_similarity(cos[:q, q:])
    np.testing.assert_allclose(raw, (1.0 - cos[:q, q:]) / 2.0, atol=1e-7)


def test_progress_reaches_the_end_and_cancel_stops(scene):
    calls = []
    final_distances(scene["qg"], scene["qq"], scene["gg"], rerank=True, tlift=True,
                    progress=lambda d, t: calls.append((d, t)), **_context(scene))
    assert calls[-1] == (100, 100)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    with pytest.raises(Cancelled):
        final_distances(scene["qg"], scene["qq"], scene["gg"], rerank=True, cancel=lambda: True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"rerank": True}, "query-query and gallery-gallery"),
        ({"rerank": {"k3": 1}}, "unknown rerank settings"),
        ({"tlift": {"beta": 1}}, "unknown tlift settings"),
        ({"tlift": "yes"}, "tlift must be"),
        ({"tlift": True}, "camera ids"),
    ],
)
def test_bad_settings_are_rejected_with_a_message(scene, kwargs, message):
    with pytest.raises(ValueError, match=message):
        final_distances(scene["qg"], **kwargs)


def test_tlift_without_times_says_so(scene):
    context = {**_context(scene), "query_times": None}
    with pytest.raises(ValueError, match="TLift needs timestamps"):
        final_distances(scene["qg"], tlift=True, **context)


def test_tlift_sweep_evaluates_each_value(scene):
    sim = similarity_from_logits(scene["qg"])
    labels = {key: scene[key] for key in ("query_pids", "gallery_pids", "query_cams", "gallery_cams",
                                          "query_times", "gallery_times")}
    values = [1, 3, 10]
    points = tlift_sweep(sim, "k", values, base={"alpha": 0.1}, **labels)
    assert [p.value for p in points] == values
    for point in points:
        lifted = tlift(sim, scene["query_cams"], scene["query_times"], scene["gallery_cams"],
                       scene["gallery_times"], k=point.value, alpha=0.1)
        metrics = evaluate(1.0 - lifted, scene["query_pids"], scene["gallery_pids"],
                           scene["query_cams"], scene["gallery_cams"])
        assert (point.rank1, point.mean_ap) == pytest.approx((metrics.rank1, metrics.mean_ap))
    with pytest.raises(ValueError, match="parameter must be one of"):
        tlift_sweep(sim, "beta", [1], **labels)


def test_settings_spellings_are_one_normaliser(scene):
    """Off, defaults, a record and a dict of some fields: the same settings however spelled."""
    from engine.postprocess import RerankParams, TLiftParams, rerank_params, tlift_params

    assert rerank_params(None) is None and tlift_params(False) is None
    assert rerank_params(True) == RerankParams() and tlift_params(True) == TLiftParams()
    record = TLiftParams(tau=150.0)
    assert tlift_params(record) is record and tlift_params({"tau": 150.0}) == record
    blocks, context = (scene["qg"], scene["qq"], scene["gg"]), _context(scene)
    np.testing.assert_array_equal(
        final_distances(*blocks, rerank=RerankParams(k1=6, k2=3), tlift=record, **context),
        final_distances(*blocks, rerank={"k1": 6, "k2": 3}, tlift={"tau": 150.0}, **context))
    sim = similarity_from_logits(scene["qg"])
    labels = {key: scene[key] for key in ("query_pids", "gallery_pids", "query_cams", "gallery_cams",
                                          "query_times", "gallery_times")}
    assert (tlift_sweep(sim, "k", [3], base=TLiftParams(alpha=0.1), **labels)
            == tlift_sweep(sim, "k", [3], base={"alpha": 0.1}, **labels))
