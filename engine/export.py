"""Ranked lists to CSV: one row per (query, ranked gallery item), written atomically.

Used by the viewer's export and by ``python -m engine export``. The order of every list is the
order the evaluation uses (NumPy's default ``argsort`` of the float32 distance row), so a CSV
always agrees with the metrics computed from the same distance matrix.

Columns
-------
query, query_pid, query_cam
    The query image's path, identity and camera (pid and camera empty for an external image).
    Cameras are written as the dataset names them (``camera_base`` added to the 0-based index:
    ``3`` for Market's ``c3``, the manifest's own number for a CSV manifest), as the viewer shows.
rank
    1-based rank in the query's ranked list as the Market-1501 protocol counts it: junk items
    (``match`` = ``junk``) are not counted and have an empty rank, so rank r here is the
    viewer's ``#r`` and "first true match at rank r".
gallery, gallery_pid, gallery_cam, gallery_time
    The gallery image's path, identity, camera and capture time in seconds (empty if none).
score
    The matcher's score of the pair (QAConv logit; higher = more similar).
distance
    The distance the list is sorted by (after the post-processing named in ``method``).
match
    ``true`` same identity, ``false`` different identity, ``junk`` same identity and same camera
    (ignored by the Market-1501 protocol), empty when the query's identity is unknown.
method
    The post-processing applied to that query's list, e.g. ``qaconv``, ``qaconv+rr``,
    ``qaconv+rr+tlift``; TLift is not applied to a query without a timestamp (an external image),
    so its rows never name it. ``+feedback`` ends it for a list re-ranked from the user's marks
    in the viewer (``engine.feedback.refine``).
mark
    The user's relevance-feedback mark on that gallery image for that query in the viewer:
    ``same`` (same person), ``different``, or empty when unmarked (always empty from the CLI).
"""
from __future__ import annotations

import csv
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from engine.data.samples import Sample
from engine.jobs import CancelFn, ProgressFn, check_cancel, report
from engine.outputs import RunInputs, write_output

__all__ = ["COLUMNS", "method_for", "protocol_ranks", "ranked_rows", "write_ranked_csv"]

COLUMNS = ("query", "query_pid", "query_cam", "rank", "gallery", "gallery_pid", "gallery_cam",
           "gallery_time", "score", "distance", "match", "method", "mark")


def _cell(value) -> str:
    """A CSV cell: empty for None, ``.9g`` for floats (round-trips float32 exactly)."""
    if value is None:
        return ""
    if isinstance(value, float | np.floating):
        return format(float(value), ".9g")
    return str(value)


def _match(query: Sample, item: Sample) -> str:
    if query.pid is None:
        return ""
    if item.pid != query.pid:
        return "false"
    return "junk" if item.cam == query.cam else "true"


def protocol_ranks(is_junk) -> np.ndarray:
    """1-based ranks of a ranked list's items, junk not counted (0 for junk): ``int64 [n]``."""
    is_junk = np.asarray(is_junk, bool)
    return np.where(is_junk, 0, np.cumsum(~is_junk)).astype(np.int64)


def _cam(cam, base: int) -> str:
    return "" if cam is None else str(int(cam) + base)


def method_for(query: Sample, method: str) -> str:
    """``method`` as applied to ``query``: without ``+tlift`` for a query with no timestamp."""
    if query.time is None and method.endswith("+tlift"):
        return method.removesuffix("+tlift")
    return method


