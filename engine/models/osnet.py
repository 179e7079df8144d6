"""OSNet trunks (Zhou et al., ICCV 2019; OSNet-AIN, TPAMI 2021) with torchreid's parameter names.

Written from the published architecture so that checkpoints of KaiyangZhou/deep-person-reid
(torchreid) load by a prefix change: every parameter and buffer here has the name torchreid's
``OSNet`` gives it (``conv1.conv.weight``, ``conv2.0.conv2b.1.bn.running_var``, ...), without
the ``fc`` head and the ``classifier`` (:class:`engine.models.global_model.GlobalModel` holds the
head). The trunk ends at ``conv5``: feature maps ``[B, C, H/16, W/16]`` before pooling.

The network, stride 16 in all:

- stem ``conv1`` (7x7 stride 2 + BatchNorm, InstanceNorm for AIN, + ReLU), ``maxpool`` 3x3 stride 2;
- three stages of two omni-scale blocks each (``conv2``, ``conv3``, ``conv4``), the first two
  followed by a transition (1x1 conv + BN + ReLU, 2x2 average pooling): inside the stage's
  ``Sequential`` as its last item for OSNet, as separate ``pool2`` / ``pool3`` for OSNet-AIN;
- ``conv5``: 1x1 conv + BN + ReLU.

An omni-scale block: a 1x1 reduction to a quarter of the output channels, four streams of one to
four "light" 3x3 convolutions (1x1 then depthwise 3x3, BN, ReLU), each stream scaled by one shared
channel gate (global pooling, two 1x1 convolutions, sigmoid), the sum expanded by a 1x1 conv + BN,
added to the (projected) input, ReLU. OSNet-AIN's ``IN`` blocks replace that last BN with an
affine InstanceNorm inside the residual branch. OSNet names the streams ``conv2a`` (a light
conv), ``conv2b`` .. ``conv2d`` (``Sequential`` of 2..4); OSNet-AIN ``conv2.<t>.layers.<k>``.
"""
from __future__ import annotations

from torch import nn

__all__ = ["OSNetTrunk", "build_osnet_trunk", "osnet_arch"]

# arch (engine.models.config.OSNET_ARCHS) -> channels after the stem and after each stage
_WIDTHS = {
    "osnet_x1_0": (64, 256, 384, 512),
    "osnet_x0_75": (48, 192, 288, 384),
    "osnet_x0_5": (32, 128, 192, 256),
    "osnet_x0_25": (16, 64, 96, 128),
    "osnet_ain_x1_0": (64, 256, 384, 512),
}
# OSNet-AIN: which blocks of conv2, conv3, conv4 carry the InstanceNorm (the published layout)
_AIN_BLOCKS = ((True, True), (False, True), (True, False))
_BLOCKS_PER_STAGE = 2
_STREAMS = 4                  # omni-scale streams of 1..4 light convolutions
_BOTTLENECK = 4               # a block's inner width is out_channels // 4
_GATE_REDUCTION = 16


def osnet_arch(stem_channels: int, ain: bool) -> str | None:
    """The arch whose stem has ``stem_channels`` outputs (``None`` when there is none)."""
    for name, widths in _WIDTHS.items():
        if widths[0] == stem_channels and name.startswith("osnet_ain") == ain:
            return name
    return None


class _ConvNorm(nn.Sequential):
    """Convolution (no bias), then a norm (``"bn"``, affine ``"in"`` or none), then ReLU if asked;
    torchreid's ``ConvLayer``, ``Conv1x1`` and ``Conv1x1Linear`` (names ``conv``, ``bn``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 norm: str | None = "bn", relu: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride,
                              padding=kernel_size // 2, bias=False)
        if norm == "bn":
            self.bn = nn.BatchNorm2d(out_channels)
        elif norm == "in":
            self.bn = nn.InstanceNorm2d(out_channels, affine=True)
        if relu:
            self.relu = nn.ReLU(inplace=True)


class _LightConv(nn.Sequential):
    """1x1 convolution, depthwise 3x3 convolution, BN, ReLU (names ``conv1``, ``conv2``, ``bn``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)


class _AINStream(nn.Module):
    """OSNet-AIN's stream: ``depth`` light convolutions under the name ``layers``."""

    def __init__(self, channels: int, depth: int):
        super().__init__()
        self.layers = nn.Sequential(*(_LightConv(channels) for _ in range(depth)))

    def forward(self, x):
        return self.layers(x)


