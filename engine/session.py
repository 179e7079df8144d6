"""A ranking session: one dataset, one model, and every cached product between them.

This is the engine's high-level entry point, used by ``python -m engine evaluate`` and by the
viewer (which runs its methods in background jobs). It is Qt-free plain Python: long methods
take ``progress(stage, done, total)`` and ``cancel()`` callables.

Flow (docs/architecture.md "How data flows"): images -> feature maps (FeatureStore) -> logits q-g, and
q-q / g-g when re-ranking is on (:class:`engine.blocks.BlockCache`) -> distances (converted
once, kept) -> the post-processing chain raw -> [re-ranking] -> [TLift] of :meth:`Session.distances`
(the re-ranked matrix kept for the TLift that may follow) -> distmat.

The session is a facade: the blocks live in :mod:`engine.blocks`, the model (loaded when a
step first needs it, with torch) in :mod:`engine.model_handle`. Importing this module does not
import torch, and a session opened on a warm cache never loads the model: the cache keys need
only the checkpoint's digest and its settings, read from the checkpoint's JSON sidecar when
that records the same digest.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.blocks import BlockCache
from engine.checkpoint import file_digest, read_sidecar_config
from engine.data import Dataset, load_dataset
from engine.evaluation import Metrics, evaluate
from engine.features import FeatureStore, load_input
from engine.jobs import check_cancel
from engine.leftovers import cache_folders, remove_stale_temporaries
from engine.model_handle import ModelHandle, resolve_device_lazily
from engine.models.config import ModelConfig
from engine.models.correspondence import Correspondence, global_correspondence, pair_correspondence
from engine.postprocess.params import RerankParams, TLiftParams, rerank_params, tlift_params
from engine.postprocess.pipeline import distances_of, post_process
from engine.postprocess.rerank_sparse import Graph
from engine.utils import default_cache_dir

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

__all__ = ["Session", "Timings"]

StageProgress = Callable[[str, int, int], None]


@dataclass
class Timings:
    steps: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, seconds: float) -> None:
        self.steps[name] = seconds


# The model settings the cache keys depend on: a sidecar lacking one is not used.
_KEY_SETTINGS = ("height", "width", "imagenet_norm", "method")


def _own_copy(dataset: Dataset) -> Dataset:
    """A copy of ``dataset`` whose query, gallery and skipped lists the session may change."""
    return dataclasses.replace(dataset, query=list(dataset.query), gallery=list(dataset.gallery),
                               skipped=list(dataset.skipped))


class Session:
    """Dataset + model + caches. Build with :meth:`open` or the constructor.

    ``model`` may be None when ``checkpoint`` and its settings ``config`` (a dict holding at
    least height, width, imagenet_norm and method) are given: the model is then loaded from
    ``checkpoint`` on first use of :attr:`model`. ``device`` may be a device name until then.
    The session works on its own copy of ``dataset`` (images that fail to decode are left out
    of it), so the caller's is never changed.
    """

    def __init__(self, dataset: Dataset, model, model_digest: str, *, device: torch.device | str,
                 cache_dir: str | os.PathLike | None = None, batch_size: int = 64,
                 memory_budget: int = 512 << 20, checkpoint: str | os.PathLike | None = None,
                 config: dict[str, Any] | None = None, shortlist: int | None = None):
        if model is None and (checkpoint is None or config is None):
            raise ValueError("Session needs a model, or a checkpoint and its config to load it from")
        self.dataset, self.model_digest, self.checkpoint = _own_copy(dataset), model_digest, checkpoint
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.features = FeatureStore(self.cache_dir)
        remove_stale_temporaries(*cache_folders(self.cache_dir))
        self.batch_size, self.memory_budget = batch_size, memory_budget
        if model is None:  # the settings of the checkpoint's sidecar; the model's own otherwise
            settings = ModelConfig.from_dict(config)
            self.prep, method = settings.preprocessing, config["method"]
        else:
            settings = getattr(model, "config", None)
            self.prep, method = model.preprocessing, model.method
        #: The feature store holds embeddings ``[E, 1, 1]`` (an imported global model), so a
        #: pair is explained from its two images (:meth:`explain_pair`), not from stored maps.
        self.stores_embeddings = bool(getattr(settings, "stores_embeddings", False))
        self.handle = ModelHandle(model, checkpoint, device, prep=self.prep, method=method,
                                  digest=model_digest, cache_dir=self.cache_dir)
        self.query_maps: np.ndarray | None = None
        self.gallery_maps: np.ndarray | None = None
        self.cache_hits: dict[str, bool] = {}
        self.timings = Timings()
        self.blocks = BlockCache(self.cache_dir, handle=self.handle, split_keys=self._split_keys,
                                 maps=self.maps, memory_budget=memory_budget,
                                 timings=self.timings.steps, cache_hits=self.cache_hits,
                                 shortlist=shortlist)
        # The chain's re-ranked matrix of the latest re-ranking settings: (key, [q, g]).
        self._reranked: tuple[tuple, np.ndarray] | None = None
        self._reranked_lock = threading.Lock()

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

        dev = resolve_device_lazily(device)
        dataset = _own_copy(data) if isinstance(data, Dataset) else load_dataset(data, layout)
        KnownBad(cache_dir or default_cache_dir()).filter(dataset)
        digest = file_digest(checkpoint)
        config = read_sidecar_config(checkpoint, digest)
        if config is None or not all(k in config for k in _KEY_SETTINGS):
            from engine.models import load_model

            return cls(dataset, load_model(checkpoint, dev), digest, device=dev,
                       cache_dir=cache_dir, checkpoint=checkpoint, **kwargs)
        return cls(dataset, None, digest, device=dev, cache_dir=cache_dir,
                   checkpoint=checkpoint, config=config, **kwargs)

    # ------------------------------------------------------------------ the model
    @property
    def method(self) -> str:
        """The matching method: ``qaconv`` or the global-feature baseline's name."""
        return self.handle.method

    @property
    def device(self) -> torch.device | str:
        """The compute device: a ``torch.device``, or its name while torch is not imported."""
        return self.handle.device

    @property
    def model(self):
        """The re-id model, loaded from the checkpoint (with torch) on first use."""
        return self.handle.model

    @model.setter
    def model(self, model) -> None:
        self.handle.model = model

    @property
    def model_loaded(self) -> bool:
        """Whether the model is in memory (a warm cache never needs to load it)."""
        return self.handle.loaded

    @property
    def head_ready(self) -> bool:
        """Whether :meth:`correspondences` can answer without loading the model (and torch):
        the folded head is known (QAConv), or none is needed (the global baseline)."""
        if self.method == "global":
            return True
        size = None if self.gallery_maps is None else int(np.prod(self.gallery_maps.shape[2:]))
        return self.handle.head_ready(size)

    def folded_head(self) -> tuple[np.ndarray, float, float]:
        """The model's eval-mode head as ``(weight float32 [H*W], bias, centre)``
        (:meth:`engine.model_handle.ModelHandle.folded_head`), checked against the maps' size."""
        if self.gallery_maps is None:
            self.extract()
        return self.handle.folded_head(int(np.prod(self.gallery_maps.shape[2:])))

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
            maps = self.features.load(self._maps_key(samples))
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

    def maps(self, progress: StageProgress | None = None, cancel=None) -> dict[str, np.ndarray]:
        """The feature maps ``{"q": [q, D, h, w], "g": [g, D, h, w]}``, extracted when missing."""
        if self.query_maps is None or self.gallery_maps is None:
            self.extract(progress, cancel)
        return {"q": self.query_maps, "g": self.gallery_maps}

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

    def _maps_key(self, samples) -> str:
        """The feature store's key of the maps of ``samples``."""
        return self.features.key(self.model_digest, [s.path for s in samples], self.prep)

    def _split_keys(self) -> tuple[str, str]:
        """The feature keys of the query and the gallery list (parts of every block's key)."""
        return self._maps_key(self.dataset.query), self._maps_key(self.dataset.gallery)

    # ------------------------------------------------------------------ blocks
    @property
    def shortlist(self) -> int | None:
        """Two-stage retrieval's K (QAConv scores K candidates per item), or None (exhaustive).
        Set it before the blocks are scored."""
        return self.blocks.shortlist

    @shortlist.setter
    def shortlist(self, k: int | None) -> None:
        self.blocks.shortlist = k

    @property
    def uses_shortlist(self) -> bool:
        """Whether scoring is two-stage (a shortlist is set and the model is QAConv)."""
        return self.blocks.uses_shortlist

    @property
    def logits(self) -> dict[str, np.ndarray]:
        """The dense logit blocks scored so far: ``qg``, and ``qq`` / ``gg`` (exhaustive)."""
        return self.blocks.logits

    @property
    def graphs(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """With a shortlist, ``qq`` / ``gg`` as (neighbours [n, K] int32, logits [n, K] float32)."""
        return self.blocks.graphs

    def score(self, blocks: tuple[str, ...] = ("qg",), progress: StageProgress | None = None,
              cancel=None) -> None:
        """Compute (or load) the named logit blocks: ``qg``, ``qq``, ``gg``."""
        self.blocks.score(blocks, progress, cancel)

    def prepare(self, rerank: bool = True, progress: StageProgress | None = None, cancel=None) -> None:
        """Everything the viewer needs before its first paint (RR blocks included by default)."""
        self.extract(progress, cancel)
        self.score(("qg", "qq", "gg") if rerank else ("qg",), progress, cancel)

    def distance_block(self, name: str, cancel=None) -> np.ndarray:
        """Block ``name`` as float32 distances, converted once (:meth:`BlockCache.distance_block`)."""
        return self.blocks.distance_block(name, cancel)

    def neighbours(self, width: int, cancel=None):
        """Re-ranking's nearest-neighbour lists, computed once (:meth:`BlockCache.neighbours`)."""
        return self.blocks.neighbours(width, cancel)

    # ------------------------------------------------------------------ the chain
    def distances(self, rerank: RerankParams | None = None, tlift: TLiftParams | None = None,
                  progress: StageProgress | None = None, cancel=None, *,
                  reranked: np.ndarray | None = None) -> np.ndarray:
        """The distance matrix ``[q, g]`` of raw -> [re-ranking] -> [TLift] (smaller = closer).

        ``rerank`` / ``tlift``: None (off) or the step's parameters (anything
        :func:`engine.postprocess.params.rerank_params` accepts). The re-ranked matrix of the
        latest re-ranking settings is kept, so +RR then +RR+TLift (or TLift with other
        parameters) re-ranks once; ``reranked``, that matrix when the caller kept it, saves
        re-ranking too. The raw and re-ranked matrices returned are the kept ones, read-only;
        a lifted one is new.
        """
        rr, tl = rerank_params(rerank), tlift_params(tlift)
        if tl is not None and not self.has_times:
            raise ValueError("TLift needs timestamps, and this dataset's images have none")
        self.score(("qg", "qq", "gg") if rr else ("qg",), progress, cancel)
        check_cancel(cancel)
        t0 = time.perf_counter()
        post = None if progress is None else (lambda d, t: progress("post-process", d, t))
        if rr is not None and reranked is None:
            reranked = self.reranked(rr, progress=post, cancel=cancel)
        dist = post_process(
            self.distance_block("qg", cancel), rerank=rr, tlift=tl, reranked=reranked,
            query_cams=self.query_cams, query_times=self.times_of(self.dataset.query),
            gallery_cams=self.gallery_cams, gallery_times=self.times_of(self.dataset.gallery),
            progress=post, cancel=cancel)
        self.timings.record("post-process", time.perf_counter() - t0)
        return dist

    def reranked(self, rerank: RerankParams, progress=None, cancel=None) -> np.ndarray:
        """The re-ranked matrix ``[q, g]`` (read-only) of the chain's re-ranking step, kept for
        the latest settings; on the shortlist graphs with two-stage retrieval."""
        key = dataclasses.astuple(rerank)
        with self._reranked_lock:
            if self._reranked is not None and self._reranked[0] == key:
                return self._reranked[1]
        self.score(("qg", "qq", "gg"), cancel=cancel)
        qg = self.distance_block("qg", cancel)
        if self.uses_shortlist:
            qq, gg, near = self.blocks.graph("qq", cancel), self.blocks.graph("gg", cancel), None
        else:
            qq, gg = self.distance_block("qq", cancel), self.distance_block("gg", cancel)
            near = self.neighbours(max(rerank.k1 + 1, rerank.k2), cancel)
        dist = post_process(qg, qq, gg, rerank=rerank, neighbours=near, progress=progress, cancel=cancel)
        dist.flags.writeable = False
        with self._reranked_lock:
            self._reranked = (key, dist)
        return dist

    def probe_distances(self, logits: np.ndarray, self_logits=None, rerank: RerankParams | None = None,
                        cancel=None) -> np.ndarray:
        """Distances ``[n, g]`` of probes that are not in the dataset, through the same chain.

        ``logits [n, g]``: the probes against the gallery; ``self_logits [n]``: each probe
        against itself (the q-q block re-ranking needs). Each row alone is the query set of
        re-ranking (``N = 1 + g``), so one probe never changes another's list; TLift does not
        apply (a probe has no timestamp). Two-stage retrieval re-ranks on the gallery's graph.
        """
        rr = rerank_params(rerank)
        logits = np.asarray(logits, np.float32)
        if rr is None:
            return distances_of(logits, self.method)
        if self_logits is None:
            raise ValueError("re-ranking a probe needs its score against itself (self_logits)")
        self.score(("gg",), cancel=cancel)
        gg = self.blocks.graph("gg", cancel) if self.uses_shortlist else self.distance_block("gg", cancel)
        rows = []
        for i in range(len(logits)):
            check_cancel(cancel)
            own = distances_of(np.asarray(self_logits[i], np.float32).reshape(1, 1), self.method)
            qq = Graph(np.zeros((1, 1), np.int32), own) if self.uses_shortlist else own
            rows.append(post_process(distances_of(logits[i:i + 1], self.method), qq, gg, rerank=rr,
                                     cancel=cancel)[0])
        return np.stack(rows).astype(np.float32)

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
    def _split_note(self, model) -> str:
        """What a global model's exact split assumes: an OSNet-style Linear + BN + ReLU head
        (``head == "fc"``) is affine only with each image's ReLU mask held fixed."""
        if model is not None:
            head = getattr(model.config, "head", "pool")
        else:
            config = (read_sidecar_config(self.checkpoint, self.model_digest)
                      if self.checkpoint is not None else None) or {}
            head = config.get("head", "pool")
        return "exact given the pair's ReLU masks (the head's Linear + BN + ReLU)" if head == "fc" else ""

    def correspondences(self, probe_map: np.ndarray, gallery_index: int) -> Correspondence:
        """Local matches between a probe map ``[D, h, w]`` and one gallery image.

        QAConv: the logit equals the scoring path's logit of the pair (``score_matrix``), and it
        is split exactly into per-location contributions plus the head's bias (docs/arithmetic.md
        2.7). The global baseline: its cosine of the average-pooled maps, split exactly over
        locations (docs/arithmetic.md 2.9); no model needed.
        """
        if self.gallery_maps is None:
            self.extract()
        if self.method == "global":
            if self.stores_embeddings:
                raise ValueError("this model's stored embeddings have no locations: explain the "
                                 "pair from its images (Session.explain_pair)")
            model = self.model if self.model_loaded else None
            _check_exact(model)
            return global_correspondence(probe_map, self.gallery_maps[gallery_index],
                                         note=self._split_note(model))
        weight, bias, centre = self.folded_head()
        return pair_correspondence(probe_map, self.gallery_maps[gallery_index], weight, bias, centre)

    def explain_pair(self, query_image: str | np.ndarray, gallery_index: int, cancel=None) -> Correspondence:
        """The exact split of a pair's score computed from its two images: the query's (a file
        path or an RGB array: a dataset query, an external image, an edited copy) and gallery
        image ``gallery_index``. What explains a model whose feature store holds embeddings
        (:attr:`stores_embeddings`): its local embeddings are recomputed from the images
        (:meth:`engine.models.global_model.GlobalModel.explain_pair`; the OSNet fc head's split
        is exact given the pair's ReLU masks, docs/arithmetic.md 2.9). Loads the model (torch):
        run it in a background job. ``ValueError`` when the model's score has no exact split."""
        model = self.model
        _check_exact(model)
        if not hasattr(model, "explain_pair"):
            raise ValueError(f"{type(model).__name__} explains a pair from its feature maps "
                             "(Session.correspondences)")
        check_cancel(cancel)
        probe = load_input(query_image, self.prep)
        gallery = load_input(self.dataset.gallery[gallery_index].path, self.prep)
        check_cancel(cancel)
        return model.explain_pair(probe, gallery)


def _check_exact(model) -> None:
    """``ValueError`` saying why when a loaded ``model`` has no exact split of its score."""
    if model is not None and not getattr(model, "has_correspondences", True):
        raise ValueError(getattr(model, "no_correspondences_reason", None) or
                         "this model's pooling is not an average, so its score has no exact "
                         "split over image locations; no picture is drawn rather than a wrong one")