def ranked_rows(distmat, scores, queries: Sequence[Sample], gallery: Sequence[Sample], *,
                method: str, top_k: int | None = None,
                query_indices: Sequence[int] | None = None,
                camera_base: int = 0,
                marks: Mapping[int, Mapping[int, str]] | None = None,
                refined: Collection[int] = ()) -> Iterator[tuple]:
    """Yield one tuple of :data:`COLUMNS` values per ranked item, query by query.

    Parameters
    ----------
    distmat : array_like [q, g]
        Distances, smaller = closer; each row is ordered by ``np.argsort`` of its float32 values.
    scores : array_like [q, g]
        Matcher scores shown beside each distance (higher = more similar).
    queries : sequence of Sample [q]
        Query records; ``pid`` / ``cam`` may be None for an image from outside the dataset.
    gallery : sequence of Sample [g]
    method : str
        Written in the ``method`` column.
    top_k : int, optional
        Rows per query; None writes the full list.
    query_indices : sequence of int, optional
        Which rows of ``distmat`` to write, in this order; None = all.
    camera_base : int
        Added to the 0-based camera indices written (``Dataset.camera_base``).
    marks : mapping, optional
        Row of ``distmat`` -> {gallery index: ``"same"`` | ``"different"``}, the ``mark`` column.
    refined : collection of int
        Rows of ``distmat`` re-ranked from marks: their ``method`` ends in ``+feedback``.
    """
    distmat = np.asarray(distmat)
    scores = np.asarray(scores)
    num_q, num_g = distmat.shape
    if scores.shape != distmat.shape:
        raise ValueError(f"scores {scores.shape} and distmat {distmat.shape} must have the same shape")
    if len(queries) != num_q or len(gallery) != num_g:
        raise ValueError(f"distmat is {distmat.shape} but there are {len(queries)} queries and "
                         f"{len(gallery)} gallery images")
    if top_k is not None and int(top_k) < 1:
        raise ValueError(f"top_k must be >= 1 or None (full list), got {top_k}")
    count = num_g if top_k is None else min(int(top_k), num_g)
    indices = range(num_q) if query_indices is None else query_indices
    for qi in indices:
        query = queries[qi]
        applied = method_for(query, method) + ("+feedback" if qi in refined else "")
        order = np.argsort(distmat[qi].astype(np.float32))[:count]  # same order as evaluation
        matches = [_match(query, gallery[gi]) for gi in order]
        ranks = protocol_ranks([m == "junk" for m in matches])
        marked = (marks or {}).get(qi, {})
        for gi, rank, match in zip(order, ranks, matches, strict=True):
            item = gallery[gi]
            yield (query.path, _cell(query.pid), _cam(query.cam, camera_base), _cell(int(rank) or None),
                   item.path, _cell(item.pid), _cam(item.cam, camera_base), _cell(item.time),
                   _cell(scores[qi, gi]), _cell(distmat[qi, gi]), match, applied,
                   marked.get(int(gi), ""))


def write_ranked_csv(path: str | os.PathLike, distmat, scores, queries: Sequence[Sample],
                     gallery: Sequence[Sample], *, method: str, top_k: int | None = None,
                     query_indices: Sequence[int] | None = None,
                     progress: ProgressFn | None = None, cancel: CancelFn | None = None,
                     inputs: RunInputs | Sequence[str] = (), camera_base: int = 0,
                     marks: Mapping[int, Mapping[int, str]] | None = None,
                     refined: Collection[int] = ()) -> int:
    """Write ranked lists to ``path`` as CSV (see the module notes for the columns).

    The caller has decided that an existing regular file at ``path`` may be replaced (``--force``
    or a confirmation); anything else there (a folder, a link, a device, a FIFO, one of the
    ``inputs`` the run reads, see :func:`engine.outputs.run_inputs`) is refused with
    :class:`engine.outputs.OutputRefused`.

    The file appears complete or not at all (:func:`engine.outputs.write_output`), so an error,
    an unwritable folder or a cancel leaves no partial file.
    ``progress(done, total)`` counts queries; ``cancel()`` is checked between queries.

    Returns
    -------
    int
        Number of data rows written (the header excluded).

    Raises
    ------
    OSError
        When the file cannot be written; the message names the path.
    engine.jobs.Cancelled
        When ``cancel()`` returned True.
    """
    indices = list(range(len(queries)) if query_indices is None else query_indices)
    rows = 0

    def fill(tmp: Path) -> None:
        nonlocal rows
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(COLUMNS)
            for done, qi in enumerate(indices, start=1):
                check_cancel(cancel)
                for row in ranked_rows(distmat, scores, queries, gallery, method=method,
                                       top_k=top_k, query_indices=(qi,), camera_base=camera_base,
                                       marks=marks, refined=refined):
                    writer.writerow(row)
                    rows += 1
                report(progress, done, len(indices))

    write_output(path, fill, force=True, inputs=inputs, flag="export")
    return rows
