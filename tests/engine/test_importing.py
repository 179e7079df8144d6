"""Other projects' checkpoints: detection, conversion, the ResNet variants, `python -m engine import`.

The synthetic checkpoints are built here in each project's key layout (random weights,
randomised BatchNorm statistics and affine terms, so that a wrong mapping shows) and the
converted models are compared with a brute-force forward written below from the peers'
layer order, reading the source file's own key names (no module of this tool involved).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.checkpoint import CheckpointError, read_tensor_file
from engine.models import ModelConfig, build_model, load_model
from engine.models.config import IMAGENET_MEAN, IMAGENET_STD
from engine.models.foreign import NeedsInputSize, convert, detect_foreign
from engine.models.importing import import_checkpoint, native_checkpoint
from engine.models.resnets import build_resnet_trunk

PEERS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "peers"
if not PEERS.is_dir():
    PEERS = Path("/work/shared/reference/peers")


# --------------------------------------------------------------------------- building files
def _randomised(state: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Random weights; BatchNorm statistics and affine terms far from their defaults."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, t in state.items():
        if not t.is_floating_point():
            out[name] = t.clone()
        elif name.endswith("running_var"):
            out[name] = torch.rand(t.shape, generator=g) * 1.5 + 0.5
        elif name.endswith("running_mean"):
            out[name] = torch.randn(t.shape, generator=g) * 0.3
        elif t.dim() == 1 and name.endswith("weight"):
            out[name] = torch.rand(t.shape, generator=g) + 0.5
        elif t.dim() == 1:
            out[name] = torch.randn(t.shape, generator=g) * 0.2
        else:
            fan_in = max(1, t[0].numel())
            out[name] = torch.randn(t.shape, generator=g) * math.sqrt(2.0 / fan_in)
    return out


def _resnet_state(arch: str, seed: int, *, fastreid: bool = False) -> dict[str, torch.Tensor]:
    """A whole ResNet (to layer4) in torchvision / IBN-Net / fast-reid names, randomised."""
    cfg = ModelConfig(arch=arch, layer=4, pretrained="none", height=64, width=32,
                      source="fastreid" if fastreid else "reid-inspector")
    trunk, _ = build_resnet_trunk(cfg)
    return _randomised(trunk.state_dict(), seed)


def authors_qaconv(arch="resnet18", layer=3, neck=16, hw=(4, 2), class_memory=True, seed=0):
    """A checkpoint as ShengcaiLiao/QAConv main.py saves it."""
    base = _resnet_state(arch, seed)
    expansion = 4 if "layer1.0.conv3.weight" in base else 1
    channels = base[f"layer{layer}.0.conv1.weight"].shape[0] * expansion
    g = torch.Generator().manual_seed(seed + 1)
    model = {f"base.{k}": v for k, v in base.items()}
    model["base.fc.weight"] = torch.randn(1000, 512 * expansion, generator=g)  # torchvision's, unused
    model["base.fc.bias"] = torch.randn(1000, generator=g)
    d = channels
    if neck:
        model["neck_conv.weight"] = torch.randn(neck, channels, 3, 3, generator=g) * 0.05
        model["neck_conv.bias"] = torch.randn(neck, generator=g) * 0.1
        d = neck
    h, w = hw
    criterion = {
        "matcher.bn.weight": torch.tensor([1.7]), "matcher.bn.bias": torch.tensor([-0.3]),
        "matcher.bn.running_mean": torch.tensor([0.45]), "matcher.bn.running_var": torch.tensor([0.02]),
        "matcher.bn.num_batches_tracked": torch.tensor(5),
        "matcher.fc.weight": torch.randn(1, h * w, generator=g) / (h * w),
        "matcher.fc.bias": torch.tensor([0.07]),
        "matcher.logit_bn.weight": torch.tensor([0.8]), "matcher.logit_bn.bias": torch.tensor([0.2]),
        "matcher.logit_bn.running_mean": torch.tensor([0.5]),
        "matcher.logit_bn.running_var": torch.tensor([3.0]),
        "matcher.logit_bn.num_batches_tracked": torch.tensor(5),
    }
    if class_memory:
        criterion["class_memory"] = torch.randn(7, d, h, w, generator=g)
        criterion["valid_class"] = torch.ones(7)
    return {"model": model, "criterion": criterion, "optim": {"state": {}, "param_groups": []},
            "epoch": 3, "final_epochs": 9, "base_loss": 0.5, "lr_stepped": False}


def fastreid_file(arch="resnet18", seed=0, bnneck=True, pixel_stats=False):
    """A checkpoint as fast-reid's Checkpointer saves a BoT model."""
    backbone = _resnet_state(arch, seed, fastreid=True)
    model = {f"backbone.{k}": v for k, v in backbone.items()}
    c = backbone["layer4.0.bn2.weight"].shape[0] * (4 if "layer1.0.conv3.weight" in backbone else 1)
    if bnneck:
        bn = _randomised({"weight": torch.ones(c), "bias": torch.zeros(c), "running_mean": torch.zeros(c),
                          "running_var": torch.ones(c)}, seed + 2)
        model.update({f"heads.bottleneck.0.{k}": v for k, v in bn.items()})
        model["heads.bottleneck.0.num_batches_tracked"] = torch.tensor(10)
    model["heads.weight"] = torch.randn(11, c)
    if pixel_stats:
        model["pixel_mean"] = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
        model["pixel_std"] = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    return {"model": model, "optimizer": {}, "scheduler": {}, "iteration": 100}


