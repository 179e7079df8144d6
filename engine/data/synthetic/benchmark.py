"""The synthetic person re-identification benchmark, written in the Market-1501 layout.

:func:`generate` draws procedurally rendered pedestrians seen by a camera network over time
and writes them exactly as Market-1501 is laid out, so that every code path used on Market
runs on it unchanged::

    root/bounding_box_train/0042_c3s2_001234_01.jpg   train identities
    root/bounding_box_test/...                        test identities, pid 0000 distractors,
                                                      pid -1 junk ("-1_c1s1_000401_03.jpg")
    root/query/...                                    one image per test identity per camera
    root/synthetic.json                               settings, version and counts
    root/synthetic_images.csv                         per-image ground truth (view, occluder,
                                                      truncation, group, true time, ...)
    root/synthetic_identities.json                    every person's hidden attributes

The pieces live in helper modules: :mod:`~engine.data.synthetic.domains` (palettes, camera network
and looks of domains A and B), :mod:`~engine.data.synthetic.people` (identities and their
drawing), :mod:`~engine.data.synthetic.render` (backgrounds, occluders, camera degradations) and
:mod:`~engine.data.synthetic.timeline` (arrivals, groups, paths, sessions).

Every random stream is seeded from ``(seed, domain, purpose, side, index)``: each side's plan
(test side: test identities, distractors, junk; train side) from ``(seed, domain, side)``, a
person's attributes from their index, an image's nuisances and pixels from its index. The same
arguments therefore give byte-identical files, whatever the number of worker processes, and
the query and gallery files do not depend on the size of the train split.
"""
from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.cache_files import read_json_object
from engine.data.synthetic.domains import DomainSpec, get_domain
from engine.data.synthetic.people import Person, person_to_dict, sample_person
from engine.data.synthetic.render import (
    JUNK_KINDS,
    ImageSpec,
    encode_jpeg,
    make_background,
    make_noise_bank,
    render_crop,
    sample_image_spec,
)
from engine.data.synthetic.timeline import (
    FPS,
    Detection,
    WalkerPlan,
    apply_sessions,
    build_timeline,
    cut_sessions,
    number_in_frame,
    transit_times,
    trim_detections,
    trim_visits,
)
from engine.leftovers import remove_stale_temporaries

__all__ = ["VERSION", "DEFAULT_SIZES", "MARKET_SCALE", "SyntheticImage", "generate",
           "plan_benchmark", "read_settings"]

VERSION = 1

#: Default sizes: a train split of ~5k images for a small model on a CPU, and a test split of
#: ~1.8k query + gallery images, so feature extraction and all q-g, q-q, g-g scores for
#: re-ranking fit in about two minutes on two cores.
DEFAULT_SIZES = {
    "num_train_ids": 400,
    "num_test_ids": 150,
    "num_distractors": 200,
    "num_junk": 100,
    "cams_per_id": (2, 4),
    "frames_per_visit": (2, 5),
    "group_rate": 2.0,
}

#: Market-1501's splits exactly: 751 train identities with 12,936 images; 750 test identities
#: with 3,368 queries; 15,913 gallery images including 2,793 distractors; 3,819 junk files.
#: The timelines are drawn with more cameras and detections than needed, then whole camera
#: visits and single detections are dropped at random to hit the counts (see
#: :func:`plan_benchmark`).
MARKET_SCALE = {
    "num_train_ids": 751,
    "num_test_ids": 750,
    "num_distractors": 2793,
    "num_junk": 3819,
    "cams_per_id": (5, 6),
    "frames_per_visit": (3, 8),
    "group_rate": 4.0,
    "num_train_images": 12936,
    "num_queries": 3368,
    "num_gallery_images": 15913,
}

#: Optional exact counts (None: whatever the timeline gives, as with the default sizes).
_TARGETS = ("num_train_images", "num_queries", "num_gallery_images")

