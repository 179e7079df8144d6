"""Cheap checks and decoding of image files.

Checking every image by fully decoding it would cost seconds on a Market-sized set, so
the loaders only look at the first and last bytes: a missing signature or a missing end
marker (a truncated download) is caught without decoding.
"""
from __future__ import annotations

import os

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def check_image_file(path: str) -> str | None:
    """Return why ``path`` cannot be a complete image, or ``None`` when it looks fine."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        with open(path, "rb") as fh:
            head = fh.read(16)
            fh.seek(max(0, size - 1024))
            tail = fh.read()
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    lower = path.lower()
    if lower.endswith((".jpg", ".jpeg")):
        if not head.startswith(b"\xff\xd8"):
            return "not a JPEG file"
        if b"\xff\xd9" not in tail:
            return "truncated JPEG (no end marker)"
    elif lower.endswith(".png"):
        if not head.startswith(b"\x89PNG\r\n\x1a\n"):
            return "not a PNG file"
        if b"IEND" not in tail:
            return "truncated PNG (no IEND chunk)"
    return None


def read_image_rgb(path: str) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array ``[H, W, 3]``.

    Raises ``ValueError`` with the path when the file is not a readable image, so callers
    (the viewer's "open image as query") can show the message as it is.
    """
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile copes with non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(f"{path} is not a readable image (tried to decode it as JPEG/PNG/BMP/WebP)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