# --------------------------------------------------------------------------- brute force
def _norm(sd, p, x):
    if f"{p}.IN.weight" in sd:  # IBN-a: instance norm on the first half, batch norm on the rest
        half = sd[f"{p}.IN.weight"].shape[0]
        return torch.cat((_norm(sd, f"{p}.IN", x[:, :half]), _norm(sd, f"{p}.BN", x[:, half:])), 1)
    if f"{p}.running_mean" in sd:
        return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                            sd[f"{p}.bias"], False, 0.0, 1e-5)
    return F.instance_norm(x, weight=sd[f"{p}.weight"], bias=sd[f"{p}.bias"], eps=1e-5)


def _conv(sd, p, x, stride=1):
    w = sd[f"{p}.weight"]
    return F.conv2d(x, w, sd.get(f"{p}.bias"), stride, w.shape[-1] // 2)


def reference_trunk(sd, prefix, x, last_layer, last_stride=2, fastreid_stem=False):
    """The peers' ResNet forward (torchvision / IBN-Net / fast-reid) from a state dict."""
    x = F.relu(_norm(sd, f"{prefix}bn1", _conv(sd, f"{prefix}conv1", x, 2)))
    x = F.max_pool2d(x, 3, 2, 0, ceil_mode=True) if fastreid_stem else F.max_pool2d(x, 3, 2, 1)
    bottleneck = f"{prefix}layer1.0.conv3.weight" in sd
    for stage in range(1, last_layer + 1):
        i = 0
        while f"{prefix}layer{stage}.{i}.conv1.weight" in sd:
            p = f"{prefix}layer{stage}.{i}"
            s = 1 if i or stage == 1 else (last_stride if stage == last_layer else 2)
            if bottleneck:
                out = F.relu(_norm(sd, f"{p}.bn1", _conv(sd, f"{p}.conv1", x)))
                out = F.relu(_norm(sd, f"{p}.bn2", _conv(sd, f"{p}.conv2", out, s)))
                out = _norm(sd, f"{p}.bn3", _conv(sd, f"{p}.conv3", out))
            else:
                out = F.relu(_norm(sd, f"{p}.bn1", _conv(sd, f"{p}.conv1", x, s)))
                out = _norm(sd, f"{p}.bn2", _conv(sd, f"{p}.conv2", out))
            if f"{p}.downsample.0.weight" in sd:
                x = _norm(sd, f"{p}.downsample.1", _conv(sd, f"{p}.downsample.0", x, s))
            out = out + x
            if f"{p}.IN.weight" in sd:  # IBN-b: instance norm after the sum
                out = _norm(sd, f"{p}.IN", out)
            x = F.relu(out)
            i += 1
    return x


def reference_qaconv_logits(criterion, probe, gallery):
    """Brute-force eval logits of the authors' matcher, every pair, from the criterion's tensors."""
    def bn(x, name):
        return ((x - criterion[f"matcher.{name}.running_mean"]) / torch.sqrt(criterion[f"matcher.{name}.running_var"] + 1e-5)
                * criterion[f"matcher.{name}.weight"] + criterion[f"matcher.{name}.bias"])

    fc_w, fc_b = criterion["matcher.fc.weight"][0], criterion["matcher.fc.bias"][0]
    out = torch.empty(len(probe), len(gallery), dtype=torch.float64)
    for i, p in enumerate(probe.double().flatten(2)):
        for j, g in enumerate(gallery.double().flatten(2)):
            sim = p.T @ g                                    # [hw_p, hw_g]
            a, b = sim.max(dim=1).values, sim.max(dim=0).values
            logit = (bn(a, "bn") * fc_w).sum() + fc_b + (bn(b, "bn") * fc_w).sum() + fc_b
            out[i, j] = bn(logit, "logit_bn")
    return out.float()


def _pixels(n, h, w, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- the authors' QAConv
@pytest.mark.skipif(not (PEERS / "qaconv_r18_cm.npz").is_file(),
                    reason="the peers' reference cases (shared/reference/peers) are absent")
def test_the_authors_reference_case_gives_their_maps_and_logits(tmp_path):
    ref = np.load(PEERS / "qaconv_r18_cm.npz")
    report = import_checkpoint(PEERS / "qaconv_r18_cm.pth.tar", tmp_path / "q.pt")
    assert report.format == "qaconv"
    cfg = report.config
    assert (cfg.arch, cfg.layer, cfg.neck, cfg.height, cfg.width) == ("resnet18", 3, 128, 256, 128)
    assert (cfg.height, cfg.width) == (int(ref["height"]), int(ref["width"]))
    model = load_model(tmp_path / "q.pt")
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        maps = model.features((torch.from_numpy(ref["pixels"]) - mean) / std)
    np.testing.assert_allclose(maps.numpy(), ref["maps"], atol=1e-4)
    np.testing.assert_allclose(model.score(maps, maps, device="cpu"), ref["scores"], atol=1e-4)


@pytest.mark.parametrize("arch, layer, neck, class_memory", [
    ("resnet18", 3, 16, True),
    ("resnet18_ibn_a", 3, 8, False),     # input size from the head's 8 locations
    ("resnet34_ibn_b", 3, 8, True),
    ("resnet50_ibn_b", 2, 0, True),      # no neck: final layer from the class memory's channels
])
def test_authors_qaconv_converts_exactly(tmp_path, arch, layer, neck, class_memory):
    hw = (8, 4) if layer == 2 else (4, 2)
    src = authors_qaconv(arch, layer, neck, hw, class_memory, seed=3)
    torch.save(src, tmp_path / "checkpoint.pth.tar")
    report = import_checkpoint(tmp_path / "checkpoint.pth.tar", tmp_path / "model.pt")
    cfg = report.config
    assert (cfg.arch, cfg.layer, cfg.neck, cfg.height, cfg.width) == (arch, layer, neck, 64, 32)
    assert cfg.source == "qaconv" and cfg.method == "qaconv" and cfg.imagenet_norm is False
    model = load_model(tmp_path / "model.pt")
    x = _pixels(3, 64, 32)
    with torch.no_grad():
        maps = model.features(x)
        ref = reference_trunk(src["model"], "base.", x, layer)
        if neck:
            ref = _conv(src["model"], "neck_conv", ref)
        ref = F.normalize(ref, dim=1)
    torch.testing.assert_close(maps, ref, atol=1e-4, rtol=0)
    logits = model.score(maps, maps, device="cpu")
    torch.testing.assert_close(torch.from_numpy(logits), reference_qaconv_logits(src["criterion"], ref, ref),
                               atol=1e-4, rtol=0)


def test_the_input_size_is_asked_for_when_the_file_cannot_tell(tmp_path):
    src = authors_qaconv("resnet18", 3, 8, (5, 1), class_memory=False)
    with pytest.raises(NeedsInputSize, match="--height and --width") as info:
        convert(src)
    assert (80, 16) in info.value.candidates
    _, converted = convert(src, height=80, width=16)
    assert (converted.config.height, converted.config.width) == (80, 16)
    with pytest.raises(CheckpointError, match="5 locations"):
        convert(src, height=64, width=32)
    torch.save(src, tmp_path / "checkpoint.pth.tar")
    with pytest.raises(NeedsInputSize) as info:     # what the viewer catches to ask the user
        native_checkpoint(tmp_path / "checkpoint.pth.tar", tmp_path / "cache")
    assert str(tmp_path) in str(info.value) and (80, 16) in info.value.candidates
    path = native_checkpoint(tmp_path / "checkpoint.pth.tar", tmp_path / "cache", height=80, width=16)
    assert load_model(path).config.feature_size == (5, 1)


@pytest.mark.parametrize("damage, named", [
    (lambda s: s["model"].__setitem__("base.layer2.0.conv2.weight", torch.zeros(128, 128, 1, 1)),
     "base.layer2.0.conv2.weight"),
    (lambda s: s["model"].pop("base.layer3.1.bn1.running_var"), "base.layer3.1.bn1.running_var"),
    (lambda s: s["criterion"].pop("matcher.logit_bn.bias"), "matcher.logit_bn.bias"),
    (lambda s: s["model"].__setitem__("extra_head.weight", torch.zeros(3)), "extra_head.weight"),
])
def test_a_missing_or_misshaped_weight_is_refused_in_one_line(damage, named):
    src = authors_qaconv()
    damage(src)
    with pytest.raises(CheckpointError) as info:
        convert(src, "qaconv")
    message = str(info.value)
    assert named in message and "\n" not in message


# --------------------------------------------------------------------------- fast-reid
def _fastreid_reference(src, x, bnneck=True):
    sd = src["model"]
    feat = reference_trunk(sd, "backbone.", x, 4, last_stride=1, fastreid_stem=True).mean((2, 3))
    if bnneck:
        feat = F.batch_norm(feat, sd["heads.bottleneck.0.running_mean"], sd["heads.bottleneck.0.running_var"],
                            sd["heads.bottleneck.0.weight"], sd["heads.bottleneck.0.bias"], False, 0.0, 1e-5)
    return feat


@pytest.mark.parametrize("arch, bnneck, pixel_stats", [
    ("resnet18", True, True),
    pytest.param("resnet50_ibn_a", True, False, marks=pytest.mark.slow),  # BoT R50-IBN itself
    ("resnet18_ibn_a", False, False)])
def test_fastreid_converts_exactly(arch, bnneck, pixel_stats):
    src = fastreid_file(arch, seed=5, bnneck=bnneck, pixel_stats=pixel_stats)
    fmt, converted = convert(src)
    cfg = converted.config
    assert fmt == "fastreid" and (cfg.arch, cfg.layer, cfg.last_stride, cfg.neck) == (arch, 4, 1, 0)
    assert cfg.head == ("bnneck" if bnneck else "pool") and cfg.imagenet_norm and cfg.source == "fastreid"
    assert (cfg.height, cfg.width) == (256, 128)
    # the trunk of this tool (fast-reid's stem) + the BN neck, with the converted weights
    trunk, channels = build_resnet_trunk(cfg)
    trunk.load_state_dict({k.removeprefix("trunk."): v for k, v in converted.weights.items()
                           if k.startswith("trunk.")})
    x = _pixels(2, 64, 32, seed=1)
    with torch.no_grad():
        emb = trunk.eval()(x).mean((2, 3))
        if bnneck:
            w = converted.weights
            emb = F.batch_norm(emb, w["head.bn.running_mean"], w["head.bn.running_var"],
                               w["head.bn.weight"], w["head.bn.bias"], False, 0.0, 1e-5)
        ref = _fastreid_reference(src, x, bnneck)
    assert emb.shape == (2, channels) == (2, cfg.embedding_dim)
    torch.testing.assert_close(emb, ref, atol=1e-4, rtol=1e-4)


def test_fastreid_stem_is_not_torchvisions():
    src = fastreid_file("resnet18", seed=1)
    x = _pixels(1, 64, 32, seed=2)
    with torch.no_grad():
        ours = reference_trunk(src["model"], "backbone.", x, 4, 1, fastreid_stem=True)
        theirs = reference_trunk(src["model"], "backbone.", x, 4, 1, fastreid_stem=False)
    assert ours.shape == theirs.shape and not torch.allclose(ours, theirs, atol=1e-3)


def test_fastreid_loads_as_a_global_model(tmp_path):
    src = fastreid_file("resnet18", seed=5)
    torch.save(src, tmp_path / "model_final.pth")
    import_checkpoint(tmp_path / "model_final.pth", tmp_path / "m.pt", height=64, width=32)
    model = load_model(tmp_path / "m.pt")
    x = _pixels(3, 64, 32, seed=1)
    with torch.no_grad():
        emb = model.features(x)
    ref = _fastreid_reference(src, x)
    torch.testing.assert_close(emb, ref, atol=1e-4, rtol=1e-4)
    cos = F.normalize(ref, dim=1) @ F.normalize(ref, dim=1).T
    np.testing.assert_allclose(model.score(emb, emb, device="cpu"), cos.numpy(), atol=1e-4)


@pytest.mark.parametrize("change, words", [
    (lambda m: m.__setitem__("pixel_mean", torch.tensor([127.5, 127.5, 127.5]).view(1, 3, 1, 1)), "pixel_mean"),
    (lambda m: m.__setitem__("heads.pool_layer.p", torch.tensor([3.0])), "heads.pool_layer.p"),
    (lambda m: m.__setitem__("backbone.NL_2.0.g.weight", torch.zeros(1)), "non-local"),
    (lambda m: m.pop("backbone.layer4.1.bn2.weight"), "backbone.layer4.1.bn2.weight"),
    (lambda m: m.update({k.replace("bottleneck.0", "bnneck"): m.pop(k) for k in list(m)
                         if k.startswith("heads.bottleneck.0.")}), "before version 1.0"),
])
def test_fastreid_refuses_what_it_cannot_map(change, words):
    src = fastreid_file("resnet18", seed=0)
    change(src["model"])
    with pytest.raises(CheckpointError, match=words.replace(".", r"\.")):
        convert(src)


# --------------------------------------------------------------------------- detection, files, CLI
def test_every_format_is_detected_and_nothing_else():
    assert detect_foreign(authors_qaconv()) == "qaconv"
    assert detect_foreign(fastreid_file()) == "fastreid"
    model = authors_qaconv()["model"]
    assert detect_foreign({"model": model}) is None          # no criterion: not the authors' file
    assert detect_foreign({"config": {}, "model": {}}) is None
    assert detect_foreign({"state_dict": 3}) is None and detect_foreign([1, 2]) is None
    wrapped = authors_qaconv()
    wrapped["model"] = {f"module.{k}": v for k, v in wrapped["model"].items()}
    assert detect_foreign(wrapped) == "qaconv"
    with pytest.raises(CheckpointError, match="not a checkpoint of this tool"):
        convert({"weights": torch.zeros(1)})


@pytest.mark.skipif(not (PEERS / "torchreid_osnet_x0_25.pth.tar").is_file(),
                    reason="the peers' reference cases (shared/reference/peers) are absent")
def test_torchreid_file_is_detected_when_its_converter_is_present():
    assert detect_foreign(read_tensor_file(PEERS / "torchreid_osnet_x0_25.pth.tar")) == "torchreid"


def test_native_checkpoint_converts_once_into_the_cache(tmp_path, random_checkpoint):
    assert native_checkpoint(random_checkpoint, tmp_path / "cache") == random_checkpoint
    torch.save(authors_qaconv(), tmp_path / "checkpoint.pth.tar")
    reports = []
    first = native_checkpoint(tmp_path / "checkpoint.pth.tar", tmp_path / "cache", on_import=reports.append)
    assert first.is_file() and first.parent.parent == tmp_path / "cache" and len(reports) == 1
    stamp = first.stat().st_mtime_ns
    again = native_checkpoint(tmp_path / "checkpoint.pth.tar", tmp_path / "cache", on_import=reports.append)
    assert again == first and first.stat().st_mtime_ns == stamp and len(reports) == 1
    state = read_tensor_file(first)
    assert state["source"]["format"] == "qaconv" and state["config"]["source"] == "qaconv"
    with pytest.raises(CheckpointError, match="not a checkpoint of this tool"):
        native_checkpoint(tmp_path / "checkpoint.pth.tar", tmp_path / "cache", format="reid-inspector")


def test_a_file_needing_code_is_refused(tmp_path):
    torch.save({"model": {"base.conv1.weight": torch.zeros(1)}, "criterion": Path("x")},
               tmp_path / "evil.pth.tar")
    with pytest.raises(CheckpointError, match="refused for safety"):
        native_checkpoint(tmp_path / "evil.pth.tar", tmp_path / "cache")


def test_import_command_prints_what_it_found_and_refuses_in_one_line(tmp_path, run_cli):
    torch.save(authors_qaconv(), tmp_path / "checkpoint.pth.tar")
    out = tmp_path / "model.pt"
    code, stdout, _ = run_cli("import", tmp_path / "checkpoint.pth.tar", "--out", out)
    assert code == 0 and out.is_file() and out.with_suffix(".json").is_file()
    for words in ("format:        qaconv", "arch:          resnet18", "maps 16 x 4 x 2", "64 x 32",
                  "no mean/std"):
        assert words in stdout
    code, _, stderr = run_cli("import", tmp_path / "checkpoint.pth.tar", "--out", out)
    assert code == 2 and "--force" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_cli("import", tmp_path / "checkpoint.pth.tar", "--out", tmp_path / "b.pt",
                              "--format", "fastreid")
    assert code == 2 and "fast-reid" in stderr and stderr.count("\n") == 1
    code, _, stderr = run_cli("import", out, "--out", tmp_path / "c.pt")
    assert code == 2 and "already a checkpoint of this tool" in stderr


def test_a_converted_qaconv_model_evaluates_like_our_own(tmp_path, run_cli, tiny_synth):
    root, _ = tiny_synth
    torch.save(authors_qaconv(hw=(4, 2)), tmp_path / "checkpoint.pth.tar")
    run_cli("import", tmp_path / "checkpoint.pth.tar", "--out", tmp_path / "model.pt")
    code, stdout, stderr = run_cli("evaluate", "--checkpoint", tmp_path / "model.pt", "--data", root,
                                   "--cache-dir", tmp_path / "cache", "--device", "cpu")
    assert code == 0, stderr
    assert "rank-1" in stdout and "qaconv" in stdout
    # the authors' file given as it is ranks the same (converted in memory)
    code, direct, stderr = run_cli("evaluate", "--checkpoint", tmp_path / "checkpoint.pth.tar", "--data",
                                   root, "--cache-dir", tmp_path / "cache2", "--device", "cpu")
    assert code == 0, stderr
    rows = [line for line in stdout.splitlines() if line.startswith("qaconv")]
    assert rows and rows == [line for line in direct.splitlines() if line.startswith("qaconv")]


# --------------------------------------------------------------------------- settings and trunks
def test_the_demo_checkpoint_gives_torchvisions_features():
    """The one ResNet builder computes what torchvision's ResNet computes, for this tool's own
    checkpoints too (names under backbone.body.*)."""
    from torchvision.models import resnet18

    path = Path(__file__).resolve().parents[2] / "viewer" / "demo" / "model.pt"
    state = read_tensor_file(path)["model"]
    model = load_model(path)
    tv = resnet18()
    tv.load_state_dict({k.removeprefix("backbone.body."): v for k, v in state.items()
                        if k.startswith("backbone.body.")}, strict=False)
    tv.eval()
    x = _pixels(2, 256, 128, seed=4)
    with torch.no_grad():
        t = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        t = tv.layer3(tv.layer2(tv.layer1(t)))
        ref = F.normalize(F.conv2d(t, state["backbone.neck.weight"], state["backbone.neck.bias"], padding=1), dim=1)
        torch.testing.assert_close(model.features(x), ref, atol=1e-5, rtol=0)


def test_settings_are_validated_and_old_ones_keep_their_meaning():
    old = {"arch": "resnet18", "neck": 128, "height": 256, "width": 128, "pretrained": "none",
           "imagenet_norm": False, "method": "qaconv"}
    cfg = ModelConfig.from_dict(old)
    assert (cfg.source, cfg.layer, cfg.last_stride, cfg.head, cfg.stride) == ("reid-inspector", 3, 2, "pool", 16)
    assert cfg.preprocessing.key() == "256x128-norm0"   # the caches made before stay valid
    fast = ModelConfig(arch="resnet50_ibn_a", neck=0, method="global", head="bnneck", layer=4,
                       last_stride=1, source="fastreid", height=256, width=128, pretrained="none")
    assert fast.stride == 16 and fast.feature_shape == (2048, 1, 1) and fast.ibn == "a"
    assert ModelConfig(layer=2, height=64, width=32).preprocessing.key() == "64x32-norm0-s8"
    assert ModelConfig(layer=2, height=64, width=32).feature_size == (8, 4)
    for bad, words in [({"layer": 5}, "layer"), ({"head": "bnneck"}, "global model's"),
                       ({"source": "mmreid"}, "source"), ({"arch": "osnet_x1_0"}, "global model"),
                       ({"layer": 4, "height": 48}, "multiple of 32"),
                       ({"neck": 0, "method": "global", "head": "fc"}, "head_dim")]:
        with pytest.raises(ValueError, match=words):
            ModelConfig(**bad)


@pytest.mark.parametrize("arch, ibn_keys, absent", [
    ("resnet18_ibn_a", ["layer1.0.bn1.IN.weight", "layer3.1.bn1.BN.running_mean"], ["layer4.0.bn1.IN.weight"]),
    ("resnet50_ibn_b", ["layer1.2.IN.weight", "layer2.3.IN.weight"], ["bn1.running_mean", "layer1.0.IN.weight",
                                                                      "layer3.5.IN.weight"]),
])
def test_ibn_layouts_follow_ibn_net(arch, ibn_keys, absent):
    trunk, channels = build_resnet_trunk(ModelConfig(arch=arch, layer=4, pretrained="none"))
    keys = trunk.state_dict()
    assert all(k in keys for k in ibn_keys) and not any(k in keys for k in absent)
    assert channels == (2048 if "50" in arch else 512)


def test_build_model_makes_a_qaconv_model_without_a_neck():
    cfg = ModelConfig(arch="resnet18", neck=0, layer=2, height=64, width=32, pretrained="none")
    model = build_model(cfg).eval()
    with torch.no_grad():
        maps = model.features(_pixels(2, 64, 32))
    assert maps.shape == (2, 128, 8, 4) == (2, *cfg.feature_shape)


def test_the_session_ranks_with_embeddings_stored_as_maps(tmp_path, tiny_synth):
    from engine.session import Session

    _, dataset = tiny_synth
    cfg = ModelConfig(arch="resnet18", neck=0, method="global", head="bnneck", layer=4, last_stride=1,
                      source="fastreid", height=64, width=32, imagenet_norm=True, pretrained="none")
    torch.manual_seed(0)
    model = build_model(cfg).eval()  # a GlobalModel: ResNet-18 trunk, BN neck
    session = Session(dataset, model, "random", device="cpu", cache_dir=tmp_path, batch_size=8)
    assert session.prep == cfg.preprocessing and session.method == "global"
    maps = session.maps()
    assert maps["q"].shape == (len(session.dataset.query), *cfg.feature_shape) == (len(maps["q"]), 512, 1, 1)
    session.score(("qg",))
    distmat = session.distances()
    q = np.asarray(maps["q"], np.float32)[:, :, 0, 0]
    g = np.asarray(maps["g"], np.float32)[:, :, 0, 0]
    cos = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (g / np.linalg.norm(g, axis=1, keepdims=True)).T
    np.testing.assert_allclose(distmat, (1 - cos) / 2, atol=1e-5)


def test_load_model_opens_a_foreign_file_as_it_is(tmp_path):
    src = authors_qaconv(seed=2)
    torch.save(src, tmp_path / "checkpoint.pth.tar")
    direct = load_model(tmp_path / "checkpoint.pth.tar")
    assert direct.config.source == "qaconv"
    import_checkpoint(tmp_path / "checkpoint.pth.tar", tmp_path / "model.pt")
    converted = load_model(tmp_path / "model.pt")
    for name, tensor in converted.state_dict().items():
        assert torch.equal(direct.state_dict()[name], tensor), name


def test_the_authors_older_head_is_refused_by_name():
    src = authors_qaconv(hw=(4, 2))
    src["criterion"] = {k.removeprefix("matcher."): v for k, v in src["criterion"].items()}
    src["criterion"]["fc.weight"] = torch.zeros(1, 16)
    assert detect_foreign(src) == "qaconv"
    with pytest.raises(CheckpointError, match="before version 1.2"):
        convert(src)


def test_numpy_scores_in_a_file_are_read_as_numbers_and_nothing_more(tmp_path):
    """torchreid saves rank1 as a NumPy scalar; a NumPy array or any callable stays refused."""
    torch.save({"state_dict": {"w": torch.zeros(2)}, "rank1": np.float32(0.75), "epoch": 3},
               tmp_path / "a.pth.tar")
    state = read_tensor_file(tmp_path / "a.pth.tar")
    assert float(state["rank1"]) == 0.75
    # the same file as NumPy 1 wrote it (numpy.core, renamed numpy._core in NumPy 2)
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.pth.tar") as zin, \
            zipfile.ZipFile(tmp_path / "old.pth.tar", "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("data.pkl"):
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(info, data)
    assert float(read_tensor_file(tmp_path / "old.pth.tar")["rank1"]) == 0.75
    torch.save({"rank1": np.zeros(3)}, tmp_path / "b.pth.tar")
    with pytest.raises(CheckpointError, match="refused for safety"):
        read_tensor_file(tmp_path / "b.pth.tar")
