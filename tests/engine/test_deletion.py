"""The deletion test's pieces against brute force (cells, the images of a curve, its area, a
sensitivity map carried onto the map cells) and the pair heatmap's exact sums."""
from __future__ import annotations

import numpy as np
import pytest

from engine.explain.deletion import (
    cell_bounds,
    cells_from_squares,
    delete_cells,
    deletion_auc,
    deletion_curve,
    deletion_images,
    mean_colour,
    order_of,
)
from engine.explain.inspect import pair_heatmap
from engine.explain.occlusion import square_boxes
from engine.models.correspondence import global_correspondence, pair_correspondence


def _image(h=20, w=10, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("shape", [(4, 2, 20, 10), (3, 3, 16, 8), (5, 4, 64, 32)])
def test_cells_tile_the_image_once_each_and_hold_their_centres(shape):
    map_h, map_w, image_h, image_w = shape
    cover = np.zeros((image_h, image_w), int)
    bounds = cell_bounds(map_h, map_w, image_h, image_w)
    for index, (y0, y1, x0, x1) in enumerate(bounds):
        cover[y0:y1, x0:x1] += 1
        row, col = divmod(index, map_w)
        cy, cx = (row + 0.5) * image_h / map_h, (col + 0.5) * image_w / map_w
        assert y0 <= cy < y1 and x0 <= cx < x1
    assert (cover == 1).all()


def test_deletion_images_fill_the_ranked_cells_a_tenth_at_a_time():
    image, map_shape, colour = _image(), (4, 2), (1, 2, 3)
    order = np.array([5, 0, 7, 2, 3, 6, 1, 4])
    images = deletion_images(image, order, map_shape, colour, steps=4)
    assert len(images) == 5
    bounds = cell_bounds(*map_shape, 20, 10)
    for k, im in enumerate(images):
        filled = set(order[:round(k * 8 / 4)].tolist())
        for cell, (y0, y1, x0, x1) in enumerate(bounds):
            expected = np.broadcast_to(np.array(colour, np.uint8), (y1 - y0, x1 - x0, 3)) \
                if cell in filled else image[y0:y1, x0:x1]
            np.testing.assert_array_equal(im[y0:y1, x0:x1], expected)
    np.testing.assert_array_equal(images[0], image)
    with pytest.raises(ValueError, match="each of the 8 locations once"):
        deletion_images(image, [0, 1, 2], map_shape, colour)


def test_a_curve_scores_each_step_and_its_area_is_the_trapezoid_rule():
    image, map_shape = _image(seed=1), (4, 2)
    order = order_of(np.arange(8)[::-1].reshape(4, 2))           # 0, 1, ..., 7
    np.testing.assert_array_equal(order, np.arange(8))
    brightness = lambda ims: [float(np.mean(im)) for im in ims]  # noqa: E731
    curve = deletion_curve(brightness, image, order, map_shape, (0, 0, 0), steps=4)
    expected = [float(delete_cells(image, order[:c], map_shape, (0, 0, 0)).mean()) for c in (0, 2, 4, 6, 8)]
    np.testing.assert_allclose(curve, expected)
    assert curve[-1] == 0.0
    assert deletion_auc(curve) == pytest.approx(np.trapezoid(curve, np.linspace(0, 1, 5)))
    with pytest.raises(ValueError):
        deletion_auc([1.0])


def test_order_of_ranks_highest_first_with_ties_in_location_order():
    np.testing.assert_array_equal(order_of(np.array([[0.5, 2.0], [0.5, -1.0]])), [1, 0, 2, 3])


def test_a_sensitivity_map_on_the_map_cells_is_the_mean_of_the_squares_over_each_centre():
    image_h, image_w, side, stride, map_shape = 32, 16, 8, 4, (4, 2)
    boxes = square_boxes(image_h, image_w, side, stride)
    rows = len(range(0, image_h - side + 1, stride))
    values = np.random.default_rng(2).normal(size=(rows, len(boxes) // rows))
    cells = cells_from_squares(values, side, stride, map_shape, (image_h, image_w))
    flat = values.ravel()
    for index in range(8):
        row, col = divmod(index, 2)
        cy, cx = (row + 0.5) * image_h / 4, (col + 0.5) * image_w / 2
        over = [v for v, (x, y, s, _) in zip(flat, boxes, strict=True) if x <= cx < x + s and y <= cy < y + s]
        assert cells[row, col] == pytest.approx(np.mean(over) if over else 0.0)


def test_mean_colour_weighs_every_pixel():
    a, b = np.zeros((2, 2, 3), np.uint8), np.full((1, 2, 3), 60, np.uint8)
    np.testing.assert_allclose(mean_colour([a, b]), [20, 20, 20])


def test_the_pair_heatmap_carries_the_whole_score_onto_the_query(unit_maps, randomised_matcher):
    c, h, w = 8, 4, 2
    matcher = randomised_matcher(c, h, w, seed=1).eval()
    weight, bias = (t.detach().numpy() for t in matcher.folded_head())
    probe, gallery = unit_maps(1, c, h, w, seed=2)[0].numpy(), unit_maps(2, c, h, w, seed=3).numpy()
    maps = []
    for g in gallery:
        corr = pair_correspondence(probe, g, weight, float(bias), centre=0.9)
        pair = pair_heatmap(corr)
        assert pair.sum(dtype=np.float64) + corr.relative_bias == pytest.approx(corr.logit, abs=1e-5)
        # brute force: each gallery location's w*(b-mu) goes to the query location it matched
        expected = corr.relative_contribution("probe").astype(np.float64).ravel()
        rel_g = corr.relative_contribution("gallery").ravel()
        for r in range(h * w):
            expected[corr.gallery_to_probe[r]] += rel_g[r]
        np.testing.assert_allclose(pair.ravel(), expected, atol=1e-6)
        maps.append(pair)
    assert not np.allclose(maps[0], maps[1])          # it follows the pair
    corr = global_correspondence(probe, gallery[0])
    assert pair_heatmap(corr).sum(dtype=np.float64) == pytest.approx(corr.logit, abs=1e-5)
    assert pair_heatmap(corr, "gallery").sum(dtype=np.float64) == pytest.approx(corr.logit, abs=1e-5)
