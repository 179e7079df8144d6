"""Cache files read back with suspicion: JSON records, checksummed arrays, the folded head.

A cache file may be damaged (a crash, a full disk), edited, or swapped for another one. Every
reader here either returns content that matches what was written for this place, or says why
not; the caller then recomputes, names the file in one warning, and never trusts it.

An array is stored as ``NAME.npy`` plus a record ``NAME.json`` holding its checksum, shape,
dtype and the *place* it was written for (a block key, a row range, ...): an array moved or
swapped together with its record is caught because the record names another place.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from engine.utils import atomic_path, atomic_write_text

__all__ = ["checksum", "load_array", "parse_folded_head", "read_folded_head", "read_json_object",
           "save_array"]

log = logging.getLogger(__name__)

#: A cache record is a few hundred bytes; a folded head at most ~16k numbers.
MAX_RECORD_BYTES = 1 << 20


def read_json_object(path: str | os.PathLike, max_bytes: int = MAX_RECORD_BYTES) -> dict:
    """The JSON object in ``path``; ValueError (saying why) for anything else.

    Refused before parsing: a file over ``max_bytes``; while parsing: invalid or nested too
    deeply (Python's recursion limit bounds the depth); after: a value that is not an object.
    OSError passes through.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{size} bytes, more than the {max_bytes} such a record may hold")
    try:
        data = json.loads(path.read_bytes())
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    if not isinstance(data, dict):
        raise ValueError(f"holds a JSON {type(data).__name__}, not an object")
    return data


def checksum(array: np.ndarray) -> str:
    """Content hash of an array's bytes (C order)."""
    return hashlib.blake2b(np.ascontiguousarray(array).tobytes(), digest_size=16).hexdigest()


def _record_path(path: Path) -> Path:
    return path.with_suffix(".json")


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparing records."""
    return json.loads(json.dumps(value))


def save_array(path: str | os.PathLike, array: np.ndarray, **place) -> None:
    """Write ``array`` to ``path`` (``.npy``), then its record: checksum, shape, dtype, ``place``.

    Both writes are atomic and the record comes last: an array without one is never trusted.
    """
    path = Path(path)
    array = np.ascontiguousarray(array)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
    record = {"checksum": checksum(array), "shape": list(array.shape), "dtype": array.dtype.str,
              **_as_json(place)}
    atomic_write_text(_record_path(path), json.dumps(record))


def load_array(path: str | os.PathLike, shape: tuple[int, ...], dtype, *, what: str,
               **place) -> np.ndarray | None:
    """The array saved by :func:`save_array` at ``path`` for this ``shape``, ``dtype`` and
    ``place``, or None.

    None when it is absent; also when anything differs from what is expected (the record is
    malformed or names another place, the array's header, size or checksum does not match):
    then one warning names the file and says why, and both files are deleted so the caller's
    recomputed array replaces them.
    """
    path = Path(path)
    record_path = _record_path(path)
    if not (path.is_file() and record_path.is_file()):
        return None
    try:
        record = read_json_object(record_path)
        expected = {"shape": list(shape), "dtype": np.dtype(dtype).str, **_as_json(place)}
        for name, value in expected.items():
            if record.get(name) != value:
                raise ValueError(f"its record says {name} {record.get(name)!r}, expected {value!r}")
        # Memory-mapped first: a header promising gigabytes costs nothing until it is checked.
        mapped = np.load(path, mmap_mode="r", allow_pickle=False)
        if mapped.shape != tuple(shape) or mapped.dtype != np.dtype(dtype):
            raise ValueError(f"the array is {mapped.dtype}{list(mapped.shape)}, not as recorded")
        array = np.array(mapped)
        del mapped
        if checksum(array) != record.get("checksum"):
            raise ValueError("content differs from the recorded checksum")
        return array
    except (OSError, ValueError, EOFError) as exc:
        log.warning("%s %s is damaged (%s); recomputing it", what, path, exc)
        for p in (path, record_path):
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
        return None


def parse_folded_head(data: dict, size: int) -> tuple[np.ndarray, float, float]:
    """A cached folded head ``{"weight": [size numbers], "bias", "centre"}`` as
    ``(weight float32 [size], bias, centre)``; ValueError when it is not one for this model.

    ``size`` is the model's feature-map locations ``H * W``: a head of another length, or one
    holding NaN or infinity, or numbers too large for float32, is refused.
    """
    weight, bias, centre = data.get("weight"), data.get("bias"), data.get("centre")
    if not isinstance(weight, list) or len(weight) != size:
        got = len(weight) if isinstance(weight, list) else type(weight).__name__
        raise ValueError(f"weight should be a list of {size} numbers, got {got}")
    numbers = [*weight, bias, centre]
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in numbers):
        raise ValueError("weight, bias and centre must be numbers")
    try:
        values = np.array([float(x) for x in numbers], np.float64)
    except OverflowError:  # an integer with hundreds of digits
        raise ValueError("a number beyond float range") from None
    if not np.isfinite(values).all():
        raise ValueError("holds NaN or infinity")
    if np.abs(values).max() > np.finfo(np.float32).max:
        raise ValueError("a number beyond float32's range")
    return values[:size].astype(np.float32), float(values[size]), float(values[size + 1])


def read_folded_head(path: str | os.PathLike, size: int) -> tuple[np.ndarray, float, float] | None:
    """The folded head cached in ``path`` (see :func:`parse_folded_head`), or None when it is
    absent or invalid: then one warning names the file, which is deleted to be written again."""
    try:
        return parse_folded_head(read_json_object(path), size)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("cached head %s is damaged (%s); recomputing it", path, exc)
        with contextlib.suppress(OSError):
            Path(path).unlink()
        return None
