"""The deletion test: how faithful is a heatmap to the score it explains? (docs/arithmetic.md 2.10)

Remove the query's map locations in the order a heatmap ranks them (most important first), a
tenth at a time, by filling each location's cell of the model's input with one colour (the
dataset's mean), and record the pair's score after each step. The faster the score falls, the
better the heatmap knew what the score rested on: the area under the curve (score against the
share removed, trapezoids over [0, 1]) is lower for a more faithful heatmap. A random order is the
reference; every order of one pair shares both end points (nothing and everything removed).

Cells: location ``(row, col)`` of an ``H x W`` map covers the pixels ``[row * h / H, (row + 1) *
h / H) x [col * w / W, (col + 1) * w / W)`` of the ``h x w`` model input, the cell whose centre
the inspector draws (docs/arithmetic.md 2.7).
"""
from __future__ import annotations

import numpy as np

from engine.jobs import CancelFn, check_cancel

__all__ = ["cell_bounds", "delete_cells", "deletion_images", "deletion_curve", "deletion_auc",
           "order_of", "cells_from_squares", "mean_colour"]


def cell_bounds(map_h: int, map_w: int, image_h: int, image_w: int) -> np.ndarray:
    """``int64 [H*W, 4]``: ``(y0, y1, x0, x1)`` of every location's cell (flat order), rounded
    so that the cells tile the image exactly."""
    ys = np.round(np.arange(map_h + 1) * image_h / map_h).astype(np.int64)
    xs = np.round(np.arange(map_w + 1) * image_w / map_w).astype(np.int64)
    rows, cols = np.divmod(np.arange(map_h * map_w), map_w)
    return np.stack([ys[rows], ys[rows + 1], xs[cols], xs[cols + 1]], axis=1)


def delete_cells(image: np.ndarray, cells, map_shape: tuple[int, int], colour) -> np.ndarray:
    """A copy of ``image`` (uint8 ``[h, w, 3]``, the model's input size) with the cells of the
    flat locations ``cells`` filled with ``colour`` (RGB)."""
    bounds = cell_bounds(*map_shape, *image.shape[:2])
    out = image.copy()
    fill = np.clip(np.round(np.asarray(colour, np.float64)), 0, 255).astype(np.uint8)
    for y0, y1, x0, x1 in bounds[np.asarray(cells, np.int64)]:
        out[y0:y1, x0:x1] = fill
    return out


def order_of(heatmap: np.ndarray) -> np.ndarray:
    """Flat locations from the highest heatmap value to the lowest (ties: location order)."""
    return np.argsort(-np.asarray(heatmap, np.float64).ravel(), kind="stable")


def deletion_images(image: np.ndarray, order, map_shape: tuple[int, int], colour,
                    steps: int = 10) -> list[np.ndarray]:
    """``steps + 1`` images: the first ``round(k * n / steps)`` locations of ``order`` filled,
    ``k = 0 .. steps`` (``n`` = all the map's locations)."""
    order = np.asarray(order, np.int64)
    n = map_shape[0] * map_shape[1]
    if sorted(order.tolist()) != list(range(n)):
        raise ValueError(f"order must rank each of the {n} locations once")
    counts = np.round(np.arange(steps + 1) * n / steps).astype(np.int64)
    return [delete_cells(image, order[:c], map_shape, colour) for c in counts]


def deletion_curve(score_images, image: np.ndarray, order, map_shape: tuple[int, int], colour,
                   steps: int = 10, *, cancel: CancelFn | None = None) -> np.ndarray:
    """The pair's score after removing ``0, 1/steps, ..., 1`` of the locations: ``float64
    [steps + 1]``; ``score_images(list of images) -> [n]`` scores the query images against the
    pair's gallery image (e.g. ``session.score_maps(session.maps_for_images(images), [g])[:, 0]``)."""
    check_cancel(cancel)
    images = deletion_images(image, order, map_shape, colour, steps)
    return np.asarray(score_images(images), np.float64).reshape(steps + 1)


def deletion_auc(curve) -> float:
    """Area under a deletion curve, its points evenly spaced over the share removed [0, 1]."""
    y = np.asarray(curve, np.float64)
    if y.ndim != 1 or y.size < 2:
        raise ValueError(f"a deletion curve needs at least two points; got shape {y.shape}")
    return float((y[:-1] + y[1:]).sum() / (2 * (y.size - 1)))


def cells_from_squares(values: np.ndarray, side: int, stride: int, map_shape: tuple[int, int],
                       image_shape: tuple[int, int]) -> np.ndarray:
    """A sensitivity map on the occluding square's grid (``[rows, cols]``, corner ``(stride *
    col, stride * row)``) carried onto the model's map: each location gets the mean value of the
    squares that cover its cell's centre (0 where none does). ``[H, W]`` float64."""
    values = np.asarray(values, np.float64)
    map_h, map_w = map_shape
    image_h, image_w = image_shape
    cy = (np.arange(map_h) + 0.5) * image_h / map_h
    cx = (np.arange(map_w) + 0.5) * image_w / map_w
    y0 = np.arange(values.shape[0]) * stride
    x0 = np.arange(values.shape[1]) * stride
    cover_y = (cy[:, None] >= y0[None]) & (cy[:, None] < y0[None] + side)     # [H, rows]
    cover_x = (cx[:, None] >= x0[None]) & (cx[:, None] < x0[None] + side)     # [W, cols]
    total = cover_y.astype(np.float64) @ values @ cover_x.T.astype(np.float64)
    count = cover_y.sum(1)[:, None] * cover_x.sum(1)[None, :]
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def mean_colour(images) -> np.ndarray:
    """The mean RGB colour ``float64 [3]`` of uint8 images (each weighs by its pixels)."""
    total, count = np.zeros(3), 0
    for image in images:
        px = np.asarray(image, np.float64).reshape(-1, 3)
        total += px.sum(0)
        count += len(px)
    if count == 0:
        raise ValueError("no images to average")
    return total / count
