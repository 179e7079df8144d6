"""Small helpers shared by the engine: device choice, seeding, atomic writes.

torch is imported inside the helpers that need it: the atomic writes and the cache folder
serve a warm viewer launch, which must not pay the seconds of importing torch.
"""
from __future__ import annotations

import contextlib
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto``/``cpu``/``cuda[:i]`` into a device; asking for absent CUDA is an error."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError(
                "CUDA was asked for (--device cuda) but no CUDA device is available; "
                "use --device cpu or --device auto"
            )
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {name!r}: use auto, cpu or cuda")


def autocast_dtype(device: torch.device) -> torch.dtype:
    """Mixed-precision dtype for a device: fp16 on CUDA, bfloat16 on the CPU."""
    import torch

    return torch.float16 if device.type == "cuda" else torch.bfloat16


#: Torch CPU threads when none are asked for (see :func:`configure_threads`).
DEFAULT_THREADS = 2


def configure_threads(threads: int | None = None) -> int:
    """Set torch's and numba's CPU threads for this process; returns the threads.

    ``threads`` None keeps ``OMP_NUM_THREADS`` when the environment sets it, else uses
    ``min(DEFAULT_THREADS, cores)``. OpenMP reads it once, so call this before torch is
    imported (the CLI and the launcher do, first thing); if torch is already imported the
    thread count is still applied. OpenMP's wait policy is set by importing ``engine``
    (``PASSIVE``: idle threads sleep instead of spinning, which loses most of their speed when
    another process wants a core, ``benchmarks/bench_threads.py``).
    """
    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else min(DEFAULT_THREADS, os.cpu_count() or 1)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    numba = sys.modules.get("numba")
    if numba is None:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)  # the size of its pool, read at import
    else:
        # Its pool is sized already: a changed NUMBA_NUM_THREADS would make its next
        # compilation fail ("cannot set NUMBA_NUM_THREADS ... once the threads have been
        # launched"), so only the threads in use change.
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    return threads


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one number."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed NumPy and ``random`` from torch's per-worker seed."""
    import torch

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only on success.

    A failure (or interrupt) inside the block removes the temporary file, so ``target`` is
    either its old self or the complete new file, never a partial one.
    """
    target = Path(target)
    tmp_path = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp",
                                   dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        # mkstemp makes the file private (0600); give it the usual mode of a new file
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, target)
    except BaseException as exc:
        if tmp_path is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp_path.unlink()
        if isinstance(exc, OSError) and (exc.filename is None or tmp_path is None
                                         or os.fspath(exc.filename) == os.fspath(tmp_path)):
            # Name the file the user asked for (a full disk, a read-only folder), not our temporary.
            raise OSError(exc.errno, f"cannot write {target}: {exc.strerror or exc}") from exc
        raise


def current_umask() -> int:
    """The process's file mode creation mask (reading it means setting it, so it is set back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def default_cache_dir() -> Path:
    """Where feature maps and score blocks are cached (``REID_CACHE_DIR`` overrides)."""
    env = os.environ.get("REID_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reid-inspector"
