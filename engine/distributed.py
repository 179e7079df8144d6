"""torch.distributed for runs launched by ``torchrun``: one process per rank, NCCL on GPUs, Gloo
on the CPU.

How training splits the work (docs/architecture.md "Scale"):

- every rank draws the same global batch (the samplers are seeded by the run's seed and epoch)
  and takes its contiguous slice (:class:`RankSlices`), so N ranks x B/N images see exactly what
  one process with B images sees;
- each rank runs the backbone on its slice under ``DistributedDataParallel``; the feature maps
  of the whole batch are then gathered (:func:`gather_batch`) and every rank computes the loss
  of the whole batch, exactly as one process would. The matcher's training BatchNorms therefore
  normalise over all pairs of the global batch (the same statistics as one process: no
  approximation), the class memory is written from the gathered features (one memory, the same
  on every rank), and the loss value is the global one;
- a trunk whose BatchNorms train (no ImageNet weights) gets :class:`SyncedBatchNorm` layers:
  their statistics are summed over ranks, so they too equal one process's;
- gradients: :func:`gather_batch` hands each rank back ``world size`` x the gradient of its own
  slice, which DDP's averaging turns into the gradient of the whole batch's loss; parameters
  used only after the gather (matcher, loss) get the same gradient on every rank.

Single-process runs never touch torch.distributed: :func:`current` returns a one-rank world.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

__all__ = ["World", "current", "init_from_env", "gather_batch", "gather_tensor", "RankSlices",
           "SyncedBatchNorm", "average_gradients", "sync_batchnorms", "shutdown"]


@dataclass(frozen=True)
class World:
    """This process's place in the run: ``rank`` of ``size``; ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one rank."""
        return self.size > 1


def _env_world() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(int(os.environ.get("RANK", "0")), size, int(os.environ.get("LOCAL_RANK", "0")))


def current() -> World:
    """The world of an initialised process group, else a one-rank world."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def init_from_env(device: torch.device) -> tuple[World, torch.device]:
    """Join the run ``torchrun`` started (``WORLD_SIZE`` > 1), or stay one process.

    Returns the world and the device this rank computes on: ``cuda:LOCAL_RANK`` when ``device``
    is a CUDA device (NCCL), the CPU otherwise (Gloo).
    """
    world = _env_world()
    if not world.active:
        return World(), device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return current(), device


def shutdown() -> None:
    """Leave the process group (at the end of a run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _sizes(n: int, world: World, device: torch.device) -> list[int]:
    local = torch.tensor([n], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(local) for _ in range(world.size)]
    dist.all_gather(sizes, local)
    return [int(s) for s in sizes]


def gather_tensor(x: torch.Tensor, world: World | None = None) -> torch.Tensor:
    """Every rank's ``x`` (first dimensions may differ) concatenated in rank order; no gradient."""
    world = world or current()
    if not world.active:
        return x
    x = x.contiguous()
    sizes = _sizes(x.shape[0], world, x.device)
    padded = x.new_zeros((max(sizes), *x.shape[1:]))
    padded[:x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, sizes, strict=True)])


class _GatherBatch(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, rank: int, size: int) -> torch.Tensor:
        world = World(rank, size)
        sizes = _sizes(x.shape[0], world, x.device)
        ctx.start, ctx.stop, ctx.size = sum(sizes[:rank]), sum(sizes[:rank + 1]), size
        return gather_tensor(x, world)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # Every rank computed the same loss from the whole gathered batch, so each holds the
        # whole gradient already; DDP averages over ranks, hence the factor.
        return grad[ctx.start:ctx.stop] * ctx.size, None, None


def gather_batch(x: torch.Tensor, world: World | None = None) -> torch.Tensor:
    """The whole batch from every rank's slice ``x``, differentiable (see the module's notes).

    Every rank must then compute the same function of the result (the whole batch's loss).
    """
    world = world or current()
    if not world.active:
        return x
    return _GatherBatch.apply(x, world.rank, world.size)


def average_gradients(params: list[torch.nn.Parameter], world: World | None = None) -> None:
    """Average the gradients of ``params`` over ranks, in place (one all-reduce).

    For parameters every rank computes from the same gathered batch (matcher, loss): their
    gradients agree already up to the order of floating-point sums, and the average keeps the
    ranks' copies from drifting apart.
    """
    world = world or current()
    grads = [p.grad for p in params if p.grad is not None]
    if not world.active or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world.size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


class RankSlices:
    """A batch sampler's batches cut to this rank's contiguous slice.

    The wrapped sampler yields the same global batch on every rank (same seed and epoch); rank
    ``r`` keeps items ``[r * n / size, (r + 1) * n / size)``, so gathering the slices in rank
    order rebuilds the global batch in its order.
    """

    def __init__(self, sampler, world: World):
        self.sampler, self.world = sampler, world

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        for batch in self.sampler:
            n = len(batch)
            if n < self.world.size:
                raise ValueError(f"a batch of {n} cannot be split over {self.world.size} ranks; "
                                 "use a batch size of at least the number of processes")
            start = self.world.rank * n // self.world.size
            stop = (self.world.rank + 1) * n // self.world.size
            yield batch[start:stop]


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of every rank's inputs together.

    Works with Gloo (CPU) and NCCL alike (``torch.nn.SyncBatchNorm`` needs a GPU): each rank
    sums its count, values and squares per channel, one differentiable all-reduce adds them
    up, and the normalisation (and its gradient) is then that of the whole batch. Outside
    training, or with one rank, it is an ordinary BatchNorm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-d input; got {x.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        world = current()
        if not (self.training and world.active):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.new_full((1,), x.numel() / x.shape[1], dtype=torch.float64)
        stats = torch.cat([count, x.double().sum(dims), (x.double() ** 2).sum(dims)])
        stats = all_reduce(stats)                                   # summed over ranks
        n = stats[0]
        mean = stats[1:1 + x.shape[1]] / n
        var = (stats[1 + x.shape[1]:] / n - mean ** 2).clamp(min=0)  # biased, as BatchNorm uses
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean.to(self.running_mean))
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_var.mul_(1 - m).add_(m * unbiased.to(self.running_var))
        out = (x - mean.to(x).view(shape)) * torch.rsqrt(var.to(x).view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out


def sync_batchnorms(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm inside ``module`` by a :class:`SyncedBatchNorm` holding the same
    parameters and statistics (state-dict keys unchanged); returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, SyncedBatchNorm):
            synced = SyncedBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats).to(
                device=child.weight.device if child.affine else None)
            synced.load_state_dict(child.state_dict())
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            sync_batchnorms(child)
    return module
