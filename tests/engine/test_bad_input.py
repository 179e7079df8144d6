"""Hostile input (issue 9): each case builds its bad input in a temporary folder and checks that
nothing is lost and the user reads one line naming the file or flag (exit code 2), not a traceback."""
from __future__ import annotations

import argparse
import os
import shutil
import stat

import numpy as np
import pytest
import torch

from engine.__main__ import main
from engine.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from engine.models import load_model
from engine.models.config import ModelConfig
from engine.outputs import OutputRefused, check_output_path
from engine.train import TrainConfig, fit
from tests.engine.conftest import one_error_line

TINY_MODEL = ModelConfig(arch="resnet18", neck=16, height=64, width=32, pretrained="none")
TINY_TRAIN = TrainConfig(batch_size=8, max_epochs=1, max_batches=1, workers=0, rotation=0)
CPU = torch.device("cpu")


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------- 1. exports
def test_output_guard_refuses_what_must_not_be_replaced(tmp_path):
    existing = tmp_path / "old.csv"
    existing.write_text("keep me")
    with pytest.raises(OutputRefused, match="exists; pass --force"):
        check_output_path(existing)
    assert check_output_path(existing, force=True) == existing
    with pytest.raises(OutputRefused, match="one of this run's inputs"):
        check_output_path(existing, force=True, inputs=[tmp_path / "other", existing])
    hard = tmp_path / "hard.csv"
    os.link(existing, hard)  # another name of an input is still that input
    with pytest.raises(OutputRefused, match="inputs"):
        check_output_path(hard, force=True, inputs=[existing])
    link = tmp_path / "link.csv"
    link.symlink_to(existing)
    with pytest.raises(OutputRefused, match="symbolic link"):
        check_output_path(link, force=True)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(OutputRefused, match="not a regular file"):
        check_output_path(fifo, force=True)
    with pytest.raises(OutputRefused, match="not a regular file"):
        check_output_path("/dev/null", force=True)
    with pytest.raises(OutputRefused, match="is a folder"):
        check_output_path(tmp_path, force=True)
    with pytest.raises(OutputRefused, match="is empty"):
        check_output_path("", force=True)
    with pytest.raises(OutputRefused, match="does not exist"):
        check_output_path(tmp_path / "no" / "such.csv")
    assert existing.read_text() == "keep me" and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.path.islink(link)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_output_guard_refuses_a_read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputRefused, match="read-only"):
            check_output_path(folder / "x.csv")
    finally:
        folder.chmod(0o700)


@pytest.mark.slow
def test_export_and_evaluate_never_replace_inputs_or_existing_files(tiny_run, tmp_path, capsys):
    root, ckpt = tiny_run
    ckpt_bytes = ckpt.read_bytes()
    image = next((root / "query").iterdir())
    image_bytes = image.read_bytes()
    common = ["--data", root, "--checkpoint", ckpt, "--device", "cpu", "--cache-dir", tmp_path / "c"]
    # the checkpoint in use, even with --force
    code, _, err = cli(capsys, "export", *common, "--out", ckpt, "--force")
    assert code == 2 and "inputs" in one_error_line(err) and ckpt.read_bytes() == ckpt_bytes
    # a dataset image, by another name
    alias = tmp_path / "alias.jpg"
    os.link(image, alias)
    code, _, err = cli(capsys, "evaluate", *common, "--csv", alias, "--force")
    assert code == 2 and "inputs" in one_error_line(err) and image.read_bytes() == image_bytes
    # a FIFO and a device are refused, not replaced
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, err = cli(capsys, "export", *common, "--out", fifo, "--force")
    assert code == 2 and "not a regular file" in one_error_line(err)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    code, _, err = cli(capsys, "export", *common, "--out", "/dev/full", "--force")
    assert code == 2 and "/dev/full" in one_error_line(err)
    # an existing file needs --force; then it is replaced
    old = tmp_path / "old.csv"
    old.write_text("old")
    code, _, err = cli(capsys, "export", *common, "--out", old, "--top-k", "2")
    assert code == 2 and "--force" in one_error_line(err) and old.read_text() == "old"
    code, out, _ = cli(capsys, "export", *common, "--out", old, "--top-k", "2", "--force")
    assert code == 0 and old.read_text().startswith("query,")
    code, _, err = cli(capsys, "export", *common, "--out", "")
    assert code == 2 and "--out is empty" in one_error_line(err)
    code, _, err = cli(capsys, "export", *common, "--out", tmp_path)
    assert code == 2 and "is a folder" in one_error_line(err)


