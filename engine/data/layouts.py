"""Parsers for the dataset layouts the engine reads, and layout detection.

Each parser takes the dataset folder and returns the three raw splits as lists of
:class:`Sample` with the pid as written on disk; :func:`engine.data.load_dataset` then
relabels train identities, drops junk and checks the splits. docs/arithmetic.md section 10 defines the
file names and the timestamps.
"""
from __future__ import annotations

import csv
import math
import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.data.images import is_image_name
from engine.data.samples import Sample

MARKET_FPS = 25.0
DUKE_FPS = 59.94
# Frames to add to each DukeMTMC camera's local frame number to reach the common clock.
DUKE_OFFSETS = (5542, 3606, 27243, 31181, 0, 22401, 18967, 46765)

# Numbers in names are ASCII digits only: str.isdigit and \d also accept '²' or '٣'.
_MARKET_RE = re.compile(r"^(-?[0-9]+)_c([0-9]+)s([0-9]+)_([0-9]+)_[0-9]+")
_DUKE_RE = re.compile(r"^(-?[0-9]+)_c([0-9]+)_f([0-9]+)")
_CUHK_RE = re.compile(r"^(-?[0-9]+)_c([0-9]+)_[0-9]+")
_CAM_IN_NAME_RE = re.compile(r"(?:^|[_\-])c([0-9]+)")
_INT_RE = re.compile(r"-?[0-9]+")
# split -> folder, in Market-1501 and the layouts that copy it
_MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


class LayoutError(ValueError):
    """The folder does not hold a dataset in a layout we read."""


@dataclass
class RawSplits:
    """What a parser found: samples per split plus the rows it could not use."""

    train: list[Sample] = field(default_factory=list)
    query: list[Sample] = field(default_factory=list)
    gallery: list[Sample] = field(default_factory=list)
    bad_rows: list[tuple[str, str]] = field(default_factory=list)
    present: tuple[str, ...] = ()  # splits whose folder or list exists
    sources: dict[str, str] = field(default_factory=dict)  # split -> the folder or list it is read from

    def missing(self, split: str) -> str:
        """What is missing when ``split`` is not :attr:`present`, for the user to read."""
        source = self.sources.get(split)
        return f"{source} is missing" if source else "its folder or list is missing"


# Bounds of the numbers a dataset may hold (beyond them NumPy's int64 overflows, and no
# camera network has a million cameras).
_MAX_CAMERA = 999_999
_MAX_PID = 2**31 - 1
# Frame and session numbers: far beyond any recording, yet exact as float64 times.
_MAX_FRAME = 10**15


def _number(text: str, what: str) -> int:
    """``text`` as an integer written in ASCII digits; ValueError naming ``what`` otherwise."""
    text = text.strip()
    if not _INT_RE.fullmatch(text):
        raise ValueError(f"{what} {text!r} is not a whole number")
    return int(text)


def _pid(pid: int) -> int:
    if not -1 <= pid <= _MAX_PID:
        raise ValueError(f"pid {pid} outside -1..{_MAX_PID}")
    return pid


def _frame(frame: int, what: str = "frame") -> int:
    if frame > _MAX_FRAME:
        raise ValueError(f"{what} {frame} beyond {_MAX_FRAME}")
    return frame


def _identity(pid: int, cam: int, first_cam: int = 1) -> tuple[int, int]:
    """``(pid, 0-based camera)`` of a record whose cameras are numbered from ``first_cam``;
    ValueError when either is out of range."""
    _pid(pid)
    if cam == 0 and first_cam == 1:
        raise ValueError("camera c0 (cameras are numbered from c1)")
    if not first_cam <= cam <= _MAX_CAMERA + first_cam:
        raise ValueError(f"camera {cam} outside {first_cam}..{_MAX_CAMERA + first_cam}")
    return pid, cam - first_cam


def _listed_path(path: str, base: str, root: str, allow_outside: bool, root_name: str) -> str:
    """The file a list or manifest names: ``path`` relative to ``base`` unless absolute.

    The one rule for every layout that reads paths from a file: a path leading outside
    ``root`` (``../``, an absolute path, a link) is refused (ValueError) unless
    ``allow_outside`` (``--allow-outside-paths``): a list from elsewhere must not make the
    tool read, show or export arbitrary files.
    """
    full = path if os.path.isabs(path) else os.path.join(base, path)
    real_root = os.path.realpath(root)
    if not allow_outside and os.path.commonpath([real_root, os.path.realpath(full)]) != real_root:
        raise ValueError(f"path {path} leads outside {root_name} (refused; --allow-outside-paths "
                         "allows it)")
    return full


