"""Distributed training (torch.distributed, Gloo on the CPU): 2 ranks x half a batch train
exactly as 1 process x the whole batch, for every loss and sampler."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.models.config import ModelConfig
from engine.train import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
# (loss, sampler): every loss and every sampler at least once; the trunk starts from random
# weights, so its BatchNorms train (synchronised over ranks).
CASES = [("focal", "random"), ("softmax+triplet", "pk"), ("pairwise", "graph"),
         ("triplet", "pk"), ("bce", "graph"), ("global", "random")]


def model_config(loss: str) -> ModelConfig:
    return ModelConfig(arch="resnet18", neck=16, height=64, width=32, pretrained="none",
                       method="global" if loss == "global" else "qaconv")


def train_config(loss: str, sampler: str) -> TrainConfig:
    # The first two steps (one per epoch): the second is the first with a class memory to match
    # against. Further on, runs differ as much as one process does with 1 vs 2 threads (float
    # sums in another order, amplified by training from random weights).
    return TrainConfig(loss=loss, sampler=sampler, batch_size=16, k=2, max_epochs=2, max_batches=1,
                       workers=0, rotation=0)


def torchrun(*argv, nproc: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={nproc}", *map(str, argv)], capture_output=True,
                          text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.mark.slow
def test_two_ranks_train_like_one_process_with_the_whole_batch(tiny_synth, tmp_path):
    from engine.checkpoint import load_checkpoint
    from engine.train import fit

    root, dataset = tiny_synth
    done = torchrun(ROOT / "tests/engine/ddp_fit.py", root, tmp_path / "ddp")
    assert done.returncode == 0, done.stderr[-3000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same order of float sums
    try:
        ones = {case: fit(dataset, model_config(case[0]), train_config(*case),
                          tmp_path / "one" / "-".join(case), device=torch.device("cpu"))
                for case in CASES}
    finally:
        torch.set_num_threads(threads)
    for loss, sampler in CASES:
        one = ones[loss, sampler]
        a = load_checkpoint(one.with_name("last.pt"))
        b = load_checkpoint(tmp_path / "ddp" / f"{loss}-{sampler}" / "last.pt")
        assert b["epoch"] == a["epoch"] == 2 and b["stats"]["batches"] == 1
        assert b["stats"]["loss"] == pytest.approx(a["stats"]["loss"], rel=1e-5, abs=1e-5), (loss, sampler)
        # weights, BatchNorm statistics (synchronised) and the class memory (one, from all ranks)
        for part in ("model", "criterion"):
            for name, tensor in a[part].items():
                torch.testing.assert_close(b[part][name], tensor, rtol=1e-5, atol=1e-5,
                                           msg=lambda m, n=f"{loss}/{sampler} {name}": f"{n}: {m}")


def _train_args(root, out, *extra) -> list[str]:
    return ["-m", "engine", "train", "--data", str(root), "--out", str(out), "--device", "cpu",
            "--arch", "resnet18", "--neck", "16", "--height", "64", "--width", "32",
            "--pretrained", "none", "--batch-size", "16", "--max-batches", "1", "--workers", "0",
            "--rotation", "0", "--threads", "1", *map(str, extra)]


@pytest.mark.slow
def test_a_killed_rank_stops_the_run_and_resume_continues_under_another_world_size(tiny_synth, tmp_path):
    import signal
    import time

    from engine.checkpoint import load_checkpoint

    root, _ = tiny_synth
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         *_train_args(root, out, "--max-epochs", "500")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / "last.pt").is_file() and launcher.poll() is None:
            assert time.monotonic() < deadline, "no epoch finished in 300 s"
            time.sleep(0.2)
        assert launcher.poll() is None, launcher.communicate()[1][-3000:]
        workers = subprocess.run(["pgrep", "-P", str(launcher.pid)], capture_output=True,
                                 text=True).stdout.split()
        assert len(workers) == 2, workers  # the ranks, children of torchrun's agent
        os.kill(int(workers[-1]), signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)   # the others are stopped: no hang
        assert launcher.returncode != 0
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    stopped = load_checkpoint(out / "last.pt")       # written atomically: never half a file
    done = epoch = int(stopped["epoch"])
    assert epoch >= 1
    # Resume in one process (world size 2 -> 1), then with 2 ranks again (1 -> 2).
    one = subprocess.run([sys.executable, *_train_args(root, out, "--resume", "--max-epochs", done + 1)],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    assert f"resuming from {out / 'last.pt'} at epoch {done + 1}" in one.stderr
    assert load_checkpoint(out / "last.pt")["epoch"] == done + 1
    two = torchrun(*_train_args(root, out, "--resume", "--max-epochs", done + 2)[1:])
    assert two.returncode == 0, two.stderr[-3000:]
    assert load_checkpoint(out / "last.pt")["epoch"] == done + 2


def _two_ranks_print_and_write_what_one_process_does(evaluate: list, tmp_path, run_cli) -> None:
    """``evaluate`` under torchrun with 2 ranks (cache ``c2``) and in one process (cache ``c1``):
    the three rows printed and the CSV files must be identical."""
    done = torchrun("-m", "engine", *evaluate, "--cache-dir", tmp_path / "c2",
                    "--csv", tmp_path / "two.csv")
    assert done.returncode == 0, done.stderr[-3000:]
    code, out, err = run_cli(*evaluate, "--cache-dir", tmp_path / "c1", "--csv", tmp_path / "one.csv")
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("qaconv")]
    assert len(rows) == 3 and rows == [line for line in done.stdout.splitlines() if line.startswith("qaconv")]
    assert (tmp_path / "two.csv").read_bytes() == (tmp_path / "one.csv").read_bytes()


@pytest.mark.slow
def test_sharded_evaluate_matches_one_process_bit_for_bit(tiny_synth, random_checkpoint, tmp_path,
                                                          run_cli, monkeypatch):
    from engine.session import Session

    root, _ = tiny_synth
    common = ["--data", root, "--checkpoint", random_checkpoint, "--device", "cpu", "--threads", "1"]
    evaluate = ["evaluate", *common, "--rerank", "--tlift"]
    monkeypatch.setenv("REID_TILE_PAIRS", "300")  # several tiles per block, spread over the ranks
    _two_ranks_print_and_write_what_one_process_does(evaluate, tmp_path, run_cli)
    # What the ranks left is what one process leaves: the viewer's session finds every map and
    # block in the cache and scores nothing.
    session = Session.open(root, random_checkpoint, device="cpu", cache_dir=tmp_path / "c2")
    assert all(session.blocks.stored(name) for name in ("qg", "qq", "gg"))
    session.prepare(rerank=True)
    assert all(session.cache_hits.values()), session.cache_hits
    assert not list((tmp_path / "c2" / "scores" / "tiles").glob("*/*.npy"))


@pytest.mark.slow
def test_sharded_two_stage_retrieval_matches_one_process_bit_for_bit(tiny_synth, random_checkpoint,
                                                                     tmp_path, run_cli, monkeypatch):
    from engine.session import Session

    root, dataset = tiny_synth
    k = 5  # well below the gallery's size: the q-q and g-g graphs are sparse
    assert k < len(dataset.query) < len(dataset.gallery)
    common = ["--data", root, "--checkpoint", random_checkpoint, "--device", "cpu", "--threads", "1"]
    evaluate = ["evaluate", *common, "--shortlist", k, "--rerank", "--tlift"]
    # One probe per batch of candidate pairs: the pairs are spread over both ranks.
    monkeypatch.setenv("REID_PAIR_BATCH_BYTES", "1")
    _two_ranks_print_and_write_what_one_process_does(evaluate, tmp_path, run_cli)
    # The block and graphs rank 0 assembled are stored as one process stores them, bit for bit,
    # and the viewer's session opens them without scoring.
    one = Session.open(root, random_checkpoint, device="cpu", cache_dir=tmp_path / "c1", shortlist=k)
    two = Session.open(root, random_checkpoint, device="cpu", cache_dir=tmp_path / "c2", shortlist=k)
    assert all(two.blocks.stored(name, k) for name in ("qg", "qq", "gg"))
    for session in (one, two):
        session.prepare(rerank=True)
    assert all(two.cache_hits.values()), two.cache_hits
    assert (two.blocks.logits["qg"] == one.blocks.logits["qg"]).all()
    for name in ("qq", "gg"):
        for a, b in zip(two.blocks.graphs[name], one.blocks.graphs[name], strict=True):
            assert a.shape[1] == k and (a == b).all()


@pytest.mark.cuda
@pytest.mark.parametrize("gpus", ["one", "all"])
def test_nccl_ranks_on_the_visible_gpus_train_and_evaluate_like_one_process(tiny_synth, random_checkpoint,
                                                                           tmp_path, run_cli, gpus):
    # NCCL with one rank and with one rank per visible GPU; GPU kernels are not bit-exact from
    # run to run, so the training comparison is looser than on the CPU.
    from engine.checkpoint import load_checkpoint

    root, _ = tiny_synth
    n = 1 if gpus == "one" else torch.cuda.device_count()
    train = [*_train_args(root, tmp_path / "ranks", "--max-epochs", "2")]
    train[train.index("cpu")] = "cuda"
    done = torchrun(*train[1:], nproc=n)
    assert done.returncode == 0, done.stderr[-3000:]
    code, _, err = run_cli(*[a.replace(str(tmp_path / "ranks"), str(tmp_path / "one")) for a in train[2:]])
    assert code == 0, err
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in ("one", "ranks"))
    assert b["stats"]["loss"] == pytest.approx(a["stats"]["loss"], rel=1e-3, abs=1e-3)
    common = ["evaluate", "--data", root, "--checkpoint", random_checkpoint, "--device", "cuda", "--rerank"]
    shared = torchrun("-m", "engine", *common, "--cache-dir", tmp_path / "c2", "--csv", tmp_path / "two.csv",
                      nproc=n)
    assert shared.returncode == 0, shared.stderr[-3000:]
    code, _, err = run_cli(*common, "--cache-dir", tmp_path / "c1", "--csv", tmp_path / "one.csv")
    assert code == 0, err
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()
