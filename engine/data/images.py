"""Cheap checks and decoding of image files.

Checking every image by fully decoding it would cost seconds on a Market-sized set, so
the loaders only look at the first and last bytes: a missing signature or a missing end
marker (a truncated download) is caught without decoding. What passes that check and still
fails to decode (a garbage body behind valid markers, an image too large to decode in memory)
is caught at extraction, skipped there and remembered (``engine.data.known_bad``).
"""
from __future__ import annotations

import os

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Person crops are a few hundred pixels a side; a header claiming more than this many pixels
# is refused before decoding (a crafted file must not make the decoder allocate gigabytes).
MAX_PIXELS = 40_000_000


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
    elif lower.endswith(".bmp"):
        if not head.startswith(b"BM"):
            return "not a BMP file"
    elif lower.endswith(".webp"):
        if not (head.startswith(b"RIFF") and head[8:12] == b"WEBP"):
            return "not a WebP file"
    return None


def _header_pixels(path: str) -> int | None:
    """Width x height from the file's header (Pillow reads only the header), None if unknown."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
    except Image.DecompressionBombError:
        return MAX_PIXELS + 1  # Pillow's own limit, far above ours
    except Exception:  # not an image Pillow knows: leave the verdict to the decoder
        return None
    return int(w) * int(h)


def read_image_rgb(path: str) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array ``[H, W, 3]``.

    Raises ``ValueError`` with the path when the file is not a readable image, so callers
    (the viewer's "open image as query") can show the message as it is.
    """
    pixels = _header_pixels(path)
    if pixels is not None and pixels > MAX_PIXELS:
        raise ValueError(f"{path} is too large to decode (more than {MAX_PIXELS / 1e6:.0f} "
                         "megapixels)")
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile copes with non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ValueError(f"{path} is not a readable image (tried to decode it as JPEG/PNG/BMP/WebP)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
