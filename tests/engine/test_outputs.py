"""The guarded writer (engine.outputs) and the bounded image reader (issue 19, items 2-5 and 10):
every output refused before the work when it would replace an input, a set of files written all
or none, stale temporaries cleaned where we write, and huge or blocking image files refused
unread (sparse files: no real gigabytes are written)."""
from __future__ import annotations

import csv
import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.__main__ import main
from engine.analysis.plot_csv import PLOT_NAMES
from engine.cli.evaluate import plot_file_names
from engine.data import load_dataset, read_image_rgb
from engine.outputs import (
    OutputRefused,
    check_output_folder,
    check_output_path,
    run_inputs,
    write_output,
    write_output_bytes,
    write_output_folder,
)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def dataset_copy(tiny_synth, tmp_path):
    """A writable copy of the tiny Market-layout benchmark."""
    root = tmp_path / "market"
    shutil.copytree(tiny_synth[0], root)
    return root


def _manifest_dataset(market: Path, name: str) -> Path:
    """The query and gallery images of ``market`` listed in a CSV manifest ``name`` beside them."""
    manifest = market / name
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "pid", "camera", "split"])
        for split, folder in (("query", "query"), ("gallery", "bounding_box_test")):
            for image in sorted((market / folder).iterdir()):
                pid, cam = image.name.split("_")[:2]
                if int(pid) >= 0:
                    writer.writerow([f"{folder}/{image.name}", int(pid), int(cam[1]) - 1, split])
    return manifest


# --------------------------------------------------------------------------- single files
def test_files_inside_the_dataset_or_cache_folder_are_never_replaced(dataset_copy, tmp_path):
    image = next((dataset_copy / "query").iterdir())
    cache = tmp_path / "cache"
    (cache / "scores").mkdir(parents=True)
    block = cache / "scores" / "block.npy"
    block.write_bytes(b"cached")
    inputs = run_inputs(tmp_path / "run" / "model.pt", data=dataset_copy, cache_dir=cache)
    linked = tmp_path / "linked"
    linked.symlink_to(dataset_copy)  # the same folder under another name
    for path in (image, linked / "query" / image.name, block):
        with pytest.raises(OutputRefused, match="one of this run's inputs"):
            check_output_path(path, force=True, inputs=inputs)
    # a new file there is not an input; the checkpoint's folder holds no inputs but its own
    assert check_output_path(dataset_copy / "ranked.csv", inputs=inputs)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.csv").write_text("x")
    assert check_output_path(tmp_path / "run" / "notes.csv", force=True, inputs=inputs)


def test_write_output_is_atomic_and_cleans_stale_temporaries(tmp_path):
    dead = _dead_pid()
    stale = [tmp_path / f".other.csv.{dead}-a1b2c3.tmp", tmp_path / f".plots.{dead}-zz9.tmp"]
    stale[0].write_bytes(b"x" * 1000)
    stale[1].mkdir()
    (stale[1] / "cmc.csv").write_text("x")
    mine = tmp_path / f".live.csv.{os.getpid()}-q1.tmp"  # a write of this process: kept
    mine.write_text("x")
    target = tmp_path / "out.csv"

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="out.csv"):
        write_output(target, fail)
    assert not target.exists() and not any(p.exists() for p in stale) and mine.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name]
    write_output_bytes(target, b"rows\n")
    assert target.read_bytes() == b"rows\n"
    with pytest.raises(OutputRefused, match="--force"):
        write_output_bytes(target, b"other\n")
    assert target.read_bytes() == b"rows\n"


# --------------------------------------------------------------------------- folders of files
def test_a_plots_folder_in_an_input_folder_needs_force_and_never_replaces_an_input(
        dataset_copy, tmp_path):
    manifest = _manifest_dataset(dataset_copy, "roc.csv")
    ckpt_folder = tmp_path / "run"
    ckpt_folder.mkdir()
    cache = tmp_path / "cache"
    inputs = run_inputs(ckpt_folder / "model.pt", data=manifest, cache_dir=cache)
    names = plot_file_names()
    for folder, what in ((dataset_copy, "dataset"), (dataset_copy / "plots", "dataset"),
                         (cache / "p", "cache"), (ckpt_folder, "checkpoint")):
        with pytest.raises(OutputRefused, match=f"inside the {what} folder"):
            check_output_folder(folder, names, inputs=inputs)
    # --force lets a new folder inside be written, but never the manifest the run reads
    assert check_output_folder(dataset_copy / "plots", names, force=True, inputs=inputs)
    before = manifest.read_bytes()
    with pytest.raises(OutputRefused, match="roc.csv.*inputs"):
        write_output_folder(dataset_copy, {"cmc.csv": b"x", "roc.csv": b"y"}, force=True,
                            inputs=inputs)
    assert manifest.read_bytes() == before and not (dataset_copy / "cmc.csv").exists()
    with pytest.raises(OutputRefused, match="not a folder"):
        check_output_folder(manifest, names, force=True)


