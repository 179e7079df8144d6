"""benchmarks/readme_tables.py: the README's result tables are exactly what the command prints
(checked on a tiny synthetic set), and only the marked blocks are rewritten."""
from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "readme_tables.py"


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("readme_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _doc(*names: str) -> str:
    parts = ["# Title\n\nText before.\n"]
    for name in names:
        parts.append(f"<!-- readme_tables: {name} (generated; do not edit) -->\n"
                     "| stale | 1.0 |\n"
                     f"<!-- /readme_tables: {name} -->\n"
                     "Text after.\n")
    return "\n".join(parts)


def _block(text: str, name: str) -> list[str]:
    """The non-empty lines between a block's markers."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"<!-- readme_tables: {name} "))
    end = lines.index(f"<!-- /readme_tables: {name} -->")
    return [line for line in lines[start + 1:end] if line.strip()]


def test_tables_are_what_the_command_prints(tables, tiny_synth, random_checkpoint, tmp_path,
                                            tmp_path_factory, run_cli):
    root, _ = tiny_synth
    cache = tmp_path / "cache"
    results = tables.run_command(str(root), str(random_checkpoint), cache_dir=str(cache))
    blocks = tables.render_blocks(results)
    assert tuple(blocks) == tables.BLOCKS
    doc = tables.rewrite(_doc(*tables.BLOCKS), blocks)

    # The same command typed by a user (the scores now come from the cache: the same numbers).
    plots = tmp_path_factory.mktemp("out") / "plots"  # not beside the checkpoint: refused there
    code, out, err = run_cli("evaluate", "--data", root, "--checkpoint", random_checkpoint,
                             "--rerank", "--tlift", "--plots", plots, "--cache-dir", cache)
    assert code == 0, err
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["method", "stage", "rank-1"])
    printed = [line.split() for line in lines[header + 1:] if len(line.split()) == 7]
    assert [p[1] for p in printed] == ["raw", "+RR", "+RR+TLift"]

    accuracy = _block(doc, "demo-accuracy")
    assert accuracy[0] == "| stage | " + " | ".join(lines[header].split()[2:]) + " |"
    assert accuracy[2:] == [f"| `{p[1]}` | " + " | ".join(p[2:]) + " |" for p in printed]

    with open(plots / "tpr_at_fpr.csv", newline="") as f:
        written = list(csv.DictReader(f))
    fprs = sorted({float(r["fpr"]) for r in written}, reverse=True)
    tpr = _block(doc, "demo-tpr")
    assert tpr[0] == "| stage | " + " | ".join(f"TPR at FPR {x:g}" for x in fprs) + " |"
    # CSV methods in stage order (qaconv, qaconv+rr, qaconv+rr+tlift) against the printed rows.
    methods = list(dict.fromkeys(r["method"] for r in written))
    assert methods == [printed[0][0], f"{printed[0][0]}+rr", f"{printed[0][0]}+rr+tlift"]
    for row, method, (_, stage, *_) in zip(tpr[2:], methods, printed, strict=True):
        cells = [f"{100 * float(r['tpr']):.1f}" for x in fprs for r in written
                 if r["method"] == method and float(r["fpr"]) == x]
        assert row == f"| `{stage}` | " + " | ".join(cells) + " |"

    # The script itself: --check reports the stale file and leaves it; a plain run rewrites it
    # to the same tables.
    stale = tmp_path_factory.mktemp("docs") / "README.md"
    stale.write_text(_doc(*tables.BLOCKS), encoding="utf-8")
    argv = ["--data", str(root), "--checkpoint", str(random_checkpoint), "--cache-dir", str(cache)]
    assert tables.main(argv + ["--check", str(stale)]) == 1
    assert stale.read_text(encoding="utf-8") == _doc(*tables.BLOCKS)
    assert tables.main(argv + [str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == doc

    command = _block(doc, "demo-command")
    assert "python -m engine evaluate" in command[1] and "--rerank --tlift" in command[1]
    assert "Text before." in doc and doc.count("Text after.") == 3 and "stale" not in doc


def test_rewrite_touches_only_the_blocks_and_is_idempotent(tables):
    blocks = {"a": "| x | 1 |", "b": "| y | 2 |"}
    doc = _doc("a", "b")
    once = tables.rewrite(doc, blocks)
    assert tables.rewrite(once, blocks) == once
    assert _block(once, "a") == ["| x | 1 |"] and _block(once, "b") == ["| y | 2 |"]
    # Outside the blocks, every line is kept as it was.
    outside = [line for line in doc.splitlines() if "stale" not in line]
    assert [line for line in once.splitlines() if line and "|" not in line] == \
        [line for line in outside if line]


@pytest.mark.parametrize("text, message", [
    ("<!-- readme_tables: a -->\n| old |\n", "no end marker"),
    ("<!-- readme_tables: a -->\n<!-- readme_tables: b -->\n<!-- /readme_tables: b -->\n",
     "not closed"),
    ("<!-- readme_tables: a -->\n<!-- /readme_tables: b -->\n", "no end marker"),
    ("| old |\n<!-- /readme_tables: a -->\n", "without its start"),
    ("<!-- readme_tables: c -->\n<!-- /readme_tables: c -->\n", "unknown block c"),
])
def test_malformed_markers_are_refused(tables, text, message):
    with pytest.raises(ValueError, match=message):
        tables.rewrite(text, {"a": "x", "b": "y"}, where="doc.md")


def test_the_docs_blocks_are_well_formed(tables):
    """Every file the script rewrites has marked blocks, each closed and known."""
    for name in tables.FILES:
        text = (tables.ROOT / name).read_text(encoding="utf-8")
        assert "<!-- readme_tables: " in text, name
        tables.rewrite(text, dict.fromkeys(tables.BLOCKS, "x"), where=name)
