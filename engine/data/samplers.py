"""Batch samplers for training: random, PK (P identities x K images) and the graph sampler.

Every sampler is a batch sampler (it yields lists of dataset indices) whose order depends
only on ``(seed, epoch)``: resuming at epoch ``e`` replays exactly the batches an
uninterrupted run would have drawn.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence

import numpy as np

SAMPLERS = ("random", "pk", "graph")


def _indices_by_pid(pids: Sequence[int]) -> dict[int, list[int]]:
    by_pid: dict[int, list[int]] = defaultdict(list)
    for i, pid in enumerate(pids):
        by_pid[int(pid)].append(i)
    return dict(sorted(by_pid.items()))


class _EpochSeeded:
    def __init__(self, seed: int):
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])


class RandomBatchSampler(_EpochSeeded):
    """Shuffled indices cut into batches; the last short batch is dropped."""

    def __init__(self, num_samples: int, batch_size: int, seed: int = 0):
        super().__init__(seed)
        if num_samples < batch_size:
            raise ValueError(f"{num_samples} training images are fewer than one batch ({batch_size})")
        self.num_samples, self.batch_size = num_samples, batch_size

    def __len__(self) -> int:
        return self.num_samples // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = self._rng().permutation(self.num_samples)
        for b in range(len(self)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size].tolist()


class _ClassCycles:
    """Per-class shuffled cycles: K draws without replacement, reshuffled when exhausted."""

    def __init__(self, by_pid: dict[int, list[int]], rng: np.random.Generator):
        self.by_pid, self.rng = by_pid, rng
        self.queues: dict[int, list[int]] = {}

    def take(self, pid: int, k: int) -> list[int]:
        items = self.by_pid[pid]
        out: list[int] = []
        while len(out) < k:
            queue = self.queues.get(pid)
            if not queue:
                queue = self.rng.permutation(items).tolist()
                self.queues[pid] = queue
            # never repeat an image inside one draw unless the class has fewer than k images
            if queue[-1] in out and len(items) >= k:
                self.queues[pid] = []
                continue
            out.append(queue.pop())
        return out


class PKBatchSampler(_EpochSeeded):
    """``P`` identities with ``K`` images each per batch; every identity once per epoch."""

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0):
        super().__init__(seed)
        self.by_pid = _indices_by_pid(pids)
        if len(self.by_pid) < p:
            raise ValueError(f"PK sampling needs at least P={p} identities, the data has {len(self.by_pid)}")
        self.p, self.k = p, k

    def __len__(self) -> int:
        return len(self.by_pid) // self.p

    def __iter__(self) -> Iterator[list[int]]:
        rng = self._rng()
        cycles = _ClassCycles(self.by_pid, rng)
        classes = rng.permutation(list(self.by_pid)).tolist()
        for b in range(len(self)):
            batch: list[int] = []
            for pid in classes[b * self.p:(b + 1) * self.p]:
                batch.extend(cycles.take(pid, self.k))
            yield batch


class GraphSampler(_EpochSeeded):
    """QAConv-GS's graph sampler (docs/arithmetic.md section 5).

    Before each epoch, call :meth:`prepare` with a function that scores one image per
    class: it receives the dataset indices of those images (in class order) and returns
    class x class distances ``[C, C]``. Each class then forms one batch with its
    ``batch_size / k - 1`` nearest classes, ``k`` images each.
    """

    def __init__(self, pids: Sequence[int], batch_size: int = 64, k: int = 2, seed: int = 0):
        super().__init__(seed)
        if batch_size % k:
            raise ValueError(f"batch size {batch_size} is not a multiple of K={k}")
        self.by_pid = _indices_by_pid(pids)
        self.classes = list(self.by_pid)
        self.k = k
        self.num_neighbours = batch_size // k - 1
        if len(self.classes) <= self.num_neighbours:
            raise ValueError(f"the graph sampler needs more than {self.num_neighbours} identities "
                             f"(batch {batch_size}, K={k}); the data has {len(self.classes)}")
        self.neighbours: np.ndarray | None = None  # [C, B/K - 1] class positions

    def __len__(self) -> int:
        return len(self.classes)

    def representatives(self) -> list[int]:
        """One random image per class for this epoch (dataset indices, class order)."""
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        return [int(rng.choice(self.by_pid[c])) for c in self.classes]

    def prepare(self, class_distances: Callable[[list[int]], np.ndarray]) -> None:
        dist = np.array(class_distances(self.representatives()), dtype=np.float64)  # [C, C]
        if dist.shape != (len(self.classes),) * 2:
            raise ValueError(f"class distances have shape {dist.shape}, expected {(len(self.classes),) * 2}")
        np.fill_diagonal(dist, np.inf)
        # stable sort: ties resolve to the lower class index, the same on every run
        self.neighbours = np.argsort(dist, axis=1, kind="stable")[:, :self.num_neighbours]

    def __iter__(self) -> Iterator[list[int]]:
        if self.neighbours is None:
            raise RuntimeError("GraphSampler.prepare() must be called before each epoch")
        rng = self._rng()
        cycles = _ClassCycles(self.by_pid, rng)
        for c in rng.permutation(len(self.classes)).tolist():
            batch: list[int] = []
            for member in [c] + self.neighbours[c].tolist():
                batch.extend(cycles.take(self.classes[member], self.k))
            yield batch
        self.neighbours = None  # stale after one epoch
