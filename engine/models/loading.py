"""``load_model``: one entry for every checkpoint format the tool reads, keyed by format.

A format is a name, a ``detect(state)`` that recognises the loaded file by its keys, and a
``load(state, path)`` that builds the model from it on the CPU. :func:`load_model` reads the
file as data (``weights_only=True``: never code), asks each registered format in turn, and
moves the model it gets to the device in eval mode. Importers of other projects' checkpoints
plug in with :func:`register_format`; callers (session, CLI, viewer) never change.

Registered: this tool's own (``"reid-inspector"``: the model settings under ``"config"`` and
the weights under ``"model"``, as :mod:`engine.train` saves them), then the other projects'
formats of :mod:`engine.models.foreign` (converted in memory each time; ``python -m engine
import`` or :func:`engine.models.importing.native_checkpoint` convert once into a file).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.checkpoint import (
    CheckpointError,
    load_state_strict,
    nonfinite_tensors,
    read_tensor_file,
)
from engine.models.config import ModelConfig

__all__ = ["FORMATS", "CheckpointFormat", "check_model_state", "detect_format", "load_model",
           "register_format"]

Loader = Callable[[Mapping[str, Any], Path], Any]


@dataclass(frozen=True)
class CheckpointFormat:
    """How to recognise and load one kind of checkpoint.

    Attributes
    ----------
    detect
        ``detect(state) -> bool`` on the file's loaded top-level mapping: True when its keys
        are this format's. Must not raise and must not build anything.
    load
        ``load(state, path) -> model``: the model on the CPU (anything implementing
        :class:`engine.models.protocol.ReIDModelProtocol`); raises
        :class:`engine.checkpoint.CheckpointError` saying what does not fit.
    """

    detect: Callable[[Mapping[str, Any]], bool]
    load: Loader


#: Registered formats by name, tried in registration order.
FORMATS: dict[str, CheckpointFormat] = {}


def register_format(name: str, detect: Callable[[Mapping[str, Any]], bool], load: Loader) -> None:
    """Register (or replace) the checkpoint format ``name``."""
    FORMATS[name] = CheckpointFormat(detect, load)


def detect_format(state: Any, path: str | os.PathLike = "checkpoint") -> str:
    """Name of the first registered format that recognises ``state``."""
    if isinstance(state, Mapping):
        for name, fmt in FORMATS.items():
            if fmt.detect(state):
                return name
    keys = ", ".join(sorted(map(str, state))[:8]) if isinstance(state, Mapping) else type(state).__name__
    raise CheckpointError(f"{path} is not a checkpoint format this tool reads (holds: {keys}; "
                          f"formats tried: {', '.join(FORMATS)})")


def load_model(path: str | os.PathLike, device: Any = "cpu", *, format: str | None = None):
    """Build the model a checkpoint holds, on ``device``, in eval mode.

    Parameters
    ----------
    path
        The checkpoint file; read with ``weights_only=True``.
    device
        ``torch.device`` or its name.
    format
        A registered format name; by default the format is detected from the file's keys.

    Raises
    ------
    CheckpointError
        The file cannot be read, no format recognises it, or it does not fit its model.
    """
    state = read_tensor_file(path)
    if format is None:
        format = detect_format(state, path)
    elif format not in FORMATS:
        raise ValueError(f"unknown checkpoint format {format!r}; known: {', '.join(FORMATS)}")
    model = FORMATS[format].load(state, Path(path))
    return model.to(device).eval()


# --------------------------------------------------------------------------- this tool's format
def _is_own_checkpoint(state: Mapping[str, Any]) -> bool:
    return isinstance(state.get("config"), dict)


def check_model_state(state: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Check a loaded checkpoint's settings and weights before any model is built from them.

    The settings must name a known architecture with sizes in sane bounds (a crafted
    ``neck=2000000`` would otherwise allocate gigabytes), the weights must be a dict of tensors
    whose key shapes agree with the settings, and every value must be finite (the names of the
    tensors holding NaN or infinity are given).
    """
    import torch

    if not _is_own_checkpoint(state):
        raise CheckpointError(f"{path} is not a checkpoint of this tool (no model settings inside)")
    try:
        cfg = ModelConfig.from_dict(state["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: the model settings inside are not valid: {exc}") from exc
    weights = state.get("model")
    if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise CheckpointError(f"{path} holds no model weights (a dict of named tensors)")
    expected: dict[str, tuple[int, ...]] = {}
    if cfg.stores_embeddings:  # a GlobalModel: trunk.* and its head
        if cfg.head == "fc":
            expected["head.linear.weight"] = (cfg.head_dim, cfg.trunk_channels)
        elif cfg.head == "bnneck":
            expected["head.bn.weight"] = (cfg.trunk_channels,)
    elif cfg.neck:
        expected["backbone.neck.weight"] = (cfg.neck, cfg.trunk_channels, 3, 3)
    if cfg.method == "qaconv":
        h, w = cfg.feature_size
        expected["matcher.fc.weight"] = (1, h * w)
    for name, shape in expected.items():
        if name not in weights:
            raise CheckpointError(f"{path}: the weights lack {name}; not a {cfg.method} "
                                  f"{cfg.arch} checkpoint of this tool")
        if tuple(weights[name].shape) != shape:
            raise CheckpointError(f"{path}: the checkpoint does not fit its own settings: {name} is "
                                  f"{tuple(weights[name].shape)} but {cfg.arch}, neck {cfg.neck}, "
                                  f"layer {cfg.layer}, "
                                  f"{cfg.height}x{cfg.width} needs {shape}")
    bad = nonfinite_tensors(weights)
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite weights in {len(bad)} tensor(s): "
                              + ", ".join(bad[:6]) + (" ..." if len(bad) > 6 else "")
                              + "; the training that wrote it diverged")


def _load_own_checkpoint(state: Mapping[str, Any], path: Path):
    from engine.models.reid import build_model

    check_model_state(state, path)  # settings, shapes and finiteness, before building anything
    cfg = ModelConfig.from_dict(state["config"])
    cfg = dataclasses.replace(cfg, pretrained="none")  # the checkpoint holds every weight
    model = build_model(cfg)
    load_state_strict(model, state["model"], "model weights")
    return model


register_format("reid-inspector", _is_own_checkpoint, _load_own_checkpoint)


# --------------------------------------------------------------------------- other projects' formats
def _foreign_format(name: str):
    def detect(state: Mapping[str, Any]) -> bool:
        from engine.models.foreign import detect_foreign

        return detect_foreign(state) == name

    def load(state: Mapping[str, Any], path: Path):
        from engine.models.importing import convert_state
        from engine.models.reid import build_model

        converted = convert_state(state, path, name)
        model = build_model(converted.config)
        load_state_strict(model, converted.weights, "model weights")
        return model

    return detect, load


for _name in ("qaconv", "torchreid", "fastreid"):
    register_format(_name, *_foreign_format(_name))
