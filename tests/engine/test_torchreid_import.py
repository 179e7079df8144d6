"""torchreid checkpoints: detected, converted, and giving torchreid's own embeddings.

tests/data/reference/torchreid_osnet.npz holds the eval outputs of torchreid's models (its
osnet.py / osnet_ain.py) for the seeded weights of tests/engine/torchreid_layout.py; the peers'
case in ../shared (a checkpoint saved by torchreid's own training code) is compared when present.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.checkpoint import CheckpointError, read_tensor_file
from engine.models.config import IMAGENET_MEAN, IMAGENET_STD
from engine.models.foreign import torchreid
from engine.models.reid import build_model
from tests.engine.torchreid_layout import (
    OSNET_VARIANTS,
    REFERENCE,
    seeded_state,
    torchreid_checkpoint,
)

PEERS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "peers"
if not PEERS.is_dir():
    PEERS = Path("/work/shared/reference/peers")


def normalise(pixels) -> torch.Tensor:
    """RGB in [0, 1] -> the model input (ImageNet mean / std)."""
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    return (torch.as_tensor(pixels) - mean) / std


def saved(tmp_path, state, name="model.pth.tar"):
    """``state`` written with torch.save and read back as the tool reads any file."""
    path = tmp_path / name
    torch.save(state, path)
    return read_tensor_file(path)


def opened(converted):
    model = build_model(converted.config)
    model.load_state_dict(converted.weights, strict=True)
    return model.eval()


@pytest.mark.parametrize("arch", OSNET_VARIANTS)
def test_osnet_checkpoints_give_torchreids_embeddings(arch, tmp_path):
    reference = np.load(REFERENCE / "torchreid_osnet.npz")
    state = saved(tmp_path, torchreid_checkpoint(seeded_state(arch)))
    assert torchreid.detect(state)
    converted = torchreid.convert(state)
    config = converted.config
    assert (config.arch, config.head, config.head_dim, config.source) == (arch, "fc", 512, "torchreid")
    assert (config.height, config.width, config.imagenet_norm, config.neck) == (256, 128, True, 0)
    assert any("751 training identities" in n for n in converted.notes)
    model = opened(converted)
    with torch.no_grad():
        embeddings = model.features(normalise(reference["pixels"])).numpy()
    expected = reference[arch]
    # the images differ by far more than the tolerance: a wrong layer would show
    assert np.abs(expected[0] - expected[1]).max() > 100 * 1e-5
    np.testing.assert_allclose(embeddings, expected, rtol=0, atol=1e-5)
    cosines = model.score(embeddings, embeddings, device="cpu")
    e = F.normalize(torch.from_numpy(expected), dim=1)
    np.testing.assert_allclose(cosines, (e @ e.T).numpy(), rtol=0, atol=1e-5)


def test_a_bare_state_dict_without_prefixes_converts_the_same(tmp_path):
    sd = seeded_state("osnet_x0_25")
    bare = saved(tmp_path, sd)
    assert torchreid.detect(bare)
    a = torchreid.convert(bare)
    b = torchreid.convert(saved(tmp_path, torchreid_checkpoint(sd), "wrapped.pth.tar"))
    assert a.config == b.config
    assert a.weights.keys() == b.weights.keys()
    assert all(torch.equal(a.weights[k], b.weights[k]) for k in a.weights)
    assert a.weights["head.linear.weight"] is not None
    assert torch.equal(a.weights["head.bn.running_var"], sd["fc.1.running_var"])
    assert torch.equal(a.weights["trunk.conv5.conv.weight"], sd["conv5.conv.weight"])


def test_the_input_size_can_be_given(tmp_path):
    state = saved(tmp_path, torchreid_checkpoint(seeded_state("osnet_x0_25")))
    config = torchreid.convert(state, height=384, width=128).config
    assert (config.height, config.width, config.feature_size) == (384, 128, (24, 8))
    with pytest.raises(CheckpointError, match="both"):
        torchreid.convert(state, height=384)


def without(sd, key):
    return {k: v for k, v in sd.items() if k != key}


@pytest.mark.parametrize("damage,message", [
    (lambda sd: without(sd, "conv3.1.gate.fc1.bias"), "conv3.1.gate.fc1.bias"),
    (lambda sd: without(sd, "fc.1.running_mean"), "fc.1.running_mean"),
    (lambda sd: {**sd, "conv4.0.conv3.conv.weight": torch.zeros(96, 24, 3, 3)}, "conv4.0.conv3.conv.weight"),
    (lambda sd: {**sd, "conv5.extra.weight": torch.zeros(3)}, "conv5.extra.weight"),
    (lambda sd: {**sd, "fc.3.weight": torch.zeros(3)}, "fc.3.weight"),
])
def test_a_missing_mis_shaped_or_unused_weight_is_an_error_naming_it(damage, message, tmp_path):
    state = saved(tmp_path, torchreid_checkpoint(damage(seeded_state("osnet_x0_25"))))
    with pytest.raises(CheckpointError, match=message.replace(".", r"\.")) as info:
        torchreid.convert(state)
    assert "\n" not in str(info.value)


def test_old_files_without_batch_counters_load(tmp_path):
    sd = {k: v for k, v in seeded_state("osnet_x0_25").items() if not k.endswith("num_batches_tracked")}
    converted = torchreid.convert(saved(tmp_path, torchreid_checkpoint(sd)))
    opened(converted)


def test_an_arch_that_disagrees_with_the_file_is_refused(tmp_path):
    state = saved(tmp_path, torchreid_checkpoint(seeded_state("osnet_x0_25")))
    assert torchreid.convert(state, arch="osnet_x0_25").config.arch == "osnet_x0_25"
    with pytest.raises(CheckpointError, match="osnet_x0_25, not the osnet_x1_0"):
        torchreid.convert(state, arch="osnet_x1_0")


def test_other_files_are_not_detected():
    sd = seeded_state("osnet_x0_25")
    assert not torchreid.detect({"model": sd, "optimizer": {}})            # fast-reid's wrapper
    assert not torchreid.detect({"state_dict": "not a dict"})
    assert not torchreid.detect({"conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1)})
    assert not torchreid.detect({})


def resnet_state(depth: int, *, fc512: bool = False, classes: int = 751) -> dict[str, torch.Tensor]:
    """torchreid's ResNet state dict: torchvision's names, its classifier, optionally fc512."""
    from torchvision.models import resnet

    torch.manual_seed(depth)
    net = getattr(resnet, f"resnet{depth}")()
    sd = {k: v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    channels = sd["layer4.0.downsample.1.weight"].shape[0]
    with torch.no_grad():
        for k, v in sd.items():
            if k.endswith("running_mean"):
                v.normal_(0, 0.2)
            elif k.endswith("running_var"):
                v.uniform_(0.5, 1.5)
            elif k.endswith("bn1.weight") or k.endswith("bn2.weight") or k.endswith("bn3.weight"):
                v.uniform_(0.2, 0.6)
    if fc512:
        sd |= {"fc.0.weight": torch.randn(512, channels) / channels ** 0.5, "fc.0.bias": torch.randn(512),
               "fc.1.weight": torch.rand(512) + 0.5, "fc.1.bias": torch.randn(512),
               "fc.1.running_mean": torch.randn(512), "fc.1.running_var": torch.rand(512) + 0.5,
               "fc.1.num_batches_tracked": torch.tensor(3)}
        channels = 512
    return sd | {"classifier.weight": torch.randn(classes, channels), "classifier.bias": torch.zeros(classes)}


def torchvision_pooled(sd, images) -> torch.Tensor:
    """torchreid's ResNet eval output (pooled layer4) with torchvision's ResNet-18 arithmetic."""
    from torchvision.models import resnet18

    net = resnet18()
    net.fc = torch.nn.Identity()
    net.load_state_dict({k: v for k, v in sd.items() if not k.startswith(("classifier.", "fc."))})
    with torch.no_grad():
        return net.eval()(images)


def test_resnet_checkpoints_give_the_pooled_layer4(tmp_path):
    sd = resnet_state(18)
    state = saved(tmp_path, torchreid_checkpoint(sd))
    assert torchreid.detect(state)
    converted = torchreid.convert(state)
    config = converted.config
    assert (config.arch, config.layer, config.last_stride, config.head) == ("resnet18", 4, 2, "pool")
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        got = opened(converted).features(images)
    torch.testing.assert_close(got, torchvision_pooled(sd, images), rtol=0, atol=1e-5)


def test_resnet50_converts_every_weight(tmp_path):
    sd = resnet_state(50)
    converted = torchreid.convert(saved(tmp_path, torchreid_checkpoint(sd)))
    assert (converted.config.arch, converted.config.embedding_dim) == ("resnet50", 2048)
    assert set(converted.weights) == {f"trunk.{k}" for k in sd if not k.startswith("classifier.")}


def test_resnet_fc512_keeps_layer4_at_stride_1(tmp_path):
    sd = resnet_state(18, fc512=True)
    config = torchreid.convert(saved(tmp_path, torchreid_checkpoint(sd))).config
    assert (config.last_stride, config.head, config.head_dim) == (1, "fc", 512)


@pytest.mark.slow
@pytest.mark.skipif(not (PEERS / "torchreid_osnet_x0_25.npz").exists(),
                    reason="the peers' reference cases (shared/reference/peers) are absent")
def test_the_peers_osnet_x0_25_case():
    case = np.load(PEERS / "torchreid_osnet_x0_25.npz")
    state = read_tensor_file(PEERS / "torchreid_osnet_x0_25.pth.tar")
    converted = torchreid.convert(state, height=int(case["height"]), width=int(case["width"]))
    model = opened(converted)
    with torch.no_grad():
        embeddings = model.features(normalise(case["pixels"])).numpy()
    np.testing.assert_allclose(embeddings, case["embeddings"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(model.score(embeddings, embeddings, device="cpu"), case["scores"],
                               rtol=0, atol=1e-4)
