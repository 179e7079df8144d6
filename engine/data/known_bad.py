"""The images found undecodable, remembered in the cache folder so a later run skips them at load.

The loader's cheap check looks only at an image's first and last bytes; a file with valid
markers and a garbage body (or a huge image) fails only when it is decoded, at extraction. The
extraction then drops it, the run continues, and the file is recorded here with its size and
modification time: a later run skips it when the dataset is opened (listed with the other skipped
files) instead of decoding everything again. A file that changed since is tried again.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from engine.data.samples import Dataset

__all__ = ["KnownBad"]

log = logging.getLogger(__name__)

_FILE = "known_bad_images.json"
# A cap so the list stays small; the oldest entries go first.
_MAX_ENTRIES = 10_000


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns]


class KnownBad:
    """The known-bad list of one cache folder: ``{path: {"stamp": [size, mtime_ns], "reason"}}``."""

    def __init__(self, cache_dir: str | os.PathLike):
        self.path = Path(cache_dir) / _FILE

    def _read(self) -> dict:
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}  # absent or damaged: nothing is known, images are decoded again
        return entries if isinstance(entries, dict) else {}

    def reasons(self, paths: Iterable[str]) -> dict[str, str]:
        """``{path: reason}`` for the given paths that are known bad and unchanged since."""
        entries = self._read()
        found = {}
        for p in paths:
            entry = entries.get(p)
            if isinstance(entry, dict) and entry.get("stamp") == _stamp(p) and entry.get("stamp"):
                found[p] = str(entry.get("reason", "undecodable"))
        return found

    def add(self, bad: Iterable[tuple[str, str]]) -> None:
        """Remember ``(path, reason)`` pairs; a cache folder that cannot be written only warns."""
        from engine.utils import atomic_write_text

        entries = self._read()
        for p, reason in bad:
            stamp = _stamp(p)
            if stamp is not None:
                entries.pop(p, None)
                entries[p] = {"stamp": stamp, "reason": reason}
        entries = dict(list(entries.items())[-_MAX_ENTRIES:])
        try:
            atomic_write_text(self.path, json.dumps(entries, indent=0))
        except OSError as exc:
            log.warning("cannot remember the undecodable images in %s (%s)", self.path, exc)

    def filter(self, dataset: Dataset) -> Dataset:
        """Drop known-bad query and gallery images from ``dataset`` (in place), listed as skipped."""
        items = dataset.query + dataset.gallery  # train pids are relabelled: left to training
        if not self.path.is_file() or not items:
            return dataset
        known = self.reasons(s.path for s in items)
        if known:
            for split in ("query", "gallery"):
                setattr(dataset, split, [s for s in getattr(dataset, split) if s.path not in known])
            dataset.skipped.extend((p, f"{r} (remembered from an earlier run)")
                                   for p, r in known.items())
            log.warning("skipped %d image(s) found undecodable by an earlier run (listed in %s)",
                        len(known), self.path)
        return dataset
