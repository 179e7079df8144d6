"""TLift: reference cases, a plain loop formulation, time-shift invariance, errors."""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from engine.postprocess import tlift

# The package exports the function under the module's name; fetch the module for its settings.
tlift_module = importlib.import_module("engine.postprocess.tlift")

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "reference"


def loop_tlift(scores, q_cams, q_times, g_cams, g_times, tau=100.0, sigma=200.0, k=10, alpha=0.2):
    """docs/arithmetic.md section 9 for one probe, one gallery camera and one gallery item at a time."""
    lifted = np.zeros(scores.shape)
    for q in range(scores.shape[0]):
        window = [p for p in range(scores.shape[0])
                  if q_cams[p] == q_cams[q] and abs(q_times[p] - q_times[q]) < tau]
        for cam in set(g_cams.tolist()):
            cols = [j for j in range(scores.shape[1]) if g_cams[j] == cam]
            block = scores[np.ix_(window, cols)]
            values = sorted(block.ravel(), reverse=True)
            threshold = values[k - 1] if len(values) > k else values[-1]
            pivots = [cols[c] for r in range(len(window)) for c in range(len(cols))
                      if block[r, c] >= threshold]
            for j in cols:
                w = np.mean([np.exp(-((g_times[j] - g_times[p]) ** 2) / sigma**2) for p in pivots])
                lifted[q, j] = (w + alpha) * scores[q, j]
    return lifted


def _load(name):
    with np.load(REFERENCE / f"{name}.npz") as data:
        return {key: data[key] for key in data.files}


def _case_args(case):
    args = (case["scores"], case["query_cams"], case["query_times"], case["gallery_cams"], case["gallery_times"])
    params = {}
    if "tau" in case:
        params = {"tau": float(case["tau"]), "sigma": float(case["sigma"]),
                  "k": int(case["k"]), "alpha": float(case["alpha"])}
    return args, params


# The default band cut, and a kernel without its band cut.
INTERNALS = [{}, {"_BAND_SIGMAS": np.inf}]


def _set_internals(monkeypatch, internals):
    for name, value in internals.items():
        monkeypatch.setattr(tlift_module, name, value)


@pytest.mark.parametrize("name", ["tlift", "tlift_ties", "tlift_params"])
@pytest.mark.parametrize("internals", INTERNALS)
def test_reference_cases(name, internals, monkeypatch):
    _set_internals(monkeypatch, internals)
    args, params = _case_args(_load(name))
    np.testing.assert_allclose(tlift(*args, **params), _load(name)["expected"], atol=1e-6, rtol=0)


def _random_case(rng, p, g, q_cam_ids, g_cam_ids, span, decimals=None, integer_times=False):
    scores = rng.random((p, g))
    if decimals is not None:
        scores = np.round(scores, decimals)
    q_cams = rng.choice(q_cam_ids, p)
    g_cams = rng.choice(g_cam_ids, g)
    q_times = rng.random(p) * span
    g_times = rng.random(g) * span
    if integer_times:  # windows whose edge falls exactly on |dt| = tau
        q_times, g_times = np.round(q_times), np.round(g_times)
    return scores, q_cams, q_times, g_cams, g_times


@pytest.mark.parametrize(
    "p, g, q_cams, g_cams, span, decimals, integer_times, params",
    [
        (1, 1, [0], [0], 10, None, False, {}),  # one probe, one gallery item
        (1, 12, [0], [0, 1], 10, 1, False, {}),  # q = 1, ties
        (6, 4, [0], [0, 1, 2], 50, None, False, {}),  # blocks with fewer than K entries
        (30, 60, [0], [0], 400, 1, True, {"tau": 50}),  # one camera, ties, window edges on tau
        (40, 80, [0, 1, 2], [1, 2, 3], 300, None, False, {}),  # probe cam 0 absent from gallery
        (40, 80, [0, 1, 2, 3], [1, 2], 300, 2, False, {"k": 3}),  # gallery lacks cams 0 and 3
        (25, 50, [0, 1], [0, 1], 2000, 1, True, {"tau": 500, "sigma": 50, "k": 30, "alpha": 0.0}),
        (24, 48, [0, 1, 2], [0, 1, 2], 100, 0, False, {"k": 1}),  # scores 0/1: massive ties, K = 1
    ],
)
@pytest.mark.parametrize("internals", INTERNALS)
def test_random_cases_agree_with_loop(p, g, q_cams, g_cams, span, decimals, integer_times, params,
                                      internals, monkeypatch):
    _set_internals(monkeypatch, internals)
    rng = np.random.default_rng(p * 1000 + g)
    args = _random_case(rng, p, g, q_cams, g_cams, span, decimals, integer_times)
    np.testing.assert_allclose(tlift(*args, **params), loop_tlift(*args, **params), atol=1e-12, rtol=0)


