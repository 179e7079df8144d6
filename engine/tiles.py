"""Resumable scoring: a long score block computed in row bands ("tiles"), each saved when done.

A killed or cancelled run leaves its finished tiles on disk; the next run with the same block
key loads them and scores only the rest. Each tile's record binds it to its place (the block
key, its row and column range, shape and dtype) besides its checksum: a damaged tile, or one
moved or swapped with its record, is recomputed, never trusted (engine.cache_files). Once the
block is whole, the caller saves it as one block and :func:`score_tiled` deletes the tiles.

For a symmetric (self-scoring) block, tile ``[i0:i1]`` holds rows ``i0:i1`` and columns
``i0:`` only: the part on or above the diagonal; the block is mirrored from it at the end.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.cache_files import load_array, save_array
from engine.jobs import CancelFn, ProgressFn, check_cancel, report

__all__ = ["TILE_PAIRS", "discard_tiles", "score_tiled", "tile_bounds"]

#: Pairs per tile: a few seconds of CPU work at the demo's shapes, a minute or two at the
#: published ones; a killed run loses at most one tile.
TILE_PAIRS = 1 << 21

# score(a_rows, b_cols, symmetric, progress, cancel) -> float32 [len(a_rows), len(b_cols)]
ScoreFn = Callable[[np.ndarray, np.ndarray, bool, ProgressFn | None, CancelFn | None], np.ndarray]


def tile_bounds(p: int, g: int, tile_pairs: int | None = None) -> list[tuple[int, int]]:
    """Row bands ``(i0, i1)`` covering ``p`` rows of ``g`` columns, about ``tile_pairs`` each
    (default :data:`TILE_PAIRS`, or ``$REID_TILE_PAIRS`` when set: smaller tiles spread a
    small block over the ranks of a distributed run)."""
    if tile_pairs is None:
        tile_pairs = int(os.environ.get("REID_TILE_PAIRS") or TILE_PAIRS)
    if tile_pairs < 1:
        raise ValueError(f"tile_pairs must be >= 1; got {tile_pairs}")
    rows = max(1, tile_pairs // max(g, 1))
    return [(i0, min(p, i0 + rows)) for i0 in range(0, p, rows)]


def score_tiled(score: ScoreFn, a, b, *, tiles_dir: str | Path, symmetric: bool = False,
                tile_pairs: int | None = None, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None,
                share: tuple[int, int] | None = None) -> tuple[np.ndarray | None, int]:
    """Score ``a`` x ``b`` band by band, reusing the bands already saved in ``tiles_dir``.

    Parameters
    ----------
    score
        ``score(a_rows, b_cols, symmetric, progress, cancel)`` -> float32 logits of those rows
        x columns (``symmetric`` only when the block is a single tile).
    a, b
        Row and column items (anything sliceable: feature maps, possibly memory-mapped).
    tiles_dir
        Folder of this block's tiles, named after the block's cache key by the caller (the
        name is part of every tile's record).
    symmetric
        ``a`` and ``b`` are the same set: only the upper triangle is scored, then mirrored.
    progress, cancel
        ``progress(done_pairs, total_pairs)``; ``cancel()`` polled inside each tile. A
        cancelled run keeps the tiles it finished.
    share
        ``(rank, size)`` of a distributed run: score and save only the bands ``rank``,
        ``rank + size``, ... (the others are left to the other ranks) and return ``(None, n)``;
        a later call without ``share`` then loads every band.

    Returns
    -------
    (block, reused)
        The float32 block ``[len(a), len(b)]`` and how many tiles were loaded from disk. The
        tiles stay until the caller, having stored the whole block, calls :func:`discard_tiles`.
    """
    from engine.models.scoring import mirror_upper

    p, g = len(a), len(b)
    if symmetric and p != g:
        raise ValueError(f"symmetric scoring needs the same set twice; got {p} and {g} items")
    out = np.zeros((p, g), np.float32) if share is None else None
    bands = tile_bounds(p, g, tile_pairs)
    tiles_dir = Path(tiles_dir)

    def width(i0: int) -> int:
        return g - i0 if symmetric else g

    total = sum((i1 - i0) * width(i0) for i0, i1 in bands)
    done = reused = 0
    report(progress, 0, total)
    whole = len(bands) == 1
    for band, (i0, i1) in enumerate(bands):
        if share is not None and band % share[1] != share[0]:
            continue  # another rank's band
        c0 = i0 if symmetric else 0
        path = tiles_dir / f"{i0}-{i1}x{c0}-{g}.npy"
        place = {"block": tiles_dir.name, "rows": [i0, i1], "cols": [c0, g]}
        # One band is saved only by a distributed run (whose rank 0 then loads it).
        tile = load_array(path, (i1 - i0, g - c0), np.float32, what="score tile", **place)
        if tile is None:
            check_cancel(cancel)
            size = (i1 - i0) * width(i0)
            sub = None if progress is None else (
                lambda d, t, base=done, size=size: progress(base + d * size // max(t, 1), total))
            tile = np.asarray(score(a[i0:i1], b[c0:g], symmetric and whole, sub, cancel), np.float32)
            if not whole or share is not None:
                tiles_dir.mkdir(parents=True, exist_ok=True)
                save_array(path, tile, **place)
        else:
            reused += 1
        if share is None:
            out[i0:i1, c0:g] = tile
        done += (i1 - i0) * width(i0)
        report(progress, done, total)
    if share is not None:
        return None, reused
    if symmetric and not whole:
        mirror_upper(out)
    return out, reused


def discard_tiles(tiles_dir: str | Path) -> None:
    """Delete a block's tiles (once the whole block is stored)."""
    shutil.rmtree(tiles_dir, ignore_errors=True)