_SETTINGS_FILE = "synthetic.json"
_IMAGES_FILE = "synthetic_images.csv"
_IDENTITIES_FILE = "synthetic_identities.json"
_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

# Purposes mixed into the seeds so no two streams coincide, and the two sides of a benchmark.
_PLAN, _SPEC, _BACKGROUND, _PERSON, _NOISE, _PIXELS, _CAMERA, _FIT = range(8)
_TRAIN, _TEST = 0, 1
_TRAIN_GROUPS = 1_000_000  # group ids of the train side start here

ProgressFn = Callable[[str, int, int], None]


@dataclass
class SyntheticImage:
    """One image to write: where it goes, who is in it and how it looks."""

    stream: int  # 0 train side, 1 test side
    index: int  # position within its side; seeds the image's streams
    split: str  # train / query / gallery
    filename: str
    pid: int  # as written: train/test pid, 0 distractor, -1 junk
    detection: Detection
    spec: ImageSpec


def _rng(seed: int, domain: DomainSpec, purpose: int, *indices: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), domain.code, purpose, *(int(i) for i in indices)])


def _check_range(name: str, value, low: int) -> tuple[int, int]:
    lo, hi = (int(v) for v in value)
    if lo < low or hi < lo:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max, got {tuple(value)}")
    return lo, hi


def _settings(domain: DomainSpec, seed: int, num_train_ids: int, num_test_ids: int,
              num_distractors: int, num_junk: int, cams_per_id, frames_per_visit,
              group_rate: float, num_train_images: int | None = None,
              num_queries: int | None = None, num_gallery_images: int | None = None) -> dict:
    if num_train_ids < 0:
        raise ValueError(f"num_train_ids must be >= 0, got {num_train_ids}")
    if num_test_ids < 1:
        raise ValueError(f"num_test_ids must be >= 1, got {num_test_ids}")
    if num_train_ids + num_test_ids > 9999:
        raise ValueError("num_train_ids + num_test_ids must be <= 9999 (4-digit Market pids), "
                         f"got {num_train_ids + num_test_ids}")
    if num_distractors < 0 or num_junk < 0:
        raise ValueError(f"num_distractors and num_junk must be >= 0, got {num_distractors}, "
                         f"{num_junk}")
    cams = _check_range("cams_per_id", cams_per_id, 2)
    frames = _check_range("frames_per_visit", frames_per_visit, 2)
    if group_rate <= 0:
        raise ValueError(f"group_rate must be > 0 groups per minute, got {group_rate}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    settings = {
        "version": VERSION, "domain": domain.name, "seed": int(seed),
        "num_train_ids": int(num_train_ids), "num_test_ids": int(num_test_ids),
        "num_distractors": int(num_distractors), "num_junk": int(num_junk),
        "cams_per_id": list(cams), "frames_per_visit": list(frames),
        "group_rate": float(group_rate),
    }
    # Exact counts are written only when asked for, so benchmarks made without them keep
    # their settings (and a folder made earlier is still recognised).
    targets = {"num_train_images": num_train_images, "num_queries": num_queries,
               "num_gallery_images": num_gallery_images}
    for name, value in targets.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        settings[name] = int(value)
    if num_gallery_images is not None and num_gallery_images < num_distractors:
        raise ValueError(f"num_gallery_images ({num_gallery_images}) includes the distractors "
                         f"and cannot be below num_distractors ({num_distractors})")
    return settings


def _distractor_counts(rng: np.random.Generator, total: int) -> list[int]:
    """Images per distractor person (1-3 each, one camera), summing to ``total``."""
    counts: list[int] = []
    left = total
    while left > 0:
        c = min(left, int(rng.integers(1, 4)))
        counts.append(c)
        left -= c
    return counts


