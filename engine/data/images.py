"""Cheap checks and bounded decoding of image files.

Checking every image by fully decoding it would cost seconds on a Market-sized set, so
the loaders only look at the file's kind and size and its first and last bytes: anything but a
regular file, a file above the size limit, a missing signature or a missing end marker (a
truncated download) is caught without decoding. What passes that check and still fails to
decode (a garbage body behind valid markers) is caught at extraction, skipped there and
remembered (``engine.data.known_bad``).

Bounds (a crafted or damaged file must neither hang the reader nor make it allocate
gigabytes):

- only regular files are opened, without blocking (a FIFO named ``.jpg`` is refused at once);
- a file larger than :func:`max_image_bytes` (64 MiB; ``REID_MAX_IMAGE_MB`` sets another
  limit, in MiB) is refused before a byte is read;
- the width and height are read from the header (JPEG frame header, PNG ``IHDR``; Pillow's
  lazy header read for the other formats) and an image above :data:`MAX_PIXELS` is refused
  before decoding.
"""
from __future__ import annotations

import io
import os
import stat

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
# Person crops are a few hundred pixels a side; a header claiming more than this many pixels
# is refused before decoding (a crafted file must not make the decoder allocate gigabytes).
MAX_PIXELS = 40_000_000
#: The default limit on an image file's size, in MiB (``REID_MAX_IMAGE_MB`` overrides it).
MAX_IMAGE_MB = 64
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (every coding process), which carry the image's size.
_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def max_image_bytes() -> int:
    """The largest image file read, in bytes: ``REID_MAX_IMAGE_MB`` MiB, else 64 MiB."""
    text = os.environ.get("REID_MAX_IMAGE_MB", "").strip()
    if not text:
        return MAX_IMAGE_MB << 20
    try:
        mib = float(text)
    except ValueError:
        mib = float("nan")
    if not mib > 0 or mib == float("inf"):
        raise ValueError(f"REID_MAX_IMAGE_MB must be a positive number of MiB, got {text!r}")
    return int(mib * (1 << 20))


def _open_regular(path: str):
    """``path`` opened for reading (binary) if it is a regular file within the size limit;
    else ``ValueError`` saying why. Opening never blocks (a FIFO is refused, not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise ValueError(f"cannot read: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file (a folder, FIFO or device)")
        limit = max_image_bytes()
        if st.st_size > limit:
            raise ValueError(f"{st.st_size / (1 << 20):.4g} MiB, above the "
                             f"{limit / (1 << 20):.4g} MiB limit for an image file "
                             "(REID_MAX_IMAGE_MB sets another)")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def check_image_file(path: str) -> str | None:
    """Return why ``path`` cannot be a complete image, or ``None`` when it looks fine."""
    try:
        with _open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                return "empty file"
            head = fh.read(16)
            fh.seek(max(0, size - 1024))
            tail = fh.read()
    except ValueError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    lower = path.lower()
    if lower.endswith((".jpg", ".jpeg")):
        if not head.startswith(b"\xff\xd8"):
            return "not a JPEG file"
        if b"\xff\xd9" not in tail:
            return "truncated JPEG (no end marker)"
    elif lower.endswith(".png"):
        if not head.startswith(_PNG_SIGNATURE):
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


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header; None when no frame header comes before the
    first scan. Walks the marker segments by their lengths, so it costs little on any input."""
    i = 2  # after the start-of-image marker
    while True:
        i = data.find(b"\xff", i)  # bytes between segments are skipped, as decoders do
        if i < 0 or i + 1 >= len(data):
            return None
        marker = data[i + 1]
        if marker in (0x00, 0xFF) or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            i += 1 if marker == 0xFF else 2  # fill byte, stuffed zero or a marker without length
            continue
        if marker in (0xD9, 0xDA):  # end of image or a scan before any frame header
            return None
        if marker in _JPEG_FRAMES:
            if i + 9 > len(data):
                return None
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        if i + 4 > len(data):
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of an image file's bytes; None when it cannot be read."""
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                return im.size
    except Image.DecompressionBombError:
        return MAX_PIXELS + 1, 1  # Pillow's own limit, far above ours
    except Exception:  # not an image Pillow knows: leave the verdict to the decoder
        return None


def read_image_rgb(path: str) -> np.ndarray:
    """Decode an image file to an RGB ``uint8`` array ``[H, W, 3]``, within the module's bounds.

    Raises ``ValueError`` with the path when the file is not a readable image (or not a regular
    file, or too large), so callers (the viewer's "open image as query", extraction's list of
    skipped images) can show the message as it is.
    """
    try:
        with _open_regular(path) as fh:
            data = fh.read(max_image_bytes() + 1)  # bounded, should the file grow meanwhile
        if len(data) > max_image_bytes():
            raise ValueError("grew above the size limit for an image file while being read")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    size = _header_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ValueError(f"{path} is too large to decode (more than {MAX_PIXELS / 1e6:.0f} "
                         "megapixels)")
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    except cv2.error:
        image = None
    if image is None:
        raise ValueError(f"{path} is not a readable image (tried to decode it as JPEG/PNG/BMP/WebP)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
