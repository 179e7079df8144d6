"""The user's marks on result tiles, per query, and where they are kept (Qt-free).

A mark says of one gallery image that it shows the query's person (``same``) or not
(``different``). Marks belong to the query, not to the list on screen: they survive the RR/TLift
toggles, the export and a relaunch. They are kept in the cache folder, one JSON file per dataset
and checkpoint (``marks_file``), keyed by the query's and gallery image's paths, so marks made on
one image list and model are never applied to another.

The order of marking is kept: ``engine.feedback.refine`` puts confirmed positives first in the
order they were marked.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from viewer.ranking import RankingOverride, describe_ranking, rank_query

__all__ = ["SAME", "DIFFERENT", "KINDS", "KIND_LABELS", "Mark", "MarkBook", "FeedbackOverride",
           "dataset_digest", "feedback_override", "marks_file", "marks_summary"]

SAME, DIFFERENT = "same", "different"
KINDS = (SAME, DIFFERENT)
KIND_LABELS = {SAME: "same person", DIFFERENT: "different person"}
VERSION = 1


@dataclass(frozen=True)
class Mark:
    """One mark: a gallery image (index into the gallery list), its kind and when it was made
    (seconds since the epoch)."""

    gallery: int
    kind: str
    time: float


class MarkBook:
    """Every query's marks for one dataset and checkpoint (``dataset`` and ``checkpoint``:
    their digests). Queries are named by their image's path."""

    def __init__(self, dataset: str = "", checkpoint: str = "",
                 marks: Mapping[str, Sequence[Mark]] | None = None):
        self.dataset, self.checkpoint = dataset, checkpoint
        self._marks: dict[str, tuple[Mark, ...]] = {k: tuple(v) for k, v in (marks or {}).items() if v}

    # ------------------------------------------------------------------ reading
    def marks(self, query: str) -> tuple[Mark, ...]:
        """The query's marks in the order they were made."""
        return self._marks.get(query, ())

    def kind_of(self, query: str, gallery: int) -> str | None:
        return next((m.kind for m in self.marks(query) if m.gallery == gallery), None)

    def positives(self, query: str) -> list[int]:
        """Gallery indices marked ``same``, in the order marked."""
        return [m.gallery for m in self.marks(query) if m.kind == SAME]

    def negatives(self, query: str) -> list[int]:
        """Gallery indices marked ``different``, in the order marked."""
        return [m.gallery for m in self.marks(query) if m.kind == DIFFERENT]

    def counts(self, query: str) -> tuple[int, int]:
        """(same, different)."""
        return len(self.positives(query)), len(self.negatives(query))

    def queries(self) -> list[str]:
        return list(self._marks)

    def __len__(self) -> int:
        return sum(len(v) for v in self._marks.values())

    # ------------------------------------------------------------------ changing
    def set(self, query: str, gallery: int, kind: str | None, when: float) -> bool:
        """Mark ``gallery`` for ``query`` as ``kind`` (None: clear its mark). Marking an image
        again with the same kind changes nothing (its place in the order stays); another kind
        takes the end of the order. Returns whether anything changed."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"a mark is one of {KINDS}, not {kind!r}")
        old = self.marks(query)
        if self.kind_of(query, gallery) == kind:
            return False
        kept = tuple(m for m in old if m.gallery != gallery)
        if kind is not None:
            kept += (Mark(int(gallery), kind, float(when)),)
        if kept:
            self._marks[query] = kept
        else:
            self._marks.pop(query, None)
        return True

    def clear_query(self, query: str) -> bool:
        return self._marks.pop(query, None) is not None

    # ------------------------------------------------------------------ files
    def to_json(self, gallery_paths: Sequence[str]) -> dict:
        """The book as JSON data; every mark names its gallery image's path as well as its
        index, so a changed gallery list cannot move a mark to another image."""
        return {"version": VERSION, "dataset": self.dataset, "checkpoint": self.checkpoint,
                "queries": {q: [{"gallery": gallery_paths[m.gallery], "index": m.gallery,
                                 "mark": m.kind, "time": m.time} for m in marks]
                            for q, marks in self._marks.items()}}

    @classmethod
    def from_json(cls, data: Mapping, gallery_paths: Sequence[str], *, dataset: str = "",
                  checkpoint: str = "") -> MarkBook:
        """The book in ``data`` (as :meth:`to_json` wrote it). ValueError, saying what differs,
        when it was made for another dataset or checkpoint than the digests given; a mark whose
        gallery image is not at its index any more is dropped."""
        if not isinstance(data, Mapping) or data.get("version") != VERSION:
            raise ValueError("not a marks record of this version")
        differs = [what for what, want, got in (("dataset", dataset, data.get("dataset")),
                                                ("checkpoint", checkpoint, data.get("checkpoint")))
                   if want and got != want]
        if differs:
            raise ValueError("the marks were made on another " + " and ".join(differs))
        queries = data.get("queries")
        if not isinstance(queries, Mapping):
            raise ValueError("the marks record has no 'queries' object")
        marks: dict[str, list[Mark]] = {}
        for query, entries in queries.items():
            for entry in entries if isinstance(entries, list) else ():
                try:
                    index, kind = int(entry["index"]), str(entry["mark"])
                    when = float(entry.get("time", 0.0))
                    path = str(entry["gallery"])
                except (KeyError, TypeError, ValueError):
                    continue
                if kind in KINDS and 0 <= index < len(gallery_paths) and gallery_paths[index] == path:
                    marks.setdefault(str(query), []).append(Mark(index, kind, when))
        return cls(dataset=str(data.get("dataset", dataset)),
                   checkpoint=str(data.get("checkpoint", checkpoint)), marks=marks)

    def save(self, path: str | os.PathLike, gallery_paths: Sequence[str]) -> None:
        """Write the book to ``path`` atomically (or remove the file when no mark is left)."""
        from engine.utils import atomic_write_text

        if not self._marks:
            Path(path).unlink(missing_ok=True)
            return
        atomic_write_text(path, json.dumps(self.to_json(gallery_paths), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike, gallery_paths: Sequence[str], *, dataset: str,
             checkpoint: str) -> MarkBook:
        """The book kept at ``path``; an empty one when there is none. ValueError (saying why)
        for a damaged file or one made for another dataset or checkpoint."""
        from engine.cache_files import read_json_object

        if not os.path.exists(path):
            return cls(dataset, checkpoint)
        return cls.from_json(read_json_object(path, max_bytes=64 << 20), gallery_paths,
                             dataset=dataset, checkpoint=checkpoint)


def marks_file(cache_dir: str | os.PathLike, dataset_digest: str, checkpoint_digest: str) -> Path:
    """Where the marks of one dataset and checkpoint are kept in the cache folder."""
    return Path(cache_dir) / "marks" / f"{dataset_digest[:32]}-{checkpoint_digest[:32]}.json"


def dataset_digest(paths: Iterable[str]) -> str:
    """The image list's digest (paths, sizes, modification times), as the feature cache uses."""
    from engine.features import image_list_digest

    return image_list_digest(list(paths))