def _choose_queries(images: dict[tuple[int, int], list[int]], specs: list[ImageSpec],
                    rng: np.random.Generator) -> set[int]:
    """One detection per (test person, camera), for people seen by two or more cameras.

    Well-framed crops are preferred (Market's queries were picked by hand); occluded ones
    stay eligible so that occluded queries exist.
    """
    cams_of: dict[int, int] = Counter(person for person, _ in images)
    chosen = set()
    for (person, _cam), idx in sorted(images.items()):
        if cams_of[person] < 2:
            continue
        good = [i for i in idx if specs[i].truncation == "none"] or idx
        chosen.add(good[int(rng.integers(len(good)))])
    return chosen


def _market_name(pid: int, d: Detection) -> str:
    if d.frame > 999_999:
        raise ValueError(f"frame {d.frame} of camera {d.cam + 1} session {d.session} does not "
                         "fit Market's 6 digits: raise group_rate or use fewer identities")
    pid_text = "-1" if pid == -1 else f"{pid:04d}"
    return f"{pid_text}_c{d.cam + 1}s{d.session}_{d.frame:06d}_{d.index_in_frame:02d}.jpg"


def _query_count(detections: list[Detection]) -> int:
    """Queries the test side will give: one per camera of every test person seen by two or more."""
    cams: dict[int, set[int]] = defaultdict(set)
    for d in detections:
        if d.kind == "test":
            cams[d.person].add(d.cam)
    return sum(len(c) for c in cams.values() if len(c) >= 2)


def _fit_test_side(detections: list[Detection], settings: dict,
                   rng: np.random.Generator) -> list[Detection]:
    """Drop camera visits, then detections, of test people to hit the asked-for counts."""
    queries = _query_count(detections)
    wanted = settings.get("num_queries")
    if wanted is not None:
        if queries < wanted:
            raise ValueError(f"the timeline gives {queries} queries, fewer than num_queries="
                             f"{wanted}: raise cams_per_id or num_test_ids")
        detections = trim_visits(detections, "test", queries - wanted, rng)
        queries = wanted
    gallery = settings.get("num_gallery_images")
    if gallery is not None:
        have = sum(d.kind == "test" for d in detections)
        need = gallery - settings["num_distractors"] + queries  # test people's images
        if have < need:
            raise ValueError(f"the timeline gives {have - queries + settings['num_distractors']} "
                             f"gallery images, fewer than num_gallery_images={gallery}: raise "
                             "frames_per_visit or cams_per_id")
        detections = trim_detections(detections, "test", have - need, rng)
    return detections


def _fit_train_side(detections: list[Detection], settings: dict,
                    rng: np.random.Generator) -> list[Detection]:
    wanted = settings.get("num_train_images")
    if wanted is None:
        return detections
    if len(detections) < wanted:
        raise ValueError(f"the timeline gives {len(detections)} train images, fewer than "
                         f"num_train_images={wanted}: raise frames_per_visit or cams_per_id")
    return trim_detections(detections, "train", len(detections) - wanted, rng)


def _detection_specs(seed: int, domain: DomainSpec, stream: int, detections: list[Detection],
                     cam_phase: np.ndarray) -> list[ImageSpec]:
    return [sample_image_spec(_rng(seed, domain, _SPEC, stream, i), domain.cameras[d.cam],
                              float(cam_phase[d.cam]), d.view, d.time)
            for i, d in enumerate(detections)]


