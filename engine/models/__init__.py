"""Models: the model protocol, the loader registry, the backbone, QAConv and the global baseline.

``load_model(path, device)`` is the one entry that opens a checkpoint (any registered format).
Names are imported on first use: the settings (``ModelConfig``, ``Preprocessing``) and the
correspondence arithmetic need no torch, and a warm viewer launch reads them without it.
"""
from __future__ import annotations

import importlib
from typing import Any

# name -> the module of engine.models that defines it
_HOMES = {
    "FeatureMapBackbone": "backbone", "build_backbone": "backbone",
    "freeze_backbone_bn": "backbone", "preprocess": "backbone",
    "GlobalClassifier": "baseline", "pool_embeddings": "baseline",
    "ModelConfig": "config", "Preprocessing": "config",
    "Correspondence": "correspondence", "pair_correspondence": "correspondence",
    "load_model": "loading", "register_format": "loading",
    "NeedsInputSize": "importing", "import_checkpoint": "importing",
    "native_checkpoint": "importing", "build_resnet_trunk": "resnets",
    "ReIDModelProtocol": "protocol",
    "QAConv": "qaconv",
    "ReIDModel": "reid", "build_model": "reid",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
