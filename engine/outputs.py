"""Every file the tool writes for the user goes through here: checked before any work, written
atomically, never over one of the run's inputs.

The rules (the same for the CLI's ``--out``, ``--csv`` and ``--plots``, ``run_viewer.py
--screenshot`` and the viewer's CSV and PNG exports):

- an empty name, a folder, a symbolic link, or anything that is not a regular file (a device such
  as ``/dev/full``, a FIFO, a socket, ``/dev/stdout``) is refused, never replaced;
- a file the run reads is refused, even with ``force``: the checkpoint and its JSON sidecar, a
  dataset image or list file (compared by device and inode, so another name or a hard link of an
  input is caught), and any existing file inside the dataset folder or the cache folder (the path
  resolved, so a link to the folder does not hide it);
- an existing regular file is replaced only with ``force`` (``--force`` on the command line, a
  confirmation in the viewer);
- the folder must exist and be writable, so a run does not compute for minutes and then fail;
- a folder of outputs (``--plots``) that is, or is inside, the dataset, cache or checkpoint
  folder is refused unless ``force``;
- the file appears complete or not at all (a temporary beside it, renamed over it at the end); a
  set of files is written into a temporary folder first and moved in only when all were written;
- temporaries left in that folder by killed runs (``.NAME.PID-XXXX.tmp``) are removed first.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.leftovers import remove_stale_temporaries
from engine.utils import atomic_path, current_umask, default_cache_dir

__all__ = ["OutputRefused", "RunInputs", "check_output_folder", "check_output_path", "run_inputs",
           "session_inputs", "write_output", "write_output_bytes", "write_output_folder"]


class OutputRefused(ValueError):
    """The path named for an output cannot or must not be written."""


@dataclass(frozen=True)
class RunInputs:
    """What a run reads, so that no output replaces it.

    ``files`` are never replaced; nothing existing inside ``folders`` (the dataset and cache
    folders) is replaced; a folder of outputs inside ``folders`` or ``checkpoint_folder`` needs
    ``force``.
    """

    files: tuple[str, ...] = ()
    folders: tuple[tuple[str, str], ...] = ()   # (what, folder), e.g. ("dataset", "/data/market")
    checkpoint_folder: str | None = None

    @classmethod
    def of(cls, inputs: RunInputs | Iterable[str | os.PathLike]) -> RunInputs:
        if isinstance(inputs, RunInputs):
            return inputs
        return cls(files=tuple(os.fspath(p) for p in inputs))


def run_inputs(checkpoint: str | os.PathLike | None = None, dataset=None, *,
               data: str | os.PathLike | None = None,
               cache_dir: str | os.PathLike | None = None) -> RunInputs:
    """The inputs of a run on ``checkpoint`` and ``dataset`` (an :class:`engine.data.Dataset`) or,
    before the dataset is loaded, the dataset folder or manifest ``data``; ``cache_dir`` None is
    the default cache folder."""
    files: list[str] = []
    folders: list[tuple[str, str]] = []
    ckpt_folder = None
    if checkpoint is not None:
        files += [os.fspath(checkpoint), os.fspath(Path(checkpoint).with_suffix(".json"))]
        ckpt_folder = os.path.dirname(os.path.abspath(checkpoint))
    if dataset is not None:
        files += [s.path for s in dataset.train + dataset.query + dataset.gallery]
        data = dataset.root
    if data is not None:
        root = os.path.abspath(data)
        if os.path.isfile(root):  # a manifest given as the dataset itself
            files.append(root)
            root = os.path.dirname(root)
        folders.append(("dataset", root))
        try:
            with os.scandir(root) as entries:
                files += [e.path for e in entries
                          if e.name.lower().endswith((".csv", ".txt", ".json"))]
        except OSError:
            pass
    folders.append(("cache", os.fspath(cache_dir or default_cache_dir())))
    return RunInputs(tuple(files), tuple(folders), ckpt_folder)


def session_inputs(session) -> RunInputs:
    """The inputs of an open :class:`engine.session.Session` (none when ``session`` is None)."""
    if session is None:
        return RunInputs()
    return run_inputs(session.checkpoint, session.dataset, cache_dir=session.cache_dir)


def _resolved(path: str | os.PathLike) -> Path:
    """``path`` with its folder's links resolved (the last component kept as it is)."""
    p = Path(os.path.abspath(path))
    return p.parent.resolve() / p.name


def _inside(path: Path, folder: str) -> bool:
    return path.is_relative_to(Path(folder).resolve())


def _same_file(st: os.stat_result, candidates: Iterable[str]) -> str | None:
    for c in candidates:
        try:
            other = os.stat(c)
        except OSError:
            continue
        if (other.st_dev, other.st_ino) == (st.st_dev, st.st_ino):
            return c
    return None


def _writable_folder(folder: Path, target: Path, flag: str) -> None:
    if not folder.is_dir():
        raise OutputRefused(f"cannot write {target} ({flag}): folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputRefused(f"cannot write {target} ({flag}): folder {folder} is read-only or "
                            "not writable by this user")


