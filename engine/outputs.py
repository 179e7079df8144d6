"""Where the tool may write a file the user named (exports, CSV tables), checked before any work.

The rules (DESIGN.md "Bad input and faults"):

- an empty name, a folder, a symbolic link, or anything that is not a regular file (a device such
  as ``/dev/full``, a FIFO, a socket, ``/dev/stdout``) is refused, never replaced;
- a file that is one of the run's inputs (the checkpoint and its sidecar, a dataset image, the
  manifest) is refused, even with ``force``;
- an existing regular file is replaced only with ``force`` (``--force`` on the command line, a
  confirmation in the viewer);
- the folder must exist and be writable, so a run does not compute for minutes and then fail.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["OutputRefused", "check_output_path", "run_inputs"]


class OutputRefused(ValueError):
    """The path named for an output cannot or must not be written."""


def _same_file(st: os.stat_result, candidates: Iterable[str | os.PathLike]) -> str | None:
    for c in candidates:
        try:
            other = os.stat(c)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return os.fspath(c)
    return None


def check_output_path(path: str | os.PathLike | None, *, force: bool = False,
                      inputs: Iterable[str | os.PathLike] = (), flag: str = "--out") -> Path:
    """Return ``path`` as a Path if writing it follows the module's rules; else raise.

    Parameters
    ----------
    path
        The file to write.
    force
        Whether an existing regular file may be replaced.
    inputs
        Files the run reads; the output must not be one of them (compared by device and inode,
        so another name or a hard link of an input is caught). Only looked at when ``path``
        exists.
    flag
        How the user named the path (e.g. ``--out``), quoted in the messages.

    Raises
    ------
    OutputRefused
        With one line naming the path (or the flag) and what to do instead.
    """
    text = "" if path is None else os.fspath(path)
    if not text.strip():
        raise OutputRefused(f"{flag} is empty: name the file to write")
    target = Path(text)
    if target.is_symlink():
        raise OutputRefused(f"{target} ({flag}) is a symbolic link; refusing to replace it: name a "
                            "regular file")
    if target.exists():
        st = target.stat()
        if stat.S_ISDIR(st.st_mode):
            raise OutputRefused(f"{target} ({flag}) is a folder: name a file inside it")
        if not stat.S_ISREG(st.st_mode):
            raise OutputRefused(f"{target} ({flag}) is not a regular file (a device, FIFO or "
                                "socket); refusing to write to it: name a regular file")
        same = _same_file(st, inputs)
        if same is not None:
            raise OutputRefused(f"{target} ({flag}) is one of this run's inputs ({same}); "
                                "refusing to overwrite it: name another file")
        if not force:
            raise OutputRefused(f"{target} ({flag}) exists; pass --force to replace it")
    folder = target.absolute().parent
    if not folder.is_dir():
        raise OutputRefused(f"cannot write {target} ({flag}): folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputRefused(f"cannot write {target} ({flag}): folder {folder} is read-only or "
                            "not writable by this user")
    return target


def run_inputs(checkpoint: str | os.PathLike | None, dataset=None) -> list[str]:
    """The files a run reads: the checkpoint and its JSON sidecar, every image of ``dataset``
    (a :class:`engine.data.Dataset`) and the list or manifest files at the top of its folder."""
    files: list[str] = []
    if checkpoint is not None:
        files += [os.fspath(checkpoint), os.fspath(Path(checkpoint).with_suffix(".json"))]
    if dataset is not None:
        files += [s.path for s in dataset.train + dataset.query + dataset.gallery]
        if os.path.isfile(dataset.root):  # a manifest given as the dataset itself
            files.append(dataset.root)
        try:
            with os.scandir(dataset.root) as entries:
                files += [e.path for e in entries
                          if e.name.lower().endswith((".csv", ".txt", ".json"))]
        except OSError:
            pass
    return files
