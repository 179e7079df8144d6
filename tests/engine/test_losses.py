"""Losses: brute-force formulations, class memory semantics, learning on a tiny problem, autocast."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from engine.losses import (
    ClassMemoryLoss,
    GlobalSoftmaxLoss,
    PairwiseMatchingLoss,
    TripletLoss,
    batch_hard_triplet,
    pairwise_bce,
    softmax_ce,
)
from engine.models import GlobalClassifier, QAConv

C, H, W = 16, 4, 2
SHAPE = (C, H, W)


def bce(s: float, y: float) -> float:
    return -(y * math.log(1 / (1 + math.exp(-s))) + (1 - y) * math.log(1 - 1 / (1 + math.exp(-s))))


# ---------------------------------------------------------------- brute-force formulas
def test_pairwise_bce_equals_loop():
    gen = torch.Generator().manual_seed(0)
    scores, labels = torch.randn(6, 6, generator=gen), torch.tensor([0, 1, 0, 2, 1, 1])
    expected = sum(bce(float(scores[i, j]), float(labels[i] == labels[j]))
                   for i in range(6) for j in range(6)) / 6
    assert float(pairwise_bce(scores, labels)) == pytest.approx(expected, rel=1e-5)


def test_batch_hard_triplet_equals_loop_and_drops_anchors_without_positive():
    gen = torch.Generator().manual_seed(1)
    scores, labels = torch.randn(7, 7, generator=gen) * 10, torch.tensor([0, 0, 1, 1, 1, 2, 3])
    margin, terms = 16.0, []
    for i in range(7):
        pos = [float(scores[i, j]) for j in range(7) if j != i and labels[j] == labels[i]]
        neg = [float(scores[i, j]) for j in range(7) if labels[j] != labels[i]]
        if pos and neg:  # anchors 5 and 6 have no positive: dropped, not counted as 0
            terms.append(max(0.0, margin - (min(pos) - max(neg))))
    got = batch_hard_triplet(scores, labels, margin)
    assert float(got) == pytest.approx(sum(terms) / len(terms), rel=1e-5)
    none_valid = batch_hard_triplet(scores.requires_grad_(True), torch.arange(7), margin)
    assert float(none_valid.detach()) == 0.0
    none_valid.backward()
    assert torch.all(scores.grad == 0)


def test_softmax_ce_matches_formula():
    logits, labels = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]), torch.tensor([1, 2])
    expected = -(torch.log_softmax(logits, 1)[0, 1] + torch.log_softmax(logits, 1)[1, 2]) / 2
    assert float(softmax_ce(logits, labels)) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\]"):
        softmax_ce(logits, torch.tensor([0, 3]))


# ---------------------------------------------------------------- class memory
def make_memory_loss(mode="focal", num_classes=6, triplet_margin=None, class_chunk=256):
    return ClassMemoryLoss(QAConv(*SHAPE), num_classes, SHAPE, mode=mode,
                           triplet_margin=triplet_margin, class_chunk=class_chunk).train()


def test_memory_overwrite_last_write_wins(unit_maps):
    loss = make_memory_loss()
    feats = unit_maps(4, *SHAPE, seed=2)
    loss.update_memory(feats, torch.tensor([1, 3, 1, 4]))
    assert loss.valid.tolist() == [False, True, False, True, True, False]
    torch.testing.assert_close(loss.memory[1], feats[2])       # the later sample of class 1
    torch.testing.assert_close(loss.memory[3], feats[1])
    assert torch.all(loss.memory[[0, 2, 5]] == 0)
    newer = unit_maps(1, *SHAPE, seed=3)
    loss.update_memory(newer, torch.tensor([3]))               # overwrite, no momentum
    torch.testing.assert_close(loss.memory[3], newer[0])
    assert not loss.memory.requires_grad
    with pytest.raises(ValueError, match="labels must lie"):
        loss.update_memory(feats, torch.tensor([0, 1, 2, 6]))


def test_empty_memory_gives_zero_loss_with_graph(unit_maps):
    loss = make_memory_loss()
    feats = unit_maps(4, *SHAPE, seed=4).requires_grad_(True)
    value = loss(feats, torch.tensor([0, 1, 2, 3]))
    assert float(value.detach()) == 0.0
    value.backward()
    assert torch.all(feats.grad == 0)


@pytest.mark.parametrize("mode", ["focal", "bce"])
def test_memory_loss_equals_brute_force_over_written_classes(mode, unit_maps):
    loss = make_memory_loss(mode, class_chunk=2)
    loss.update_memory(unit_maps(3, *SHAPE, seed=5), torch.tensor([0, 2, 5]))
    # Garbage in an unwritten class must not matter: it is masked out.
    loss.memory[4] = unit_maps(1, *SHAPE, seed=6)[0]
    feats, labels = unit_maps(4, *SHAPE, seed=7), torch.tensor([0, 1, 2, 2])
    got = float(loss(feats, labels).detach())

    reference = QAConv(*SHAPE).train()   # fresh, same initial state as loss.matcher had
    written = [0, 2, 5]
    logits = reference.match(feats, loss.memory[written]).detach()    # [4, 3]
    total = 0.0
    for i in range(4):
        for k, cls in enumerate(written):
            y = float(labels[i] == cls)
            s = float(logits[i, k])
            prob = 1 / (1 + math.exp(-s))
            weight = ((1 - prob) if y else prob) ** 2 if mode == "focal" else 1.0
            total += weight * bce(s, y)
    assert got == pytest.approx(total / 4, rel=1e-4)


def test_class_chunk_does_not_change_the_loss(unit_maps):
    feats, labels = unit_maps(5, *SHAPE, seed=8), torch.tensor([0, 1, 2, 3, 4])
    values = []
    for chunk in (1, 2, 256):
        loss = make_memory_loss(class_chunk=chunk)
        loss.update_memory(unit_maps(5, *SHAPE, seed=9), torch.tensor([0, 1, 2, 4, 5]))
        values.append(float(loss(feats, labels).detach()))
    assert values[0] == pytest.approx(values[1], rel=1e-5) and values[0] == pytest.approx(values[2], rel=1e-5)


def test_softmax_memory_drops_samples_whose_class_is_unwritten(unit_maps):
    loss = make_memory_loss("softmax")
    loss.update_memory(unit_maps(2, *SHAPE, seed=10), torch.tensor([1, 3]))
    feats = unit_maps(3, *SHAPE, seed=11)
    got = float(loss(feats, torch.tensor([1, 0, 3])).detach())          # sample 1's class 0 is unwritten
    logits = QAConv(*SHAPE).train().match(feats, loss.memory[[1, 3]]).detach()   # [3, 2]
    expected = F.cross_entropy(logits[[0, 2]], torch.tensor([0, 1]))
    assert got == pytest.approx(float(expected), rel=1e-4)


# ---------------------------------------------------------------- learning on a tiny problem
def tiny_problem(seed: int = 12):
    """8 images of 4 identities: learnable local features plus the loss's own parameters."""
    gen = torch.Generator().manual_seed(seed)
    raw = torch.randn(8, *SHAPE, generator=gen).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    return raw, labels


