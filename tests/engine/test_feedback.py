"""Relevance feedback (engine.feedback) and its simulated user (engine.analysis.feedback_sim)."""
from __future__ import annotations

import numpy as np
import pytest

from engine.analysis.feedback_sim import METHODS, label_round, simulate, unseen_ap
from engine.evaluation import evaluate
from engine.feedback import (
    FeedbackParams,
    feedback_rows,
    query_shift,
    refine,
    refine_score,
    relevance_score,
)
from engine.postprocess.params import RerankParams, TLiftParams

STAGES = [(None, None), (RerankParams(), None), (RerankParams(k1=5, k2=3), TLiftParams(k=4))]


@pytest.fixture(scope="module")
def session(tiny_synth, shared_random_checkpoint, tmp_path_factory):
    from engine.session import Session

    root, _ = tiny_synth
    s = Session.open(str(root), shared_random_checkpoint, device="cpu",
                     cache_dir=tmp_path_factory.mktemp("feedback_cache"))
    s.score(("qg", "qq", "gg"))
    return s


def test_no_marks_is_the_ranking_row_bit_for_bit(session):
    for rerank, tlift in STAGES:
        expected = session.distances(rerank, tlift)
        for q in range(len(expected)):
            row = refine(session, q, [], [], rerank=rerank, tlift=tlift)
            assert row.dtype == np.float32
            np.testing.assert_array_equal(row, expected[q])


