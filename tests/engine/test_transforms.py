"""Occlusion augmentations: geometry, fill values and the region they report."""
from __future__ import annotations

import math

import numpy as np
import pytest

from engine.data.transforms import (
    Cutout,
    RandomErasing,
    RandomOcclusion,
    TrainTransform,
    make_occlusion,
    to_tensor,
)


def _image(h=384, w=128, seed=0):
    # values in 1..254 so white (255) and black (0) fills are unambiguous
    return np.random.default_rng(seed).integers(1, 255, (h, w, 3), dtype=np.uint8)


def _changed_box(before, after):
    ys, xs = np.nonzero((before != after).any(-1))
    return ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1


def test_random_occlusion_square_white_inside_and_side_range():
    img = _image()
    rng = np.random.default_rng(1)
    ro = RandomOcclusion()
    high = math.floor(0.8 * 128) - 1
    sides = []
    for _ in range(300):
        out, (top, left, h, w) = ro.apply(img, rng)
        assert h == w and 1 <= h <= high
        assert 0 <= top and top + h <= 384 and 0 <= left and left + w <= 128
        assert (out[top:top + h, left:left + w] == 255).all()
        assert _changed_box(img, out) == (top, left, h, w)
        sides.append(h)
    assert min(sides) < 15 and max(sides) > high - 15  # the whole range is used
    assert (img != 255).all()  # input untouched


def test_random_erasing_probability_area_and_aspect():
    img = _image()
    rng = np.random.default_rng(2)
    re = RandomErasing()
    hits = 0
    for _ in range(400):
        out, region = re.apply(img, rng)
        if region is None:
            assert out is img
            continue
        hits += 1
        top, left, h, w = region
        area = h * w / (384 * 128)
        assert 0.015 <= area <= 0.42
        assert 0.25 <= h / w <= 3.6
        assert top + h <= 384 and left + w <= 128
        changed = (out != img).any(-1)
        assert not changed[:top].any() and not changed[top + h:].any()
    assert 150 < hits < 250  # p = 0.5


def test_random_erasing_mean_fill():
    img = _image()
    out, (top, left, h, w) = RandomErasing(p=1.0, fill="mean").apply(img, np.random.default_rng(3))
    expected = img.reshape(-1, 3).mean(0).astype(np.uint8)
    assert (out[top:top + h, left:left + w] == expected).all()


def test_cutout_fixed_size_clipped_at_border_zero_fill():
    img = _image(64, 32)
    rng = np.random.default_rng(4)
    clipped = 0
    for _ in range(200):
        out, (top, left, h, w) = Cutout(size=20).apply(img, rng)
        assert h <= 20 and w <= 20
        clipped += (h < 20) or (w < 20)
        assert (out[top:top + h, left:left + w] == 0).all()
        assert _changed_box(img, out) == (top, left, h, w)
    assert clipped > 0


def test_train_transform_shape_region_and_tensor():
    t = TrainTransform(height=96, width=32, occlusion="random_occlusion")
    rng = np.random.default_rng(5)
    out, region = t.apply(_image(128, 64), rng)
    assert out.shape == (96, 32, 3) and out.dtype == np.uint8
    top, left, h, w = region
    assert (out[top:top + h, left:left + w] == 255).all()
    tensor = t(_image(128, 64), rng)
    assert tensor.shape == (3, 96, 32) and 0.0 <= tensor.min() and tensor.max() <= 1.0


def test_train_transform_is_deterministic_for_a_seed():
    t = TrainTransform(height=64, width=32, color_jitter=0.2)
    a = t.apply(_image(), np.random.default_rng(9))
    b = t.apply(_image(), np.random.default_rng(9))
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_no_occlusion_and_unknown_name():
    t = TrainTransform(height=64, width=32, occlusion="none", pad=0, flip=False, rotation=0)
    img = _image(64, 32)
    out, region = t.apply(img, np.random.default_rng(0))
    assert region is None and np.array_equal(out, img)
    with pytest.raises(ValueError, match="random_occlusion"):
        make_occlusion("mixup")


def test_to_tensor_scale():
    img = np.full((2, 3, 3), 255, np.uint8)
    assert to_tensor(img).shape == (3, 2, 3) and float(to_tensor(img).max()) == 1.0
