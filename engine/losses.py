"""Training losses (docs/arithmetic.md section 3): class memory + focal and its variants, pairwise, triplet;
:func:`build_criterion` picks one by name for a model.

Every QAConv loss holds the matcher it trains (the matcher's parameters are loss parameters,
clipped separately from the model's, docs/arithmetic.md section 6). All losses return a scalar
``float32`` tensor, work on any device and under ``torch.autocast`` (the matcher's head and
the loss arithmetic run in float32 whatever the autocast dtype).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.baseline import GlobalClassifier
from engine.models.qaconv import QAConv
from engine.models.reid import ReIDModel

__all__ = [
    "MEMORY_MODES",
    "ClassMemoryLoss",
    "GlobalSoftmaxLoss",
    "PairwiseMatchingLoss",
    "TripletLoss",
    "batch_hard_triplet",
    "build_criterion",
    "focal_weights",
    "pairwise_bce",
    "softmax_ce",
]

MEMORY_MODES = ("focal", "bce", "softmax")


def _zero_like_graph(x: torch.Tensor) -> torch.Tensor:
    """A float32 zero that still belongs to ``x``'s graph (backward gives zero gradients)."""
    return x.float().sum() * 0.0


def _check_labels(labels: torch.Tensor, n: int, num_classes: int | None = None) -> torch.Tensor:
    if labels.dim() != 1 or labels.shape[0] != n:
        raise ValueError(f"labels must be [B] with B = {n} (one per feature map); got {tuple(labels.shape)}")
    labels = labels.long()
    if num_classes is not None and labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}] (num_classes = {num_classes}); "
                         f"got range [{int(labels.min())}, {int(labels.max())}]")
    return labels


