"""A ranking session: one dataset, one model, and every cached product between them.

This is the engine's high-level entry point, used by ``python -m engine evaluate`` and by the
viewer (which runs its methods in background jobs). It is Qt-free plain Python: long methods
take ``progress(stage, done, total)`` and ``cancel()`` callables.

Flow (DESIGN.md "How data flows"): images -> feature maps (FeatureStore) -> logits q-g, and
q-q / g-g when re-ranking is on (ScoreStore) -> distances (converted once, kept) ->
``post_process`` (RR, TLift) -> distmat.

Methods may run on two threads at once (the viewer scores q-q / g-g in the background while
the user ranks): blocks are scored under one lock, so a block wanted by both is scored once,
and converted under another, so ranking by q-g never waits for g-g to be scored.

Importing this module does not import torch, and a session opened on a warm cache loads its
model (and torch, seconds) only when a step needs it: extracting or scoring what the cache
lacks, or ranking an extra image. The cache keys need only the checkpoint's digest and its
settings, read from the checkpoint's JSON sidecar when that records the same digest.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.checkpoint import file_digest, read_sidecar_config
from engine.data import Dataset, load_dataset
from engine.evaluation import Metrics, evaluate
from engine.features import FeatureStore, load_input, warn_uncached
from engine.jobs import check_cancel
from engine.leftovers import cache_folders, remove_stale_temporaries
from engine.models.config import Preprocessing
from engine.models.correspondence import Correspondence, pair_correspondence
from engine.postprocess.params import RerankParams, TLiftParams
from engine.postprocess.pipeline import distances_of, post_process
from engine.utils import atomic_path, atomic_write_text, default_cache_dir

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

StageProgress = Callable[[str, int, int], None]


class ScoreStore:
    """Score blocks (logits ``[p, g]`` float32; int32 for shortlist indices) cached on disk
    beside the feature maps."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "scores"

    def key(self, *parts: str) -> str:
        return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()

    def load(self, key: str, shape: tuple[int, int], dtype=np.float32) -> np.ndarray | None:
        path, meta_path = self.root / f"{key}.npy", self.root / f"{key}.json"
        if not (path.is_file() and meta_path.is_file()):
            return None
        try:
            meta = json.loads(meta_path.read_text())
            block = np.load(path)
            ok = (block.shape == tuple(shape) and block.dtype == dtype
                  and hashlib.blake2b(block.tobytes(), digest_size=16).hexdigest() == meta["checksum"])
            if not ok:
                raise ValueError("content differs from the recorded one")
            return block
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            log.warning("score cache %s is corrupt (%s); recomputing it", path, exc)
            for p in (path, meta_path):
                with contextlib.suppress(OSError):
                    p.unlink(missing_ok=True)
            return None

    def has(self, key: str) -> bool:
        """Whether a block is stored under ``key`` (not checked: :meth:`load` does that)."""
        return (self.root / f"{key}.npy").is_file() and (self.root / f"{key}.json").is_file()

    def save(self, key: str, block: np.ndarray) -> None:
        """Store ``block``; a read-only or full cache folder only costs a warning (once)."""
        try:
            self._save(key, block)
        except OSError as exc:
            warn_uncached(self.root.parent, exc)

    def _save(self, key: str, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.int32 if block.dtype == np.int32 else np.float32)
        with atomic_path(self.root / f"{key}.npy") as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, block)
        meta = {"shape": list(block.shape),
                "checksum": hashlib.blake2b(block.tobytes(), digest_size=16).hexdigest()}
        atomic_write_text(self.root / f"{key}.json", json.dumps(meta))


@dataclass
class Timings:
    steps: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, seconds: float) -> None:
        self.steps[name] = seconds


# Nearest neighbours kept for re-ranking at least (k1 + 1 up to 31).
_NEIGHBOUR_WIDTH = 31

# The model settings the cache keys depend on: a sidecar lacking one is not used.
_KEY_SETTINGS = ("height", "width", "imagenet_norm", "method")


