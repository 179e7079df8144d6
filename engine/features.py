"""Feature-map extraction and the on-disk feature store.

Maps are stored as float16 ``.npy`` files and opened memory-mapped, so a gallery larger
than memory still scores. An entry's key is a hash of everything that changes its content:
the model's weights, the image list (paths, sizes, modification times) and the
preprocessing. A changed input is therefore a different key (a miss); an entry whose file
does not match its recorded size and checksum is rebuilt, never trusted.

torch is imported only by the functions that run the model: keys and cache reads serve a warm
viewer launch, which must not pay the seconds of importing it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.cache_files import read_json_object
from engine.data import Sample, read_image_rgb
from engine.jobs import check_cancel, report
from engine.models.config import Preprocessing
from engine.utils import atomic_write_text

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Above this size the checksum is not re-verified on every open (it would cost seconds);
# the header and the file size still are.
_VERIFY_LIMIT = 1 << 30


def image_list_digest(paths: Sequence[str]) -> str:
    """Hash of the image list: order, paths, sizes and modification times."""
    h = hashlib.blake2b(digest_size=16)
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    return h.hexdigest()


_warned_uncached: set[str] = set()


def warn_uncached(root: str | os.PathLike, exc: OSError) -> None:
    """Say once per cache folder that it cannot be written and the run goes on uncached."""
    key = os.fspath(root)
    if key not in _warned_uncached:
        _warned_uncached.add(key)
        log.warning("cache folder %s cannot be written (%s); running without caching there",
                    key, exc.strerror or exc)


def _file_checksum(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def load_input(path_or_image: str | np.ndarray, prep: Preprocessing) -> torch.Tensor:
    """One image (file path or RGB array) -> model input ``[3, H, W]`` float32."""
    from engine.models.backbone import preprocess

    image = read_image_rgb(path_or_image) if isinstance(path_or_image, str) else path_or_image
    return preprocess(image, prep)[0]


class _ImageFiles:
    """Map-style dataset of model inputs (all a DataLoader needs: ``len`` and indexing).

    An item is ``(input [3, H, W], reason)``: ``reason`` is "" for a decoded image; for one that
    cannot be decoded the input is zeros and ``reason`` says why (when ``skip_bad``)."""

    def __init__(self, paths: Sequence[str], prep: Preprocessing, skip_bad: bool = False):
        self.paths, self.prep, self.skip_bad = list(paths), prep, skip_bad

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        import torch

        try:
            return load_input(self.paths[i], self.prep), ""
        except (ValueError, OSError) as exc:
            if not self.skip_bad:
                raise
            reason = str(exc).replace(self.paths[i], "").strip(" :") or "cannot be decoded"
            return torch.zeros(3, self.prep.height, self.prep.width), reason


def extract_maps(backbone: torch.nn.Module, paths: Sequence[str], prep: Preprocessing, *,
                 device: torch.device, batch_size: int = 64, num_workers: int = 0,
                 out: np.ndarray | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None,
                 bad: list[tuple[int, str]] | None = None) -> np.ndarray:
    """Run ``backbone`` over image files; returns float16 maps ``[N, D, h, w]``.

    ``out`` may be a preallocated (memory-mapped) array to fill in place. With ``bad`` (a list),
    an image that cannot be decoded does not stop the run: ``(index, reason)`` is appended to
    ``bad`` and its row holds the map of a black image, for the caller to drop.
    """
    import torch

    backbone.eval()
    loader = torch.utils.data.DataLoader(_ImageFiles(paths, prep, skip_bad=bad is not None),
                                         batch_size=batch_size, num_workers=num_workers,
                                         shuffle=False)
    done = 0
    use_amp = device.type == "cuda"
    report(progress, 0, len(paths))  # the stage shows (and is timed) from its start
    for batch, reasons in loader:
        check_cancel(cancel)
        if bad is not None:
            bad.extend((done + k, r) for k, r in enumerate(reasons) if r)
        with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.float16,
                                             enabled=use_amp):
            maps = backbone(batch.to(device, non_blocking=True))  # [b, D, h, w]
        maps = maps.float().cpu().numpy().astype(np.float16)
        if out is None:
            out = np.empty((len(paths),) + maps.shape[1:], np.float16)
        out[done:done + len(maps)] = maps
        done += len(maps)
        report(progress, done, len(paths))
    if out is None:  # no images at all
        raise ValueError("no images to extract features from")
    return out


class FeatureStore:
    """A folder of cached feature maps, one sub-folder per key.

    ``get_or_extract`` is the one call most users need: it returns the memory-mapped maps,
    extracting (and caching) them first when the key is missing or its file is corrupt.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def key(self, model_digest: str, paths: Sequence[str], prep: Preprocessing) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{model_digest}|{image_list_digest(paths)}|{prep.key()}|fp16-v1".encode())
        return h.hexdigest()

    def _entry(self, key: str) -> Path:
        return self.root / "features" / key

    def load(self, key: str) -> np.ndarray | None:
        """The cached maps for ``key`` (memory-mapped, read-only), or None on a miss.

        A corrupt or incomplete entry is deleted and reported as a miss.
        """
        entry = self._entry(key)
        meta_path, data_path = entry / "meta.json", entry / "maps.npy"
        if not meta_path.is_file():
            return None
        try:
            meta = read_json_object(meta_path)
            size = meta.get("bytes")
            if isinstance(size, bool) or not isinstance(size, int) or data_path.stat().st_size != size:
                raise ValueError("size differs from the recorded one")
            if size <= _VERIFY_LIMIT and _file_checksum(data_path) != meta.get("checksum"):
                raise ValueError("checksum differs from the recorded one")
            maps = np.load(data_path, mmap_mode="r", allow_pickle=False)
            if list(maps.shape) != meta.get("shape") or maps.dtype != np.float16:
                raise ValueError("array shape or type differs from the recorded one")
            return maps
        except (OSError, ValueError, EOFError) as exc:
            log.warning("feature cache entry %s is corrupt (%s); rebuilding it", meta_path, exc)
            shutil.rmtree(entry, ignore_errors=True)
            return None

    def save(self, key: str, maps: np.ndarray, info: dict | None = None) -> np.ndarray:
        """Store ``maps`` under ``key`` atomically; returns the memory-mapped copy."""
        entry = self._entry(key)
        entry.mkdir(parents=True, exist_ok=True)
        data_path = entry / "maps.npy"
        tmp = entry / f".maps.{os.getpid()}.tmp.npy"
        try:
            np.save(tmp, np.ascontiguousarray(maps, dtype=np.float16))
            os.replace(tmp, data_path)
        finally:
            if tmp.exists():
                tmp.unlink()
        meta = {"shape": list(maps.shape), "bytes": data_path.stat().st_size,
                "checksum": _file_checksum(data_path), **(info or {})}
        atomic_write_text(entry / "meta.json", json.dumps(meta, indent=1))
        return np.load(data_path, mmap_mode="r")

    def get_or_extract(self, backbone: torch.nn.Module, model_digest: str, samples: Sequence[Sample],
                       prep: Preprocessing, *, device: torch.device, batch_size: int = 64,
                       num_workers: int = 0, progress: Callable[[int, int], None] | None = None,
                       cancel: Callable[[], bool] | None = None,
                       bad: list[tuple[int, str]] | None = None) -> tuple[np.ndarray, bool]:
        """Cached maps for ``samples``; returns ``(maps, was_cached)``.

        With ``bad`` (a list), images that cannot be decoded are appended to it as ``(index in
        samples, reason)`` and left out of the maps, which are then stored under the key of the
        remaining images (the list the caller goes on with).
        """
        paths = [s.path for s in samples]
        key = self.key(model_digest, paths, prep)
        maps = self.load(key)
        if maps is not None:
            if progress is not None:
                progress(len(paths), len(paths))
            return maps, True
        found: list[tuple[int, str]] = []
        maps = extract_maps(backbone, paths, prep, device=device, batch_size=batch_size,
                            num_workers=num_workers, progress=progress, cancel=cancel,
                            bad=None if bad is None else found)
        if found:
            bad.extend(found)
            drop = {i for i, _ in found}
            keep = [i for i in range(len(paths)) if i not in drop]
            if not keep:
                raise ValueError(f"none of the {len(paths)} images could be decoded "
                                 f"(first: {paths[found[0][0]]}: {found[0][1]})")
            maps = np.ascontiguousarray(maps[keep])
            paths = [paths[i] for i in keep]
            key = self.key(model_digest, paths, prep)
        return self.save_or_keep(key, maps, {"images": len(paths), "model": model_digest,
                                             "preprocessing": prep.key()}), False

    def save_or_keep(self, key: str, maps: np.ndarray, info: dict | None = None) -> np.ndarray:
        """:meth:`save`, or on a read-only or full cache folder the maps in memory (one warning):
        extracted maps are never thrown away because the cache cannot hold them."""
        try:
            return self.save(key, maps, info)
        except OSError as exc:
            shutil.rmtree(self._entry(key), ignore_errors=True)
            warn_uncached(self.root, exc)
            return maps
