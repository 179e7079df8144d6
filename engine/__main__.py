"""Command line: ``python -m engine {synth, train, evaluate, extract, export, sweep, info, import,
feedback-bench}``.

Each subcommand lives in ``engine/cli/<name>.py`` (``import_.py`` for ``import``, a Python
keyword) and exposes ``add_arguments(parser)`` and ``run(args) -> int``; this file only finds
them and dispatches.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from engine import cli


def _commands() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{cli.__name__}.{info.name}")
        if hasattr(module, "add_arguments") and hasattr(module, "run"):
            # import_.py: "import"; feedback_bench.py: "feedback-bench"
            found[info.name.removesuffix("_").replace("_", "-")] = module
    return found


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Train and run QAConv person re-identification with re-ranking and TLift.")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = _commands()
    for name, module in sorted(commands.items()):
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else None,
                           description=(module.__doc__ or "").strip() or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
        # Also accepted after the subcommand; SUPPRESS keeps the top-level value otherwise.
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error instead of one line")
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    from engine.cli._common import check_numbers
    from engine.utils import configure_threads

    try:
        check_numbers(args)  # every numeric flag, before any work
        configure_threads(getattr(args, "threads", None))  # before any subcommand imports torch
        return int(commands[args.command].run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # Every failure reaches the user as one line naming what is wrong; --debug shows where.
        if args.debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2


def one_line(exc: BaseException) -> str:
    """An exception as the line a user reads: our own messages as they are; an OSError as the
    file it names and the reason; anything else as its type and the first line of its text."""
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return reason if exc.filename is None else f"{exc.filename}: {reason}"
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, ValueError):  # ours; a layout error lists the layouts tried, one a line
        return text
    first = text.splitlines()[0]
    return first if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {first}"


if __name__ == "__main__":
    sys.exit(main())
