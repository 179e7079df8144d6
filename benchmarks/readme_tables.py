"""Regenerate the result tables of README.md and the docs from the command they name.

The tables live between marker comments,

    <!-- readme_tables: NAME (...) -->
    ...
    <!-- /readme_tables: NAME -->

and everything between the two lines is replaced by what this script renders: no figure in them
is typed by hand, so they cannot drift from what the tool prints. It runs, in this process,

    python -m engine evaluate --data DATA --checkpoint CHECKPOINT --rerank --tlift --plots DIR

takes the stage rows exactly as that command prints them (the same strings, two decimals) and the
true positive rates at FPR 1e-2, 1e-3 and 1e-4 from the ``tpr_at_fpr.csv`` it writes, formatted
as the viewer's plots panel shows them (one decimal, in percent).

Blocks: ``demo-accuracy`` (rank-1/5/10, mAP, mINP per stage), ``demo-tpr`` (TPR at each FPR per
stage), ``demo-command`` (the command, as a user types it for the demo).

Run from the repository root (the defaults are the demo: the data set the viewer draws on its
first launch, drawn here first when absent, and the demo checkpoint):

    python benchmarks/readme_tables.py                 # rewrite the blocks, print the seconds taken
    python benchmarks/readme_tables.py --check         # exit 1 when a block differs, write nothing
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The files holding blocks, relative to the repository root.
FILES = ("README.md", "docs/results.md", "viewer/demo/README.md")
#: The command's flags after ``--data DATA --checkpoint CHECKPOINT``.
FLAGS = ("--rerank", "--tlift")
#: How the command is shown for the demo (``demo-command``); the run uses the same flags.
DEMO_DATA_SHOWN = "~/.cache/reid-inspector/demo/B"
DEMO_CHECKPOINT_SHOWN = "viewer/demo/model.pt"

#: Every block :func:`render_blocks` writes.
BLOCKS = ("demo-accuracy", "demo-tpr", "demo-command")
_BEGIN = re.compile(r"^<!-- readme_tables: ([\w-]+)\b.*-->\s*$")
_END = re.compile(r"^<!-- /readme_tables: ([\w-]+) -->\s*$")


@dataclass
class Results:
    """What one run of the command gave, as printed (rows) and written (tpr)."""

    method: str = ""
    columns: list[str] = field(default_factory=list)          # rank-1 ... mINP
    rows: list[tuple[str, list[str]]] = field(default_factory=list)   # (stage, printed cells)
    tpr: dict[tuple[str, float], float] = field(default_factory=dict)  # (csv method, fpr) -> tpr
    printed: str = ""


def parse_printed(text: str) -> tuple[str, list[str], list[tuple[str, list[str]]]]:
    """``(method, columns, [(stage, cells)])`` of ``evaluate``'s printed rows, cells verbatim."""
    from engine.cli.evaluate import HEADER

    lines = text.splitlines()
    try:
        start = lines.index(HEADER)
    except ValueError:
        raise ValueError("evaluate printed no table of rows") from None
    columns = HEADER.split()[2:]
    method, rows = "", []
    for line in lines[start + 1:]:
        parts = line.split()
        if len(parts) != 2 + len(columns):
            continue
        try:
            [float(p) for p in parts[2:]]
        except ValueError:
            continue
        method = parts[0]
        rows.append((parts[1], parts[2:]))
    if not rows:
        raise ValueError("evaluate printed a header but no row")
    return method, columns, rows


def read_tpr(path: Path) -> dict[tuple[str, float], float]:
    """``tpr_at_fpr.csv`` as ``{(method, fpr): tpr}``."""
    with open(path, newline="", encoding="utf-8") as f:
        return {(row["method"], float(row["fpr"])): float(row["tpr"]) for row in csv.DictReader(f)}


def evaluate_argv(data: str, checkpoint: str, plots: str, *, cache_dir: str | None = None,
                  device: str = "cpu") -> list[str]:
    """The ``python -m engine`` arguments this script runs."""
    argv = ["evaluate", "--data", str(data), "--checkpoint", str(checkpoint), *FLAGS,
            "--plots", str(plots), "--device", device]
    return argv + (["--cache-dir", str(cache_dir)] if cache_dir else [])


def run_command(data: str, checkpoint: str, *, cache_dir: str | None = None,
                device: str = "cpu") -> Results:
    """Run ``python -m engine evaluate`` in this process; its printed rows and written TPRs."""
    from engine.__main__ import main

    with tempfile.TemporaryDirectory(prefix="readme-tables-") as tmp:
        plots = Path(tmp) / "plots"
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(evaluate_argv(data, checkpoint, str(plots), cache_dir=cache_dir,
                                      device=device))
        if code != 0:
            raise SystemExit(f"error: python -m engine evaluate exited with {code}:\n{out.getvalue()}")
        method, columns, rows = parse_printed(out.getvalue())
        return Results(method, columns, rows, read_tpr(plots / "tpr_at_fpr.csv"), out.getvalue())


