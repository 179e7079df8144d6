"""Chunked probe x gallery scoring under a memory budget (docs/arithmetic.md 2.8).

``score_matrix`` turns two sets of feature maps into the eval-mode QAConv logits ``[p, g]``.
The maps may be float16 NumPy arrays memory-mapped from the feature store, so they are
converted tile by tile: the gallery in large tiles (each converted once), the probes in
small tiles inside (one progress report and cancel check per probe x gallery tile). Inside a
tile the folded matcher (:func:`engine.models.qaconv.folded_scores`) works block by block:
one matmul, two max reductions and a weighted sum per block of pairs, with reused buffers.

``memory_budget`` (bytes) is split in two halves: one for the similarity block, one for the
converted feature tiles. On the CPU the block is additionally capped at a cache-friendly
size (:data:`engine.models.qaconv.CPU_BLOCK_PAIRS`), because larger blocks only add memory
traffic there.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.jobs import CancelFn, ProgressFn, check_cancel, report
from engine.models.qaconv import (
    CPU_BLOCK_PAIRS,
    QAConv,
    block_shape,
    folded_scores,
    gallery_columns,
    probe_rows,
)

__all__ = ["DEFAULT_SCORING_BUDGET", "default_score_dtype", "mirror_upper", "score_global", "score_matrix"]

DEFAULT_SCORING_BUDGET = 512 * 2**20
# Pairs per progress unit: about a second of CPU work at the published shapes.
_UNIT_PAIRS = 1 << 15
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

MapsLike = np.ndarray | torch.Tensor


def default_score_dtype(device: torch.device) -> torch.dtype:
    """Half precision on CUDA (docs/arithmetic.md 2.8), float32 elsewhere."""
    return torch.float16 if device.type == "cuda" else torch.float32


def _check_maps(maps: MapsLike, name: str, matcher: QAConv) -> None:
    expected = (matcher.num_features, matcher.height, matcher.width)
    shape = tuple(getattr(maps, "shape", ()))
    if len(shape) != 4 or shape[1:] != expected:
        raise ValueError(f"{name} must be feature maps [n, {expected[0]}, {expected[1]}, "
                         f"{expected[2]}] (NumPy array or torch tensor); got shape {shape}")


def _tile(maps: MapsLike, start: int, stop: int, device: torch.device,
          dtype: torch.dtype) -> torch.Tensor:
    """Images ``start:stop`` of ``maps`` as a tensor on ``device`` in ``dtype``."""
    block = maps[start:stop]
    if isinstance(block, np.ndarray):
        # np.array copies: memory-mapped stores are read-only and torch wants writable memory.
        block = torch.from_numpy(np.array(block))
    return block.detach().to(device=device, dtype=dtype)


def mirror_upper(out: np.ndarray, step: int = 1024) -> None:
    """Copy the upper triangle of a square ``out`` onto its lower triangle, in place."""
    n = out.shape[0]
    for i in range(0, n, step):
        j = min(n, i + step)
        out[i:j, :i] = out[:i, i:j].T
        diag = out[i:j, i:j]
        lower = np.tril_indices(j - i, -1)
        diag[lower] = diag.T[lower]


def _upper_pairs(i0: int, i1: int, j0: int, j1: int) -> int:
    """Pairs ``(i, j)`` of the tile with ``j >= i`` (what symmetric scoring computes)."""
    rows = np.arange(i0, i1)
    return int(np.clip(j1 - np.maximum(j0, rows), 0, None).sum())


@torch.no_grad()
def score_matrix(matcher: QAConv, probe_maps: MapsLike, gallery_maps: MapsLike, *,
                 device: torch.device | str = "cpu", memory_budget: int = DEFAULT_SCORING_BUDGET,
                 dtype: torch.dtype | None = None, symmetric: bool = False,
                 progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> np.ndarray:
    """Eval-mode QAConv logits of every probe x gallery pair.

    Parameters
    ----------
    matcher
        The QAConv matcher; its running BatchNorm statistics are used whatever its mode.
    probe_maps, gallery_maps
        ``[p, C, H, W]`` and ``[g, C, H, W]`` unit-norm maps: NumPy arrays (float16 from the
        feature store, possibly memory-mapped) or torch tensors on any device.
    device
        Where to compute (``torch.device`` or a string such as ``"cpu"``, ``"cuda"``).
    memory_budget
        Bytes for the similarity block plus the converted feature tiles.
    dtype
        Compute dtype; default float16 on CUDA, float32 on the CPU.
    symmetric
        The two sets are the same (self-scoring, e.g. gallery x gallery for re-ranking):
        only blocks on or above the diagonal are computed and the result is mirrored, so it
        is exactly symmetric.
    progress
        ``progress(done_pairs, total_pairs)`` after each tile.
    cancel
        Polled between blocks; returning True raises ``engine.jobs.Cancelled``.

    Returns
    -------
    np.ndarray
        ``float32 [p, g]`` logits; higher = more similar (``distance = -logit`` for ranking).
    """
    device = torch.device(device)
    if memory_budget < 2:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget}")
    dtype = default_score_dtype(device) if dtype is None else dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(map(str, _DTYPES))}; got {dtype}")
    _check_maps(probe_maps, "probe_maps", matcher)
    _check_maps(gallery_maps, "gallery_maps", matcher)
    p, g = len(probe_maps), len(gallery_maps)
    if symmetric and p != g:
        raise ValueError(f"symmetric scoring needs the same set twice; got {p} probes and {g} gallery maps")
    out = np.zeros((p, g), dtype=np.float32)
    if p == 0 or g == 0:
        return out

    hw, channels = matcher.hw, matcher.num_features
    itemsize = torch.empty((), dtype=dtype).element_size()
    cap = CPU_BLOCK_PAIRS if device.type == "cpu" else None
    pc, gc = block_shape(p, g, hw, memory_budget // 2, itemsize, cap)
    image_bytes = hw * channels * itemsize
    gallery_tile = max(gc, (memory_budget // 2 * 3 // 4) // image_bytes)
    gallery_tile = min(g, -(-gallery_tile // gc) * gc)              # whole blocks
    probe_tile = max(pc, min(p, (memory_budget // 2 // 4) // image_bytes, _UNIT_PAIRS // gallery_tile))
    probe_tile = min(p, -(-probe_tile // pc) * pc)
    weight, bias = matcher.folded_head()
    weight, bias = weight.to(device), bias.to(device)

    total = p * (p + 1) // 2 if symmetric else p * g
    done = 0
    out_t = torch.from_numpy(out) if device.type == "cpu" else None
    report(progress, 0, total)
    for j0 in range(0, g, gallery_tile):
        j1 = min(g, j0 + gallery_tile)
        cols = None
        for i0 in range(0, p, probe_tile):
            i1 = min(p, i0 + probe_tile)
            if symmetric and j1 - 1 < i0:
                break  # every later probe tile lies below the diagonal too
            check_cancel(cancel)
            if cols is None:
                cols = gallery_columns(_tile(gallery_maps, j0, j1, device, dtype))   # [C, gt*hw]
            rows = probe_rows(_tile(probe_maps, i0, i1, device, dtype))              # [pt*hw, C]
            target = out_t[i0:i1, j0:j1] if out_t is not None else None
            logits = folded_scores(rows, cols, weight, bias, hw=hw, block=(pc, gc), out=target,
                                   upper_only=symmetric, offset=j0 - i0, cancel=cancel)
            if out_t is None:
                out[i0:i1, j0:j1] = logits.cpu().numpy()
            done += _upper_pairs(i0, i1, j0, j1) if symmetric else (i1 - i0) * (j1 - j0)
            report(progress, done, total)
    if symmetric:
        mirror_upper(out)
    return out


@torch.no_grad()
def score_global(probe_emb: MapsLike, gallery_emb: MapsLike, *,
                 device: torch.device | str = "cpu") -> np.ndarray:
    """Cosine similarity of global embeddings (the baseline's ranking score).

    Parameters
    ----------
    probe_emb, gallery_emb
        ``[p, D]`` and ``[g, D]`` embeddings (NumPy or torch); normalised here.

    Returns
    -------
    np.ndarray
        ``float32 [p, g]`` cosines in [-1, 1]; higher = more similar.
    """
    device = torch.device(device)
    tensors = []
    for name, emb in (("probe_emb", probe_emb), ("gallery_emb", gallery_emb)):
        t = torch.from_numpy(np.array(emb)) if isinstance(emb, np.ndarray) else emb.detach()
        if t.dim() != 2:
            raise ValueError(f"{name} must be embeddings [n, D]; got shape {tuple(t.shape)}")
        tensors.append(F.normalize(t.to(device, torch.float32), dim=1))
    if tensors[0].shape[1] != tensors[1].shape[1]:
        raise ValueError(f"probe_emb and gallery_emb differ in D: {tensors[0].shape[1]} vs {tensors[1].shape[1]}")
    return (tensors[0] @ tensors[1].T).cpu().numpy().astype(np.float32, copy=False)
