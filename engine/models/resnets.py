"""ResNet trunks: torchvision's ResNets, IBN-Net's a and b variants, fast-reid's stem.

One builder, :func:`build_resnet_trunk`, makes every ResNet the tool runs: the stem and the
stages up to ``config.layer`` as an ``nn.Sequential`` whose names are torchvision's (``conv1``,
``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), so torchvision's ImageNet files, this
tool's checkpoints (``backbone.body.*``) and other projects' files map onto it by name.

The variants differ only in where normalisation sits (docs/arithmetic.md section 1):

- IBN-a (``resnet*_ibn_a``): in every block of layer1..layer3 the first BatchNorm is split,
  its first ``planes // 2`` channels normalised per image (``InstanceNorm2d``, affine) and the
  rest by a BatchNorm; the module is ``bn1.IN`` / ``bn1.BN`` (IBN-Net's and fast-reid's names).
- IBN-b (``resnet*_ibn_b``): the stem's ``bn1`` is an ``InstanceNorm2d`` (affine), and the last
  block of layer1 and layer2 normalises its output per image after the residual sum (``IN``).
- fast-reid's stem (``config.source == "fastreid"``): the 3x3 stride-2 max-pool has no padding
  and rounds up (``ceil_mode``), where torchvision pads by one; the map size is the same for
  even sizes, the window positions are not.

``config.last_stride`` is the stride of the last stage kept (1 keeps layer4 at stride 16, as
fast-reid's BoT does). Stride sits on the 3x3 convolution of a bottleneck (torchvision's v1.5),
as in all three projects.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from engine.models.config import ModelConfig

__all__ = ["IBN", "BasicBlock", "Bottleneck", "build_resnet_trunk", "resnet_layout"]

# depth -> (bottleneck?, blocks per stage)
_LAYOUTS = {
    18: (False, (2, 2, 2, 2)),
    34: (False, (3, 4, 6, 3)),
    50: (True, (3, 4, 6, 3)),
    101: (True, (3, 4, 23, 3)),
    152: (True, (3, 8, 36, 3)),
}


def resnet_layout(depth: int) -> tuple[bool, tuple[int, int, int, int]]:
    """``(bottleneck blocks?, blocks per stage)`` of a ResNet of ``depth``."""
    if depth not in _LAYOUTS:
        raise ValueError(f"ResNet depth must be one of {sorted(_LAYOUTS)}; got {depth!r}")
    return _LAYOUTS[depth]


class IBN(nn.Module):
    """Instance-batch normalisation: the first ``planes // 2`` channels per image (``IN``),
    the others with batch statistics (``BN``)."""

    def __init__(self, planes: int):
        super().__init__()
        self.half = planes // 2
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(planes - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first, rest = x[:, :self.half].contiguous(), x[:, self.half:].contiguous()
        return torch.cat((self.IN(first), self.BN(rest)), dim=1)


def _norm(planes: int, ibn_a: bool) -> nn.Module:
    return IBN(planes) if ibn_a else nn.BatchNorm2d(planes)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a residual (ResNet-18/34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, ibn: str | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = _norm(planes, ibn == "a")
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.IN = nn.InstanceNorm2d(planes, affine=True) if ibn == "b" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + (x if self.downsample is None else self.downsample(x))
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1, 3x3 (strided), 1x1 convolutions and a residual (ResNet-50 and deeper)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, ibn: str | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _norm(planes, ibn == "a")
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.IN = nn.InstanceNorm2d(planes * 4, affine=True) if ibn == "b" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + (x if self.downsample is None else self.downsample(x))
        if self.IN is not None:
            out = self.IN(out)
        return self.relu(out)


def _stage(block, inplanes: int, planes: int, blocks: int, stride: int,
           ibn: str | None) -> nn.Sequential:
    """One stage; ``ibn`` is the stage's IBN-Net setting ("a", "b" or None)."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes * block.expansion, 1, stride, bias=False),
            nn.BatchNorm2d(planes * block.expansion))
    layers = []
    for i in range(blocks):
        # IBN-a: every block; IBN-b: the stage's last block only
        kind = ibn if ibn == "a" or (ibn == "b" and i == blocks - 1) else None
        layers.append(block(inplanes if i == 0 else planes * block.expansion, planes,
                            stride if i == 0 else 1, downsample if i == 0 else None, kind))
    return nn.Sequential(*layers)


def build_resnet_trunk(config: ModelConfig) -> tuple[nn.Sequential, int]:
    """The ResNet trunk of ``config``: stem and stages up to ``config.layer``, randomly
    initialised (torchvision's initialisation).

    Returns
    -------
    (trunk, channels)
        ``trunk`` maps images ``[B, 3, H, W]`` to ``[B, channels, H/s, W/s]``,
        ``s = config.stride``; its parameter names are torchvision's.
    """
    if config.is_osnet:
        raise ValueError(f"{config.arch} is not a ResNet")
    bottleneck, counts = resnet_layout(config.depth)
    block = Bottleneck if bottleneck else BasicBlock
    ibn = config.ibn
    stage_ibn = {"a": ("a", "a", "a", None), "b": ("b", "b", None, None)}.get(ibn, (None,) * 4)
    stem_norm = nn.InstanceNorm2d(64, affine=True) if ibn == "b" else nn.BatchNorm2d(64)
    if config.source == "fastreid":
        pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    else:
        pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
    modules: list[tuple[str, nn.Module]] = [
        ("conv1", nn.Conv2d(3, 64, 7, 2, 3, bias=False)), ("bn1", stem_norm),
        ("relu", nn.ReLU(inplace=True)), ("maxpool", pool)]
    inplanes = 64
    for index in range(config.layer):
        planes = 64 * 2 ** index
        stride = 1 if index == 0 else (config.last_stride if index + 1 == config.layer else 2)
        modules.append((f"layer{index + 1}",
                        _stage(block, inplanes, planes, counts[index], stride, stage_ibn[index])))
        inplanes = planes * block.expansion
    trunk = nn.Sequential(OrderedDict(modules))
    for m in trunk.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return trunk, inplanes