def train_steps(criterion, raw, labels, steps=12, lr=0.05, autocast=False):
    params = [raw] + list(criterion.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    values = []
    for _ in range(steps):
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16, enabled=autocast):
            feats = F.normalize(raw, dim=1)
            loss = criterion(feats, labels)
        opt.zero_grad()
        loss.backward()
        for p in params:
            if p.grad is not None:
                assert torch.isfinite(p.grad).all()
        opt.step()
        if hasattr(criterion, "update_memory"):
            criterion.update_memory(feats.detach(), labels)
        values.append(float(loss.detach()))
    return values


@pytest.mark.parametrize("make", [
    lambda: make_memory_loss("focal", num_classes=4),
    lambda: make_memory_loss("bce", num_classes=4),
    lambda: make_memory_loss("softmax", num_classes=4),
    lambda: make_memory_loss("focal", num_classes=4, triplet_margin=2.0),
    lambda: PairwiseMatchingLoss(QAConv(*SHAPE)).train(),
    lambda: TripletLoss(QAConv(*SHAPE), margin=2.0).train(),
    lambda: GlobalSoftmaxLoss(GlobalClassifier(C, 4)).train(),
], ids=["focal", "bce", "softmax", "focal+triplet", "pairwise", "triplet", "global"])
def test_loss_falls_on_tiny_problem(make):
    raw, labels = tiny_problem()
    values = train_steps(make(), raw, labels)
    assert all(math.isfinite(v) for v in values)
    # The memory losses are 0 at step 0 (empty memory); compare from step 1 on.
    assert values[-1] < 0.6 * values[1]


@pytest.mark.parametrize("make", [
    lambda: make_memory_loss("focal", num_classes=4, triplet_margin=2.0),
    lambda: PairwiseMatchingLoss(QAConv(*SHAPE)).train(),
], ids=["focal+triplet", "pairwise"])
def test_bfloat16_autocast_close_to_float32(make):
    raw, labels = tiny_problem(13)
    exact = train_steps(make(), raw.detach().clone().requires_grad_(True), labels, steps=3)
    low = train_steps(make(), raw.detach().clone().requires_grad_(True), labels, steps=3, autocast=True)
    for a, b in zip(exact, low, strict=True):
        assert b == pytest.approx(a, rel=0.1, abs=0.05)


def test_feat_shape_must_match_matcher():
    with pytest.raises(ValueError, match="feat_shape"):
        ClassMemoryLoss(QAConv(*SHAPE), 4, (C, H, W + 1))
    with pytest.raises(ValueError, match="mode"):
        ClassMemoryLoss(QAConv(*SHAPE), 4, SHAPE, mode="arcface")
