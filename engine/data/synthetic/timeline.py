"""When and where each synthetic person is seen: arrivals, groups, paths and sessions.

Groups of walkers (often 2-4 people walking together) arrive at a Poisson rate, enter the
camera network at a random camera and walk a path without revisits along its links, taking
``distance / walking speed`` (times a per-group pace) between cameras. In every camera each
walker leaves a short burst of detections a few frames apart. Group members share path and
pace and stay within a couple of seconds of one another, which is the co-occurrence TLift
exploits: probes seen together in one camera have their true matches close in time in another.

Frame numbers follow Market-1501: 25 fps, and every camera's recording is cut into 2-3
sessions whose frame counters restart. A session starts on the frame of the previous session's
last detection, so laying the sessions end to end by their largest frame numbers (docs/arithmetic.md
section 10) gives back exactly the continuous clock the detections were generated on.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from engine.data.synthetic.domains import DomainSpec

__all__ = ["FPS", "WalkerPlan", "Detection", "transit_times", "build_timeline", "cut_sessions",
           "apply_sessions", "number_in_frame", "trim_visits", "trim_detections"]

FPS = 25

_GROUP_SIZES = (1, 2, 3, 4)
_GROUP_PROBS = (0.4, 0.32, 0.17, 0.11)


@dataclass(frozen=True)
class WalkerPlan:
    """What the timeline needs to know about one person before placing them.

    Attributes
    ----------
    person : int
        Index of the person in the generator's person table.
    kind : str
        ``"train"``, ``"test"`` or ``"distractor"``; groups never mix kinds.
    cams : (int, int)
        Inclusive range of the number of cameras the person walks through.
    frames : (int, int)
        Inclusive range of detections per camera visit.
    """

    person: int
    kind: str
    cams: tuple[int, int]
    frames: tuple[int, int]


@dataclass
class Detection:
    """One detection of one person: becomes one image file.

    ``time`` is seconds on the continuous clock (a whole number of frames); ``session``,
    ``frame`` and ``index_in_frame`` are the Market file-name fields, filled in by
    :func:`assign_sessions`.
    """

    person: int
    kind: str
    group: int
    cam: int
    global_frame: int
    view: str
    visit: int
    session: int = 0
    frame: int = 0
    index_in_frame: int = 0

    @property
    def time(self) -> float:
        return self.global_frame / FPS


def transit_times(domain: DomainSpec) -> dict[tuple[int, int], float]:
    """Seconds an average walker needs between linked cameras, both directions."""
    out = {}
    for a, b in domain.edges:
        pa, pb = domain.cameras[a].position, domain.cameras[b].position
        t = math.dist(pa, pb) / domain.walking_speed
        out[(a, b)] = out[(b, a)] = t
    return out


def _neighbours(domain: DomainSpec) -> list[list[int]]:
    nb = [[] for _ in range(domain.num_cameras)]
    for a, b in domain.edges:
        nb[a].append(b)
        nb[b].append(a)
    return nb


def _walk(rng: np.random.Generator, nb: list[list[int]], length: int) -> list[int]:
    """A random path without revisits of ``length`` cameras, or the longest of a few tries."""
    best: list[int] = []
    for _ in range(8):
        path = [int(rng.integers(len(nb)))]
        while len(path) < length:
            options = [c for c in nb[path[-1]] if c not in path]
            if not options:
                break
            path.append(options[int(rng.integers(len(options)))])
        if len(path) > len(best):
            best = path
        if len(best) == length:
            break
    return best


def _view(domain: DomainSpec, cam: int, heading: float) -> str:
    """Viewpoint of a walker with ``heading`` (radians) seen by camera ``cam``."""
    look = math.radians(domain.cameras[cam].look)
    # Angle between the walker's heading and the direction pointing back at the camera.
    rel = (heading - (look + math.pi) + math.pi) % (2 * math.pi) - math.pi
    if abs(rel) < math.radians(55):
        return "front"
    if abs(rel) > math.radians(125):
        return "back"
    return "left" if rel > 0 else "right"


def _heading(domain: DomainSpec, path: list[int], i: int, rng: np.random.Generator) -> float:
    pos = [domain.cameras[c].position for c in path]
    if len(path) == 1:
        return float(rng.uniform(-math.pi, math.pi))
    a = pos[max(0, i - 1)]
    b = pos[min(len(path) - 1, i + 1)]
    return math.atan2(b[1] - a[1], b[0] - a[0])


def _groups(rng: np.random.Generator, plans: list[WalkerPlan]) -> list[list[WalkerPlan]]:
    """Chunk each kind's walkers into small groups, then interleave all groups at random."""
    groups: list[list[WalkerPlan]] = []
    for kind in ("train", "test", "distractor"):
        members = [p for p in plans if p.kind == kind]
        order = rng.permutation(len(members))
        i = 0
        while i < len(members):
            size = int(rng.choice(_GROUP_SIZES, p=_GROUP_PROBS))
            groups.append([members[j] for j in order[i:i + size]])
            i += size
    return [groups[j] for j in rng.permutation(len(groups))]


