"""The score blocks of a session and what is derived from them, cached on disk and in memory.

A session's blocks are its query x gallery logits (``qg``) and, for re-ranking, the query x
query and gallery x gallery ones (``qq``, ``gg``). :class:`BlockCache` loads each from the
:class:`ScoreStore` or scores it (resumably, in tiles; or by two-stage retrieval, where ``qq``
and ``gg`` are neighbour graphs), converts it to distances once, and keeps re-ranking's
nearest-neighbour lists.

Blocks may be wanted by two threads at once (the viewer scores q-q / g-g in the background
while the user ranks): they are scored under one lock, so a block wanted by both is scored
once, and converted under another, so ranking by q-g never waits for g-g to be scored.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.cache_files import load_array, save_array
from engine.features import warn_uncached
from engine.jobs import check_cancel
from engine.postprocess.pipeline import distances_of
from engine.postprocess.rerank_sparse import Graph

log = logging.getLogger(__name__)

__all__ = ["BlockCache", "ScoreStore", "holding"]

# Nearest neighbours kept for re-ranking at least (k1 + 1 up to 31).
_NEIGHBOUR_WIDTH = 31


class ScoreStore:
    """Score blocks (logits ``[p, g]`` float32; int32 for shortlist indices) cached on disk
    beside the feature maps."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root) / "scores"

    def key(self, *parts: str) -> str:
        return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()

    def load(self, key: str, shape: tuple[int, int], dtype=np.float32) -> np.ndarray | None:
        """The block stored under ``key``, or None (absent, or damaged: then deleted)."""
        return load_array(self.root / f"{key}.npy", shape, dtype, what="score cache", key=key)

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
        dtype = np.int32 if block.dtype == np.int32 else np.float32
        save_array(self.root / f"{key}.npy", np.asarray(block, dtype), key=key)


@contextlib.contextmanager
def holding(lock, cancel):
    """``lock``, waited for in short steps so that a cancelled job stops waiting."""
    while not lock.acquire(timeout=0.1):
        check_cancel(cancel)
    try:
        yield
    finally:
        lock.release()


