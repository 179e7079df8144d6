"""The cameras' transit model (engine.postprocess.transit_model) against a loop formulation."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.postprocess.transit_model import learn_transits


def _offsets_by_loops(gg, cams, times, min_z):
    """Per ordered camera pair, the offsets of mutual best cross-camera matches that stand out."""
    out = {}
    n = len(cams)
    for i in range(n):
        for b in sorted(set(cams)):
            if b == cams[i]:
                continue
            cols = [j for j in range(n) if cams[j] == b]
            j = min(cols, key=lambda c: (gg[i, c], c))
            back = [c for c in range(n) if cams[c] == cams[i]]
            if min(back, key=lambda c: (gg[j, c], c)) != i:
                continue
            d = np.array([gg[i, c] for c in cols], np.float64)
            z = (d.mean() - gg[i, j]) / (d.std() if d.std() > 0 else 1.0)
            if z < min_z:
                continue
            out.setdefault((cams[i], b), []).append(times[j] - times[i])
            out.setdefault((b, cams[i]), []).append(times[i] - times[j])
    return out


def _density_by_sums(offsets, edges, smooth):
    """The smoothed histogram written as a sum over offsets of a Gaussian on bin centres."""
    centres = (edges[:-1] + edges[1:]) / 2
    step = edges[1] - edges[0]
    dens = np.zeros(len(centres))
    for dt in offsets:
        if not edges[0] <= dt < edges[-1]:
            continue
        c = centres[int((dt - edges[0]) // step)]
        near = np.abs(centres - c) <= 4 * smooth + 1e-9
        dens[near] += np.exp(-0.5 * ((centres[near] - c) / smooth) ** 2)
    return dens / dens.max()


@pytest.mark.parametrize("seed", range(3))
def test_learned_transits_match_the_loops(seed):
    rng = np.random.default_rng(seed)
    n, num_cams = 60, 3
    cams = rng.integers(0, num_cams, n)
    person = rng.integers(0, 20, n)
    times = np.round(rng.uniform(0, 300, n) + 40.0 * cams)
    gg = rng.random((n, n)).astype(np.float32) + 0.8 * (person[:, None] != person[None, :])
    gg = np.minimum(gg, gg.T)
    np.fill_diagonal(gg, 0)
    min_z, smooth, span = 1.0, 3.0, 400.0
    model = learn_transits(gg, cams, times, min_z=min_z, min_count=4, smooth=smooth, span=span,
                           chunk=7)
    loops = _offsets_by_loops(gg, cams, times, min_z)
    assert {p: len(v) for p, v in loops.items()} == {p: c for p, c in model.counts.items() if c}
    modelled = {p for p, v in loops.items() if len(v) >= 4}
    assert set(model.density) == modelled and modelled
    for pair in modelled:
        np.testing.assert_allclose(model.density[pair], _density_by_sums(loops[pair], model.edges,
                                                                         smooth), atol=1e-12)
    # Plausibility looks an offset up in its pair's density; other pairs and the span give 0.
    a, b = sorted(modelled)[0]
    probe_times = np.array([5.0, -3.5, 12.25, span + 1.0, 0.0])
    probe_cams = np.array([b, b, b, b, a])
    got = model.plausibility(a, 0.0, probe_cams, probe_times)
    for k in range(4):
        dt = probe_times[k]
        want = model.density[(a, b)][int(math.floor(dt - model.edges[0]))] if abs(dt) < span else 0
        assert got[k] == want
    assert got[4] == 0.0


def test_a_consistent_transit_is_learned_where_it_happens():
    """People walk from camera 0 to camera 1 in about 60 s: the model peaks there, not at 0."""
    rng = np.random.default_rng(0)
    people = 80
    t0 = rng.uniform(0, 5000, people)
    cams = np.r_[np.zeros(people, int), np.ones(people, int)]
    times = np.r_[t0, t0 + rng.normal(60, 2, people)]
    pid = np.r_[np.arange(people), np.arange(people)]
    gg = (rng.random((2 * people, 2 * people)) + 3.0 * (pid[:, None] != pid[None, :])).astype(np.float32)
    model = learn_transits(gg, cams, times)
    centres = (model.edges[:-1] + model.edges[1:]) / 2
    assert abs(centres[np.argmax(model.density[(0, 1)])] - 60) <= 3
    assert abs(centres[np.argmax(model.density[(1, 0)])] + 60) <= 3
    assert model.plausibility(0, 100.0, [1, 1, 0], [160.0, 100.0, 160.0]).tolist()[1:] == [0.0, 0.0]
    assert model.plausibility(0, 100.0, [1], [160.0])[0] > 0.8
    # The most likely transit either way: camera 1 about 60 s after camera 0, or 60 s before.
    assert abs(model.most_likely(0, 1) - 60) <= 3 and abs(model.most_likely(1, 0, -1) + 60) <= 3
    assert model.most_likely(0, 0) is None


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="does not match"):
        learn_transits(np.zeros((3, 4), np.float32), [0, 1, 0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="positive"):
        learn_transits(np.zeros((2, 2), np.float32), [0, 1], [1.0, 2.0], smooth=0)
