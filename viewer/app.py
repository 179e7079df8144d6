"""The launcher: command line, application set-up, the window, and the --screenshot mode.

:func:`main` is the ``reid-inspector`` command of an installed package; ``run_viewer.py`` calls
it from a checkout.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

from engine.cli._common import add_threads_argument, check_numbers

__all__ = ["build_parser", "main", "create_app", "configure_pyqtgraph"]

log = logging.getLogger("viewer")


def _shortlist(text: str) -> int | str | None:
    if text in ("auto", "off"):
        return None if text == "off" else text
    try:
        k = int(text)
    except ValueError:
        k = 0
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number, auto or off; got {text!r}")
    return k


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Browse person re-identification rankings (QAConv, k-reciprocal re-ranking, "
                    "TLift). Without arguments it opens the demo: synthetic domain B ranked by "
                    "the shipped checkpoint.")
    parser.add_argument("--data", metavar="DIR",
                        help="dataset folder (Market-1501, DukeMTMC-reID, MSMT17, CUHK03-NP, "
                             "<pid>/<image> folders or a CSV manifest); default: the demo set")
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="model checkpoint (.pt); default: the demo model shipped with "
                             "the viewer (trained on synthetic domain A)")
    parser.add_argument("--layout", metavar="NAME",
                        help="dataset layout name when detection is not wanted (e.g. market1501)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where to run the model: auto (CUDA if present), cpu or cuda "
                             "(an error if CUDA is absent); default: auto")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="folder for cached feature maps and scores (and the demo set); "
                             "default: $REID_CACHE_DIR or ~/.cache/reid-inspector")
    add_threads_argument(parser)
    parser.add_argument("--no-rerank-cache", action="store_true",
                        help="do not score query-query and gallery-gallery in the background "
                             "after the first paint (switching re-ranking on then scores them)")
    parser.add_argument("--shortlist", metavar="K|auto|off", default="auto", type=_shortlist,
                        help="two-stage retrieval: QAConv scores only K candidates per item, "
                             "picked by band matching on coarsened maps; auto (default) uses it "
                             "when exhaustive scoring would take more than a few minutes, with "
                             "the smallest K whose measured recall loses no matches; off forces "
                             "exhaustive scoring")
    parser.add_argument("--screenshot", metavar="FILE",
                        help="load, render the window with the first query selected, save it "
                             "as PNG to FILE and exit (exit code 1 if loading failed)")
    parser.add_argument("--force", action="store_true",
                        help="with --screenshot: replace FILE if it exists (never one of the "
                             "session's inputs)")
    parser.add_argument("--occlusion", choices=("square", "sensitivity"),
                        help="with --screenshot: open the occlusion panel on the first query "
                             "whose top result is a true match, and rank it with the square over "
                             "its upper body ('square') or compute the default sensitivity map "
                             "of that match ('sensitivity') before the screenshot")
    parser.add_argument("--inspect", metavar="RANK", type=int,
                        help="with --screenshot: render the match inspector for the first query "
                             "and its result at RANK (1-based, junk not counted) instead")
    parser.add_argument("--compare", metavar="FILE",
                        help="also open this second checkpoint (this tool's or another "
                             "project's) beside the first: the comparison panel and both ranks "
                             "on every tile; with --screenshot, saved once it is ranked")
    parser.add_argument("--reset-settings", action="store_true",
                        help="forget what the window remembered (RR/TLift toggles and "
                             "parameters, layout, last dataset and checkpoint, export and case "
                             "folders) before it opens")
    parser.add_argument("--quit-after", metavar="SECONDS", type=float,
                        help="close the window after this many seconds (smoke tests)")
    return parser


def create_app(argv: list[str] | None = None):
    """The QApplication (created once), with the style and pyqtgraph's global options."""
    from PySide6.QtWidgets import QApplication

    from viewer.style import STYLE_SHEET

    app = QApplication.instance()
    if app is None:
        app = QApplication(argv or [sys.argv[0]])
        app.setApplicationName("ReID Inspector")
        app.setStyle("Fusion")
        app.setStyleSheet(STYLE_SHEET)
    return app


def configure_pyqtgraph() -> None:
    """pyqtgraph's global options, set once (image items pass their axis order per item).

    Called after the first paint: importing pyqtgraph costs most of a second, and only the
    match inspector draws with it (its view is built right after, see ``InspectorTab``).
    """
    try:
        import pyqtgraph as pg
    except ImportError:
        log.warning("pyqtgraph is not installed; the match view will be unavailable")
        return
    pg.setConfigOptions(antialias=True, background="w", foreground="k")


