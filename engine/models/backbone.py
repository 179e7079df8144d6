"""Backbone: a torchvision ResNet cut after a stage, a 3x3 neck, unit-norm local features.

docs/arithmetic.md section 1. ``build_backbone`` is the public factory; ``_resnet_backbone`` the one
private builder it calls (torchvision's ``resnet.py`` pattern): a depth, the last stage kept
and the neck width, not a class per variant. The backbone returns feature maps only; the
QAConv matcher, the global baseline and the viewer each take the maps from there.

Pretrained weights are never downloaded: ``"auto"`` looks for torchvision's ImageNet file in
the torch hub cache (where an earlier ``torchvision`` download would have left it), a path
is loaded as data (``weights_only=True``), and without weights the model starts from random
initialisation after one clear warning.
"""
from __future__ import annotations

import logging
import os
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.models.config import ModelConfig, Preprocessing

__all__ = [
    "FeatureMapBackbone",
    "build_backbone",
    "cached_imagenet_weights",
    "freeze_backbone_bn",
    "preprocess",
    "stage_channels",
]

log = logging.getLogger(__name__)

# depth -> (block, blocks per stage, torchvision's ImageNet weight enum), by name: torchvision
# is imported only when a backbone is built (it costs seconds at start-up, e.g. the viewer's).
_RESNETS = {
    18: ("BasicBlock", (2, 2, 2, 2), "ResNet18_Weights"),
    34: ("BasicBlock", (3, 4, 6, 3), "ResNet34_Weights"),
    50: ("Bottleneck", (3, 4, 6, 3), "ResNet50_Weights"),
    101: ("Bottleneck", (3, 4, 23, 3), "ResNet101_Weights"),
    152: ("Bottleneck", (3, 8, 36, 3), "ResNet152_Weights"),
}


def _tv_resnet():
    from torchvision.models import resnet

    return resnet
_STAGES = ("layer1", "layer2", "layer3", "layer4")
_STEM = ("conv1", "bn1", "relu", "maxpool")

# One warning per (depth, reason) per process: the message matters once, not per model built.
_warned: set[tuple[int, str]] = set()


def stage_channels(depth: int, last_stage: str = "layer3") -> int:
    """Output channels of ``last_stage`` for a ResNet of ``depth`` (256 for 18/34 at layer3)."""
    block, _, _ = _check_depth_stage(depth, last_stage)
    return 64 * 2 ** _STAGES.index(last_stage) * block.expansion


def _check_depth_stage(depth: int, last_stage: str):
    if depth not in _RESNETS:
        raise ValueError(f"depth must be one of {sorted(_RESNETS)}; got {depth!r}")
    if last_stage not in _STAGES:
        raise ValueError(f"last_stage must be one of {', '.join(_STAGES)}; got {last_stage!r}")
    block, layers, weights = _RESNETS[depth]
    tv = _tv_resnet()
    return getattr(tv, block), layers, getattr(tv, weights)


