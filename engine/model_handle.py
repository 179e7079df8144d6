"""The model a session ranks with, loaded when first needed, and what it keeps of it.

A session opened on a warm cache never needs the model: :class:`ModelHandle` loads it (and
torch, seconds) from the checkpoint on first use, resolves the device without importing torch
when the answer is "cpu" anyway, and keeps the folded head of QAConv's matcher in memory and
in the cache folder, so that looking at correspondences after a warm launch needs neither.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.cache_files import read_folded_head
from engine.features import warn_uncached
from engine.models.config import Preprocessing
from engine.utils import atomic_write_text

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

__all__ = ["ModelHandle", "gpu_driver_present", "resolve_device_lazily"]


def gpu_driver_present() -> bool:
    """Whether this machine may have a GPU torch can use (CUDA or ROCm), judged without torch.

    False only when that is certain, so ``auto`` resolves to the CPU without importing torch;
    True (or not Linux) leaves the answer to torch.
    """
    if sys.platform == "darwin":
        return False  # torch's macOS builds have no CUDA
    if not sys.platform.startswith("linux"):
        return True
    if any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")):
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def resolve_device_lazily(name: str) -> str | torch.device:
    """``resolve_device``, but ``"cpu"`` (a name) when that is certain without importing torch."""
    key = (name or "auto").lower()
    if key == "cpu" or (key == "auto" and not gpu_driver_present()):
        return "cpu"
    from engine.utils import resolve_device

    return resolve_device(name)


class ModelHandle:
    """A re-id model, given or loaded from ``checkpoint`` on first use of :attr:`model`.

    ``prep`` and ``method`` are the settings the caller keyed its caches by (from the
    checkpoint's JSON sidecar); a loaded model whose settings differ is refused.
    """

    def __init__(self, model, checkpoint: str | os.PathLike | None, device, *, prep: Preprocessing,
                 method: str, digest: str, cache_dir: Path):
        if model is None and checkpoint is None:
            raise ValueError("a model handle needs a model or a checkpoint to load it from")
        self._model, self.checkpoint, self._device = model, checkpoint, device
        self.prep, self.method, self.digest, self.cache_dir = prep, method, digest, cache_dir
        self._lock = threading.Lock()
        self._folded_head: tuple[np.ndarray, float, float] | None = None

    @property
    def device(self) -> torch.device | str:
        """The compute device: a ``torch.device``, or its name while torch is not imported."""
        if isinstance(self._device, str) and "torch" in sys.modules:
            import torch

            self._device = torch.device(self._device)
        return self._device

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        """The re-id model, loaded from the checkpoint (with torch) on first use."""
        with self._lock:  # two jobs may need it first at the same time
            if self._model is None:
                from engine.models import load_model

                model = load_model(self.checkpoint, self.device)
                if model.preprocessing != self.prep or model.method != self.method:
                    raise ValueError(f"the settings in the JSON sidecar of {self.checkpoint} differ "
                                     "from the checkpoint's; delete the sidecar and reopen")
                self._model = model
            return self._model

    @model.setter
    def model(self, model) -> None:
        self._model = model
        self._folded_head = None

    # ------------------------------------------------------------------ folded head
    def _head_path(self) -> Path:
        return self.cache_dir / "heads" / f"{self.digest}.json"

    def head_ready(self, size: int | None) -> bool:
        """Whether :meth:`folded_head` can answer without loading the model (and torch);
        ``size``: the number of map locations a cached head must have (None: not known yet)."""
        return self._folded_head is not None or (size is not None and self.cached_head(size) is not None)

    def cached_head(self, size: int) -> tuple[np.ndarray, float, float] | None:
        """The head in memory, or from the cache folder when it is valid for ``size`` locations
        (:func:`engine.cache_files.read_folded_head`: an invalid file is named and deleted)."""
        path = self._head_path()
        if self._folded_head is None and path.is_file():
            self._folded_head = read_folded_head(path, size)
        return self._folded_head

    def folded_head(self, size: int) -> tuple[np.ndarray, float, float]:
        """The model's eval-mode head as ``(weight float32 [H*W], bias, centre)`` (docs/arithmetic.md 2.7).

        ``centre`` is the matcher's typical similarity (``Correspondence.centre``). Kept in
        memory and in the cache folder (keyed by the checkpoint's digest), so that looking at
        correspondences after a warm launch needs neither the model nor torch.
        """
        head = self.cached_head(size)
        if head is not None:
            return head
        path = self._head_path()
        matcher = getattr(self.model, "matcher", None)
        if matcher is None or not hasattr(matcher, "folded_head"):
            raise ValueError("local correspondences need a QAConv model; this is the global baseline")
        weight, bias = matcher.folded_head()
        head = (weight.detach().cpu().numpy().astype(np.float32), float(bias),
                matcher.similarity_centre())
        # float32 -> repr float round-trips exactly through JSON
        try:
            atomic_write_text(path, json.dumps({"weight": [float(x) for x in head[0]],
                                                "bias": head[1], "centre": head[2]}))
        except OSError as exc:  # a read-only cache folder: kept in memory only
            warn_uncached(self.cache_dir, exc)
        self._folded_head = head
        return head