def test_positives_lead_in_order_and_negatives_trail(session):
    g = len(session.dataset.gallery)
    pos, neg = [g - 1, 3, 7], [0, g // 2]
    for rerank, tlift in STAGES:
        row = refine(session, 1, pos, neg, rerank=rerank, tlift=tlift)
        order = np.argsort(row, kind="stable")
        assert list(order[:3]) == pos
        assert list(order[-2:]) == neg
        assert np.isfinite(row).all()


def test_the_rest_is_rescored_from_the_marks(session):
    """Each row is standardised per gallery camera; a trusted positive's neighbours move up;
    a positive the query's own row does not find is not trusted."""
    rows = feedback_rows(session)
    base, cams = rows.base[0].astype(np.float64), session.gallery_cams
    alone = np.empty_like(base)
    for c in np.unique(cams):
        part = base[cams == c]
        alone[cams == c] = (part.mean() - part) / part.std()
    quiet = FeedbackParams(anchor=0.0, transit=0.0)
    np.testing.assert_allclose(refine_score(rows, 0, [], [], quiet), alone, rtol=0, atol=1e-9)

    p = int(np.argsort(base)[-1])                          # the query's farthest item
    assert alone[p] < quiet.trust_lo
    np.testing.assert_allclose(refine_score(rows, 0, [p], [], quiet), alone, rtol=0, atol=1e-12)
    near_p = [int(j) for j in np.argsort(session.distance_block("gg")[p]) if j != p][:3]
    trusting = FeedbackParams(anchor=0.0, transit=0.0, trust_lo=-1e9, trust_hi=-1e9 + 1)
    row = refine(session, 0, [p], [], params=trusting)
    before, after = np.argsort(np.argsort(base)), np.argsort(np.argsort(row))
    assert (after[near_p] < before[near_p]).all()


def test_confirmed_sightings_anchor_time(session):
    """Items of a confirmed sighting's camera close to it in time are lifted, by TLift's kernel."""
    rows = feedback_rows(session)
    times, cams = rows.gallery_times, rows.gallery_cams
    p = 5
    params = FeedbackParams(trust_lo=-1e9, trust_hi=-1e9 + 1)
    lifted = refine_score(rows, 0, [p], [], params) - refine_score(
        rows, 0, [p], [], FeedbackParams(anchor=0.0, trust_lo=-1e9, trust_hi=-1e9 + 1))
    kernel = np.zeros(len(times))
    for cam, t in ((rows.query_cams[0], rows.query_times[0]), (cams[p], times[p])):
        same = cams == cam
        kernel[same] = np.maximum(kernel[same], np.exp(-((times[same] - t) / params.sigma) ** 2))
    np.testing.assert_allclose(lifted, params.anchor * kernel, rtol=0, atol=1e-9)


def test_confirmed_sightings_lift_plausible_transits(session):
    """Items of other cameras are lifted by the transit model's plausibility of their offset
    from the query or a positive, the largest over those sightings, times their weight."""
    from engine.feedback import FeedbackRows
    from engine.postprocess.transit_model import learn_transits

    rows = FeedbackRows.of_session(session, None, None)
    # The random model finds few confident matches on the tiny set: count every mutual one.
    rows.transits = model = learn_transits(rows.gg, rows.gallery_cams, rows.gallery_times,
                                           min_z=-1e9, min_count=1)
    assert model.density
    times, cams = rows.gallery_times, rows.gallery_cams
    p = 5
    trusting = dict(trust_lo=-1e9, trust_hi=-1e9 + 1)
    lifted = refine_score(rows, 0, [p], [], FeedbackParams(**trusting)) - refine_score(
        rows, 0, [p], [], FeedbackParams(transit=0.0, **trusting))
    centres = (model.edges[:-1] + model.edges[1:]) / 2
    expected = np.zeros(len(times))
    for cam, t in ((rows.query_cams[0], rows.query_times[0]), (cams[p], times[p])):
        for j in range(len(times)):
            dens = model.density.get((int(cam), int(cams[j])))
            dt = times[j] - t
            if dens is None or not model.edges[0] <= dt < model.edges[-1]:
                continue
            k = int(np.argmin(np.abs(centres - dt)))
            k -= centres[k] - 0.5 > dt  # the bin that holds dt, [left edge, right edge)
            expected[j] = max(expected[j], dens[k])
    np.testing.assert_allclose(lifted, FeedbackParams.transit * expected, rtol=0, atol=1e-9)
    assert lifted.max() > 0


def test_the_transit_model_is_learned_once_per_session(tiny_synth, shared_random_checkpoint,
                                                       tmp_path, monkeypatch):
    """Feedback's warm-up and the path view ask for it from two threads: one learns it."""
    import threading
    import time

    import engine.feedback as feedback
    from engine.session import Session

    root, _ = tiny_synth
    fresh = Session.open(str(root), shared_random_checkpoint, device="cpu", cache_dir=tmp_path)
    fresh.score(("gg",))
    calls, real = [], feedback.learn_transits

    def counted(*args, **kwargs):
        calls.append(1)
        time.sleep(0.2)  # long enough for every thread to ask while it learns
        return real(*args, **kwargs)

    monkeypatch.setattr(feedback, "learn_transits", counted)
    got = []
    threads = [threading.Thread(target=lambda: got.append(feedback.session_transits(fresh)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(got) == 4 and all(m is got[0] for m in got)


def test_a_negative_pushes_down_a_bounded_amount(session):
    """A negative lowers what resembles it more than the person's best confirmed view, by at
    most negative x negative_cap; companions of a negative near a sighting are spared."""
    rows = feedback_rows(session)
    q, pos, neg = 0, [5], [int(np.argsort(rows.base[0])[1])]
    for cap in (0.5, 1.0):
        params = FeedbackParams(negative_cap=cap, neg_anchor=0.0)
        drop = refine_score(rows, q, pos, [], params) - refine_score(rows, q, pos, neg, params)
        assert drop.min() >= -1e-12 and drop.max() <= params.negative * cap + 1e-12
        assert drop.max() > 0
    # The time term: only items near the negative in its camera, and not near a sighting.
    on = FeedbackParams(negative_cap=1e9)
    off = FeedbackParams(negative_cap=1e9, neg_anchor=0.0)
    extra = refine_score(rows, q, pos, neg, off) - refine_score(rows, q, pos, neg, on)
    near_neg = rows.time_weight(rows.gallery_cams[neg], rows.gallery_times[neg], on.sigma)
    assert (extra[near_neg == 0] == 0).all()
    assert extra.min() >= 0 and extra.max() <= on.neg_anchor + 1e-12


@pytest.mark.parametrize("pos, neg, message", [
    ([10**6], [], "positives"), ([], [-1], "negatives"), ([2, 2], [], "twice"),
    ([4], [4], "both"), ([1.5], [], "positives"),
])
def test_bad_marks_are_refused(session, pos, neg, message):
    with pytest.raises(ValueError, match=message):
        refine(session, 0, pos, neg)
    with pytest.raises(ValueError, match="query_index"):
        refine(session, 10**6, [], [])


def test_baselines_match_their_formulas_brute_force(session):
    """Query Shift and Relevance Score against the formulas written out item by item on the
    raw blocks (+RR: on the re-ranked rows of the query and of the gallery items)."""
    qg, gg = session.distance_block("qg"), session.distance_block("gg")
    q, pos, neg = 2, [5, 1], [8, 0, 3]
    rows = feedback_rows(session)
    g = qg.shape[1]
    shift = [(1 - qg[q, j]) + 0.65 * np.mean([1 - gg[p, j] for p in pos])
             - 0.35 * np.mean([1 - gg[n, j] for n in neg]) for j in range(g)]
    np.testing.assert_allclose(query_shift(rows, q, pos, neg), shift, rtol=0, atol=1e-6)
    score = []
    for j in range(g):
        d_pos = min([float(qg[q, j])] + [float(gg[p, j]) for p in pos])
        d_neg = min(float(gg[n, j]) for n in neg)
        score.append(d_neg / (d_neg + d_pos))
    np.testing.assert_allclose(relevance_score(rows, q, pos, neg), score, rtol=0, atol=1e-6)
    # Without negatives, Relevance Score ranks by the nearest of the query and the positives.
    np.testing.assert_allclose(relevance_score(rows, q, pos, []),
                               -np.minimum(qg[q], gg[pos].min(axis=0)), rtol=0, atol=1e-7)
    # +RR: a gallery item's row is re-ranked like a query's (the query's own row comes back).
    rr = feedback_rows(session, RerankParams())
    from engine.postprocess.rerank import encoding, jaccard_rows

    enc = encoding(qg, session.distance_block("qq"), gg)
    np.testing.assert_array_equal(rr.gallery_rows(pos), jaccard_rows(enc, np.add(pos, len(qg)),
                                                                      gg[:, pos].T))
    np.testing.assert_array_equal(jaccard_rows(enc, [q], qg[q:q + 1])[0], rr.base[q])


def test_marks_rows_do_not_depend_on_what_else_is_asked(session):
    """A gallery item's stage row is the same asked alone or with others (TLift lifts each
    item as its own probe), so the kept rows never depend on the order of clicks."""
    from engine.feedback import FeedbackRows

    rerank, tlift = STAGES[2]
    items = [4, 9, 2, 30]
    together = FeedbackRows.of_session(session, rerank, tlift).gallery_rows(items)
    alone = FeedbackRows.of_session(session, rerank, tlift)
    np.testing.assert_array_equal(together, np.vstack([alone.gallery_rows([i]) for i in items]))
    raw = FeedbackRows.of_session(session, None, None)
    np.testing.assert_array_equal(raw.gallery_rows(items), session.distance_block("gg")[:, items].T)


def _random_case(seed, q=6, g=30):
    rng = np.random.default_rng(seed)
    dist = np.round(rng.random((q, g)), 1).astype(np.float32)     # ties
    q_pids, g_pids = rng.integers(0, 4, q), rng.integers(0, 4, g)
    q_cams, g_cams = rng.integers(0, 3, q), rng.integers(0, 3, g)
    return dist, q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("seed", range(4))
def test_unseen_ap_follows_the_evaluation_protocol(seed):
    dist, q_pids, g_pids, q_cams, g_cams = _random_case(seed)
    m = evaluate(dist, q_pids, g_pids, q_cams, g_cams)
    rng = np.random.default_rng(seed + 10)
    for i in range(len(dist)):
        match = g_pids == q_pids[i]
        junk = match & (g_cams == q_cams[i])
        none = np.zeros(len(g_pids), bool)
        ap = unseen_ap(dist[i], match, junk, none)
        assert (np.isnan(ap) and not m.valid[i]) or ap == pytest.approx(m.ap[i], abs=1e-12)
        # Labelled items leave the list as junk does: the same as evaluating with them junk.
        labelled = rng.random(len(g_pids)) < 0.3
        pids, cams = np.where(labelled, q_pids[i], g_pids), np.where(labelled, q_cams[i], g_cams)
        if not (match & ~junk & ~labelled).any():
            assert np.isnan(unseen_ap(dist[i], match, junk, labelled))
            continue
        expected = evaluate(dist[i:i + 1], q_pids[i:i + 1], pids, q_cams[i:i + 1], cams).ap[0]
        assert unseen_ap(dist[i], match, junk, labelled) == pytest.approx(expected, abs=1e-12)


def test_the_simulated_user_labels_from_the_ground_truth():
    dist, q_pids, g_pids, q_cams, g_cams = _random_case(3, g=40)
    match = g_pids == q_pids[0]
    junk = match & (g_cams == q_cams[0])
    order = [int(j) for j in np.argsort(dist[0]) if not junk[j]]
    labels: dict[int, bool] = {}
    rng = np.random.default_rng(0)
    label_round(dist[0], match, junk, labels, 4, 0.0, rng)
    assert list(labels) == order[:4] and all(labels[j] == match[j] for j in labels)
    label_round(dist[0], match, junk, labels, 4, 0.0, rng)   # the next four, not relabelled
    assert list(labels) == order[:8] and all(labels[j] == match[j] for j in labels)
    flipped: dict[int, bool] = {}
    label_round(dist[0], match, junk, flipped, 6, 1.0, rng)
    assert list(flipped) == order[:6] and all(flipped[j] != match[j] for j in flipped)
    some: dict[int, bool] = {}
    label_round(dist[0], match, junk, some, 30, 0.5, np.random.default_rng(1))
    wrong = sum(some[j] != match[j] for j in some)
    assert 0 < wrong < 30 and not any(junk[j] for j in some)


def test_simulation_rounds(session):
    rows = feedback_rows(session)
    labels = (session.query_pids, session.gallery_pids, session.query_cams, session.gallery_cams)
    base = session.evaluate(rows.base)
    figures = {name: simulate(rows, fn, *labels, rounds=2, per_round=3) for name, fn in METHODS.items()}
    for f in figures.values():
        assert len(f.rank1) == len(f.mean_ap) == len(f.unseen_map) == 3
        assert f.rank1[0] == base.rank1 and f.mean_ap[0] == pytest.approx(base.mean_ap)
        assert f.unseen_map[0] == pytest.approx(base.mean_ap)
        assert f.unseen_queries[0] == base.num_valid
        assert all(a >= b for a, b in zip(f.unseen_queries[:-1], f.unseen_queries[1:], strict=True))
    # Without feedback the list never changes; pinned positives can only help rank-1.
    assert figures["none"].mean_ap == [base.mean_ap] * 3
    assert figures["refine"].rank1[2] >= base.rank1


def test_feedback_bench_command(run_cli, tiny_synth, shared_random_checkpoint, session):
    root, _ = tiny_synth
    code, out, err = run_cli("feedback-bench", "--data", root, "--checkpoint",
                             shared_random_checkpoint, "--cache-dir", session.cache_dir,
                             "--rounds", 1, "--per-round", 2, "--noise", 0.1, "--stages", "raw,+RR")
    assert code == 0, err
    assert "refine - best" in out and "+RR" in out and "unseen mAP" in out and "counted" in out
    # benchmarks/feedback_table.py turns this output into the README's rows.
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "feedback_table", Path(__file__).resolve().parents[2] / "benchmarks" / "feedback_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    noise, figures = table.parse(out)
    assert noise == 0.1
    lines = table.rows(noise, figures)
    assert [line.split(" | ")[1] for line in lines] == ["raw", "+ RR"]
    for line, stage in zip(lines, ("raw", "+RR"), strict=True):
        cells = line.strip("| ").split(" | ")
        ours = figures[(stage, "refine", "unseen mAP")]
        assert cells[4] == f"{ours[1]:.1f}"
        best = max(figures[(stage, m, "unseen mAP")][1] for m in ("query shift", "relevance score"))
        assert float(cells[5]) == pytest.approx(ours[1] - best, abs=0.11)
        assert cells[6] == str(int(figures[(stage, "refine", "counted")][1]))