class _ChannelGate(nn.Module):
    """Per-channel weights in (0, 1) from the globally pooled input; ``x * gate(x)``."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = channels // _GATE_REDUCTION
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x):
        g = x.mean(dim=(2, 3), keepdim=True)                               # [B, C, 1, 1]
        g = self.fc2(self.fc1(g).relu()).sigmoid()
        return x * g


class _OmniScaleBlock(nn.Module):
    """One omni-scale residual block; ``ain`` picks OSNet-AIN's stream names, ``instance_norm``
    its InstanceNorm block (the expansion without BN, then affine IN)."""

    def __init__(self, in_channels: int, out_channels: int, *, ain: bool = False,
                 instance_norm: bool = False):
        super().__init__()
        mid = out_channels // _BOTTLENECK
        self.conv1 = _ConvNorm(in_channels, mid)
        if ain:
            self.conv2 = nn.ModuleList(_AINStream(mid, t) for t in range(1, _STREAMS + 1))
            self.streams = list(self.conv2)
        else:
            self.conv2a = _LightConv(mid)
            self.conv2b = nn.Sequential(*(_LightConv(mid) for _ in range(2)))
            self.conv2c = nn.Sequential(*(_LightConv(mid) for _ in range(3)))
            self.conv2d = nn.Sequential(*(_LightConv(mid) for _ in range(4)))
            self.streams = [self.conv2a, self.conv2b, self.conv2c, self.conv2d]
        self.gate = _ChannelGate(mid)
        self.conv3 = _ConvNorm(mid, out_channels, norm=None if instance_norm else "bn", relu=False)
        self.downsample = (_ConvNorm(in_channels, out_channels, relu=False)
                           if in_channels != out_channels else None)
        self.IN = nn.InstanceNorm2d(out_channels, affine=True) if instance_norm else None

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = sum(self.gate(stream(x1)) for stream in self.streams)
        x3 = self.conv3(x2)
        if self.IN is not None:
            x3 = self.IN(x3)
        identity = x if self.downsample is None else self.downsample(x)
        return (x3 + identity).relu()


def _transition(channels: int) -> nn.Sequential:
    """1x1 conv + BN + ReLU, then 2x2 average pooling (halves the map)."""
    return nn.Sequential(_ConvNorm(channels, channels), nn.AvgPool2d(2, stride=2))


class OSNetTrunk(nn.Module):
    """OSNet up to ``conv5``: images ``[B, 3, H, W]`` -> maps ``[B, C, H/16, W/16]``.

    Parameters
    ----------
    arch
        One of ``engine.models.config.OSNET_ARCHS``.
    """

    def __init__(self, arch: str):
        super().__init__()
        if arch not in _WIDTHS:
            raise ValueError(f"arch must be one of {', '.join(_WIDTHS)}; got {arch!r}")
        c0, c1, c2, c3 = _WIDTHS[arch]
        ain = arch.startswith("osnet_ain")
        self.arch = arch
        self.channels = c3
        self.conv1 = _ConvNorm(3, c0, 7, stride=2, norm="in" if ain else "bn")
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        stages = []
        for i, (cin, cout) in enumerate(((c0, c1), (c1, c2), (c2, c3))):
            norms = _AIN_BLOCKS[i] if ain else (False,) * _BLOCKS_PER_STAGE
            blocks = [_OmniScaleBlock(cin if k == 0 else cout, cout, ain=ain, instance_norm=n)
                      for k, n in enumerate(norms)]
            if not ain and i < 2:
                blocks.append(_transition(cout))
            stages.append(nn.Sequential(*blocks))
        self.conv2 = stages[0]
        self.pool2 = _transition(c1) if ain else None
        self.conv3 = stages[1]
        self.pool3 = _transition(c2) if ain else None
        self.conv4 = stages[2]
        self.conv5 = _ConvNorm(c3, c3)

    def forward(self, x):
        x = self.maxpool(self.conv1(x))                                    # [B, c0, H/4, W/4]
        x = self.conv2(x)
        if self.pool2 is not None:
            x = self.pool2(x)                                              # [B, c1, H/8, W/8]
        x = self.conv3(x)
        if self.pool3 is not None:
            x = self.pool3(x)                                              # [B, c2, H/16, W/16]
        return self.conv5(self.conv4(x))                                   # [B, c3, H/16, W/16]


def build_osnet_trunk(arch: str) -> tuple[OSNetTrunk, int]:
    """The OSNet trunk ``arch`` (randomly initialised) and its output channels."""
    trunk = OSNetTrunk(arch)
    return trunk, trunk.channels
