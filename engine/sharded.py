"""Extraction and scoring split over the ranks of a ``torchrun`` run.

``python -m engine extract|evaluate|export`` under ``torchrun --nproc_per_node N`` calls
:func:`share_work` before its usual work. There:

- each rank extracts a contiguous share of the query and of the gallery images, stored in the
  feature cache under the key of its share (a killed run keeps the shares that finished);
  rank 0 then joins the shares into the maps of the whole lists, stored under the key one
  process uses;
- each block (q-g, and q-q / g-g for re-ranking) is scored in the row bands ("tiles",
  :mod:`engine.tiles`) one process uses: rank ``r`` scores bands ``r``, ``r + N``, ... and saves
  them.

- with two-stage retrieval (``--shortlist K``, :mod:`engine.shortlist`), each rank scores
  with QAConv its contiguous share of the candidate pairs: whole batches of
  :func:`engine.shortlist.score_pairs` (:func:`engine.shortlist.pair_share`), whose
  candidates it finds itself (q-g: rank 0 runs the cheap first stage for every query, as the
  fill needs its scores). For q-q and g-g each rank finds the K neighbours of its share of the
  items and the lists (``4 n K`` bytes) are gathered on every rank (the pairs to score follow
  from all of them). The candidates' logits (``4 q K`` bytes for q-g; 4 bytes per distinct
  pair of a graph), not dense blocks, are gathered on rank 0, which fills q-g / assembles the
  graphs and stores them under the keys one process uses.

Rank 0 then goes on as one process would: it loads every tile, stores each block, ranks,
re-ranks and writes. Each tile, and each batch of candidate pairs, is computed by the same
code on the same inputs as in one process, so the rows and files are identical, and the cache
holds what one process leaves (the viewer opens it without scoring anything again). The ranks
exchange only small messages (the undecodable images they met, candidate logits, barriers);
the maps and tiles pass through the cache folder, which every rank must see (one machine, or
a file system shared by the nodes).
"""
from __future__ import annotations

import logging

import numpy as np
import torch.distributed as dist

from engine.distributed import World

__all__ = ["share_bounds", "share_work"]

log = logging.getLogger(__name__)


def share_bounds(n: int, world: World) -> tuple[int, int]:
    """Rank ``world.rank``'s contiguous share ``[start, stop)`` of ``n`` items."""
    return world.rank * n // world.size, (world.rank + 1) * n // world.size


def _extract_shares(session, world: World) -> None:
    for split in ("query", "gallery"):
        samples = list(getattr(session.dataset, split))
        if session.features.load(session._maps_key(samples)) is not None:
            continue  # one process (or an earlier run) left the whole list's maps
        start, stop = share_bounds(len(samples), world)
        part = samples[start:stop]
        bad: list[tuple[int, str]] = []
        if part:
            session.features.get_or_extract(
                session.model.backbone_for_maps(), session.model_digest, part, session.prep,
                device=session.device, batch_size=session.batch_size, bad=bad)
        found: list[list[tuple[str, str]]] = [[] for _ in range(world.size)]
        dist.all_gather_object(found, [(part[i].path, reason) for i, reason in bad])
        undecodable = [item for items in found for item in items]
        if undecodable:
            session._drop_undecodable(split, undecodable)  # on every rank alike
        if world.main:
            skip = {path for path, _ in undecodable}
            pieces = []
            for rank in range(world.size):
                lo, hi = share_bounds(len(samples), World(rank, world.size))
                share = [s for s in samples[lo:hi] if s.path not in skip]
                if share:
                    maps = session.features.load(session._maps_key(share))
                    if maps is None:
                        raise RuntimeError(f"rank {rank}'s {split} feature maps are not in the cache "
                                           f"folder {session.cache_dir}: every rank needs the same "
                                           "cache folder (one machine or a shared file system)")
                    pieces.append(maps)
            kept = getattr(session.dataset, split)
            session.features.save_or_keep(session._maps_key(kept), np.concatenate(pieces),
                                          {"images": len(kept), "model": session.model_digest,
                                           "preprocessing": session.prep.key()})
        dist.barrier()


def _gather_on_main(world: World):
    """``gather(part, everywhere=False)``: every rank's ``part`` in rank order, on rank 0 (None
    on the others) or on every rank."""
    def gather(part, everywhere: bool = False):
        parts = [None] * world.size if world.main or everywhere else None
        if everywhere:
            dist.all_gather_object(parts, part)
        else:
            dist.gather_object(part, parts, dst=0)
        return parts
    return gather


def share_work(session, world: World, blocks: tuple[str, ...] = ("qg",)) -> None:
    """This rank's share of extracting ``session``'s maps and scoring ``blocks``; returns when
    every rank is done (see the module's notes)."""
    if not world.active:
        return
    _extract_shares(session, world)
    for name in blocks:
        session.blocks.score_share(name, world.rank, world.size, _gather_on_main(world))
    dist.barrier()
    log.info("rank %d of %d: its share of extraction and scoring is done", world.rank, world.size)
