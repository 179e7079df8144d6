"""torchreid (KaiyangZhou/deep-person-reid) checkpoints: OSNet and ResNet global models.

torchreid saves ``{'state_dict', 'epoch', 'rank1', 'optimizer'[, 'scheduler']}`` (a user may
keep the bare state dict), its keys prefixed ``module.`` when the model ran in
``DataParallel``. The model's eval output is the embedding this tool ranks by (cosine):

- OSNet (``osnet_x1_0``, ``x0_75``, ``x0_5``, ``x0_25``, ``osnet_ain_x1_0``): the trunk's
  ``conv5`` maps, average pooling, then ``fc`` = Linear + BatchNorm1d + ReLU (512-d): head
  ``"fc"`` (:class:`engine.models.global_model.GlobalModel`);
- ResNet (``resnet18`` .. ``resnet152``): the pooled layer4 output, last stride 2, no fc: head
  ``"pool"``; ``resnet50_fc512`` adds the fc and keeps layer4 at stride 1.

The arch is read from the weights: an OSNet's from its stem's width (OSNet-AIN has ``pool2``),
a ResNet's from its blocks per stage. The ``classifier`` (the training identities) is dropped;
every other weight must find its place, and a missing or mis-shaped one is a
:class:`CheckpointError` (:func:`engine.models.foreign.fit_weights`). The input size is not in
the file: torchreid's default 256 x 128 unless given. Preprocessing: RGB in [0, 1], ImageNet
mean / std (torchreid's test transform).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.checkpoint import CheckpointError
from engine.models.config import ModelConfig
from engine.models.foreign import Converted, fit_weights, resnet_arch, strip_prefix, tensors_of
from engine.models.osnet import osnet_arch

__all__ = ["convert", "detect"]

WHAT = "the torchreid checkpoint"
# torchreid's default input (ImageDataManager's height and width)
DEFAULT_SIZE = (256, 128)


def _state_dict(state: Mapping[str, Any]) -> Any:
    """The state dict: under ``state_dict`` (torchreid's ``save_checkpoint``) or ``state`` itself."""
    return state["state_dict"] if "state_dict" in state else state


def _names(state_dict: Any) -> set[str]:
    if not isinstance(state_dict, Mapping):
        return set()
    return {k.removeprefix("module.") for k in state_dict if isinstance(k, str)}


def _is_osnet(names: set[str]) -> bool:
    return {"conv1.conv.weight", "conv5.conv.weight"} <= names


def _is_resnet(names: set[str]) -> bool:
    # torchvision's names plus torchreid's "classifier" (torchvision's own files have "fc")
    return {"conv1.weight", "layer4.0.conv1.weight", "classifier.weight"} <= names


def detect(state: Mapping[str, Any]) -> bool:
    """A torchreid OSNet or ResNet state dict, wrapped in ``state_dict`` or bare."""
    names = _names(_state_dict(state))
    return _is_osnet(names) or _is_resnet(names)


def _osnet_settings(source: dict, arch: str | None) -> dict[str, Any]:
    stem = source["conv1.conv.weight"].shape[0]
    ain = "pool2.0.conv.weight" in source
    if not ain and "conv2.0.IN.weight" in source:
        raise CheckpointError(f"{WHAT} holds an osnet_ibn_x1_0, which this tool does not build")
    found = osnet_arch(stem, ain)
    if found is None:
        kind = "OSNet-AIN" if ain else "OSNet"
        raise CheckpointError(f"{WHAT} holds an {kind} with a {stem}-channel stem; this tool builds "
                              "osnet_x1_0, osnet_x0_75, osnet_x0_5, osnet_x0_25 and osnet_ain_x1_0")
    if arch is not None and arch != found:
        raise CheckpointError(f"{WHAT} holds an {found}, not the {arch} asked for")
    return dict(arch=found)


def _resnet_settings(source: dict, arch: str | None) -> dict[str, Any]:
    trunk = {k: v for k, v in source.items() if not k.startswith("fc.")}
    found, deepest = resnet_arch(trunk, WHAT)
    if found.endswith(("_ibn_a", "_ibn_b")) or deepest != 4:
        raise CheckpointError(f"{WHAT} holds a {found} to layer{deepest}; this tool reads "
                              "torchreid's resnet18..152 and resnet50_fc512")
    fc512 = "fc.0.weight" in source
    name = found + "_fc512" if fc512 else found
    if arch is not None and arch not in (name, found):
        raise CheckpointError(f"{WHAT} holds a {name}, not the {arch} asked for")
    # torchreid's resnet50_fc512 keeps layer4 at stride 1; its plain ResNets at 2
    return dict(arch=found, layer=4, last_stride=1 if fc512 else 2)


def _tool_name(key: str) -> str:
    """This tool's name of the file's weight ``key``: torchreid's ``fc`` (``fc.0`` Linear,
    ``fc.1`` BatchNorm1d) is the GlobalModel's head, everything else its trunk."""
    for fc, head in (("fc.0.", "head.linear."), ("fc.1.", "head.bn.")):
        if key.startswith(fc):
            return head + key.removeprefix(fc)
    return "trunk." + key


def _source_name(name: str) -> str:
    """The inverse of :func:`_tool_name` (what error messages quote)."""
    for fc, head in (("fc.0.", "head.linear."), ("fc.1.", "head.bn.")):
        if name.startswith(head):
            return fc + name.removeprefix(head)
    return name.removeprefix("trunk.")


def convert(state: Mapping[str, Any], *, arch: str | None = None, height: int | None = None,
            width: int | None = None) -> Converted:
    """torchreid ``state`` as this tool's global model (``arch`` must agree with the file)."""
    source = strip_prefix(tensors_of(_state_dict(state), f"{WHAT}'s state dict"))
    names = set(source)
    notes = []
    if "classifier.weight" in source:
        notes.append(f"classifier of {source['classifier.weight'].shape[0]} training identities "
                     "dropped (not used at test time)")
    source = {k: v for k, v in source.items() if not k.startswith("classifier.")}
    if _is_osnet(names):
        settings = _osnet_settings(source, arch)
    elif _is_resnet(names):
        settings = _resnet_settings(source, arch)
    else:
        raise CheckpointError(f"{WHAT} holds neither an OSNet (conv1.conv, conv5.conv) nor a "
                              "ResNet (conv1, layer4, classifier)")
    if "fc.0.weight" in source:
        settings |= dict(head="fc", head_dim=source["fc.0.weight"].shape[0])
    if (height is None) != (width is None):
        raise CheckpointError("give both the input height and width, or neither")
    if height is None:
        height, width = DEFAULT_SIZE
        notes.append(f"input {height} x {width}: torchreid's default (the file does not say)")
    try:
        config = ModelConfig(neck=0, height=height, width=width, pretrained="none",
                             imagenet_norm=True, method="global", source="torchreid", **settings)
    except ValueError as exc:
        raise CheckpointError(f"{WHAT}: {exc}") from None
    weights = fit_weights(config, {_tool_name(k): v for k, v in source.items()}, _source_name, WHAT)
    head = (f"{config.head_dim}-d embedding after fc (Linear + BN + ReLU)" if config.head == "fc"
            else "the pooled trunk output as embedding")
    notes.insert(0, f"torchreid {config.arch}: {head}")
    return Converted(config=config, weights=weights, notes=notes)