def plan_benchmark(settings: dict) -> tuple[list[Person], dict[int, tuple[str, int]],
                                            list[SyntheticImage], dict]:
    """Decide everything but the pixels: people, timelines, file names and splits.

    The test side (test identities, distractors, junk) and the train side are drawn from
    separate streams, each on its own timeline through the same cameras; the session cuts
    come from the test side. So the query and gallery files depend only on the test-side
    settings: a test split is the same whatever the size of the train split (or without one).

    Parameters
    ----------
    settings : dict
        As written to ``synthetic.json`` (see :func:`generate` for the fields).

    Returns
    -------
    persons : list of Person
        Attributes of every person: train, test, then distractor people.
    roles : dict
        Person index -> (kind, pid as written).
    images : list of SyntheticImage
        Test side (detections, then junk) first, then train.
    extra : dict
        Session starts per camera and transit times, for the metadata.
    """
    domain = get_domain(settings["domain"])
    seed = settings["seed"]
    n_train, n_test = settings["num_train_ids"], settings["num_test_ids"]
    cams = tuple(settings["cams_per_id"])
    frames = tuple(settings["frames_per_visit"])
    rate = settings["group_rate"]
    cam_phase = _rng(seed, domain, _CAMERA).uniform(0, 2 * np.pi, domain.num_cameras)

    # Test side: test identities (pids 1..n_test in random order) and distractor people.
    rng = _rng(seed, domain, _PLAN, _TEST)
    test_pids = rng.permutation(n_test) + 1
    counts = _distractor_counts(rng, settings["num_distractors"])
    roles: dict[int, tuple[str, int]] = {}
    persons: list[Person] = [sample_person(_rng(seed, domain, _PERSON, _TRAIN, i), domain.palette)
                             for i in range(n_train)]
    plans = []
    for j in range(n_test + len(counts)):
        index = n_train + j
        persons.append(sample_person(_rng(seed, domain, _PERSON, _TEST, j), domain.palette))
        if j < n_test:
            roles[index] = ("test", int(test_pids[j]))
            plans.append(WalkerPlan(index, "test", cams, frames))
        else:
            c = counts[j - n_test]
            roles[index] = ("distractor", 0)
            plans.append(WalkerPlan(index, "distractor", (1, 1), (c, c)))
    test_dets = build_timeline(domain, plans, rng, rate)
    test_dets = _fit_test_side(test_dets, settings, _rng(seed, domain, _FIT, _TEST))
    starts = cut_sessions(test_dets, domain, rng)
    apply_sessions(test_dets, starts)
    in_frame: dict[tuple[int, int, int], int] = {}
    number_in_frame(test_dets, in_frame)
    specs = _detection_specs(seed, domain, _TEST, test_dets, cam_phase)
    by_person_cam: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, d in enumerate(test_dets):
        if d.kind == "test":
            by_person_cam[d.person, d.cam].append(i)
    queries = _choose_queries(by_person_cam, specs, rng)
    images = []
    for i, d in enumerate(test_dets):
        pid = roles[d.person][1]
        split = "query" if i in queries else "gallery"
        images.append(SyntheticImage(_TEST, i, split, _market_name(pid, d), pid, d, specs[i]))

    # Junk: bad crops taken at the frame of a real test-side detection, so they never change
    # a session's largest frame number; numbered after the detections of that frame.
    junk_dets = []
    for _ in range(settings["num_junk"]):
        anchor = test_dets[int(rng.integers(len(test_dets)))]
        junk_dets.append(Detection(person=anchor.person, kind="junk", group=anchor.group,
                                   cam=anchor.cam, global_frame=anchor.global_frame,
                                   view=anchor.view, visit=anchor.visit))
    apply_sessions(junk_dets, starts)
    number_in_frame(junk_dets, in_frame)
    for j, d in enumerate(junk_dets):
        index = len(test_dets) + j
        kind = JUNK_KINDS[int(rng.integers(len(JUNK_KINDS)))]
        spec = sample_image_spec(_rng(seed, domain, _SPEC, _TEST, index), domain.cameras[d.cam],
                                 float(cam_phase[d.cam]), d.view, d.time, junk=kind)
        images.append(SyntheticImage(_TEST, index, "gallery", _market_name(-1, d), -1, d, spec))

    # Train side: its own stream and timeline, placed in the test side's sessions.
    if n_train:
        rng = _rng(seed, domain, _PLAN, _TRAIN)
        train_pids = rng.permutation(n_train) + n_test + 1
        for i in range(n_train):
            roles[i] = ("train", int(train_pids[i]))
        plans = [WalkerPlan(i, "train", cams, frames) for i in range(n_train)]
        train_dets = build_timeline(domain, plans, rng, rate, first_group=_TRAIN_GROUPS)
        train_dets = _fit_train_side(train_dets, settings, _rng(seed, domain, _FIT, _TRAIN))
        apply_sessions(train_dets, starts)
        number_in_frame(train_dets, in_frame)
        specs = _detection_specs(seed, domain, _TRAIN, train_dets, cam_phase)
        for i, d in enumerate(train_dets):
            pid = roles[d.person][1]
            images.append(SyntheticImage(_TRAIN, i, "train", _market_name(pid, d), pid, d,
                                         specs[i]))

    extra = {
        "session_starts": {f"c{c + 1}": [s / FPS for s in v] for c, v in starts.items()},
        "transit_seconds": {f"c{a + 1}-c{b + 1}": round(t, 1)
                            for (a, b), t in sorted(transit_times(domain).items()) if a < b},
    }
    return persons, roles, images, extra


