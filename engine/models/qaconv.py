"""QAConv: query-adaptive convolution matcher and its local correspondences (docs/arithmetic.md section 2).

For a probe map ``P [C, hw]`` and a gallery map ``G [C, hw]`` (unit vectors at every
location) the matcher takes the cosine of every probe location with every gallery location,
keeps the best match of each location both ways, and turns those ``2 x hw`` maxima into one
logit with a tiny head: ``BatchNorm1d(1)`` over all maxima, a ``Linear(hw -> 1)`` shared by
both directions (summed), and a second ``BatchNorm1d(1)``.

Two evaluation paths share the same arithmetic:

- ``match`` / training forward: the maxima of every pair ``[p, g, 2, hw]`` then the head,
  differentiable, with batch statistics in training mode.
- eval scoring (``forward`` under ``no_grad`` in eval mode, and ``engine.models.scoring``): in eval
  mode the head is an affine map of the maxima, so it folds into one weight vector ``c [hw]``
  and a constant: ``logit = c . a + c . b + const``. Scoring is then a matmul, two max
  reductions and a weighted sum, block by block, without keeping any ``[p, g, hw, hw]`` or
  ``[p, g, 2, hw]`` array.

Layout used by the fast path: probe locations as rows ``[p*hw, C]``, gallery locations as
columns ``[C, g*hw]``, so one block of pairs is one plain matmul ``[pc*hw, gc*hw]``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from engine.jobs import CancelFn, check_cancel
from engine.models.correspondence import Correspondence, pair_correspondence

__all__ = [
    "CPU_BLOCK_PAIRS",
    "DEFAULT_MEMORY_BUDGET",
    "QAConv",
    "block_shape",
    "folded_scores",
    "gallery_columns",
    "probe_rows",
]

# Bytes for one block of the similarity tensor when nobody says otherwise.
DEFAULT_MEMORY_BUDGET = 256 * 2**20
# On the CPU a block larger than the caches only costs memory traffic: 64 pairs at hw = 192
# (9.4 MB of float32) measured fastest on a 2-core AVX-512 machine (benchmarks/bench_scoring.py).
CPU_BLOCK_PAIRS = 64


def probe_rows(maps: torch.Tensor) -> torch.Tensor:
    """``[n, C, H, W]`` -> locations as rows ``[n*hw, C]`` (contiguous copy)."""
    n, c = maps.shape[:2]
    return maps.reshape(n, c, -1).transpose(1, 2).reshape(-1, c)   # [n*hw, C]


def gallery_columns(maps: torch.Tensor) -> torch.Tensor:
    """``[n, C, H, W]`` -> locations as columns ``[C, n*hw]`` (contiguous copy)."""
    n, c = maps.shape[:2]
    return maps.reshape(n, c, -1).permute(1, 0, 2).reshape(c, -1)  # [C, n*hw]


def block_shape(p: int, g: int, hw: int, memory_budget: int, itemsize: int,
                max_pairs: int | None = None) -> tuple[int, int]:
    """Pairs per block ``(pc, gc)`` so that one block's similarities fit ``memory_budget``.

    A block holds ``pc * gc * hw * hw`` similarities plus ``2 * pc * gc * hw`` maxima of
    ``itemsize`` bytes. The block is about four times wider in gallery than in probe images
    (measured best on the CPU; on a GPU only the size matters). ``max_pairs`` caps the block
    (the CPU's cache-friendly size).
    """
    if memory_budget <= 0:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget}")
    per_pair = (hw * hw + 2 * hw) * itemsize
    pairs = max(1, int(memory_budget) // per_pair)
    if max_pairs is not None:
        pairs = max(1, min(pairs, max_pairs))
    gc = min(g, pairs, max(1, math.isqrt(4 * pairs)))
    pc = min(p, max(1, pairs // gc))
    if pc == p:  # few probes: spend the rest of the budget on gallery width
        gc = min(g, max(gc, pairs // p))
    return pc, gc


@torch.no_grad()
def folded_scores(rows: torch.Tensor, cols: torch.Tensor, weight: torch.Tensor,
                  bias: torch.Tensor | float, *, hw: int, block: tuple[int, int],
                  out: torch.Tensor | None = None, upper_only: bool = False, offset: int = 0,
                  cancel: CancelFn | None = None) -> torch.Tensor:
    """Eval-mode QAConv logits of every probe x gallery pair, block by block.

    Parameters
    ----------
    rows
        Probe locations ``[p*hw, C]`` (see :func:`probe_rows`), in the compute dtype.
    cols
        Gallery locations ``[C, g*hw]`` (see :func:`gallery_columns`), same dtype and device.
    weight, bias
        The folded head (:meth:`QAConv.folded_head`): ``weight [hw]``, scalar ``bias``.
    hw
        Locations per map.
    block
        ``(pc, gc)`` pairs per block (:func:`block_shape`).
    out
        Optional ``float32 [p, g]`` to write into.
    upper_only
        Skip blocks lying entirely below the diagonal ``gallery index + offset < probe
        index`` (symmetric self-scoring; the caller mirrors the upper triangle).
    offset
        Global gallery index minus global probe index of element ``[0, 0]``.
    cancel
        Polled between rows of blocks; True raises ``engine.jobs.Cancelled``.

    Returns
    -------
    torch.Tensor
        ``float32 [p, g]`` logits.
    """
    p, g = rows.shape[0] // hw, cols.shape[1] // hw
    pc, gc = block
    if out is None:
        out = torch.empty(p, g, dtype=torch.float32, device=rows.device)
    weight = weight.to(device=rows.device, dtype=torch.float32)
    bias = torch.as_tensor(bias, dtype=torch.float32, device=rows.device)
    # Reused flat buffers: a fresh large allocation per block costs page faults on the CPU.
    sim_buf = rows.new_empty(pc * hw * gc * hw)
    a_buf = rows.new_empty(pc * hw * gc)
    b_buf = rows.new_empty(pc * gc * hw)
    with torch.autocast(device_type=rows.device.type, enabled=False):
        for i in range(0, p, pc):
            check_cancel(cancel)
            pn = min(pc, p - i)
            probe_block = rows[i * hw:(i + pn) * hw]                          # [pn*hw, C]
            for j in range(0, g, gc):
                gn = min(gc, g - j)
                if upper_only and j + offset + gn - 1 < i:
                    continue
                sim = sim_buf[: pn * hw * gn * hw].view(pn * hw, gn * hw)
                torch.matmul(probe_block, cols[:, j * hw:(j + gn) * hw], out=sim)  # [pn*hw, gn*hw]
                a = a_buf[: pn * hw * gn].view(pn, hw, gn)
                b = b_buf[: pn * gn * hw].view(pn, gn * hw)
                torch.amax(sim.view(pn, hw, gn, hw), dim=3, out=a)   # [pn, hw_s, gn]: best r per s
                torch.amax(sim.view(pn, hw, gn * hw), dim=1, out=b)  # [pn, gn*hw_r]: best s per r
                logits = torch.matmul(weight, a.float())             # [pn, gn]
                logits += torch.matmul(b.view(pn, gn, hw).float(), weight)
                out[i:i + pn, j:j + gn] = logits + bias
    return out


class QAConv(nn.Module):
    """Query-adaptive convolution matcher (docs/arithmetic.md section 2).

    Parameters
    ----------
    num_features
        Channels ``C`` of the feature maps.
    height, width
        Feature-map size ``H x W`` (``hw = H * W``).
    memory_budget
        Bytes allowed for one block of similarities when matching many pairs at once.

    Notes
    -----
    ``forward(probe [p, C, H, W], gallery [g, C, H, W]) -> logits [p, g]``. In training
    mode, or whenever autograd is on, it runs the differentiable path (:meth:`match`); in
    eval mode under ``torch.no_grad()`` it runs the folded fast path. Both give the same
    numbers in eval mode.
    """

    def __init__(self, num_features: int, height: int, width: int,
                 memory_budget: int = DEFAULT_MEMORY_BUDGET):
        super().__init__()
        for name, value in (("num_features", num_features), ("height", height), ("width", width)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        self.num_features, self.height, self.width = num_features, height, width
        self.memory_budget = int(memory_budget)
        hw = height * width
        self.bn = nn.BatchNorm1d(1)
        self.fc = nn.Linear(hw, 1)
        self.logit_bn = nn.BatchNorm1d(1)
        self.reset_parameters()

    @property
    def hw(self) -> int:
        return self.height * self.width

    def reset_parameters(self) -> None:
        """BatchNorms at PyTorch defaults; fc weight ``1/hw`` and bias 0 (docs/arithmetic.md 2.4)."""
        self.bn.reset_parameters()
        self.logit_bn.reset_parameters()
        with torch.no_grad():
            self.fc.weight.fill_(1.0 / self.hw)
            self.fc.bias.zero_()

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, height={self.height}, width={self.width}"

    def _check_maps(self, maps: torch.Tensor, name: str) -> torch.Tensor:
        expected = (self.num_features, self.height, self.width)
        if not isinstance(maps, torch.Tensor) or maps.dim() != 4 or tuple(maps.shape[1:]) != expected:
            shape = tuple(maps.shape) if hasattr(maps, "shape") else type(maps).__name__
            raise ValueError(f"{name} must be feature maps [n, {expected[0]}, {expected[1]}, "
                             f"{expected[2]}] (torch tensor); got {shape}")
        return maps

    def _block(self, p: int, g: int, device: torch.device, itemsize: int) -> tuple[int, int]:
        cap = CPU_BLOCK_PAIRS if device.type == "cpu" else None
        return block_shape(p, g, self.hw, self.memory_budget, itemsize, cap)

    # ---------------------------------------------------------------- differentiable path
    def pair_maxima(self, probe: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
        """Best matches both ways for every pair, differentiable (docs/arithmetic.md 2.1-2.2).

        Returns
        -------
        torch.Tensor
            ``[p, g, 2, hw]``: ``[..., 0, s]`` = max over gallery locations for probe
            location ``s``; ``[..., 1, r]`` = max over probe locations for gallery location
            ``r``. Computed in blocks of pairs (``memory_budget``), so the ``[p, g, hw, hw]``
            similarities never exist at once; autograd keeps only the argmax indices.
        """
        probe = self._check_maps(probe, "probe")
        gallery = self._check_maps(gallery, "gallery")
        p, g, hw = probe.shape[0], gallery.shape[0], self.hw
        rows, cols = probe_rows(probe), gallery_columns(gallery)     # [p*hw, C], [C, g*hw]
        # No cache-sized cap here: with autograd every block costs several kernel launches
        # forward and backward, and large blocks are ~20x faster on the CPU (measured,
        # 32 x 400 pairs at hw = 32: 11.3 s with 64-pair blocks, 0.6 s with one block).
        pc, gc = block_shape(p, g, hw, self.memory_budget, rows.element_size())
        out = []
        for probe_block in rows.split(pc * hw):
            pn = probe_block.shape[0] // hw
            blocks = []
            for gallery_block in cols.split(gc * hw, dim=1):
                gn = gallery_block.shape[1] // hw
                sim = (probe_block @ gallery_block).view(pn, hw, gn, hw)  # [pn, hw_s, gn, hw_r]
                # max(dim) (not amax) so that autograd saves indices, not the block itself.
                a = sim.max(dim=3).values.transpose(1, 2)                  # [pn, gn, hw_s]
                b = sim.max(dim=1).values                                  # [pn, gn, hw_r]
                blocks.append(torch.stack((a, b), dim=2))                  # [pn, gn, 2, hw]
            out.append(torch.cat(blocks, dim=1))
        return torch.cat(out, dim=0)                                       # [p, g, 2, hw]

    def head(self, maxima: torch.Tensor) -> torch.Tensor:
        """``[p, g, 2, hw]`` maxima -> ``[p, g]`` logits (docs/arithmetic.md 2.3), in float32.

        In training mode both BatchNorms use the statistics of this call's pairs (all pairs,
        directions and locations for the first; all pairs for the second).
        """
        p, g, two, hw = maxima.shape
        if two != 2 or hw != self.hw:
            raise ValueError(f"maxima must be [p, g, 2, {self.hw}]; got {tuple(maxima.shape)}")
        if self.training and p * g < 2:
            raise ValueError("QAConv in training mode needs at least 2 pairs (batch statistics); "
                             f"got {p} x {g}")
        with torch.autocast(device_type=maxima.device.type, enabled=False):
            x = self.bn(maxima.float().reshape(p * g * 2, 1, hw))           # [p*g*2, 1, hw]
            x = self.fc(x.view(p * g * 2, hw)).view(p * g, 2).sum(dim=1, keepdim=True)  # [p*g, 1]
            x = self.logit_bn(x)                                             # [p*g, 1]
        return x.view(p, g)

    def match(self, probe: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
        """Differentiable logits ``[p, g]``: :meth:`pair_maxima` then :meth:`head`."""
        return self.head(self.pair_maxima(probe, gallery))

    # ---------------------------------------------------------------- eval fast path
    @torch.no_grad()
    def folded_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode head as ``logit = weight . a + weight . b + bias``.

        Returns
        -------
        weight : torch.Tensor
            ``float32 [hw]``.
        bias : torch.Tensor
            ``float32`` scalar (the fc bias enters twice, once per direction).
        """
        def affine(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
            scale = bn.weight.float() / torch.sqrt(bn.running_var.float() + bn.eps)
            return scale[0], bn.bias.float()[0] - bn.running_mean.float()[0] * scale[0]

        scale1, shift1 = affine(self.bn)
        scale2, shift2 = affine(self.logit_bn)
        w = self.fc.weight.float()[0]                                        # [hw]
        weight = scale2 * scale1 * w
        bias = scale2 * 2.0 * (shift1 * w.sum() + self.fc.bias.float()[0]) + shift2
        return weight, bias

    def forward(self, probe: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
        """Logits ``[p, g]`` for ``probe [p, C, H, W]`` x ``gallery [g, C, H, W]``."""
        if self.training or torch.is_grad_enabled():
            return self.match(probe, gallery)
        probe = self._check_maps(probe, "probe")
        gallery = self._check_maps(gallery, "gallery")
        dtype = probe.dtype
        if torch.is_autocast_enabled(probe.device.type):
            dtype = torch.get_autocast_dtype(probe.device.type)
        rows = probe_rows(probe.to(dtype))
        cols = gallery_columns(gallery.to(dtype))
        weight, bias = self.folded_head()
        block = self._block(probe.shape[0], gallery.shape[0], rows.device, rows.element_size())
        return folded_scores(rows, cols, weight, bias, hw=self.hw, block=block)

    # ---------------------------------------------------------------- interpretability
    @torch.no_grad()
    def correspondences(self, probe_map: torch.Tensor | np.ndarray,
                        gallery_map: torch.Tensor | np.ndarray) -> Correspondence:
        """Local matches of one pair (docs/arithmetic.md 2.7), for the viewer.

        Parameters
        ----------
        probe_map, gallery_map
            ``[C, H, W]`` unit-norm maps (numpy of any float dtype, or torch).

        Returns
        -------
        Correspondence
            Heatmaps equal to :meth:`pair_maxima` of the pair, the argmax indices both ways,
            the eval-mode logit and its exact split into contributions and bias
            (:func:`engine.models.correspondence.pair_correspondence`).
        """
        for name, m in (("probe_map", probe_map), ("gallery_map", gallery_map)):
            shape = tuple(m.shape) if hasattr(m, "shape") else ()
            if len(shape) != 3 or shape != (self.num_features, self.height, self.width):
                raise ValueError(f"{name} must be one feature map [{self.num_features}, "
                                 f"{self.height}, {self.width}]; got {shape}")
        probe_map, gallery_map = (m.detach().float().cpu().numpy() if isinstance(m, torch.Tensor)
                                  else m for m in (probe_map, gallery_map))
        weight, bias = self.folded_head()
        return pair_correspondence(probe_map, gallery_map, weight.cpu().numpy(), float(bias),
                                   centre=self.similarity_centre())

    def similarity_centre(self) -> float:
        """A typical best-match similarity: the first BatchNorm's running mean."""
        return float(self.bn.running_mean[0])
