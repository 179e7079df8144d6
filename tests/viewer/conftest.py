"""Shared fixtures of the viewer tests: a tiny synthetic set and a small random checkpoint, made
once per test session, plus a window already holding the loaded session.

Qt warnings fail every test in this folder; every test ends with no job thread running.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            # The offscreen platform plugin's own limitations, not ours (floating docks are
            # raised when shown).
            item.add_marker(pytest.mark.qt_log_ignore("does not support propagateSizeHints",
                                                      "does not support raise"))


@pytest.fixture(autouse=True)
def user_settings_folder(tmp_path):
    """The viewer's remembered settings (viewer.settings.user_settings) go to a temporary
    folder, a fresh one per test: nothing of the user's is read or written."""
    from PySide6.QtCore import QSettings

    folder = tmp_path / "settings"
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Synthetic domain B at a tiny size (timestamps included): 12 test identities."""
    from engine.data.synthetic import generate

    root = tmp_path_factory.mktemp("data") / "B"
    generate(root, domain="B", seed=0, num_train_ids=4, num_test_ids=12, num_distractors=10,
             num_junk=3)
    return str(root)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A randomly initialised small model (ResNet-18, 64x32 input, D=32)."""
    import torch

    from engine.checkpoint import save_checkpoint
    from engine.models.config import ModelConfig
    from engine.models.reid import build_model

    torch.manual_seed(0)
    cfg = ModelConfig(arch="resnet18", neck=32, height=64, width=32, pretrained="none")
    model = build_model(cfg)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, {"config": cfg.to_dict(), "model": model.state_dict(), "epoch": 0})
    return str(path)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def load_request(tiny_data, tiny_checkpoint, cache_dir):
    from viewer.tasks import LoadRequest

    return LoadRequest(data=tiny_data, checkpoint=tiny_checkpoint, device="cpu", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def loaded(load_request):
    """The engine session, loaded once (extraction and all score blocks cached on disk)."""
    from viewer.tasks import load_session

    return load_session(load_request, progress=lambda *a: None, cancel=lambda: False)


@contextlib.contextmanager
def window_holding(qtbot, loaded):
    """A 1280 x 800 main window holding ``loaded`` (as a finished load job would leave it);
    closed at the end, with no job left running."""
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    win.controller._loaded(loaded)
    yield win
    win.close()
    assert_no_job_running(win.controller)


def open_inspector(qtbot, win, position: int):
    """Select the result tile at ``position``, press Enter, and wait until the inspector holds
    the pair's split (or says why it has none); returns the inspector's view."""
    from PySide6.QtCore import Qt

    win.tabs.setCurrentWidget(win.splitter)
    win.state.selected_result = position
    win.grid.setFocus()
    qtbot.keyClick(win.grid, Qt.Key.Key_Return)
    view = win.inspector.build()
    ins = win.inspector_ctl.inspector
    qtbot.waitUntil(lambda: ins.correspondence is not None or bool(ins.unavailable), timeout=60000)
    return view


@pytest.fixture
def window(qtbot, loaded):
    """A main window holding the loaded session."""
    with window_holding(qtbot, loaded) as win:
        yield win


@pytest.fixture
def data_args(load_request) -> list[str]:
    """The launcher's options that open the tiny set and checkpoint on the CPU."""
    return ["--data", load_request.data, "--checkpoint", load_request.checkpoint, "--device", "cpu",
            "--cache-dir", load_request.cache_dir]


@pytest.fixture
def launch(qapp):
    """``launch(*argv) -> exit code``: the launcher's ``main`` in this process (with
    ``--screenshot`` its window closes itself once the load has finished or failed)."""
    from viewer.app import main

    return lambda *argv: main([str(a) for a in argv])


def assert_no_job_running(controller) -> None:
    from PySide6.QtCore import QThreadPool

    assert controller.jobs.wait(5000), "a job thread was still running after the test"
    for pool in controller.jobs.pools.values():
        assert pool.activeThreadCount() == 0
    assert QThreadPool.globalInstance().activeThreadCount() == 0


def distance_from_logits(logits) -> np.ndarray:
    """``1 - sigmoid(logit / 10)`` (docs/arithmetic.md 2.6), written out here independently of the engine."""
    x = np.asarray(logits, np.float64) / 10.0
    return 1.0 / (1.0 + np.exp(x))


def grid_gallery_order(win) -> list[int]:
    model = win.grid.model_
    return [model.items[row].gallery_index for row in range(model.rowCount())]


def reversed_override(state, loaded, query):
    """An override of ``query``: its gallery farthest first (as feedback marks might reorder it)."""
    from viewer.ranking import RankingOverride, describe_ranking, rank_query

    session = loaded.session
    row = (2.0 - loaded.raw_distmat[query]).astype(np.float32)
    sample = state.query_sample(query)
    ranking = rank_query(row, loaded.raw_distmat[query], sample.pid, sample.cam,
                         session.gallery_pids, session.gallery_cams)
    return RankingOverride(query, ranking, row, np.ones_like(session.logits["qg"][query]),
                           description=describe_ranking(ranking, "qaconv", probe="list shown",
                                                        title="Farthest first",
                                                        versus="the query's own list"))


@pytest.fixture
def refine_calls(monkeypatch, loaded):
    """A stand-in ``engine.feedback`` with refine's contract (marked positives first in the
    order marked, negatives last, the applied ranking otherwise) that records its calls: the
    viewer's tests do not depend on the engine's method."""
    import shutil
    import sys
    import threading
    import types
    from pathlib import Path

    calls = []

    def refine(session, query_index, positives, negatives, *, rerank=None, tlift=None):
        calls.append((query_index, list(positives), list(negatives), rerank, tlift,
                      threading.current_thread() is threading.main_thread()))
        row = np.array(session.distances(rerank=rerank, tlift=tlift)[query_index], np.float64)
        low, high = row.min(), row.max()
        for i, g in enumerate(positives):
            row[g] = low - len(positives) + i - 1.0
        for i, g in enumerate(negatives):
            row[g] = high + 1.0 + i
        return row.astype(np.float32)

    monkeypatch.setitem(sys.modules, "engine.feedback",
                        types.SimpleNamespace(refine=refine, __name__="engine.feedback"))
    yield calls
    # The marks are kept in the session's (shared) cache folder: leave none for other tests.
    shutil.rmtree(Path(loaded.session.cache_dir) / "marks", ignore_errors=True)