class FeatureMapBackbone(nn.Module):
    """ResNet trunk + neck + per-location L2 normalisation.

    Parameters
    ----------
    body
        The ResNet stem and stages, run in order (``conv1`` ... ``layer3``).
    in_channels
        Channels that ``body`` outputs.
    neck_channels
        ``D``, the channels of the returned maps.
    """

    def __init__(self, body: nn.Sequential, in_channels: int, neck_channels: int):
        super().__init__()
        self.body = body
        self.neck = nn.Conv2d(in_channels, neck_channels, kernel_size=3, padding=1, bias=True)
        self.out_channels = neck_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` -> unit-norm feature maps ``[B, D, H/16, W/16]``."""
        maps = self.neck(self.body(images))   # [B, D, h, w]
        return F.normalize(maps, p=2.0, dim=1)


def cached_imagenet_weights(depth: int) -> Path | None:
    """Path of torchvision's ImageNet weights for ``depth`` if they are in the hub cache.

    Looks at ``<torch.hub.get_dir()>/checkpoints/<file name of the weight URL>``, which is
    where torchvision stores a download. Prefers ``IMAGENET1K_V1`` (the weights the
    published method used), then newer versions. Never downloads anything.
    """
    _, _, weight_enum = _check_depth_stage(depth, "layer3")
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


def _load_trunk_weights(resnet: nn.Module, keep: Sequence[str], state: dict,
                        source: str) -> None:
    """Copy the weights of the kept modules; everything they need must be present and fit."""
    own = {k: v for k, v in resnet.state_dict().items() if k.split(".")[0] in keep}
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
    resnet.load_state_dict({k: state[k] for k in own}, strict=False)


def _warn_random_init(depth: int, reason: str) -> None:
    if (depth, reason) in _warned:
        return
    _warned.add((depth, reason))
    message = (f"ResNet-{depth}: {reason}; the backbone starts from RANDOM initialisation. "
               "ImageNet weights help a lot on real data: put torchvision's file in "
               f"{Path(torch.hub.get_dir()) / 'checkpoints'} or pass a weights path.")
    log.warning(message)
    warnings.warn(message, UserWarning, stacklevel=3)


def _resnet_backbone(depth: int, last_stage: str, neck_channels: int,
                     pretrained: str | os.PathLike) -> FeatureMapBackbone:
    """The one builder behind :func:`build_backbone` (see there)."""
    block, layers, _ = _check_depth_stage(depth, last_stage)
    if not isinstance(neck_channels, int) or neck_channels < 1:
        raise ValueError(f"neck_channels must be a positive integer; got {neck_channels!r}")
    resnet = _tv_resnet().ResNet(block, list(layers))
    keep = _STEM + _STAGES[: _STAGES.index(last_stage) + 1]

    pretrained = str(pretrained)
    if pretrained == "auto":
        path = cached_imagenet_weights(depth)
        if path is None:
            _warn_random_init(depth, "no ImageNet weights in the torch hub cache (nothing is downloaded)")
        else:
            _load_trunk_weights(resnet, keep, _read_resnet_state(path), str(path))
            log.info("ResNet-%d: ImageNet weights loaded from %s", depth, path)
    elif pretrained == "none":
        log.debug("ResNet-%d: random initialisation (pretrained='none')", depth)
    else:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file {path} does not exist "
                                    "(pretrained must be 'auto', 'none' or a path)")
        _load_trunk_weights(resnet, keep, _read_resnet_state(path), str(path))
        log.info("ResNet-%d: weights loaded from %s", depth, path)

    body = nn.Sequential(OrderedDict((name, getattr(resnet, name)) for name in keep))
    return FeatureMapBackbone(body, stage_channels(depth, last_stage), neck_channels)


def build_backbone(config: ModelConfig | None = None, *, depth: int | None = None,
                   last_stage: str = "layer3", neck_channels: int | None = None,
                   pretrained: str | os.PathLike | None = None) -> FeatureMapBackbone:
    """Build the feature-map backbone of docs/arithmetic.md section 1.

    Parameters
    ----------
    config
        Model settings; supplies ``depth``, ``neck_channels`` and ``pretrained`` unless they
        are given explicitly.
    depth
        ResNet depth: 18, 34, 50, 101 or 152.
    last_stage
        Last ResNet stage kept; the method uses ``"layer3"`` (stride 16).
    neck_channels
        ``D``, channels of the returned maps (default 128).
    pretrained
        ``"auto"``, ``"none"`` or a path (see :class:`ModelConfig`).

    Returns
    -------
    FeatureMapBackbone
        ``images [B, 3, H, W]`` -> unit-norm maps ``[B, D, H/16, W/16]``.
    """
    if config is not None:
        depth = config.depth if depth is None else depth
        neck_channels = config.neck if neck_channels is None else neck_channels
        pretrained = config.pretrained if pretrained is None else pretrained
    return _resnet_backbone(50 if depth is None else depth, last_stage,
                            128 if neck_channels is None else neck_channels,
                            "auto" if pretrained is None else pretrained)


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
