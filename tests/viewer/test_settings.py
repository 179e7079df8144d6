"""The window remembers its settings across launches (in the temporary settings folder every
test gets), and --reset-settings forgets them."""
from __future__ import annotations

import dataclasses

from engine.postprocess.params import RerankParams, TLiftParams
from viewer.settings import remembered_inputs, reset_settings, user_settings


def _new_window(qtbot):
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    return win


def test_settings_survive_a_relaunch_and_reset_forgets_them(qtbot, window, load_request, loaded,
                                                            user_settings_folder):
    from viewer.widgets.export_dialog import ExportChoice

    win = window
    rerank = RerankParams(k1=11, k2=4, lambda_value=0.5)
    tlift = TLiftParams(tau=55.0, sigma=123.0, k=7, alpha=0.1)
    win.state.rerank, win.state.tlift = rerank, tlift
    win.state.rerank_on = True
    qtbot.waitUntil(lambda: win.state.applied.rerank == rerank and not win.state.busy,
                    timeout=60000)
    win.splitter.setSizes([250, 800, 230])
    sizes = win.splitter.sizes()
    win.controller.last_request = load_request
    win.last_export = ExportChoice(path="/somewhere/lists.csv", all_queries=True, top_k=5)
    win.last_case_folder = "/somewhere/cases"
    win.close()
    assert any(user_settings_folder.rglob("*.ini")), "nothing written to the test's folder"

    again = _new_window(qtbot)
    again.resize(win.size())   # the offscreen screen is smaller than the geometry restored
    again.show()
    qtbot.waitExposed(again)
    again.controller._loaded(loaded)   # the results page shows, with the panes remembered
    assert again.state.rerank == rerank and again.state.tlift == tlift
    assert again.state.rerank_on and not again.state.tlift_on
    # The panes as they were (Qt shares out rounding pixels when the window is laid out).
    assert all(abs(a - b) <= 4 for a, b in zip(again.splitter.sizes(), sizes, strict=True)), \
        (again.splitter.sizes(), sizes)
    assert sizes != [290, 740, 250]   # not the defaults
    assert again.last_export.path == "/somewhere/lists.csv"
    assert again.last_case_folder == "/somewhere/cases"
    assert remembered_inputs(user_settings()) == (load_request.data, load_request.checkpoint)
    qtbot.waitUntil(lambda: again.state.applied.rerank == rerank and not again.state.busy,
                    timeout=60000)
    again.close()

    reset_settings()
    fresh = _new_window(qtbot)
    assert fresh.state.rerank == RerankParams() and not fresh.state.rerank_on
    assert fresh.last_export is None and remembered_inputs(user_settings()) == (None, None)
    fresh.close()


def test_damaged_settings_are_ignored(qtbot):
    settings = user_settings()
    settings.setValue("post/rerank", "{not json")
    settings.setValue("post/tlift", '{"tau": 1, "unknown": 2}')
    settings.setValue("window/splitter", "[1, 2]")
    settings.setValue("window/state", b"junk")
    settings.sync()
    win = _new_window(qtbot)
    assert win.state.rerank == RerankParams() and win.state.tlift == TLiftParams()
    assert dataclasses.asdict(win.state.tlift) == dataclasses.asdict(TLiftParams())
    win.close()


def test_reset_settings_flag():
    from viewer.app import build_parser

    assert build_parser().parse_args(["--reset-settings"]).reset_settings
    assert not build_parser().parse_args([]).reset_settings
