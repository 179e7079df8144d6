"""Thread settings: one helper for the CLI and the launcher, applied before torch starts; the
OpenMP wait policy that importing the engine sets."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import engine
from engine.utils import DEFAULT_THREADS, configure_threads

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clean_env(monkeypatch):
    import numba

    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)
    numba.set_num_threads(numba_before)


def test_threads_are_set(clean_env):
    assert configure_threads(1) == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"
    assert torch.get_num_threads() == 1  # torch already imported: applied at once
    import numba

    assert numba.get_num_threads() == 1  # TLift's kernels
    # numba was imported (its pool sized): its variable is left alone, or its next compilation
    # would fail; before numba is imported, the variable sizes the pool.
    assert "NUMBA_NUM_THREADS" not in os.environ
    clean_env.delenv("OMP_NUM_THREADS")
    assert configure_threads() == min(DEFAULT_THREADS, os.cpu_count() or 1)


def test_the_environment_wins_when_nothing_is_asked(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "1")
    assert configure_threads() == 1


def test_importing_the_engine_sets_a_passive_wait_policy_unless_the_user_chose_one(clean_env):
    importlib.reload(engine)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")
    importlib.reload(engine)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_torch_openmp_runtime_sleeps_when_the_engine_is_imported_first():
    # A fresh interpreter: OpenMP reads the policy once, as torch loads it. libgomp prints its
    # settings on OMP_DISPLAY_ENV; its spin count is 0 only under PASSIVE (unset: 300,000).
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env["OMP_DISPLAY_ENV"] = "VERBOSE"
    result = subprocess.run([sys.executable, "-c", "import engine, torch"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    if "OPENMP DISPLAY ENVIRONMENT" not in result.stderr:
        pytest.skip("torch's OpenMP runtime is not libgomp: it does not print its settings")
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in result.stderr
    assert "GOMP_SPINCOUNT = '0'" in result.stderr


@pytest.mark.parametrize("bad", [0, -2, 1.5, True])
def test_bad_thread_counts_are_rejected(clean_env, bad):
    with pytest.raises(ValueError, match="threads"):
        configure_threads(bad)


def test_cli_and_launcher_accept_threads():
    from engine.__main__ import build_parser
    from viewer.app import build_parser as viewer_parser

    parser, _ = build_parser()
    args = parser.parse_args(["evaluate", "--data", "d", "--checkpoint", "c", "--threads", "1"])
    assert args.threads == 1
    assert viewer_parser().parse_args(["--threads", "2"]).threads == 2


def test_numba_still_compiles_after_the_threads_change_once_its_pool_runs(clean_env):
    # An in-process command (--threads 1) after numba's threads were launched used to set
    # NUMBA_NUM_THREADS, and numba's next compilation then failed.
    import numba
    import numpy as np

    @numba.njit(parallel=True, cache=False)
    def total(x):
        out = 0.0
        for i in numba.prange(len(x)):
            out += x[i]
        return out

    assert total(np.ones(64)) == 64.0  # the pool is launched
    configure_threads(1)

    @numba.njit(cache=False)
    def plus_one(x):
        return x + 1

    assert plus_one(1) == 2  # compiled after the change
    assert numba.get_num_threads() == 1
