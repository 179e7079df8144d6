"""Malformed cache files (issue 19, items 7 and 8): each is named in one warning and rebuilt,
never trusted and never a TypeError on every later run."""
from __future__ import annotations

import json

import numpy as np
import pytest

from engine.blocks import ScoreStore
from engine.cache_files import load_array, parse_folded_head, read_json_object, save_array
from engine.data import Dataset
from engine.session import Session

MALFORMED = ["[]", "null", "3", '"text"', "[" * 100_000 + "]" * 100_000, "{", "\xff"]


@pytest.fixture
def tiny(tmp_path, image_samples, random_checkpoint):
    samples = image_samples(tmp_path / "imgs", n=5)
    dataset = Dataset("tiny", str(tmp_path), query=samples[:2], gallery=samples[2:])
    return dataset, random_checkpoint, tmp_path / "cache"


def _warnings_naming(caplog, path) -> list[str]:
    return [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]


@pytest.mark.parametrize("text", MALFORMED)
def test_read_json_object_refuses_all_but_an_object(tmp_path, text):
    path = tmp_path / "meta.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError):
        read_json_object(path)


def test_read_json_object_refuses_a_huge_file_before_reading_it(tmp_path):
    path = tmp_path / "meta.json"
    with open(path, "wb") as fh:  # sparse: no real bytes written
        fh.truncate(30 << 30)
    with pytest.raises(ValueError, match="more than"):
        read_json_object(path)


def test_arrays_are_bound_to_their_place(tmp_path, caplog):
    a, b = np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((2, 3), np.float32)
    save_array(tmp_path / "a.npy", a, key="a")
    save_array(tmp_path / "b.npy", b, key="b")
    np.testing.assert_array_equal(load_array(tmp_path / "a.npy", (2, 3), np.float32, what="x", key="a"), a)
    assert load_array(tmp_path / "a.npy", (2, 3), np.int32, what="x", key="a") is None  # dtype
    save_array(tmp_path / "a.npy", a, key="a")
    for suffix in (".npy", ".json"):  # swapped together with their records
        (tmp_path / f"a{suffix}").rename(tmp_path / "t")
        (tmp_path / f"b{suffix}").rename(tmp_path / f"a{suffix}")
        (tmp_path / "t").rename(tmp_path / f"b{suffix}")
    assert load_array(tmp_path / "a.npy", (2, 3), np.float32, what="x", key="a") is None
    assert "key" in _warnings_naming(caplog, tmp_path / "a.npy")[-1]
    assert not (tmp_path / "a.npy").exists() and not (tmp_path / "a.json").exists()


def test_an_array_header_promising_gigabytes_is_refused_without_reading(tmp_path):
    path = tmp_path / "big.npy"
    save_array(path, np.zeros((2, 3), np.float32), key="k")
    header = np.lib.format.header_data_from_array_1_0(np.zeros((2, 3), np.float32))
    header["shape"] = (200_000, 300_000)
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.truncate(200_000 * 300_000 * 4 + 128)  # sparse
    assert load_array(path, (2, 3), np.float32, what="x", key="k") is None


@pytest.mark.parametrize("text", ["[]", '{"checksum": 1, "shape": "x"}'])
def test_a_malformed_score_record_is_rebuilt(tiny, caplog, text):
    dataset, ckpt, cache = tiny
    first = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    first.score(("qg",))
    records = list((cache / "scores").glob("*.json"))
    assert len(records) == 1
    records[0].write_text(text)
    for _ in range(2):  # rebuilt once, then a plain cache hit
        again = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
        again.score(("qg",))
        np.testing.assert_array_equal(again.logits["qg"], first.logits["qg"])
    assert len(_warnings_naming(caplog, records[0].with_suffix(".npy"))) == 1
    assert again.cache_hits["scores qg"]


