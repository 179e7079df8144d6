"""Occlusion on a query: fills, the training augmentations as previews, ranking an occluded
query, and sensitivity maps (docs/architecture.md "Public interface": ``engine.explain.occlusion``).

Boxes here are ``(x, y, w, h)`` in the pixels of the image given (the transforms of
``engine.data.transforms`` report ``(top, left, height, width)``; :func:`augmentation_previews`
converts). An occluded image is ranked as an external query is: its feature map from the
backbone (``Session.maps_for_images``, occluded copies batched: one forward per batch), its
logits against the whole gallery (``Session.score_maps``), then the session's post-processing of an
image without timestamp (:func:`external_distances`: re-ranking with the image alone as the
query set, no TLift).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from engine.evaluation import rank_row
from engine.jobs import CancelFn, ProgressFn, check_cancel, report

__all__ = ["FILLS", "Box", "Preview", "OccludedRanking", "RankChangeMap", "occlude",
           "default_square", "resolve_square", "square_positions", "square_boxes",
           "augmentation_previews", "preview_rng", "external_distances", "rank_occluded",
           "sensitivity_map", "rank_change_map"]

FILLS = ("white", "mean", "noise", "zeros")
Box = tuple[int, int, int, int]  # x, y, w, h
PREVIEW_AUGMENTATIONS = ("random_occlusion", "random_erasing", "cutout")


def _as_image(image) -> np.ndarray:
    if isinstance(image, str):
        from engine.data import read_image_rgb

        return read_image_rgb(image)
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected a uint8 RGB image [h, w, 3]; got {image.dtype} {image.shape}")
    return image


def _clip_box(box: Box, height: int, width: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of ``box`` clipped to the image (may be empty)."""
    x, y, w, h = (int(round(v)) for v in box)
    if w < 0 or h < 0:
        raise ValueError(f"box width and height must be >= 0; got {box}")
    return max(0, x), max(0, y), min(width, x + w), min(height, y + h)


def occlude(image: np.ndarray, box: Box, fill: str = "white",
            rng: np.random.Generator | None = None) -> np.ndarray:
    """A copy of ``image`` with ``box`` filled; the part of the box outside the image is ignored.

    Parameters
    ----------
    image : ndarray, uint8 [H, W, 3]
        RGB image (a path is read as one).
    box : (x, y, w, h)
        The region in the pixels of ``image``.
    fill : {"white", "mean", "noise", "zeros"}
        White (255, as random occlusion), the image's mean colour (random erasing's "mean"),
        uniform noise per pixel (random erasing's "random") or zeros (as cutout).
    rng : numpy Generator, optional
        For ``"noise"``; default a generator seeded with 0, so the same call gives the same image.
    """
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose one of {', '.join(FILLS)}")
    image = _as_image(image)
    x0, y0, x1, y1 = _clip_box(box, *image.shape[:2])
    out = image.copy()
    if x1 <= x0 or y1 <= y0:
        return out
    if fill == "white":
        out[y0:y1, x0:x1] = 255
    elif fill == "zeros":
        out[y0:y1, x0:x1] = 0
    elif fill == "mean":
        out[y0:y1, x0:x1] = image.reshape(-1, 3).mean(0)
    else:
        rng = np.random.default_rng(0) if rng is None else rng
        out[y0:y1, x0:x1] = rng.integers(0, 256, size=(y1 - y0, x1 - x0, 3), dtype=np.uint8)
    return out