# ---------------------------------------------------------------------- the list on screen
@dataclass(frozen=True)
class FeedbackOverride(RankingOverride):
    """The query's list re-ranked from its marks (``engine.feedback.refine``), shown instead of
    its own ranking; ``marks``: the marks it was computed from, to tell when it is stale."""

    marks: tuple[Mark, ...] = ()


def marks_summary(same: int, different: int) -> str:
    """``2 same · 1 different`` (or ``no marks``)."""
    if not same and not different:
        return "no marks"
    return f"{same} same · {different} different"


def feedback_override(query: int, marks: tuple[Mark, ...], dist_row: np.ndarray,
                      own_row: np.ndarray, score_row: np.ndarray, pid: int | None,
                      cam: int | None, gallery_pids: np.ndarray, gallery_cams: np.ndarray, *,
                      method: str, settings=None) -> FeedbackOverride:
    """The grid's list for ``query`` re-ranked from ``marks``: ``dist_row`` (refine's) in the
    protocol's ranks, with movement against the query's own list ``own_row`` under the same
    settings."""
    ranking = rank_query(dist_row, own_row, pid, cam, gallery_pids, gallery_cams)
    description = describe_ranking(
        ranking, method + "+feedback",
        title="Re-ranked from your marks · ▲▼ vs. own list",
        versus="the query's own list without marks",
        note="Marked same person first in the order marked, different person last.")
    return FeedbackOverride(query=query, ranking=ranking, dist_row=np.asarray(dist_row),
                            score_row=score_row, description=description, settings=settings,
                            marks=tuple(marks))
