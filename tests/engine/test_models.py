"""The model protocol and the loader registry: what every model offers, one load_model for every format."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from engine.checkpoint import CheckpointError, save_checkpoint
from engine.models import (
    ModelConfig,
    Preprocessing,
    ReIDModel,
    ReIDModelProtocol,
    build_model,
    load_model,
    preprocess,
)
from engine.models import loading as loading_module

TINY = ModelConfig(arch="resnet18", neck=16, height=64, width=32, pretrained="none")


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (80 + 8 * i, 40, 3), dtype=np.uint8) for i in range(n)]


@pytest.mark.parametrize("method", ["qaconv", "global"])
def test_reid_model_implements_the_protocol(method):
    torch.manual_seed(0)
    model = build_model(ModelConfig(**{**TINY.to_dict(), "method": method})).eval()
    assert isinstance(model, ReIDModelProtocol)
    assert model.method == method and model.preprocessing == Preprocessing(64, 32)
    with torch.no_grad():
        maps = model.features(preprocess(_images(3), model.preprocessing))
    assert maps.shape == (3, 16, *model.preprocessing.feature_size) == (3, 16, 4, 2)
    scores = model.score(maps, maps, device="cpu")
    assert scores.shape == (3, 3) and scores.dtype == np.float32
    assert model.has_correspondences  # both split their score exactly (docs/arithmetic.md 2.7, 2.9)
    corr = model.correspondences(maps[0], maps[1])
    assert corr.method == method
    assert corr.logit == pytest.approx(float(scores[0, 1]), abs=1e-4)
    if method == "global":
        np.testing.assert_allclose(np.diag(scores), 1.0, atol=1e-5)  # cosine of an image with itself


def test_one_rule_gives_the_feature_map_size():
    cfg = ModelConfig(height=384, width=128, pretrained="none")
    assert cfg.feature_size == cfg.preprocessing.feature_size == (24, 8)
    assert Preprocessing(256, 128).feature_size == (16, 8)
    assert Preprocessing(64, 32, imagenet_norm=True).mean != Preprocessing(64, 32).mean


def test_load_model_rebuilds_this_tools_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY)
    save_checkpoint(tmp_path / "m.pt", {"config": TINY.to_dict(), "model": model.state_dict()})
    loaded = load_model(tmp_path / "m.pt")
    assert isinstance(loaded, ReIDModel) and not loaded.training
    assert loaded.config.pretrained == "none"  # the checkpoint holds every weight
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


class _Embedder(nn.Module):
    """A stand-in for another project's global model (embeddings, no maps)."""

    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(3, dim)


def test_a_registered_format_is_detected_and_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(loading_module, "FORMATS", dict(loading_module.FORMATS))
    seen = []

    def load(state, path):
        seen.append(path)
        module = _Embedder(state["state_dict"]["fc.weight"].shape[0])
        module.load_state_dict(state["state_dict"])
        return module

    loading_module.register_format("other", lambda state: "state_dict" in state, load)
    weights = _Embedder(5).state_dict()
    torch.save({"state_dict": weights, "epoch": 3}, tmp_path / "other.pth")
    model = load_model(tmp_path / "other.pth")
    assert isinstance(model, _Embedder) and not model.training and seen == [tmp_path / "other.pth"]
    assert torch.equal(model.fc.weight, weights["fc.weight"])
    # Asking for a format explicitly skips detection; this tool's loader says what is missing.
    with pytest.raises(CheckpointError, match="model settings"):
        load_model(tmp_path / "other.pth", format="reid-inspector")


def test_an_unknown_file_names_the_formats_tried(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match=r"holds: weights; formats tried: reid-inspector"):
        load_model(tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match="unknown checkpoint format 'nope'"):
        load_model(tmp_path / "unknown.pt", format="nope")
