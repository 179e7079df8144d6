"""Other projects' checkpoints, converted into this tool's model settings and weight names.

One module per format (``qaconv_authors``: ShengcaiLiao/QAConv's ``main.py``; ``torchreid``;
``fastreid``), each with ``detect(state) -> bool`` on the loaded top-level mapping (never
raises) and ``convert(state, *, arch=None, height=None, width=None) -> Converted``. Everything
here reads files loaded as data (``weights_only=True``); nothing of the other projects is
imported or run. The helpers below are what the converters share: reading a ResNet's depth
and IBN variant from its keys, and fitting the renamed weights into the target model so that
every weight the source holds (classifiers aside) is used, and every one the model needs is
there with its shape: anything else is a :class:`engine.checkpoint.CheckpointError` naming it.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from engine.checkpoint import CheckpointError
from engine.models.config import ModelConfig

__all__ = ["FOREIGN_FORMATS", "Converted", "NeedsInputSize", "convert", "detect_foreign",
           "expected_state", "fit_weights", "input_size", "resnet_arch", "strip_prefix"]

#: format name -> module of this package
FOREIGN_FORMATS = {"qaconv": "qaconv_authors", "torchreid": "torchreid", "fastreid": "fastreid"}


class NeedsInputSize(CheckpointError):
    """The input size cannot be inferred from the file; ``candidates`` lists the sizes
    ``(height, width)`` that fit it (the caller asks the user, then passes height and width)."""

    def __init__(self, message: str, candidates: list[tuple[int, int]]):
        super().__init__(message)
        self.candidates = candidates


@dataclass
class Converted:
    """A converted checkpoint: this tool's settings, weights in this tool's names, and what the
    user should know about the conversion (one line each)."""

    config: ModelConfig
    weights: dict[str, torch.Tensor]
    notes: list[str] = field(default_factory=list)


def _module(name: str):
    return importlib.import_module(f"{__name__}.{FOREIGN_FORMATS[name]}")


def available_formats() -> list[str]:
    """The foreign formats whose converter is installed."""
    out = []
    for name in FOREIGN_FORMATS:
        try:
            _module(name)
        except ImportError:
            continue
        out.append(name)
    return out


def detect_foreign(state: Any) -> str | None:
    """Name of the foreign format whose keys ``state`` has, or None."""
    if not isinstance(state, Mapping):
        return None
    for name in available_formats():
        try:
            if _module(name).detect(state):
                return name
        except Exception:  # a detector must not raise; one that does has not recognised it
            continue
    return None


def convert(state: Any, format: str | None = None, *, arch: str | None = None,
            height: int | None = None, width: int | None = None) -> tuple[str, Converted]:
    """``(format, Converted)`` for a loaded foreign checkpoint (``format`` detected if None)."""
    if format is None:
        format = detect_foreign(state)
        if format is None:
            keys = ", ".join(sorted(map(str, state))[:8]) if isinstance(state, Mapping) else type(state).__name__
            raise CheckpointError(f"not a checkpoint of this tool nor of {', '.join(FOREIGN_FORMATS)} "
                                  f"(holds: {keys})")
    elif format not in FOREIGN_FORMATS:
        raise CheckpointError(f"unknown format {format!r}; known: {', '.join(FOREIGN_FORMATS)}")
    try:
        module = _module(format)
    except ImportError as exc:
        raise CheckpointError(f"converting {format} checkpoints is not available in this build") from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(f"not a {format} checkpoint: the file holds a {type(state).__name__}")
    return format, module.convert(state, arch=arch, height=height, width=width)


# --------------------------------------------------------------------------- shared helpers
def strip_prefix(state: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """``state`` with ``prefix`` removed where keys start with it (DataParallel's ``module.``)."""
    return {(k[len(prefix):] if isinstance(k, str) and k.startswith(prefix) else k): v
            for k, v in state.items()}


def tensors_of(state: Any, what: str) -> dict[str, torch.Tensor]:
    """``state`` as a dict of named tensors, or a CheckpointError saying it is not one."""
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{what} is not a mapping of names to tensors")
    return dict(state)


_BLOCK = re.compile(r"layer([1-4])\.(\d+)\.")


def resnet_arch(trunk: Mapping[str, torch.Tensor], what: str) -> tuple[str, int]:
    """``(arch, deepest stage present)`` of a ResNet state dict in torchvision's names.

    Depth from the block type (``conv3``: bottleneck) and the blocks per stage; the IBN-Net
    variant from where instance normalisation sits (``layer1.0.bn1.IN``: a; an ``InstanceNorm``
    stem, i.e. ``bn1`` without running statistics: b).
    """
    from engine.models.resnets import _LAYOUTS

    counts = [0, 0, 0, 0]
    for key in trunk:
        m = _BLOCK.match(key)
        if m:
            stage, block = int(m.group(1)) - 1, int(m.group(2))
            counts[stage] = max(counts[stage], block + 1)
    if "conv1.weight" not in trunk or not counts[0]:
        raise CheckpointError(f"{what} holds no ResNet (conv1.weight, layer1.* not found)")
    deepest = max(i + 1 for i, c in enumerate(counts) if c)
    bottleneck = "layer1.0.conv3.weight" in trunk
    depths = [d for d, (b, layout) in _LAYOUTS.items()
              if b == bottleneck and tuple(layout[:deepest]) == tuple(counts[:deepest])]
    if len(depths) != 1:
        raise CheckpointError(f"{what}: a ResNet with {'bottleneck' if bottleneck else 'basic'} blocks "
                              f"{counts[:deepest]} per stage is none of ResNet-18/34/50/101/152")
    depth = depths[0]
    if "layer1.0.bn1.IN.weight" in trunk:
        ibn = "a"
    elif "bn1.weight" in trunk and "bn1.running_mean" not in trunk:
        ibn = "b"
    else:
        ibn = None
    if ibn and depth == 152:
        raise CheckpointError(f"{what}: IBN-Net has no ResNet-152 variant")
    return (f"resnet{depth}" if ibn is None else f"resnet{depth}_ibn_{ibn}"), deepest


def input_size(locations: int, stride: int, *, height: int | None, width: int | None,
               what: str, maps: tuple[int, int] | None = None) -> tuple[int, int]:
    """The input ``(height, width)`` of a model whose maps have ``locations = h * w`` cells.

    ``maps`` (known ``(h, w)``, e.g. from a class memory) decides; else the user's ``height``
    and/or ``width``; else the one factorisation whose ratio ``h / w`` lies in [2, 3] (person
    crops: 256 x 128 and 384 x 128). Otherwise :class:`NeedsInputSize` with the candidates.
    """
    def fits(h: int, w: int) -> bool:
        return h * w == locations

    if height is not None and width is not None:
        if height % stride or width % stride or not fits(height // stride, width // stride):
            raise CheckpointError(f"{what}: an input of {height}x{width} gives "
                                  f"{height // stride}x{width // stride} maps at stride {stride}, "
                                  f"but the model's head has {locations} locations")
        if maps is not None and (height // stride, width // stride) != tuple(maps):
            raise CheckpointError(f"{what}: the file's maps are {maps[0]}x{maps[1]}, so the input is "
                                  f"{maps[0] * stride}x{maps[1] * stride}, not {height}x{width}")
        return height, width
    if maps is not None:
        h, w = maps
        if not fits(h, w):
            raise CheckpointError(f"{what}: maps of {h}x{w} do not fit a head of {locations} locations")
        return h * stride, w * stride
    pairs = [(h, locations // h) for h in range(1, locations + 1) if locations % h == 0]
    given = height if height is not None else width
    if given is not None:
        index = 0 if height is not None else 1
        found = [p for p in pairs if p[index] * stride == given]
        if not found or given % stride:
            raise CheckpointError(f"{what}: no input with {'height' if index == 0 else 'width'} {given} "
                                  f"gives {locations} map locations at stride {stride}")
        h, w = found[0]
        return h * stride, w * stride
    likely = [(h, w) for h, w in pairs if 2 * w <= h <= 3 * w]
    if len(likely) == 1:
        h, w = likely[0]
        return h * stride, w * stride
    candidates = [(h * stride, w * stride) for h, w in pairs if w <= h <= 4 * w] or \
        [(h * stride, w * stride) for h, w in pairs]
    raise NeedsInputSize(f"{what}: the input size cannot be inferred from {locations} map locations "
                         f"at stride {stride}; give --height and --width (candidates: "
                         + ", ".join(f"{h}x{w}" for h, w in candidates) + ")", candidates)


def expected_state(config: ModelConfig) -> dict[str, torch.Tensor]:
    """The state dict (names, shapes, dtypes) of the model ``config`` describes.

    A global model without a neck is a GlobalModel: ``trunk.*`` (the trunk's own names) and
    its head (``head.bn.*`` for "bnneck"; ``head.linear.*`` and ``head.bn.*`` for "fc").
    """
    if not config.stores_embeddings:
        from engine.models.reid import build_model

        return build_model(config).state_dict()
    if config.is_osnet:
        from engine.models.osnet import build_osnet_trunk

        trunk, channels = build_osnet_trunk(config.arch)
    else:
        from engine.models.resnets import build_resnet_trunk

        trunk, channels = build_resnet_trunk(config)
    out = {f"trunk.{k}": v for k, v in trunk.state_dict().items()}
    if config.head == "pool":
        return out
    dim = config.head_dim if config.head == "fc" else channels
    if config.head == "fc":
        out["head.linear.weight"] = torch.empty(dim, channels)
        out["head.linear.bias"] = torch.empty(dim)
    for name in ("weight", "bias", "running_mean", "running_var"):
        out[f"head.bn.{name}"] = torch.empty(dim)
    out["head.bn.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    return out


def fit_weights(config: ModelConfig, weights: Mapping[str, torch.Tensor],
                source_name: Callable[[str], str], what: str) -> dict[str, torch.Tensor]:
    """Check renamed ``weights`` against the model of ``config``; return them in its dtypes.

    ``source_name`` gives the source file's name of each of this tool's names (for messages); the
    caller has left out only what the source's own eval forward does not use (classifiers,
    a class memory, stages after the last one kept). Every expected weight must be present with its shape, and every weight given
    must be expected; the first that is not raises a CheckpointError naming it (BatchNorm's
    ``num_batches_tracked`` counters, unused in eval mode, may be absent).
    """
    expected = expected_state(config)
    for name, ref in expected.items():
        source = source_name(name)
        if name not in weights:
            if name.endswith("num_batches_tracked"):
                continue
            raise CheckpointError(f"{what}: {source} is missing ({config.arch} needs it as {name}, "
                                  f"shape {tuple(ref.shape)})")
        if tuple(weights[name].shape) != tuple(ref.shape):
            raise CheckpointError(f"{what}: {source} is {tuple(weights[name].shape)} but {config.arch} "
                                  f"needs {tuple(ref.shape)} there")
    extra = [source_name(k) for k in weights if k not in expected]
    if extra:
        raise CheckpointError(f"{what}: {len(extra)} weight(s) the {config.arch} model has no place for: "
                              + ", ".join(sorted(extra)[:4]) + (" ..." if len(extra) > 4 else ""))
    out = {}
    for name, ref in expected.items():
        if name in weights:
            out[name] = weights[name].detach().to(ref.dtype).clone()
        else:
            out[name] = torch.zeros((), dtype=torch.long)
    return out
