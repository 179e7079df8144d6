"""Occlusion on the demo: release of the square -> re-ranked grid, and a default sensitivity map,
each against a baseline measured in the same process, and how both scale with the gallery size.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_occlusion.py [--cache-dir DIR] [--repeat 3]

Gallery maps and score blocks come from the cache (the first run fills it). Figures:

- release -> repaint (the window: job + grid refresh + repaint), raw and with re-ranking, against
  one plain external-query ranking (read the image, one feature map, one gallery row: what
  "open image as query" costs). Target < 1 s.
- the default sensitivity map (square a third of the width, stride half of that; logit drop of
  the top result), batched through the backbone, against the per-position loop (one forward and
  one scoring per position). Target < 5 s. Also the rank-change mode, which scores the whole
  gallery at every position.
- both at 25 / 50 / 100 % of the gallery.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from _timing import timed  # noqa: E402


def paired(baseline, target, repeat: int):
    """Median wall and CPU seconds of ``baseline()`` and ``target()``, run alternately so a
    changing load on a shared machine hits both alike: ((wall, cpu), (wall, cpu))."""
    import statistics

    runs = {"baseline": [], "target": []}
    for _ in range(repeat):
        for name, fn in (("baseline", baseline), ("target", target)):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            runs[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return tuple((statistics.median(w for w, _ in runs[k]), statistics.median(c for _, c in runs[k]))
                 for k in ("baseline", "target"))


def gallery_subset(session, fraction: float):
    """A shallow copy of ``session`` whose gallery is its first ``fraction`` (maps and blocks)."""
    if fraction >= 1.0:
        return session
    n = max(1, int(round(fraction * len(session.dataset.gallery))))
    sub = copy.copy(session)
    sub.dataset = dataclasses.replace(session.dataset, gallery=session.dataset.gallery[:n])
    sub.gallery_maps = session.gallery_maps[:n]
    sub.logits = {"qg": session.logits["qg"][:, :n], "qq": session.logits["qq"],
                  "gg": session.logits["gg"][:n, :n]}
    for name in ("gallery_pids", "gallery_cams"):
        sub.__dict__.pop(name, None)   # cached properties of the full gallery
    return sub


def plain_external(session, path):
    """Baseline: an image file ranked as an external query (no occlusion, raw)."""
    from engine.data import read_image_rgb
    from engine.postprocess.pipeline import final_distances

    maps = session.maps_for_image(read_image_rgb(path))
    return final_distances(session.score_maps(maps[None]))[0]


def per_position_loop(session, image, gallery_index):
    """Baseline: the sensitivity map one occluded image at a time (forward + score each)."""
    import numpy as np

    from engine.explain.occlusion import default_square, occlude, square_boxes

    side, stride = default_square(image.shape[1])
    base = session.score_maps(session.maps_for_image(image)[None], [gallery_index])[0, 0]
    values = [base - session.score_maps(session.maps_for_image(occlude(image, b))[None],
                                        [gallery_index])[0, 0]
              for b in square_boxes(*image.shape[:2], side, stride)]
    return np.array(values)


def window_release(loaded, query: int, rerank: bool, repeat: int) -> tuple[float, float]:
    """Median wall and CPU seconds from the square's release to the repainted grid, in the real window."""
    import statistics

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from viewer.app import configure_pyqtgraph, create_app
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    create_app()
    configure_pyqtgraph()
    win = MainWindow(Controller(ViewerState()))
    win.resize(1560, 900)
    win.show()
    win.controller._loaded(loaded)
    loop = QEventLoop()

    def wait_idle():
        timer = QTimer()
        timer.timeout.connect(lambda: loop.quit() if not win.state.busy else None)
        timer.start(5)
        loop.exec()
        timer.stop()

    wait_idle()
    win.state.select_query(query)
    if rerank:
        win.state.rerank_on = True
        win.controller.recompute()
        wait_idle()
    win.occlusion.show()
    occ = win.occlusion.controller
    while not occ.state.previews:
        QApplication.processEvents()
    times = []
    occ.rank_finished.connect(lambda _ok: loop.quit())
    for i in range(repeat + 1):
        x, y, side, _ = occ.state.box
        occ.state.box = (x + (i % 3), y, side, side)
        t0, c0 = time.perf_counter(), time.process_time()
        occ.apply_square()
        loop.exec()
        win.grid.viewport().repaint()
        QApplication.processEvents()
        if i:  # the first release warms the lazily built pieces
            times.append((time.perf_counter() - t0, time.process_time() - c0))
    assert win.state.override(win.state.selected_query) is not None
    win.close()
    win.controller.shutdown()
    return statistics.median(w for w, _ in times), statistics.median(c for _, c in times)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from engine.data import read_image_rgb
    from engine.explain.occlusion import (
        default_square,
        rank_change_map,
        rank_occluded,
        sensitivity_map,
    )
    from viewer.tasks import LoadRequest, load_session

    t0 = time.perf_counter()
    loaded = load_session(LoadRequest(cache_dir=args.cache_dir), progress=lambda *a: None,
                          cancel=lambda: False)
    session = loaded.session
    session.score(("qg", "qq", "gg"))  # the re-ranking blocks come after the first paint
    print(f"demo loaded in {time.perf_counter() - t0:.1f} s: {len(session.dataset.query)} queries x "
          f"{len(session.dataset.gallery)} gallery, device {session.device}, "
          f"cache {'warm' if all(session.cache_hits.values()) else 'cold'}")
    query = 0
    sample = session.dataset.query[query]
    image = read_image_rgb(sample.path)
    h, w = image.shape[:2]
    side, stride = default_square(w)
    box = ((w - w // 2) // 2, h // 3 - w // 4, w // 2, w // 2)
    gi = int(session.logits["qg"][query].argmax())
    timed(plain_external, session, sample.path)  # warm-up: model load, first forward
    print(f"CPU seconds count both of torch's threads: on an idle machine the wall time lies "
          f"between CPU / {torch_threads()} and CPU.")
    rr = {"k1": 20, "k2": 6, "lambda_value": 0.3}

    print(f"\nrelease of the square -> ranking, engine only ({w} x {h} query, box {box}); "
          f"median of {args.repeat}, wall (CPU) seconds; ratio = wall / baseline's wall")
    print(f"{'gallery':>8} {'baseline':>16} {'raw':>16} {'ratio':>6} {'+RR':>16} {'ratio':>6}")
    for fraction in (0.25, 0.5, 1.0):
        sub = gallery_subset(session, fraction)
        earlier = rank_occluded(sub, image, box, rerank=rr)   # as the viewer keeps it
        (b, b_cpu), (raw, raw_cpu) = paired(lambda s=sub: plain_external(s, sample.path),
                                            lambda s=sub: rank_occluded(s, image, box),
                                            args.repeat)
        _, (rr_s, rr_cpu) = paired(lambda: None, lambda s=sub, e=earlier: rank_occluded(
            s, image, box, rerank=rr, before=e), args.repeat)
        print(f"{len(sub.dataset.gallery):>8} {b:>7.3f} ({b_cpu:>6.3f}) {raw:>7.3f} ({raw_cpu:>6.3f}) "
              f"{raw / b:>6.2f} {rr_s:>7.3f} ({rr_cpu:>6.3f}) {rr_s / b:>6.2f}")

    print("\nin the window, release -> repainted grid (median; target 1 s):")
    for rerank in (False, True):
        seconds, cpu = window_release(loaded, query, rerank, args.repeat)
        print(f"    {'with re-ranking' if rerank else 'raw':<16} {seconds * 1000:7.0f} ms wall "
              f"({cpu * 1000:.0f} ms CPU; {seconds / 1.0:.2f} of the target)")

    n_pos = len(range(0, h - side + 1, stride)) * len(range(0, w - side + 1, stride))
    print(f"\ndefault sensitivity map: side {side} px, stride {stride} px, {n_pos} positions "
          f"(target 5 s)")
    (loop_s, loop_cpu), (batched_s, batched_cpu) = paired(
        lambda: per_position_loop(session, image, gi), lambda: sensitivity_map(session, image, gi), 1)
    diff = float(abs(sensitivity_map(session, image, gi).ravel() - per_position_loop(session, image, gi)).max())
    print(f"    logit drop, batched {batched_s:6.2f} s wall ({batched_cpu:.2f} s CPU); per-position "
          f"loop {loop_s:.2f} s ({loop_cpu:.2f} s CPU): {loop_s / batched_s:.1f}x faster; "
          f"max difference {diff:.1e}")
    print(f"{'gallery':>8} {'logit mode':>20} {'rank mode':>20}   wall (CPU) seconds")
    for fraction in (0.25, 0.5, 1.0):
        sub = gallery_subset(session, fraction)
        (logit_s, logit_cpu), (rank_s, rank_cpu) = paired(
            lambda s=sub: sensitivity_map(s, image, 0),
            lambda s=sub: rank_change_map(s, image, sample.pid, sample.cam), 1)
        print(f"{len(sub.dataset.gallery):>8} {logit_s:>8.2f} ({logit_cpu:>6.2f}) s "
              f"{rank_s:>8.2f} ({rank_cpu:>6.2f}) s")

if __name__ == "__main__":
    main()
