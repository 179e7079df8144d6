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

__all__ = ["ARCHS", "FEATURE_STRIDE", "HEADS", "IBN_ARCHS", "IMAGENET_MEAN", "IMAGENET_STD",
           "METHODS", "OSNET_ARCHS", "SOURCES", "TRAINABLE_ARCHS", "ModelConfig", "Preprocessing",
           "resnet_stride", "trunk_channels"]

log = logging.getLogger(__name__)

# What this tool trains (torchvision's ResNets); imported checkpoints may also hold IBN-Net
# variants (XingangPan/IBN-Net's key layout) and OSNets (torchreid's).
TRAINABLE_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
IBN_ARCHS = tuple(f"resnet{d}_ibn_{t}" for t in ("a", "b") for d in (18, 34, 50, 101))
OSNET_ARCHS = ("osnet_x1_0", "osnet_x0_75", "osnet_x0_5", "osnet_x0_25", "osnet_ain_x1_0")
ARCHS = TRAINABLE_ARCHS + IBN_ARCHS + OSNET_ARCHS
METHODS = ("qaconv", "global")
#: Where a model's weights came from (shown to users; "fastreid" also selects fast-reid's stem).
SOURCES = ("reid-inspector", "qaconv", "torchreid", "fastreid")
#: Global models' heads after average pooling: nothing, BatchNorm1d (fast-reid's BN neck), or
#: Linear + BatchNorm1d + ReLU (OSNet's fc).
HEADS = ("pool", "bnneck", "fc")
# The default backbone stops after layer3: stem (4) x layer2 (2) x layer3 (2).
FEATURE_STRIDE = 16
# OSNet's output stride (256 x 128 -> 16 x 8).
OSNET_STRIDE = 16
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
    stride: int = FEATURE_STRIDE

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
        :attr:`stride`, ``(24, 8)`` for 384 x 128 at stride 16."""
        return self.height // self.stride, self.width // self.stride

    def key(self) -> str:
        # The default stride adds nothing: the keys of the caches made before it existed hold.
        tail = "" if self.stride == FEATURE_STRIDE else f"-s{self.stride}"
        return f"{self.height}x{self.width}-norm{int(self.imagenet_norm)}{tail}"


def resnet_stride(layer: int, last_stride: int = 2) -> int:
    """Output stride of a ResNet cut after stage ``layer`` (2, 3 or 4) whose last kept stage
    steps by ``last_stride``: the stem's 4, then 2 per stage after layer1 (8, 16, 32; 16 for
    layer4 with last stride 1, as fast-reid's BoT)."""
    return 4 * 2 ** (layer - 2) * last_stride


def trunk_channels(arch: str, layer: int = 3) -> int:
    """Channels of the trunk's output: a ResNet's stage ``layer``, or an OSNet's last conv."""
    if arch in OSNET_ARCHS:
        return {"x1_0": 512, "x0_75": 384, "x0_5": 256, "x0_25": 128}[arch[arch.index("_x") + 1:]]
    depth = int(arch.removeprefix("resnet").split("_")[0])
    return 64 * 2 ** (layer - 1) * (4 if depth >= 50 else 1)