class BlockCache:
    """The blocks ``qg``, ``qq``, ``gg`` of one dataset and model: logits, distances, graphs.

    Parameters
    ----------
    cache_dir : path
        The cache folder (blocks go to its ``scores/``).
    handle : engine.model_handle.ModelHandle
        The model that scores what the cache lacks, and its method and digest.
    split_keys : callable () -> (str, str)
        The feature keys of the query and gallery lists the blocks belong to.
    maps : callable (progress, cancel) -> {"q": maps, "g": maps}
        The feature maps, extracted when missing.
    memory_budget : int
        Bytes of scoring temporaries.
    timings, cache_hits : dict
        Where seconds per step and cache hits per block are recorded (shared with the session).
    shortlist : int or None
        Two-stage retrieval's K (QAConv only), or None for exhaustive scoring.
    """

    def __init__(self, cache_dir: str | os.PathLike, *, handle, split_keys: Callable[[], tuple[str, str]],
                 maps: Callable, memory_budget: int, timings: dict[str, float],
                 cache_hits: dict[str, bool], shortlist: int | None = None):
        self.store = ScoreStore(cache_dir)
        self.handle, self._split_keys, self._maps = handle, split_keys, maps
        self.memory_budget, self.timings, self.cache_hits = memory_budget, timings, cache_hits
        self.shortlist = shortlist
        self.logits: dict[str, np.ndarray] = {}
        # With a shortlist, q-q and g-g as (neighbours [n, K] int32, logits [n, K] float32).
        self.graphs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        # Blocks (and graphs) as float32 distances, converted from the logits once.
        self._distances: dict[str, np.ndarray | Graph] = {}
        self._neighbours = None  # re-ranking's nearest-neighbour lists (neighbours())
        self._block_lock = threading.RLock()     # scoring and loading blocks
        self._convert_lock = threading.RLock()   # distance blocks and neighbour lists

    @property
    def uses_shortlist(self) -> bool:
        """Whether scoring is two-stage (a shortlist is set and the model is QAConv)."""
        return self.shortlist is not None and self.handle.method == "qaconv"

    # ------------------------------------------------------------------ keys
    def key(self, name: str) -> str:
        """Cache key of exhaustively scored block ``name``."""
        q, g = self._split_keys()
        return self.store.key(name, q, g, self.handle.digest, self.handle.method, "v1")

    def shortlist_key(self, name: str, k: int) -> str:
        """Cache key of block ``name`` scored by two-stage retrieval with ``K = k``."""
        # q-g holds estimated logits beyond the shortlist ("fitted fill"; older blocks differ).
        return self.key(f"{name}@shortlist{k}" + (":fitted-fill" if name == "qg" else ""))

    def stored(self, name: str, shortlist: int | None = None) -> bool:
        """Whether block ``name`` is in the cache folder, scored exhaustively (``shortlist``
        None) or by two-stage retrieval with that K (q-g's block, q-q's or g-g's graph)."""
        if shortlist is None:
            return self.store.has(self.key(name))
        key = self.shortlist_key(name, shortlist)
        parts = ("",) if name == "qg" else (":neighbours", ":logits")
        return all(self.store.has(key + part) for part in parts)

    # ------------------------------------------------------------------ scoring
    def score(self, blocks: tuple[str, ...] = ("qg",), progress=None, cancel=None) -> None:
        """Compute (or load) the named logit blocks: ``qg``, ``qq``, ``gg``."""
        maps = self._maps(progress, cancel)
        for name in blocks:
            if name in self.logits or name in self.graphs:
                continue
            with holding(self._block_lock, cancel):
                if name not in self.logits and name not in self.graphs:
                    self._score_block(name, maps, progress, cancel)

    def _score_block(self, name: str, maps, progress, cancel) -> None:
        """Load block ``name`` from the cache, or score it (resumably), into ``self.logits``."""
        a, b = maps[name[0]], maps[name[1]]
        if self.uses_shortlist:
            self._score_shortlisted(name, a, b, progress, cancel)
            return
        key = self.key(name)
        t0 = time.perf_counter()
        block = self.store.load(key, (len(a), len(b)))
        self.cache_hits[f"scores {name}"] = block is not None
        if block is None:
            block = self._score_resumable(name, a, b, key, progress, cancel)
        self.logits[name] = np.asarray(block, np.float32)
        self.timings[f"score {name}"] = time.perf_counter() - t0

    def score_share(self, name: str, rank: int, size: int, gather=None, progress=None,
                    cancel=None) -> None:
        """A distributed run's part of block ``name``, unless the block is stored already.

        Exhaustive scoring: score and save this rank's tiles (bands ``rank``, ``rank + size``,
        ...); once every rank has done so, :meth:`score` loads the tiles and stores the block
        as one process would. Two-stage retrieval: score this rank's share of the candidate
        pairs; ``gather(part)`` (every rank's ``part`` on rank 0, in rank order; None on the
        others) brings the logits to rank 0, which assembles the block or graph and stores it
        as one process would (:func:`engine.shortlist.shortlist_block`).
        """
        if self.uses_shortlist:
            if gather is None:
                raise ValueError("two-stage retrieval split over ranks needs a gather function")
            if not self.stored(name, self.shortlist):  # the same answer on every rank
                maps = self._maps(progress, cancel)
                self._score_shortlisted(name, maps[name[0]], maps[name[1]], progress, cancel,
                                        share=(rank, size, gather))
            return
        key = self.key(name)
        if self.store.has(key):
            return
        maps = self._maps(progress, cancel)
        self._score_tiles(name, maps[name[0]], maps[name[1]], key, progress, cancel, (rank, size))

    def _score_tiles(self, name: str, a, b, key: str, progress, cancel, share=None):
        from engine.tiles import score_tiled

        model, device = self.handle.model, self.handle.device

        def score(rows, cols, symmetric, prog, canc):
            return model.score(rows, cols, device=device, memory_budget=self.memory_budget,
                               symmetric=symmetric, progress=prog, cancel=canc)

        return score_tiled(
            score, a, b, tiles_dir=self.store.root / "tiles" / key, symmetric=name[0] == name[1],
            progress=None if progress is None else (lambda d, t: progress(f"score {name}", d, t)),
            cancel=cancel, share=share)

    def _score_resumable(self, name: str, a, b, key: str, progress, cancel) -> np.ndarray:
        """Score a block in tiles saved as they finish, so a killed run resumes (engine.tiles)."""
        from engine.tiles import discard_tiles

        tiles = self.store.root / "tiles" / key
        block, reused = self._score_tiles(name, a, b, key, progress, cancel)
        if reused:
            log.info("score block %s: %d finished tiles reused", name, reused)
        self.store.save(key, block)
        discard_tiles(tiles)
        return block

    def _score_shortlisted(self, name: str, a, b, progress, cancel, share=None) -> None:
        """A block by two-stage retrieval: q-g dense with fills, q-q / g-g as neighbour graphs.

        ``share``: a distributed run's ``(rank, size, gather)``; only rank 0 keeps and stores
        the result (see :meth:`score_share`)."""
        from engine.shortlist import shortlist_block, shortlist_graph

        k = int(self.shortlist)
        key = self.shortlist_key(name, k)
        t0 = time.perf_counter()
        prog = None if progress is None else (lambda d, t: progress(f"score {name} (K={k})", d, t))
        kw = dict(device=self.handle.device, progress=prog, cancel=cancel, share=share)
        if name == "qg":
            block = None if share else self.store.load(key, (len(a), len(b)))
            self.cache_hits[f"scores {name}"] = block is not None
            if block is None:
                found = shortlist_block(self.handle.model.matcher, a, b, k, **kw)
                if found is None:
                    return  # another rank's share is done; rank 0 stores the block
                block = found[0]
                self.store.save(key, block)
            self.logits[name] = block
        else:
            shape = (len(a), min(k, len(a)))
            nb = None if share else self.store.load(key + ":neighbours", shape, np.int32)
            logits = None if nb is None else self.store.load(key + ":logits", shape)
            self.cache_hits[f"scores {name}"] = logits is not None
            if logits is None:
                found = shortlist_graph(self.handle.model.matcher, a, k, **kw)
                if found is None:
                    return
                nb, logits = found
                self.store.save(key + ":neighbours", nb)
                self.store.save(key + ":logits", logits)
            self.graphs[name] = (nb, logits)
        self.timings[f"score {name}"] = time.perf_counter() - t0

    # ------------------------------------------------------------------ derived
    def distance_block(self, name: str, cancel=None) -> np.ndarray:
        """Block ``name`` (``qg``, ``qq``, ``gg``) as float32 distances, smaller = closer.

        Converted from the logits (or the baseline's cosines) on first use and kept, so that
        switching re-ranking or TLift does not convert again; read-only for callers.
        """
        if self.uses_shortlist and name != "qg":
            raise ValueError(f"two-stage retrieval keeps {name} as a neighbour graph, not a block")
        return self._converted(name, cancel)

    def graph(self, name: str, cancel=None) -> Graph:
        """Neighbour graph ``qq`` or ``gg`` of two-stage retrieval with float32 distances,
        converted on first use and kept; read-only for callers."""
        if not self.uses_shortlist:
            raise ValueError(f"exhaustive scoring keeps {name} as a dense block, not a graph")
        return self._converted(name, cancel)

    def _converted(self, name: str, cancel):
        found = self._distances.get(name)
        if found is not None:
            return found
        self.score((name,), cancel=cancel)
        # Not the scoring lock: converting q-g must not wait while g-g is being scored.
        with holding(self._convert_lock, cancel):
            if name not in self._distances:
                if name in self.graphs:
                    neighbours, logits = self.graphs[name]
                    found = Graph(neighbours, distances_of(logits, self.handle.method))
                    found.distances.flags.writeable = False
                else:
                    found = distances_of(self.logits[name], self.handle.method)
                    found.flags.writeable = False
                self._distances[name] = found
            return self._distances[name]

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
        with holding(self._convert_lock, cancel):
            if not enough(self._neighbours):
                # Room for k1 up to 30 (the default is 20), so moving k1 does not search again.
                near = top_ranks(*blocks, max(width, _NEIGHBOUR_WIDTH), cancel=cancel)
                near.ranks.flags.writeable = near.col_max.flags.writeable = False
                self._neighbours = near
            return self._neighbours
