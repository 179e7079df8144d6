"""Dataset parsers, timestamps, layout detection and bad-input handling on trees built here."""
from __future__ import annotations

import logging
import os

import cv2
import numpy as np
import pytest

from engine.data import LAYOUT_NAMES, LayoutError, load_dataset
from engine.data.layouts import DUKE_FPS, DUKE_OFFSETS, MARKET_FPS


def _image_bytes(ext: str, seed: int = 0) -> bytes:
    img = np.random.default_rng(seed).integers(0, 255, (16, 8, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def _touch(path, ext=".jpg", data=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(_image_bytes(ext) if data is None else data)


MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg",
                           "0007_c1s2_000100_01.jpg", "0010_c3s1_000050_00.jpg"],
    "query": ["0003_c1s1_000200_00.jpg", "0003_c2s2_000040_00.jpg"],
    "bounding_box_test": ["0003_c1s2_000300_02.jpg", "0003_c3s1_000010_01.jpg",
                          "0000_c1s1_000500_01.jpg", "-1_c1s1_000600_01.jpg",
                          "0004_c2s1_001000_04.jpg"],
}


def make_market(root):
    for sub, names in MARKET.items():
        for n in names:
            _touch(os.path.join(root, sub, n))
    return root


def test_market_parse_pids_cams_and_relabel(tmp_path):
    ds = load_dataset(make_market(tmp_path / "m"))
    assert ds.name == "market1501"
    # train pids 2, 7, 10 -> 0, 1, 2 in sorted order
    assert sorted({s.pid for s in ds.train}) == [0, 1, 2]
    by_name = {os.path.basename(s.path): s for s in ds.train}
    assert by_name["0010_c3s1_000050_00.jpg"].pid == 2
    assert by_name["0002_c1s1_000451_03.jpg"].cam == 0
    # junk dropped, distractor pid 0 kept
    pids = [s.pid for s in ds.gallery]
    assert -1 not in pids and 0 in pids
    assert len(ds.gallery) == 4 and len(ds.query) == 2


def test_market_timestamps_lay_sessions_end_to_end(tmp_path):
    ds = load_dataset(make_market(tmp_path / "m"))
    t = {os.path.basename(s.path): s.time for s in ds.train + ds.query + ds.gallery}
    # camera 1: session 1's largest frame over all splits is 600 (the junk image counts too,
    # it exists on disk) -> session 2 starts at 600.
    assert t["0002_c1s1_000451_03.jpg"] == pytest.approx(451 / MARKET_FPS)
    assert t["0007_c1s2_000100_01.jpg"] == pytest.approx((100 + 600) / MARKET_FPS)
    assert t["0003_c1s2_000300_02.jpg"] == pytest.approx((300 + 600) / MARKET_FPS)
    # camera 2: session 1's largest frame is 1000
    assert t["0003_c2s2_000040_00.jpg"] == pytest.approx((40 + 1000) / MARKET_FPS)


def test_market_found_under_release_folder_name(tmp_path):
    make_market(tmp_path / "Market-1501-v15.09.15")
    ds = load_dataset(tmp_path)
    assert ds.name == "market1501" and ds.root.endswith("Market-1501-v15.09.15")


def test_duke_times_use_camera_offsets(tmp_path):
    root = tmp_path / "DukeMTMC-reID"
    _touch(root / "bounding_box_train" / "0005_c2_f0046985.jpg")
    _touch(root / "query" / "0007_c8_f0000100.jpg")
    _touch(root / "bounding_box_test" / "0007_c5_f0000200.jpg")
    ds = load_dataset(tmp_path)
    assert ds.name == "dukemtmc"
    assert ds.train[0].cam == 1
    assert ds.train[0].time == pytest.approx((46985 + DUKE_OFFSETS[1]) / DUKE_FPS)
    assert ds.query[0].time == pytest.approx((100 + 46765) / DUKE_FPS)
    assert ds.gallery[0].time == pytest.approx(200 / DUKE_FPS)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_msmt_lists(tmp_path, version):
    root = tmp_path / ("MSMT17_V1" if version == "v1" else "MSMT17_V2")
    train_dir, test_dir = ("train", "test") if version == "v1" else ("mask_train_v2", "mask_test_v2")
    files = {
        "train": ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0001/0001_002_05_0303noon_0020_1.jpg 1"],
        "val": ["0002/0002_004_15_0303afternoon_0030_0.jpg 2"],
        "query": ["0100/0100_000_03_0303morning_0015_0.jpg 100"],
        "gallery": ["0100/0100_001_07_0303morning_0016_0.jpg 100", "broken line",
                    "0101/0101_001_xx_0303_0016_0.jpg 101"],
    }
    for lst, lines in files.items():
        folder = train_dir if lst in ("train", "val") else test_dir
        for line in lines:
            parts = line.split()
            if len(parts) == 2:
                _touch(root / folder / parts[0])
        (root / f"list_{lst}.txt").parent.mkdir(parents=True, exist_ok=True)
        (root / f"list_{lst}.txt").write_text("\n".join(lines) + "\n")
    ds = load_dataset(tmp_path)
    assert ds.name == "msmt17"
    assert len(ds.train) == 3 and sorted(s.pid for s in ds.train) == [0, 1, 2]
    assert [s.cam for s in ds.train] == [0, 4, 14]
    assert ds.query[0].cam == 2 and ds.query[0].time is None
    assert len(ds.gallery) == 1 and ds.gallery[0].cam == 6
    reasons = " ".join(r for _, r in ds.skipped)
    assert "expected '<path> <pid>'" in reasons and "third '_' field" in reasons


@pytest.mark.parametrize("variant", ["detected", "labeled"])
def test_cuhk03_np_pngs(tmp_path, variant):
    root = tmp_path / "cuhk03-np" / variant
    _touch(root / "bounding_box_train" / "0001_c1_1.png", ".png")
    _touch(root / "bounding_box_train" / "0001_c2_2.png", ".png")
    _touch(root / "query" / "0005_c1_1.png", ".png")
    _touch(root / "bounding_box_test" / "0005_c2_3.png", ".png")
    ds = load_dataset(tmp_path / "cuhk03-np", name=f"cuhk03-np-{variant}")
    assert ds.name == f"cuhk03-np-{variant}"
    assert [s.cam for s in ds.train] == [0, 1] and ds.query[0].time is None
    detected = load_dataset(tmp_path)  # detection finds the variant that exists
    assert detected.name == f"cuhk03-np-{variant}"


def test_pid_folder_flat_and_split(tmp_path):
    flat = tmp_path / "flat"
    for pid, n in ((3, 3), (4, 1), (0, 2)):
        for i in range(n):
            _touch(flat / str(pid) / f"img{i}.jpg")
    ds = load_dataset(flat)
    assert ds.name == "folder" and ds.train == []
    assert sorted(s.pid for s in ds.query) == [0, 3]
    assert len(ds.gallery) == 4
    # without camera tokens queries and gallery are different cameras, so matches count
    assert {s.cam for s in ds.query} == {0} and {s.cam for s in ds.gallery} == {1}

    split = tmp_path / "split"
    _touch(split / "train" / "12" / "a_c2.jpg")
    _touch(split / "query" / "7" / "q_c1.jpg")
    _touch(split / "gallery" / "7" / "g_c3.jpg")
    ds = load_dataset(split)
    assert ds.train[0].pid == 0 and ds.train[0].cam == 1
    assert ds.query[0].cam == 0 and ds.gallery[0].cam == 2


def test_csv_manifest_with_bad_rows(tmp_path, caplog):
    root = tmp_path / "own"
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        _touch(root / "imgs" / name)
    (root / "manifest.csv").write_text(
        "path,pid,camera,time,split\n"
        "imgs/a.jpg,1,0,12.5,query\n"
        "imgs/b.jpg,1,1,,gallery\n"
        "imgs/c.jpg,x,1,3,gallery\n"          # bad pid
        "imgs/d.jpg,2,1,4,elsewhere\n"        # bad split
        ",3,1,4,gallery\n"                    # no path
        "imgs/missing.jpg,4,0,1,gallery\n"    # file missing
        "imgs/d.jpg,5,1,7.25\n")              # split defaults to gallery
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    assert ds.name == "csv"
    assert [(s.pid, s.cam, s.time) for s in ds.query] == [(1, 0, 12.5)]
    assert [(s.pid, s.time) for s in ds.gallery] == [(1, None), (5, 7.25)]
    assert len(ds.skipped) == 4
    assert any("manifest.csv:4" in w for w, _ in ds.skipped)
    assert "missing.jpg" in caplog.text  # every skipped item is listed in one message


def test_csv_manifest_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("file,person\nx.jpg,1\n")
    with pytest.raises(LayoutError, match="camera"):
        load_dataset(tmp_path)


def test_unknown_layout_names_every_layout_tried(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(LayoutError) as err:
        load_dataset(tmp_path)
    for name in LAYOUT_NAMES:
        assert name in str(err.value)


def test_unknown_layout_name(tmp_path):
    with pytest.raises(LayoutError, match="known layouts"):
        load_dataset(tmp_path, name="viper")


def test_corrupt_images_are_skipped_and_listed(tmp_path, caplog):
    root = make_market(tmp_path / "m")
    good = _image_bytes(".jpg")
    _touch(root / "bounding_box_test" / "0003_c2s1_000011_01.jpg", data=good[: len(good) // 2])
    _touch(root / "bounding_box_test" / "0003_c2s1_000012_01.jpg", data=b"")
    _touch(root / "query" / "0004_c1s1_000013_01.jpg", data=b"GIF89a not a jpeg at all")
    with caplog.at_level(logging.WARNING):
        ds = load_dataset(root)
    reasons = dict(ds.skipped)
    assert len(reasons) == 3
    assert "truncated" in reasons[str(root / "bounding_box_test" / "0003_c2s1_000011_01.jpg")]
    assert all(os.path.basename(p) in caplog.text for p in reasons)
    assert len(ds.gallery) == 4 and len(ds.query) == 2


def test_empty_split_is_an_error_naming_it(tmp_path):
    root = tmp_path / "m"
    for n in MARKET["bounding_box_test"]:
        _touch(root / "bounding_box_test" / n)
    os.makedirs(root / "query")
    with pytest.raises(LayoutError, match="query split"):
        load_dataset(root, name="market1501")
    with pytest.raises(LayoutError, match="train split"):
        load_dataset(root, name="market1501", require=("train",))
    assert load_dataset(root, name="market1501", require=("gallery",)).gallery


def test_missing_folder(tmp_path):
    with pytest.raises(LayoutError, match="does not exist"):
        load_dataset(tmp_path / "nope")


# --------------------------------------------------------------------------- issue 19: 9, 13, 15, 16
BIG = "9" * 20  # beyond int64


def test_market_style_names_with_huge_numbers_are_skipped_and_listed(tmp_path):
    root = make_market(tmp_path / "m")
    bad = [root / "bounding_box_test" / f"{BIG}_c1s1_000001_00.jpg",
           root / "query" / f"0003_c{BIG}s1_000001_00.jpg",
           root / "bounding_box_test" / "0003_c²s1_000001_00.jpg",
           root / "bounding_box_test" / f"0003_c1s1_{'9' * 230}_00.jpg"]
    for path in bad:
        _touch(path)
    ds = load_dataset(root)
    reasons = dict(ds.skipped)
    assert all(str(p) in reasons for p in bad)
    assert "pid" in reasons[str(bad[0])] and "camera" in reasons[str(bad[1])]
    assert len(ds.gallery) == 4 and len(ds.query) == 2
    assert max(abs(s.pid) for s in ds.query + ds.gallery) < 2**31

    duke = tmp_path / "DukeMTMC-reID"
    _touch(duke / "query" / "0007_c8_f0000100.jpg")
    _touch(duke / "bounding_box_test" / "0007_c5_f0000200.jpg")
    _touch(duke / "bounding_box_test" / f"{BIG}_c5_f0000200.jpg")
    ds = load_dataset(duke)
    assert ds.name == "dukemtmc" and len(ds.gallery) == 1
    assert any(BIG in p and "pid" in r for p, r in ds.skipped)


def test_folder_layout_sub_folders_that_are_not_pids_are_skipped_and_listed(tmp_path):
    root = tmp_path / "split"
    _touch(root / "query" / "7" / "q_c1.jpg")
    _touch(root / "gallery" / "7" / "g_c3.jpg")
    for name in ("²", "٣", BIG, "x1"):
        _touch(root / "gallery" / name / "g_c2.jpg")
    _touch(root / "gallery" / "7" / f"g_c{BIG}.jpg")
    ds = load_dataset(root)
    assert ds.name == "folder" and [s.pid for s in ds.gallery] == [7]
    skipped = dict(ds.skipped)
    for name in ("²", "٣", BIG, "x1"):
        assert str(root / "gallery" / name) in skipped
    assert "camera" in skipped[str(root / "gallery" / "7" / f"g_c{BIG}.jpg")]


def test_a_market_style_set_without_query_names_that_folder(tmp_path):
    root = make_market(tmp_path / "synthetic")
    (root / "synthetic_images.csv").write_text("path,view,occluder\nx.jpg,front,none\n")
    for name in MARKET["query"]:
        os.remove(root / "query" / name)
    os.rmdir(root / "query")
    with pytest.raises(LayoutError, match=r"query split .*market1501.*folder query/ is missing"):
        load_dataset(root)


def test_a_manifest_time_nan_skips_that_row_and_keeps_the_timestamps(tmp_path):
    root = tmp_path / "own"
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        _touch(root / "imgs" / name)
    (root / "manifest.csv").write_text(
        "path,pid,camera,time,split\n"
        "imgs/a.jpg,1,0,12.5,query\n"
        "imgs/b.jpg,1,1,20,gallery\n"
        "imgs/c.jpg,2,1,nan,gallery\n"
        f"imgs/c.jpg,{BIG},1,3,gallery\n"
        "imgs/c.jpg,2,²,3,gallery\n")
    ds = load_dataset(root)
    assert ds.has_times and [s.time for s in ds.gallery] == [20.0]
    reasons = {w.rsplit(":", 1)[1]: r for w, r in ds.skipped}
    assert "nan" in reasons["4"] and "pid" in reasons["5"] and "camera" in reasons["6"]


def _msmt(root, gallery_lines):
    for lst, line in (("train", "0000/0000_000_01_a_0015_0.jpg 0"),
                      ("query", "0100/0100_000_03_a_0015_0.jpg 100")):
        folder = "train" if lst == "train" else "test"
        _touch(root / folder / line.split()[0])
        (root / f"list_{lst}.txt").write_text(line + "\n")
    _touch(root / "test" / "0100" / "0100_001_07_a_0016_0.jpg")
    (root / "list_gallery.txt").write_text("\n".join(gallery_lines) + "\n")


def test_msmt_list_paths_outside_the_dataset_are_refused_per_row(tmp_path):
    outside = tmp_path / "outside" / "0100_001_07_x.jpg"
    _touch(outside)
    root = tmp_path / "MSMT17_V1"
    lines = ["0100/0100_001_07_a_0016_0.jpg 100",
             "../../outside/0100_001_07_x.jpg 100",
             f"{outside} 100",
             f"0100/0100_001_07_a_0016_0.jpg {BIG}",
             "0100/0100_001_07_a_0016_0.jpg ²"]
    _msmt(root, lines)
    ds = load_dataset(root)
    assert [os.path.basename(s.path) for s in ds.gallery] == ["0100_001_07_a_0016_0.jpg"]
    reasons = {w.rsplit(":", 1)[1]: r for w, r in ds.skipped}
    assert "outside the dataset's folder" in reasons["2"] and "outside" in reasons["3"]
    assert "pid" in reasons["4"] and "<path> <pid>" in reasons["5"]
    allowed = load_dataset(root, allow_outside=True)
    assert sum(s.path.endswith("0100_001_07_x.jpg") for s in allowed.gallery) == 2
    assert all(os.path.realpath(s.path) == str(outside.resolve())
               for s in allowed.gallery if s.path.endswith("0100_001_07_x.jpg"))
