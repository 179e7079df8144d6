"""Analysis plots: refresh after a settings change, and the four-parameter TLift sweep.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_plots.py [--cache-dir DIR]
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_plots.py --screenshot assets/plots.png
    python benchmarks/bench_plots.py --market-scale --no-demo   # simulated scores, see below

Demo (synthetic domain B, the shipped model, scores cached):

- engine refresh: every stage's plot data (raw, +RR, +TLift, +RR+TLift) after an RR parameter
  change, as the panel's job computes it (reusing the distances the window just computed and
  the stages that did not change), and from nothing; printed against the window's own
  recomputation (RR, TLift on it, both evaluated), measured in the same run, and against the
  1 s target;
- window refresh: in a real window with RR and TLift on, k1 changed -> the window's distances
  recomputed -> every plot recomputed and redrawn (the debounce pauses of 250 + 150 ms that
  merge keystrokes are not counted);
- sweep: tau, sigma, K and alpha over the appendix's ten values each (40 TLift runs with their
  evaluation), printed per point against one TLift + evaluation measured in the same run.

Market scale (``--market-scale``): 3,368 queries x 15,913 gallery images with Market-1501's
camera count and a capture clock; the QAConv scores are *simulated* (scoring that many pairs with
the demo model takes hours on this CPU), which does not change the cost of what is timed here:
the analysis of the distance matrices and the TLift sweep. Re-ranking at N = 19,281 is left out
(``bench_rerank.py`` measures it).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from _timing import timed  # noqa: E402

TARGET_S = 1.0


def _labels(session) -> tuple:
    return session.query_pids, session.gallery_pids, session.query_cams, session.gallery_cams


def engine_refresh(session, repeats: int) -> None:
    from engine.analysis.plot_data import settings_key
    from engine.evaluation import evaluate
    from engine.postprocess import lift_distances
    from engine.postprocess.params import RerankParams, TLiftParams
    from viewer.plots.state import PlotRequest, compute_plots

    tl = TLiftParams()
    quiet = {"progress": lambda *a: None, "cancel": None}

    def request_for(rr):
        return PlotRequest(rerank=rr, tlift=tl, current="qaconv+rr+tlift")

    raw = session.distances(None, None)
    previous = compute_plots(session, request_for(RerankParams()), {}, **quiet)
    times_panel, times_scratch, times_window = [], [], []
    for i in range(repeats):
        rr = RerankParams(k1=14 + 2 * i)  # a new setting each time: nothing cached for it
        # the window's job: RR, TLift on it, both evaluated (viewer.tasks.compute_distances)
        t_rr, rr_dist = timed(lambda r=rr: session.distances(r, None))
        t_lift, dist = timed(lambda d=rr_dist: lift_distances(
            d, session.query_cams, session.times_of(session.dataset.query), session.gallery_cams,
            session.times_of(session.dataset.gallery)))
        t_eval, _ = timed(lambda pair=(rr_dist, dist): [evaluate(d, *_labels(session))
                                                         for d in pair])
        times_window.append(t_rr + t_lift + t_eval)
        request = request_for(rr)
        # what the panel's job gets: the window's distances and the previous refresh
        known = {settings_key(None, None): raw, settings_key(rr, tl): dist,
                 settings_key(rr, None): rr_dist, **previous.distances}
        t_panel, result = timed(lambda r=request, k=known, p=previous: compute_plots(
            session, r, k, previous=p, **quiet))
        t_scratch, _ = timed(lambda r=request: compute_plots(session, r, {}, **quiet))
        times_panel.append(t_panel)
        times_scratch.append(t_scratch)
        previous = result
    med = statistics.median
    window = med(times_window)
    print(f"  window's own recompute of RR+TLift + evaluate (baseline): {window:.3f} s")
    for name, values in (("plot data as the panel computes it", times_panel),
                         ("plot data, every stage from scratch", times_scratch)):
        m = med(values)
        print(f"  {name:<40} {m:.3f} s = {m / window:.2f}x the baseline, "
              f"{m / TARGET_S:.2f} of the 1 s target (median of {len(values)})")


def window_refresh(request, repeats: int, screenshot: str | None, sweep: bool) -> None:
    from PySide6.QtWidgets import QApplication

    from engine.postprocess.params import RerankParams
    from viewer.app import configure_pyqtgraph, create_app
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState
    from viewer.tasks import load_session

    app = create_app()
    configure_pyqtgraph()
    loaded = load_session(request, progress=lambda *a: None, cancel=lambda: False)
    win = MainWindow(Controller(ViewerState()))
    win.resize(1280, 800)
    win.show()
    win.controller._loaded(loaded)
    state = win.state
    win.show_plots()
    ctl = win.plots_dock.plots_controller
    plots = ctl.plots

    def wait(cond, timeout=600.0):
        t_end = time.perf_counter() + timeout
        while not cond():
            app.processEvents()
            time.sleep(0.002)
            if time.perf_counter() > t_end:
                raise TimeoutError("timed out")

    state.rerank_on = True
    state.tlift_on = True
    win.controller.recompute()
    wait(lambda: state.applied == state.requested_settings() and not state.busy)
    ctl.refresh()
    wait(lambda: plots.plots is not None and not plots.busy)

    totals, draws, windows = [], [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        state.rerank = RerankParams(k1=13 + 2 * i)
        win.controller.recompute()  # what the window's pause timer calls
        wait(lambda: state.applied == state.requested_settings() and not state.busy)
        t_applied = time.perf_counter()
        ctl.refresh()  # what the panel's pause timer calls
        wait(lambda: not plots.busy and plots.plots.request.rerank == state.rerank)
        app.processEvents()
        totals.append(time.perf_counter() - t0)
        windows.append(t_applied - t0)
        t_draw, _ = timed(win.plots_dock.panel._draw_all)
        draws.append(t_draw)
        print(f"    k1={state.rerank.k1}: window distances {t_applied - t0:.3f} s, "
              f"plot job {plots.plots.seconds:.3f} s, "
              f"all plots recomputed + redrawn {totals[-1]:.3f} s")
    m, w = statistics.median(totals), statistics.median(windows)
    own = statistics.median([t - x for t, x in zip(totals, windows, strict=True)])
    print(f"  settings change -> every plot redrawn: median {m:.3f} s = {m / TARGET_S:.2f} of the "
          f"1 s target; {m / w:.2f}x the window's own update of its ranking in the same runs "
          f"({w:.3f} s)")
    print(f"  of which the plots' own work (job, drawing, painting): median {own:.3f} s = "
          f"{own / TARGET_S:.2f} of the target; drawing alone "
          f"{statistics.median(draws) * 1000:.0f} ms")

    if sweep or screenshot:
        t0 = time.perf_counter()
        ctl.run_sweeps()
        wait(lambda: plots.sweep is not None and plots.sweep_progress is None)
        print(f"  four-parameter sweep in the window (I/O pool): {time.perf_counter() - t0:.2f} s")
    if screenshot:
        state.rerank = RerankParams()  # the defaults again
        win.controller.recompute()
        wait(lambda: state.applied == state.requested_settings() and not state.busy)
        ctl.refresh()
        wait(lambda: not plots.busy and plots.plots.request.rerank == state.rerank)
        ctl.run_sweeps()
        wait(lambda: plots.sweep is not None and plots.sweep_progress is None
             and ctl.sweeps_current())
        panel = win.plots_dock.panel
        win.plots_dock.resize(1500, 860)
        visible = state.visible_queries()
        state.select_query(visible[min(5, len(visible) - 1)])
        ctl.plots.log_density = True  # true and false pairs both visible
        app.processEvents()
        panel._draw_all()
        app.processEvents()
        # The window system's copy of the floating dock: QWidget.grab() of a widget holding
        # several pyqtgraph views crashes PySide6 6.11 on the offscreen platform.
        ok = app.primaryScreen().grabWindow(win.plots_dock.winId()).save(screenshot, "PNG")
        print(f"  screenshot of the panel -> {screenshot} ({'ok' if ok else 'FAILED'})")
    win.close()
    QApplication.processEvents()


def sweep_figures(distmat, labels: dict, what: str, per_parameter: int | None = None) -> None:
    """The four-parameter sweep; with ``per_parameter`` only that many values of each are run
    and the full sweep's time is extrapolated from them (said so in the output)."""
    from engine.analysis.plot_data import APPENDIX_VALUES, tlift_sweeps
    from engine.evaluation import evaluate
    from engine.postprocess import lift_distances

    ctx = {k: labels[k] for k in ("query_cams", "query_times", "gallery_cams", "gallery_times")}
    t_one, lifted = timed(lambda: lift_distances(distmat, **ctx))
    t_eval, _ = timed(lambda: evaluate(lifted, labels["query_pids"], labels["gallery_pids"],
                                       labels["query_cams"], labels["gallery_cams"]))
    point = t_one + t_eval
    values = {p: v[:per_parameter] for p, v in APPENDIX_VALUES.items()}
    n = sum(len(v) for v in values.values())
    n_full = sum(len(v) for v in APPENDIX_VALUES.values())
    t_sweep, _ = timed(lambda: tlift_sweeps(distmat, **labels, values=values))
    full = t_sweep / n * n_full
    note = "" if n == n_full else f" (extrapolated from {n} points run in {t_sweep:.1f} s)"
    print(f"  {what}: one TLift + evaluation {point:.3f} s (baseline); sweep of {n_full} points "
          f"{full:.2f} s{note} = {full / n_full:.3f} s per point = "
          f"{full / (n_full * point):.2f}x the baseline per point")


