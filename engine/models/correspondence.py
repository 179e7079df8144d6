"""One pair's local matches and the exact split of its score (NumPy only, no torch).

QAConv: :func:`pair_correspondence`. Global (pooled-feature) models: :func:`global_correspondence`
(docs/arithmetic.md 2.9), which returns the same structure so the inspector draws both alike.

QAConv's eval-mode logit is additive over local matches (docs/arithmetic.md 2.7): with the folded head
``w [hw]``, ``c`` and the best-match cosines ``a`` (probe side) and ``b`` (gallery side),
``logit = sum_s w_s a_s + sum_r w_r b_r + c``. :func:`pair_correspondence` computes ``a``,
``b``, their argmax indices and that decomposition from two feature maps; it needs only the
maps and the folded head, so a session can explain a pair without loading the model
(:mod:`engine.explain.inspect` turns the result into what the viewer draws).

Sides are named ``"probe"`` (the query) and ``"gallery"``; locations are flat indices
``row * W + col`` into an ``H x W`` feature map.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Correspondence", "global_correspondence", "pair_correspondence"]


class Correspondence(NamedTuple):
    """QAConv's local matches for one probe / gallery pair (docs/arithmetic.md 2.7).

    Attributes
    ----------
    probe_heatmap
        ``float32 [H, W]``: for each probe location its best cosine over gallery locations (``a``).
    gallery_heatmap
        ``float32 [H, W]``: for each gallery location its best cosine over probe locations (``b``).
    probe_to_gallery
        ``int64 [H*W]``: flat index of the gallery location each probe location matched.
    gallery_to_probe
        ``int64 [H*W]``: flat index of the probe location each gallery location matched.
    logit
        The pair's eval-mode logit (higher = more similar).
    probe_contribution
        ``float32 [H, W]``: ``w * a``, each probe location's share of the logit.
    gallery_contribution
        ``float32 [H, W]``: ``w * b``, each gallery location's share of the logit.
    bias
        The folded head's constant ``c``; ``probe_contribution.sum() +
        gallery_contribution.sum() + bias == logit``.
    weight
        ``float32 [H, W]``: the folded head's weights ``w`` (None if not given).
    centre
        A typical best-match similarity (the matcher's first BatchNorm mean, ``mu``), for
        :meth:`relative_contribution`; 0 when not given.
    method
        ``"qaconv"`` (the split of a logit, above) or ``"global"`` (the split of the cosine of
        two average-pooled embeddings, :func:`global_correspondence`).
    note
        What the split assumes, for the user (e.g. a head's ReLU masks held fixed); "" if nothing.

    Notes
    -----
    A trained matcher normalises the maxima with a small variance (the demo's: mean 0.972,
    standard deviation 0.01), so ``w * a`` is nearly ``w * mu`` for every pair and mostly
    shows the head's weights. ``w * (a - mu)`` (with the bias absorbing ``2 * mu * sum(w)``)
    is the same logit, split relative to an average match: it shows what this pair adds.
    """

    probe_heatmap: np.ndarray
    gallery_heatmap: np.ndarray
    probe_to_gallery: np.ndarray
    gallery_to_probe: np.ndarray
    logit: float
    probe_contribution: np.ndarray
    gallery_contribution: np.ndarray
    bias: float
    weight: np.ndarray | None = None
    centre: float = 0.0
    method: str = "qaconv"
    note: str = ""

    def heatmap(self, side: str) -> np.ndarray:
        return self.probe_heatmap if side == "probe" else self.gallery_heatmap

    def contribution(self, side: str) -> np.ndarray:
        return self.probe_contribution if side == "probe" else self.gallery_contribution

    @property
    def has_relative(self) -> bool:
        """Whether there is a relative split (QAConv's head); a global model has none (its
        :meth:`relative_contribution` is the contribution itself)."""
        return self.method == "qaconv" and self.weight is not None

    def relative_contribution(self, side: str) -> np.ndarray:
        """``w * (a - centre)`` (or ``b``): the contribution relative to an average match
        (the contribution itself when there is no head: global models)."""
        if not self.has_relative:
            return self.contribution(side)
        return (self.contribution(side) - self.weight * np.float32(self.centre)).astype(np.float32)

    @property
    def relative_bias(self) -> float:
        """The bias of the relative split: ``bias + 2 * centre * sum(w)``."""
        if not self.has_relative:
            return self.bias
        return float(self.bias + 2.0 * self.centre * self.weight.sum(dtype=np.float64))

    def matches(self, side: str) -> np.ndarray:
        """For each location of ``side``, the flat index of its match on the other side."""
        return self.probe_to_gallery if side == "probe" else self.gallery_to_probe


def _as_locations(feature_map, name: str) -> np.ndarray:
    m = np.asarray(feature_map)
    if m.ndim != 3:
        raise ValueError(f"{name} must be one feature map [C, H, W]; got shape {m.shape}")
    return m.reshape(m.shape[0], -1).astype(np.float32)                 # [C, hw]


def pair_correspondence(probe_map, gallery_map, weight, bias: float,
                        centre: float = 0.0) -> Correspondence:
    """Local matches of one pair and the exact decomposition of its logit.

    Parameters
    ----------
    probe_map, gallery_map
        ``[C, H, W]`` unit-norm feature maps (any float dtype; float16 from the feature store
        is computed in float32, as the CPU scoring path does).
    weight, bias
        The folded eval-mode head (``QAConv.folded_head``): ``weight [H*W]``, scalar ``bias``.
    centre
        A typical similarity for the relative split (``Correspondence.centre``).

    Returns
    -------
    Correspondence
    """
    p = _as_locations(probe_map, "probe_map")
    g = _as_locations(gallery_map, "gallery_map")
    if p.shape != g.shape:
        raise ValueError(f"probe and gallery maps differ in shape: {np.shape(probe_map)} vs "
                         f"{np.shape(gallery_map)}")
    shape = np.shape(probe_map)[1:]
    w = np.asarray(weight, np.float32).reshape(-1)
    if w.shape[0] != p.shape[1]:
        raise ValueError(f"the head has {w.shape[0]} weights but the maps have {p.shape[1]} locations")
    sim = p.T @ g                                                        # [hw_s, hw_r]
    probe_to_gallery = sim.argmax(axis=1)                                # [hw_s]
    gallery_to_probe = sim.argmax(axis=0)                                # [hw_r]
    s = np.arange(sim.shape[0])
    a = sim[s, probe_to_gallery]                                         # [hw_s]
    b = sim[gallery_to_probe, s]                                         # [hw_r]
    probe_contribution, gallery_contribution = w * a, w * b
    bias = float(bias)
    logit = float(probe_contribution.sum(dtype=np.float64)
                  + gallery_contribution.sum(dtype=np.float64) + bias)
    return Correspondence(
        probe_heatmap=a.reshape(shape), gallery_heatmap=b.reshape(shape),
        probe_to_gallery=probe_to_gallery.astype(np.int64),
        gallery_to_probe=gallery_to_probe.astype(np.int64), logit=logit,
        probe_contribution=probe_contribution.reshape(shape),
        gallery_contribution=gallery_contribution.reshape(shape), bias=bias,
        weight=w.reshape(shape), centre=float(centre))


def global_correspondence(probe_local, gallery_local, *, note: str = "") -> Correspondence:
    """The exact split of a global model's score, the cosine of two average-pooled embeddings.

    With local embeddings ``A_i`` (``N`` probe locations) and ``B_j`` (``M`` gallery locations)
    whose averages ``a``, ``b`` are the two embeddings, ``cos(a, b) = sum_ij A_i.B_j /
    (N M |a| |b|)`` (docs/arithmetic.md 2.9). The pair terms ``P_ij`` sum to the score; probe
    location ``i`` contributes its row ``sum_j P_ij = A_i.b / (N |a| |b|)``, gallery location
    ``j`` its column ``a.B_j / (M |a| |b|)``. Each side's contributions alone add up to the
    score, so each is given here halved: query + gallery add up to it as QAConv's do (bias 0).

    Each location's match is the location of the other side with the largest pair term; the
    heatmaps hold the cosine of the two local embeddings so matched (0 for a zero vector).

    Parameters
    ----------
    probe_local, gallery_local
        Local embeddings ``[E, h, w]`` and ``[E, h', w']`` (any float dtype, computed in
        float64) whose averages over locations are the embeddings the model ranks by: for this
        project's global baseline, the unit-norm feature maps themselves.
    note
        What the split assumes (e.g. ``"exact given the pair's ReLU masks"``), shown to the user.

    Returns
    -------
    Correspondence
        ``method="global"``; ``logit`` is the cosine; ``weight`` None (no head: the relative
        split is the contribution itself).
    """
    maps = [np.asarray(m) for m in (probe_local, gallery_local)]
    for m, name in zip(maps, ("probe_local", "gallery_local"), strict=True):
        if m.ndim != 3:
            raise ValueError(f"{name} must be local embeddings [E, h, w]; got shape {m.shape}")
    if maps[0].shape[0] != maps[1].shape[0]:
        raise ValueError(f"probe and gallery embeddings differ in size: {maps[0].shape[0]} vs "
                         f"{maps[1].shape[0]}")
    A, B = (m.reshape(m.shape[0], -1).astype(np.float64) for m in maps)   # [E, N], [E, M]
    n, m_ = A.shape[1], B.shape[1]
    a, b = A.mean(axis=1), B.mean(axis=1)
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        raise ValueError("an embedding is zero: its cosine, and so its split, is undefined")
    dots = A.T @ B                                                       # [N, M]
    scale = 1.0 / (n * m_ * na * nb)
    probe_contribution = dots.sum(axis=1) * scale                        # A_i.b / (N|a||b|)
    gallery_contribution = dots.sum(axis=0) * scale                      # a.B_j / (M|a||b|)
    probe_to_gallery, gallery_to_probe = dots.argmax(axis=1), dots.argmax(axis=0)
    norm_a, norm_b = np.linalg.norm(A, axis=0), np.linalg.norm(B, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = np.nan_to_num(dots / np.outer(norm_a, norm_b), nan=0.0, posinf=0.0, neginf=0.0)
    probe_sim = cosines[np.arange(n), probe_to_gallery]
    gallery_sim = cosines[gallery_to_probe, np.arange(m_)]
    score = float(a @ b / (na * nb))
    ps, gs = maps[0].shape[1:], maps[1].shape[1:]
    return Correspondence(
        probe_heatmap=probe_sim.reshape(ps).astype(np.float32),
        gallery_heatmap=gallery_sim.reshape(gs).astype(np.float32),
        probe_to_gallery=probe_to_gallery.astype(np.int64),
        gallery_to_probe=gallery_to_probe.astype(np.int64), logit=score,
        probe_contribution=(0.5 * probe_contribution).reshape(ps).astype(np.float32),
        gallery_contribution=(0.5 * gallery_contribution).reshape(gs).astype(np.float32),
        bias=0.0, weight=None, centre=0.0, method="global", note=note)
