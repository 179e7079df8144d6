"""GlobalModel: the peer's eval output, local embeddings that average to it exactly (each head,
randomised BatchNorm, ReLU masks switching units off), and the exact split of a pair's cosine."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.models.config import ModelConfig
from engine.models.global_model import GlobalModel
from engine.models.osnet import build_osnet_trunk

HEADS = [("pool", 0), ("bnneck", 0), ("fc", 24)]


def randomise(module: torch.nn.Module, seed: int = 0) -> None:
    """Every parameter and BatchNorm statistic drawn at random (running means far from zero, so
    that the fc head's ReLU switches units off)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            elif t.dim() == 1:
                t.copy_(0.5 * torch.randn(t.shape, generator=g) + (0.5 if name.endswith("weight") else 0))
            else:
                t.copy_(torch.randn(t.shape, generator=g) / t[0].numel() ** 0.5)


def model(head: str, dim: int) -> GlobalModel:
    config = ModelConfig(arch="osnet_x0_25", neck=0, height=64, width=32, pretrained="none",
                         imagenet_norm=True, method="global", source="torchreid", head=head,
                         head_dim=dim)
    trunk, channels = build_osnet_trunk(config.arch)
    m = GlobalModel(config, trunk, channels)
    randomise(m)
    return m.eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def models():
    """One model per head (built once: the tests only read them)."""
    return {head: model(head, dim) for head, dim in HEADS}


def test_state_dict_names_are_trunk_and_head(models):
    names = {h: {k for k in m.state_dict() if not k.startswith("trunk.")} for h, m in models.items()}
    bn = {f"head.bn.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    assert names == {"pool": set(), "bnneck": bn, "fc": bn | {"head.linear.weight", "head.linear.bias"}}


@pytest.mark.parametrize("head,dim", HEADS)
def test_features_are_the_peers_eval_arithmetic(head, dim, images, models):
    m = models[head]
    with torch.no_grad():
        pooled = m.trunk_maps(images).mean(dim=(2, 3))                 # [B, C]
        if head == "fc":
            z = F.linear(pooled, m.head.linear.weight, m.head.linear.bias)
            bn = m.head.bn
            expected = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                    training=False, eps=bn.eps).relu()
        elif head == "bnneck":
            bn = m.head.bn
            expected = F.batch_norm(pooled, bn.running_mean, bn.running_var, bn.weight, bn.bias,
                                    training=False, eps=bn.eps)
        else:
            expected = pooled
        got = m.features(images)
        stored = m.backbone_for_maps()(images)         # what the feature store keeps
    assert got.shape == (3, m.embedding_dim) == (3, dim or 128)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert stored.shape == (3, m.embedding_dim, 1, 1) and torch.equal(stored[:, :, 0, 0], got)


@pytest.mark.parametrize("head,dim", HEADS)
def test_local_embeddings_average_to_the_features(head, dim, images, models):
    m = models[head]
    with torch.no_grad():
        features = m.features(images)
        local = m.local_embeddings(images)
    assert local.shape == (3, m.embedding_dim, 4, 2)
    if head == "fc":   # the masks matter: some units off, some on, in every image
        off = features == 0
        assert off.any(dim=1).all() and (~off).any(dim=1).all()
    torch.testing.assert_close(local.mean(dim=(2, 3)), features, rtol=0, atol=1e-5)


@pytest.mark.parametrize("head,dim", HEADS)
def test_a_pairs_split_adds_up_to_its_cosine(head, dim, images, models):
    m = models[head]
    with torch.no_grad():
        features = m.features(images)
        local = m.local_embeddings(images)
    scores = m.score(features, features.numpy()[:, :, None, None], device="cpu")
    expected = F.normalize(features, dim=1) @ F.normalize(features, dim=1).T
    np.testing.assert_allclose(scores, expected.numpy(), atol=1e-6)
    c = m.correspondences(local[0], local[2])
    total = c.probe_contribution.sum() + c.gallery_contribution.sum() + c.bias
    assert abs(total - scores[0, 2]) < 1e-5 and abs(c.logit - scores[0, 2]) < 1e-5
    assert m.has_correspondences and m.method == "global"
    assert ("ReLU" in c.note) == (head == "fc")
    pair = m.explain_pair(images[0], images[2])                     # from the images themselves
    assert abs(pair.logit - scores[0, 2]) < 1e-5
    np.testing.assert_allclose(pair.probe_contribution, c.probe_contribution, atol=1e-7)


def test_an_unknown_head_is_refused():
    trunk, channels = build_osnet_trunk("osnet_x0_25")
    config = ModelConfig(arch="osnet_x0_25", neck=0, method="global", height=64, width=32)
    config.head = "max"
    with pytest.raises(ValueError, match="head must be one of"):
        GlobalModel(config, trunk, channels)


def test_scores_refuse_maps(models):
    m = models["pool"]
    with pytest.raises(ValueError, match="embeddings"):
        m.score(np.zeros((2, 128, 4, 2), np.float32), np.zeros((2, 128), np.float32), device="cpu")
