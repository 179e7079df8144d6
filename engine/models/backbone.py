"""Backbone: a ResNet trunk cut after a stage, a 3x3 neck, unit-norm local features.

docs/arithmetic.md section 1. ``build_backbone`` is the public factory; the trunk comes from the
one ResNet builder, :func:`engine.models.resnets.build_resnet_trunk` (depth, IBN variant, last
stage kept, its stride, stem), with torchvision's parameter names. The backbone returns
feature maps only; the QAConv matcher, the global baseline and the viewer each take the maps
from there.

Pretrained weights are never downloaded: ``"auto"`` looks for torchvision's ImageNet file in
the torch hub cache (where an earlier ``torchvision`` download would have left it), a path
is loaded as data (``weights_only=True``), and without weights the model starts from random
initialisation after one clear warning.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.models.config import ModelConfig, Preprocessing, trunk_channels
from engine.models.resnets import build_resnet_trunk

__all__ = [
    "FeatureMapBackbone",
    "build_backbone",
    "cached_imagenet_weights",
    "freeze_backbone_bn",
    "preprocess",
    "stage_channels",
]

log = logging.getLogger(__name__)

# depth -> torchvision's ImageNet weight enum, by name: torchvision is imported only when its
# file names are looked up (it costs seconds at start-up, e.g. the viewer's).
_TV_WEIGHTS = {18: "ResNet18_Weights", 34: "ResNet34_Weights", 50: "ResNet50_Weights",
               101: "ResNet101_Weights", 152: "ResNet152_Weights"}
_STAGES = ("layer1", "layer2", "layer3", "layer4")

# One warning per (depth, reason) per process: the message matters once, not per model built.
_warned: set[tuple[int, str]] = set()


def stage_channels(depth: int, last_stage: str = "layer3") -> int:
    """Output channels of ``last_stage`` for a ResNet of ``depth`` (256 for 18/34 at layer3)."""
    _check_depth_stage(depth, last_stage)
    return trunk_channels(f"resnet{depth}", _STAGES.index(last_stage) + 1)


def _check_depth_stage(depth: int, last_stage: str) -> None:
    if depth not in _TV_WEIGHTS:
        raise ValueError(f"depth must be one of {sorted(_TV_WEIGHTS)}; got {depth!r}")
    if last_stage not in _STAGES[1:]:
        raise ValueError(f"last_stage must be one of {', '.join(_STAGES[1:])}; got {last_stage!r}")


class FeatureMapBackbone(nn.Module):
    """ResNet trunk + neck + per-location L2 normalisation.

    Parameters
    ----------
    body
        The ResNet stem and stages, run in order (``conv1`` ... ``layer3``).
    in_channels
        Channels that ``body`` outputs.
    neck_channels
        ``D``, the channels of the returned maps; 0: no neck (the body's own channels, as the
        authors' QAConv allows).
    """

    def __init__(self, body: nn.Sequential, in_channels: int, neck_channels: int):
        super().__init__()
        self.body = body
        if neck_channels:
            self.neck = nn.Conv2d(in_channels, neck_channels, kernel_size=3, padding=1, bias=True)
        else:
            self.neck = nn.Identity()
        self.out_channels = neck_channels or in_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` -> unit-norm feature maps ``[B, D, H/s, W/s]``."""
        maps = self.neck(self.body(images))   # [B, D, h, w]
        return F.normalize(maps, p=2.0, dim=1)


def cached_imagenet_weights(depth: int) -> Path | None:
    """Path of torchvision's ImageNet weights for ``depth`` if they are in the hub cache.

    Looks at ``<torch.hub.get_dir()>/checkpoints/<file name of the weight URL>``, which is
    where torchvision stores a download. Prefers ``IMAGENET1K_V1`` (the weights the
    published method used), then newer versions. Never downloads anything.
    """
    _check_depth_stage(depth, "layer3")
    from torchvision.models import resnet as tv_resnet

    weight_enum = getattr(tv_resnet, _TV_WEIGHTS[depth])
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in weight_enum:  # enum order: V1 first
        candidate = folder / os.path.basename(weights.url)
        if candidate.is_file():
            return candidate
    return None


def _read_resnet_state(path: Path) -> dict[str, torch.Tensor]:
    """A ResNet state dict from a file, as data only; unwraps ``{"state_dict": ...}`` and
    ``{"model": ...}`` and strips a ``module.`` prefix left by DataParallel.

    A checkpoint of this project works too (its trunk is under ``backbone.body.``): that is
    how a model trained here, e.g. the global baseline, initialises another one when no
    ImageNet weights are at hand."""
    from engine.checkpoint import read_tensor_file

    state = read_tensor_file(path, "pretrained weights file")
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a ResNet state dict (a mapping of names to tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if any(k.startswith("backbone.body.") for k in state):
        state = {k.removeprefix("backbone.body."): v for k, v in state.items()
                 if k.startswith("backbone.body.")}
    return state


def _load_trunk_weights(trunk: nn.Module, state: dict, source: str) -> None:
    """Copy the trunk's weights from ``state`` (torchvision's names); everything the trunk
    needs must be present and fit, the rest (deeper stages, ``fc``) is ignored."""
    own = trunk.state_dict()
    missing = sorted(k for k in own if k not in state)
    wrong = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
             for k, v in own.items() if k in state and state[k].shape != v.shape]
    if missing or wrong:
        detail = []
        if wrong:
            detail.append("shapes differ: " + "; ".join(wrong[:5]))
        if missing:
            detail.append("missing: " + ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""))
        raise ValueError(f"the weights in {source} do not fit this ResNet ({' | '.join(detail)})")
    trunk.load_state_dict({k: state[k] for k in own})