def check_output_path(path: str | os.PathLike | None, *, force: bool = False,
                      inputs: RunInputs | Iterable[str | os.PathLike] = (),
                      flag: str = "--out") -> Path:
    """Return ``path`` as a Path if writing it follows the module's rules; else raise.

    Parameters
    ----------
    path
        The file to write.
    force
        Whether an existing regular file may be replaced.
    inputs
        What the run reads (:func:`run_inputs`), or just a list of its files.
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
    inputs = RunInputs.of(inputs)
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
        same = _same_file(st, inputs.files)
        if same is not None:
            raise OutputRefused(f"{target} ({flag}) is one of this run's inputs ({same}); "
                                "refusing to overwrite it: name another file")
        real = _resolved(target)
        for what, folder in inputs.folders:
            if _inside(real, folder):
                raise OutputRefused(f"{target} ({flag}) is inside the {what} folder {folder}, "
                                    "one of this run's inputs; refusing to overwrite it: name "
                                    "another file")
        if not force:
            raise OutputRefused(f"{target} ({flag}) exists; pass --force to replace it")
    _writable_folder(target.absolute().parent, target, flag)
    return target


def write_output(path: str | os.PathLike, write: Callable[[Path], None], *, force: bool = False,
                 inputs: RunInputs | Iterable[str | os.PathLike] = (),
                 flag: str = "--out") -> Path:
    """Check ``path`` (:func:`check_output_path`), then write it atomically: ``write(tmp)`` fills a
    temporary file beside it, renamed over ``path`` only when ``write`` returned.

    Raises
    ------
    OutputRefused
        Before anything is written.
    OSError
        When the file cannot be written; the message names ``path``; no partial file is left.
    """
    target = check_output_path(path, force=force, inputs=inputs, flag=flag)
    remove_stale_temporaries(target.absolute().parent)
    with atomic_path(target) as tmp:
        write(tmp)
    return target


def write_output_bytes(path: str | os.PathLike, data: bytes, **kwargs) -> Path:
    """:func:`write_output` of ``data`` (same keyword arguments)."""
    return write_output(path, lambda tmp: tmp.write_bytes(data), **kwargs)


def _existing_ancestor(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_output_folder(folder: str | os.PathLike | None, names: Iterable[str], *,
                        force: bool = False, inputs: RunInputs | Iterable[str | os.PathLike] = (),
                        flag: str = "--plots") -> Path:
    """Return ``folder`` as a Path if the files ``names`` may be written into it; else raise
    :class:`OutputRefused`. The folder may not exist yet (it is made when written); each file
    follows :func:`check_output_path`."""
    text = "" if folder is None else os.fspath(folder)
    if not text.strip():
        raise OutputRefused(f"{flag} is empty: name the folder to write")
    inputs = RunInputs.of(inputs)
    target = Path(text)
    if target.exists() and not target.is_dir():
        raise OutputRefused(f"{target} ({flag}) is not a folder: name a folder for the files")
    real = Path(os.path.abspath(target)).resolve()
    places = list(inputs.folders)
    if inputs.checkpoint_folder is not None:
        places.append(("checkpoint", inputs.checkpoint_folder))
    for what, place in places:
        if _inside(real, place) and not force:
            raise OutputRefused(f"{target} ({flag}) is inside the {what} folder {place}: its "
                                "files could be mistaken for the run's own; name another folder "
                                "or pass --force")
    if target.exists():
        for name in names:
            check_output_path(target / name, force=force, inputs=inputs, flag=flag)
    else:
        ancestor = _existing_ancestor(real)
        if not ancestor.is_dir():
            raise OutputRefused(f"cannot make {target} ({flag}): {ancestor} is not a folder")
    _writable_folder(_existing_ancestor(real), target, flag)
    return target


def write_output_folder(folder: str | os.PathLike, files: Mapping[str, bytes], *,
                        force: bool = False, inputs: RunInputs | Iterable[str | os.PathLike] = (),
                        flag: str = "--plots") -> list[Path]:
    """Write ``files`` (name -> content) into ``folder`` as one set: all of them or none.

    They are written into a temporary folder first (inside ``folder``, or beside it when it does
    not exist yet) and moved into place only when every one was written, so a full disk leaves the
    folder as it was. Returns the paths written.
    """
    target = Path(os.path.abspath(check_output_folder(folder, files, force=force, inputs=inputs,
                                                      flag=flag)))
    fresh = not target.exists()
    home = target.parent if fresh else target
    home.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(home)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp",
                                    dir=home))
    try:
        for name, data in files.items():
            try:
                (staging / name).write_bytes(data)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot write {target / name} ({flag}): "
                                         f"{exc.strerror or exc}; nothing was written") from exc
        if fresh:
            os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp made it private
            os.rename(staging, target)
        else:
            for name in files:
                os.replace(staging / name, target / name)
            staging.rmdir()
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return [target / name for name in files]