def default_square(width: int) -> tuple[int, int]:
    """Default ``(side, stride)`` of the sensitivity square: a third of the width, half of that."""
    side = max(1, int(round(width / 3)))
    return side, max(1, side // 2)


def resolve_square(width: int, side: int | None, stride: int | None) -> tuple[int, int]:
    """``side`` and ``stride`` with the defaults filled in (stride default: half the side)."""
    side = default_square(width)[0] if side is None else int(side)
    return side, max(1, side // 2) if stride is None else int(stride)


def square_positions(height: int, width: int, side: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners of the square: ``ys`` [rows] and ``xs`` [cols], 0, stride, ... while it fits."""
    if side < 1 or stride < 1:
        raise ValueError(f"side and stride must be >= 1; got side={side}, stride={stride}")
    if side > min(height, width):
        raise ValueError(f"a square of side {side} does not fit a {width} x {height} image")
    return np.arange(0, height - side + 1, stride), np.arange(0, width - side + 1, stride)


# ---------------------------------------------------------------------- augmentation previews
class Preview(NamedTuple):
    """One training augmentation applied to a query: the image and the box it filled (or None)."""

    name: str
    image: np.ndarray          # uint8 [H, W, 3] at the model's input size
    box: Box | None            # (x, y, w, h)


def preview_rng(seed: int, index: int) -> np.random.Generator:
    """The generator :func:`augmentation_previews` gives augmentation number ``index``."""
    return np.random.default_rng([int(seed), int(index)])


def augmentation_previews(image, height: int, width: int, seed: int = 0,
                          cutout_size: int = 32) -> list[Preview]:
    """Random occlusion, random erasing and cutout on ``image``, by the training transforms.

    The image is first resized to the model's input (``height x width``), as training does
    before occluding. Random erasing is drawn with probability 1 here (training applies it
    with 0.5), so each preview shows an occlusion.
    """
    from engine.data.transforms import RandomErasing, make_occlusion, resize

    base = resize(_as_image(image), height, width)
    previews = []
    for i, name in enumerate(PREVIEW_AUGMENTATIONS):
        transform = make_occlusion(name, cutout_size)
        if isinstance(transform, RandomErasing):
            transform = dataclasses.replace(transform, p=1.0)
        out, region = transform.apply(base, preview_rng(seed, i))
        box = None if region is None else (region[1], region[0], region[3], region[2])
        previews.append(Preview(name, out, box))
    return previews


# ---------------------------------------------------------------------- ranking occluded images
def external_distances(session, logits: np.ndarray, maps: np.ndarray | None = None, *,
                       rerank=None, cancel: CancelFn | None = None, self_logits=None) -> np.ndarray:
    """Distances ``[n, g]`` of extra probes, post-processed as images without timestamp
    (:meth:`engine.session.Session.probe_distances`).

    With ``rerank`` each probe's score against itself (the q-q block) is needed:
    ``self_logits [n]``, or ``maps [n, D, h, w]`` to score them.
    """
    if rerank is not None and rerank is not False and self_logits is None:
        if maps is None:
            raise ValueError("re-ranking an extra probe needs its feature map (to score it against itself)")
        self_logits = []
        for i in range(len(maps)):
            check_cancel(cancel)
            self_logits.append(np.asarray(session.model.score(
                maps[i:i + 1], maps[i:i + 1], device=session.device,
                memory_budget=session.memory_budget), np.float32))
    return session.probe_distances(logits, self_logits, rerank, cancel=cancel)


@dataclasses.dataclass
class OccludedRanking:
    """A query ranked without and with an occlusion, the same way (external-image path)."""

    before_logits: np.ndarray      # [g] float32
    after_logits: np.ndarray       # [g] float32
    before: np.ndarray             # [g] float32 distances
    after: np.ndarray              # [g] float32 distances
    occluded: np.ndarray           # uint8 [H, W, 3], the image that was ranked
    occluded_maps: np.ndarray | None = None  # [D, h, w] its feature map (for the match inspector)


def rank_occluded(session, image, box: Box | None, fill: str = "white", *, rerank=None,
                  occluded: np.ndarray | None = None, before: OccludedRanking | None = None,
                  progress: ProgressFn | None = None,
                  cancel: CancelFn | None = None) -> OccludedRanking:
    """Rank ``image`` and its occluded copy against the gallery (one backbone batch of two).

    ``occluded`` may give the occluded image directly (e.g. an augmentation preview); otherwise
    it is ``occlude(image, box, fill)``. ``before``, an earlier result for the same image and
    ``rerank``, saves ranking the unoccluded image again.
    """
    image = _as_image(image)
    if occluded is None:
        occluded = occlude(image, box, fill)
    report(progress, 0, 3)
    images = [occluded] if before is not None else [image, occluded]
    maps = session.maps_for_images(images, cancel=cancel)                 # [n, D, h, w]
    report(progress, 1, 3)
    logits = session.score_maps(maps)                                     # [n, g]
    check_cancel(cancel)
    report(progress, 2, 3)
    dist = external_distances(session, logits, maps, rerank=rerank, cancel=cancel)
    report(progress, 3, 3)
    if before is not None:
        return OccludedRanking(before.before_logits, logits[0], before.before, dist[0], occluded, maps[-1])
    return OccludedRanking(logits[0], logits[1], dist[0], dist[1], occluded, maps[-1])


def _occluded_batches(session, image: np.ndarray, side: int, stride: int, fill: str,
                      score: Callable[[np.ndarray], np.ndarray], progress, cancel) -> np.ndarray:
    """``score(maps [b, D, h, w]) -> [b]`` for every square position; ``[rows, cols]``."""
    ys, xs = square_positions(image.shape[0], image.shape[1], side, stride)
    corners = [(int(x), int(y)) for y in ys for x in xs]
    out = np.empty(len(corners), np.float64)
    batch = max(1, int(session.batch_size))
    for start in range(0, len(corners), batch):
        check_cancel(cancel)
        chunk = corners[start:start + batch]
        images = [occlude(image, (x, y, side, side), fill) for x, y in chunk]
        maps = session.maps_for_images(images, cancel=cancel)            # [b, D, h, w]
        check_cancel(cancel)
        out[start:start + len(chunk)] = score(maps)
        report(progress, start + len(chunk), len(corners))
    return out.reshape(len(ys), len(xs))


def sensitivity_map(session, image, gallery_index: int, side: int | None = None,
                    stride: int | None = None, fill: str = "white", *,
                    progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> np.ndarray:
    """The pair's logit drop for every position of a ``side x side`` square over ``image``.

    Parameters
    ----------
    session : engine.session.Session
    image : ndarray uint8 [H, W, 3] or path
        The query image (in its own pixels; the model resizes it as it does every query).
    gallery_index : int
        The gallery image of the pair.
    side, stride : int, optional
        Square side and step in pixels; default a third of the width and half the side.
    fill : str
        As :func:`occlude`.

    Returns
    -------
    ndarray, float64 [rows, cols]
        ``logit(image, g) - logit(occluded, g)`` with the square's top-left corner at
        ``(x, y) = (stride * col, stride * row)``; positive = the square lowered the score.
    """
    image = _as_image(image)
    side, stride = resolve_square(image.shape[1], side, stride)
    gallery = [int(gallery_index)]
    base = float(session.score_maps(session.maps_for_images([image]), gallery)[0, 0])
    logits = _occluded_batches(session, image, side, stride, fill,
                               lambda maps: session.score_maps(maps, gallery)[:, 0], progress, cancel)
    return base - logits


class RankChangeMap(NamedTuple):
    """First-true-match rank of a query with the square at each position."""

    before: int                # rank without occlusion (1-based, junk removed)
    ranks: np.ndarray          # int64 [rows, cols], rank with the square there
    ranking: str = ""          # how every image was ranked: "qaconv" or "qaconv+rr" (never TLift)

    @property
    def change(self) -> np.ndarray:
        """``ranks - before``: positive = the first true match dropped down the list."""
        return self.ranks - self.before


def rank_change_map(session, image, query_pid: int, query_cam: int, side: int | None = None,
                    stride: int | None = None, fill: str = "white", *, rerank=None,
                    progress: ProgressFn | None = None, cancel: CancelFn | None = None) -> RankChangeMap:
    """Where the square moves the query's first true match: its rank at every position.

    The whole gallery is scored for every position; ranks follow the evaluation protocol
    (same identity and camera removed). Post-processing as :func:`external_distances`, the
    ranking :func:`rank_occluded` gives one square with the same ``fill`` and ``rerank``, so each
    cell equals the rank of the query occluded there by hand.
    """

    from engine.postprocess.params import rerank_params, stage_name

    image = _as_image(image)
    labels = (session.gallery_pids, session.gallery_cams)

    def first_hits(maps: np.ndarray) -> np.ndarray:
        dist = external_distances(session, session.score_maps(maps), maps, rerank=rerank, cancel=cancel)
        return np.array([rank_row(row, query_pid, query_cam, *labels).first_hit_rank for row in dist])

    before = int(first_hits(session.maps_for_images([image]))[0])
    if before < 1:
        raise ValueError("this query has no true match on another camera in the gallery, "
                         "so the rank of its first true match is undefined")
    side, stride = resolve_square(image.shape[1], side, stride)
    ranks = _occluded_batches(session, image, side, stride, fill, first_hits, progress, cancel)
    ranking = stage_name(session.method, rerank_params(rerank) is not None, False)
    return RankChangeMap(before, ranks.astype(np.int64), ranking)


def square_boxes(height: int, width: int, side: int, stride: int) -> list[Box]:
    """The squares of a sensitivity map, row by row (for drawing or brute-force checks)."""
    ys, xs = square_positions(height, width, side, stride)
    return [(int(x), int(y), side, side) for y in ys for x in xs]