def build_timeline(domain: DomainSpec, plans: list[WalkerPlan], rng: np.random.Generator,
                   group_rate: float, first_group: int = 0) -> list[Detection]:
    """Place every walker in time and space.

    Parameters
    ----------
    domain : DomainSpec
        Camera network.
    plans : list of WalkerPlan
        One per person to place.
    rng : numpy Generator
        The plan's generator.
    group_rate : float
        Mean arrivals of groups per minute (Poisson).
    first_group : int
        Number given to the first group (keeps group ids of separate timelines apart).

    Returns
    -------
    list of Detection
        Sorted by time, then person; sessions not yet assigned.
    """
    if group_rate <= 0:
        raise ValueError(f"group_rate must be > 0 groups per minute, got {group_rate}")
    nb = _neighbours(domain)
    transit = transit_times(domain)
    detections: list[Detection] = []
    t_arrive = 0.0
    for gid, group in enumerate(_groups(rng, plans), start=first_group):
        t_arrive += float(rng.exponential(60.0 / group_rate))
        lo, hi = group[0].cams
        hi = min(hi, domain.num_cameras)
        path = _walk(rng, nb, int(rng.integers(min(lo, hi), hi + 1)))
        pace = float(rng.uniform(0.85, 1.2))  # the group walks at one pace
        offsets = rng.uniform(-1.5, 1.5, len(group))  # who walks ahead of whom
        t_visit = t_arrive
        for i, cam in enumerate(path):
            dwell = float(rng.uniform(3.0, 9.0))
            base = _heading(domain, path, i, rng)
            for plan, off in zip(group, offsets, strict=True):
                view = _view(domain, cam, base + float(rng.normal(0.0, math.radians(30))))
                k = int(rng.integers(plan.frames[0], plan.frames[1] + 1))
                f = int(round((t_visit + off + rng.uniform(0.0, 0.4 * dwell)) * FPS))
                for _ in range(k):
                    detections.append(Detection(person=plan.person, kind=plan.kind, group=gid,
                                                cam=cam, global_frame=max(f, 1), view=view,
                                                visit=i))
                    f += int(rng.integers(3, 14))
            if i + 1 < len(path):
                leg = transit[(cam, path[i + 1])] * pace * (1.0 + float(rng.normal(0.0, 0.04)))
                t_visit += dwell + leg
    detections.sort(key=lambda d: (d.global_frame, d.person, d.cam))
    return detections