def _edge_case(name):
    rng = np.random.default_rng(len(name))
    if name == "camera with one gallery item":
        args = _random_case(rng, 20, 61, [0, 1], [0, 1], 300, 2)
        args[3][:] = np.where(np.arange(61) == 7, 2, args[3])  # camera 2: item 7 alone
        return args, {}
    if name == "K at least the camera size":
        return _random_case(rng, 20, 40, [0, 1], [0, 1, 2, 3], 300, 1), {"k": 12}
    if name == "ties at the block bound's threshold":
        # 150 items per camera: the bound comes from blocks of 15 columns; 2 decimals tie often.
        return _random_case(rng, 20, 300, [0, 1], [0, 1], 300, 2), {"k": 5}
    if name == "probes without time neighbours":
        args = _random_case(rng, 15, 120, [0], [0, 1], 1, 2)
        args[2][:] = np.arange(15) * 1000.0  # windows of one probe
        return args, {}
    raise AssertionError(name)


@pytest.mark.parametrize("name", ["camera with one gallery item", "K at least the camera size",
                                  "ties at the block bound's threshold", "probes without time neighbours"])
@pytest.mark.parametrize("internals", INTERNALS)
def test_edge_cases_agree_with_loop(name, internals, monkeypatch):
    _set_internals(monkeypatch, internals)
    args, params = _edge_case(name)
    np.testing.assert_allclose(tlift(*args, **params), loop_tlift(*args, **params), atol=1e-12, rtol=0)


def test_invariant_to_a_time_shift_per_camera():
    # Only within-camera differences matter: probe cameras and gallery cameras may each have
    # their own clock offset.
    rng = np.random.default_rng(11)
    scores, q_cams, q_times, g_cams, g_times = _random_case(rng, 60, 150, [0, 1, 2], [0, 1, 2, 3], 1000)
    q_shift = rng.uniform(-5e4, 5e4, 3)
    g_shift = rng.uniform(-5e4, 5e4, 4)
    shifted = tlift(scores, q_cams, q_times + q_shift[q_cams], g_cams, g_times + g_shift[g_cams])
    np.testing.assert_allclose(shifted, tlift(scores, q_cams, q_times, g_cams, g_times), atol=1e-9)


def test_lifting_is_a_positive_factor_between_alpha_and_one_plus_alpha():
    rng = np.random.default_rng(12)
    scores, *rest = _random_case(rng, 30, 90, [0, 1], [0, 1, 2], 500)
    factor = tlift(scores, *rest, alpha=0.2) / scores
    assert (factor >= 0.2 - 1e-12).all() and (factor <= 1.2 + 1e-12).all()


def test_dtype_and_shape_follow_the_input():
    rng = np.random.default_rng(13)
    scores, *rest = _random_case(rng, 5, 9, [0], [0, 1], 100)
    out = tlift(scores.astype(np.float32), *rest)
    assert out.dtype == np.float32 and out.shape == (5, 9)


def test_lifting_in_place_equals_lifting_into_a_new_array():
    rng = np.random.default_rng(14)
    scores, *rest = _random_case(rng, 40, 70, [0, 1], [0, 1, 2], 400)
    scores = scores.astype(np.float32)
    expected = tlift(scores, *rest)
    same = tlift(scores, *rest, out=scores)
    assert same is scores
    np.testing.assert_array_equal(scores, expected)
    with pytest.raises(ValueError, match="out must be"):
        tlift(scores, *rest, out=np.empty((40, 70)))  # float64 for float32 scores


def test_concurrent_calls_give_the_same_numbers():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(15)
    case = _random_case(rng, 60, 120, [0, 1], [0, 1, 2], 600)
    expected = tlift(*case)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: tlift(*case), range(8)))
    for result in results:
        np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"query_times": None}, "TLift needs timestamps"),
        ({"gallery_times": None}, "TLift needs timestamps"),
        ({"query_times": [1.0, np.nan, 3.0]}, "TLift needs timestamps"),
        ({"gallery_times": [1.0, None, 3.0, 4.0]}, "TLift needs timestamps"),
        ({"query_times": [1.0, 2.0]}, "query_times"),
        ({"gallery_cams": [0, 1]}, "gallery_cams"),
        ({"scores": np.zeros(4)}, "2-D"),
        ({"scores": np.full((3, 4), np.nan)}, "finite"),
        ({"tau": 0}, "tau"),
        ({"sigma": -1}, "sigma"),
        ({"k": 0}, "k"),
        ({"k": 2.5}, "k"),
        ({"alpha": -0.5}, "alpha"),
        ({"alpha": "a lot"}, "alpha"),
    ],
)
def test_bad_input_is_rejected_with_a_message(change, message):
    args = {
        "scores": np.full((3, 4), 0.5),
        "query_cams": [0, 0, 1],
        "query_times": [1.0, 2.0, 3.0],
        "gallery_cams": [0, 1, 1, 2],
        "gallery_times": [1.0, 2.0, 3.0, 4.0],
        **change,
    }
    with pytest.raises(ValueError, match=message):
        tlift(**args)
