"""fast-reid checkpoints (JDAI-CV/fast-reid): BoT ResNets, with or without IBN-a.

The file is ``{"model", "optimizer", "scheduler", "iteration"}``; ``model`` holds ``backbone.*``
(a ResNet in torchvision's names, IBN-a blocks as ``bn1.IN`` / ``bn1.BN``, layer4 kept at
``MODEL.BACKBONE.LAST_STRIDE``, 1 in BoT), ``heads.bottleneck.0.*`` (the BN neck: a BatchNorm
after global average pooling) and the classifier ``heads.weight`` (training only). The eval
output is the BN neck's output, 2048-d for ResNet-50. fast-reid's stem differs from
torchvision's: its max-pool has no padding and rounds up (docs/arithmetic.md section 1).

Its input is RGB in 0-255 normalised inside the model by ``pixel_mean`` / ``pixel_std`` (ImageNet's
x 255): the same arithmetic as [0, 1] with ImageNet's mean / std, which the converted model
records (``imagenet_norm=True``). Recent versions do not store those buffers; where a file has
them they must be ImageNet's, or the file is refused.

Not converted (a one-line refusal): GeM or other pooling layers with parameters
(``heads.pool_layer.*``), an embedding convolution in the neck, non-local blocks and
squeeze-excitation (SBS and other variants), and files of fast-reid before 1.0 (``heads.bnneck``:
their stem padded its max-pool as torchvision's does; fast-reid changed it in November 2020).
The last stride (1) and the average pooling are BoT's defaults: the file records neither.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from engine.checkpoint import CheckpointError
from engine.models.config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from engine.models.foreign import Converted, fit_weights, resnet_arch, strip_prefix, tensors_of

__all__ = ["convert", "detect"]

WHAT = "the fast-reid checkpoint"
#: fast-reid's BoT defaults: 256 x 128 input, layer4 at stride 1 (neither is in the file).
DEFAULT_SIZE = (256, 128)
LAST_STRIDE = 1


def detect(state: Mapping[str, Any]) -> bool:
    """``model`` holding ``backbone.*`` and ``heads.*`` keys."""
    model = state.get("model")
    if not isinstance(model, Mapping):
        return False
    keys = [k.removeprefix("module.") for k in model if isinstance(k, str)]
    return any(k.startswith("backbone.") for k in keys) and any(k.startswith("heads.") for k in keys)


def _check_pixel_stats(model: Mapping[str, torch.Tensor]) -> None:
    for name, ref in (("pixel_mean", IMAGENET_MEAN), ("pixel_std", IMAGENET_STD)):
        if name in model:
            value = model[name].detach().float().flatten()
            expected = torch.tensor(ref) * 255.0
            if value.shape != expected.shape or not torch.allclose(value, expected, atol=0.05):
                raise CheckpointError(f"{WHAT}: its {name} {[round(float(v), 3) for v in value]} is not "
                                      f"ImageNet's x 255 {[round(float(v), 3) for v in expected]}; this "
                                      "tool's preprocessing cannot express it")


def convert(state: Mapping[str, Any], *, arch: str | None = None, height: int | None = None,
            width: int | None = None) -> Converted:
    """The fast-reid checkpoint as a GlobalModel (ResNet trunk to layer4, BN neck)."""
    model = strip_prefix(tensors_of(state.get("model"), f"{WHAT}'s 'model'"))
    _check_pixel_stats(model)
    backbone = {k.removeprefix("backbone."): v for k, v in model.items() if k.startswith("backbone.")}
    odd = sorted(k for k in backbone if k.startswith("NL_") or ".se." in k)
    if odd:
        raise CheckpointError(f"{WHAT} has non-local or squeeze-excitation blocks (backbone.{odd[0]}), "
                              "which this tool does not build")
    if any(k.startswith("heads.bnneck.") for k in model):
        raise CheckpointError(f"{WHAT} comes from fast-reid before version 1.0 (heads.bnneck), whose "
                              "ResNet stem pads its max-pool; only files of 1.0 and later are converted")
    found, deepest = resnet_arch(backbone, WHAT)
    if found.endswith("_ibn_b"):
        raise CheckpointError(f"{WHAT}: fast-reid has no IBN-b ResNet; the file's trunk looks like {found}")
    if deepest != 4:
        raise CheckpointError(f"{WHAT}: backbone.layer4 is missing (fast-reid's ResNet ends with it)")
    if arch is not None and arch != found:
        raise CheckpointError(f"{WHAT} holds a {found}, not the {arch} asked for")
    pool = sorted(k for k in model if k.startswith("heads.pool_layer."))
    if pool:
        raise CheckpointError(f"{WHAT} pools with a learned layer ({pool[0]}: GeM?); only average "
                              "pooling, which explains a score exactly, is converted")
    neck = {k.removeprefix("heads.bottleneck."): v for k, v in model.items()
            if k.startswith("heads.bottleneck.")}
    if neck and (set(k.split(".")[0] for k in neck) != {"0"} or neck.get("0.weight", torch.empty(0)).dim() != 1):
        raise CheckpointError(f"{WHAT}: heads.bottleneck is not a lone BatchNorm (an embedding "
                              "convolution before it?); only BoT's BN neck is converted")
    head = "bnneck" if neck else "pool"
    # The embedding's size does not depend on the input's: any multiple of the stride serves
    # (ModelConfig checks it).
    h, w = (height or DEFAULT_SIZE[0], width or DEFAULT_SIZE[1])
    config = ModelConfig(arch=found, neck=0, height=h, width=w, pretrained="none", imagenet_norm=True,
                         method="global", source="fastreid", layer=4, last_stride=LAST_STRIDE, head=head)

    weights = {f"trunk.{key}": value for key, value in backbone.items()}
    weights.update({f"head.bn.{key.removeprefix('0.')}": value for key, value in neck.items()})
    left = sorted(k for k in model if not k.startswith(("backbone.", "heads.bottleneck.", "pixel_")))
    unknown = [k for k in left if not k.startswith(("heads.weight", "heads.classifier", "heads.cls_layer"))]
    if unknown:
        raise CheckpointError(f"{WHAT}: {unknown[0]} is part of no layer this tool knows")
    notes = [f"{found} trunk to layer4, last stride {LAST_STRIDE} (BoT's; the file does not record it), "
             "fast-reid 1.0's stem (max-pool without padding, November 2020 and later)",
             "pooling: average (BoT's; a pooling without weights cannot be told from the file)",
             f"head: {'BatchNorm neck' if neck else 'average pooling only'}, "
             f"{config.embedding_dim}-d embeddings",
             f"input {h}x{w}" + ("" if height or width else " (fast-reid's default; the file does not record it)"),
             "preprocessing: RGB, ImageNet mean/std (fast-reid's in-model 0-255 normalisation)"]
    if left:
        notes.append("left out (training only): " + ", ".join(left))
    return Converted(config, fit_weights(config, weights, source_name, WHAT), notes)


def source_name(name: str) -> str:
    """fast-reid's name of this tool's weight ``name``."""
    if name.startswith("trunk."):
        return "backbone." + name.removeprefix("trunk.")
    return "heads.bottleneck.0." + name.removeprefix("head.bn.") if name.startswith("head.bn.") else name