def cut_sessions(anchors: list[Detection], domain: DomainSpec,
                 rng: np.random.Generator) -> dict[int, list[int]]:
    """Choose where each camera's recording sessions start, from the ``anchors``' frames.

    Session ``k + 1`` starts on the global frame of the last anchor of session ``k``; with
    :func:`apply_sessions` that frame is then session ``k``'s largest frame number, so the
    loader's rule (offset = sum of the largest frame numbers of earlier sessions) rebuilds
    the global clock exactly, for the anchors and for anything else placed by time.

    Returns
    -------
    dict
        Camera -> increasing list of the global frames its sessions start after (first 0).
    """
    starts: dict[int, list[int]] = {}
    for cam, spec in enumerate(domain.cameras):
        frames = sorted(d.global_frame for d in anchors if d.cam == cam)
        n = len(frames)
        k = max(1, min(spec.sessions, n))
        if k == 2:
            fracs = [rng.uniform(0.35, 0.65)]
        elif k == 3:
            fracs = sorted([rng.uniform(0.2, 0.42), rng.uniform(0.58, 0.8)])
        else:
            fracs = list(np.sort(rng.uniform(0.1, 0.9, k - 1)))
        # A cut after the i-th anchor starts the next session on that anchor's frame.
        cuts = sorted({frames[min(n - 2, max(0, int(f * n) - 1))] for f in fracs}) if n >= 2 else []
        starts[cam] = [0, *[c for c in cuts if c > 0]]
    return starts


def apply_sessions(detections: list[Detection], starts: dict[int, list[int]]) -> None:
    """Fill in session and frame: session ``k`` holds global frames in ``(S_k, S_k+1]``."""
    for d in detections:
        cam_starts = starts[d.cam]
        k = bisect.bisect_left(cam_starts, d.global_frame) - 1  # last start < global frame
        k = max(k, 0)
        d.session = k + 1
        d.frame = d.global_frame - cam_starts[k]


def number_in_frame(detections: list[Detection], counters: dict[tuple[int, int, int], int]) -> None:
    """Fill in the detection index within its frame (Market's last field), 1-based.

    ``counters`` carries on across calls, so detections numbered later in the same frame
    (junk, then the train split) get the next indices and never change earlier names.
    """
    for d in detections:
        key = (d.cam, d.session, d.frame)
        counters[key] = counters.get(key, 0) + 1
        d.index_in_frame = counters[key]


def trim_visits(detections: list[Detection], kind: str, excess: int,
                rng: np.random.Generator) -> list[Detection]:
    """Drop ``excess`` whole (person, camera) visits of walkers of ``kind``, never leaving a
    person under two cameras; other kinds are kept as they are.

    Used to hit an exact number of queries (one per person and camera). Raises
    :class:`ValueError` when the people's extra cameras cannot cover ``excess``.
    """
    if excess <= 0:
        return detections
    cams_of: dict[int, set[int]] = {}
    for d in detections:
        if d.kind == kind:
            cams_of.setdefault(d.person, set()).add(d.cam)
    visits = sorted((person, cam) for person, cams in cams_of.items() for cam in cams)
    dropped = set()
    for i in rng.permutation(len(visits)):
        person, cam = visits[i]
        if len(cams_of[person]) > 2:
            cams_of[person].discard(cam)
            dropped.add((person, cam))
            if len(dropped) == excess:
                break
    if len(dropped) < excess:
        raise ValueError(f"cannot drop {excess} camera visits while keeping two cameras per "
                         "person: raise cams_per_id or lower the number of queries")
    return [d for d in detections if (d.person, d.cam) not in dropped]


def trim_detections(detections: list[Detection], kind: str, excess: int,
                    rng: np.random.Generator) -> list[Detection]:
    """Drop ``excess`` single detections of walkers of ``kind``, keeping at least two per
    (person, camera) visit; other kinds are kept as they are.

    Used to hit an exact number of images. Raises :class:`ValueError` when the visits hold
    too few spare detections.
    """
    if excess <= 0:
        return detections
    left: dict[tuple[int, int], int] = {}
    eligible = [i for i, d in enumerate(detections) if d.kind == kind]
    for i in eligible:
        key = (detections[i].person, detections[i].cam)
        left[key] = left.get(key, 0) + 1
    dropped = set()
    for j in rng.permutation(len(eligible)):
        i = eligible[j]
        key = (detections[i].person, detections[i].cam)
        if left[key] > 2:
            left[key] -= 1
            dropped.add(int(i))
            if len(dropped) == excess:
                break
    if len(dropped) < excess:
        raise ValueError(f"cannot drop {excess} detections while keeping two per camera visit: "
                         "raise frames_per_visit or lower the number of images")
    return [d for i, d in enumerate(detections) if i not in dropped]
