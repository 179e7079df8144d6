"""Thread settings: one helper for the CLI and the launcher, applied before torch starts."""
from __future__ import annotations

import pytest
import torch

from engine.utils import DEFAULT_THREADS, configure_threads


@pytest.fixture
def clean_env(monkeypatch):
    import numba

    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "NUMBA_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)
    numba.set_num_threads(numba_before)


def test_threads_and_passive_wait_policy_are_set(clean_env):
    import os

    assert configure_threads(1) == 1
    assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert torch.get_num_threads() == 1  # torch already imported: applied at once
    import numba

    assert numba.get_num_threads() == 1 and os.environ["NUMBA_NUM_THREADS"] == "1"  # TLift's kernels
    clean_env.delenv("OMP_NUM_THREADS")
    assert configure_threads() == min(DEFAULT_THREADS, os.cpu_count() or 1)


def test_the_environment_wins_when_nothing_is_asked(clean_env):
    import os

    clean_env.setenv("OMP_NUM_THREADS", "1")
    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert configure_threads() == 1
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


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
