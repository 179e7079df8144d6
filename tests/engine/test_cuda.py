"""The GPU path against the CPU: fp16 scoring, fp16 extraction, AMP training with a GradScaler,
and a Session end to end.

Tests marked ``cuda`` are skipped, with the reason, where torch sees no GPU (tests/conftest.py).
Where the same code runs on the CPU (fp16 scoring, fp16 steps with a GradScaler, resume) the
test is parametrised over ``cpu`` and ``cuda``, so it is exercised on every machine.

Tolerances are stated relative to the spread of the reference logits (``max - min`` of the
float32 CPU result), since a logit's absolute size depends on the matcher's head. fp16 scoring
measured 6e-5 of the spread on the CPU (fp16 similarities, fp32 head): bound 1e-3 (SCORE_TOL).
Maps from fp16 autocast extraction move the demo model's logits more: bfloat16 autocast on the
CPU measured 3.1% of the spread, and fp16 rounds 8x finer (~0.4%): bound 2e-2 (MAPS_TOL).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.checkpoint import load_checkpoint
from engine.data.samplers import PKBatchSampler, RandomBatchSampler
from engine.data.transforms import TrainTransform
from engine.features import extract_maps, load_input
from engine.jobs import Cancelled
from engine.losses import build_criterion
from engine.models import QAConv, load_model
from engine.models.config import ModelConfig
from engine.models.reid import build_model
from engine.models.scoring import default_score_dtype, score_matrix
from engine.train import TrainConfig, TrainImages, fit, make_optimizer, train_one_epoch
from engine.utils import autocast_dtype

ROOT = Path(__file__).resolve().parents[2]
DEMO_CHECKPOINT = ROOT / "viewer" / "demo" / "model.pt"
CUDA = pytest.param("cuda", marks=pytest.mark.cuda)
DEVICES = ["cpu", CUDA]

# The published map shape: D = 128, 24 x 8.
D, H, W = 128, 24, 8
HW = H * W
# Max |fp16 - fp32| allowed for scores, as a share of the fp32 logits' spread.
SCORE_TOL = 1e-3
# The same for logits from maps extracted with fp16 autocast (see above).
MAPS_TOL = 2e-2

TINY_MODEL = ModelConfig(arch="resnet18", neck=16, height=64, width=32, pretrained="none")
TINY_TRAIN = TrainConfig(batch_size=8, max_epochs=2, max_batches=2, workers=0, rotation=0, k=2)


# ---------------------------------------------------------------------------------- scoring
def trained_like_matcher(seed: int = 0) -> QAConv:
    """Non-default BatchNorm statistics and fc weights, as after training."""
    m = QAConv(D, H, W)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m.bn, m.logit_bn):
            bn.running_mean.fill_(0.3)
            bn.running_var.fill_(0.02)
            bn.weight.fill_(1.5)
            bn.bias.fill_(-0.25)
        m.fc.weight.copy_(torch.rand(1, HW, generator=gen) / HW)
        m.fc.bias.fill_(0.1)
    return m.eval()


def person_views(n: int, seed: int, people: int = 6) -> np.ndarray:
    """fp16 unit maps ``[n, D, H, W]`` (as the feature store holds them): noisy views of a few
    people, so that matching pairs score far above the rest, as with real maps."""
    identities = F.normalize(torch.randn(people, D, H, W, generator=torch.Generator().manual_seed(99)), dim=1)
    noise = torch.randn(n, D, H, W, generator=torch.Generator().manual_seed(seed))
    maps = F.normalize(identities[torch.arange(n) % people] + 0.06 * noise, dim=1)
    return maps.numpy().astype(np.float16)


def assert_close_to_spread(got: np.ndarray, reference: np.ndarray, tol: float = SCORE_TOL,
                           spread: float | None = None) -> None:
    """``max |got - reference| <= tol * spread``, the spread being that of ``reference``'s logits."""
    spread = float(reference.max() - reference.min()) if spread is None else spread
    assert spread > 1.0, "the reference should separate matching from other pairs"
    worst = float(np.abs(got - reference).max())
    assert worst <= tol * spread, f"max |diff| {worst:.4g} > {tol} x spread {spread:.4g}"


