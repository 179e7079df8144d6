"""Checkpoints: one file holds the model settings, the weights and the training state.

Saving goes through a temporary file and a rename, so an interrupt never leaves a torn
checkpoint. Loading uses ``weights_only=True``: a checkpoint is data, never code.

torch is imported inside the functions that need it: the cache keys (``file_digest``) and the
JSON sidecar (``read_sidecar_config``) serve a warm viewer launch, which never loads the model.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.utils import atomic_path, atomic_write_text

if TYPE_CHECKING:
    import torch

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model it is loaded into."""


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) atomically to ``path``.

    The model settings (``state["config"]``) are also written beside it as JSON, so a
    person can read what a checkpoint is without loading it. The sidecar also records the
    checkpoint file's digest, so a reader can tell whether it still describes that file.
    """
    import torch

    state = {"format_version": FORMAT_VERSION, **state}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    if "config" in state:
        write_sidecar(path, state, bytes_digest(buffer.getbuffer()))


def write_sidecar(path: str | os.PathLike, state: dict[str, Any], digest: str) -> None:
    """Write the JSON sidecar of checkpoint ``path`` (whose content is ``state``, hash ``digest``)."""
    settings = {"config": state["config"], "train": state.get("train_settings"),
                "epoch": state.get("epoch"), "checkpoint_digest": digest}
    atomic_write_text(sidecar_path(path), json.dumps(settings, indent=2, default=str))


def read_tensor_file(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """``torch.load`` onto the CPU with ``weights_only=True``, failing in our words.

    Never torch's advice to retry with ``weights_only=False``: a file that is missing, damaged,
    not a torch file, or that holds objects other than plain tensors, numbers (NumPy scalars
    included: other projects save their scores so), strings, lists and dicts (refused for
    safety) raises :class:`CheckpointError` naming it.
    """
    import pickle
    import warnings
    import zipfile

    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            # Torch's notes on foreign pickle data ("file an issue ...") are not for our users:
            # such a file either loads as plain tensors or is refused below in our words.
            warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
            with _numpy_scalars_allowed():
                return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's own files are zip archives; anything else failing to unpickle is foreign.
        if "weights_only" in str(exc) and zipfile.is_zipfile(path):
            raise CheckpointError(
                f"{what} {path} holds objects other than plain tensors and settings (code or "
                "classes to import); refused for safety") from exc
        raise CheckpointError(f"{what} {path} is damaged or not a torch weights file") from exc
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{what} {path} is damaged or not a torch weights file") from exc


def _numpy_scalars_allowed():
    """A context in which ``weights_only`` loading also reads NumPy scalars (a number, e.g.
    torchreid's ``rank1``: a dtype and the scalar's bytes; data only, nothing else of NumPy, no
    arrays, no callables). A torch without ``safe_globals`` (before 2.5) keeps refusing them."""
    import contextlib

    import numpy as np
    import torch

    if not hasattr(torch.serialization, "safe_globals"):
        return contextlib.nullcontext()

    dtypes = [type(np.dtype(t)) for t in ("float16", "float32", "float64", "int32", "int64", "bool")]
    core = getattr(np, "_core", None) or np.core  # NumPy 2 renamed np.core
    scalar = core.multiarray.scalar
    allowed = [scalar, np.dtype, *dtypes]
    if tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 6):
        allowed.append((scalar, "numpy.core.multiarray.scalar"))  # written under NumPy 1
    return torch.serialization.safe_globals(allowed)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint onto the CPU without running any code from it (see
    :func:`read_tensor_file`); it must hold this tool's model settings."""
    state = read_tensor_file(path)
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise CheckpointError(f"{path} is not a checkpoint of this tool (no model settings inside)")
    return state


def nonfinite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors in ``tensors`` holding NaN or infinity."""
    import torch

    return [name for name, t in tensors.items()
            if isinstance(t, torch.Tensor) and t.is_floating_point()
            and not bool(torch.isfinite(t).all())]


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


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON file :func:`save_checkpoint` writes beside checkpoint ``path``."""
    return Path(path).with_suffix(".json")


def read_sidecar_config(path: str | os.PathLike, digest: str) -> dict[str, Any] | None:
    """The model settings from the sidecar of checkpoint ``path``, without loading it (nor torch).

    Returns None when the sidecar is absent, unreadable, or does not record ``digest`` (the
    checkpoint's :func:`file_digest`): a stale or foreign sidecar must not key the caches.
    """
    try:
        settings = json.loads(sidecar_path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(settings, dict) or settings.get("checkpoint_digest") != digest:
        return None
    config = settings.get("config")
    return config if isinstance(config, dict) else None


def bytes_digest(data: bytes | memoryview) -> str:
    """Content hash of bytes in memory; equal to :func:`file_digest` of a file holding them."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Content hash of a file (keys the caches: a retrained checkpoint is a new key)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """Content hash of weights held in memory (for models not loaded from a file)."""
    import torch

    h = hashlib.blake2b(digest_size=16)
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tensor.dtype).encode())
        h.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return h.hexdigest()
