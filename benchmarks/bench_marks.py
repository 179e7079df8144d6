"""Marks in the viewer: a mark -> the query's list re-ranked on screen (the engine's refine in a
background job, the override, the grid and header repainted), against the refine call alone on
the same marks in the same process (what the viewer adds around it).

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_marks.py            # the demo
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_marks.py --data DIR --checkpoint FILE

Per stage (raw, +RR) and query: one "same person" mark on the 6th result, then cleared (the
marks file is removed once empty). Target (issue 21): < 100 ms on the demo.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from benchmarks._timing import latency_stats as _stats  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data")
    parser.add_argument("--checkpoint")
    parser.add_argument("--cache-dir")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()

    from engine.feedback import refine
    from viewer.app import create_app
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.marks.state import SAME
    from viewer.state import ViewerState
    from viewer.tasks import LoadRequest, load_session

    app = create_app()
    request = LoadRequest(data=args.data, checkpoint=args.checkpoint, device=args.device,
                          cache_dir=args.cache_dir, shortlist=None)  # refine needs the g-g block
    loaded = load_session(request, progress=lambda *a: None, cancel=lambda: False)
    win = MainWindow(Controller(ViewerState()), remember=False)
    win.resize(1280, 800)
    win.show()
    win.controller._loaded(loaded)
    state, marks = win.state, win.marks_ctl
    while state.marks is None or win.controller.jobs.is_busy("prefetch"):
        app.processEvents()
        time.sleep(0.01)

    def settle(predicate) -> None:
        while not predicate():
            app.processEvents()
            time.sleep(0.001)

    for stage in ("raw", "+RR"):
        if stage == "+RR":
            state.rerank_on = True
            settle(lambda: state.applied.rerank is not None and not state.busy)
        shown, alone = [], []
        for q in range(min(args.queries, state.num_dataset_queries)):
            state.select_query(q)
            settle(lambda: not state.busy)
            items = [it for it in state.results() if it.status != "junk"]
            target = items[min(5, len(items) - 1)].gallery_index
            done = []
            marks.refined.connect(done.append)
            t = time.perf_counter()
            marks.mark(q, target, SAME)
            settle(lambda done=done: bool(done))
            for widget in (win.grid.viewport(), win.header):
                widget.repaint()
            shown.append(time.perf_counter() - t)
            marks.refined.disconnect(done.append)
            settings = state.applied
            t = time.perf_counter()
            refine(state.session, q, [target], [], rerank=settings.rerank, tlift=settings.tlift)
            alone.append(time.perf_counter() - t)
            marks.clear_query(q)
            settle(lambda: not state.busy)
        ratio = statistics.median(shown) / statistics.median(alone)
        print(f"{stage:>4} mark -> list on screen: {_stats(shown)}")
        print(f"     refine alone (same marks):  {_stats(alone)}   ratio {ratio:.1f}x; "
              f"target 100 ms: {statistics.median(shown) / 0.1:.2f}")
    print(f"({state.num_dataset_queries} queries x {len(state.session.dataset.gallery)} gallery, "
          f"device {state.session.device}, load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores)")
    win.close()


if __name__ == "__main__":
    main()
