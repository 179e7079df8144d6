"""Camera-pair transits (engine.analysis.transit) against loop formulations written here."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.analysis.transit import confirmed_transits, pivot_transits, transit_plausibility


def _pivots_by_loops(scores, qc, qt, gc, gt, k):
    out = {}
    for a in sorted(set(qc)):
        for b in sorted(set(gc)):
            offsets = []
            for q in range(len(qc)):
                if qc[q] != a:
                    continue
                cols = [g for g in range(len(gc)) if gc[g] == b]
                best = sorted(cols, key=lambda g: -scores[q, g])[:k]
                offsets += [gt[g] - qt[q] for g in best]
            out[(a, b)] = (len(offsets), float(np.median(offsets)))
    return out


@pytest.mark.parametrize("k", [1, 3, 50])
def test_pivot_transits_match_the_loops(k):
    rng = np.random.default_rng(k)
    qc, gc = rng.integers(0, 3, 17), rng.integers(0, 4, 40)
    qt, gt = rng.uniform(0, 1000, 17), rng.uniform(0, 1000, 40)
    scores = rng.normal(size=(17, 40))
    got = pivot_transits(scores, qc, qt, gc, gt, k=k)
    want = _pivots_by_loops(scores, qc, qt, gc, gt, k)
    assert set(got) == set(want)
    for pair, (count, median) in want.items():
        assert got[pair].count == count
        assert got[pair].median == pytest.approx(median, abs=1e-9)


def test_a_clock_gap_shifts_the_pair_by_the_gap():
    rng = np.random.default_rng(0)
    qc, gc = rng.integers(0, 2, 30), rng.integers(0, 2, 60)
    qt, gt = rng.uniform(0, 500, 30), rng.uniform(0, 500, 60)
    scores = rng.normal(size=(30, 60))
    base = pivot_transits(scores, qc, qt, gc, gt, k=5)
    shifted = pivot_transits(scores, qc, qt, gc, gt + 1000.0 * (gc == 1), k=5)
    assert shifted[(0, 1)].median == pytest.approx(base[(0, 1)].median + 1000.0)
    assert shifted[(0, 0)].median == pytest.approx(base[(0, 0)].median)


def test_confirmed_transits_are_medians_of_consecutive_sightings():
    rng = np.random.default_rng(1)
    cams, times = rng.integers(0, 3, 12), rng.uniform(0, 3600, 12)
    got = confirmed_transits(cams, times)
    order = sorted(range(12), key=lambda i: times[i])
    legs = {}
    for i, j in zip(order, order[1:], strict=False):
        legs.setdefault((cams[i], cams[j]), []).append(times[j] - times[i])
    assert set(got) == {(int(a), int(b)) for a, b in legs}
    for (a, b), v in legs.items():
        assert got[(a, b)].count == len(v)
        assert got[(a, b)].median == pytest.approx(float(np.median(v)))
    assert all(t.median >= 0 for t in got.values())


def test_plausibility_is_tlift_kernel_of_the_gap():
    for transit, expected, sigma in ((100.0, 100.0, 200.0), (300.0, 100.0, 200.0), (0.0, 50.0, 10.0)):
        assert transit_plausibility(transit, expected, sigma) == pytest.approx(
            math.exp(-((transit - expected) ** 2) / sigma ** 2))
    assert math.isnan(transit_plausibility(10.0, None, 200.0))
    with pytest.raises(ValueError):
        transit_plausibility(1.0, 0.0, 0.0)