def _gpu_driver_present() -> bool:
    """Whether this machine may have a GPU torch can use (CUDA or ROCm), judged without torch.

    False only when that is certain, so ``auto`` resolves to the CPU without importing torch;
    True (or not Linux) leaves the answer to torch.
    """
    if sys.platform == "darwin":
        return False  # torch's macOS builds have no CUDA
    if not sys.platform.startswith("linux"):
        return True
    if any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")):
        return True
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    return True


def _resolve_device_lazily(name: str) -> str | torch.device:
    """``resolve_device``, but ``"cpu"`` (a name) when that is certain without importing torch."""
    key = (name or "auto").lower()
    if key == "cpu" or (key == "auto" and not _gpu_driver_present()):
        return "cpu"
    from engine.utils import resolve_device

    return resolve_device(name)


class Session:
    """Dataset + model + caches. Build with :meth:`open` or the constructor.

    ``model`` may be None when ``checkpoint`` and its settings ``config`` (a dict holding at
    least height, width, imagenet_norm and method) are given: the model is then loaded from
    ``checkpoint`` on first use of :attr:`model`. ``device`` may be a device name until then.
    """

    def __init__(self, dataset: Dataset, model, model_digest: str, *, device: torch.device | str,
                 cache_dir: str | os.PathLike | None = None, batch_size: int = 64,
                 memory_budget: int = 512 << 20, checkpoint: str | os.PathLike | None = None,
                 config: dict[str, Any] | None = None, shortlist: int | None = None):
        if model is None and (checkpoint is None or config is None):
            raise ValueError("Session needs a model, or a checkpoint and its config to load it from")
        self.dataset, self._model, self.model_digest = dataset, model, model_digest
        self.checkpoint = checkpoint
        self._device = device
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.features = FeatureStore(self.cache_dir)
        self.scores = ScoreStore(self.cache_dir)
        remove_stale_temporaries(*cache_folders(self.cache_dir))
        self.batch_size, self.memory_budget = batch_size, memory_budget
        cfg = config if model is None else {k: getattr(model.config, k) for k in _KEY_SETTINGS}
        self.prep = Preprocessing(cfg["height"], cfg["width"], cfg["imagenet_norm"])
        self.method = cfg["method"]
        self.query_maps: np.ndarray | None = None
        self.gallery_maps: np.ndarray | None = None
        self.logits: dict[str, np.ndarray] = {}
        # Two-stage retrieval (engine.shortlist): K candidates per item, or None (exhaustive).
        self.shortlist = shortlist
        # With a shortlist, q-q and g-g as (neighbours [n, K] int32, logits [n, K] float32).
        self.graphs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.cache_hits: dict[str, bool] = {}
        # Blocks as float32 distances, converted from the logits once (engine.postprocess).
        self._distances: dict[str, np.ndarray] = {}
        self._neighbours = None  # re-ranking's nearest-neighbour lists (neighbours())
        self._block_lock = threading.RLock()     # scoring and loading blocks
        self._convert_lock = threading.RLock()   # distance blocks and neighbour lists
        self._model_lock = threading.Lock()
        self.timings = Timings()
        self._folded_head: tuple[np.ndarray, float, float] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def open(cls, data: str | os.PathLike | Dataset, checkpoint: str | os.PathLike, *,
             device: str = "auto", layout: str | None = None,
             cache_dir: str | os.PathLike | None = None, **kwargs) -> Session:
        """Open a dataset and a checkpoint; the model itself is loaded when first needed.

        Without a JSON sidecar recording this checkpoint's digest, the checkpoint is loaded
        now, since its settings are part of every cache key.
        """
        from engine.data.known_bad import KnownBad

        dev = _resolve_device_lazily(device)
        dataset = data if isinstance(data, Dataset) else load_dataset(data, layout)
        KnownBad(cache_dir or default_cache_dir()).filter(dataset)
        digest = file_digest(checkpoint)
        config = read_sidecar_config(checkpoint, digest)
        if config is None or not all(k in config for k in _KEY_SETTINGS):
            from engine.models import load_model

            return cls(dataset, load_model(checkpoint, dev), digest, device=dev,
                       cache_dir=cache_dir, **kwargs)
        return cls(dataset, None, digest, device=dev, cache_dir=cache_dir,
                   checkpoint=checkpoint, config=config, **kwargs)

    @property
    def device(self) -> torch.device | str:
        """The compute device: a ``torch.device``, or its name while torch is not imported."""
        if isinstance(self._device, str) and "torch" in sys.modules:
            import torch

            self._device = torch.device(self._device)
        return self._device

    @property
    def model(self):
        """The re-id model, loaded from the checkpoint (with torch) on first use."""
        with self._model_lock:  # two jobs may need it first at the same time
            if self._model is None:
                from engine.models import load_model

                model = load_model(self.checkpoint, self.device)
                cfg = model.config
                if (Preprocessing(cfg.height, cfg.width, cfg.imagenet_norm) != self.prep
                        or cfg.method != self.method):
                    raise ValueError(f"the settings in the JSON sidecar of {self.checkpoint} differ "
                                     "from the checkpoint's; delete the sidecar and reopen")
                self._model = model
            return self._model

    @model.setter
    def model(self, model) -> None:
        self._model = model
        self._folded_head = None

    # ------------------------------------------------------------------ properties
    @cached_property
    def query_pids(self) -> np.ndarray:
        return np.array([s.pid for s in self.dataset.query], np.int64)

    @cached_property
    def gallery_pids(self) -> np.ndarray:
        return np.array([s.pid for s in self.dataset.gallery], np.int64)

    @cached_property
    def query_cams(self) -> np.ndarray:
        return np.array([s.cam for s in self.dataset.query], np.int64)

    @cached_property
    def gallery_cams(self) -> np.ndarray:
        return np.array([s.cam for s in self.dataset.gallery], np.int64)

    def times_of(self, samples) -> np.ndarray | None:
        """Times in seconds ``[n]`` of ``samples``, or None when any is missing."""
        if not all(s.time is not None for s in samples):
            return None
        return np.array([s.time for s in samples], np.float64)

    @property
    def has_times(self) -> bool:
        return self.dataset.has_times

    # ------------------------------------------------------------------ heavy steps
    def extract(self, progress: StageProgress | None = None, cancel=None) -> None:
        for split in ("query", "gallery"):
            samples = getattr(self.dataset, split)
            t0 = time.perf_counter()
            # Looked up before the model is touched: a warm cache never loads it.
            maps = self.features.load(self.features.key(
                self.model_digest, [s.path for s in samples], self.prep))
            hit = maps is not None
            if not hit:
                backbone = self.model.backbone_for_maps()
                bad: list[tuple[int, str]] = []
                maps, hit = self.features.get_or_extract(
                    backbone, self.model_digest, samples, self.prep,
                    device=self.device, batch_size=self.batch_size,
                    progress=None if progress is None else (lambda d, t, s=split: progress(f"extract {s}", d, t)),
                    cancel=cancel, bad=bad)
                if bad:
                    self._drop_undecodable(split, [(samples[i].path, r) for i, r in bad])
            elif progress is not None:
                progress(f"extract {split}", len(samples), len(samples))
            setattr(self, f"{split}_maps", maps)
            self.cache_hits[f"features {split}"] = hit
            self.timings.record(f"extract {split}", time.perf_counter() - t0)

    def _drop_undecodable(self, split: str, bad: list[tuple[str, str]]) -> None:
        """Images of ``split`` that failed to decode: leave them out, list them, remember them."""
        from engine.data.known_bad import KnownBad

        paths = {p for p, _ in bad}
        setattr(self.dataset, split, [s for s in getattr(self.dataset, split) if s.path not in paths])
        self.dataset.skipped.extend(bad)
        for name in (f"{split}_pids", f"{split}_cams"):
            self.__dict__.pop(name, None)  # cached properties of the old list
        listing = "\n".join(f"  {p}: {r}" for p, r in bad)
        log.warning("skipped %d %s image(s) that cannot be decoded:\n%s", len(bad), split, listing)
        KnownBad(self.cache_dir).add(bad)

    def _block_key(self, name: str) -> str:
        q = self.features.key(self.model_digest, [s.path for s in self.dataset.query], self.prep)
        g = self.features.key(self.model_digest, [s.path for s in self.dataset.gallery], self.prep)
        return self.scores.key(name, q, g, self.model_digest, self.method, "v1")

    def score(self, blocks: tuple[str, ...] = ("qg",), progress: StageProgress | None = None,
              cancel=None) -> None:
        """Compute (or load) the named logit blocks: ``qg``, ``qq``, ``gg``."""
        if self.query_maps is None or self.gallery_maps is None:
            self.extract(progress, cancel)
        maps = {"q": self.query_maps, "g": self.gallery_maps}
        for name in blocks:
            if name in self.logits or name in self.graphs:
                continue
            with self._holding(self._block_lock, cancel):
                if name not in self.logits and name not in self.graphs:
                    self._score_block(name, maps, progress, cancel)

    @staticmethod
    @contextlib.contextmanager
    def _holding(lock, cancel):
        """``lock``, waited for in short steps so that a cancelled job stops waiting."""
        while not lock.acquire(timeout=0.1):
            check_cancel(cancel)
        try:
            yield
        finally:
            lock.release()

    def _score_block(self, name: str, maps, progress, cancel) -> None:
        """Load block ``name`` from the cache, or score it (resumably), into ``self.logits``."""
        a, b = maps[name[0]], maps[name[1]]
        if self.uses_shortlist:
            self._score_shortlisted(name, a, b, progress, cancel)
            return
        key = self._block_key(name)
        t0 = time.perf_counter()
        block = self.scores.load(key, (len(a), len(b)))
        self.cache_hits[f"scores {name}"] = block is not None
        if block is None:
            block = self._score_resumable(name, a, b, key, progress, cancel)
        self.logits[name] = np.asarray(block, np.float32)
        self.timings.record(f"score {name}", time.perf_counter() - t0)

    def _score_resumable(self, name: str, a, b, key: str, progress, cancel) -> np.ndarray:
        """Score a block in tiles saved as they finish, so a killed run resumes (engine.tiles)."""
        from engine.tiles import discard_tiles, score_tiled

        model = self.model

        def score(rows, cols, symmetric, prog, canc):
            return model.score(rows, cols, device=self.device, memory_budget=self.memory_budget,
                               symmetric=symmetric, progress=prog, cancel=canc)

        tiles = self.scores.root / "tiles" / key
        block, reused = score_tiled(
            score, a, b, tiles_dir=tiles, symmetric=name[0] == name[1],
            progress=None if progress is None else (lambda d, t: progress(f"score {name}", d, t)),
            cancel=cancel)
        if reused:
            log.info("score block %s: %d finished tiles reused", name, reused)
        self.scores.save(key, block)
        discard_tiles(tiles)
        return block

    @property
    def uses_shortlist(self) -> bool:
        """Whether scoring is two-stage (a shortlist is set and the model is QAConv)."""
        return self.shortlist is not None and self.method == "qaconv"

    def shortlist_key(self, name: str, k: int) -> str:
        """Cache key of block ``name`` scored by two-stage retrieval with ``K = k``."""
        # q-g holds estimated logits beyond the shortlist ("fitted fill"; older blocks differ).
        return self._block_key(f"{name}@shortlist{k}" + (":fitted-fill" if name == "qg" else ""))

    def _score_shortlisted(self, name: str, a, b, progress, cancel) -> None:
        """A block by two-stage retrieval: q-g dense with fills, q-q / g-g as neighbour graphs."""
        from engine.shortlist import shortlist_block, shortlist_graph

        k = int(self.shortlist)
        key = self.shortlist_key(name, k)
        t0 = time.perf_counter()
        prog = None if progress is None else (lambda d, t: progress(f"score {name} (K={k})", d, t))
        if name == "qg":
            block = self.scores.load(key, (len(a), len(b)))
            self.cache_hits[f"scores {name}"] = block is not None
            if block is None:
                block, _ = shortlist_block(self.model.matcher, a, b, k, device=self.device,
                                           progress=prog, cancel=cancel)
                self.scores.save(key, block)
            self.logits[name] = block
        else:
            shape = (len(a), min(k, len(a)))
            nb = self.scores.load(key + ":neighbours", shape, np.int32)
            logits = None if nb is None else self.scores.load(key + ":logits", shape)
            self.cache_hits[f"scores {name}"] = logits is not None
            if logits is None:
                nb, logits = shortlist_graph(self.model.matcher, a, k, device=self.device,
                                             progress=prog, cancel=cancel)
                self.scores.save(key + ":neighbours", nb)
                self.scores.save(key + ":logits", logits)
            self.graphs[name] = (nb, logits)
        self.timings.record(f"score {name}", time.perf_counter() - t0)

    def prepare(self, rerank: bool = True, progress: StageProgress | None = None, cancel=None) -> None:
        """Everything the viewer needs before its first paint (RR blocks included by default)."""
        self.extract(progress, cancel)
        self.score(("qg", "qq", "gg") if rerank else ("qg",), progress, cancel)

    def distances(self, rerank: RerankParams | None = None, tlift: TLiftParams | None = None,
                  progress: StageProgress | None = None, cancel=None) -> np.ndarray:
        """The distance matrix ``[q, g]`` of the chosen post-processing (smaller = closer)."""
        if tlift is not None and not self.has_times:
            raise ValueError("TLift needs timestamps, and this dataset's images have none")
        self.score(("qg", "qq", "gg") if rerank else ("qg",), progress, cancel)
        check_cancel(cancel)
        t0 = time.perf_counter()
        context = dict(
            rerank=None if rerank is None else asdict(rerank),
            tlift=None if tlift is None else asdict(tlift),
            query_cams=self.query_cams, query_times=self.times_of(self.dataset.query),
            gallery_cams=self.gallery_cams, gallery_times=self.times_of(self.dataset.gallery),
            progress=None if progress is None else (lambda d, t: progress("post-process", d, t)),
            cancel=cancel)
        if rerank is not None and "gg" in self.graphs:  # two-stage: re-rank on the shortlist graphs
            from engine.shortlist import final_distances_shortlist

            dist = final_distances_shortlist(self.logits["qg"], self.graphs["qq"], self.graphs["gg"],
                                             **context)
        else:
            blocks = ("qg", "qq", "gg") if rerank is not None else ("qg",)
            near = None if rerank is None else self.neighbours(max(rerank.k1 + 1, rerank.k2), cancel)
            dist = post_process(*(self.distance_block(name) for name in blocks), neighbours=near, **context)
        self.timings.record("post-process", time.perf_counter() - t0)
        return dist

    def neighbours(self, width: int, cancel=None):
        """Every item's ``width`` nearest neighbours for re-ranking and the column maxima
        (``top_ranks`` of the distance blocks), computed once and kept: re-ranking with other
        parameters then skips its costliest step. A wider request replaces the kept lists."""
        from engine.postprocess.rerank import top_ranks

        def enough(near):
            return near is not None and near.ranks.shape[1] >= min(width, near.ranks.shape[0])

        if enough(self._neighbours):
            return self._neighbours
        blocks = [self.distance_block(name, cancel) for name in ("qg", "qq", "gg")]
        with self._holding(self._convert_lock, cancel):
            if not enough(self._neighbours):
                # Room for k1 up to 30 (the default is 20), so moving k1 does not search again.
                near = top_ranks(*blocks, max(width, _NEIGHBOUR_WIDTH), cancel=cancel)
                near.ranks.flags.writeable = near.col_max.flags.writeable = False
                self._neighbours = near
            return self._neighbours

    def distance_block(self, name: str, cancel=None) -> np.ndarray:
        """Block ``name`` (``qg``, ``qq``, ``gg``) as float32 distances, smaller = closer.

        Converted from the logits (or the baseline's cosines) on first use and kept, so that
        switching re-ranking or TLift does not convert again; read-only for callers.
        """
        block = self._distances.get(name)
        if block is not None:
            return block
        self.score((name,), cancel=cancel)
        # Not the scoring lock: converting q-g must not wait while g-g is being scored.
        with self._holding(self._convert_lock, cancel):
            if name not in self._distances:
                if self.uses_shortlist and name != "qg":
                    raise ValueError(f"two-stage retrieval keeps {name} as a neighbour graph, not a block")
                block = distances_of(self.logits[name], self.method)
                block.flags.writeable = False
                self._distances[name] = block
            return self._distances[name]

    def evaluate(self, distmat: np.ndarray) -> Metrics:
        return evaluate(distmat, self.query_pids, self.gallery_pids, self.query_cams, self.gallery_cams)

    # ------------------------------------------------------------------ single images
    def maps_for_image(self, image: str | np.ndarray) -> np.ndarray:
        """Feature map ``[D, h, w]`` (float16) of one image file or RGB array."""
        return self.maps_for_images([image])[0]

    def maps_for_images(self, images, cancel=None) -> np.ndarray:
        """Feature maps ``[n, D, h, w]`` (float16) of image files or RGB arrays, one forward
        pass per ``batch_size`` images."""
        import torch

        backbone = self.model.backbone_for_maps()
        out = []
        for start in range(0, len(images), self.batch_size):
            check_cancel(cancel)
            x = torch.stack([load_input(im, self.prep) for im in images[start:start + self.batch_size]])
            with torch.no_grad():
                out.append(backbone(x.to(self.device)).float().cpu().numpy().astype(np.float16))
        return np.concatenate(out)

    def score_maps(self, probe_maps: np.ndarray, gallery_indices=None) -> np.ndarray:
        """Logits ``[n, g]`` of extra probe maps ``[n, D, h, w]`` against the gallery (or the
        gallery images ``gallery_indices``)."""
        if self.gallery_maps is None:
            self.extract()
        gallery = self.gallery_maps if gallery_indices is None else self.gallery_maps[gallery_indices]
        model = self.model
        return np.asarray(model.score(probe_maps, gallery, device=self.device,
                                      memory_budget=self.memory_budget), np.float32)

    # ------------------------------------------------------------------ one pair
    def _head_path(self) -> Path:
        return self.cache_dir / "heads" / f"{self.model_digest}.json"

    @property
    def head_ready(self) -> bool:
        """Whether :meth:`folded_head` can answer without loading the model (and torch)."""
        return self._folded_head is not None or self._head_path().is_file()

    def folded_head(self) -> tuple[np.ndarray, float, float]:
        """The model's eval-mode head as ``(weight float32 [H*W], bias, centre)`` (SPEC.md 2.7).

        ``centre`` is the matcher's typical similarity (``Correspondence.centre``).

        Kept in memory and in the cache folder (keyed by the checkpoint's digest), so that
        looking at correspondences after a warm launch needs neither the model nor torch.
        """
        if self._folded_head is not None:
            return self._folded_head
        path = self._head_path()
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                head = (np.asarray(data["weight"], np.float32), float(data["bias"]),
                        float(data["centre"]))
                if head[0].ndim == 1 and head[0].size > 0:
                    self._folded_head = head
                    return head
                raise ValueError("no weights")
            except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
                log.warning("cached head %s is corrupt (%s); recomputing it", path, exc)
        matcher = getattr(self.model, "matcher", None)
        if matcher is None or not hasattr(matcher, "folded_head"):
            raise ValueError("local correspondences need a QAConv model; this is the global baseline")
        weight, bias = matcher.folded_head()
        head = (weight.detach().cpu().numpy().astype(np.float32), float(bias),
                matcher.similarity_centre())
        # float32 -> repr float round-trips exactly through JSON
        atomic_write_text(path, json.dumps({"weight": [float(x) for x in head[0]], "bias": head[1],
                                            "centre": head[2]}))
        self._folded_head = head
        return head

    def correspondences(self, probe_map: np.ndarray, gallery_index: int) -> Correspondence:
        """QAConv's local matches between a probe map ``[D, h, w]`` and one gallery image.

        The logit equals the scoring path's logit of the pair (``score_matrix``), and it is
        split exactly into per-location contributions plus the head's bias (SPEC.md 2.7).
        """
        if self.gallery_maps is None:
            self.extract()
        weight, bias, centre = self.folded_head()
        return pair_correspondence(probe_map, self.gallery_maps[gallery_index], weight, bias, centre)