def market_scale(repeats: int) -> None:
    """Simulated Market-1501-size scores: the cost of the analysis and the sweep."""
    from engine.analysis.plot_data import analyse_stages
    from engine.postprocess import final_distances, lift_distances
    from engine.postprocess.params import stage_name

    rng = np.random.default_rng(0)
    num_ids, cams, q, g = 750, 6, 3368, 15913
    qp = rng.integers(1, num_ids + 1, q)
    qc = rng.integers(0, cams, q)
    gp = np.where(rng.random(g) < 0.15, 0, rng.integers(1, num_ids + 1, g))  # 0 = distractors
    gc = rng.integers(0, cams, g)
    # a person is seen around one moment, passing cameras within minutes; the clock runs 2 h
    moment = rng.random(num_ids + 1) * 7200
    qt = moment[qp] + rng.normal(0, 120, q)
    gt = np.where(gp == 0, rng.random(g) * 7200, moment[gp] + rng.normal(0, 120, g))
    logits = rng.normal(0, 4, (q, g)).astype(np.float32)
    logits += 8.0 * (qp[:, None] == gp[None, :])  # [q, g] true pairs score higher
    labels = {"query_pids": qp, "gallery_pids": gp, "query_cams": qc, "gallery_cams": gc,
              "query_times": qt, "gallery_times": gt}
    ctx = {k: labels[k] for k in ("query_cams", "query_times", "gallery_cams", "gallery_times")}
    raw = final_distances(logits)
    del logits
    t_lift, lifted = timed(lambda: lift_distances(raw, **ctx))
    dists = {stage_name("qaconv", False, False): raw, stage_name("qaconv", False, True): lifted}
    lab = (qp, gp, qc, gc)
    times = [timed(lambda: analyse_stages(dists, *lab))[0] for _ in range(repeats)]
    m = statistics.median(times)
    print(f"  {q:,} x {g:,}: analysis of 2 stages {m:.2f} s ({m / 2:.2f} s per stage), "
          f"TLift {t_lift:.2f} s; refresh of raw + TLift = {m + t_lift:.2f} s "
          f"= {(m + t_lift) / TARGET_S:.1f}x the 1 s demo target")
    sweep_figures(raw, labels, "Market scale, TLift on raw")  # all 40 points, about 2 minutes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--screenshot", default=None, help="save the panel (RR+TLift on) here")
    parser.add_argument("--no-demo", action="store_true")
    parser.add_argument("--market-scale", action="store_true")
    args = parser.parse_args()
    if not args.no_demo:
        from viewer.tasks import LoadRequest, load_session

        request = LoadRequest(cache_dir=args.cache_dir, device="cpu")
        loaded = load_session(request, progress=lambda *a: None, cancel=lambda: False)
        session = loaded.session
        print(f"demo: {len(session.dataset.query)} queries x {len(session.dataset.gallery)} "
              "gallery")
        print("engine refresh after an RR parameter change (RR and TLift on):")
        engine_refresh(session, args.repeats)
        from engine.session import RerankParams
        from viewer.plots.state import session_labels

        print("TLift sweep, demo:")
        sweep_figures(session.distances(RerankParams(), None), session_labels(session),
                      "demo, TLift on +RR")
        print("window refresh:")
        window_refresh(dataclasses.replace(request), args.repeats, args.screenshot, sweep=True)
    if args.market_scale:
        print("Market scale (simulated scores):")
        market_scale(max(1, args.repeats // 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
