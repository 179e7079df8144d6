"""Global-feature baseline on the same backbone: pooled embedding, softmax training, cosine ranking.

The embedding is the average of the backbone's *normalised* local features (every location a
unit vector), L2-normalised again. Pooling the normalised maps, rather than the neck's raw
output, means the float16 maps in the feature store serve both methods: the baseline needs
no second extraction, and every location weighs the same in the average as it does in
QAConv's matching.

For training, the pooled features go through a ``BatchNorm1d`` and a bias-free ``Linear``
classifier (softmax cross-entropy, :func:`engine.losses.softmax_ce`); the BatchNorm lets the
classifier see well-scaled inputs although the pooled vectors have norm at most 1. Ranking
uses the cosine of the embeddings (:func:`engine.models.scoring.score_global`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["GlobalClassifier", "pool_embeddings"]


def pool_embeddings(maps: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """Average pooling of feature maps.

    Parameters
    ----------
    maps
        ``[n, D, H, W]`` unit-norm local features (the backbone's output).
    normalize
        L2-normalise the pooled vectors (the ranking embedding).

    Returns
    -------
    torch.Tensor
        ``[n, D]`` embeddings.
    """
    if maps.dim() != 4:
        raise ValueError(f"maps must be feature maps [n, D, H, W]; got shape {tuple(maps.shape)}")
    pooled = maps.mean(dim=(2, 3))                       # [n, D]
    return F.normalize(pooled, dim=1) if normalize else pooled


class GlobalClassifier(nn.Module):
    """Identity classifier of the global baseline (used only for training).

    Parameters
    ----------
    num_features
        ``D``, channels of the feature maps.
    num_classes
        Training identities.
    """

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        if num_features < 1 or num_classes < 1:
            raise ValueError(f"num_features and num_classes must be positive; got {num_features}, {num_classes}")
        self.bn = nn.BatchNorm1d(num_features)
        self.fc = nn.Linear(num_features, num_classes, bias=False)
        nn.init.normal_(self.fc.weight, std=0.001)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Maps ``[B, D, H, W]`` (pooled here) or pooled features ``[B, D]`` -> logits ``[B, K]``."""
        if features.dim() == 4:
            features = pool_embeddings(features, normalize=False)   # [B, D]
        if features.dim() != 2:
            raise ValueError(f"features must be [B, D, H, W] or [B, D]; got shape {tuple(features.shape)}")
        return self.fc(self.bn(features))                          # [B, K]
