"""The model as the rest of the engine sees it: backbone + matcher, built from a ModelConfig.

``ReIDModel`` is what this tool's checkpoints hold and what training, scoring and the viewer
call; it implements :class:`engine.models.protocol.ReIDModelProtocol`: ``preprocessing``,
``features`` (images -> unit-norm maps), ``score`` (maps x maps -> scores, chunked) and
``correspondences`` (one pair's local matches). The global baseline shares the backbone and
ranks by the cosine of average-pooled maps; its correspondences are the exact split of that
cosine over locations (docs/arithmetic.md 2.9).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.models.backbone import build_backbone, freeze_backbone_bn
from engine.models.config import ModelConfig, Preprocessing
from engine.models.correspondence import Correspondence, global_correspondence
from engine.models.qaconv import QAConv
from engine.models.scoring import DEFAULT_SCORING_BUDGET, score_global, score_matrix

__all__ = ["ReIDModel", "build_model", "pooled_embeddings"]


def pooled_embeddings(maps) -> np.ndarray:
    """Global embeddings ``[n, D]``: the average over locations of maps ``[n, D, h, w]``."""
    if isinstance(maps, torch.Tensor):
        return maps.float().mean(dim=(2, 3)).cpu().numpy()
    out = np.empty(maps.shape[:2], np.float32)
    for start in range(0, len(maps), 1024):  # chunks: maps may be a large memory-mapped file
        out[start:start + 1024] = np.asarray(maps[start:start + 1024], np.float32).mean(axis=(2, 3))
    return out


class ReIDModel(nn.Module):
    """Backbone (ResNet to ``config.layer`` + neck) and, for QAConv, the matcher."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config)
        h, w = config.feature_size
        self.matcher = QAConv(config.embedding_dim, h, w) if config.method == "qaconv" else None
        # docs/arithmetic.md section 1 keeps the trunk's BatchNorm statistics frozen, which preserves ImageNet
        # statistics; a trunk trained from random initialisation has none worth keeping, so
        # training code turns this off for it.
        self.freeze_bn = True

    def train(self, mode: bool = True) -> ReIDModel:
        super().train(mode)
        if mode and self.freeze_bn:
            freeze_backbone_bn(self.backbone.body)  # frozen running statistics
        return self

    @property
    def method(self) -> str:
        """``"qaconv"`` or ``"global"``."""
        return self.config.method

    @property
    def preprocessing(self) -> Preprocessing:
        """What :func:`engine.models.preprocess` must do to images before :meth:`features`."""
        return self.config.preprocessing

    @property
    def has_correspondences(self) -> bool:
        """Whether :meth:`correspondences` can explain a pair exactly: yes for both methods
        (the baseline's average pooling splits exactly, docs/arithmetic.md 2.9)."""
        return True

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` (from :func:`engine.models.preprocess`) -> unit-norm maps
        ``[B, D, h, w]``, ``(h, w) = config.feature_size``."""
        return self.backbone(images)

    forward = features

    def backbone_for_maps(self) -> nn.Module:
        return self.backbone

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(ResNet trunk, neck + matcher): the trunk learns at a tenth of the rate."""
        trunk = list(self.backbone.body.parameters())
        head = list(self.backbone.neck.parameters())
        if self.matcher is not None:
            head += list(self.matcher.parameters())
        return trunk, head

    def score(self, probe_maps, gallery_maps, *, device, memory_budget: int = DEFAULT_SCORING_BUDGET,
              symmetric: bool = False, progress=None, cancel=None) -> np.ndarray:
        """Scores ``[p, g]`` (higher = more similar): QAConv logits, or cosines for the baseline."""
        if self.matcher is not None:
            return score_matrix(self.matcher, probe_maps, gallery_maps, device=device,
                                memory_budget=memory_budget, symmetric=symmetric,
                                progress=progress, cancel=cancel)
        out = score_global(pooled_embeddings(probe_maps), pooled_embeddings(gallery_maps), device=device)
        if progress is not None:
            progress(out.size, out.size)
        return out

    def correspondences(self, probe_map, gallery_map) -> Correspondence:
        """One pair's local matches and the exact split of its score: QAConv's logit, or the
        baseline's cosine of the average-pooled maps (the maps are its local embeddings)."""
        if self.matcher is None:
            return global_correspondence(np.asarray(_numpy(probe_map)), np.asarray(_numpy(gallery_map)))
        return self.matcher.correspondences(probe_map, gallery_map)


def _numpy(x):
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else x


def build_model(config: ModelConfig):
    """The model ``config`` describes, randomly initialised (or from ``config.pretrained``).

    A QAConv model or this tool's global baseline (a neck, maps) is a :class:`ReIDModel`; a
    global model without a neck (another project's: ResNet or OSNet trunk, pooled, a head) is
    a :class:`engine.models.global_model.GlobalModel` over the trunk of its architecture.
    """
    if not config.stores_embeddings:
        if config.is_osnet:
            raise ValueError(f"{config.arch} is a global model (method 'global', neck 0)")
        return ReIDModel(config)
    from engine.models.global_model import GlobalModel

    if config.is_osnet:
        from engine.models.osnet import build_osnet_trunk

        trunk, channels = build_osnet_trunk(config.arch)
    else:
        from engine.models.resnets import build_resnet_trunk

        trunk, channels = build_resnet_trunk(config)
    return GlobalModel(config, trunk, channels)
