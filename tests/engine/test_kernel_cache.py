"""A broken or unwritable cache of compiled kernels (issue 19, item 11): the kernels compile
again, with one warning, and every feature stays available. Each case runs a fresh process with
its own NUMBA_CACHE_DIR."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import logging
import numpy as np
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from engine.postprocess._rerank_kernels import counting_order
print("order", counting_order(np.array([2, 0, 1, 0]), 3).tolist())
"""


def _run(env_extra: dict) -> tuple[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    env.update(PYTHONPATH=str(ROOT), **env_extra)
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert "order [1, 3, 2, 0]" in done.stdout
    return done.stderr, [line for line in done.stderr.splitlines() if line.startswith("WARNING")]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("numba")
    _, warnings = _run({"NUMBA_CACHE_DIR": str(folder)})
    assert warnings == []
    files = list(folder.rglob("*.nbi")) + list(folder.rglob("*.nbc"))
    assert {p.suffix for p in files} == {".nbi", ".nbc"}
    return folder


@pytest.mark.parametrize("junk,error", [(bytes(range(7, 256)), "UnpicklingError"), (b"", "EOFError")])
def test_damaged_cache_files_compile_again_with_one_warning(cache_dir, junk, error):
    for path in list(cache_dir.rglob("*.nbi")) + list(cache_dir.rglob("*.nbc")):
        path.write_bytes(junk)
    _, warnings = _run({"NUMBA_CACHE_DIR": str(cache_dir)})
    assert len(warnings) == 1 and "compiled-kernel cache" in warnings[0] and error in warnings[0], warnings
    assert str(cache_dir) in warnings[0]
    _, warnings = _run({"NUMBA_CACHE_DIR": str(cache_dir)})  # repaired: no warning
    assert warnings == []


def test_no_writable_cache_folder_compiles_in_memory_with_one_warning():
    # As when the package folder and HOME are read-only: no cache locator finds a folder.
    _, warnings = _run({"NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator"})
    assert len(warnings) == 1 and "no writable folder" in warnings[0], warnings