def focal_weights(logits: torch.Tensor, targets: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """``(1 - sigma(s))^gamma`` for positives, ``sigma(s)^gamma`` for negatives (same shape)."""
    prob = torch.sigmoid(logits)
    return torch.where(targets > 0.5, 1.0 - prob, prob).pow(gamma)


def softmax_ce(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Softmax cross-entropy ``logits [B, K]`` vs ``labels [B]``, mean over the batch, float32."""
    labels = _check_labels(labels, logits.shape[0], logits.shape[1])
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def pairwise_bce(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """QAConv-GS pairwise matching loss from a batch's self-scores.

    ``L_i = sum_j BCE(S_ij, [y_i == y_j])`` (the diagonal counts as a positive), mean over i.

    Parameters
    ----------
    scores
        ``[B, B]`` logits of the batch against itself.
    labels
        ``[B]`` identities.
    """
    labels = _check_labels(labels, scores.shape[0])
    targets = (labels[:, None] == labels[None, :]).float()              # [B, B]
    loss = F.binary_cross_entropy_with_logits(scores.float(), targets, reduction="none")
    return loss.sum(dim=1).mean()


def batch_hard_triplet(scores: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss on similarity logits (docs/arithmetic.md section 3).

    ``pos_i = min_{j != i, y_j = y_i} S_ij``, ``neg_i = max_{y_j != y_i} S_ij``,
    ``L_i = max(0, margin - (pos_i - neg_i))``. Anchors without a positive or a negative in
    the batch, and non-finite losses, are dropped before averaging; with none left the loss
    is a zero that still backpropagates.

    Parameters
    ----------
    scores
        ``[B, B]`` logits (higher = more similar).
    labels
        ``[B]`` identities.
    margin
        In logit units (16 for QAConv).
    """
    labels = _check_labels(labels, scores.shape[0])
    scores = scores.float()
    same = labels[:, None] == labels[None, :]                          # [B, B]
    eye = torch.eye(len(labels), dtype=torch.bool, device=scores.device)
    pos_mask, neg_mask = same & ~eye, ~same
    pos = scores.masked_fill(~pos_mask, float("inf")).min(dim=1).values    # [B]
    neg = scores.masked_fill(~neg_mask, float("-inf")).max(dim=1).values   # [B]
    loss = (margin - (pos - neg)).clamp(min=0)                         # [B]
    keep = pos_mask.any(dim=1) & neg_mask.any(dim=1) & torch.isfinite(loss)
    if not bool(keep.any()):
        return _zero_like_graph(scores)
    return loss[keep].mean()


class PairwiseMatchingLoss(nn.Module):
    """QAConv-GS pairwise matching loss: BCE over ``S = QAConv(F, F)``, diagonal positive."""

    def __init__(self, matcher: QAConv):
        super().__init__()
        self.matcher = matcher

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``feats [B, C, H, W]``, ``labels [B]`` -> scalar loss."""
        return pairwise_bce(self.matcher(feats, feats), labels)        # scores [B, B]


class TripletLoss(nn.Module):
    """Batch-hard triplet loss on QAConv logits of the batch against itself (margin 16)."""

    def __init__(self, matcher: QAConv, margin: float = 16.0):
        super().__init__()
        self.matcher = matcher
        self.margin = float(margin)

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``feats [B, C, H, W]``, ``labels [B]`` -> scalar loss."""
        return batch_hard_triplet(self.matcher(feats, feats), labels, self.margin)


class ClassMemoryLoss(nn.Module):
    """Class memory loss of the ECCV paper (focal by default) and its appendix variants.

    A memory ``M [num_classes, C, H, W]`` holds one feature map per class: zeros at start,
    never differentiated, overwritten by :meth:`update_memory` after each optimiser step
    (no momentum; last write wins). Classes never written are left out of the loss.

    Parameters
    ----------
    matcher
        The QAConv matcher (trained through this loss).
    num_classes
        Training identities; labels lie in ``[0, num_classes)``.
    feat_shape
        ``(C, H, W)`` of one feature map.
    mode
        ``"focal"`` (BCE weighted by ``(1 - p_t)^2``, the paper's default), ``"bce"``
        (unweighted) or ``"softmax"`` (cross-entropy over the memory logits).
    triplet_margin
        If given, add a batch-hard triplet loss on the batch's own QAConv logits with this
        margin (the appendix's "+ triplet" variants).
    class_chunk
        Classes matched per block.

    Notes
    -----
    The logits against the memory are computed in chunks of classes, but the matcher's
    head normalises them together: in training mode its BatchNorms see the statistics of
    all ``B x valid classes`` pairs of the step (the published code normalised each chunk
    separately, which makes a logit depend on how classes are chunked).
    """

    def __init__(self, matcher: QAConv, num_classes: int, feat_shape: tuple[int, int, int],
                 mode: str = "focal", triplet_margin: float | None = None, class_chunk: int = 256):
        super().__init__()
        if mode not in MEMORY_MODES:
            raise ValueError(f"mode must be one of {', '.join(MEMORY_MODES)}; got {mode!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive; got {num_classes}")
        if class_chunk < 1:
            raise ValueError(f"class_chunk must be positive; got {class_chunk}")
        expected = (matcher.num_features, matcher.height, matcher.width)
        if tuple(feat_shape) != expected:
            raise ValueError(f"feat_shape {tuple(feat_shape)} does not match the matcher's {expected}")
        self.matcher = matcher
        self.num_classes, self.mode, self.class_chunk = int(num_classes), mode, int(class_chunk)
        self.triplet_margin = None if triplet_margin is None else float(triplet_margin)
        self.register_buffer("memory", torch.zeros(num_classes, *feat_shape))
        self.register_buffer("valid", torch.zeros(num_classes, dtype=torch.bool))

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, mode={self.mode!r}, "
                f"triplet_margin={self.triplet_margin}")

    def memory_logits(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the batch against every written class.

        Returns
        -------
        logits : torch.Tensor
            ``float32 [B, K]``, K = written classes (differentiable w.r.t. ``feats`` and the
            matcher, not the memory).
        classes : torch.Tensor
            ``[K]`` the class index of each column.
        """
        classes = self.valid.nonzero().squeeze(1)                       # [K]
        if classes.numel() == 0:
            return feats.new_zeros(feats.shape[0], 0, dtype=torch.float32), classes
        maxima = [self.matcher.pair_maxima(feats, self.memory[chunk].to(feats.dtype))
                  for chunk in classes.split(self.class_chunk)]          # each [B, k, 2, hw]
        return self.matcher.head(torch.cat(maxima, dim=1)), classes      # [B, K]

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``feats [B, C, H, W]``, ``labels [B]`` -> scalar loss (mean over the batch)."""
        labels = _check_labels(labels, feats.shape[0], self.num_classes)
        logits, classes = self.memory_logits(feats)                      # [B, K]
        if classes.numel() == 0:
            loss = _zero_like_graph(feats)
        elif self.mode == "softmax":
            column = torch.full((self.num_classes,), -1, dtype=torch.long, device=labels.device)
            column[classes] = torch.arange(len(classes), device=labels.device)
            target = column[labels]                                      # [B], -1 = not in memory yet
            keep = target >= 0
            loss = (F.cross_entropy(logits[keep], target[keep]) if bool(keep.any())
                    else _zero_like_graph(logits))
        else:
            targets = (labels[:, None] == classes[None, :]).float()      # [B, K]
            loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
            if self.mode == "focal":
                loss = loss * focal_weights(logits, targets)
            loss = loss.sum(dim=1).mean()
        if self.triplet_margin is not None:
            loss = loss + batch_hard_triplet(self.matcher(feats, feats), labels, self.triplet_margin)
        return loss

    @torch.no_grad()
    def update_memory(self, feats: torch.Tensor, labels: torch.Tensor) -> None:
        """``M[y_i] = f_i`` for the batch; with repeated labels the last sample wins."""
        labels = _check_labels(labels, feats.shape[0], self.num_classes).to(self.memory.device)
        position = torch.arange(len(labels), device=labels.device)
        last = torch.full((self.num_classes,), -1, dtype=torch.long, device=labels.device)
        last.scatter_reduce_(0, labels, position, reduce="amax")         # [num_classes]
        written = (last >= 0).nonzero().squeeze(1)
        self.memory[written] = feats.detach()[last[written].to(feats.device)].to(self.memory)
        self.valid[written] = True


class GlobalSoftmaxLoss(nn.Module):
    """Softmax cross-entropy of the global baseline; holds its identity classifier."""

    def __init__(self, classifier: nn.Module, label_smoothing: float = 0.0):
        super().__init__()
        self.classifier = classifier
        self.label_smoothing = float(label_smoothing)

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``feats [B, D, H, W]`` or ``[B, D]``, ``labels [B]`` -> scalar loss."""
        return softmax_ce(self.classifier(feats), labels, self.label_smoothing)


def build_criterion(model: ReIDModel, loss: str, num_classes: int, *,
                    triplet_margin: float = 16.0) -> nn.Module:
    """The training loss named ``loss`` (see ``engine.train.LOSSES``) for ``model``."""
    cfg = model.config
    if cfg.method == "global" or loss == "global":
        if cfg.method != "global":
            raise ValueError("the 'global' loss trains the global baseline: use --method global")
        return GlobalSoftmaxLoss(GlobalClassifier(cfg.neck, num_classes))
    base, _, extra = loss.partition("+")
    if extra not in ("", "triplet"):
        raise ValueError(f"unknown loss {loss!r}")
    margin = triplet_margin if extra == "triplet" else None
    if base in ("focal", "bce", "softmax"):
        return ClassMemoryLoss(model.matcher, num_classes, cfg.feature_shape, mode=base,
                               triplet_margin=margin)
    if base == "pairwise" and margin is None:
        return PairwiseMatchingLoss(model.matcher)
    if base == "triplet":
        return TripletLoss(model.matcher, margin=triplet_margin)
    raise ValueError(f"unknown loss {loss!r}")
