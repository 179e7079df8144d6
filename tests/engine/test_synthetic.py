"""The synthetic benchmark: determinism, Market layout, split rules and time structure."""
from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter, defaultdict

import pytest

from engine.data.synthetic import generate, read_settings

TINY = dict(num_train_ids=12, num_test_ids=10, num_distractors=8, num_junk=5)
NAME_RE = re.compile(r"^(-1|\d{4})_c(\d)s(\d)_(\d{6})_(\d{2})\.jpg$")
FOLDERS = ("bounding_box_train", "bounding_box_test", "query")
TAU = 100.0  # TLift's co-occurrence window, seconds (docs/arithmetic.md section 9)


def _files(root) -> dict[str, bytes]:
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


def _names(root) -> dict[str, list[tuple[int, int, int, int, int]]]:
    """Folder -> parsed (pid, cam, session, frame, index) of every file name."""
    out = {}
    for sub in FOLDERS:
        rows = []
        for name in sorted(os.listdir(os.path.join(root, sub))):
            m = NAME_RE.match(name)
            assert m is not None, f"{sub}/{name} is not a Market file name"
            rows.append(tuple(int(g) for g in m.groups()))
        out[sub] = rows
    return out


def _truth(root) -> list[dict]:
    with open(os.path.join(root, "synthetic_images.csv"), encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    base = tmp_path_factory.mktemp("synth")
    roots = {
        "a0": base / "a0", "a0_again": base / "a0_again", "a1": base / "a1", "b0": base / "b0",
    }
    data = {
        "a0": generate(roots["a0"], domain="A", seed=0, **TINY),
        "a0_again": generate(roots["a0_again"], domain="A", seed=0, **TINY),
        "a1": generate(roots["a1"], domain="A", seed=1, **TINY),
        "b0": generate(roots["b0"], domain="B", seed=0, **TINY),
    }
    return roots, data


def test_same_seed_gives_identical_bytes(bench):
    roots, _ = bench
    first, second = _files(roots["a0"]), _files(roots["a0_again"])
    assert sorted(first) == sorted(second)
    assert sum(k.endswith(".jpg") for k in first) > 100
    for key in first:
        assert first[key] == second[key], key


def test_different_seed_or_domain_differs(bench):
    roots, _ = bench
    a0, a1, b0 = _files(roots["a0"]), _files(roots["a1"]), _files(roots["b0"])
    for other in (a1, b0):
        common = [k for k in a0 if k in other and k.endswith(".jpg")]
        assert set(a0) != set(other) or any(a0[k] != other[k] for k in common)


def test_test_split_does_not_depend_on_the_train_split(tmp_path, bench):
    roots, _ = bench
    generate(tmp_path / "no_train", domain="A", seed=0, **{**TINY, "num_train_ids": 0})
    without, with_train = _files(tmp_path / "no_train"), _files(roots["a0"])
    test_side = [k for k in with_train if k.startswith(("query", "bounding_box_test"))]
    assert sorted(test_side) == sorted(k for k in without if k.endswith(".jpg"))
    assert all(without[k] == with_train[k] for k in test_side)


def test_parallel_workers_write_the_same_bytes(tmp_path, bench):
    roots, _ = bench
    generate(tmp_path / "w2", domain="A", seed=0, workers=2, **TINY)
    assert _files(tmp_path / "w2") == _files(roots["a0"])


def test_market_layout_round_trips_through_the_loader(bench):
    roots, data = bench
    for key in ("a0", "b0"):
        names = _names(roots[key])
        ds = data[key]
        # The loader keeps everything but junk (pid -1), with the same counts per split.
        assert len(ds.train) == len(names["bounding_box_train"])
        assert len(ds.query) == len(names["query"])
        assert len(ds.gallery) == sum(r[0] != -1 for r in names["bounding_box_test"])
        assert ds.num_train_pids == len({r[0] for r in names["bounding_box_train"]}) == TINY["num_train_ids"]
        assert {s.pid for s in ds.query} == {r[0] for r in names["query"]}
        with open(os.path.join(roots[key], "synthetic.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
        counts = meta["counts"]
        assert counts["train"]["images"] == len(ds.train)
        assert counts["query"]["images"] == len(ds.query)
        assert counts["gallery"]["images"] == len(ds.gallery) + TINY["num_junk"]
        assert counts["gallery"]["distractors"] == TINY["num_distractors"]
        assert read_settings(roots[key])["domain"] == key[0].upper()


def test_junk_and_distractors_are_where_market_puts_them(bench):
    roots, data = bench
    names = _names(roots["a0"])
    test_pids = [r[0] for r in names["bounding_box_test"]]
    assert test_pids.count(-1) == TINY["num_junk"]
    assert test_pids.count(0) == TINY["num_distractors"]
    assert all(r[0] > 0 for r in names["bounding_box_train"] + names["query"])
    ds = data["a0"]
    assert all(s.pid != -1 for s in ds.train + ds.query + ds.gallery)
    assert sum(s.pid == 0 for s in ds.gallery) == TINY["num_distractors"]


def test_file_names_are_unique_across_folders(bench):
    roots, _ = bench
    keys = [r[1:] for rows in _names(roots["a0"]).values() for r in rows]
    assert len(keys) == len(set(keys))  # (cam, session, frame, index) names one detection


def test_train_and_test_identities_are_disjoint(bench):
    roots, _ = bench
    names = _names(roots["a0"])
    train = {r[0] for r in names["bounding_box_train"]}
    test = {r[0] for r in names["bounding_box_test"] + names["query"] if r[0] > 0}
    assert len(train) == TINY["num_train_ids"] and len(test) == TINY["num_test_ids"]
    assert not train & test


def test_query_rules(bench):
    _, data = bench
    for key in ("a0", "b0"):
        ds = data[key]
        per_pid_cam = defaultdict(int)
        for s in ds.query:
            per_pid_cam[s.pid, s.cam] += 1
        assert set(per_pid_cam.values()) == {1}  # one query per identity per camera
        assert all(s.pid > 0 for s in ds.query)  # distractors never query
        gallery_cams = defaultdict(set)
        for s in ds.gallery:
            gallery_cams[s.pid].add(s.cam)
        for s in ds.query:
            assert gallery_cams[s.pid] - {s.cam}, f"query pid {s.pid} has no cross-camera match"
        # Every test identity seen in >= 2 cameras is queried in each of its cameras.
        seen = defaultdict(set)
        for s in ds.query + ds.gallery:
            if s.pid > 0:
                seen[s.pid].add(s.cam)
        queried = defaultdict(set)
        for s in ds.query:
            queried[s.pid].add(s.cam)
        for pid, cams in seen.items():
            if len(cams) >= 2:
                assert queried[pid] == cams


def test_times_follow_the_session_offset_rule(bench):
    """Loop formulation of docs/arithmetic.md section 10 over the names gives the generator's clock."""
    roots, data = bench
    root = roots["a0"]
    rows = [r for rs in _names(root).values() for r in rs]
    max_frame = defaultdict(int)
    for _, cam, sess, frame, _ in rows:
        max_frame[cam, sess] = max(max_frame[cam, sess], frame)
    sessions = defaultdict(set)
    for cam, sess in max_frame:
        sessions[cam].add(sess)
    assert all(len(v) >= 2 for v in sessions.values())  # frame counters restart per session
    truth = {r["file"]: float(r["time"]) for r in _truth(root)}
    for sub in FOLDERS:
        for name in os.listdir(os.path.join(root, sub)):
            _, cam, sess, frame, _ = (int(g) for g in NAME_RE.match(name).groups())
            offset = 0
            for earlier in range(1, sess):
                offset += max_frame[cam, earlier]
            assert (frame + offset) / 25 == pytest.approx(truth[f"{sub}/{name}"], abs=1e-6)
    ds = data["a0"]
    for s in ds.train + ds.query + ds.gallery:
        rel = os.path.relpath(s.path, ds.root)
        assert s.time == pytest.approx(truth[rel], abs=1e-6)


def test_group_members_walk_together(bench):
    roots, _ = bench
    for key in ("a0", "b0"):
        by_group = defaultdict(lambda: defaultdict(list))
        for r in _truth(roots[key]):
            if r["kind"] in ("train", "test"):
                by_group[r["group"]][int(r["person"]), int(r["cam"])].append(float(r["time"]))
        groups_checked = 0
        for members in by_group.values():
            people = {p for p, _ in members}
            if len(people) < 2:
                continue
            groups_checked += 1
            cams = {c for _, c in members}
            for cam in cams:
                times = [t for (p, c), ts in members.items() if c == cam for t in ts]
                # Same path: every member is seen by every camera of the group...
                assert {p for p, c in members if c == cam} == people
                # ...and they co-occur there within TLift's window.
                assert max(times) - min(times) < TAU
        assert groups_checked >= 2


def test_domains_differ(bench):
    _, data = bench
    assert {s.cam for s in data["a0"].gallery + data["a0"].train} == set(range(6))
    assert {s.cam for s in data["b0"].gallery + data["b0"].train} == set(range(5))


def test_existing_folder_is_reused_refused_or_replaced(tmp_path, bench):
    roots, _ = bench
    root = tmp_path / "bench"
    small = dict(num_train_ids=2, num_test_ids=3, num_distractors=1, num_junk=1)
    generate(root, domain="B", seed=3, **small)
    stamp = os.stat(root / "synthetic.json").st_mtime_ns
    again = generate(root, domain="B", seed=3, **small)  # same settings: loaded as is
    assert os.stat(root / "synthetic.json").st_mtime_ns == stamp
    assert len(again.query) > 0
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(root, domain="B", seed=4, **small)
    generate(root, domain="B", seed=4, overwrite=True, **small)
    assert read_settings(root)["seed"] == 4
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a synthetic benchmark"):
        generate(foreign, overwrite=True, **small)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".partial")]


@pytest.mark.parametrize("kwargs, message", [
    (dict(domain="C"), "domain must be one of"),
    (dict(num_test_ids=0), "num_test_ids"),
    (dict(cams_per_id=(1, 3)), "cams_per_id"),
    (dict(frames_per_visit=(3, 2)), "frames_per_visit"),
    (dict(num_train_ids=9000, num_test_ids=1000), "9999"),
    (dict(group_rate=0.0), "group_rate"),
])
def test_bad_arguments_name_the_parameter(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate(tmp_path / "x", **{**TINY, **kwargs})
    assert not (tmp_path / "x").exists()


def test_progress_reaches_the_total(tmp_path):
    calls = []
    generate(tmp_path / "p", domain="A", num_train_ids=2, num_test_ids=2, num_distractors=0,
             num_junk=0, progress=lambda stage, done, total: calls.append((stage, done, total)))
    assert calls and calls[-1][1] == calls[-1][2]
    n_files = sum(len(os.listdir(tmp_path / "p" / sub)) for sub in FOLDERS)
    assert calls[-1][2] == n_files


def test_cli_writes_and_reports(tmp_path, capsys):
    import argparse

    from engine.cli import synth

    parser = argparse.ArgumentParser()
    synth.add_arguments(parser)
    out = tmp_path / "cli"
    args = parser.parse_args(["--domain", "b", "--out", str(out), "--train-ids", "3",
                              "--test-ids", "3", "--distractors", "2", "--junk", "1"])
    assert synth.run(args) == 0
    text = capsys.readouterr().out
    assert "images/s" in text and "query" in text and "c5" in text
    assert read_settings(out)["num_test_ids"] == 3
    args = parser.parse_args(["--out", str(out), "--test-ids", "4"])
    assert synth.run(args) == 2  # other settings, no --overwrite: refused with a message
    assert "overwrite" in capsys.readouterr().err  # errors go to stderr


def test_market_scale_plan_has_market_1501_splits(monkeypatch):
    """The plan (no pixels) of ``MARKET_SCALE`` has Market-1501's counts exactly."""
    from types import SimpleNamespace

    from engine.data.synthetic import benchmark as synthetic

    # Per-image looks are not needed for the counts and take most of the planning time.
    def looks(seed, domain, stream, detections, cam_phase):
        return [SimpleNamespace(truncation="none")] * len(detections)

    monkeypatch.setattr(synthetic, "_detection_specs", looks)
    monkeypatch.setattr(synthetic, "sample_image_spec", lambda *a, **k: None)
    settings = synthetic._settings(synthetic.get_domain("B"), 0, **synthetic.MARKET_SCALE)
    _, _, images, _ = synthetic.plan_benchmark(settings)
    train = [im for im in images if im.split == "train"]
    query = [im for im in images if im.split == "query"]
    gallery = [im for im in images if im.split == "gallery" and im.pid != -1]
    assert (len(train), len({im.pid for im in train})) == (12936, 751)
    assert len(query) == 3368 and len({im.pid for im in query}) == 750
    assert len(gallery) == 15913 and sum(im.pid == 0 for im in gallery) == 2793
    assert sum(im.pid == -1 for im in images) == 3819
    # Dropping detections never leaves a visit with fewer than two (query + companion).
    per_visit = Counter((im.pid, im.detection.cam) for im in query + gallery if im.pid > 0)
    assert min(per_visit.values()) >= 2


def test_exact_counts_are_written_and_loaded(tmp_path):
    sizes = {**TINY, "num_train_images": 100, "num_queries": 22, "num_gallery_images": 50}
    ds = generate(tmp_path / "exact", domain="A", seed=0, cams_per_id=(3, 4),
                  frames_per_visit=(3, 6), **sizes)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (100, 22, 50)
    assert sum(s.pid == 0 for s in ds.gallery) == TINY["num_distractors"]
    assert read_settings(tmp_path / "exact")["num_queries"] == 22
    cams = defaultdict(set)
    for s in ds.gallery:
        cams[s.pid].add(s.cam)
    assert all(cams[s.pid] - {s.cam} and s.cam in cams[s.pid] for s in ds.query)
    with pytest.raises(ValueError, match="num_queries"):
        generate(tmp_path / "too_many", domain="A", seed=0, **{**sizes, "num_queries": 500})
