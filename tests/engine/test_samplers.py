"""Batch samplers: PK composition, graph-sampler neighbourhoods, epoch determinism."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from engine.data.samplers import GraphSampler, PKBatchSampler, RandomBatchSampler


def _pids(num_classes=20, seed=0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 7, num_classes)  # some classes have fewer than K images
    return [c for c in range(num_classes) for _ in range(counts[c])]


def test_pk_batches_have_p_identities_k_images():
    pids = _pids()
    sampler = PKBatchSampler(pids, p=4, k=3, seed=1)
    seen = Counter()
    for batch in sampler:
        classes = Counter(pids[i] for i in batch)
        assert len(classes) == 4 and set(classes.values()) == {3}
        for c in classes:
            seen[c] += 1
        # an image repeats inside a class only when that class has fewer than K images
        for c in classes:
            members = [i for i in batch if pids[i] == c]
            if pids.count(c) >= 3:
                assert len(set(members)) == 3
    assert len(seen) == 4 * len(sampler) and max(seen.values()) == 1


def test_random_sampler_covers_without_repeats_and_is_epoch_seeded():
    s = RandomBatchSampler(103, 10, seed=3)
    batches = list(s)
    flat = [i for b in batches for i in b]
    assert len(batches) == 10 and len(set(flat)) == 100
    again = RandomBatchSampler(103, 10, seed=3)
    assert list(again) == batches
    again.set_epoch(1)
    assert list(again) != batches


def _brute_neighbours(dist, n):
    out = []
    for i in range(len(dist)):
        cand = [(dist[i, j], j) for j in range(len(dist)) if j != i]
        out.append([j for _, j in sorted(cand)[:n]])
    return out


def test_graph_sampler_batches_are_class_plus_nearest_classes():
    pids = _pids(num_classes=12)
    sampler = GraphSampler(pids, batch_size=8, k=2, seed=0)
    rng = np.random.default_rng(5)
    points = rng.normal(size=(12, 3))
    seen_reps = []

    def distances(indices):
        seen_reps.append(indices)
        classes = [pids[i] for i in indices]
        assert classes == list(range(12))  # one image per class, class order
        x = points[classes]
        return np.linalg.norm(x[:, None] - x[None], axis=-1)

    sampler.prepare(distances)
    truth = _brute_neighbours(np.linalg.norm(points[:, None] - points[None], axis=-1), 3)
    anchors = Counter()
    for batch in sampler:
        assert len(batch) == 8
        classes = [pids[i] for i in batch]
        anchor = classes[0]
        anchors[anchor] += 1
        assert set(classes) == {anchor, *truth[anchor]}
        assert all(v == 2 for v in Counter(classes).values())
    assert sorted(anchors) == list(range(12)) and set(anchors.values()) == {1}
    with pytest.raises(RuntimeError, match="prepare"):
        next(iter(sampler))


def test_graph_sampler_errors():
    with pytest.raises(ValueError, match="multiple of K"):
        GraphSampler(_pids(), batch_size=7, k=2)
    with pytest.raises(ValueError, match="more than"):
        GraphSampler([0, 0, 1, 1], batch_size=8, k=2)
    s = GraphSampler(_pids(num_classes=6), batch_size=4, k=2)
    with pytest.raises(ValueError, match="shape"):
        s.prepare(lambda idx: np.zeros((3, 3)))
