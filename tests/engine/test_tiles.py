"""Resumable tiled scoring: an interrupted block resumes from its saved tiles."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.jobs import Cancelled
from engine.models.qaconv import QAConv
from engine.models.scoring import score_matrix
from engine.tiles import score_tiled, tile_bounds


def _maps(n, seed):
    x = torch.randn(n, 8, 3, 2, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.normalize(x, dim=1).numpy().astype(np.float16)


@pytest.fixture(scope="module")
def matcher():
    torch.manual_seed(0)
    m = QAConv(8, 3, 2).eval()
    with torch.no_grad():
        m.fc.weight.uniform_(0.05, 0.3)
        m.bn.running_mean.fill_(0.1)
        m.logit_bn.running_var.fill_(2.0)
    return m


class Counting:
    """The scoring function, counting tiles and cancelling once ``stop_after`` have finished."""

    def __init__(self, matcher, stop_after=None):
        self.matcher, self.stop_after, self.calls = matcher, stop_after, 0

    def __call__(self, rows, cols, symmetric, progress, cancel):
        if self.stop_after is not None and self.calls >= self.stop_after:
            raise Cancelled("stopped mid-way")
        self.calls += 1
        return score_matrix(self.matcher, rows, cols, symmetric=symmetric, progress=progress,
                            cancel=cancel)


@pytest.mark.parametrize("symmetric", [False, True])
def test_interrupted_block_resumes_and_equals_uninterrupted(tmp_path, matcher, symmetric):
    a = _maps(23, 1)
    b = a if symmetric else _maps(17, 2)
    tile_pairs = 40
    bands = tile_bounds(len(a), len(b), tile_pairs)
    assert len(bands) > 4
    whole, reused = score_tiled(Counting(matcher), a, b, tiles_dir=tmp_path / "one",
                                symmetric=symmetric, tile_pairs=tile_pairs)
    assert reused == 0
    np.testing.assert_allclose(whole, score_matrix(matcher, a, b), rtol=0, atol=1e-5)
    if symmetric:
        np.testing.assert_array_equal(whole, whole.T)

    first = Counting(matcher, stop_after=3)
    with pytest.raises(Cancelled):
        score_tiled(first, a, b, tiles_dir=tmp_path / "two", symmetric=symmetric,
                    tile_pairs=tile_pairs)
    assert len(list((tmp_path / "two").glob("*.npy"))) == 3
    again = Counting(matcher)
    resumed, reused = score_tiled(again, a, b, tiles_dir=tmp_path / "two", symmetric=symmetric,
                                  tile_pairs=tile_pairs)
    assert reused == 3 and again.calls == len(bands) - 3
    np.testing.assert_array_equal(resumed, whole)


def test_damaged_tiles_are_recomputed(tmp_path, matcher):
    a, b = _maps(20, 3), _maps(11, 4)
    tile_pairs = 30
    bands = tile_bounds(len(a), len(b), tile_pairs)
    whole, _ = score_tiled(Counting(matcher), a, b, tiles_dir=tmp_path / "ref", tile_pairs=tile_pairs)
    with pytest.raises(Cancelled):
        score_tiled(Counting(matcher, stop_after=4), a, b, tiles_dir=tmp_path / "t",
                    tile_pairs=tile_pairs)
    tiles = sorted((tmp_path / "t").glob("*.npy"), key=lambda p: int(p.name.split("-")[0]))
    assert len(tiles) == 4
    # One tile's numbers changed (a valid .npy with other values), one truncated, one's checksum lost.
    np.save(tiles[0], np.load(tiles[0]) + 1.0)
    tiles[1].write_bytes(tiles[1].read_bytes()[:50])
    tiles[2].with_suffix(".json").unlink()
    again = Counting(matcher)
    resumed, reused = score_tiled(again, a, b, tiles_dir=tmp_path / "t", tile_pairs=tile_pairs)
    assert reused == 1 and again.calls == len(bands) - 1
    np.testing.assert_array_equal(resumed, whole)


@pytest.mark.slow
def test_session_block_resumes_after_a_cancelled_run(tmp_path, monkeypatch, image_samples, random_checkpoint):
    """Through the session: a cancelled g-g block keeps its tiles; the next run reuses them."""
    import engine.tiles
    from engine.data import Dataset
    from engine.session import Session

    samples = image_samples(tmp_path / "imgs", n=9)
    dataset = Dataset("tiny", str(tmp_path), query=samples[:2], gallery=samples[2:])
    ckpt = random_checkpoint
    ref = Session.open(dataset, ckpt, device="cpu", cache_dir=tmp_path / "ref")
    ref.score(("gg",))

    monkeypatch.setattr(engine.tiles, "TILE_PAIRS", 7)
    calls = []
    session = Session.open(dataset, ckpt, device="cpu", cache_dir=tmp_path / "cache")
    session.extract()
    with pytest.raises(Cancelled):
        session.score(("gg",), cancel=lambda: len(calls) >= 3,
                      progress=lambda stage, d, t: calls.append(d) if stage == "score gg" and d else None)
    tiles_dir = session.blocks.store.root / "tiles"
    assert any(tiles_dir.rglob("*.npy"))
    resumed = Session.open(dataset, ckpt, device="cpu", cache_dir=tmp_path / "cache")
    resumed.score(("gg",))
    np.testing.assert_allclose(resumed.logits["gg"], ref.logits["gg"], rtol=0, atol=1e-5)
    assert not any(tiles_dir.rglob("*.npy"))  # merged into one stored block


def _cancelled_after(matcher, a, b, tiles_dir, tile_pairs, finished):
    with pytest.raises(Cancelled):
        score_tiled(Counting(matcher, stop_after=finished), a, b, tiles_dir=tiles_dir,
                    tile_pairs=tile_pairs)
    return sorted(tiles_dir.glob("*.npy"), key=lambda p: int(p.name.split("-")[0]))


def test_tiles_swapped_with_their_records_are_rescored(tmp_path, matcher, caplog):
    a, b = _maps(20, 5), _maps(11, 6)
    tile_pairs = 50  # 4 rows a tile: equal shapes, so only the records tell the places apart
    whole, _ = score_tiled(Counting(matcher), a, b, tiles_dir=tmp_path / "ref", tile_pairs=tile_pairs)
    tiles = _cancelled_after(matcher, a, b, tmp_path / "blk", tile_pairs, finished=3)
    first, second = tiles[0], tiles[1]
    assert np.load(first).shape == np.load(second).shape
    for suffix in (".npy", ".json"):  # array and record swapped together
        x, y = first.with_suffix(suffix), second.with_suffix(suffix)
        x.rename(tmp_path / "swap")
        y.rename(x)
        (tmp_path / "swap").rename(y)
    # a tile of another block (same place, other key) copied in with its record
    other = _cancelled_after(matcher, _maps(20, 7), b, tmp_path / "other", tile_pairs, finished=3)
    for suffix in (".npy", ".json"):
        other[2].with_suffix(suffix).replace(tiles[2].with_suffix(suffix))
    again = Counting(matcher)
    resumed, reused = score_tiled(again, a, b, tiles_dir=tmp_path / "blk", tile_pairs=tile_pairs)
    assert reused == 0 and again.calls == len(tile_bounds(20, 11, tile_pairs))
    np.testing.assert_array_equal(resumed, whole)
    named = [r.getMessage() for r in caplog.records if "score tile" in r.getMessage()]
    assert len(named) == 3 and all(str(tmp_path / "blk") in m for m in named)
    assert any("rows" in m for m in named) and any("block" in m for m in named)


@pytest.mark.parametrize("record", ["[]", "null", "7", '"x"', '{"checksum": 5}', "[" * 100_000,
                                    '{"shape": "a", "dtype": [], "block": {}}'])
def test_a_malformed_tile_record_is_rebuilt_every_time_not_a_type_error(tmp_path, matcher, record,
                                                                          caplog):
    a, b = _maps(12, 8), _maps(9, 9)
    tile_pairs = 30
    whole, _ = score_tiled(Counting(matcher), a, b, tiles_dir=tmp_path / "ref", tile_pairs=tile_pairs)
    tiles = _cancelled_after(matcher, a, b, tmp_path / "blk", tile_pairs, finished=2)
    tiles[0].with_suffix(".json").write_text(record)
    again = Counting(matcher)
    resumed, reused = score_tiled(again, a, b, tiles_dir=tmp_path / "blk", tile_pairs=tile_pairs)
    assert reused == 1
    np.testing.assert_array_equal(resumed, whole)
    assert any(str(tiles[0]) in r.getMessage() for r in caplog.records)