class _Renderer:
    """Holds a domain's per-camera backgrounds and noise bank; renders images by index."""

    def __init__(self, settings: dict, persons: list[Person]):
        self.domain = get_domain(settings["domain"])
        self.seed = settings["seed"]
        self.persons = persons
        self.backgrounds = [make_background(self.domain, c, _rng(self.seed, self.domain, _BACKGROUND, c))
                            for c in range(self.domain.num_cameras)]
        self.noise = make_noise_bank(_rng(self.seed, self.domain, _NOISE))

    def __call__(self, image: SyntheticImage) -> tuple[bytes, dict]:
        d = image.detection
        crop, info = render_crop(image.spec, self.persons[d.person], self.domain,
                                 self.backgrounds[d.cam], self.noise,
                                 _rng(self.seed, self.domain, _PIXELS, image.stream, image.index))
        return encode_jpeg(crop, image.spec.quality), info


_WORKER: _Renderer | None = None


def _worker_init(settings: dict, persons: list[Person], parent_pid: int) -> None:
    global _WORKER
    from engine.leftovers import exit_with_parent

    exit_with_parent(parent_pid)  # a killed generator leaves no renderer running
    _WORKER = _Renderer(settings, persons)


def _worker_render(batch: list[SyntheticImage]) -> list[tuple[bytes, dict]]:
    assert _WORKER is not None
    return [_WORKER(image) for image in batch]


def _render_all(settings: dict, persons: list[Person], images: list[SyntheticImage],
                out_dir: str, workers: int, progress: ProgressFn | None) -> list[dict]:
    """Render and write every image; returns the render info of each, in order."""
    total = len(images)
    infos: list[dict] = [{}] * total
    step = 256

    def write(start: int, results) -> None:
        for k, (data, info) in enumerate(results):
            image = images[start + k]
            with open(os.path.join(out_dir, _FOLDERS[image.split], image.filename), "wb") as fh:
                fh.write(data)
            infos[start + k] = info

    batches = [(s, images[s:s + step]) for s in range(0, total, step)]
    if progress:
        progress("rendering", 0, total)  # the count shows (and is timed) from the start
    if workers <= 1:
        render = _Renderer(settings, persons)
        for start, batch in batches:
            write(start, [render(im) for im in batch])
            if progress:
                progress("rendering", start + len(batch), total)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # Spawned, not forked: callers such as the viewer run threads, which fork copies
        # in whatever state they happen to be.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_worker_init,
                                 initargs=(settings, persons, os.getpid())) as pool:
            done = 0
            results_iter = pool.map(_worker_render, [b for _, b in batches])
            for (start, batch), results in zip(batches, results_iter, strict=True):
                write(start, results)
                done += len(batch)
                if progress:
                    progress("rendering", done, total)
    return infos