def _list_images(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(n for n in os.listdir(folder) if is_image_name(n))


# --------------------------------------------------------------------------- Market-1501
def _parse_market(root: str) -> RawSplits:
    folders = _MARKET_FOLDERS
    parsed: dict[str, list[tuple[str, int, int, int, int]]] = {}
    out = RawSplits()
    max_frame: dict[tuple[int, int], int] = defaultdict(int)
    for split, sub in folders.items():
        rows = []
        for name in _list_images(os.path.join(root, sub)):
            m = _MARKET_RE.match(name)
            if m is None:
                out.bad_rows.append((os.path.join(root, sub, name), "name is not PPPP_cCsS_FFFFFF_NN"))
                continue
            pid, cam, sess, frame = (int(g) for g in m.groups())
            try:
                pid, _ = _identity(pid, cam)
                _frame(sess, "session")
                _frame(frame)
            except ValueError as exc:
                out.bad_rows.append((os.path.join(root, sub, name), str(exc)))
                continue
            rows.append((os.path.join(root, sub, name), pid, cam, sess, frame))
            max_frame[cam, sess] = max(max_frame[cam, sess], frame)
        parsed[split] = rows
    # Sessions of one camera are laid end to end: a session starts where the earlier ones end.
    offset: dict[tuple[int, int], int] = {}
    for cam in sorted({c for c, _ in max_frame}):
        running = 0
        for sess in sorted(s for c, s in max_frame if c == cam):
            offset[cam, sess] = running
            running += max_frame[cam, sess]
    for split, rows in parsed.items():
        getattr(out, split).extend(
            Sample(path, pid, cam - 1, (frame + offset[cam, sess]) / MARKET_FPS)
            for path, pid, cam, sess, frame in rows
        )
    _note_folders(out, root)
    return out


# --------------------------------------------------------------------------- Market-style folders


def _parse_named_folders(root: str, pattern: re.Pattern, expected: str,
                         to_sample: Callable[[str, re.Match], Sample]) -> RawSplits:
    """Market-style folders whose file names ``pattern`` parses; ``to_sample`` may raise
    ``ValueError`` with a reason, which skips that file."""
    out = RawSplits()
    for split, sub in _MARKET_FOLDERS.items():
        for name in _list_images(os.path.join(root, sub)):
            path = os.path.join(root, sub, name)
            m = pattern.match(name)
            try:
                if m is None:
                    raise ValueError(f"name is not {expected}")
                getattr(out, split).append(to_sample(path, m))
            except ValueError as exc:
                out.bad_rows.append((path, str(exc)))
    _note_folders(out, root)
    return out


def _note_folders(out: RawSplits, root: str) -> None:
    """Record which Market-style split folders exist under ``root``, and their names."""
    out.sources = {s: f"folder {sub}/" for s, sub in _MARKET_FOLDERS.items()}
    out.present = tuple(s for s, sub in _MARKET_FOLDERS.items() if os.path.isdir(os.path.join(root, sub)))


def _duke_sample(path: str, m: re.Match) -> Sample:
    pid, cam, frame = (int(g) for g in m.groups())
    if not 1 <= cam <= len(DUKE_OFFSETS):
        raise ValueError(f"camera {cam} outside 1..{len(DUKE_OFFSETS)}")
    pid, cam = _identity(pid, cam)
    return Sample(path, pid, cam, (_frame(frame) + DUKE_OFFSETS[cam]) / DUKE_FPS)


def _parse_duke(root: str) -> RawSplits:
    return _parse_named_folders(root, _DUKE_RE, "PPPP_cC_fFFFFFFF", _duke_sample)


def _cuhk_sample(path: str, m: re.Match) -> Sample:
    pid, cam = _identity(int(m.group(1)), int(m.group(2)))
    return Sample(path, pid, cam, None)


def _parse_cuhk03(root: str) -> RawSplits:
    return _parse_named_folders(root, _CUHK_RE, "PPPP_cC_N", _cuhk_sample)


def _cuhk03_variant(variant: str) -> Callable[[str], RawSplits]:
    def parse(root: str) -> RawSplits:
        sub = os.path.join(root, variant)
        return _parse_cuhk03(sub if os.path.isdir(sub) else root)

    return parse


# --------------------------------------------------------------------------- MSMT17
def _msmt_image_dirs(root: str) -> dict[str, str]:
    """Folder that list paths are relative to, per list (V1: train/test; V2: mask_*_v2)."""
    train = "mask_train_v2" if os.path.isdir(os.path.join(root, "mask_train_v2")) else "train"
    test = "mask_test_v2" if os.path.isdir(os.path.join(root, "mask_test_v2")) else "test"
    return {"train": train, "val": train, "query": test, "gallery": test}


def _parse_msmt(root: str, allow_outside: bool = False) -> RawSplits:
    """``list_{train,val,query,gallery}.txt`` of ``<path> <pid>`` lines; the camera is the
    third ``_`` field of the file name. Paths leading outside ``root`` are refused
    (:func:`_listed_path`)."""
    out = RawSplits()
    dirs = _msmt_image_dirs(root)
    split_of = {"train": "train", "val": "train", "query": "query", "gallery": "gallery"}
    present = set()
    for lst, split in split_of.items():
        list_path = os.path.join(root, f"list_{lst}.txt")
        if not os.path.isfile(list_path):
            continue
        present.add(split)
        out.sources.setdefault(split, f"list list_{lst}.txt")
        with open(list_path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                parts = line.split()
                if not parts:
                    continue
                where = f"{list_path}:{lineno}"
                if len(parts) < 2 or not _INT_RE.fullmatch(parts[1]):
                    out.bad_rows.append((where, "expected '<path> <pid>'"))
                    continue
                fields = os.path.basename(parts[0]).split("_")
                try:
                    path = _listed_path(parts[0], os.path.join(root, dirs[lst]), root,
                                        allow_outside, "the dataset's folder")
                    if len(fields) < 3 or not _INT_RE.fullmatch(fields[2]) or int(fields[2]) < 1:
                        raise ValueError("file name has no camera (1, 2, ...) as its third '_' field")
                    pid, cam = _identity(int(parts[1]), int(fields[2]))
                except ValueError as exc:
                    out.bad_rows.append((where, str(exc)))
                    continue
                getattr(out, split).append(Sample(path, pid, cam, None))
    out.present = tuple(present)
    return out


# --------------------------------------------------------------------------- <pid>/ folders
def _cam_from_name(name: str) -> int | None:
    """The camera number of a ``c<N>`` token in a file name (as written, from 1), or None."""
    m = _CAM_IN_NAME_RE.search(os.path.splitext(name)[0])
    return int(m.group(1)) if m else None


def _sub_folders(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        return []
    return sorted(d for d in os.listdir(folder)
                  if not d.startswith(".") and os.path.isdir(os.path.join(folder, d)))


def _pid_dirs(folder: str) -> list[str]:
    return [d for d in _sub_folders(folder) if _INT_RE.fullmatch(d)]


def _samples_from_pid_dirs(folder: str, default_cam: int, bad_rows: list) -> list[Sample]:
    """The images of ``folder/<pid>/``; sub-folders not named by a pid are skipped and listed."""
    samples = []
    for d in _sub_folders(folder):
        try:
            pid = _pid(_number(d, "folder name (an identity number)"))
        except ValueError as exc:
            bad_rows.append((os.path.join(folder, d), str(exc)))
            continue
        for name in _list_images(os.path.join(folder, d)):
            cam = _cam_from_name(name)
            try:
                cam = default_cam if cam is None else _identity(pid, cam)[1]
            except ValueError as exc:
                bad_rows.append((os.path.join(folder, d, name), str(exc)))
                continue
            samples.append(Sample(os.path.join(folder, d, name), pid, cam, None))
    return samples


def _parse_folder(root: str) -> RawSplits:
    """``<root>/{train,query,gallery}/<pid>/<image>``, or a flat ``<root>/<pid>/<image>``.

    Cameras come from a ``c<N>`` token in the file name when there is one. Without one,
    query images get camera 0 and gallery images camera 1, so that the same-camera rule of
    the evaluation does not discard every match. A flat folder has no train split; its
    first image of every identity with two or more images becomes a query.
    """
    out = RawSplits()
    if any(_pid_dirs(os.path.join(root, s)) for s in ("query", "gallery")):
        out.train = _samples_from_pid_dirs(os.path.join(root, "train"), 0, out.bad_rows)
        out.query = _samples_from_pid_dirs(os.path.join(root, "query"), 0, out.bad_rows)
        out.gallery = _samples_from_pid_dirs(os.path.join(root, "gallery"), 1, out.bad_rows)
        out.present = tuple(s for s in ("train", "query", "gallery")
                            if os.path.isdir(os.path.join(root, s)))
        out.sources = {s: f"folder {s}/" for s in ("train", "query", "gallery")}
        return out
    by_pid: dict[int, list[Sample]] = defaultdict(list)
    for s in _samples_from_pid_dirs(root, 1, out.bad_rows):
        by_pid[s.pid].append(s)
    for _pid, items in sorted(by_pid.items()):
        if len(items) >= 2:
            first = items[0]
            out.query.append(first if _cam_from_name(os.path.basename(first.path)) is not None
                             else first._replace(cam=0))
            out.gallery.extend(items[1:])
        else:
            out.gallery.extend(items)
    out.present = ("query", "gallery")
    return out


# --------------------------------------------------------------------------- CSV manifest
def find_manifest(root: str) -> str | None:
    if os.path.isfile(root) and root.lower().endswith(".csv"):
        return root
    if os.path.isdir(root):
        csvs = sorted(n for n in os.listdir(root) if n.lower().endswith(".csv"))
        for preferred in ("manifest.csv", "dataset.csv"):
            if preferred in csvs:
                return os.path.join(root, preferred)
        if len(csvs) == 1:
            return os.path.join(root, csvs[0])
    return None


def _parse_csv(root: str, allow_outside: bool = False) -> RawSplits:
    """A CSV manifest with a header: ``path,pid,camera[,time][,split]``.

    Paths are relative to the manifest's folder unless absolute; ``camera`` is 0-based;
    ``time`` in seconds may be empty (no time) and must otherwise be finite; ``split`` is
    train, query or gallery (default gallery). A path leading outside the manifest's folder is
    refused unless ``allow_outside`` (:func:`_listed_path`). Rows that cannot be used (a
    ``nan`` or infinite time included) are skipped and reported with their line number.
    """
    manifest = find_manifest(root)
    if manifest is None:
        raise LayoutError(f"no CSV manifest in {root}")
    base = os.path.dirname(os.path.abspath(manifest))
    out = RawSplits()
    present = set()
    with open(manifest, newline="", encoding="utf-8-sig", errors="replace") as fh:
        reader = csv.DictReader(fh)
        fields = [f.strip().lower() for f in (reader.fieldnames or [])]
        missing = {"path", "pid", "camera"} - set(fields)
        if missing:
            raise LayoutError(f"{manifest}: header lacks column(s) {', '.join(sorted(missing))}; "
                              "expected path,pid,camera[,time][,split]")
        reader.fieldnames = fields
        for lineno, row in enumerate(reader, 2):
            where = f"{manifest}:{lineno}"
            try:
                path = (row.get("path") or "").strip()
                if not path:
                    raise ValueError("empty path")
                pid, cam = _identity(_number(row.get("pid") or "", "pid"),
                                     _number(row.get("camera") or "", "camera"), first_cam=0)
                t = (row.get("time") or "").strip()
                time = float(t) if t else None
                if time is not None and not math.isfinite(time):
                    raise ValueError(f"time {t!r} is not a finite number of seconds")
                split = (row.get("split") or "gallery").strip().lower() or "gallery"
                if split not in ("train", "query", "gallery"):
                    raise ValueError(f"split {split!r} is not train, query or gallery")
                full = _listed_path(path, base, base, allow_outside, "the manifest's folder")
            except (ValueError, TypeError) as exc:
                out.bad_rows.append((where, str(exc)))
                continue
            getattr(out, split).append(Sample(full, pid, cam, time))
            present.add(split)
    out.present = tuple(present | {"query", "gallery"})
    return out


# --------------------------------------------------------------------------- detection
@dataclass(frozen=True)
class Layout:
    name: str
    looks_for: str
    release_dirs: tuple[str, ...]
    matches: Callable[[str], bool]
    parse: Callable[..., RawSplits]
    reads_paths: bool = False  # paths come from a file: parse takes allow_outside


def _has(root: str, *names: str) -> bool:
    return all(os.path.exists(os.path.join(root, n)) for n in names)


def _first_name_matches(root: str, pattern: re.Pattern, ext: tuple[str, ...]) -> bool:
    """Whether most of the first 20 image names of the first non-empty split folder match
    ``pattern`` (a few odd names are then skipped and listed by the parser)."""
    for sub in ("bounding_box_test", "query", "bounding_box_train"):
        names = [n for n in _list_images(os.path.join(root, sub)) if n.lower().endswith(ext)][:20]
        if names:
            return 2 * sum(bool(pattern.match(n)) for n in names) > len(names)
    return False


def _market_like(root: str) -> bool:
    # query/ is not required here: a set lacking it is still recognised, and the loader then
    # names the missing folder (rather than another layout failing on some other file).
    return _has(root, "bounding_box_test") or _has(root, "bounding_box_train")


LAYOUTS: tuple[Layout, ...] = (
    Layout("msmt17", "list_query.txt and list_gallery.txt beside train/ and test/ (or mask_*_v2/)",
           ("MSMT17_V2", "MSMT17_V1", "MSMT17", "msmt17"),
           lambda r: _has(r, "list_query.txt", "list_gallery.txt"), _parse_msmt, reads_paths=True),
    Layout("market1501", "bounding_box_train/, bounding_box_test/, query/ with PPPP_cCsS_FFFFFF_NN.jpg",
           ("Market-1501-v15.09.15", "Market-1501", "market1501", "Market1501"),
           lambda r: _market_like(r) and _first_name_matches(r, _MARKET_RE, (".jpg", ".jpeg")),
           _parse_market),
    Layout("dukemtmc", "bounding_box_train/, bounding_box_test/, query/ with PPPP_cC_fFFFFFFF.jpg",
           ("DukeMTMC-reID", "dukemtmc-reid", "DukeMTMC", "dukemtmcreid"),
           lambda r: _market_like(r) and _first_name_matches(r, _DUKE_RE, (".jpg", ".jpeg")),
           _parse_duke),
    Layout("cuhk03-np-detected", "detected/ with Market-style folders of PPPP_cC_N.png",
           ("cuhk03-np", "cuhk03_np", "CUHK03-NP"),
           lambda r: _market_like(os.path.join(r, "detected")), _cuhk03_variant("detected")),
    Layout("cuhk03-np-labeled", "labeled/ with Market-style folders of PPPP_cC_N.png",
           ("cuhk03-np", "cuhk03_np", "CUHK03-NP"),
           lambda r: _market_like(os.path.join(r, "labeled")), _cuhk03_variant("labeled")),
    Layout("cuhk03-np", "Market-style folders of PPPP_cC_N.png",
           (), lambda r: _market_like(r) and _first_name_matches(r, _CUHK_RE, (".png",)),
           _parse_cuhk03),
    Layout("folder", "<pid>/ sub-folders of images, or train/ query/ gallery/ holding them",
           (), lambda r: bool(_pid_dirs(r)) or any(_pid_dirs(os.path.join(r, s))
                                                   for s in ("query", "gallery")),
           _parse_folder),
    Layout("csv", "a CSV manifest (path,pid,camera[,time][,split])",
           (), lambda r: find_manifest(r) is not None, _parse_csv, reads_paths=True),
)

LAYOUT_NAMES = tuple(layout.name for layout in LAYOUTS)
_ALIASES = {"market": "market1501", "market-1501": "market1501", "duke": "dukemtmc",
            "dukemtmc-reid": "dukemtmc", "msmt": "msmt17", "msmt17_v1": "msmt17",
            "msmt17_v2": "msmt17", "cuhk03": "cuhk03-np-detected",
            "cuhk03-detected": "cuhk03-np-detected", "cuhk03-labeled": "cuhk03-np-labeled",
            "manifest": "csv"}


def get_layout(name: str) -> Layout:
    key = _ALIASES.get(name.lower(), name.lower())
    for layout in LAYOUTS:
        if layout.name == key:
            return layout
    raise LayoutError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUT_NAMES)}")


def _candidate_roots(root: str, layout: Layout) -> list[str]:
    roots = [root]
    if os.path.isdir(root):
        roots += [os.path.join(root, d) for d in layout.release_dirs
                  if os.path.isdir(os.path.join(root, d))]
    return roots


def resolve_layout(root: str, name: str | None = None) -> tuple[Layout, str]:
    """Find which layout ``root`` (or a usual release folder inside it) holds.

    Returns the layout and the folder to parse. When nothing fits, the error names every
    layout tried and what it looked for.
    """
    if not os.path.exists(root):
        raise LayoutError(f"dataset folder {root} does not exist")
    layouts = [get_layout(name)] if name else list(LAYOUTS)
    for layout in layouts:
        for candidate in _candidate_roots(root, layout):
            try:
                if layout.matches(candidate):
                    return layout, candidate
            except OSError:
                continue
    tried = "\n".join(f"  - {lay.name}: {lay.looks_for}" for lay in layouts)
    raise LayoutError(f"no known dataset layout found in {root}. Tried:\n{tried}")
