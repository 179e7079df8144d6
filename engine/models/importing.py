"""Open checkpoints of other projects by converting them into this tool's format.

:func:`native_checkpoint` is what the viewer and the CLI call with any file a user picks: a
checkpoint of this tool is returned as it is; another project's file is converted once into the
cache and the converted file's path is returned. (The converters of the authors' QAConv,
torchreid and fast-reid files are being added; until then a foreign file is refused.)
"""
from __future__ import annotations

import os
from pathlib import Path

from engine.checkpoint import CheckpointError, read_tensor_file

__all__ = ["native_checkpoint"]


def native_checkpoint(src: str | os.PathLike, cache_dir: str | os.PathLike | None = None, *,
                      format: str | None = None, arch: str | None = None,
                      height: int | None = None, width: int | None = None) -> Path:
    """Path of a checkpoint of this tool holding the model in ``src``.

    ``src`` itself when it is one; otherwise the file converted into ``cache_dir`` (``format``,
    ``arch``, ``height`` and ``width`` override what is inferred from the file).

    Raises
    ------
    CheckpointError
        The file cannot be read or converted; the message says why in one line.
    """
    src = Path(src)
    state = read_tensor_file(src)
    if isinstance(state, dict) and isinstance(state.get("config"), dict) and format in (None, "reid-inspector"):
        return src
    raise CheckpointError(f"{src} is not a checkpoint of this tool, and converting other "
                          "projects' checkpoints is not available yet")