# --------------------------------------------------------------------------- 3. messages
@pytest.mark.parametrize("flags,named", [
    (["--batch-size", "0"], "--batch-size"),
    (["--sampler", "pk", "--k", "0"], "--k"),
    (["--sampler", "pk", "--k", "100", "--batch-size", "16"], "--k 100"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--max-epochs", "0"], "--max-epochs"),
    (["--pretrained", "/no/such/weights.pt"], "--pretrained"),
])
def test_train_refuses_bad_arguments_before_any_work(tmp_path, capsys, flags, named):
    # --data does not even exist: the arguments are checked first
    code, _, err = cli(capsys, "train", "--data", tmp_path / "nothing", "--out", tmp_path / "o",
                       "--device", "cpu", *flags)
    assert code == 2 and named in one_error_line(err)
    assert not (tmp_path / "o").exists()


def test_train_pretrained_on_a_random_or_crafted_file(tiny_synth, tmp_path, capsys):
    root, _ = tiny_synth
    junk = tmp_path / "random.pt"
    junk.write_bytes(os.urandom(2048))
    crafted = tmp_path / "crafted.pt"
    torch.save({"model": argparse.Namespace(a=1)}, crafted)
    for path, says in ((junk, "damaged or not a torch weights file"), (crafted, "refused for safety")):
        code, _, err = cli(capsys, "train", "--data", root, "--out", tmp_path / "o", "--device", "cpu",
                           "--arch", "resnet18", "--height", "64", "--width", "32",
                           "--pretrained", path, "--max-batches", "1", "--workers", "0")
        line = one_error_line(err)
        assert code == 2 and str(path) in line and says in line and "weights_only" not in line


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(ValueError):
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--batch-size", "0",
              "--debug"])


def test_full_cache_runs_uncached_with_one_warning(tiny_run, tmp_path, capsys, caplog, monkeypatch):
    root, ckpt = tiny_run
    cache = tmp_path / "cache"
    cache.mkdir()
    from engine import features

    def no_space(*args, **kwargs):  # a full or read-only cache folder, even for root
        raise OSError(28, "No space left on device", str(args[0]))

    monkeypatch.setattr(features, "_warned_uncached", set())
    monkeypatch.setattr(np, "save", no_space)
    code, out, err = cli(capsys, "evaluate", "--data", root, "--checkpoint", ckpt,
                         "--device", "cpu", "--cache-dir", cache)
    assert code == 0 and "raw" in out, err
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1 and str(cache) in warnings[0].getMessage()
    assert not any(cache.rglob("*.npy"))  # nothing half-written left behind


def test_full_disk_names_the_file_not_our_temporary(tmp_path):
    from engine.utils import atomic_path

    target = tmp_path / "out.csv"
    with pytest.raises(OSError, match=f"cannot write {target}") as info:
        with atomic_path(target) as tmp:
            raise OSError(28, "No space left on device", str(tmp))
    assert "No space left" in str(info.value) and os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- 4. checkpoints
def _tiny_state(tiny_run) -> dict:
    return load_checkpoint(tiny_run[1])


def test_crafted_config_is_refused_before_building(tiny_run, tmp_path):
    state = _tiny_state(tiny_run)
    state["config"]["neck"] = 2_000_000
    save_checkpoint(tmp_path / "huge.pt", state)
    with pytest.raises(CheckpointError, match="neck"):
        load_model(tmp_path / "huge.pt")
    state = _tiny_state(tiny_run)
    state["config"]["arch"] = "resnet9000"
    save_checkpoint(tmp_path / "arch.pt", state)
    with pytest.raises(CheckpointError, match="arch must be one of"):
        load_model(tmp_path / "arch.pt")
    state = _tiny_state(tiny_run)
    state["config"]["height"] = 128  # the matcher's fc is sized for 64 x 32
    save_checkpoint(tmp_path / "size.pt", state)
    with pytest.raises(CheckpointError, match="matcher.fc.weight"):
        load_model(tmp_path / "size.pt")


def test_checkpoint_with_code_inside_is_refused_in_our_words(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "model": argparse.Namespace(a=1)}, path)
    with pytest.raises(CheckpointError, match="refused for safety") as info:
        load_checkpoint(path)
    assert "weights_only" not in str(info.value) and "issue" not in str(info.value)


