"""Checkpoints: one file holds the model settings, the weights and the training state.

Saving goes through a temporary file and a rename, so an interrupt never leaves a torn
checkpoint. Loading uses ``weights_only=True``: a checkpoint is data, never code.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from .utils import atomic_path, atomic_write_text

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model it is loaded into."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically to ``path``.

    The model settings (``state["config"]``) are also written beside it as JSON, so a
    person can read what a checkpoint is without loading it.
    """
    import json

    state = {"format_version": FORMAT_VERSION, **state}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    if "config" in state:
        settings = {"config": state["config"], "train": state.get("train_settings"),
                    "epoch": state.get("epoch")}
        atomic_write_text(Path(path).with_suffix(".json"), json.dumps(settings, indent=2, default=str))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint onto the CPU without running any code from it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path} is not a readable checkpoint: {exc}") from exc
    if not isinstance(state, dict) or "config" not in state:
        raise CheckpointError(f"{path} is not a checkpoint of this tool (no model settings inside)")
    return state


def load_state_strict(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Load weights, and when they do not fit say exactly which names and shapes differ."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state_dict)) if own[k].shape != state_dict[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if shapes:
            parts.append("shapes differ: " + "; ".join(shapes[:8]) + (" ..." if len(shapes) > 8 else ""))
        if missing:
            parts.append("missing in checkpoint: " + ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else ""))
        if unexpected:
            parts.append("not in model: " + ", ".join(unexpected[:8]) + (" ..." if len(unexpected) > 8 else ""))
        raise CheckpointError(f"the checkpoint's {what} does not fit the model: " + " | ".join(parts))
    module.load_state_dict(state_dict)


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Content hash of a file (keys the caches: a retrained checkpoint is a new key)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """Content hash of weights held in memory (for models not loaded from a file)."""
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()
