"""Training-time image transforms, on ``uint8`` RGB arrays ``[H, W, 3]``.

The three occlusion augmentations of docs/arithmetic.md section 4 each report the box they filled,
``(top, left, height, width)`` in pixels or ``None``, so the viewer can preview them on a
query. Every transform takes an explicit ``numpy.random.Generator``; data-loader workers
seed theirs from torch's per-worker seed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch

Region = tuple[int, int, int, int]  # top, left, height, width

OCCLUSIONS = ("random_occlusion", "random_erasing", "cutout", "none")


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bicubic resize to ``height x width`` (the published preprocessing)."""
    if image.shape[:2] == (height, width):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)


@dataclass
class RandomOcclusion:
    """A white square of random side ``s ~ U{1, ..., floor(0.8 * min(H, W)) - 1}``.

    Placed uniformly at random where it fits entirely; always applied (QAConv's default).
    """

    max_fraction: float = 0.8
    fill: int = 255

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Region | None]:
        h, w = image.shape[:2]
        high = math.floor(self.max_fraction * min(h, w)) - 1
        if high < 1:
            return image, None
        side = int(rng.integers(1, high + 1))
        top = int(rng.integers(0, h - side + 1))
        left = int(rng.integers(0, w - side + 1))
        out = image.copy()
        out[top:top + side, left:left + side] = self.fill
        return out, (top, left, side, side)


@dataclass
class RandomErasing:
    """Zhong et al.'s random erasing: area 2-40 %, aspect ratio 0.3-3.3, up to 100 tries.

    ``fill`` is ``"random"`` (uniform noise per pixel) or ``"mean"`` (the image's mean
    colour). Applied with probability ``p``.
    """

    p: float = 0.5
    area: tuple[float, float] = (0.02, 0.4)
    aspect: tuple[float, float] = (0.3, 3.3)
    attempts: int = 100
    fill: str = "random"

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Region | None]:
        if rng.random() >= self.p:
            return image, None
        h, w = image.shape[:2]
        log_lo, log_hi = math.log(self.aspect[0]), math.log(self.aspect[1])
        for _ in range(self.attempts):
            target = rng.uniform(*self.area) * h * w
            ratio = math.exp(rng.uniform(log_lo, log_hi))
            eh = int(round(math.sqrt(target * ratio)))
            ew = int(round(math.sqrt(target / ratio)))
            if 0 < eh < h and 0 < ew < w:
                top = int(rng.integers(0, h - eh + 1))
                left = int(rng.integers(0, w - ew + 1))
                out = image.copy()
                if self.fill == "mean":
                    out[top:top + eh, left:left + ew] = image.reshape(-1, image.shape[-1]).mean(0)
                else:
                    out[top:top + eh, left:left + ew] = rng.integers(
                        0, 256, size=(eh, ew) + image.shape[2:], dtype=np.uint8)
                return out, (top, left, eh, ew)
        return image, None


@dataclass
class Cutout:
    """DeVries and Taylor's cutout: a fixed ``size`` square at a random centre, clipped, zeros."""

    size: int = 32

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Region | None]:
        h, w = image.shape[:2]
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        top, bottom = max(0, cy - self.size // 2), min(h, cy - self.size // 2 + self.size)
        left, right = max(0, cx - self.size // 2), min(w, cx - self.size // 2 + self.size)
        out = image.copy()
        out[top:bottom, left:right] = 0
        return out, (top, left, bottom - top, right - left)


def make_occlusion(name: str, cutout_size: int = 32):
    """The occlusion augmentation called ``name`` (one of ``OCCLUSIONS``), or None for none."""
    if name == "random_occlusion":
        return RandomOcclusion()
    if name == "random_erasing":
        return RandomErasing()
    if name == "cutout":
        return Cutout(cutout_size)
    if name == "none":
        return None
    raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(OCCLUSIONS)}")


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """``uint8 [H, W, 3]`` -> ``float32 [3, H, W]`` in [0, 1] (no mean/std normalisation)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)


@dataclass
class TrainTransform:
    """The training pipeline: resize, pad + random crop, flip, rotation, colour jitter, occlusion.

    Each step can be switched off. ``apply`` returns the image and the occluded region (in
    the output image's pixels), ``__call__`` the tensor the model takes.
    """

    height: int = 384
    width: int = 128
    pad: int = 10
    flip: bool = True
    rotation: float = 5.0
    color_jitter: float = 0.0
    occlusion: str = "random_occlusion"
    cutout_size: int = 32

    def __post_init__(self) -> None:
        self._occluder = make_occlusion(self.occlusion, self.cutout_size)

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Region | None]:
        out = resize(image, self.height, self.width)
        if self.pad > 0:
            padded = cv2.copyMakeBorder(out, self.pad, self.pad, self.pad, self.pad,
                                        cv2.BORDER_CONSTANT, value=(0, 0, 0))
            top = int(rng.integers(0, 2 * self.pad + 1))
            left = int(rng.integers(0, 2 * self.pad + 1))
            out = padded[top:top + self.height, left:left + self.width]
        if self.flip and rng.random() < 0.5:
            out = out[:, ::-1]
        if self.rotation > 0:
            angle = float(rng.uniform(-self.rotation, self.rotation))
            matrix = cv2.getRotationMatrix2D((self.width / 2, self.height / 2), angle, 1.0)
            out = cv2.warpAffine(np.ascontiguousarray(out), matrix, (self.width, self.height),
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        if self.color_jitter > 0:
            j = self.color_jitter
            gain = rng.uniform(1 - j, 1 + j, size=3)  # brightness/colour balance per channel
            out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        out = np.ascontiguousarray(out)
        region = None
        if self._occluder is not None:
            out, region = self._occluder.apply(out, rng)
        return out, region

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        return to_tensor(self.apply(image, rng)[0])