@pytest.mark.parametrize("symmetric", [False, True], ids=["asymmetric", "symmetric"])
@pytest.mark.parametrize("device", DEVICES)
def test_fp16_scoring_matches_float32_on_the_cpu(device, symmetric):
    matcher = trained_like_matcher()
    probe = person_views(13, 1)
    gallery = probe if symmetric else person_views(29, 2)
    reference = score_matrix(matcher, probe, gallery, device="cpu", dtype=torch.float32,
                             symmetric=symmetric)
    if device == "cuda":
        assert default_score_dtype(torch.device(device)) == torch.float16
        dtype = None  # the CUDA default
    else:
        dtype = torch.float16
    half = score_matrix(matcher, probe, gallery, device=device, dtype=dtype, symmetric=symmetric)
    assert half.dtype == np.float32 and half.shape == reference.shape
    assert_close_to_spread(half, reference)
    if symmetric:
        np.testing.assert_array_equal(half, half.T)


@pytest.mark.cuda
def test_cuda_scoring_in_small_chunks_keeps_to_the_budget():
    matcher = trained_like_matcher(1)
    probe, gallery = person_views(13, 3), person_views(29, 4)
    reference = score_matrix(matcher, probe, gallery, device="cpu", dtype=torch.float32)
    whole = score_matrix(matcher, probe, gallery, device="cuda", memory_budget=1 << 30)
    # 600 kB: blocks of 1 x 4 pairs, tiles of 1 probe x 4 gallery images (13 x 8 tiles).
    budget = 600_000
    score_matrix(matcher, probe, gallery, device="cuda", memory_budget=budget)  # cuBLAS workspace
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    calls = []
    chunked = score_matrix(matcher, probe, gallery, device="cuda", memory_budget=budget,
                           progress=lambda done, total: calls.append((done, total)))
    peak = torch.cuda.max_memory_allocated() - base
    assert peak <= 1.5 * budget, f"peak {peak} bytes for a budget of {budget}"
    assert_close_to_spread(chunked, reference)
    assert_close_to_spread(chunked, whole)
    done = [d for d, _ in calls]
    assert len(calls) > 10 and done == sorted(done) and calls[-1] == (13 * 29, 13 * 29)


@pytest.mark.cuda
def test_cuda_scoring_cancels_and_the_device_stays_usable():
    matcher = trained_like_matcher(2)
    probe, gallery = person_views(13, 5), person_views(29, 6)
    polls = []

    def cancel() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(Cancelled):
        score_matrix(matcher, probe, gallery, device="cuda", memory_budget=600_000, cancel=cancel)
    assert len(polls) == 4  # stopped at the first poll that asked for it
    reference = score_matrix(matcher, probe, gallery, device="cpu", dtype=torch.float32)
    assert_close_to_spread(score_matrix(matcher, probe, gallery, device="cuda"), reference)


