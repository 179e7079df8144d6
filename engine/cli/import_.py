"""Convert another project's checkpoint (the authors' QAConv, torchreid, fast-reid) into one of this tool's.

The format is detected from the file's keys (--format forces one); the architecture, the maps or
embedding size and, where the file tells it, the input size come from the weights' shapes. The
file is read as data only (weights_only): one that needs pickled code is refused. Every weight
the model uses must be in the file with its shape; what cannot be mapped is refused in one line.
The converted checkpoint works with every command (evaluate, extract, export, the viewer).
"""
from __future__ import annotations

import argparse

FORMATS = ("qaconv", "torchreid", "fastreid")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="the other project's checkpoint file")
    parser.add_argument("--out", required=True, help="checkpoint of this tool to write (model.pt)")
    parser.add_argument("--force", action="store_true", help="replace --out if it exists")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="the file's format (default: detected from its keys)")
    parser.add_argument("--arch", default=None,
                        help="the architecture the file must hold (default: read from its shapes)")
    parser.add_argument("--height", type=int, default=None,
                        help="input height in pixels, when the file does not tell it")
    parser.add_argument("--width", type=int, default=None,
                        help="input width in pixels, when the file does not tell it")


def run(args: argparse.Namespace) -> int:
    from engine.checkpoint import sidecar_path
    from engine.models.importing import import_checkpoint
    from engine.outputs import check_output_path

    for name in ("height", "width"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be a positive number of pixels; got {value}")
    inputs = [args.src]  # another project's file: no sidecar of ours beside it
    check_output_path(args.out, force=args.force, inputs=inputs)  # before the work
    check_output_path(sidecar_path(args.out), force=True, inputs=inputs, flag="--out's sidecar")
    report = import_checkpoint(args.src, args.out, format=args.format, arch=args.arch,
                               height=args.height, width=args.width)
    print("\n".join(report.lines()))
    return 0