def _images_csv(images: list[SyntheticImage], infos: list[dict], roles) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["file", "split", "pid", "person", "kind", "group", "cam", "session", "frame",
                "index_in_frame", "time", "view", "truncation", "occluder", "occluded",
                "low_res", "junk", "body_box", "occluder_box"])
    for im, info in zip(images, infos, strict=True):
        d, s = im.detection, im.spec
        kind = "junk" if im.pid == -1 else roles[d.person][0]
        box = info.get("occluder_box")
        w.writerow([f"{_FOLDERS[im.split]}/{im.filename}", im.split, im.pid, d.person, kind,
                    d.group, d.cam, d.session, d.frame, d.index_in_frame, f"{d.time:.2f}",
                    s.view, s.truncation, s.occluder, info.get("occluded", 0.0),
                    round(s.low_res, 3), s.junk,
                    " ".join(str(v) for v in info.get("body_box", ())),
                    "" if box is None else " ".join(str(v) for v in box)])
    return buf.getvalue()


def _counts(images: list[SyntheticImage], num_cameras: int) -> dict:
    out: dict = {}
    for split in ("train", "query", "gallery"):
        items = [im for im in images if im.split == split]
        out[split] = {
            "images": len(items),
            "ids": len({im.pid for im in items if im.pid > 0}),
            "distractors": sum(im.pid == 0 for im in items),
            "junk": sum(im.pid == -1 for im in items),
            "per_camera": [sum(im.detection.cam == c for im in items) for c in range(num_cameras)],
        }
    return out


def read_settings(root: str | os.PathLike) -> dict | None:
    """The settings a synthetic benchmark at ``root`` was made with, or None if there is none."""
    path = os.path.join(os.fspath(root), _SETTINGS_FILE)
    if not os.path.isfile(path):
        return None
    try:
        settings = read_json_object(path).get("settings")
    except (OSError, ValueError):
        return None
    return settings if isinstance(settings, dict) else None


