"""Global-feature models of other projects: a trunk, average pooling and a small head; cosine ranking.

:class:`GlobalModel` holds a model imported from torchreid or fast-reid (an OSNet or ResNet
trunk, :mod:`engine.models.osnet`, :mod:`engine.models.resnets`) and implements
:class:`engine.models.protocol.ReIDModelProtocol` with method ``"global"``. Its embedding is the
peer's eval-mode output, computed the way the peer computes it:

- ``"pool"``: the average of the trunk's maps (torchreid's ResNet-50);
- ``"bnneck"``: BatchNorm1d of that average (fast-reid's BoT neck);
- ``"fc"``: Linear, BatchNorm1d, ReLU of that average (torchreid's OSNet, 512-d).

Why a pair scores as it does is split exactly over locations (docs/arithmetic.md 2.9): each
head is, in eval mode, an affine map of the pooled vector (BatchNorm folded into the Linear),
so applying that map to every location gives local embeddings whose average is the embedding
itself (:meth:`GlobalModel.local_embeddings`). The fc head's ReLU is not affine; applying the
pooled vector's ReLU mask to every location keeps the average exact, so that split is exact
given the pair's masks (and says so).

State-dict names: ``trunk.<the trunk's own names>``, ``head.bn.*`` (bnneck, fc) and
``head.linear.*`` (fc), so converting a peer's checkpoint is a change of prefixes.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.models.config import HEADS
from engine.models.correspondence import Correspondence, global_correspondence
from engine.models.scoring import DEFAULT_SCORING_BUDGET, score_global

__all__ = ["EmbeddingHead", "GlobalModel"]

# What each head's split assumes, shown with the explanation.
_NOTES = {
    "pool": "",
    "bnneck": "BN neck folded into every location (an affine map per channel)",
    "fc": "exact given the pair's ReLU masks (OSNet's Linear + BN + ReLU head folded into every "
          "location)",
}


def _fold_bn(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``scale * x + shift`` (running statistics)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)             # [E]
    return scale, bn.bias - bn.running_mean * scale


class EmbeddingHead(nn.Module):
    """What turns the pooled trunk output ``[B, C]`` into the embedding ``[B, E]``.

    Parameters
    ----------
    kind
        One of :data:`HEADS`.
    channels
        ``C``, the trunk's output channels.
    dim
        ``E`` for ``"fc"`` (the Linear's outputs); ignored by the other heads (``E = C``).
    """

    def __init__(self, kind: str, channels: int, dim: int = 0):
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}; got {kind!r}")
        if kind == "fc" and (not isinstance(dim, int) or dim < 1):
            raise ValueError(f"an fc head needs its output size (head_dim >= 1); got {dim!r}")
        self.kind = kind
        self.dim = dim if kind == "fc" else channels
        if kind == "fc":
            self.linear = nn.Linear(channels, dim)
        if kind in ("fc", "bnneck"):
            self.bn = nn.BatchNorm1d(self.dim)

    def pre_activation(self, pooled: torch.Tensor) -> torch.Tensor:
        """The head before its ReLU (the embedding for "pool" and "bnneck"): ``[B, C] -> [B, E]``."""
        if self.kind == "fc":
            pooled = self.linear(pooled)
        return self.bn(pooled) if self.kind != "pool" else pooled

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        z = self.pre_activation(pooled)
        return z.relu() if self.kind == "fc" else z

    def affine(self) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """The eval-mode pre-activation as ``matrix @ x * scale + shift`` with BatchNorm folded:
        ``(matrix [E, C] or None, scale [E] or None, shift [E] or None)``; None is identity/zero."""
        if self.kind == "pool":
            return None, None, None
        scale, shift = _fold_bn(self.bn)
        if self.kind == "bnneck":
            return None, scale, shift
        return self.linear.weight, scale, shift + self.linear.bias * scale


class GlobalModel(nn.Module):
    """A trunk, average pooling and an :class:`EmbeddingHead`; ranks by cosine.

    Parameters
    ----------
    config
        The model's settings; read here: ``head``, ``head_dim`` and ``preprocessing``.
    trunk
        ``[B, 3, H, W] -> [B, C, h, w]`` feature maps before pooling.
    trunk_channels
        ``C``.

    Everything here assumes eval mode (running BatchNorm statistics): these models are
    inspected, not trained.
    """

    def __init__(self, config, trunk: nn.Module, trunk_channels: int):
        super().__init__()
        self.config = config
        self.trunk = trunk
        self.head = EmbeddingHead(config.head, trunk_channels, config.head_dim)

    @property
    def method(self) -> str:
        return "global"

    @property
    def preprocessing(self):
        """What :func:`engine.models.preprocess` must do to images before :meth:`features`."""
        return self.config.preprocessing

    @property
    def has_correspondences(self) -> bool:
        """True: average pooling and an affine (or masked affine) head split exactly."""
        return True

    @property
    def embedding_dim(self) -> int:
        """``E``, the size of :meth:`features`' vectors."""
        return self.head.dim

    def trunk_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``[B, 3, H, W]`` -> the trunk's maps ``[B, C, h, w]`` (before pooling)."""
        return self.trunk(images)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``[B, 3, H, W]`` -> embeddings ``[B, E]``, the peer's eval output
        (not normalised)."""
        return self.head(self.trunk(images).mean(dim=(2, 3)))

    forward = features

    def backbone_for_maps(self) -> nn.Module:
        """What the feature store runs over images: the embeddings as ``[B, E, 1, 1]`` maps."""
        return _EmbeddingsAsMaps(self)

    def local_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images -> local embeddings ``[B, E, h, w]`` whose average over locations
        is :meth:`features` (to float rounding): the head's folded affine map applied at every
        location; for "fc" times the ReLU mask of the image's pooled pre-activation."""
        maps = self.trunk(images)                                          # [B, C, h, w]
        matrix, scale, shift = self.head.affine()
        local = maps if matrix is None else torch.einsum("ec,bchw->behw", matrix, maps)
        if scale is not None:
            local = local * scale[:, None, None] + shift[:, None, None]   # [B, E, h, w]
        if self.head.kind == "fc":
            mask = self.head.pre_activation(maps.mean(dim=(2, 3))) > 0     # [B, E]
            local = local * mask[:, :, None, None]
        return local

    def score(self, probe, gallery, *, device, memory_budget: int = DEFAULT_SCORING_BUDGET,
              symmetric: bool = False, progress=None, cancel=None) -> np.ndarray:
        """Cosines ``float32 [p, g]`` of embeddings ``[p, E]`` and ``[g, E]`` (:meth:`features`;
        also ``[n, E, 1, 1]``, as the feature store keeps them)."""
        out = score_global(_vectors(probe, "probe"), _vectors(gallery, "gallery"), device=device)
        if progress is not None:
            progress(out.size, out.size)
        return out

    def correspondences(self, probe_local, gallery_local) -> Correspondence:
        """The exact split of one pair's cosine over locations, from the two images' local
        embeddings ``[E, h, w]`` (:meth:`local_embeddings` of one image each)."""
        return global_correspondence(_numpy(probe_local), _numpy(gallery_local),
                                     note=_NOTES[self.head.kind])

    @torch.no_grad()
    def explain_pair(self, probe_image: torch.Tensor, gallery_image: torch.Tensor) -> Correspondence:
        """The exact split of the cosine of two preprocessed images ``[3, H, W]`` (each may have
        its own size): their local embeddings, computed here on the model's device, split by
        :meth:`correspondences`. What a caller that stores only embeddings explains a pair with."""
        device = next(self.parameters()).device
        local = [self.local_embeddings(x[None].to(device))[0] for x in (probe_image, gallery_image)]
        return self.correspondences(*local)


class _EmbeddingsAsMaps(nn.Module):
    def __init__(self, model: GlobalModel):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.features(images)[:, :, None, None]              # [B, E, 1, 1]


def _numpy(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _vectors(x, name: str):
    """Embeddings ``[n, E]`` from ``[n, E]`` or ``[n, E, 1, 1]`` (NumPy or torch)."""
    shape = tuple(x.shape)
    if len(shape) == 4 and shape[2:] == (1, 1):
        return x.reshape(shape[:2])
    if len(shape) != 2:
        raise ValueError(f"{name} must be embeddings [n, E] or [n, E, 1, 1]; got shape {shape}")
    return x
