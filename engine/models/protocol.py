"""What every re-id model offers the rest of the engine, whatever project its weights come from.

:class:`ReIDModelProtocol` is a structural type (``typing.Protocol``): a model implements it by
having these members, not by inheriting. :class:`engine.models.reid.ReIDModel` implements it
for QAConv and the global baseline; an importer of another project's checkpoints registers a
loader (:func:`engine.models.loading.register_format`) that returns such a model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import torch

    from engine.jobs import CancelFn, ProgressFn
    from engine.models.config import Preprocessing
    from engine.models.correspondence import Correspondence

__all__ = ["ReIDModelProtocol"]


@runtime_checkable
class ReIDModelProtocol(Protocol):
    """A person re-identification model as the session, CLI and viewer use it.

    Attributes
    ----------
    method
        How it ranks: ``"qaconv"`` (local matching of feature maps) or ``"global"`` (cosine of
        pooled embeddings).
    preprocessing
        What :func:`engine.models.preprocess` does to RGB images before :meth:`features`:
        input size, scaling to [0, 1], mean / std.
    has_correspondences
        Whether :meth:`correspondences` explains a pair exactly: QAConv and average-pooled
        global models do (docs/arithmetic.md 2.7, 2.9); max- or GeM-pooled ones do not.
    """

    @property
    def method(self) -> str: ...

    @property
    def preprocessing(self) -> Preprocessing: ...

    @property
    def has_correspondences(self) -> bool: ...

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``[B, 3, H, W]`` -> what :meth:`score` compares: feature maps
        ``[B, D, h, w]`` (or embeddings ``[B, D]`` for a model that has no maps)."""
        ...

    def score(self, probe: Any, gallery: Any, *, device: torch.device | str,
              memory_budget: int = ..., symmetric: bool = False,
              progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> np.ndarray:
        """Scores ``float32 [p, g]`` of every probe x gallery pair of :meth:`features` outputs
        (NumPy, possibly memory-mapped float16, or torch); higher = more similar."""
        ...

    def correspondences(self, probe_map: Any, gallery_map: Any) -> Correspondence:
        """One pair's local matches and the exact split of its score (a global model: of its
        local embeddings, ``[E, h, w]``); raises ``ValueError`` when :attr:`has_correspondences`
        is False."""
        ...
