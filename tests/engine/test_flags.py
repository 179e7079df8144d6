"""Numeric flags (issue 19, item 12): each is checked before any work, with one line naming it."""
from __future__ import annotations

import numpy as np
import pytest

from engine.cli._common import max_threads, tlift_k_for
from engine.postprocess.tlift import tlift
from tests.engine.conftest import one_error_line


@pytest.mark.parametrize("command,flags,named", [
    ("evaluate", ["--tlift", "--tlift-k", "0"], "--tlift-k"),
    ("evaluate", ["--tlift", "--sigma", "1e-300"], "--sigma"),
    ("evaluate", ["--tlift", "--tau", "1e-300"], "--tau"),
    ("evaluate", ["--tlift", "--sigma", "nan"], "--sigma"),
    ("evaluate", ["--tlift", "--sigma", "1e300"], "--sigma"),
    ("evaluate", ["--tlift", "--alpha", "inf"], "--alpha"),
    ("evaluate", ["--tlift", "--alpha", "1e30"], "--alpha"),
    ("evaluate", ["--rerank", "--k1", "0"], "--k1"),
    ("evaluate", ["--rerank", "--k2", "100000000000000000000"], "--k2"),
    ("evaluate", ["--rerank", "--lambda-value", "1.5"], "--lambda-value"),
    ("evaluate", ["--shortlist", "0"], "--shortlist"),
    ("evaluate", ["--threads", "0"], "--threads"),
    ("evaluate", ["--threads", "20000"], "--threads"),
    ("extract", ["--batch-size", "0"], "--batch-size"),
    ("extract", ["--batch-size", "1000000"], "--batch-size"),
    ("export", ["--out", "x.csv", "--top-k", "0"], "--top-k"),
    ("sweep", ["--param", "tau", "--sigma", "0"], "--sigma"),
    ("sweep", ["--param", "k", "--values", "1.5"], "--values"),
    ("sweep", ["--param", "k", "--values", "0"], "--values"),
    ("sweep", ["--param", "sigma", "--values", "100", "1e-300"], "--values of sigma"),
    ("feedback-bench", ["--noise", "1.5"], "--noise"),
    ("feedback-bench", ["--rounds", "-1"], "--rounds"),
    ("feedback-bench", ["--per-round", "0"], "--per-round"),
])
def test_out_of_range_flags_are_refused_before_the_data_is_read(tmp_path, run_cli, command, flags,
                                                               named):
    # Neither the data nor the checkpoint exists: the flags are checked first.
    code, _, err = run_cli(command, "--data", tmp_path / "none", "--checkpoint",
                       tmp_path / "none.pt", *flags)
    line = one_error_line(err)
    assert code == 2 and named in line and "none" not in line


def test_flags_at_their_bounds_are_accepted(tmp_path, run_cli):
    code, _, err = run_cli("evaluate", "--data", tmp_path / "none", "--checkpoint", tmp_path / "c",
                       "--threads", max_threads(), "--sigma", "1e-150", "--tau", "1e150",
                       "--tlift-k", 10**20, "--lambda-value", "1")
    assert code == 2 and "does not exist" in one_error_line(err)  # past the flags, at the data


def test_the_launcher_refuses_too_many_threads(capsys):
    from viewer.app import main

    with pytest.raises(SystemExit) as info:
        main(["--threads", "100000"])
    assert info.value.code == 2 and "--threads" in capsys.readouterr().err


def _tlift_case(seed=0, p=24, g=40):
    rng = np.random.default_rng(seed)
    return (rng.random((p, g)).astype(np.float32), rng.integers(0, 3, p), rng.random(p) * 300,
            rng.integers(0, 4, g), rng.random(g) * 300)


def test_tlift_k_beyond_the_largest_block_is_clamped_without_changing_the_result():
    scores, qc, qt, gc, gt = _tlift_case()
    bound = tlift_k_for(10**20, qc, gc)
    assert bound == np.bincount(qc).max() * np.bincount(gc).max()
    assert tlift_k_for(5, qc, gc) == 5
    clamped = tlift(scores, qc, qt, gc, gt, k=bound)
    np.testing.assert_array_equal(clamped, tlift(scores, qc, qt, gc, gt, k=bound + 500))
    assert not np.array_equal(clamped, tlift(scores, qc, qt, gc, gt, k=len(gt)))  # K = g is not enough


@pytest.mark.parametrize("sigma,tau", [(1e-150, 100.0), (1e150, 1e-150), (200.0, 1e150)])
def test_tlift_at_the_bounds_of_sigma_and_tau_stays_finite(sigma, tau):
    scores, qc, qt, gc, gt = _tlift_case(1)
    assert np.isfinite(tlift(scores, qc, qt, gc, gt, sigma=sigma, tau=tau, alpha=1e6)).all()


def test_evaluate_with_a_huge_tlift_k_gives_the_rows_of_the_clamped_one(tiny_run, tmp_path, run_cli):
    from engine.data import load_dataset

    root, ckpt = tiny_run
    dataset = load_dataset(root)
    qc = np.array([s.cam for s in dataset.query])
    gc = np.array([s.cam for s in dataset.gallery])
    rows = []
    for k in (tlift_k_for(10**6, qc, gc), 10**6, 10**20):
        code, out, err = run_cli("evaluate", "--data", root, "--checkpoint", ckpt, "--device", "cpu",
                             "--cache-dir", tmp_path, "--tlift", "--tlift-k", k)
        assert code == 0, err
        rows.append([line for line in out.splitlines() if "+TLift" in line])
    assert rows[0] == rows[1] == rows[2] and rows[0]