def test_a_set_of_files_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    files = {f"{name}.csv": name.encode() for name in PLOT_NAMES}
    fresh = tmp_path / "a" / "plots"
    assert [p.name for p in write_output_folder(fresh, files)] == list(files)
    assert {p.name: p.read_bytes() for p in fresh.iterdir()} == files
    with pytest.raises(OutputRefused, match="cmc.csv.*--force"):  # existing files need --force
        write_output_folder(fresh, files)

    real_write = Path.write_bytes
    calls = []

    def full_disk(self, data):
        calls.append(self.name)
        if len(calls) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    new = {name: b"new " + data for name, data in files.items()}
    with pytest.raises(OSError, match="nothing was written"):
        write_output_folder(fresh, new, force=True)
    calls.clear()
    with pytest.raises(OSError, match="nothing was written"):
        write_output_folder(tmp_path / "b", new)
    monkeypatch.undo()
    # the old set intact, no partial new one, no temporary folder left
    assert {p.name: p.read_bytes() for p in fresh.iterdir()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["plots"]
    write_output_folder(fresh, new, force=True)
    assert {p.name: p.read_bytes() for p in fresh.iterdir()} == new


def test_evaluate_refuses_its_outputs_before_any_work(dataset_copy, tmp_path, capsys,
                                                      monkeypatch):
    import engine.session

    def no_work(*args, **kwargs):
        raise AssertionError("the outputs must be refused before the session opens")

    monkeypatch.setattr(engine.session.Session, "open", no_work)
    manifest = _manifest_dataset(dataset_copy, "roc.csv")
    not_a_folder = tmp_path / "plots.txt"
    not_a_folder.write_text("keep")
    common = ["evaluate", "--checkpoint", str(tmp_path / "model.pt"), "--device", "cpu",
              "--cache-dir", str(tmp_path / "cache")]
    cases = [
        (["--data", str(dataset_copy), "--plots", str(not_a_folder)], "not a folder"),
        (["--data", str(dataset_copy), "--plots", str(dataset_copy / "p")], "inside the dataset"),
        (["--data", str(manifest), "--plots", str(dataset_copy), "--force"], "roc.csv"),
        (["--data", str(dataset_copy), "--plots", str(tmp_path / "cache" / "p")], "inside the cache"),
        (["--data", str(dataset_copy), "--csv", str(manifest), "--force"], "inputs"),
    ]
    before = manifest.read_bytes()
    for flags, named in cases:
        assert main([*common, *flags]) == 2
        assert named in _error_line(capsys), flags
    assert manifest.read_bytes() == before and not_a_folder.read_text() == "keep"


# --------------------------------------------------------------------------- images
def _jpeg(path: Path, size_bytes: int | None = None) -> Path:
    ok, data = cv2.imencode(".jpg", np.full((32, 16, 3), 128, np.uint8))
    with open(path, "wb") as fh:
        fh.write(data.tobytes())
        if size_bytes is not None:  # sparse: no disk blocks behind the hole
            fh.truncate(size_bytes - 2)
            fh.seek(size_bytes - 2)
            fh.write(b"\xff\xd9")
    return path


def test_huge_image_files_are_refused_unread_and_listed(dataset_copy, monkeypatch):
    gallery = dataset_copy / "bounding_box_test"
    big = _jpeg(gallery / "0001_c1s1_000999_00.jpg", 2 * 2**30)
    huge = _jpeg(gallery / "0001_c2s1_000999_00.jpg", 30 * 2**30)
    data = load_dataset(dataset_copy)
    reasons = dict(data.skipped)
    for path in (big, huge):
        assert "limit for an image file" in reasons[str(path)]
        assert str(path) not in {s.path for s in data.gallery}
        with pytest.raises(ValueError, match=f"{path.name}.*MiB limit"):
            read_image_rgb(str(path))
    # the limit is the user's to set
    small = _jpeg(dataset_copy / "small.jpg")
    assert read_image_rgb(str(small)).shape == (32, 16, 3)
    monkeypatch.setenv("REID_MAX_IMAGE_MB", "0.0001")
    with pytest.raises(ValueError, match="small.jpg.*REID_MAX_IMAGE_MB"):
        read_image_rgb(str(small))
    monkeypatch.setenv("REID_MAX_IMAGE_MB", "lots")
    with pytest.raises(ValueError, match="REID_MAX_IMAGE_MB must be a positive number"):
        read_image_rgb(str(small))


def test_image_headers_are_checked_before_decoding(tmp_path):
    ok, data = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))
    data = bytearray(data.tobytes())
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xC0)
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2  # a frame of 60000 x 60000
    bomb = tmp_path / "bomb.jpg"
    bomb.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bomb.jpg is too large to decode"):
        read_image_rgb(str(bomb))
    no_frame = tmp_path / "noframe.jpg"  # markers but no frame header before the scan
    no_frame.write_bytes(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xda\x00\x02" + b"\x00" * 4096 + b"\xff\xd9")
    with pytest.raises(ValueError, match="noframe.jpg is not a readable image"):
        read_image_rgb(str(no_frame))
    fifo = tmp_path / "query.jpg"
    os.mkfifo(fifo)  # would block a plain open() for ever
    with pytest.raises(ValueError, match="query.jpg: not a regular file"):
        read_image_rgb(str(fifo))
    with pytest.raises(ValueError, match="not a regular file"):
        read_image_rgb(str(tmp_path))
