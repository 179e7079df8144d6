"""Two-stage retrieval: shortlisted scoring and re-ranking on the shortlist graph."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.models.qaconv import QAConv
from engine.models.scoring import score_matrix
from engine.postprocess import re_rank
from engine.postprocess.rerank_sparse import re_rank_shortlist
from engine.shortlist import band_features, shortlist_block, shortlist_graph, stage_one


def _maps(n, seed, groups=None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, 4, 2, generator=g)
    if groups is not None:  # identities: items of a group share most of their map
        centres = torch.randn(groups, 16, 4, 2, generator=g)
        x = 0.5 * x + centres[torch.arange(n) % groups]
    return torch.nn.functional.normalize(x, dim=1).numpy().astype(np.float16)


@pytest.fixture(scope="module")
def matcher():
    torch.manual_seed(0)
    m = QAConv(16, 4, 2).eval()
    with torch.no_grad():
        m.fc.weight.uniform_(0.05, 0.3)
        m.logit_bn.running_var.fill_(0.5)
    return m


def _dense_from_graph(neighbours, values, n):
    out = np.full((len(neighbours), n), np.nan, np.float32)
    np.put_along_axis(out, neighbours.astype(np.int64), values, axis=1)
    return out


def test_shortlist_with_k_at_gallery_size_is_exhaustive(matcher):
    q, g = _maps(13, 1, groups=5), _maps(40, 2, groups=5)
    logits, cand = shortlist_block(matcher, q, g, k=len(g))
    np.testing.assert_array_equal(logits, score_matrix(matcher, q, g))
    assert sorted(cand[0]) == list(range(len(g)))
    nb, vals = shortlist_graph(matcher, g, k=len(g))
    np.testing.assert_array_equal(_dense_from_graph(nb, vals, len(g)),
                                  score_matrix(matcher, g, g, symmetric=True))


def test_shortlist_scores_candidates_and_ranks_the_rest_after_them(matcher):
    q, g = _maps(13, 3, groups=5), _maps(40, 4, groups=5)
    k = 7
    exhaustive = score_matrix(matcher, q, g)
    logits, cand = shortlist_block(matcher, q, g, k=k)
    cos = stage_one(band_features(q), band_features(g))
    for i in range(len(q)):
        # The candidates are the k best by the first stage, scored as exhaustive scoring does.
        assert set(cand[i]) == set(np.argsort(-cos[i], kind="stable")[:k])
        np.testing.assert_allclose(logits[i, cand[i]], exhaustive[i, cand[i]], rtol=0, atol=1e-5)
        rest = np.setdiff1d(np.arange(len(g)), cand[i])
        # Non-candidates: below every candidate logit of their row, in first-stage order.
        assert logits[i, rest].max() < logits[i, cand[i]].min()
        order = rest[np.argsort(-logits[i, rest], kind="stable")]
        assert np.all(np.diff(cos[i, order]) <= 1e-6)
    nb, vals = shortlist_graph(matcher, g, k=k)
    sym = score_matrix(matcher, g, g, symmetric=True)
    np.testing.assert_allclose(vals, np.take_along_axis(sym, nb.astype(np.int64), axis=1), rtol=0, atol=1e-5)
    # A pair listed by both of its items holds one number in both directions.
    dense = _dense_from_graph(nb, vals, len(g))
    both = ~np.isnan(dense) & ~np.isnan(dense.T)
    np.testing.assert_array_equal(dense[both], dense.T[both])


def test_fill_estimates_logits_on_the_candidates_line():
    from engine.shortlist import estimate_fill

    rng = np.random.default_rng(3)
    p, g, k = 6, 30, 5
    stage = rng.uniform(-1, 1, (p, g)).astype(np.float32)
    cand = np.argsort(-stage, axis=1)[:, :k].astype(np.int32)
    cand_scores = np.take_along_axis(stage, cand.astype(np.int64), axis=1)
    logits = (4.0 * cand_scores - 2.0).astype(np.float32)  # exactly on a line
    block = stage.copy()
    estimate_fill(block, cand, logits)
    np.testing.assert_array_equal(np.take_along_axis(block, cand.astype(np.int64), axis=1), logits)
    for i in range(p):
        rest = np.setdiff1d(np.arange(g), cand[i])
        # On the fitted line (the first-stage scores leave a gap below the candidates here).
        assert cand_scores[i].min() - stage[i, rest].max() > 1e-3
        np.testing.assert_allclose(block[i, rest], 4.0 * stage[i, rest] - 2.0, atol=1e-5)
        assert block[i, rest].max() < logits[i].min()
        assert np.all(np.diff(block[i, rest][np.argsort(stage[i, rest])]) > 0)   # order kept
    # A candidate scoring far below the line caps its row's estimates, order still kept.
    low = logits.copy()
    low[0, -1] = -50.0
    capped = stage.copy()
    estimate_fill(capped, cand, low)
    rest = np.setdiff1d(np.arange(g), cand[0])
    assert capped[0, rest].max() < -50.0
    assert np.all(np.diff(capped[0, rest][np.argsort(stage[0, rest])]) > 0)


def test_first_stage_is_band_matching_both_ways():
    q, g = _maps(5, 5), _maps(7, 6)
    got = stage_one(band_features(q), band_features(g))
    for i in range(len(q)):
        for j in range(len(g)):
            # Written out: bands of whole rows, pooled and normalised; best match per band both ways.
            a = [q[i].astype(np.float64)[:, r].mean(axis=1) for r in range(4)]
            b = [g[j].astype(np.float64)[:, r].mean(axis=1) for r in range(4)]
            a, b = [x / np.linalg.norm(x) for x in a], [x / np.linalg.norm(x) for x in b]
            sim = np.array([[x @ y for y in b] for x in a])
            assert abs(got[i, j] - (sim.max(1).mean() + sim.max(0).mean()) / 2) < 1e-5
    # One band: the cosine of the pooled maps.
    pooled = [m.astype(np.float64).mean(axis=(2, 3)) for m in (q, g)]
    pooled = [p / np.linalg.norm(p, axis=1, keepdims=True) for p in pooled]
    np.testing.assert_allclose(stage_one(band_features(q, 1), band_features(g, 1)),
                               pooled[0] @ pooled[1].T, rtol=0, atol=1e-5)


def _distances(seed, nq=9, ng=31):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(nq + ng, 6)).astype(np.float32) + np.repeat(rng.normal(size=(8, 6)), 5, axis=0)[
        rng.integers(0, 40, nq + ng)]
    d = ((x[:, None] - x[None]) ** 2).sum(-1).astype(np.float32)
    d = (d + d.T) / 2
    return d[:nq, nq:], d[:nq, :nq], d[nq:, nq:]


@pytest.mark.parametrize("params", [dict(), dict(k1=5, k2=3, lambda_value=0.5), dict(k1=3, k2=1)])
def test_rerank_on_full_shortlists_equals_exact_rerank(params):
    q_g, q_q, g_g = _distances(0)
    rng = np.random.default_rng(1)
    # K = N neighbour lists, in any order.
    qq_nb = np.stack([rng.permutation(len(q_q)) for _ in q_q]).astype(np.int32)
    gg_nb = np.stack([rng.permutation(len(g_g)) for _ in g_g]).astype(np.int32)
    got = re_rank_shortlist(q_g, qq_nb, np.take_along_axis(q_q, qq_nb, 1),
                            gg_nb, np.take_along_axis(g_g, gg_nb, 1), **params)
    np.testing.assert_array_equal(got, re_rank(q_g, q_q, g_g, **params))


def test_rerank_on_short_lists_stays_close_to_exact():
    q_g, q_q, g_g = _distances(2, nq=12, ng=60)
    k = 25
    qq_nb = np.argsort(q_q, axis=1, kind="stable")[:, :k].astype(np.int32)
    gg_nb = np.argsort(g_g, axis=1, kind="stable")[:, :k].astype(np.int32)
    got = re_rank_shortlist(q_g, qq_nb, np.take_along_axis(q_q, qq_nb, 1),
                            gg_nb, np.take_along_axis(g_g, gg_nb, 1), k1=6, k2=3)
    exact = re_rank(q_g, q_q, g_g, k1=6, k2=3)
    # The k1-neighbourhoods lie inside the lists, so the top of each ranking is the exact one's.
    np.testing.assert_array_equal(np.argsort(got, axis=1)[:, :3], np.argsort(exact, axis=1)[:, :3])
    with pytest.raises(ValueError, match="neighbour indices"):
        re_rank_shortlist(q_g, qq_nb + 100, np.take_along_axis(q_q, qq_nb, 1), gg_nb,
                          np.take_along_axis(g_g, gg_nb, 1))


def test_session_with_full_shortlist_equals_exhaustive_and_reuses_its_cache(tmp_path, tiny_synth, random_checkpoint):
    from engine.postprocess.params import RerankParams, TLiftParams
    from engine.session import Session

    _, dataset = tiny_synth
    ckpt = random_checkpoint
    n = len(dataset.query) + len(dataset.gallery)
    exhaustive = Session.open(dataset, ckpt, device="cpu", cache_dir=tmp_path / "c")
    full = Session.open(dataset, ckpt, device="cpu", cache_dir=tmp_path / "c", shortlist=n)
    short = Session.open(dataset, ckpt, device="cpu", cache_dir=tmp_path / "c", shortlist=5)
    rr, tl = RerankParams(k1=4, k2=2), TLiftParams()
    for settings in ((None, None), (rr, None), (rr, tl)):
        np.testing.assert_array_equal(full.distances(*settings), exhaustive.distances(*settings))
        assert short.distances(*settings).shape == (len(dataset.query), len(dataset.gallery))
    assert set(full.graphs) == {"qq", "gg"} and "gg" in exhaustive.logits
    assert short.graphs["gg"][0].shape == (len(dataset.gallery), 5)
    # Probes outside the dataset go through the same chain, on the gallery's graph.
    probes, own = exhaustive.logits["qg"][:3], np.diagonal(exhaustive.logits["qq"])[:3]
    np.testing.assert_array_equal(full.probe_distances(probes, own, rr),
                                  exhaustive.probe_distances(probes, own, rr))
    assert np.isfinite(short.probe_distances(probes, own, rr)).all()
    warm = Session.open(dataset, ckpt, device="cpu", cache_dir=tmp_path / "c", shortlist=5)
    np.testing.assert_array_equal(warm.distances(rr, tl), short.distances(rr, tl))
    assert all(warm.cache_hits.values()) and not warm.model_loaded


def test_recall_counts_the_exhaustive_top_among_the_candidates_and_auto_k_keeps_it():
    from engine import shortlist

    rng = np.random.default_rng(4)
    exhaustive, first = rng.normal(size=(6, 50)), rng.normal(size=(6, 50))
    ranks = shortlist.first_stage_ranks(exhaustive, first, top=5)
    for k in (1, 5, 12, 50):
        cand = top_candidates_of(first, k)
        head = np.argsort(-exhaustive, axis=1)[:, :5]
        kept = np.mean([len(set(head[i]) & set(cand[i])) / 5 for i in range(6)])
        assert shortlist.recall_at(ranks, k) == pytest.approx(kept)
    assert shortlist.recall_at(ranks, 50) == 1.0
    # The top items of two probes sit at these first-stage positions: all kept from K = 31 on.
    ranks = np.array([[0, 1, 2, 3], [0, 5, 9, 30]], np.int32)
    assert shortlist.recall_at(ranks, 10) == 7 / 8
    assert shortlist.lossless_shortlist(ranks, 100, start=4) == 32      # 4, 8, 16 lose matches
    assert shortlist.lossless_shortlist(ranks, 32, start=4) is None     # only exhaustive keeps them
    assert shortlist.lossless_shortlist(ranks[:1], 100, start=4) == 4


def top_candidates_of(scores, k):
    return [set(np.argsort(-row, kind="stable")[:k]) for row in scores]


def _as_ranks(size, run):
    """``run(share)`` on ``size`` threads standing for the ranks of a distributed run, each with
    ``share = (rank, size, gather)``; returns what each rank's call returned, and each rank's
    part of the gathered pairs."""
    import threading

    parts, results = [None] * size, [None] * size
    meet = threading.Barrier(size)

    def rank(r):
        def gather(part, everywhere=False):
            parts[r] = part
            meet.wait()
            got = list(parts) if r == 0 or everywhere else None
            meet.wait()  # every rank has read parts before the next gather writes them
            return got
        results[r] = run((r, size, gather))

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, parts


@pytest.mark.parametrize("size", [2, 3])
def test_ranks_sharing_the_candidate_pairs_give_one_process_block_and_graphs_bit_for_bit(
        matcher, monkeypatch, size):
    from engine import shortlist
    from engine.shortlist import pair_share

    # Small batches of probes, so that the pairs are spread over several of them (and ranks).
    monkeypatch.setenv("REID_PAIR_BATCH_BYTES", str(4 * 7 * 8 * (8 + 16) * 4))
    # ... and the first stage in chunks of 3 rows, which the ranks' shares of the items cut.
    monkeypatch.setattr(shortlist, "_CANDIDATE_FLOATS", 3 * 41 * (4 + 3))
    q, g = _maps(23, 5, groups=6), _maps(41, 6, groups=6)
    k = 7
    one = shortlist_block(matcher, q, g, k=k)
    results, parts = _as_ranks(size, lambda share: shortlist_block(matcher, q, g, k=k, share=share))
    assert results[1:] == [None] * (size - 1)
    np.testing.assert_array_equal(results[0][0], one[0])
    np.testing.assert_array_equal(results[0][1], one[1])
    # Each rank scored a part, and only logits of candidates travelled (not dense blocks).
    assert all(len(p) for p in parts) and sum(map(len, parts)) == len(q) * k
    one = shortlist_graph(matcher, g, k=k)
    results, parts = _as_ranks(size, lambda share: shortlist_graph(matcher, g, k=k, share=share))
    assert results[1:] == [None] * (size - 1)
    np.testing.assert_array_equal(results[0][0], one[0])
    np.testing.assert_array_equal(results[0][1], one[1])
    assert all(len(p) for p in parts) and sum(map(len, parts)) < len(g) * k
    # The shares tile the pairs in order, cutting no batch of probes.
    rows = np.repeat(np.arange(len(q)), k)
    bounds = [pair_share(rows, 8, 16, r, size) for r in range(size)]
    assert bounds[0][0] == 0 and bounds[-1][1] == len(rows)
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
    assert all(s % k == 0 for s, _ in bounds)


def test_scoring_pairs_depends_on_the_batch_so_shares_keep_whole_batches(matcher, monkeypatch):
    # Why pair_share cuts only between batches: the same pairs scored in other batches can
    # differ in the last bits (measured here: about 1e-7 relative), which a cut aligned with the
    # batches avoids by construction.
    from engine.shortlist import pair_share, score_pairs

    monkeypatch.setenv("REID_PAIR_BATCH_BYTES", str(3 * 9 * 8 * (8 + 16) * 4))
    q, g = _maps(20, 7), _maps(60, 8)
    rows = np.repeat(np.arange(len(q)), 9)
    cols = np.random.default_rng(0).integers(0, len(g), len(rows))
    whole = score_pairs(matcher, q, g, rows, cols)
    pieces = [score_pairs(matcher, q, g, rows[a:b], cols[a:b])
              for a, b in (pair_share(rows, 8, 16, r, 3) for r in range(3))]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    alone = np.concatenate([score_pairs(matcher, q, g, rows[i:i + 9], cols[i:i + 9])
                            for i in range(0, len(rows), 9)])
    np.testing.assert_allclose(alone, whole, rtol=1e-6, atol=1e-6)