def test_score_blocks_swapped_between_keys_are_rescored(tmp_path):
    store = ScoreStore(tmp_path)
    store.save("qq", np.zeros((3, 3), np.float32))
    store.save("gg", np.ones((3, 3), np.float32))
    for suffix in (".npy", ".json"):
        (store.root / f"qq{suffix}").rename(store.root / "t")
        (store.root / f"gg{suffix}").rename(store.root / f"qq{suffix}")
        (store.root / "t").rename(store.root / f"gg{suffix}")
    assert store.load("qq", (3, 3)) is None and store.load("gg", (3, 3)) is None


@pytest.mark.parametrize("text", ["null", '{"bytes": "12", "shape": 3}'])
def test_a_malformed_feature_record_is_rebuilt(tiny, caplog, text):
    dataset, ckpt, cache = tiny
    first = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    first.extract()
    metas = list((cache / "features").glob("*/meta.json"))
    assert len(metas) == 2
    metas[0].write_text(text)
    again = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    again.extract()
    assert not all(again.cache_hits[f"features {s}"] for s in ("query", "gallery"))
    np.testing.assert_array_equal(again.query_maps, first.query_maps)
    np.testing.assert_array_equal(again.gallery_maps, first.gallery_maps)
    assert len(_warnings_naming(caplog, metas[0])) == 1
    assert isinstance(json.loads(metas[0].read_text()), dict)  # written again


def _bad_heads(size: int) -> dict[str, str]:
    good = {"weight": [0.1] * size, "bias": 0.5, "centre": 0.2}

    def with_(**change):
        return json.dumps({**good, **change})

    return {
        "nan": with_(weight=[float("nan")] + [0.1] * (size - 1)),
        "inf bias": with_(bias=float("inf")),
        "5 weights": with_(weight=[0.1] * 5),
        "too many": with_(weight=[0.1] * (size + 1)),
        "huge": json.dumps({**good, "weight": [0.1] * 400_000}),  # over the size bound
        "deep": "[" * 100_000 + "]" * 100_000,
        "strings": with_(weight=["0.1"] * size),
        "booleans": with_(weight=[True] * size),
        "beyond float32": with_(weight=[1e39] * size),
        "beyond float": with_(weight=[10 ** 400] * size),
        "list": "[]",
        "no centre": json.dumps({"weight": [0.1] * size, "bias": 0.5}),
    }


def test_parse_folded_head_accepts_a_valid_head():
    weight, bias, centre = parse_folded_head({"weight": [0.25, 1, -2], "bias": 1, "centre": 0.5}, 3)
    assert weight.dtype == np.float32 and weight.tolist() == [0.25, 1.0, -2.0]
    assert (bias, centre) == (1.0, 0.5)


def test_an_invalid_cached_head_is_recomputed(tiny, caplog):
    dataset, ckpt, cache = tiny
    reference = Session.open(dataset, ckpt, device="cpu", cache_dir=cache).folded_head()
    path = next((cache / "heads").iterdir())
    size = reference[0].size
    for name, text in _bad_heads(size).items():
        path.write_text(text)
        caplog.clear()
        session = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
        session.extract()
        assert not session.head_ready, name  # the viewer then computes it off the GUI thread
        assert not path.exists(), name
        assert len(_warnings_naming(caplog, path)) == 1, name
        head = session.folded_head()
        np.testing.assert_array_equal(head[0], reference[0])
        assert head[1:] == reference[1:] and path.exists(), name
    warm = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    warm.extract()
    assert warm.head_ready and not warm.model_loaded  # the valid cached head needs no model


@pytest.mark.parametrize("text", ["[]", "null", '{"settings": []}'])
def test_a_malformed_synthetic_marker_is_a_message_not_a_traceback(tmp_path, text):
    from engine.data.synthetic import generate, read_settings

    (tmp_path / "synthetic.json").write_text(text)
    assert read_settings(tmp_path) is None
    with pytest.raises(FileExistsError, match="not a synthetic benchmark"):
        generate(tmp_path)
    assert (tmp_path / "synthetic.json").read_text() == text  # nothing replaced
