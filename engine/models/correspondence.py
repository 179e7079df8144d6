"""One pair's local matches under QAConv and the exact split of its logit (NumPy only, no torch).

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

__all__ = ["Correspondence", "pair_correspondence"]


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

    def heatmap(self, side: str) -> np.ndarray:
        return self.probe_heatmap if side == "probe" else self.gallery_heatmap

    def contribution(self, side: str) -> np.ndarray:
        return self.probe_contribution if side == "probe" else self.gallery_contribution

    def relative_contribution(self, side: str) -> np.ndarray:
        """``w * (a - centre)`` (or ``b``): the contribution relative to an average match."""
        return (self.contribution(side) - self.weight * np.float32(self.centre)).astype(np.float32)

    @property
    def relative_bias(self) -> float:
        """The bias of the relative split: ``bias + 2 * centre * sum(w)``."""
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