@pytest.mark.slow
def test_non_finite_weights_are_named_on_load_and_never_saved(tiny_run, tiny_synth, tmp_path,
                                                             monkeypatch):
    state = _tiny_state(tiny_run)
    state["model"]["matcher.fc.weight"][0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", state)
    with pytest.raises(CheckpointError, match="matcher.fc.weight"):
        load_model(tmp_path / "nan.pt")
    _, dataset = tiny_synth
    # a learning rate that diverges: the run stops with a message and writes no model
    with pytest.raises(ValueError, match="--lr"):
        TrainConfig(lr=float("nan"))
    import engine.train as train_module

    real_epoch = train_module.train_one_epoch

    def diverging_epoch(model, *args, **kwargs):
        stats = real_epoch(model, *args, **kwargs)
        with torch.no_grad():
            model.matcher.fc.weight.fill_(float("inf"))
        return stats

    monkeypatch.setattr(train_module, "train_one_epoch", diverging_epoch)
    with pytest.raises(ValueError, match="diverged.*matcher.fc.weight"):
        fit(dataset, TINY_MODEL, TINY_TRAIN, tmp_path / "run", device=CPU)
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.slow
def test_max_epochs_reached_does_not_claim_it_saved(tiny_run, tiny_synth, tmp_path, capsys):
    root, _ = tiny_synth
    out = tmp_path / "run"
    args = ["train", "--data", root, "--out", out, "--device", "cpu", "--arch", "resnet18",
            "--neck", "16", "--height", "64", "--width", "32", "--pretrained", "none",
            "--batch-size", "8", "--max-batches", "1", "--workers", "0", "--max-epochs", "1"]
    assert cli(capsys, *args)[0] == 0
    before = (out / "model.pt").read_bytes()
    code, stdout, _ = cli(capsys, *args, "--resume")
    assert code == 0 and "saved" not in stdout and "unchanged" in stdout
    assert (out / "model.pt").read_bytes() == before


# --------------------------------------------------------------------------- 6. data layer
def _copy_images(src_root, dst, n=6):
    dst.mkdir(parents=True, exist_ok=True)
    names = sorted(os.listdir(src_root / "bounding_box_test"))[:n]
    for name in names:
        shutil.copy(src_root / "bounding_box_test" / name, dst / name)
    return names


def test_market_camera_zero_is_rejected_and_listed(tiny_synth, tmp_path):
    from engine.data import load_dataset

    root, _ = tiny_synth
    copy = tmp_path / "market"
    shutil.copytree(root, copy)
    src = next((copy / "query").iterdir())
    bad = copy / "query" / ("0001_c0s1_000001_00.jpg")
    shutil.copy(src, bad)
    dataset = load_dataset(copy)
    assert all(s.cam >= 0 for s in dataset.query + dataset.gallery)
    assert any(path == str(bad) and "c0" in reason for path, reason in dataset.skipped)


def test_folder_layout_camera_zero_is_rejected_and_listed(tiny_synth, tmp_path):
    from engine.data import load_dataset

    root, _ = tiny_synth
    names = _copy_images(root, tmp_path / "src")
    for split, pid, name in (("query", 7, names[0]), ("gallery", 7, names[1]),
                             ("gallery", 8, names[2])):
        (tmp_path / "folder" / split / str(pid)).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / "src" / name, tmp_path / "folder" / split / str(pid) / name)
    bad = tmp_path / "folder" / "gallery" / "7" / "person_c0_0001.jpg"
    shutil.copy(tmp_path / "src" / names[3], bad)
    dataset = load_dataset(tmp_path / "folder", "folder")
    assert all(s.cam >= 0 for s in dataset.query + dataset.gallery)
    assert str(bad) not in {s.path for s in dataset.gallery}
    assert any(path == str(bad) and "c0" in reason for path, reason in dataset.skipped)


