"""The two record types every other module speaks: one image, one dataset."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class Sample(NamedTuple):
    """One image of a person.

    Attributes
    ----------
    path : str
        Absolute path of the image file.
    pid : int
        Identity. Train identities are relabelled ``0..N-1`` by the loader; in query and
        gallery the original number is kept (``0`` marks Market-style distractors).
    cam : int
        Camera index, 0-based.
    time : float or None
        Capture time in seconds on the camera's own clock, ``None`` when the layout has none.
    """

    path: str
    pid: int
    cam: int
    time: float | None = None


@dataclass
class Dataset:
    """A re-id dataset split into train, query and gallery lists of :class:`Sample`.

    ``skipped`` lists ``(path, reason)`` of images that were found but could not be read,
    so callers can report them without failing.
    """

    name: str
    root: str
    train: list[Sample] = field(default_factory=list)
    query: list[Sample] = field(default_factory=list)
    gallery: list[Sample] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def camera_base(self) -> int:
        """What to add to a 0-based camera index to get the dataset's own camera number: 1 for
        the layouts that name cameras ``c1, c2, ...`` in file names, 0 for a CSV manifest, whose
        ``camera`` column is 0-based. The viewer shows ``c<number>`` and exports the number."""
        return 0 if self.name == "csv" else 1

    def camera_name(self, cam: int | None) -> str:
        """The dataset's own name of 0-based camera ``cam`` (``c1`` for Market's first camera)."""
        return "" if cam is None else f"c{int(cam) + self.camera_base}"

    @property
    def num_train_pids(self) -> int:
        return len({s.pid for s in self.train})

    @property
    def has_times(self) -> bool:
        """True when every query and gallery image carries a timestamp (TLift needs them)."""
        items = self.query + self.gallery
        return bool(items) and all(s.time is not None for s in items)

    def summary(self) -> str:
        """A small table of images, identities and cameras per split."""
        lines = [f"dataset {self.name} at {self.root}", "split      images   ids  cams"]
        for split in ("train", "query", "gallery"):
            items = getattr(self, split)
            lines.append(
                f"{split:<8} {len(items):>8} {len({s.pid for s in items}):>5} "
                f"{len({s.cam for s in items}):>5}"
            )
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} unreadable image(s)")
        return "\n".join(lines)
