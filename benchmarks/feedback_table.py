"""README table from ``python -m engine feedback-bench`` outputs: unseen-positive mAP per round.

    python -m engine feedback-bench ... --noise 0 > fb0.txt
    python -m engine feedback-bench ... --noise 0.1 > fb10.txt
    python benchmarks/feedback_table.py fb0.txt fb10.txt

Prints one markdown row per noise level and stage: Query Shift, Relevance Score and refine after
rounds 1 to 5, refine's margin over the better baseline per round, and how many queries still
had an unlabelled positive under refine (the figure's sample). The noise level is read from the
output's first line.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

STAGES = ("raw", "+RR", "+RR+TLift")
STAGE_LABELS = {"raw": "raw", "+RR": "+ RR", "+RR+TLift": "+ RR + TLift"}


def parse(text: str) -> tuple[float, dict[tuple[str, str, str], list[float]]]:
    """The noise level and ``{(stage, method, figure): values per round}`` of one output."""
    found = re.search(r"noise ([0-9.]+)", text)
    if found is None:
        raise ValueError("not a feedback-bench output: no 'noise' in its header line")
    figures = {}
    for line in text.splitlines():
        stage = line[:10].strip()
        if stage not in STAGES or len(line) < 40:
            continue
        method, figure = line[11:27].strip(), line[28:39].strip()
        figures[(stage, method, figure)] = [float(v) for v in line[39:].split()]
    return float(found.group(1)), figures


def rows(noise: float, figures) -> list[str]:
    out = []
    for stage in STAGES:
        if (stage, "refine", "unseen mAP") not in figures:
            continue
        qs, rs, ours = (figures[(stage, m, "unseen mAP")][1:]
                        for m in ("query shift", "relevance score", "refine"))
        margin = figures[(stage, "refine - best", "unseen mAP")]  # the command's, unrounded
        counted = [int(v) for v in figures[(stage, "refine", "counted")][1:]]
        cells = [" ".join(f"{v:.1f}" for v in vals) for vals in (qs, rs, ours)]
        out.append(f"| {100 * noise:g} % | {STAGE_LABELS[stage]} | " + " | ".join(cells)
                   + " | " + " ".join(f"{m:+.1f}" for m in margin)
                   + " | " + " ".join(str(c) for c in counted) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outputs", nargs="+", type=Path, help="feedback-bench outputs")
    args = parser.parse_args()
    print("| noise | stage | Query Shift | Relevance Score | refine | refine - better baseline "
          "| counted |")
    print("|---|---|---|---|---|---|---|")
    worst = []
    for path in args.outputs:
        noise, figures = parse(path.read_text())
        for line in rows(noise, figures):
            print(line)
            worst += [float(m) for m in line.split("|")[6].split()]
    if worst:
        met = sum(m >= 8 for m in worst)
        print(f"\nmargin >= 8 points in {met} of {len(worst)} cells; smallest {min(worst):+.1f}")


if __name__ == "__main__":
    main()