def csv_method(method: str, stage: str) -> str:
    """The ``method`` column of the plots' CSV files for a printed stage (``+RR`` ->
    ``qaconv+rr``), named as ``engine.postprocess.params.stage_name`` names it."""
    from engine.postprocess.params import stage_name

    return stage_name(method, "+RR" in stage, "TLift" in stage)


def percent(value: float) -> str:
    """A rate as the plots panel's legend shows it (viewer/plots/render.py)."""
    return f"{100 * value:.1f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def render_blocks(results: Results) -> dict[str, str]:
    """Every block's text (without its markers), from one run."""
    accuracy = _table(["stage"] + results.columns,
                      [[f"`{stage}`"] + cells for stage, cells in results.rows])
    fprs = sorted({fpr for _, fpr in results.tpr}, reverse=True)
    tpr = _table(["stage"] + [f"TPR at FPR {fpr:g}" for fpr in fprs],
                 [[f"`{stage}`"] + [percent(results.tpr[(csv_method(results.method, stage), fpr)])
                                    for fpr in fprs] for stage, _ in results.rows])
    command = ("```\npython -m engine evaluate --data " + DEMO_DATA_SHOWN + " --checkpoint "
               + DEMO_CHECKPOINT_SHOWN + " " + " ".join(FLAGS) + " --plots plots/\n```")
    return {"demo-accuracy": accuracy, "demo-tpr": tpr, "demo-command": command}


def rewrite(text: str, blocks: dict[str, str], *, where: str = "text") -> str:
    """``text`` with the body of every marked block replaced by ``blocks[name]``.

    A block without its end marker, a nested or stray marker, or a name ``blocks`` lacks is an
    error naming ``where`` and the line; nothing outside the blocks changes."""
    out: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        begin, end = _BEGIN.match(line), _END.match(line)
        if end:
            raise ValueError(f"{where}:{i + 1}: end of block {end.group(1)} without its start")
        out.append(line)
        i += 1
        if not begin:
            continue
        name = begin.group(1)
        if name not in blocks:
            raise ValueError(f"{where}:{i}: unknown block {name} (known: {', '.join(sorted(blocks))})")
        while i < len(lines) and not _END.match(lines[i]):
            if _BEGIN.match(lines[i]):
                raise ValueError(f"{where}:{i + 1}: block {name} is not closed before the next one")
            i += 1
        if i == len(lines) or _END.match(lines[i]).group(1) != name:
            raise ValueError(f"{where}: block {name} has no end marker <!-- /readme_tables: {name} -->")
        out.append("\n" + blocks[name].strip("\n") + "\n\n")  # blank lines: tables render
        out.append(lines[i])
        i += 1
    return "".join(out)


def ensure_demo_data(cache_dir: str | None) -> Path:
    """The viewer's demo set (``viewer.tasks.demo_root``), drawn as its first launch draws it
    (``python -m engine synth --domain B --seed 0 --train-ids 0``) when absent."""
    from viewer.tasks import demo_root

    root = demo_root(cache_dir)
    if not (root / "query").is_dir():
        from engine.__main__ import main

        print(f"drawing the demo set into {root}", file=sys.stderr)
        if main(["synth", "--domain", "B", "--seed", "0", "--train-ids", "0", "--out", str(root)]):
            raise SystemExit("error: could not draw the demo set")
    return root


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="dataset (default: the demo set, drawn if absent)")
    ap.add_argument("--checkpoint", default=str(ROOT / "viewer" / "demo" / "model.pt"))
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--device", default="cpu", help="cpu (the figures the docs quote) or cuda")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 when a block differs from a fresh run")
    ap.add_argument("files", nargs="*", default=[str(ROOT / f) for f in FILES],
                    help="files whose blocks are rewritten (default: %(default)s)")
    args = ap.parse_args(argv)

    from engine.utils import atomic_write_text

    t0 = time.perf_counter()
    data = args.data or str(ensure_demo_data(args.cache_dir))
    results = run_command(data, args.checkpoint, cache_dir=args.cache_dir, device=args.device)
    seconds = time.perf_counter() - t0
    print(results.printed, end="")
    blocks = render_blocks(results)
    stale = []
    for path in map(Path, args.files):
        text = path.read_text(encoding="utf-8")
        new = rewrite(text, blocks, where=str(path))
        if new != text:
            stale.append(str(path))
            if not args.check:
                atomic_write_text(path, new)
    verb = "differ" if args.check else "rewritten"
    print(f"{len(stale)} file(s) {verb}: {', '.join(stale) or 'none'}; the command took {seconds:.0f} s")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