def _show_splash(app):
    """A plain "starting" window shown while torch and the engine are imported (seconds)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QColor, QFont, QPainter, QPixmap
    from PySide6.QtWidgets import QSplashScreen

    pixmap = QPixmap(420, 120)
    pixmap.fill(QColor("#f6f8fa"))
    painter = QPainter(pixmap)
    font = QFont(app.font())
    font.setPointSizeF(font.pointSizeF() + 5)
    font.setBold(True)
    painter.setFont(font)
    painter.setPen(QColor("#1f2328"))
    painter.drawText(pixmap.rect().adjusted(0, 0, 0, -30), Qt.AlignmentFlag.AlignCenter, "ReID Inspector")
    painter.setFont(app.font())
    painter.setPen(QColor("#656d76"))
    painter.drawText(pixmap.rect().adjusted(0, 40, 0, 0), Qt.AlignmentFlag.AlignCenter,
                     "starting: loading the engine…")
    painter.end()
    splash = QSplashScreen(pixmap)
    splash.show()
    app.processEvents()
    return splash


def _screenshot_inputs(args):
    """What the session of ``args`` reads (checkpoint, dataset, cache), known before loading."""
    import dataclasses

    from engine.outputs import run_inputs
    from viewer.tasks import demo_checkpoint

    inputs = run_inputs(args.checkpoint or demo_checkpoint(), data=args.data,
                        cache_dir=args.cache_dir)
    if getattr(args, "compare", None):
        inputs = dataclasses.replace(inputs, files=inputs.files + run_inputs(args.compare).files)
    return inputs


def _save_screenshot(window, args) -> bool:
    """Save the window to ``args.screenshot`` through the guarded writer (engine.outputs), with
    the loaded session's inputs (or, when loading failed, those known from the arguments)."""
    from PySide6.QtWidgets import QApplication

    from engine.outputs import session_inputs, write_output

    QApplication.processEvents()
    window.grid.viewport().repaint()
    pixmap = window.grab()

    def save(tmp) -> None:
        if not pixmap.save(str(tmp), "PNG"):
            raise OSError(f"could not encode the screenshot for {args.screenshot}")

    import dataclasses

    session = window.state.session
    inputs = _screenshot_inputs(args) if session is None else session_inputs(session)
    if session is not None and args.compare:
        inputs = dataclasses.replace(inputs, files=inputs.files + _screenshot_inputs(args).files)
    try:
        write_output(args.screenshot, save, force=args.force, inputs=inputs, flag="--screenshot")
    except (OSError, ValueError) as exc:
        log.error("could not write the screenshot: %s", exc)
        return False
    return True


def _occlusion_then(window, what: str, then) -> None:
    """Open the occlusion dock on the first query whose top result is a true match; rank the
    square over its upper body ('square') or compute the sensitivity map of that true match
    ('sensitivity'); then call ``then(ok)``."""
    configure_pyqtgraph()
    state = window.state
    screen = window.screen().availableGeometry()   # a 1024 x 700 screen renders at that size
    window.resize(min(1560, screen.width()), min(900, screen.height()))
    for query in state.visible_queries():
        ranking = state.ranking(query)
        if ranking is not None and ranking.first_hit_rank == 1:
            state.select_query(query)
            break
    statuses = [item.status for item in state.results()]
    if "true" in statuses:
        state.selected_result = statuses.index("true")
    window.occlusion.show()
    occlusion = window.occlusion.controller
    if what == "sensitivity":
        occlusion.sensitivity_finished.connect(lambda ok: then(ok))
        occlusion.compute_sensitivity()
    else:
        occlusion.rank_finished.connect(lambda ok: then(ok))
        occlusion.apply_square()


