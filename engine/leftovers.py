"""Temporaries of ours left by a killed run, and worker processes that must not outlive theirs.

Every temporary the engine writes carries the id of the process writing it: ``.NAME.PID-XXXX.tmp``
(:func:`engine.utils.atomic_path`), ``.maps.PID.tmp.npy`` (the feature store) and
``.NAME.PID-XXXX.partial`` (a synthetic benchmark being written). A ``kill -9`` leaves them
behind; the next run that writes into the same folder removes those whose process is gone. A
temporary whose process is alive (another run writing there now) is never touched, nor is any
file whose name does not follow these patterns.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import threading
from pathlib import Path

__all__ = ["remove_stale_temporaries", "exit_with_parent"]

log = logging.getLogger(__name__)

_OURS = (
    re.compile(r"^\..+\.(?P<pid>\d+)-[A-Za-z0-9_]+\.(?:tmp|partial)$"),
    re.compile(r"^\.maps\.(?P<pid>\d+)\.tmp\.npy$"),
)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: assume it still writes there
    return True


def _owner(name: str) -> int | None:
    for pattern in _OURS:
        m = pattern.match(name)
        if m:
            return int(m.group("pid"))
    return None


def remove_stale_temporaries(*folders: str | os.PathLike) -> int:
    """Remove our temporaries in ``folders`` (not below) whose process is gone; returns how many.

    A folder that does not exist or cannot be read is passed over silently.
    """
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            pid = _owner(entry.name)
            if pid is None or _alive(pid):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
                removed += 1
            except OSError as exc:
                log.debug("cannot remove stale temporary %s: %s", entry.path, exc)
    if removed:
        log.info("removed %d temporary file(s) left by killed runs in %s", removed,
                 ", ".join(os.fspath(f) for f in folders))
    return removed


def cache_folders(cache_dir: str | os.PathLike) -> list[Path]:
    """The folders of a cache directory where our temporaries are written."""
    root = Path(cache_dir)
    folders = [root, root / "scores", root / "demo", root / "imported"]
    try:
        folders += [p for p in (root / "features").iterdir() if p.is_dir()]
    except OSError:
        pass
    return folders


def exit_with_parent(parent_pid: int, interval: float = 1.0) -> None:
    """Make this (worker) process exit when ``parent_pid`` is gone, even after a ``kill -9``.

    On Linux the kernel sends SIGKILL at once (``PR_SET_PDEATHSIG``); everywhere a daemon thread
    also checks the parent every ``interval`` seconds.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the call above
        os._exit(1)

    def watch() -> None:
        import time

        while True:
            time.sleep(interval)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
