"""Chunked scoring: equals the literal formulation for odd tiles, fp16 stores, symmetry, progress, cancel."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.jobs import Cancelled
from engine.models import QAConv
from engine.models.scoring import score_global, score_matrix

C, H, W = 16, 4, 3
HW = H * W
SHAPE = (C, H, W)


def trained_like_matcher(seed: int = 0) -> QAConv:
    """Non-default BatchNorm statistics and fc weights, as after training."""
    m = QAConv(C, H, W)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m.bn, m.logit_bn):
            bn.running_mean.fill_(float(torch.rand(1, generator=gen)))
            bn.running_var.fill_(float(torch.rand(1, generator=gen)) + 0.3)
            bn.weight.fill_(1.5)
            bn.bias.fill_(-0.25)
        m.fc.weight.copy_(torch.rand(1, HW, generator=gen) / HW)
        m.fc.bias.fill_(0.1)
    return m.eval()


def literal_scores(matcher: QAConv, probe: torch.Tensor, gallery: torch.Tensor) -> np.ndarray:
    """docs/arithmetic.md section 2 in eval mode with the module's own layers, whole tensor at once."""
    p, g = len(probe), len(gallery)
    sim = torch.einsum("pcs,gcr->pgrs", probe.reshape(p, C, HW), gallery.reshape(g, C, HW))
    maxima = torch.cat((sim.max(dim=2).values, sim.max(dim=3).values), dim=-1)   # [p, g, 2hw]
    with torch.no_grad():
        x = matcher.bn(maxima.reshape(-1, 1, HW)).reshape(-1, HW)
        x = matcher.fc(x).reshape(-1, 2).sum(1, keepdim=True)
        return matcher.logit_bn(x).reshape(p, g).numpy()


def odd_budget() -> int:
    # Half goes to the block: 14 pairs of 672 bytes -> blocks of 2 x 7 pairs; the rest gives
    # tiles of 4 probe x 14 gallery images; none of these divide 13 or 29.
    return 20_000


def test_chunked_scoring_equals_literal_formulation(unit_maps):
    matcher = trained_like_matcher()
    probe, gallery = unit_maps(13, *SHAPE, seed=1), unit_maps(29, *SHAPE, seed=2)
    expected = literal_scores(matcher, probe, gallery)
    for budget in (odd_budget(), 2, 1 << 30):
        got = score_matrix(matcher, probe, gallery, device="cpu", memory_budget=budget)
        assert got.dtype == np.float32 and got.shape == (13, 29)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_float16_memmap_inputs(tmp_path, unit_maps):
    matcher = trained_like_matcher(1)
    probe, gallery = unit_maps(5, *SHAPE, seed=3), unit_maps(9, *SHAPE, seed=4)
    path = tmp_path / "gallery.npy"
    np.save(path, gallery.numpy().astype(np.float16))
    stored = np.load(path, mmap_mode="r")                    # read-only, like the feature store
    got = score_matrix(matcher, probe.numpy().astype(np.float16), stored, memory_budget=odd_budget())
    expected = literal_scores(matcher, probe.half().float(), torch.from_numpy(np.array(stored)).float())
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_symmetric_self_scoring(unit_maps):
    matcher = trained_like_matcher(2)
    maps = unit_maps(23, *SHAPE, seed=5)
    full = score_matrix(matcher, maps, maps, memory_budget=odd_budget())
    calls = []
    sym = score_matrix(matcher, maps, maps, memory_budget=odd_budget(), symmetric=True,
                       progress=lambda done, total: calls.append((done, total)))
    np.testing.assert_array_equal(sym, sym.T)
    np.testing.assert_allclose(sym, full, atol=1e-5, rtol=1e-5)
    assert calls[-1] == (23 * 24 // 2, 23 * 24 // 2)
    with pytest.raises(ValueError, match="symmetric"):
        score_matrix(matcher, maps, maps[:5], symmetric=True)


def test_score_matrix_is_transpose_symmetric(unit_maps):
    matcher = trained_like_matcher(3)
    a, b = unit_maps(6, *SHAPE, seed=6), unit_maps(8, *SHAPE, seed=7)
    ab = score_matrix(matcher, a, b, memory_budget=odd_budget())
    ba = score_matrix(matcher, b, a, memory_budget=odd_budget())
    np.testing.assert_allclose(ab, ba.T, atol=1e-5, rtol=1e-5)


def test_progress_is_monotone_and_complete(unit_maps):
    matcher = trained_like_matcher()
    calls = []
    score_matrix(matcher, unit_maps(13, *SHAPE, seed=8), unit_maps(29, *SHAPE, seed=9), memory_budget=odd_budget(),
                 progress=lambda done, total: calls.append((done, total)))
    done = [d for d, _ in calls]
    assert len(calls) > 2 and done == sorted(done)
    assert calls[0] == (0, 13 * 29) and calls[-1] == (13 * 29, 13 * 29)


def test_cancel_stops_the_computation(unit_maps):
    matcher = trained_like_matcher()
    polls = []

    def cancel() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(Cancelled):
        score_matrix(matcher, unit_maps(13, *SHAPE, seed=10), unit_maps(29, *SHAPE, seed=11), memory_budget=odd_budget(),
                     cancel=cancel)


def test_bad_inputs(unit_maps):
    matcher = trained_like_matcher()
    with pytest.raises(ValueError, match=r"gallery_maps must be feature maps \[n, 16, 4, 3\]"):
        score_matrix(matcher, unit_maps(2, *SHAPE, seed=0), np.zeros((2, 16, 3, 4), np.float16))
    with pytest.raises(ValueError, match="dtype"):
        score_matrix(matcher, unit_maps(2, *SHAPE, seed=0), unit_maps(2, *SHAPE, seed=1), dtype=torch.int8)
    with pytest.raises(ValueError, match="memory_budget"):
        score_matrix(matcher, unit_maps(2, *SHAPE, seed=0), unit_maps(2, *SHAPE, seed=1), memory_budget=0)
    assert score_matrix(matcher, unit_maps(0, *SHAPE, seed=0), unit_maps(3, *SHAPE, seed=1)).shape == (0, 3)


def test_bfloat16_scoring_close(unit_maps):
    matcher = trained_like_matcher()
    probe, gallery = unit_maps(5, *SHAPE, seed=12), unit_maps(7, *SHAPE, seed=13)
    exact = score_matrix(matcher, probe, gallery)
    low = score_matrix(matcher, probe, gallery, dtype=torch.bfloat16)
    assert np.abs(low - exact).max() < 0.05 * max(1.0, np.abs(exact).max())


def test_score_global_is_cosine():
    gen = np.random.default_rng(0)
    probe, gallery = gen.normal(size=(4, 8)), gen.normal(size=(6, 8))
    got = score_global(probe.astype(np.float16), torch.from_numpy(gallery))
    p16 = probe.astype(np.float16).astype(np.float64)
    for i in range(4):
        for j in range(6):
            cos = p16[i] @ gallery[j] / np.linalg.norm(p16[i]) / np.linalg.norm(gallery[j])
            assert got[i, j] == pytest.approx(cos, abs=1e-5)
    with pytest.raises(ValueError, match="differ in D"):
        score_global(probe, gallery[:, :4])
