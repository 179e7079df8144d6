"""A case folder (Qt-free): ``case.json`` (dataset and checkpoint digests, the query, the
post-processing settings, the marks with their times), ``sightings.csv`` (the query and every
marked image), ``contact_sheet.png`` (the query and confirmed sightings in time order) and
``path.png`` (the path view, drawn by the window).

A case names its dataset and checkpoint by digest: opening it on another one says what differs
and applies nothing (:func:`check_case`).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.postprocess.params import RerankParams, TLiftParams
from viewer.marks.state import KINDS, SAME, Mark

__all__ = ["CASE_FILE", "SIGHTINGS_COLUMNS", "Case", "case_json", "check_case",
           "confirmed_in_time_order", "contact_sheet", "read_case", "sightings_csv"]

CASE_FILE = "case.json"
VERSION = 1
SIGHTINGS_COLUMNS = ("file", "identity", "camera", "time", "rank", "score", "mark")


@dataclass(frozen=True)
class Case:
    """What a case folder holds, read back."""

    dataset: str                 # digest of the image list
    checkpoint: str              # digest of the checkpoint file
    dataset_root: str
    checkpoint_path: str
    query: str                   # the query image's path
    rerank: RerankParams | None
    tlift: TLiftParams | None
    marks: tuple[tuple[str, int, str, float], ...]   # (gallery path, index, mark, time)


def case_json(*, dataset: str, checkpoint: str, dataset_root: str, checkpoint_path: str,
              query, rerank: RerankParams | None, tlift: TLiftParams | None,
              marks: Sequence[Mark], gallery_paths: Sequence[str]) -> dict:
    """``case.json``'s content."""
    return {
        "version": VERSION, "saved": time.time(),
        "dataset": {"digest": dataset, "root": dataset_root},
        "checkpoint": {"digest": checkpoint, "path": checkpoint_path},
        "query": {"file": query.path, "identity": query.pid, "camera": query.cam,
                  "time": query.time},
        "settings": {"rerank": None if rerank is None else dataclasses.asdict(rerank),
                     "tlift": None if tlift is None else dataclasses.asdict(tlift)},
        "marks": [{"gallery": gallery_paths[m.gallery], "index": m.gallery, "mark": m.kind,
                   "time": m.time} for m in marks],
    }


def read_case(data: Mapping) -> Case:
    """The case in ``case.json``'s content; ValueError saying what is wrong with it."""
    if not isinstance(data, Mapping) or data.get("version") != VERSION:
        raise ValueError("not a case file of this version")
    try:
        settings = data["settings"]
        rerank = None if settings.get("rerank") is None else RerankParams(**settings["rerank"])
        tlift = None if settings.get("tlift") is None else TLiftParams(**settings["tlift"])
        marks = tuple((str(m["gallery"]), int(m["index"]), str(m["mark"]), float(m["time"]))
                      for m in data["marks"])
        case = Case(dataset=str(data["dataset"]["digest"]),
                    checkpoint=str(data["checkpoint"]["digest"]),
                    dataset_root=str(data["dataset"].get("root", "")),
                    checkpoint_path=str(data["checkpoint"].get("path", "")),
                    query=str(data["query"]["file"]), rerank=rerank, tlift=tlift, marks=marks)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"the case file is damaged ({type(exc).__name__}: {exc})") from None
    if any(kind not in KINDS for _, _, kind, _ in case.marks):
        raise ValueError("the case file holds a mark of an unknown kind")
    return case


def check_case(case: Case, *, dataset: str, checkpoint: str, query_paths: Sequence[str],
               gallery_paths: Sequence[str]) -> int:
    """The query's number in the open dataset; ValueError saying what differs when the case
    was made on another dataset or checkpoint (or its query or marked images are not where it
    says), so that no mark is applied to another image."""
    differs = []
    if case.dataset != dataset:
        differs.append(f"dataset (the case's: {case.dataset_root or case.dataset[:12]})")
    if case.checkpoint != checkpoint:
        differs.append(f"checkpoint (the case's: {case.checkpoint_path or case.checkpoint[:12]})")
    if differs:
        raise ValueError("this case was made on another " + " and another ".join(differs)
                         + "; open those to apply its marks")
    if case.query not in query_paths:
        raise ValueError(f"the case's query {case.query} is not among the open dataset's queries")
    moved = [path for path, index, _, _ in case.marks
             if not 0 <= index < len(gallery_paths) or gallery_paths[index] != path]
    if moved:
        raise ValueError(f"{len(moved)} marked image(s) of the case are not in the open gallery "
                         f"where the case says, e.g. {moved[0]}")
    return list(query_paths).index(case.query)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def sightings_csv(rows: Sequence[tuple]) -> bytes:
    """``sightings.csv``: one row per :data:`SIGHTINGS_COLUMNS` tuple (camera as the dataset
    names it, time in seconds, rank in the list shown, QAConv logit, mark or ``query``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SIGHTINGS_COLUMNS)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def contact_sheet(images: Sequence[tuple[str, str]], *, size: tuple[int, int] = (128, 256),
                  per_row: int = 8) -> bytes:
    """A PNG of ``images`` ((path, caption), in the order given), each resized to ``size`` with
    its caption (two lines, each cut to the tile's width) under it; an unreadable image is a
    grey tile named so."""
    from PIL import Image, ImageDraw, ImageFont

    from engine.data import read_image_rgb

    w, h = size
    try:
        font = ImageFont.load_default(size=12)   # Pillow >= 10.1: a scalable font
    except TypeError:
        font = ImageFont.load_default()
    cap = 34
    count = max(len(images), 1)
    cols = min(per_row, count)
    rows = -(-count // cols)
    sheet = Image.new("RGB", (cols * (w + 8) + 8, rows * (h + cap + 8) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (path, caption) in enumerate(images):
        x, y = 8 + (i % cols) * (w + 8), 8 + (i // cols) * (h + cap + 8)
        try:
            tile = Image.fromarray(read_image_rgb(path)).resize((w, h), Image.BILINEAR)
        except (OSError, ValueError):
            tile = Image.new("RGB", (w, h), (200, 200, 200))
            caption = f"unreadable\n{os.path.basename(path)}"
        sheet.paste(tile, (x, y))
        for j, line in enumerate(caption.split("\n")[:2]):
            while line and draw.textlength(line, font=font) > w:
                line = line[:-2] + "…"
            draw.text((x, y + h + 3 + 15 * j), line, fill=(31, 35, 40), font=font)
    out = io.BytesIO()
    sheet.save(out, format="PNG")
    return out.getvalue()


def confirmed_in_time_order(query, gallery, marks: Sequence[Mark]) -> list:
    """The query and the images marked the same person, by capture time (untimed ones last,
    in the order marked)."""
    items = [(query.time, -1, query)] + [(gallery[m.gallery].time, i, gallery[m.gallery])
                                         for i, m in enumerate(marks) if m.kind == SAME]
    items.sort(key=lambda t: (t[0] is None, t[0] if t[0] is not None else 0.0, t[1]))
    return [sample for _, _, sample in items]