def test_manifest_rows_outside_its_folder_duplicates_and_bad_numbers(tiny_synth, tmp_path, caplog):
    from engine.data import load_dataset

    root, _ = tiny_synth
    names = _copy_images(root, tmp_path / "data" / "img")
    outside = tmp_path / "secret.jpg"
    shutil.copy(tmp_path / "data" / "img" / names[0], outside)
    rows = ["path,pid,camera,time,split",
            f"img/{names[0]},1,0,1.0,query",
            f"img/{names[1]},1,1,2.0,gallery",
            f"img/{names[1]},1,1,2.0,gallery",        # exact duplicate
            f"img/{names[2]},2,0,3.0,query",
            f"img/{names[2]},2,0,3.0,gallery",        # same image in query and gallery
            f"img/{names[3]},2,99999999999999999999,4.0,gallery",
            f"img/{names[4]},3,1,inf,gallery",
            "../secret.jpg,3,0,5.0,gallery",
            f"{outside},3,0,5.0,gallery"]
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    dataset = load_dataset(manifest)
    reasons = " | ".join(r for _, r in dataset.skipped)
    assert "duplicate gallery record" in reasons and "outside 0..999999" in reasons
    assert "not a finite number" in reasons and reasons.count("outside the manifest's folder") == 2
    assert len(dataset.gallery) == 2 and dataset.has_times
    assert any("both query and gallery" in r.getMessage() for r in caplog.records)
    allowed = load_dataset(manifest, allow_outside=True)
    assert sum(s.path.endswith("secret.jpg") for s in allowed.gallery) == 2


def test_info_with_an_infinite_time_says_so(tiny_synth, tmp_path, capsys):
    root, _ = tiny_synth
    names = _copy_images(root, tmp_path / "d")
    (tmp_path / "d" / "m.csv").write_text(
        "path,pid,camera,time,split\n"
        f"{names[0]},1,0,inf,query\n{names[1]},1,1,2,gallery\n{names[2]},2,0,1,query\n")
    code, out, _ = cli(capsys, "info", "--data", tmp_path / "d" / "m.csv")
    assert code == 0 and "timestamps: yes" in out and "skipped 1" in out


@pytest.mark.slow
def test_evaluate_prints_the_rows_it_computed_before_a_failure(tiny_run, tmp_path, capsys,
                                                               monkeypatch):
    root, ckpt = tiny_run
    from engine.postprocess import pipeline

    def failing(*args, **kwargs):  # +RR+TLift lifts the +RR matrix: make that step fail
        raise ValueError("TLift failed here")

    monkeypatch.setattr(pipeline, "lift_distances", failing)
    code, out, err = cli(capsys, "evaluate", "--data", root, "--checkpoint", ckpt, "--device", "cpu",
                         "--cache-dir", tmp_path / "c", "--rerank", "--tlift",
                         "--csv", tmp_path / "rows.csv")
    assert code == 2 and "TLift failed here" in one_error_line(err)
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["raw", "+RR"]
    assert (tmp_path / "rows.csv").read_text().count("\n") == 3


# --------------------------------------------------------------------------- 2. undecodable images
def _png_header_only(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_undecodable_images_are_skipped_listed_and_remembered(tiny_run, tmp_path, caplog):
    from engine.data import load_dataset
    from engine.session import Session

    root, ckpt = tiny_run
    data = tmp_path / "data"
    names = _copy_images(root, data, n=8)
    (data / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000) + b"\xff\xd9")
    (data / "garbage.bmp").write_bytes(b"BM" + os.urandom(3000))
    (data / "garbage.webp").write_bytes(b"RIFF\x00\x10\x00\x00WEBP" + os.urandom(3000))
    (data / "notes.txt").write_text("not an image at all\n")
    (data / "huge.png").write_bytes(_png_header_only(20000, 20000))
    bad = ["garbage.jpg", "garbage.bmp", "garbage.webp", "notes.txt", "huge.png"]
    rows = ["path,pid,camera,time,split"]
    rows += [f"{n},{1 + i % 3},{i % 2},{i},{'query' if i < 3 else 'gallery'}"
             for i, n in enumerate(names)]
    rows += [f"{n},9,1,1,gallery" for n in bad] + ["garbage.jpg,9,0,1,query"]
    (data / "manifest.csv").write_text("\n".join(rows) + "\n")
    cache = tmp_path / "cache"

    mine = load_dataset(str(data))
    before = (list(mine.query), list(mine.gallery), list(mine.skipped))
    session = Session.open(mine, ckpt, device="cpu", cache_dir=cache)
    session.prepare(rerank=False)  # the run goes on
    assert len(session.dataset.gallery) == 5 and len(session.dataset.query) == 3
    assert (mine.query, mine.gallery, mine.skipped) == before  # the caller's Dataset is kept
    assert session.gallery_maps.shape[0] == 5 and session.query_maps.shape[0] == 3
    assert session.logits["qg"].shape == (3, 5) and len(session.gallery_cams) == 5
    skipped = {os.path.basename(p): r for p, r in session.dataset.skipped}
    assert set(bad) <= set(skipped) and "too large" in skipped["huge.png"]
    assert any("cannot be decoded" in r.getMessage() for r in caplog.records)

    # a later run skips them at load, listed, and finds its maps in the cache without decoding
    again = Session.open(str(data), ckpt, device="cpu", cache_dir=cache)
    assert len(again.dataset.gallery) == 5
    assert sorted(os.path.basename(p) for p, r in again.dataset.skipped
                  if "remembered" in r) == sorted(bad)
    again.extract()
    assert again.cache_hits["features query"] and again.cache_hits["features gallery"]
    # a bad file that is fixed is tried again
    shutil.copy(data / names[0], data / "notes.txt")
    third = Session.open(str(data), ckpt, device="cpu", cache_dir=cache)
    assert len(third.dataset.gallery) == 6


