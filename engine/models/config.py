"""The model's settings: one dataclass saved inside every checkpoint (nanoGPT style).

A checkpoint alone rebuilds its model: ``ModelConfig.from_dict(state["config"])`` gives the
architecture, the input size and the method, and the weights fill in the rest.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["ARCHS", "METHODS", "FEATURE_STRIDE", "ModelConfig"]

log = logging.getLogger(__name__)

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
METHODS = ("qaconv", "global")
# The backbone stops after layer3: stem (4) x layer2 (2) x layer3 (2).
FEATURE_STRIDE = 16
# Sane bounds, checked before anything is built: a crafted checkpoint must not make the loader
# allocate gigabytes. The published model uses D = 128 and 384 x 128 inputs.
MAX_NECK = 4096
MAX_SIDE = 2048


@dataclass
class ModelConfig:
    """Settings that decide the model's structure and its input.

    Attributes
    ----------
    arch
        torchvision ResNet depth, one of ``ARCHS``.
    neck
        Channels ``D`` of the neck convolution (the feature maps' depth).
    height, width
        Input image size in pixels; both multiples of 16 (the backbone's stride), so the
        feature map is exactly ``height // 16 x width // 16``.
    pretrained
        ``"auto"`` (torchvision's ImageNet weights if already in the torch hub cache),
        ``"none"`` (random initialisation) or a path to a ResNet state dict.
    imagenet_norm
        Subtract ImageNet mean / divide by std after scaling to [0, 1]. The published method
        does not (SPEC.md section 1), so the default is False.
    method
        ``"qaconv"`` (local matching) or ``"global"`` (pooled embedding + cosine baseline).
    """

    arch: str = "resnet50"
    neck: int = 128
    height: int = 384
    width: int = 128
    pretrained: str = "auto"
    imagenet_norm: bool = False
    method: str = "qaconv"

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}; got {self.arch!r}")
        if not isinstance(self.method, str) or self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if not isinstance(self.neck, int) or not 1 <= self.neck <= MAX_NECK:
            raise ValueError(f"neck (feature channels D) must be an integer in 1..{MAX_NECK}; "
                             f"got {self.neck!r}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if (not isinstance(value, int) or value < FEATURE_STRIDE or value % FEATURE_STRIDE
                    or value > MAX_SIDE):
                raise ValueError(f"{name} must be a positive multiple of {FEATURE_STRIDE} pixels (the "
                                 f"backbone's stride) in {FEATURE_STRIDE}..{MAX_SIDE}; got {value!r}")
        if not isinstance(self.imagenet_norm, bool):
            raise ValueError(f"imagenet_norm must be true or false; got {self.imagenet_norm!r}")
        if not isinstance(self.pretrained, str) or not self.pretrained:
            raise ValueError("pretrained must be 'auto', 'none' or a path to a weights file; "
                             f"got {self.pretrained!r}")

    @property
    def depth(self) -> int:
        """ResNet depth as a number (``"resnet50"`` -> 50)."""
        return int(self.arch.removeprefix("resnet"))

    @property
    def feature_size(self) -> tuple[int, int]:
        """Feature-map size ``(H, W)`` = input size // 16; ``(24, 8)`` for 384 x 128."""
        return self.height // FEATURE_STRIDE, self.width // FEATURE_STRIDE

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """One image's feature map ``(D, H, W)``."""
        return (self.neck, *self.feature_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        """Rebuild from :meth:`to_dict`; keys this version does not know are ignored with a warning."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            log.warning("ignoring unknown model settings %s", ", ".join(unknown))
        return cls(**{k: v for k, v in d.items() if k in names})
