"""Command line: ``python -m engine {synth, train, evaluate, extract, export, sweep, info}``.

Each subcommand lives in ``engine/cli/<name>.py`` and exposes ``add_arguments(parser)``
and ``run(args) -> int``; this file only finds them and dispatches.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import cli


def _commands() -> dict[str, object]:
    found = {}
    for info in pkgutil.iter_modules(cli.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{cli.__name__}.{info.name}")
        if hasattr(module, "add_arguments") and hasattr(module, "run"):
            found[info.name] = module
    return found


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="python -m engine",
        description="Train and run QAConv person re-identification with re-ranking and TLift.")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands = _commands()
    for name, module in sorted(commands.items()):
        doc = (module.__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else None,
                           description=(module.__doc__ or "").strip() or None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(p)
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 2
    from .utils import configure_threads

    try:
        configure_threads(getattr(args, "threads", None))  # before any subcommand imports torch
        return int(commands[args.command].run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        # Bad input: say what is wrong without a traceback (use -v for one).
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
