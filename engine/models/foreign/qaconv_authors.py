"""The authors' QAConv checkpoints (ShengcaiLiao/QAConv ``main.py``'s ``checkpoint.pth.tar``).

The file is ``{"model", "criterion", "optim", "epoch", "final_epochs", "base_loss",
"lr_stepped"}``. ``model`` is their feature-map network: ``base.*`` a whole torchvision ResNet
(layer4 and fc included, though the forward stops at the final layer) or an IBN-Net
``resnet*_ibn_{a,b}``, then ``neck_conv.*`` (a 3x3 convolution with bias; absent with
``--neck 0``), then per-location L2 normalisation: the arithmetic of this tool's backbone
(docs/arithmetic.md section 1). ``criterion`` is the loss, holding the matcher as
``matcher.bn``, ``matcher.fc``, ``matcher.logit_bn``; the class-memory loss also holds
``class_memory [classes, D, h, w]`` (which gives the map size) and ``valid_class``, not needed
to match. Their matcher's eval logit is this tool's QAConv logit (docs/arithmetic.md section 2):
best matches both ways, one BatchNorm over all of them, a shared ``Linear(hw -> 1)`` summed
over the two directions, a second BatchNorm.

Their test transform is a bicubic resize and ``ToTensor`` (RGB in [0, 1]) with no mean / std
normalisation, so the converted model records ``imagenet_norm=False``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from engine.checkpoint import CheckpointError
from engine.models.config import ModelConfig, resnet_stride, trunk_channels
from engine.models.foreign import (
    Converted,
    fit_weights,
    input_size,
    resnet_arch,
    strip_prefix,
    tensors_of,
)

__all__ = ["convert", "detect"]

WHAT = "the authors' QAConv checkpoint"
#: What the authors' main.py feeds the model: resize, ToTensor, no ImageNet mean / std.
AUTHORS_IMAGENET_NORM = False


def detect(state: Mapping[str, Any]) -> bool:
    """``model`` with ``base.*`` keys and ``criterion`` holding the matcher's ``fc.weight``
    (``matcher.fc.weight``; ``fc.weight`` in the code before version 1.2)."""
    model, criterion = state.get("model"), state.get("criterion")
    return (isinstance(model, Mapping) and isinstance(criterion, Mapping)
            and any(isinstance(k, str) and k.removeprefix("module.").startswith("base.") for k in model)
            and any(isinstance(k, str) and k.removeprefix("module.") in ("matcher.fc.weight", "fc.weight")
                    for k in criterion))


def convert(state: Mapping[str, Any], *, arch: str | None = None, height: int | None = None,
            width: int | None = None) -> Converted:
    """The authors' checkpoint as this tool's QAConv model (``arch`` must agree with the file)."""
    model = strip_prefix(tensors_of(state.get("model"), f"{WHAT}'s 'model'"))
    criterion = strip_prefix(tensors_of(state.get("criterion"), f"{WHAT}'s 'criterion'"))
    if "fc.weight" in criterion and "matcher.fc.weight" not in criterion:
        raise CheckpointError(f"{WHAT} comes from the authors' code before version 1.2 (March 2021), "
                              "whose head weighs the two matching directions apart (criterion fc.weight "
                              f"{tuple(criterion['fc.weight'].shape)}); this tool's matcher shares one "
                              "weight, so it is not converted")
    base = {k.removeprefix("base."): v for k, v in model.items() if k.startswith("base.")}
    found, _ = resnet_arch(base, WHAT)
    if arch is not None and arch != found:
        raise CheckpointError(f"{WHAT} holds a {found}, not the {arch} asked for")
    notes = [f"{found} from the trunk's blocks"]

    neck = 0
    if "neck_conv.weight" in model:
        neck_w = model["neck_conv.weight"]
        if neck_w.dim() != 4:
            raise CheckpointError(f"{WHAT}: neck_conv.weight is {tuple(neck_w.shape)}, not a convolution")
        neck, in_channels = int(neck_w.shape[0]), int(neck_w.shape[1])
        layers = [n for n in (2, 3, 4) if trunk_channels(found, n) == in_channels]
        if not layers:
            raise CheckpointError(f"{WHAT}: neck_conv takes {in_channels} channels, which no stage "
                                  f"of {found} gives")
        layer = layers[0]
        notes.append(f"final layer layer{layer} (neck_conv takes {in_channels} channels), neck {neck}")
    memory = criterion.get("class_memory")
    maps = tuple(int(x) for x in memory.shape[2:]) if memory is not None and memory.dim() == 4 else None
    if not neck:
        channels = int(memory.shape[1]) if maps is not None else None
        layers = [n for n in (2, 3, 4) if trunk_channels(found, n) == channels]
        layer = layers[0] if layers else 3
        notes.append(f"no neck; final layer layer{layer}"
                     + (f" ({channels} channels in the class memory)" if layers else
                        " (the authors' default; the file does not say)"))

    fc = criterion.get("matcher.fc.weight")
    if fc is None or fc.dim() != 2 or fc.shape[0] != 1:
        raise CheckpointError(f"{WHAT}: criterion's matcher.fc.weight is missing or not [1, h*w]")
    stride = resnet_stride(layer, 2)
    h, w = input_size(int(fc.shape[1]), stride, height=height, width=width, what=WHAT, maps=maps)
    if maps is not None:
        notes.append(f"input {h}x{w}: the class memory's maps are {maps[0]}x{maps[1]}")
    else:
        notes.append(f"input {h}x{w} for the matcher's {fc.shape[1]} locations")
    notes.append("preprocessing: RGB in [0, 1], no mean/std (the authors' test transform)")

    config = ModelConfig(arch=found, neck=neck, height=h, width=w, pretrained="none",
                         imagenet_norm=AUTHORS_IMAGENET_NORM, method="qaconv", source="qaconv",
                         layer=layer, last_stride=2)
    kept = ("conv1.", "bn1.") + tuple(f"layer{n}." for n in range(1, layer + 1))
    weights: dict[str, torch.Tensor] = {}
    unused = []
    for key, value in base.items():
        if key.startswith(kept):
            weights[f"backbone.body.{key}"] = value
        else:
            unused.append(key.split(".")[0])
    for key, value in model.items():
        if key.startswith("neck_conv."):
            weights[f"backbone.neck.{key.removeprefix('neck_conv.')}"] = value
        elif not key.startswith("base."):
            raise CheckpointError(f"{WHAT}: model: {key} is part of no layer this tool knows")
    for key, value in criterion.items():
        if key.startswith("matcher."):
            weights[key] = value
    if unused:
        notes.append("not used by the authors' forward either: base."
                     + ", base.".join(sorted(set(unused))))
    rest = sorted(k for k in criterion if not k.startswith("matcher."))
    if rest:
        notes.append("left out (training only): criterion " + ", ".join(rest))
    return Converted(config, fit_weights(config, weights, source_name, WHAT), notes)


def source_name(name: str) -> str:
    """The authors' name of this tool's weight ``name``."""
    if name.startswith("backbone.body."):
        return "model: base." + name.removeprefix("backbone.body.")
    if name.startswith("backbone.neck."):
        return "model: neck_conv." + name.removeprefix("backbone.neck.")
    return f"criterion: {name}" if name.startswith("matcher.") else f"model: {name}"
