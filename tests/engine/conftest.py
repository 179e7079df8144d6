"""Shared fixtures of the engine tests: a tiny synthetic benchmark, small image files, a random
checkpoint, the command line in-process."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory):
    """A very small synthetic domain-A benchmark (Market layout) and its Dataset."""
    from engine.data.synthetic import generate

    root = tmp_path_factory.mktemp("synth") / "A"
    dataset = generate(root, domain="A", seed=0, num_train_ids=8, num_test_ids=6,
                       num_distractors=4, num_junk=2)
    return root, dataset


@pytest.fixture(scope="module")
def tiny_run(tiny_synth, tmp_path_factory):
    """A dataset folder and a one-batch checkpoint (ResNet-18, 64 x 32, D = 16) trained on it."""
    import torch

    from engine.models.config import ModelConfig
    from engine.train import TrainConfig, fit

    root, dataset = tiny_synth
    model = ModelConfig(arch="resnet18", neck=16, height=64, width=32, pretrained="none")
    train = TrainConfig(batch_size=8, max_epochs=1, max_batches=1, workers=0, rotation=0)
    path = fit(dataset, model, train, tmp_path_factory.mktemp("run"), device=torch.device("cpu"))
    return root, path


def one_error_line(err: str) -> str:
    """The one ``error:`` line of a command's stderr (and no traceback)."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def run_cli(capsys):
    """``python -m engine ARGV`` in this process: ``run_cli(*argv) -> (exit code, stdout, stderr)``."""
    from engine.__main__ import main

    def run(*argv) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def image_samples():
    """``image_samples(folder, n=5) -> [Sample]``: ``n`` random 32 x 16 JPEG files written into
    ``folder`` (created), named like Market-1501, pid = their index, camera 0, no time."""
    import cv2
    import numpy as np

    from engine.data import Sample

    def write(folder, n: int = 5) -> list[Sample]:
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        samples = []
        for i in range(n):
            path = str(folder / f"{i:04d}_c1s1_{i:06d}_00.jpg")
            cv2.imwrite(path, rng.integers(0, 255, (32, 16, 3), dtype=np.uint8))
            samples.append(Sample(path, i, 0, None))
        return samples

    return write


def _save_random_checkpoint(path):
    """A randomly initialised small model (ResNet-18, 32 x 16 input, D = 8) saved as ``path``
    (with its JSON sidecar); the same weights every time."""
    import torch

    from engine.checkpoint import save_checkpoint
    from engine.models import ModelConfig, build_model

    cfg = ModelConfig(arch="resnet18", neck=8, height=32, width=16, pretrained="none")
    torch.manual_seed(0)
    save_checkpoint(path, {"config": cfg.to_dict(), "model": build_model(cfg).state_dict()})
    return path


@pytest.fixture
def random_checkpoint(tmp_path):
    """A randomly initialised small model (ResNet-18, 32 x 16 input, D = 8) saved as
    ``tmp_path / "model.pt"`` (with its JSON sidecar)."""
    return _save_random_checkpoint(tmp_path / "model.pt")


@pytest.fixture(scope="session")
def shared_random_checkpoint(tmp_path_factory):
    """:func:`random_checkpoint` written once per test run, for module-scoped fixtures (read only)."""
    return _save_random_checkpoint(tmp_path_factory.mktemp("shared_model") / "model.pt")


@pytest.fixture(scope="session")
def unit_maps():
    """``unit_maps(n, c, h, w, seed) -> Tensor [n, c, h, w]``: random feature maps with a unit
    vector at every location, the same for the same seed."""
    import torch
    import torch.nn.functional as F

    def make(n: int, c: int, h: int, w: int, seed: int):
        gen = torch.Generator().manual_seed(seed)
        return F.normalize(torch.randn(n, c, h, w, generator=gen), dim=1)

    return make


@pytest.fixture(scope="session")
def randomised_matcher():
    """``randomised_matcher(c, h, w, seed, **kwargs) -> QAConv``: a matcher whose BatchNorms and
    fc are far from their initial values, as after training (in training mode)."""
    import torch

    from engine.models import QAConv

    def make(c: int, h: int, w: int, seed: int, **kwargs):
        m = QAConv(c, h, w, **kwargs)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for bn in (m.bn, m.logit_bn):
                bn.running_mean.copy_(torch.rand(1, generator=gen) * 0.5)
                bn.running_var.copy_(torch.rand(1, generator=gen) + 0.2)
                bn.weight.copy_(torch.rand(1, generator=gen) + 0.5)
                bn.bias.copy_(torch.randn(1, generator=gen))
            m.fc.weight.copy_(torch.randn(1, h * w, generator=gen) / (h * w))
            m.fc.bias.copy_(torch.randn(1, generator=gen))
        return m

    return make
