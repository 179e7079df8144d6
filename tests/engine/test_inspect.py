"""One pair's correspondences: contributions add up to the scoring path's logit; lines, bands
and location centres against brute-force formulations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.explain.inspect import (
    band_sums,
    location_centres,
    matched_location,
    select_lines,
)
from engine.models.correspondence import pair_correspondence
from engine.models.scoring import score_matrix


@pytest.fixture(scope="module")
def pair(unit_maps, randomised_matcher):
    c, h, w = 16, 8, 4
    matcher = randomised_matcher(c, h, w, seed=3).eval()
    probe, gallery = unit_maps(2, c, h, w, seed=4), unit_maps(3, c, h, w, seed=5)
    return matcher, probe.numpy().astype(np.float16), gallery.numpy().astype(np.float16)


def test_contributions_add_up_to_the_scoring_logit(pair):
    matcher, probe, gallery = pair
    logits = score_matrix(matcher, probe, gallery, device="cpu")       # the scoring path
    for i in range(len(probe)):
        for j in range(len(gallery)):
            corr = matcher.correspondences(probe[i], gallery[j])
            total = corr.probe_contribution.sum() + corr.gallery_contribution.sum() + corr.bias
            assert total == pytest.approx(corr.logit, abs=1e-4)
            assert corr.logit == pytest.approx(float(logits[i, j]), abs=1e-4)


def test_heatmaps_and_contributions_equal_a_brute_force_recomputation(pair):
    matcher, probe, gallery = pair
    weight, bias = (t.numpy() for t in matcher.folded_head())
    i, j = 1, 2
    corr = pair_correspondence(probe[i], gallery[j], weight, float(bias))
    P = probe[i].astype(np.float32).reshape(probe.shape[1], -1)
    G = gallery[j].astype(np.float32).reshape(gallery.shape[1], -1)
    hw = P.shape[1]
    a = np.array([max(float(P[:, s] @ G[:, r]) for r in range(hw)) for s in range(hw)])
    b = np.array([max(float(P[:, s] @ G[:, r]) for s in range(hw)) for r in range(hw)])
    np.testing.assert_allclose(corr.probe_heatmap.ravel(), a, atol=1e-6)
    np.testing.assert_allclose(corr.gallery_heatmap.ravel(), b, atol=1e-6)
    np.testing.assert_allclose(corr.probe_contribution.ravel(), weight * a, atol=1e-6)
    np.testing.assert_allclose(corr.gallery_contribution.ravel(), weight * b, atol=1e-6)
    # The head folded by hand: BN1 -> fc on each direction -> sum -> BN2, in float64.
    with torch.no_grad():
        x = torch.tensor(np.stack([a, b]), dtype=torch.float64)
        bn, fc, bn2 = matcher.bn, matcher.fc, matcher.logit_bn
        x = (x - bn.running_mean.double()) / torch.sqrt(bn.running_var.double() + bn.eps)
        x = x * bn.weight.double() + bn.bias.double()
        y = (x @ fc.weight.double()[0] + fc.bias.double()).sum()
        y = (y - bn2.running_mean.double()) / torch.sqrt(bn2.running_var.double() + bn2.eps)
        y = y * bn2.weight.double() + bn2.bias.double()
    assert corr.logit == pytest.approx(float(y), abs=1e-4)
    # Argmax indices point at the maxima.
    sim = P.T @ G
    np.testing.assert_allclose(sim[np.arange(hw), corr.probe_to_gallery], a, atol=1e-6)
    np.testing.assert_allclose(sim[corr.gallery_to_probe, np.arange(hw)], b, atol=1e-6)


def test_bad_maps_are_named():
    with pytest.raises(ValueError, match="probe_map must be one feature map"):
        pair_correspondence(np.zeros((4, 2)), np.zeros((4, 2, 2)), np.ones(4), 0.0)
    with pytest.raises(ValueError, match="4 weights"):
        pair_correspondence(np.zeros((3, 2, 3)), np.zeros((3, 2, 3)), np.ones(4), 0.0)


def test_band_sums_by_loop():
    rng = np.random.default_rng(0)
    for h in (8, 24, 5):
        c = rng.normal(size=(h, 4))
        expected = np.zeros(3)
        for row in range(h):
            expected[min(int(row / (h / 3)), 2)] += c[row].sum()
        np.testing.assert_allclose(band_sums(c), expected, atol=1e-12)
        assert band_sums(c).sum() == pytest.approx(c.sum())
    np.testing.assert_allclose(band_sums(np.ones((8, 4))), [12, 12, 8])


def test_location_centres_are_cell_centres():
    centres = location_centres(8, 4, 128, 64)
    assert centres.shape == (32, 2)
    np.testing.assert_allclose(centres[0], [8, 8])            # row 0, col 0
    np.testing.assert_allclose(centres[5], [24, 24])          # row 1, col 1
    np.testing.assert_allclose(centres[31], [56, 120])        # last cell


def test_select_lines_top_n_and_threshold_by_brute_force(pair):
    matcher, probe, gallery = pair
    corr = matcher.correspondences(probe[0], gallery[1])
    for side in ("probe", "gallery"):
        contrib = corr.contribution(side).ravel()
        sim = corr.heatmap(side).ravel()
        lines = select_lines(corr, side, top_n=10)
        assert len(lines) == 10
        expected = sorted(range(contrib.size), key=lambda k: -contrib[k])[:10]
        assert [ln.source for ln in lines] == expected
        for ln in lines:
            assert ln.target == corr.matches(side)[ln.source]
            assert ln.similarity == pytest.approx(sim[ln.source])
            assert ln.contribution == pytest.approx(contrib[ln.source])
        thr = float(np.median(sim))
        lines = select_lines(corr, side, top_n=None, threshold=thr)
        assert {ln.source for ln in lines} == {k for k in range(sim.size) if sim[k] >= thr}
        contribs = [ln.contribution for ln in lines]
        assert contribs == sorted(contribs, reverse=True)
    hit = matched_location(corr, "gallery", 7)
    assert hit.target == corr.gallery_to_probe[7]
    assert hit.contribution == pytest.approx(corr.gallery_contribution.ravel()[7])
    with pytest.raises(IndexError):
        matched_location(corr, "probe", 32)


def test_session_correspondences_match_its_scores_and_need_no_model_when_warm(tmp_path, image_samples, random_checkpoint):
    from engine.data import Dataset
    from engine.session import Session

    samples = image_samples(tmp_path / "imgs", n=6)
    dataset = Dataset("tiny", str(tmp_path), query=samples[:2], gallery=samples[2:])
    ckpt, cache = random_checkpoint, tmp_path / "cache"
    cold = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    cold.score(("qg",))
    assert not cold.head_ready
    for q in range(2):
        for g in range(4):
            corr = cold.correspondences(cold.query_maps[q], g)
            assert corr.logit == pytest.approx(float(cold.logits["qg"][q, g]), abs=1e-4)
    warm = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    warm.score(("qg",))
    assert warm.head_ready
    corr = warm.correspondences(warm.query_maps[1], 3)
    assert not warm.model_loaded                                 # answered from the cached head
    assert corr.logit == pytest.approx(float(warm.logits["qg"][1, 3]), abs=1e-4)


def test_relative_split_adds_up_to_the_same_logit(pair):
    matcher, probe, gallery = pair
    corr = matcher.correspondences(probe[0], gallery[0])
    mu = float(matcher.bn.running_mean[0])
    assert corr.centre == pytest.approx(mu)
    weight = matcher.folded_head()[0].numpy().reshape(corr.probe_heatmap.shape)
    for side in ("probe", "gallery"):
        np.testing.assert_allclose(corr.relative_contribution(side),
                                   weight * (corr.heatmap(side) - mu), atol=1e-5)
    total = (corr.relative_contribution("probe").sum() + corr.relative_contribution("gallery").sum()
             + corr.relative_bias)
    assert total == pytest.approx(corr.logit, abs=1e-4)


def test_a_corrupt_cached_head_is_recomputed(tmp_path, image_samples, random_checkpoint):
    from engine.data import Dataset
    from engine.session import Session

    samples = image_samples(tmp_path / "imgs", n=4)
    dataset = Dataset("tiny", str(tmp_path), query=samples[:1], gallery=samples[1:])
    ckpt, cache = random_checkpoint, tmp_path / "cache"
    first = Session.open(dataset, ckpt, device="cpu", cache_dir=cache).folded_head()
    path = next((cache / "heads").iterdir())
    path.write_text('{"weight": [1, 2')
    again = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    head = again.folded_head()
    np.testing.assert_array_equal(head[0], first[0])
    assert head[1:] == first[1:] and again.model_loaded     # recomputed from the model