def _screenshot_inspector(window, args, exit_code: dict, timeout_s: float = 120.0) -> None:
    """Open the inspector on the first query's result at ``rank``; save once it is complete."""
    from PySide6.QtCore import QTimer

    configure_pyqtgraph()  # before the inspector's view is built
    state = window.state
    if not state.select_rank(args.inspect):
        log.error("the first query has no result at rank %d", args.inspect)
        exit_code["value"] = 1
        window.close()
        return
    window.controller.open_selected_match()
    started = time.perf_counter()

    def poll() -> None:
        ready = window.inspector_ctl.is_ready()
        if not ready and time.perf_counter() - started < timeout_s:
            QTimer.singleShot(50, poll)
            return
        if not ready:
            ins = window.inspector_ctl.inspector
            log.error("the match inspector was not ready after %.0f s (local matches %s; busy: %r; "
                      "scores: %s)", timeout_s, "computed" if ins.correspondence is not None
                      else "missing", state.busy, "; ".join(s.text() for s in ins.scores))
        saved = _save_screenshot(window, args)
        exit_code["value"] = 0 if (ready and saved) else 1
        window.close()

    poll()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.inspect is not None and (args.screenshot is None or args.inspect < 1):
        parser.error("--inspect RANK needs --screenshot FILE and a rank of 1 or more")
    try:
        import PySide6  # noqa: F401
    except ImportError:  # an engine-only install: `pip install .` without the extra
        parser.exit(2, f"{parser.prog}: the viewer needs the [viewer] extra: "
                       "pip install \"reid-inspector[viewer]\" (\".[viewer]\" in a checkout)\n")
    try:
        check_numbers(args)
    except ValueError as exc:
        parser.error(str(exc))
    if args.screenshot is not None:  # refused before the load, not after it
        from engine.outputs import OutputRefused, check_output_path

        try:
            check_output_path(args.screenshot, force=args.force, inputs=_screenshot_inputs(args),
                              flag="--screenshot")
        except OutputRefused as exc:
            print(f"{parser.prog}: error: {exc}", file=sys.stderr)
            return 2
    from engine.utils import configure_threads

    configure_threads(args.threads)  # before the engine imports torch
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t_start = time.perf_counter()
    app = create_app()
    splash = None if args.screenshot else _show_splash(app)

    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.settings import remembered_inputs, reset_settings
    from viewer.state import ViewerState
    from viewer.tasks import LoadRequest

    if args.reset_settings:
        reset_settings()
    # A screenshot shows the defaults, whatever this user's window remembers.
    window = MainWindow(Controller(ViewerState()), remember=args.screenshot is None)
    if window.settings is not None and args.data is None and args.checkpoint is None:
        # No inputs named: the last dataset and checkpoint opened, when they are still there.
        data, checkpoint = remembered_inputs(window.settings)
        if all(p is None or os.path.exists(p) for p in (data, checkpoint)):
            args.data, args.checkpoint = data, checkpoint
    window.show()
    if splash is not None:
        splash.finish(window)
    request = LoadRequest(data=args.data, checkpoint=args.checkpoint, device=args.device,
                          cache_dir=args.cache_dir, layout=args.layout,
                          rerank_blocks=not args.no_rerank_cache, shortlist=args.shortlist)
    exit_code = {"value": 0}

    def first_paint(ok: bool) -> None:
        # The first load only: a later "Open dataset" is not the launch's first paint.
        window.controller.load_finished.disconnect(first_paint)
        app.processEvents()
        log.info("first paint %.2f s after launch (%s)", time.perf_counter() - t_start,
                 "loaded" if ok else "load failed")
        if os.environ.get("REID_VIEWER_REPORT_PAINT"):
            # For benchmarks/bench_viewer.py, which times the launch from outside.
            print("FIRST_PAINT", flush=True)
        if args.compare and ok:
            configure_pyqtgraph()
            if args.screenshot:
                window.resize(1560, 900)
                ctl = window.show_compare().compare_controller
                ctl.input_size_needed.disconnect(window._ask_compare_size)  # no dialog: fail
                ctl.finished.connect(lambda done: finish(done))
            window.compare_with_model(args.compare)
            return
        if args.screenshot and args.occlusion and ok:
            _occlusion_then(window, args.occlusion, lambda done: finish(done))
        elif args.screenshot and args.inspect is not None and ok:
            _screenshot_inspector(window, args, exit_code)
        elif args.screenshot:
            finish(ok)
        else:
            configure_pyqtgraph()

    def finish(ok: bool) -> None:
        saved = _save_screenshot(window, args)
        exit_code["value"] = 0 if (ok and saved) else 1
        window.close()

    window.controller.load_finished.connect(first_paint)
    if args.screenshot:  # nobody to answer a dialog: a file that needs its input size fails
        window.controller.input_size_needed.disconnect(window._ask_load_size)
    if args.quit_after is not None:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(int(args.quit_after * 1000), window.close)
    window.start_load(request)
    app.exec()
    from viewer import jobs

    if not window.controller.shutdown(jobs.EXIT_WAIT_MS):
        # A job stuck in a call that cannot be cancelled (a read from a hung network share)
        # would keep the process alive for ever: leave without waiting for its thread.
        log.error("a background job did not stop within %.0f s; exiting without it",
                  jobs.EXIT_WAIT_MS / 1000)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code["value"] or 1)
    return exit_code["value"]


if __name__ == "__main__":
    sys.exit(main())
