"""The launcher: as a real process it starts and quits itself; in this process --screenshot
writes a real PNG, or exits with 1 when the load fails."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], timeout: float = 180.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, str(ROOT / "run_viewer.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_launcher_starts_and_quits_itself(loaded, data_args):
    # Quitting after one second usually lands in the middle of the load job: the window must
    # cancel it, wait for its thread and exit cleanly.
    result = _run([*data_args, "--quit-after", "1"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_help_names_every_option():
    from viewer.app import build_parser

    text = build_parser().format_help()
    for flag in ("--data", "--checkpoint", "--device", "--cache-dir", "--screenshot"):
        assert flag in text


def test_screenshot_writes_a_non_blank_png(loaded, data_args, tmp_path, launch):
    from PySide6.QtGui import QImage

    target = tmp_path / "shot.png"
    assert launch(*data_args, "--screenshot", target) == 0
    image = QImage(str(target))
    assert not image.isNull() and image.width() >= 800 and image.height() >= 500
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    pixels = np.frombuffer(image.constBits(), np.uint8).reshape(
        image.height(), image.bytesPerLine())[:, :image.width() * 3].reshape(image.height(), -1, 3)
    colours = np.unique(pixels.reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 200  # thumbnails and text, not an empty window
    assert pixels.std() > 20


def test_screenshot_of_a_failed_load_exits_with_1(tmp_path, load_request, launch):
    empty = tmp_path / "empty"
    empty.mkdir()
    target = tmp_path / "fail.png"
    assert launch("--data", empty, "--checkpoint", load_request.checkpoint,
                  "--cache-dir", tmp_path / "cache", "--screenshot", target) == 1
    assert target.is_file()  # the window with the message, for the record


def test_a_job_that_never_returns_does_not_keep_the_process_alive(tmp_path):
    """A job stuck where cancelling cannot reach (a read from a hung share): after the window
    closes and the bounded wait, the launcher exits (code 1) instead of waiting for ever."""
    script = tmp_path / "stuck.py"
    script.write_text(
        "import sys, threading\n"
        "import viewer.app as app, viewer.controller as controller, viewer.jobs as jobs\n"
        "def stuck(*args, **kwargs):\n"
        "    threading.Event().wait()\n"
        "controller.load_session = stuck\n"
        "controller.Controller.shutdown.__defaults__ = (200,)  # the window's own wait, short\n"
        "jobs.EXIT_WAIT_MS = 200\n"
        f"sys.exit(app.main(['--data', {str(tmp_path)!r}, '--quit-after', '1']))\n")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "did not stop" in result.stderr, result.stderr[-2000:]
