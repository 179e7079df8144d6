"""Feature store hits, misses and corrupt-file rebuilds; checkpoint round trip and errors."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from engine.checkpoint import CheckpointError, load_checkpoint, load_state_strict, save_checkpoint
from engine.features import FeatureStore, extract_maps
from engine.models.config import Preprocessing


class _TinyBackbone(nn.Module):
    """Counts its calls, so a cache hit is visible as 'not called'."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return nn.functional.normalize(self.conv(x), dim=1)


PREP = Preprocessing(16, 8)
CPU = torch.device("cpu")


def test_extract_matches_direct_forward(tmp_path, image_samples):
    samples = image_samples(tmp_path)
    net = _TinyBackbone().eval()
    maps = extract_maps(net, [s.path for s in samples], PREP, device=CPU, batch_size=2)
    assert maps.shape == (5, 4, 4, 2) and maps.dtype == np.float16
    from engine.features import load_input

    direct = net(torch.stack([load_input(s.path, PREP) for s in samples])).detach().numpy()
    np.testing.assert_allclose(maps.astype(np.float32), direct, atol=2e-3)


def test_store_hit_miss_and_corrupt_rebuild(tmp_path, image_samples):
    samples = image_samples(tmp_path / "imgs")
    store = FeatureStore(tmp_path / "cache")
    net = _TinyBackbone()
    first, hit = store.get_or_extract(net, "model-a", samples, PREP, device=CPU)
    assert not hit and net.calls > 0
    calls = net.calls
    second, hit = store.get_or_extract(net, "model-a", samples, PREP, device=CPU)
    assert hit and net.calls == calls
    assert isinstance(second, np.memmap) or isinstance(second.base, np.memmap)
    np.testing.assert_array_equal(first, second)
    # a different model, image list or preprocessing is a different key: a miss
    _, hit = store.get_or_extract(net, "model-b", samples, PREP, device=CPU)
    assert not hit
    _, hit = store.get_or_extract(net, "model-a", samples[:4], PREP, device=CPU)
    assert not hit
    _, hit = store.get_or_extract(net, "model-a", samples, Preprocessing(32, 16), device=CPU)
    assert not hit
    # a changed image file (new mtime/size) is a miss too
    img = cv2.imread(samples[0].path)
    cv2.imwrite(samples[0].path, 255 - img)
    os.utime(samples[0].path, ns=(1, 1))
    _, hit = store.get_or_extract(net, "model-a", samples, PREP, device=CPU)
    assert not hit
    # corrupt the stored file: flipped bytes are detected and the entry rebuilt
    key = store.key("model-a", [s.path for s in samples], PREP)
    data = tmp_path / "cache" / "features" / key / "maps.npy"
    raw = bytearray(data.read_bytes())
    raw[-10:] = b"\x00" * 10 if raw[-10:] != b"\x00" * 10 else b"\x01" * 10
    data.write_bytes(bytes(raw))
    assert store.load(key) is None
    rebuilt, hit = store.get_or_extract(net, "model-a", samples, PREP, device=CPU)
    assert not hit and store.load(key) is not None
    # truncated file: also rebuilt
    data.write_bytes(data.read_bytes()[:50])
    assert store.load(key) is None


def test_store_bytes_per_image_at_published_shape(tmp_path):
    store = FeatureStore(tmp_path)
    maps = np.zeros((3, 128, 24, 8), np.float16)
    saved = store.save("k", maps)
    size = (tmp_path / "features" / "k" / "maps.npy").stat().st_size
    assert saved.shape == maps.shape
    assert size / 3 <= 50 * 1024  # docs/architecture.md target: at most 50 KB per image


