"""The viewer on ``--device cuda``: a window loaded on the GPU ranks as the CPU does, re-ranking
runs on top, the launcher renders offscreen; where CUDA is absent, asking for it is a clear
message (that test runs on machines without a GPU, the others are skipped there)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.viewer.conftest import assert_no_job_running, grid_gallery_order


def _launcher_args(load_request, cache_dir) -> list[str]:
    return ["--data", load_request.data, "--checkpoint", load_request.checkpoint,
            "--device", "cuda", "--cache-dir", str(cache_dir)]


@pytest.mark.cuda
def test_window_loaded_on_cuda_ranks_like_the_cpu(qtbot, loaded, load_request, tmp_path):
    from viewer.controller import Controller
    from viewer.main_window import MainWindow
    from viewer.state import ViewerState

    win = MainWindow(Controller(ViewerState()))
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    request = dataclasses.replace(load_request, device="cuda", cache_dir=str(tmp_path / "cache"))
    with qtbot.waitSignal(win.controller.load_finished, timeout=120000) as blocker:
        win.start_load(request)
    assert blocker.args == [True], win.state.error
    assert "device: cuda" in win.status_info.device.text()
    cpu = loaded.raw_distmat
    spread = float(cpu.max() - cpu.min())
    # The fixture's random checkpoint spreads its logits over 0.17 only; bfloat16 extraction on
    # the CPU moves them by 4% of that, fp16 (3 more mantissa bits) by much less. The tighter
    # engine-level bounds, on a trained model, are in tests/engine/test_cuda.py.
    assert np.abs(win.state.raw_distmat - cpu).max() <= 5e-2 * spread
    query = win.state.selected_query
    assert grid_gallery_order(win) == list(np.argsort(win.state.raw_distmat[query])[:win.state.top_k])
    # Re-ranking and TLift recomputed in the background on the CUDA session.
    win.postprocess.rerank.setChecked(True)
    win.postprocess.tlift.setChecked(True)
    qtbot.waitUntil(lambda: win.state.applied.rerank is not None and win.state.applied.tlift is not None
                    and not win.state.busy, timeout=60000)
    assert win.state.error is None and np.isfinite(win.state.distmat).all()
    win.close()
    assert_no_job_running(win.controller)


@pytest.mark.cuda
def test_launcher_renders_on_cuda(load_request, tmp_path, launch, caplog):
    from PySide6.QtGui import QImage

    target = tmp_path / "cuda.png"
    assert launch(*_launcher_args(load_request, tmp_path / "cache"), "--screenshot", target) == 0
    assert "Traceback" not in caplog.text
    image = QImage(str(target))
    assert not image.isNull() and image.width() >= 800


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present: this checks the message "
                                                      "given where it is absent")
def test_launcher_says_clearly_that_cuda_is_absent(load_request, tmp_path, launch, caplog):
    target = tmp_path / "no_cuda.png"
    assert launch(*_launcher_args(load_request, tmp_path / "cache"), "--screenshot", target) == 1
    assert "CUDA was asked for (--device cuda) but no CUDA device is available" in caplog.text
    assert "Traceback" not in caplog.text
    assert target.is_file()  # the window with the message
