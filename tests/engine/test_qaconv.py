"""QAConv matcher: reference cases, brute-force formulations, folding, chunking, correspondences."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.models import QAConv
from engine.models.qaconv import block_shape

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference"


def einsum_qaconv(matcher: QAConv, probe: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """docs/arithmetic.md section 2 written out literally (the whole [p, g, hw, hw] tensor at once)."""
    p, c, h, w = probe.shape
    g, hw = gallery.shape[0], h * w
    sim = torch.einsum("pcs,gcr->pgrs", probe.reshape(p, c, hw), gallery.reshape(g, c, hw))
    maxima = torch.cat((sim.max(dim=2).values, sim.max(dim=3).values), dim=-1)  # [p, g, 2hw]
    x = F.batch_norm(maxima.reshape(-1, 1, hw), matcher.bn.running_mean.clone(),
                     matcher.bn.running_var.clone(), matcher.bn.weight, matcher.bn.bias,
                     training=matcher.training, eps=matcher.bn.eps)
    x = F.linear(x.reshape(-1, hw), matcher.fc.weight, matcher.fc.bias).reshape(-1, 2).sum(1, keepdim=True)
    x = F.batch_norm(x, matcher.logit_bn.running_mean.clone(), matcher.logit_bn.running_var.clone(),
                     matcher.logit_bn.weight, matcher.logit_bn.bias, training=matcher.training,
                     eps=matcher.logit_bn.eps)
    return x.reshape(p, g)


def loop_maxima(probe: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """Python loops over pairs and locations: [p, g, 2, hw]."""
    p, c = probe.shape[:2]
    g, hw = gallery.shape[0], probe.shape[2] * probe.shape[3]
    P, G = probe.reshape(p, c, hw), gallery.reshape(g, c, hw)
    out = torch.empty(p, g, 2, hw)
    for i in range(p):
        for j in range(g):
            for s in range(hw):
                out[i, j, 0, s] = max(float(P[i, :, s] @ G[j, :, r]) for r in range(hw))
            for r in range(hw):
                out[i, j, 1, r] = max(float(P[i, :, s] @ G[j, :, r]) for s in range(hw))
    return out


@pytest.mark.parametrize("name", ["qaconv_eval", "qaconv_eval_big", "qaconv_train"])
def test_reference_cases(name):
    case = np.load(REFERENCE / f"{name}.npz")
    probe, gallery = torch.from_numpy(case["query"]), torch.from_numpy(case["gallery"])
    matcher = QAConv(*probe.shape[1:])
    matcher.train(bool(case["train_mode"]))
    with torch.no_grad():
        fast = matcher(probe, gallery).numpy()
    differentiable = QAConv(*probe.shape[1:]).train(bool(case["train_mode"]))
    slow = differentiable.match(probe, gallery).detach().numpy()
    np.testing.assert_allclose(fast, case["expected"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(slow, case["expected"], atol=1e-4, rtol=0)


def test_fresh_matcher_initialisation():
    m = QAConv(8, 6, 4)
    assert torch.all(m.fc.weight == 1 / 24) and float(m.fc.bias.detach()) == 0.0
    assert m.fc.weight.shape == (1, 24)


def test_pair_maxima_equals_loops(unit_maps):
    probe, gallery = unit_maps(2, 5, 3, 2, seed=1), unit_maps(3, 5, 3, 2, seed=2)
    maxima = QAConv(5, 3, 2).pair_maxima(probe, gallery)
    torch.testing.assert_close(maxima, loop_maxima(probe, gallery), atol=1e-6, rtol=0)


@pytest.mark.parametrize("training", [False, True])
def test_fast_paths_equal_einsum(training, unit_maps, randomised_matcher):
    probe, gallery = unit_maps(5, 16, 6, 4, seed=3), unit_maps(7, 16, 6, 4, seed=4)
    matcher = randomised_matcher(16, 6, 4, seed=5).train(training)
    expected = einsum_qaconv(matcher, probe, gallery)
    torch.testing.assert_close(matcher.match(probe, gallery), expected, atol=1e-5, rtol=1e-5)
    if not training:
        with torch.no_grad():
            torch.testing.assert_close(matcher(probe, gallery), expected, atol=1e-5, rtol=1e-5)


def test_folded_head_equals_module_head(randomised_matcher):
    matcher = randomised_matcher(16, 6, 4, seed=6).eval()
    gen = torch.Generator().manual_seed(7)
    maxima = torch.rand(3, 4, 2, 24, generator=gen) * 2 - 1
    weight, bias = matcher.folded_head()
    folded = torch.einsum("pgds,s->pg", maxima, weight) + bias
    torch.testing.assert_close(folded, matcher.head(maxima).detach(), atol=1e-5, rtol=1e-5)


def test_score_is_symmetric(unit_maps, randomised_matcher):
    a, b = unit_maps(4, 16, 6, 4, seed=8), unit_maps(6, 16, 6, 4, seed=9)
    matcher = randomised_matcher(16, 6, 4, seed=10).eval()
    with torch.no_grad():
        ab, ba = matcher(a, b), matcher(b, a)
    torch.testing.assert_close(ab, ba.T, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("budget_pairs", [1, 3, 5, 10_000])
def test_chunked_equals_unchunked(budget_pairs, unit_maps, randomised_matcher):
    """Odd block sizes (memory budgets worth 1, 3, 5 pairs) give the same numbers."""
    c, h, w = 8, 4, 3
    hw = h * w
    probe, gallery = unit_maps(7, c, h, w, seed=11), unit_maps(11, c, h, w, seed=12)
    budget = budget_pairs * (hw * hw + 2 * hw) * 4
    chunked = randomised_matcher(c, h, w, seed=13, memory_budget=budget).eval()
    whole = randomised_matcher(c, h, w, seed=13, memory_budget=1 << 30).eval()
    torch.testing.assert_close(chunked.pair_maxima(probe, gallery), whole.pair_maxima(probe, gallery))
    with torch.no_grad():
        torch.testing.assert_close(chunked(probe, gallery), whole(probe, gallery), atol=1e-5, rtol=1e-5)


def test_block_shape_respects_budget():
    hw = 192
    per_pair = (hw * hw + 2 * hw) * 4
    for budget in (1, per_pair, 3 * per_pair + 5, 100 * per_pair, 10**9):
        for p, g in ((1, 1), (3, 1000), (1000, 3), (500, 700)):
            pc, gc = block_shape(p, g, hw, budget, 4)
            assert 1 <= pc <= p and 1 <= gc <= g
            assert pc * gc == 1 or pc * gc * per_pair <= budget
    with pytest.raises(ValueError, match="memory_budget"):
        block_shape(2, 2, hw, 0, 4)


def test_chunked_gradients_equal_einsum_gradients(unit_maps):
    c, h, w = 8, 4, 2
    probe = unit_maps(3, c, h, w, seed=14).requires_grad_(True)
    gallery = unit_maps(5, c, h, w, seed=15).requires_grad_(True)
    chunked = QAConv(c, h, w, memory_budget=2 * (64 + 16) * 4).train()
    reference = QAConv(c, h, w).train()
    weights = torch.randn(3, 5, generator=torch.Generator().manual_seed(16))
    grads = torch.autograd.grad((chunked(probe, gallery) * weights).sum(), (probe, gallery))
    expected = torch.autograd.grad((einsum_qaconv(reference, probe, gallery) * weights).sum(),
                                   (probe, gallery))
    for got, want in zip(grads, expected, strict=True):
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_correspondences_agree_with_maxima(unit_maps, randomised_matcher):
    c, h, w = 16, 6, 4
    probe, gallery = unit_maps(3, c, h, w, seed=17), unit_maps(4, c, h, w, seed=18)
    matcher = randomised_matcher(c, h, w, seed=19).eval()
    maxima = matcher.pair_maxima(probe, gallery).detach()
    with torch.no_grad():
        logits = matcher(probe, gallery)
    i, j = 2, 1
    corr = matcher.correspondences(probe[i].numpy(), gallery[j])
    assert corr.probe_heatmap.shape == (h, w) and corr.gallery_heatmap.shape == (h, w)
    np.testing.assert_allclose(corr.probe_heatmap.ravel(), maxima[i, j, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(corr.gallery_heatmap.ravel(), maxima[i, j, 1].numpy(), atol=1e-6)
    # The argmax indices point at locations whose cosine is the maximum.
    P, G = probe[i].reshape(c, -1), gallery[j].reshape(c, -1)
    sim = (P.T @ G).numpy()                                   # [hw_s, hw_r]
    s = np.arange(h * w)
    np.testing.assert_allclose(sim[s, corr.probe_to_gallery], corr.probe_heatmap.ravel(), atol=1e-6)
    np.testing.assert_allclose(sim[corr.gallery_to_probe, s], corr.gallery_heatmap.ravel(), atol=1e-6)
    assert corr.probe_to_gallery.dtype == np.int64 and corr.probe_to_gallery.max() < h * w
    assert corr.logit == pytest.approx(float(logits[i, j]), abs=1e-5)
    # float16 maps from the feature store are accepted as they are.
    half = matcher.correspondences(probe[i].numpy().astype(np.float16), gallery[j].numpy().astype(np.float16))
    np.testing.assert_allclose(half.probe_heatmap, corr.probe_heatmap, atol=5e-3)


def test_bad_input_messages():
    m = QAConv(16, 6, 4)
    with pytest.raises(ValueError, match=r"probe must be feature maps \[n, 16, 6, 4\]"):
        m(torch.zeros(2, 8, 6, 4), torch.zeros(2, 16, 6, 4))
    with pytest.raises(ValueError, match="gallery"):
        m(torch.zeros(2, 16, 6, 4), torch.zeros(16, 6, 4))
    with pytest.raises(ValueError, match="at least 2 pairs"):
        m.train()(torch.zeros(1, 16, 6, 4), torch.zeros(1, 16, 6, 4))
    with pytest.raises(ValueError, match="num_features"):
        QAConv(0, 6, 4)


def test_bfloat16_autocast_close_to_float32(unit_maps):
    probe, gallery = unit_maps(6, 32, 6, 4, seed=20), unit_maps(6, 32, 6, 4, seed=21)
    matcher = QAConv(32, 6, 4).train()
    exact = matcher.match(probe, gallery)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        low = matcher.match(probe, gallery)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    # bfloat16 keeps ~3 significant digits of the cosines; after batch norm the logits
    # have unit scale, so they agree to a few hundredths.
    assert float((low - exact).detach().abs().max()) < 0.1
    low.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in matcher.parameters())