@dataclass
class ModelConfig:
    """Settings that decide the model's structure and its input.

    Attributes
    ----------
    arch
        One of ``ARCHS``: torchvision's ResNets (what this tool trains), IBN-Net's
        ``resnet{18,34,50,101}_ibn_{a,b}`` and torchreid's OSNets (imported checkpoints).
    neck
        Channels ``D`` of the neck convolution (the feature maps' depth); 0: no neck
        convolution (the trunk's own output, as a global model of another project has).
    height, width
        Input image size in pixels; both multiples of the model's :attr:`stride`, so the
        feature map is exactly :attr:`feature_size`.
    pretrained
        ``"auto"`` (torchvision's ImageNet weights if already in the torch hub cache),
        ``"none"`` (random initialisation) or a path to a ResNet state dict.
    imagenet_norm
        Subtract ImageNet mean / divide by std after scaling to [0, 1]. The published method
        does not (docs/arithmetic.md section 1), so the default is False.
    method
        ``"qaconv"`` (local matching) or ``"global"`` (pooled embedding + cosine).
    source
        Where the weights come from, one of ``SOURCES`` (shown to users); ``"fastreid"`` also
        means fast-reid's ResNet stem (a max-pool without padding, rounding up).
    layer
        Last ResNet stage kept: 2, 3 or 4.
    last_stride
        Stride of that last stage: 2, or 1 (fast-reid's BoT keeps layer4 at stride 16).
    head
        A global model's head after average pooling (``neck`` 0): ``"pool"`` (nothing),
        ``"bnneck"`` (BatchNorm1d) or ``"fc"`` (Linear + BatchNorm1d + ReLU to ``head_dim``).
    head_dim
        Output size of the ``"fc"`` head; 0 otherwise.
    """

    arch: str = "resnet50"
    neck: int = 128
    height: int = 384
    width: int = 128
    pretrained: str = "auto"
    imagenet_norm: bool = False
    method: str = "qaconv"
    source: str = "reid-inspector"
    layer: int = 3
    last_stride: int = 2
    head: str = "pool"
    head_dim: int = 0

    def __post_init__(self) -> None:
        def choice(name: str, options) -> None:
            value = getattr(self, name)
            if type(value) is not type(options[0]) or value not in options:
                raise ValueError(f"{name} must be one of {', '.join(map(str, options))}; got {value!r}")

        choice("arch", ARCHS)
        choice("method", METHODS)
        choice("source", SOURCES)
        choice("layer", (2, 3, 4))
        choice("last_stride", (1, 2))
        choice("head", HEADS)
        if isinstance(self.neck, bool) or not isinstance(self.neck, int) or not 0 <= self.neck <= MAX_NECK:
            raise ValueError(f"neck (feature channels D) must be an integer in 0..{MAX_NECK} "
                             f"(0: no neck convolution); got {self.neck!r}")
        if isinstance(self.head_dim, bool) or not isinstance(self.head_dim, int) or not 0 <= self.head_dim <= MAX_NECK:
            raise ValueError(f"head_dim must be an integer in 0..{MAX_NECK}; got {self.head_dim!r}")
        if (self.head == "fc") != (self.head_dim > 0):
            raise ValueError(f"head_dim is the output size of the 'fc' head (and 0 for any other); "
                             f"got head {self.head!r} with head_dim {self.head_dim}")
        if self.head != "pool" and (self.method != "global" or self.neck):
            raise ValueError(f"head {self.head!r} is a global model's (method 'global', neck 0); "
                             f"got method {self.method!r}, neck {self.neck}")
        if self.arch in OSNET_ARCHS and (self.method != "global" or self.neck):
            raise ValueError(f"{self.arch} is a global model: method 'global' and neck 0")
        if self.source == "fastreid" and self.arch in OSNET_ARCHS:
            raise ValueError("fast-reid's stem is a ResNet's; an OSNet cannot have it")
        stride = self.stride
        for name in ("height", "width"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int) or value < stride or value % stride
                    or value > MAX_SIDE):
                raise ValueError(f"{name} must be a positive multiple of {stride} pixels (the "
                                 f"model's stride) in {stride}..{MAX_SIDE}; got {value!r}")
        if not isinstance(self.imagenet_norm, bool):
            raise ValueError(f"imagenet_norm must be true or false; got {self.imagenet_norm!r}")
        if not isinstance(self.pretrained, str) or not self.pretrained:
            raise ValueError("pretrained must be 'auto', 'none' or a path to a weights file; "
                             f"got {self.pretrained!r}")

    @property
    def is_osnet(self) -> bool:
        return self.arch in OSNET_ARCHS

    @property
    def ibn(self) -> str | None:
        """IBN-Net variant of the ResNet trunk: ``"a"``, ``"b"`` or None."""
        return self.arch[-1] if self.arch in IBN_ARCHS else None

    @property
    def stride(self) -> int:
        """Input pixels per feature-map location (16 for the default ResNet cut after layer3)."""
        return OSNET_STRIDE if self.is_osnet else resnet_stride(self.layer, self.last_stride)

    @property
    def trunk_channels(self) -> int:
        """Channels of the trunk's output (before any neck or head)."""
        return trunk_channels(self.arch, self.layer)

    @property
    def stores_embeddings(self) -> bool:
        """A global model of another project (no neck): the feature store holds its embeddings
        ``[E, 1, 1]`` instead of maps; :func:`engine.models.build_model` builds a GlobalModel."""
        return self.method == "global" and self.neck == 0

    @property
    def embedding_dim(self) -> int:
        """Channels of what the model outputs: maps' ``D``, or a global model's embedding."""
        if self.neck:
            return self.neck
        return self.head_dim if self.head == "fc" else self.trunk_channels

    @property
    def depth(self) -> int:
        """ResNet depth as a number (``"resnet50"`` and ``"resnet50_ibn_a"`` -> 50)."""
        if self.is_osnet:
            raise ValueError(f"{self.arch} is not a ResNet")
        return int(self.arch.removeprefix("resnet").split("_")[0])

    @property
    def preprocessing(self) -> Preprocessing:
        """What turns an image into this model's input."""
        return Preprocessing(self.height, self.width, self.imagenet_norm, self.stride)

    @property
    def feature_size(self) -> tuple[int, int]:
        """Feature-map size ``(H, W)``; ``(24, 8)`` for 384 x 128."""
        return self.preprocessing.feature_size

    @property
    def feature_shape(self) -> tuple[int, int, int]:
        """One image's entry in the feature store: its map ``(D, H, W)``, or a global model's
        embedding as ``(E, 1, 1)`` (:attr:`stores_embeddings`)."""
        if self.stores_embeddings:
            return (self.embedding_dim, 1, 1)
        return (self.embedding_dim, *self.feature_size)

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