# --------------------------------------------------------------------------- 5. leftovers
def _dead_pid() -> int:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_runs_are_removed_and_only_those(tiny_run, tmp_path):
    import subprocess
    import sys

    from engine.leftovers import remove_stale_temporaries
    from engine.session import Session

    dead = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        cache = tmp_path / "cache"
        entry = cache / "features" / "k1"
        (cache / "scores").mkdir(parents=True)
        entry.mkdir(parents=True)
        stale = [cache / "scores" / f".abc.npy.{dead}-x1y2z3.tmp", entry / f".maps.{dead}.tmp.npy",
                 tmp_path / f".model.pt.{dead}-q9w8e7.tmp"]
        kept = [cache / "scores" / f".abc.npy.{live.pid}-x1y2z3.tmp",  # its run is still writing
                entry / f".maps.{live.pid}.tmp.npy", cache / "scores" / "abc.npy",
                tmp_path / "model.pt", tmp_path / "notes.tmp", tmp_path / ".hidden.123.tmp"]
        partial = cache / "demo" / f".B.{dead}-0a1b2c3d.partial"
        (partial / "query").mkdir(parents=True)
        for path in stale + kept:
            path.write_bytes(b"x")
        Session.open(tiny_run[0], tiny_run[1], device="cpu", cache_dir=cache)
        assert not any(p.exists() for p in stale[:2]) and not partial.exists()
        assert remove_stale_temporaries(tmp_path) == 1 and not stale[2].exists()
        assert all(p.exists() for p in kept)
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow
def test_killed_synth_leaves_no_workers_and_its_partial_folder_goes(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    def children(pid: int) -> list[int]:
        found = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as fh:
                        fields = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == pid:
                    found.append(int(d))
        return found

    if not os.path.isdir("/proc"):
        pytest.skip("needs /proc to find the worker processes")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "synth", "--domain", "B", "--out",
                             str(tmp_path / "B"), "--workers", "2", "--train-ids", "200"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        workers = [c for c in children(proc.pid)
                   if "spawn_main" in open(f"/proc/{c}/cmdline").read().replace("\0", " ")]
        if len(workers) >= 2 and any(p.suffix == ".partial" for p in tmp_path.iterdir()):
            break
        time.sleep(0.2)
    assert proc.poll() is None and len(workers) >= 2, "the generator finished before it was killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{w}") for w in workers):
        time.sleep(0.2)
    alive = []
    for w in workers:
        try:
            with open(f"/proc/{w}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(w)
        except OSError:
            pass
    assert not alive
    assert any(p.name.endswith(".partial") for p in tmp_path.iterdir())
    from engine.leftovers import remove_stale_temporaries

    assert remove_stale_temporaries(tmp_path) == 1
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_training_skips_undecodable_training_images(tiny_synth, tmp_path, caplog):
    """A garbage body behind valid JPEG markers passes the loader; training skips and lists it."""
    import dataclasses

    from engine.train import decodable

    _, dataset = tiny_synth
    garbage = tmp_path / "0001_c1s1_000001_00.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000) + b"\xff\xd9")
    bad_sample = dataset.train[0]._replace(path=str(garbage))
    train = [bad_sample] + list(dataset.train)
    assert decodable(train) == list(dataset.train)
    with caplog.at_level("WARNING"):
        path = fit(dataclasses.replace(dataset, train=train), TINY_MODEL, TINY_TRAIN,
                   tmp_path / "run", device=CPU)
    assert path.is_file() and str(garbage) in caplog.text
