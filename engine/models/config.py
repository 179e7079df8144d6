"""The model's settings: one dataclass saved inside every checkpoint (nanoGPT style).

A checkpoint alone rebuilds its model: ``ModelConfig.from_dict(state["config"])`` gives the
architecture, the input size and the method, and the weights fill in the rest.
:class:`Preprocessing` is the part of it that turns an image into the model's input, and the
one home of the rule that gives the feature-map size.

No torch here: a warm viewer launch reads these settings without it.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["ARCHS", "METHODS", "FEATURE_STRIDE", "IMAGENET_MEAN", "IMAGENET_STD", "ModelConfig",
           "Preprocessing"]

log = logging.getLogger(__name__)

ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
METHODS = ("qaconv", "global")
# The backbone stops after layer3: stem (4) x layer2 (2) x layer3 (2).
FEATURE_STRIDE = 16
# Sane bounds, checked before anything is built: a crafted checkpoint must not make the loader
# allocate gigabytes. The published model uses D = 128 and 384 x 128 inputs.
MAX_NECK = 4096
MAX_SIDE = 2048
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocessing:
    """What turns an RGB image into the model's input; part of every feature-cache key.

    An image is resized (bicubic) to ``height x width``, its ``uint8`` values scaled to [0, 1]
    (divided by 255), then, with ``imagenet_norm``, ImageNet's mean subtracted and divided by
    its std per channel (:func:`engine.models.backbone.preprocess` does it).
    """

    height: int
    width: int
    imagenet_norm: bool = False

    @property
    def mean(self) -> tuple[float, float, float]:
        """Per-channel (RGB) value subtracted after scaling to [0, 1]."""
        return IMAGENET_MEAN if self.imagenet_norm else (0.0, 0.0, 0.0)

    @property
    def std(self) -> tuple[float, float, float]:
        """Per-channel (RGB) divisor applied after subtracting :attr:`mean`."""
        return IMAGENET_STD if self.imagenet_norm else (1.0, 1.0, 1.0)

    @property
    def feature_size(self) -> tuple[int, int]:
        """Feature-map size ``(H, W)`` for this input: the input size divided by the backbone's
        stride, ``(24, 8)`` for 384 x 128."""
        return self.height // FEATURE_STRIDE, self.width // FEATURE_STRIDE

    def key(self) -> str:
        return f"{self.height}x{self.width}-norm{int(self.imagenet_norm)}"


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
        Input image size in pixels; both multiples of the backbone's stride
        (``FEATURE_STRIDE``), so the feature map is exactly :attr:`feature_size`.
    pretrained
        ``"auto"`` (torchvision's ImageNet weights if already in the torch hub cache),
        ``"none"`` (random initialisation) or a path to a ResNet state dict.
    imagenet_norm
        Subtract ImageNet mean / divide by std after scaling to [0, 1]. The published method
        does not (docs/arithmetic.md section 1), so the default is False.
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
    def preprocessing(self) -> Preprocessing:
        """What turns an image into this model's input."""
        return Preprocessing(self.height, self.width, self.imagenet_norm)

    @property
    def feature_size(self) -> tuple[int, int]:
        """Feature-map size ``(H, W)``; ``(24, 8)`` for 384 x 128."""
        return self.preprocessing.feature_size

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
