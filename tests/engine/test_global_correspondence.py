"""The exact split of a global model's cosine (docs/arithmetic.md 2.9) against brute force: pair
terms summed location by location, the cosine of the pooled embeddings computed by torch, a
BatchNorm neck and a Linear + BatchNorm + ReLU head folded into the local embeddings, and the
baseline's session path against its scoring path."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.models.correspondence import global_correspondence


def _local(seed: int, e: int = 6, h: int = 4, w: int = 3, offset: float = 0.3) -> np.ndarray:
    """Local embeddings that are not unit vectors and not centred (as an imported head's are)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(e, h, w)) + offset).astype(np.float32)


def _brute_pair_terms(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``P_ij = A_i.B_j / (N M |a| |b|)`` one pair of locations at a time, in float64."""
    A = A.reshape(A.shape[0], -1).astype(np.float64)
    B = B.reshape(B.shape[0], -1).astype(np.float64)
    a, b = A.mean(1), B.mean(1)
    n, m = A.shape[1], B.shape[1]
    P = np.empty((n, m))
    for i in range(n):
        for j in range(m):
            P[i, j] = float(np.dot(A[:, i], B[:, j])) / (n * m * np.linalg.norm(a) * np.linalg.norm(b))
    return P


def _torch_cosine(A: np.ndarray, B: np.ndarray) -> float:
    a = torch.from_numpy(A).double().mean(dim=(1, 2))
    b = torch.from_numpy(B).double().mean(dim=(1, 2))
    return float(F.cosine_similarity(a, b, dim=0))


@pytest.mark.parametrize("shapes", [((4, 3), (4, 3)), ((5, 2), (3, 3))])
def test_contributions_and_pair_terms_equal_brute_force_and_add_up_to_the_cosine(shapes):
    A, B = _local(1, h=shapes[0][0], w=shapes[0][1]), _local(2, h=shapes[1][0], w=shapes[1][1])
    corr = global_correspondence(A, B)
    P = _brute_pair_terms(A, B)
    cosine = _torch_cosine(A, B)
    assert corr.method == "global"
    assert corr.logit == pytest.approx(cosine, abs=1e-6)
    assert P.sum() == pytest.approx(cosine, abs=1e-9)
    # each side's own contributions are the rows / columns of the pair terms, halved
    np.testing.assert_allclose(2 * corr.probe_contribution.ravel(), P.sum(1), atol=1e-6)
    np.testing.assert_allclose(2 * corr.gallery_contribution.ravel(), P.sum(0), atol=1e-6)
    total = (corr.probe_contribution.sum(dtype=np.float64)
             + corr.gallery_contribution.sum(dtype=np.float64) + corr.bias)
    assert total == pytest.approx(cosine, abs=1e-5)
    assert corr.probe_contribution.shape == shapes[0] and corr.gallery_contribution.shape == shapes[1]
    # lines: the largest pair term of each location; heatmaps: the cosine of that match
    np.testing.assert_array_equal(corr.probe_to_gallery, P.argmax(1))
    np.testing.assert_array_equal(corr.gallery_to_probe, P.argmax(0))
    Af, Bf = A.reshape(A.shape[0], -1).astype(np.float64), B.reshape(B.shape[0], -1).astype(np.float64)
    for i, j in enumerate(P.argmax(1)):
        cos = Af[:, i] @ Bf[:, j] / np.linalg.norm(Af[:, i]) / np.linalg.norm(Bf[:, j])
        assert corr.probe_heatmap.ravel()[i] == pytest.approx(cos, abs=1e-6)
    # no head: the relative split is the contribution itself
    np.testing.assert_array_equal(corr.relative_contribution("probe"), corr.probe_contribution)
    assert corr.relative_bias == corr.bias == 0.0


def test_a_batchnorm_neck_folds_into_the_local_embeddings():
    """fast-reid's BN neck: embedding = BN(pooled). Per location ``k A_i + m`` averages to it."""
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(6).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    k = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    m = (bn.bias.double() - bn.running_mean.double() * torch.from_numpy(k)).detach().numpy()
    A, B = _local(3), _local(4)
    fold = lambda X: k[:, None, None] * X.astype(np.float64) + m[:, None, None]  # noqa: E731
    corr = global_correspondence(fold(A), fold(B))
    with torch.no_grad():
        ea, eb = (bn(torch.from_numpy(X).mean(dim=(1, 2))[None].float()).double()[0] for X in (A, B))
    cosine = float(F.cosine_similarity(ea, eb, dim=0))
    assert corr.logit == pytest.approx(cosine, abs=1e-5)
    total = corr.probe_contribution.sum(dtype=np.float64) + corr.gallery_contribution.sum(dtype=np.float64)
    assert total == pytest.approx(cosine, abs=1e-5)


def test_a_linear_batchnorm_relu_head_is_exact_given_each_images_relu_mask():
    """OSNet's head: embedding = ReLU(BN(W pooled + c)); with the mask of each image's own
    pre-activation applied to every location (bias spread evenly) the split is exact."""
    torch.manual_seed(1)
    lin, bn = nn.Linear(6, 5), nn.BatchNorm1d(5).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.2, 2)
    k = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double()
    Wd, cd = lin.weight.detach().double(), lin.bias.detach().double()
    mb = bn.bias.detach().double() - bn.running_mean.double() * k

    def head(X):
        with torch.no_grad():
            return torch.relu(bn(lin(torch.from_numpy(X).float().mean(dim=(1, 2))[None])))[0].double()

    def local(X):
        U = torch.from_numpy(X).double().reshape(X.shape[0], -1)              # [6, N]
        pre = k[:, None] * (Wd @ U + cd[:, None]) + mb[:, None]               # affine per location
        mask = (pre.mean(1) > 0).double()                                     # the pooled one's ReLU
        return (mask[:, None] * pre).reshape(5, *X.shape[1:]).numpy()

    A, B = _local(5), _local(6)
    assert (head(A) == 0).any(), "the case must exercise the ReLU"
    corr = global_correspondence(local(A), local(B))
    cosine = float(F.cosine_similarity(head(A), head(B), dim=0))
    assert corr.logit == pytest.approx(cosine, abs=1e-5)
    total = corr.probe_contribution.sum(dtype=np.float64) + corr.gallery_contribution.sum(dtype=np.float64)
    assert total == pytest.approx(cosine, abs=1e-5)


def test_bad_input_is_refused_with_one_line():
    with pytest.raises(ValueError, match=r"\[E, h, w\]"):
        global_correspondence(np.zeros((3, 4)), _local(1))
    with pytest.raises(ValueError, match="differ in size"):
        global_correspondence(_local(1, e=5), _local(2, e=6))
    with pytest.raises(ValueError, match="zero"):
        global_correspondence(np.zeros((6, 4, 3)), _local(2))


def test_the_baseline_split_equals_its_scoring_path():
    """ReIDModel(method="global"): correspondences' score is score()'s cosine of pooled maps."""
    from engine.models.config import ModelConfig
    from engine.models.reid import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet18", neck=8, height=64, width=32, pretrained="none")
    model = build_model(dataclasses.replace(cfg, method="global")).eval()
    assert model.has_correspondences
    with torch.no_grad():
        maps = model.features(torch.rand(3, 3, 64, 32))
    half = maps.numpy().astype(np.float16)                  # as the feature store keeps them
    scores = model.score(half, half, device="cpu")
    for i, j in ((0, 1), (2, 0), (1, 1)):
        corr = model.correspondences(half[i], half[j])
        assert corr.logit == pytest.approx(float(scores[i, j]), abs=1e-5)
        total = corr.probe_contribution.sum(dtype=np.float64) + corr.gallery_contribution.sum(dtype=np.float64)
        assert total == pytest.approx(float(scores[i, j]), abs=1e-5)