def generate(root: str | os.PathLike, domain: str = "A", seed: int = 0,
             num_train_ids: int = DEFAULT_SIZES["num_train_ids"],
             num_test_ids: int = DEFAULT_SIZES["num_test_ids"],
             num_distractors: int = DEFAULT_SIZES["num_distractors"],
             num_junk: int = DEFAULT_SIZES["num_junk"],
             cams_per_id: tuple[int, int] = DEFAULT_SIZES["cams_per_id"],
             frames_per_visit: tuple[int, int] = DEFAULT_SIZES["frames_per_visit"],
             group_rate: float = DEFAULT_SIZES["group_rate"],
             num_train_images: int | None = None, num_queries: int | None = None,
             num_gallery_images: int | None = None, overwrite: bool = False, workers: int = 1,
             progress: ProgressFn | None = None):
    """Write a synthetic benchmark in the Market-1501 layout and load it.

    Parameters
    ----------
    root : path
        Output folder. Built beside it and moved into place when complete, so it is never
        left half-written. If it already holds a benchmark made with the same settings it is
        loaded as is; different settings, or a folder that is not a synthetic benchmark,
        raise :class:`FileExistsError` unless ``overwrite`` is set (a foreign folder is
        never deleted).
    domain : {"A", "B"}
        A: six outdoor cameras, bright palette. B: five cameras, darker clothes, stronger
        colour casts, more crowding.
    seed : int
        Seeds every random stream; same arguments give byte-identical files.
    num_train_ids, num_test_ids : int
        Identities in ``bounding_box_train`` and in the test split (disjoint).
    num_distractors : int
        Gallery images of people seen once (pid ``0000``), never queries.
    num_junk : int
        Bad crops (pid ``-1``) in ``bounding_box_test``; the loader drops them.
    cams_per_id : (int, int)
        Inclusive range of cameras an identity walks through (min >= 2).
    frames_per_visit : (int, int)
        Inclusive range of detections per camera visit (min >= 2, so every query keeps a
        same-camera companion and a cross-camera match in the gallery).
    group_rate : float
        Groups arriving per minute (Poisson) on each side, test (test identities and
        distractors) and train; sets how crowded the timelines are, hence how many probes
        co-occur within TLift's window.
    num_train_images, num_queries, num_gallery_images : int, optional
        Exact sizes of the train split, the query split and the gallery (distractors included,
        junk excluded). The timelines are drawn as usual, then random whole camera visits of
        test people (for queries) and single detections (never fewer than two per visit) are
        dropped to reach them; :class:`ValueError` if the timelines hold too few (raise
        ``cams_per_id`` or ``frames_per_visit``). ``MARKET_SCALE`` sets Market-1501's.
    overwrite : bool
        Replace an existing synthetic benchmark at ``root``.
    workers : int
        Rendering processes; the files do not depend on it.
    progress : callable, optional
        ``progress(stage, done, total)``, called during rendering.

    Returns
    -------
    Dataset
        ``engine.data.load_dataset(root, name="market1501")``.
    """
    from engine.data import load_dataset

    dom = get_domain(domain)
    settings = _settings(dom, seed, num_train_ids, num_test_ids, num_distractors, num_junk,
                         cams_per_id, frames_per_visit, group_rate, num_train_images,
                         num_queries, num_gallery_images)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root = os.path.abspath(os.fspath(root))
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        existing = read_settings(root)
        if existing is None:
            raise FileExistsError(f"{root} exists and is not a synthetic benchmark folder; "
                                  "choose an empty or new folder")
        if existing == settings and not overwrite:
            return load_dataset(root, name="market1501")
        if not overwrite:
            raise FileExistsError(f"{root} holds a synthetic benchmark made with other settings "
                                  f"({existing}); pass overwrite=True (--overwrite) to replace it")

    persons, roles, images, extra = plan_benchmark(settings)
    parent = os.path.dirname(root)
    os.makedirs(parent, exist_ok=True)
    # os.mkdir (not tempfile.mkdtemp, which makes it private) so the finished folder gets
    # the usual permissions.
    # The name carries our process id: a later run removes it if this one is killed.
    remove_stale_temporaries(parent)
    tmp = os.path.join(parent, f".{os.path.basename(root)}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    os.mkdir(tmp)
    try:
        for sub in _FOLDERS.values():
            os.makedirs(os.path.join(tmp, sub))
        infos = _render_all(settings, persons, images, tmp, workers, progress)
        with open(os.path.join(tmp, _IMAGES_FILE), "w", encoding="utf-8") as fh:
            fh.write(_images_csv(images, infos, roles))
        identities = [{"person": i, "kind": roles[i][0], "pid": roles[i][1],
                       **person_to_dict(p)} for i, p in enumerate(persons)]
        with open(os.path.join(tmp, _IDENTITIES_FILE), "w", encoding="utf-8") as fh:
            json.dump({"palette": _palette_names(dom), "persons": identities}, fh)
        meta = {
            "settings": settings,
            "cameras": dom.num_cameras,
            "fps": FPS,
            "counts": _counts(images, dom.num_cameras),
            "occluded_share": round(float(np.mean([im.spec.occluder != "none"
                                                   for im in images if im.pid != -1])), 4),
            "truncated_share": round(float(np.mean([im.spec.truncation != "none"
                                                    for im in images if im.pid != -1])), 4),
            **extra,
        }
        # Written last: its presence marks a complete benchmark.
        with open(os.path.join(tmp, _SETTINGS_FILE), "w", encoding="utf-8") as fh:
            json.dump(meta, fh, indent=1)
        if os.path.isdir(root):
            # Checked above: empty, or a synthetic benchmark with overwrite set.
            shutil.rmtree(root)
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_dataset(root, name="market1501")


def _palette_names(domain: DomainSpec) -> dict:
    p = domain.palette
    return {field: [name for name, _, _ in getattr(p, field)]
            for field in ("upper", "lower", "accent", "shoes", "hair", "skin")}