def _warn_random_init(depth: int, reason: str) -> None:
    if (depth, reason) in _warned:
        return
    _warned.add((depth, reason))
    message = (f"ResNet-{depth}: {reason}; the backbone starts from RANDOM initialisation. "
               "ImageNet weights help a lot on real data: put torchvision's file in "
               f"{Path(torch.hub.get_dir()) / 'checkpoints'} or pass a weights path.")
    log.warning(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _resnet_backbone(config: ModelConfig) -> FeatureMapBackbone:
    """The one builder behind :func:`build_backbone` (see there)."""
    body, channels = build_resnet_trunk(config)
    depth, pretrained = config.depth, str(config.pretrained)
    if pretrained == "auto":
        path = cached_imagenet_weights(depth) if config.ibn is None else None
        if path is None:
            _warn_random_init(depth, "no ImageNet weights in the torch hub cache (nothing is downloaded)")
        else:
            _load_trunk_weights(body, _read_resnet_state(path), str(path))
            log.info("ResNet-%d: ImageNet weights loaded from %s", depth, path)
    elif pretrained == "none":
        log.debug("ResNet-%d: random initialisation (pretrained='none')", depth)
    else:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file {path} does not exist "
                                    "(pretrained must be 'auto', 'none' or a path)")
        _load_trunk_weights(body, _read_resnet_state(path), str(path))
        log.info("ResNet-%d: weights loaded from %s", depth, path)
    return FeatureMapBackbone(body, channels, config.neck)


def build_backbone(config: ModelConfig | None = None, *, depth: int | None = None,
                   last_stage: str = "layer3", neck_channels: int | None = None,
                   pretrained: str | os.PathLike | None = None) -> FeatureMapBackbone:
    """Build the feature-map backbone of docs/arithmetic.md section 1.

    Parameters
    ----------
    config
        Model settings: the trunk (``arch``, ``layer``, ``last_stride``, ``source``),
        ``neck`` and ``pretrained``; ``depth``, ``neck_channels`` and ``pretrained`` given
        explicitly override them.
    depth
        ResNet depth: 18, 34, 50, 101 or 152.
    last_stage
        Last ResNet stage kept when no ``config`` is given; the method uses ``"layer3"``
        (stride 16).
    neck_channels
        ``D``, channels of the returned maps (default 128).
    pretrained
        ``"auto"``, ``"none"`` or a path (see :class:`ModelConfig`).

    Returns
    -------
    FeatureMapBackbone
        ``images [B, 3, H, W]`` -> unit-norm maps ``[B, D, H/s, W/s]``, ``s = config.stride``.
    """
    if config is None:
        _check_depth_stage(50 if depth is None else depth, last_stage)
        config = ModelConfig(arch=f"resnet{50 if depth is None else depth}",
                             layer=_STAGES.index(last_stage) + 1, pretrained="auto")
    changes = {"arch": None if depth is None else f"resnet{depth}", "neck": neck_channels,
               "pretrained": None if pretrained is None else str(pretrained)}
    config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    return _resnet_backbone(config)


def freeze_backbone_bn(backbone: nn.Module) -> nn.Module:
    """Put every BatchNorm of ``backbone`` in eval mode (frozen running statistics).

    Call it after ``model.train()``, which would switch them back. Pass the backbone only:
    the matcher's BatchNorms must keep training. The affine parameters still learn.
    """
    for module in backbone.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return backbone


def preprocess(images: np.ndarray | Sequence[np.ndarray], prep: Preprocessing) -> torch.Tensor:
    """RGB ``uint8`` images -> model input, as ``prep`` says: bicubic resize, [0, 1], mean / std.

    Parameters
    ----------
    images
        One image ``[h, w, 3]``, a batch ``[N, h, w, 3]`` or a list of images of any sizes,
        ``uint8`` RGB.
    prep
        The model's preprocessing (``ModelConfig.preprocessing``): input size and normalisation.

    Returns
    -------
    torch.Tensor
        ``float32 [N, 3, height, width]``.
    """
    from engine.data.transforms import resize, to_tensor  # the one bicubic resize of the project

    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("preprocess: images is empty")
    batch = []
    for i, image in enumerate(images):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"preprocess: image {i} must be uint8 RGB [h, w, 3]; "
                             f"got {image.dtype} {tuple(image.shape)}")
        batch.append(to_tensor(resize(image, prep.height, prep.width)))   # [3, H, W]
    tensor = torch.stack(batch)                                            # [N, 3, H, W]
    if prep.imagenet_norm:
        mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
        std = torch.tensor(prep.std).view(1, 3, 1, 1)
        tensor = (tensor - mean) / std
    return tensor
