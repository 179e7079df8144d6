"""Open checkpoints of other projects by converting them into this tool's format.

:func:`native_checkpoint` is what the viewer and the CLI call with any file a user picks: a
checkpoint of this tool is returned as it is; another project's file (the authors' QAConv,
torchreid, fast-reid: :mod:`engine.models.foreign`) is converted once into the cache folder and
the converted file's path is returned. :func:`import_checkpoint` writes such a conversion
where the user asks (``python -m engine import``). A converted file is an ordinary checkpoint of
this tool (settings, weights, JSON sidecar), plus a record of where it came from (``"source"``:
the format, the file's name and content digest) and the conversion's notes, so caches,
sidecars and every command treat it as they treat a model trained here.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.checkpoint import (
    CheckpointError,
    file_digest,
    nonfinite_tensors,
    read_tensor_file,
    save_checkpoint,
    sidecar_path,
)
from engine.leftovers import remove_stale_temporaries
from engine.models.config import ModelConfig
from engine.models.foreign import NeedsInputSize, convert

__all__ = ["ImportReport", "NeedsInputSize", "convert_state", "import_checkpoint", "native_checkpoint"]

OWN_FORMAT = "reid-inspector"


@dataclass
class ImportReport:
    """What an import found and wrote."""

    format: str
    config: ModelConfig
    source: Path
    digest: str
    out: Path
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What a user reads: format, arch, maps or embedding size, input size, preprocessing."""
        cfg = self.config
        if cfg.stores_embeddings:
            output = f"embedding {cfg.embedding_dim}-d (head: {cfg.head}), ranked by cosine"
        else:
            d, h, w = cfg.feature_shape
            output = f"maps {d} x {h} x {w}, ranked by {cfg.method}"
        prep = cfg.preprocessing
        norm = "ImageNet mean/std" if prep.imagenet_norm else "no mean/std"
        return [f"format:        {self.format}",
                f"arch:          {cfg.arch} (stride {cfg.stride})",
                f"output:        {output}",
                f"input:         {cfg.height} x {cfg.width}",
                f"preprocessing: RGB in [0, 1], {norm}",
                *(f"note:          {n}" for n in self.notes),
                f"written:       {self.out}"]


def _is_own(state: Any) -> bool:
    return isinstance(state, Mapping) and isinstance(state.get("config"), dict)


def _read(src: Path) -> Any:
    return read_tensor_file(src)


def convert_state(state: Any, src: str | os.PathLike, format: str | None = None, *,
                  arch: str | None = None, height: int | None = None, width: int | None = None):
    """:func:`engine.models.foreign.convert` of a loaded file, its errors naming ``src``, its
    weights checked for NaN or infinity; returns the ``Converted``."""
    return _convert(state, Path(src), format, arch, height, width)[1]


def _convert(state: Any, src: Path, format: str | None, arch: str | None,
             height: int | None, width: int | None):
    try:
        fmt, converted = convert(state, format, arch=arch, height=height, width=width)
    except CheckpointError as exc:
        if isinstance(exc, NeedsInputSize):
            raise NeedsInputSize(f"{src}: {exc}", exc.candidates) from exc
        raise CheckpointError(f"{src}: {exc}") from exc
    except ValueError as exc:  # settings the converted model cannot have (e.g. an input size)
        raise CheckpointError(f"{src}: {exc}") from exc
    bad = nonfinite_tensors(converted.weights)
    if bad:
        raise CheckpointError(f"{src} holds NaN or infinite weights in {len(bad)} tensor(s): "
                              + ", ".join(bad[:4]) + (" ..." if len(bad) > 4 else ""))
    return fmt, converted


def import_checkpoint(src: str | os.PathLike, out: str | os.PathLike, *, format: str | None = None,
                      arch: str | None = None, height: int | None = None,
                      width: int | None = None) -> ImportReport:
    """Convert another project's checkpoint ``src`` into this tool's checkpoint ``out``.

    ``format`` (``"qaconv"``, ``"torchreid"``, ``"fastreid"``) is detected from the file's keys
    when None; ``arch``, ``height`` and ``width`` override or complete what the file says.
    ``out`` (and its JSON sidecar) is written atomically; the caller checks that it may be
    written (:func:`engine.outputs.check_output_path`).

    Raises
    ------
    NeedsInputSize
        The input size cannot be inferred (``.candidates`` lists those that fit).
    CheckpointError
        The file cannot be read, is of no known format, or has a weight that is missing,
        mis-shaped or has no place in the model; one line names it.
    """
    src = Path(src)
    return _import(_read(src), src, Path(out), format, arch, height, width)


def _import(state: Any, src: Path, out: Path, format: str | None, arch: str | None,
            height: int | None, width: int | None) -> ImportReport:
    if _is_own(state) and format in (None, OWN_FORMAT):
        raise CheckpointError(f"{src} is already a checkpoint of this tool; nothing to import")
    fmt, converted = _convert(state, src, format, arch, height, width)
    digest = file_digest(src)
    save_checkpoint(out, {"config": converted.config.to_dict(), "model": converted.weights,
                          "source": {"format": fmt, "file": src.name, "digest": digest},
                          "import_notes": list(converted.notes)})
    return ImportReport(fmt, converted.config, src, digest, out, list(converted.notes))


def imported_path(cache_dir: str | os.PathLike, digest: str, *, format: str | None,
                  arch: str | None, height: int | None, width: int | None) -> Path:
    """Where :func:`native_checkpoint` keeps the conversion of the file of content ``digest``."""
    parts = [digest] + [f"{k}-{v}" for k, v in (("format", format), ("arch", arch),
                                                 ("h", height), ("w", width)) if v is not None]
    return Path(cache_dir) / "imported" / ("_".join(parts) + ".pt")


def native_checkpoint(src: str | os.PathLike, cache_dir: str | os.PathLike | None = None, *,
                      format: str | None = None, arch: str | None = None,
                      height: int | None = None, width: int | None = None,
                      on_import: Callable[[ImportReport], None] | None = None) -> Path:
    """Path of a checkpoint of this tool holding the model in ``src``.

    ``src`` itself when it is one; otherwise the file converted into ``cache_dir`` (default: the
    tool's cache folder), once per content digest and options (``format``, ``arch``,
    ``height`` and ``width`` override what is inferred from the file). ``on_import(report)``
    is called when a conversion was made now (not when the cache had it), to say what it found.

    Raises
    ------
    NeedsInputSize
        The input size cannot be inferred: ask the user, then call again with it.
    CheckpointError
        The file cannot be read or converted; the message says why in one line.
    """
    from engine.utils import default_cache_dir

    src = Path(src)
    if format not in (None, OWN_FORMAT):
        target = imported_path(cache_dir or default_cache_dir(), file_digest(src), format=format,
                               arch=arch, height=height, width=width)
        if target.is_file() and sidecar_path(target).is_file():
            return target  # converted before (the sidecar is written last)
    state = _read(src)
    if _is_own(state):
        if format in (None, OWN_FORMAT):
            return src
    elif format == OWN_FORMAT:
        raise CheckpointError(f"{src} is not a checkpoint of this tool (no model settings inside)")
    target = imported_path(cache_dir or default_cache_dir(), file_digest(src), format=format,
                           arch=arch, height=height, width=width)
    if target.is_file() and sidecar_path(target).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)  # of conversions killed midway
    report = _import(state, src, target, format, arch, height, width)
    if on_import is not None:
        on_import(report)
    return target