def test_checkpoint_round_trip_and_json_beside(tmp_path):
    net = _TinyBackbone()
    path = tmp_path / "run" / "model.pt"
    save_checkpoint(path, {"config": {"arch": "tiny"}, "model": net.state_dict(), "epoch": 3})
    state = load_checkpoint(path)
    assert state["epoch"] == 3 and state["config"] == {"arch": "tiny"}
    other = _TinyBackbone()
    load_state_strict(other, state["model"], "weights")
    for a, b in zip(net.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert path.with_suffix(".json").is_file()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="damaged or not a torch weights file"):
        load_checkpoint(bad)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match="no model settings"):
        load_checkpoint(plain)
    net = _TinyBackbone()
    state = net.state_dict()
    state["conv.weight"] = torch.zeros(8, 3, 3, 3)
    state["extra"] = torch.zeros(1)
    del state["conv.bias"]
    with pytest.raises(CheckpointError) as err:
        load_state_strict(net, state, "model weights")
    msg = str(err.value)
    assert "conv.weight" in msg and "(8, 3, 3, 3)" in msg and "conv.bias" in msg and "extra" in msg


def test_checkpoint_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"config": {}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_sidecar_config_only_for_the_same_checkpoint(tmp_path):
    from engine.checkpoint import file_digest, read_sidecar_config, sidecar_path

    path = tmp_path / "model.pt"
    save_checkpoint(path, {"config": {"height": 16, "width": 8}, "model": _TinyBackbone().state_dict()})
    assert read_sidecar_config(path, file_digest(path)) == {"height": 16, "width": 8}
    assert read_sidecar_config(path, "another-checkpoint") is None  # stale sidecar
    sidecar_path(path).write_text("{not json")
    assert read_sidecar_config(path, file_digest(path)) is None
    sidecar_path(path).unlink()
    assert read_sidecar_config(path, file_digest(path)) is None


@pytest.mark.slow
def test_warm_session_ranks_without_model_or_torch(tmp_path, image_samples, random_checkpoint):
    import subprocess
    import sys
    from pathlib import Path

    from engine.checkpoint import sidecar_path
    from engine.data import Dataset
    from engine.models import load_model
    from engine.session import Session

    samples = image_samples(tmp_path / "imgs", n=6)
    dataset = Dataset("tiny", str(tmp_path), query=samples[:2], gallery=samples[2:])
    ckpt, cache = random_checkpoint, tmp_path / "cache"
    cold = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    expected = cold.distances(None, None)
    assert not any(cold.cache_hits.values())

    warm = Session.open(dataset, ckpt, device="cpu", cache_dir=cache)
    np.testing.assert_array_equal(warm.distances(None, None), expected)
    assert all(warm.cache_hits.values()) and not warm.model_loaded
    # The keys from the sidecar equal those of a session given the loaded model.
    eager = Session(dataset, load_model(ckpt), cold.model_digest, device=CPU, cache_dir=cache)
    assert eager.blocks.key("qg") == warm.blocks.key("qg")
    assert warm.model.config.height == 32  # loaded on first use

    # In a fresh interpreter: importing the session and ranking from the cache never imports torch
    # (with device 'auto', unless a GPU driver is present: only torch can then tell CPU or CUDA).
    script = ("import sys; from engine.data import Dataset, Sample; from engine.session import Session; "
              f"s = [Sample(p, i, 0) for i, p in enumerate({[s.path for s in samples]!r})]; "
              f"d = Session.open(Dataset('tiny', '.', query=s[:2], gallery=s[2:]), {str(ckpt)!r}, "
              f"device='auto', cache_dir={str(cache)!r}).distances(None, None); "
              "print(d.shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    from engine.model_handle import gpu_driver_present

    assert out.stdout.split()[-1] == str(gpu_driver_present())

    # An edited sidecar is caught when the model loads; without a sidecar the model loads at once.
    sidecar_path(ckpt).write_text(sidecar_path(ckpt).read_text().replace('"height": 32', '"height": 64'))
    with pytest.raises(ValueError, match="sidecar"):
        _ = Session.open(dataset, ckpt, device="cpu", cache_dir=cache).model
    sidecar_path(ckpt).unlink()
    assert Session.open(dataset, ckpt, device="cpu", cache_dir=cache).model_loaded