# ------------------------------------------------------------------------------- extraction
@pytest.mark.cuda
def test_cuda_extraction_matches_the_cpu(tiny_synth):
    _, dataset = tiny_synth
    model = load_model(DEMO_CHECKPOINT, "cpu")
    cfg = model.config
    prep = cfg.preprocessing
    paths = [s.path for s in dataset.gallery[:12]]
    # batches of 5: the last one is partial
    on_cpu = extract_maps(model.backbone, paths, prep, device=torch.device("cpu"), batch_size=5)
    model.to("cuda")
    on_cuda = extract_maps(model.backbone, paths, prep, device=torch.device("cuda"), batch_size=5)
    assert on_cuda.dtype == np.float16 and on_cuda.shape == on_cpu.shape
    a, b = on_cuda.astype(np.float32), on_cpu.astype(np.float32)
    # Unit-norm maps: fp16 autocast plus the fp16 store move an element by well under 1e-2
    # (bfloat16 autocast on the CPU: 1.8e-3) and a location's direction by almost nothing.
    assert np.abs(a - b).max() <= 1e-2
    cosine = (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 0.999
    # The scores from those maps: fp16 end to end against fp32 end to end.
    reference = score_matrix(model.matcher.cpu(), on_cpu, on_cpu, device="cpu", dtype=torch.float32)
    assert_close_to_spread(score_matrix(model.matcher, on_cuda, on_cuda, device="cuda"), reference,
                           tol=MAPS_TOL)


# --------------------------------------------------------------------------------- training
def _loader(dataset, sampler: str, batch_size: int = 8):
    images = TrainImages(dataset.train, TrainTransform(TINY_MODEL.height, TINY_MODEL.width,
                                                       rotation=0), seed=0)
    pids = [s.pid for s in dataset.train]
    batches = (RandomBatchSampler(len(images), batch_size, seed=0) if sampler == "random"
               else PKBatchSampler(pids, batch_size // 2, 2, seed=0))
    return torch.utils.data.DataLoader(images, batch_sampler=batches)


def _setup(dataset, loss: str, device: torch.device):
    torch.manual_seed(0)
    model = build_model(TINY_MODEL).to(device)
    model.freeze_bn = False
    criterion = build_criterion(model, loss, dataset.num_train_pids).to(device)
    optimizer = make_optimizer(model, criterion, dataclasses.replace(TINY_TRAIN, loss=loss))
    return model, criterion, optimizer


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.named_parameters()}


@pytest.mark.cuda
@pytest.mark.parametrize("loss,sampler", [("focal", "random"), ("pairwise", "pk"),
                                          ("triplet", "pk")])
def test_amp_steps_with_grad_scaler_train_each_loss_on_cuda(tiny_synth, loss, sampler):
    """What ``fit`` runs on CUDA: fp16 autocast and a GradScaler at its default scale, which
    usually skips a few overflowing steps at first; those are counted, the rest train."""
    _, dataset = tiny_synth
    device = torch.device("cuda")
    model, criterion, optimizer = _setup(dataset, loss, device)
    before = _snapshot(model)
    scaler = torch.amp.GradScaler("cuda")
    assert scaler.get_scale() == 2.0 ** 16
    batches = overflow = 0
    for epoch in (1, 2, 3):
        stats = train_one_epoch(model, criterion, optimizer, _loader(dataset, sampler), device,
                                epoch, amp=True, amp_dtype=torch.float16, scaler=scaler,
                                max_batches=4)
        assert stats["skipped"] == 0 and np.isfinite(stats["loss"])
        batches, overflow = batches + stats["batches"], overflow + stats["overflow"]
    # the scale halves after each skipped step (and grows only after 2000 good ones)
    assert scaler.get_scale() == 2.0 ** (16 - overflow)
    assert batches - overflow >= 2, f"the GradScaler skipped {overflow} of {batches} steps"
    after = _snapshot(model)
    assert all(torch.isfinite(v).all() for v in after.values())
    for part in ("backbone.body.", "backbone.neck.", "matcher."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), \
            f"no weight of {part} changed"


class FaultyLoss(torch.nn.Module):
    """``inner``, but its 1st call returns NaN and its 2nd call's backward gives infinite
    gradients (as an fp16 overflow does); it records the model's weights at every call."""

    def __init__(self, inner: torch.nn.Module, model: torch.nn.Module):
        super().__init__()
        self.inner, self.model, self.weights = inner, model, []

    def forward(self, feats: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        self.weights.append(_snapshot(self.model))
        if len(self.weights) == 2:
            feats.register_hook(lambda grad: grad * float("inf"))
        loss = self.inner(feats, labels)
        return loss * float("nan") if len(self.weights) == 1 else loss


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_non_finite_steps_are_skipped_and_counted(tiny_synth, device):
    """The GradScaler path of ``train_one_epoch``; on the CPU with its own autocast dtype
    (bfloat16: fp16 convolutions are far too slow there)."""
    _, dataset = tiny_synth
    device = torch.device(device)
    model, criterion, optimizer = _setup(dataset, "pairwise", device)
    faulty = FaultyLoss(criterion, model)
    scaler = torch.amp.GradScaler(device.type)
    stats = train_one_epoch(model, faulty, optimizer, _loader(dataset, "random"), device, 1,
                            amp=True, amp_dtype=autocast_dtype(device), scaler=scaler,
                            max_batches=3)
    assert stats["batches"] == 3 and stats["skipped"] == 1 and stats["overflow"] == 1
    assert np.isfinite(stats["loss"]) and scaler.get_scale() == 2.0 ** 15
    first, second, third = faulty.weights
    # neither faulty batch moved a weight (not even by weight decay); the good one did
    assert all(torch.equal(first[k], second[k]) and torch.equal(second[k], third[k]) for k in first)
    after = _snapshot(model)
    assert any(not torch.equal(third[k], after[k]) for k in after)
    assert all(torch.isfinite(v).all() for v in after.values())


def _tensors_equal(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact or not torch.is_floating_point(a[k]):
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k], b[k], rtol=1e-3, atol=1e-4, msg=k)


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
def test_resume_continues_like_an_uninterrupted_run(tiny_synth, tmp_path, device, monkeypatch):
    """Epoch 1, stop, resume epoch 2 == epochs 1-2 in one go; on CUDA with AMP + GradScaler
    (``amp="auto"``), bit-exact on the CPU, within float noise on CUDA (atomics in cuDNN)."""
    _, dataset = tiny_synth
    dev = torch.device(device)
    if dev.type == "cuda":
        monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
        monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
        # float32 on the GPU as on the CPU, for the CPU-versus-GPU check at the end
        monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
        monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    # On CUDA two batches per epoch, so that the loss scale has usually dropped by the end of
    # epoch 1 (a resume that forgot it would differ); one keeps the CPU run short.
    cfg = dataclasses.replace(TINY_TRAIN, max_batches=2 if dev.type == "cuda" else 1)
    straight, resumed = [], []
    fit(dataset, TINY_MODEL, cfg, tmp_path / "straight", device=dev,
        epoch_callback=lambda e, s: straight.append(s))
    fit(dataset, TINY_MODEL, dataclasses.replace(cfg, max_epochs=1), tmp_path / "resumed",
        device=dev, epoch_callback=lambda e, s: resumed.append(s))
    fit(dataset, TINY_MODEL, cfg, tmp_path / "resumed", device=dev, resume=True,
        epoch_callback=lambda e, s: resumed.append(s))
    exact = dev.type == "cpu"
    a, b = load_checkpoint(tmp_path / "straight" / "last.pt"), load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    _tensors_equal(a["model"], b["model"], exact)
    _tensors_equal(a["criterion"], b["criterion"], exact)
    np.testing.assert_allclose([s["loss"] for s in resumed], [s["loss"] for s in straight],
                               rtol=0 if exact else 1e-3)
    assert a["schedule"]["history"] == pytest.approx(b["schedule"]["history"], rel=0 if exact else 1e-3)
    if dev.type == "cuda":
        assert a["scaler"] and a["scaler"] == b["scaler"]  # the loss scale is carried over
        # Saved on the CPU, loads there, and computes what it computed on the GPU.
        assert all(t.device.type == "cpu" for t in a["model"].values())
        on_cpu = load_model(tmp_path / "straight" / "model.pt", "cpu")
        on_gpu = load_model(tmp_path / "straight" / "model.pt", "cuda")
        x = torch.stack([load_input(s.path, TINY_MODEL.preprocessing)
                         for s in dataset.query[:4]])
        with torch.no_grad():
            torch.testing.assert_close(on_gpu.features(x.cuda()).cpu(), on_cpu.features(x),
                                       rtol=1e-3, atol=1e-4)
    else:
        assert a["scaler"] == {}  # no GradScaler without fp16


# -------------------------------------------------------------------------------- session
@pytest.mark.cuda
def test_session_on_cuda_matches_the_cpu_end_to_end(tiny_synth, tmp_path):
    from engine.postprocess.params import RerankParams, TLiftParams
    from engine.session import Session

    root, dataset = tiny_synth
    sessions = {dev: Session.open(root, DEMO_CHECKPOINT, device=dev, cache_dir=tmp_path / dev)
                for dev in ("cpu", "cuda")}
    assert sessions["cuda"].device.type == "cuda" and sessions["cpu"].device.type == "cpu"
    for session in sessions.values():
        session.prepare(rerank=True)
    for block in ("qg", "qq", "gg"):
        assert_close_to_spread(sessions["cuda"].logits[block], sessions["cpu"].logits[block],
                               tol=MAPS_TOL)
    for rerank, tlift in ((None, None), (RerankParams(), None), (RerankParams(), TLiftParams())):
        metrics = {dev: s.evaluate(s.distances(rerank, tlift)) for dev, s in sessions.items()}
        one_query = 1.0 / np.isfinite(metrics["cpu"].ap).sum()
        # A near tie may swap between fp16 and fp32: at most one query's worth of difference
        # in rank-1 and in mAP (a broken GPU path changes them wholesale).
        assert abs(metrics["cuda"].cmc[0] - metrics["cpu"].cmc[0]) <= one_query + 1e-9
        assert abs(metrics["cuda"].mean_ap - metrics["cpu"].mean_ap) <= one_query + 1e-9
        assert abs(metrics["cuda"].mean_inp - metrics["cpu"].mean_inp) <= one_query + 1e-9
    # One image through the single-image path (occlusion, external queries) on the GPU.
    cuda = sessions["cuda"]
    maps = cuda.maps_for_image(dataset.query[0].path)
    assert maps.dtype == np.float16
    assert np.abs(maps.astype(np.float32) - cuda.query_maps[0].astype(np.float32)).max() <= 1e-2
    row = cuda.score_maps(maps[None])
    qg = sessions["cpu"].logits["qg"]
    assert_close_to_spread(row[0], qg[0], tol=MAPS_TOL, spread=float(qg.max() - qg.min()))
