"""Datasets: the sample records, the layout parsers and the loader everyone calls."""
from __future__ import annotations

import logging
import os

from engine.data.images import check_image_file, read_image_rgb
from engine.data.layouts import LAYOUT_NAMES, LayoutError, resolve_layout
from engine.data.samples import Dataset, Sample

__all__ = ["Dataset", "Sample", "LayoutError", "LAYOUT_NAMES", "load_dataset", "read_image_rgb",
           "relabel"]

log = logging.getLogger(__name__)


def relabel(samples: list[Sample]) -> list[Sample]:
    """Map train identities to ``0..N-1`` in sorted order of the original pid."""
    mapping = {pid: i for i, pid in enumerate(sorted({s.pid for s in samples}))}
    return [s._replace(pid=mapping[s.pid]) for s in samples]


def load_dataset(root: str | os.PathLike, name: str | None = None,
                 require: tuple[str, ...] = ("query", "gallery"),
                 check_images: bool = True, allow_outside: bool = False) -> Dataset:
    """Read a re-id dataset from ``root``.

    Parameters
    ----------
    root
        The dataset folder, or its parent holding the usual release folder name
        (e.g. ``Market-1501-v15.09.15``), or a CSV manifest.
    name
        Layout name (see ``LAYOUT_NAMES``); ``None`` detects it.
    require
        Splits that must not be empty; an empty one raises an error naming it. The train
        split is only needed for training, so it is not required by default.
    check_images
        Look at every image's first and last bytes; unreadable or truncated files are
        skipped, listed in ``Dataset.skipped`` and logged once, all together.
    allow_outside
        Let a CSV manifest or an MSMT17 list name images outside the dataset's folder
        (refused by default).

    Junk images (pid -1) are dropped; pid 0 (distractors) is kept. Train pids are
    relabelled ``0..N-1``; cameras are 0-based. Exact duplicates of a record in one split are
    dropped and listed; an image that is both a query and a gallery item is kept, with a warning.
    """
    root = os.path.abspath(os.fspath(root))
    layout, folder = resolve_layout(root, name)
    raw = layout.parse(folder, allow_outside=allow_outside) if layout.reads_paths else layout.parse(folder)
    skipped: list[tuple[str, str]] = list(raw.bad_rows)
    splits: dict[str, list[Sample]] = {}
    for split in ("train", "query", "gallery"):
        kept = []
        seen: set[Sample] = set()
        for s in getattr(raw, split):
            if s.pid == -1:
                continue
            if s in seen:
                skipped.append((s.path, f"duplicate {split} record (dropped)"))
                continue
            seen.add(s)
            if check_images:
                reason = check_image_file(s.path)
                if reason is not None:
                    skipped.append((s.path, reason))
                    continue
            kept.append(s)
        splits[split] = kept
    if skipped:
        listing = "\n".join(f"  {path}: {reason}" for path, reason in skipped)
        log.warning("skipped %d unusable image(s) or row(s) in %s:\n%s", len(skipped), folder, listing)
    both = {s.path for s in splits["query"]} & {s.path for s in splits["gallery"]}
    if both:
        log.warning("%d image(s) are both query and gallery items in %s (e.g. %s): each such "
                    "query finds itself in the gallery", len(both), folder, sorted(both)[0])
    for split in require:
        if not splits[split]:
            where = "" if split in raw.present else f" ({raw.missing(split)})"
            raise LayoutError(f"the {split} split of {folder} ({layout.name} layout) is empty{where}")
    return Dataset(name=layout.name, root=folder, train=relabel(splits["train"]),
                   query=splits["query"], gallery=splits["gallery"], skipped=skipped)
