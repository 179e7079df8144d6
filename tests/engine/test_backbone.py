"""Backbone, model settings, preprocessing and the global baseline's pooling."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torchvision.models import resnet as tv_resnet

from engine.models import (
    GlobalClassifier,
    ModelConfig,
    Preprocessing,
    build_backbone,
    freeze_backbone_bn,
    pool_embeddings,
)
from engine.models import backbone as backbone_module
from engine.models.backbone import preprocess, stage_channels


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, and the once-per-process warning re-armed."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(backbone_module, "_warned", set())
    return tmp_path


def test_output_shape_and_unit_norm(empty_hub):
    torch.manual_seed(0)
    with pytest.warns(UserWarning):
        model = build_backbone(depth=18, neck_channels=32, pretrained="auto").eval()
    with torch.no_grad():
        maps = model(torch.rand(2, 3, 64, 32))
    assert maps.shape == (2, 32, 4, 2)
    torch.testing.assert_close(maps.norm(dim=1), torch.ones(2, 4, 2))
    assert model.neck.in_channels == 256 and model.neck.bias is not None
    assert model.neck.kernel_size == (3, 3) and model.neck.padding == (1, 1)
    assert not hasattr(model.body, "layer4") and not hasattr(model.body, "fc")
    assert stage_channels(50) == 1024 and stage_channels(101) == 1024 and stage_channels(34) == 256


def test_config_drives_the_builder():
    cfg = ModelConfig(arch="resnet18", neck=16, height=64, width=32, pretrained="none")
    model = build_backbone(cfg)
    assert model.out_channels == 16 and cfg.feature_size == (4, 2) and cfg.feature_shape == (16, 4, 2)
    assert ModelConfig().feature_size == (24, 8)


def test_missing_weights_warn_once_and_name_the_cache(empty_hub):
    with pytest.warns(UserWarning, match="RANDOM initialisation") as record:
        build_backbone(depth=18, neck_channels=8, pretrained="auto")
    assert str(empty_hub) in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # a second build must stay quiet
        build_backbone(depth=18, neck_channels=8, pretrained="auto")


def test_auto_loads_cached_imagenet_file_without_downloading(empty_hub):
    torch.manual_seed(1)
    reference = tv_resnet.resnet18()
    (empty_hub / "checkpoints").mkdir()
    torch.save(reference.state_dict(), empty_hub / "checkpoints" / "resnet18-f37072fd.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # found weights: no random-init warning
        model = build_backbone(depth=18, neck_channels=8, pretrained="auto")
    torch.testing.assert_close(model.body.conv1.weight, reference.conv1.weight)
    torch.testing.assert_close(model.body.layer3[1].bn2.running_var, reference.layer3[1].bn2.running_var)


def test_weights_from_a_path(tmp_path):
    torch.manual_seed(2)
    reference = tv_resnet.resnet18()
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    model = build_backbone(depth=18, neck_channels=8, pretrained=str(path))
    torch.testing.assert_close(model.body.layer2[0].conv1.weight, reference.layer2[0].conv1.weight)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_backbone(depth=18, pretrained=str(tmp_path / "absent.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"conv1.weight": torch.zeros(3)}, bad)
    with pytest.raises(ValueError, match="do not fit"):
        build_backbone(depth=18, pretrained=str(bad))


def test_freeze_backbone_bn_keeps_running_statistics():
    model = build_backbone(depth=18, neck_channels=8, pretrained="none")
    model.train()
    freeze_backbone_bn(model)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and not any(m.training for m in bns)
    assert model.neck.training and model.body.conv1.training
    before = [m.running_mean.clone() for m in bns]
    model(torch.rand(2, 3, 64, 32)).sum().backward()
    for m, old in zip(bns, before, strict=True):
        torch.testing.assert_close(m.running_mean, old)
    assert model.body.bn1.weight.grad is not None          # affine parameters still learn


def test_preprocess():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (100, 40, 3), dtype=np.uint8),
              rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)]
    x = preprocess(images, Preprocessing(64, 32, imagenet_norm=False))
    assert x.shape == (2, 3, 64, 32) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # An image already at the input size is only scaled: channel order RGB, [0, 1].
    torch.testing.assert_close(x[1], torch.from_numpy(images[1]).permute(2, 0, 1).float() / 255)
    normed = preprocess(images[1], Preprocessing(64, 32, imagenet_norm=True))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    torch.testing.assert_close(normed[0], (x[1] - mean) / std)
    with pytest.raises(ValueError, match="uint8 RGB"):
        preprocess([np.zeros((10, 10), np.uint8)], Preprocessing(64, 32))


def test_model_config_round_trip_and_errors():
    cfg = ModelConfig(arch="resnet34", neck=64, height=256, width=128, pretrained="none",
                      imagenet_norm=True, method="global")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert ModelConfig.from_dict({**cfg.to_dict(), "future_setting": 1}) == cfg
    with pytest.raises(ValueError, match="arch must be one of"):
        ModelConfig(arch="resnet20")
    with pytest.raises(ValueError, match="height must be a positive multiple of 16"):
        ModelConfig(height=100)
    with pytest.raises(ValueError, match="method"):
        ModelConfig(method="svm")


def test_global_baseline_pooling_and_classifier():
    maps = torch.nn.functional.normalize(torch.randn(3, 8, 4, 2), dim=1)
    emb = pool_embeddings(maps)
    expected = maps.mean(dim=(2, 3))
    torch.testing.assert_close(emb, expected / expected.norm(dim=1, keepdim=True))
    clf = GlobalClassifier(8, 5)
    assert clf(maps).shape == (3, 5) and clf(maps.mean(dim=(2, 3))).shape == (3, 5)
    with pytest.raises(ValueError, match="maps must be feature maps"):
        pool_embeddings(torch.zeros(3, 8))
