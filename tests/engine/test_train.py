"""Training loop, checkpoints, resume and the CLI end to end on a tiny synthetic set."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from engine.checkpoint import CheckpointError, load_checkpoint
from engine.models import load_model
from engine.models.config import ModelConfig
from engine.train import Schedule, TrainConfig, fit

TINY_MODEL = ModelConfig(arch="resnet18", neck=16, height=64, width=32, pretrained="none")
TINY_TRAIN = TrainConfig(batch_size=8, max_epochs=2, max_batches=2, workers=0, rotation=0)
CPU = torch.device("cpu")


def test_schedule_drops_once_and_stops_at_one_and_a_half_times():
    s = Schedule(ratio=0.7, max_epochs=60)
    losses = [5.0, 4.0, 3.5, 3.0, 2.7, 2.0, 1.9]
    drops = [e for e, loss in enumerate(losses, 1) if s.step(e, loss)]
    assert s.base == 4.0 and drops == [5]           # 2.7 < 0.7 * 4.0 first at epoch 5
    assert s.stop_epoch == 7 and not s.finished(6) and s.finished(7)   # 5 + 5 // 2
    capped = Schedule(ratio=0.7, max_epochs=6)
    for e, loss in enumerate(losses, 1):
        capped.step(e, loss)
    assert capped.stop_epoch == 6


@pytest.mark.slow
def test_fit_writes_checkpoints_and_resume_continues(tiny_synth, tmp_path):
    _, dataset = tiny_synth
    out = tmp_path / "run"
    epochs = []
    fit(dataset, TINY_MODEL, dataclasses.replace(TINY_TRAIN, max_epochs=1), out, device=CPU,
        epoch_callback=lambda e, s: epochs.append((e, s)))
    assert [e for e, _ in epochs] == [1] and np.isfinite(epochs[0][1]["loss"])
    first = load_checkpoint(out / "last.pt")
    assert first["epoch"] == 1 and "optimizer" in first and "criterion" in first
    slim = load_checkpoint(out / "model.pt")
    assert "optimizer" not in slim and slim["config"] == TINY_MODEL.to_dict()
    # resume with a larger epoch budget: continues at epoch 2 with the saved optimizer state
    epochs.clear()
    fit(dataset, TINY_MODEL, TINY_TRAIN, out, device=CPU, resume=True,
        epoch_callback=lambda e, s: epochs.append((e, s)))
    assert [e for e, _ in epochs] == [2]
    second = load_checkpoint(out / "last.pt")
    assert second["epoch"] == 2 and len(second["schedule"]["history"]) == 2
    # the class memory was carried over and written further
    assert second["criterion"]["valid"].sum() >= first["criterion"]["valid"].sum()
    model = load_model(out / "model.pt")
    assert not model.training and model.config.arch == "resnet18"


@pytest.mark.slow
def test_resume_with_other_model_settings_says_what_differs(tiny_synth, tmp_path):
    _, dataset = tiny_synth
    fit(dataset, TINY_MODEL, dataclasses.replace(TINY_TRAIN, max_epochs=1), tmp_path, device=CPU)
    other = dataclasses.replace(TINY_MODEL, neck=32)
    with pytest.raises(ValueError, match="neck"):
        fit(dataset, other, TINY_TRAIN, tmp_path, device=CPU, resume=True)


def test_checkpoint_that_does_not_fit_names_the_difference(tiny_synth, tmp_path):
    _, dataset = tiny_synth
    path = fit(dataset, TINY_MODEL, dataclasses.replace(TINY_TRAIN, max_epochs=1), tmp_path, device=CPU)
    state = load_checkpoint(path)
    state["config"]["neck"] = 32  # settings now disagree with the stored weights
    from engine.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "bad.pt", state)
    with pytest.raises(CheckpointError, match="neck.weight"):
        load_model(tmp_path / "bad.pt")


@pytest.mark.slow
@pytest.mark.parametrize("loss,sampler", [("focal", "random"), ("triplet", "graph"),
                                          ("softmax+triplet", "pk"), ("pairwise", "pk")])
def test_losses_and_samplers_train_with_bfloat16_autocast(tiny_synth, tmp_path, loss, sampler):
    _, dataset = tiny_synth
    cfg = dataclasses.replace(TINY_TRAIN, loss=loss, sampler=sampler, max_epochs=1, amp="on", k=2)
    stats = []
    fit(dataset, TINY_MODEL, cfg, tmp_path, device=CPU, epoch_callback=lambda e, s: stats.append(s))
    assert stats[0]["batches"] == 2 and np.isfinite(stats[0]["loss"])


@pytest.mark.slow
def test_global_baseline_trains_and_scores(tiny_synth, tmp_path):
    _, dataset = tiny_synth
    model_cfg = dataclasses.replace(TINY_MODEL, method="global")
    path = fit(dataset, model_cfg, dataclasses.replace(TINY_TRAIN, loss="global", max_epochs=1),
               tmp_path, device=CPU)
    model = load_model(path)
    maps = model.features(torch.rand(3, 3, 64, 32)).detach()
    scores = model.score(maps, maps, device=CPU)
    assert scores.shape == (3, 3) and np.allclose(np.diag(scores), 1.0, atol=1e-5)


@pytest.mark.slow
def test_cli_train_then_evaluate_end_to_end(tiny_synth, tmp_path, run_cli):
    root, _ = tiny_synth
    common = ["--data", root, "--device", "cpu"]
    code, _, err = run_cli("train", *common, "--out", tmp_path / "run", "--arch", "resnet18",
                           "--neck", "16", "--height", "64", "--width", "32", "--pretrained", "none",
                           "--batch-size", "8", "--max-epochs", "1", "--max-batches", "2",
                           "--workers", "0")
    assert code == 0, err
    scored = [*common, "--checkpoint", tmp_path / "run" / "model.pt", "--cache-dir", tmp_path / "cache"]
    code, out, err = run_cli("evaluate", *scored, "--rerank", "--tlift", "--csv", tmp_path / "rows.csv")
    assert code == 0, err
    lines = [line.split() for line in out.splitlines() if line.startswith("qaconv")]
    assert [row[1] for row in lines] == ["raw", "+RR", "+RR+TLift"]
    assert all(0.0 <= float(v) <= 100.0 for row in lines for v in row[2:])
    assert (tmp_path / "rows.csv").read_text().count("\n") == 4
    # the sweep's point at the default alpha is the +RR+TLift row
    code, _, err = run_cli("sweep", *scored, "--param", "alpha", "--values", "0.1", "0.2",
                           "--csv", tmp_path / "sweep.csv")
    assert code == 0, err
    sweep = [line.split(",") for line in (tmp_path / "sweep.csv").read_text().splitlines()[1:]]
    assert [float(r[0]) for r in sweep] == [0.1, 0.2]
    assert abs(100 * float(sweep[1][1]) - float(lines[2][2])) < 0.01
    assert abs(100 * float(sweep[1][2]) - float(lines[2][5])) < 0.01
    # the sweep's CSV goes through the guarded writer: an input of the run is refused even forced
    sidecar = tmp_path / "run" / "model.json"
    before = sidecar.read_bytes()
    code, _, err = run_cli("sweep", *scored, "--param", "alpha", "--values", "0.1", "--csv", sidecar,
                           "--force")
    assert code == 2 and "--csv" in err and sidecar.read_bytes() == before
    # export writes every query's top-3 in the engine's order
    code, _, err = run_cli("export", *scored, "--out", tmp_path / "ranks.csv", "--top-k", "3")
    assert code == 0, err
    ranks = (tmp_path / "ranks.csv").read_text().splitlines()
    assert ranks[0].startswith("query,query_pid,query_cam,rank") and len(ranks) > 3


def test_cli_errors_are_messages_not_tracebacks(tmp_path, run_cli):
    code, _, err = run_cli("evaluate", "--data", tmp_path, "--checkpoint", tmp_path / "none.pt")
    assert code == 2 and "error:" in err and "Traceback" not in err
    code, _, err = (run_cli("train", "--data", tmp_path, "--out", tmp_path / "o", "--device", "cuda")
                    if not torch.cuda.is_available() else run_cli("info", "--data", tmp_path))
    assert code == 2 and "error:" in err


@pytest.mark.slow
def test_a_trained_checkpoint_initialises_another_models_trunk(tiny_synth, tmp_path):
    """No ImageNet weights here: a model trained by this project can stand in for them."""
    from engine.models.reid import build_model
    from engine.train import has_pretrained_weights

    _, dataset = tiny_synth
    source_cfg = dataclasses.replace(TINY_MODEL, method="global")
    path = fit(dataset, source_cfg, dataclasses.replace(TINY_TRAIN, loss="global", max_epochs=1),
               tmp_path / "global", device=CPU)
    target_cfg = dataclasses.replace(TINY_MODEL, pretrained=str(path))
    assert has_pretrained_weights(target_cfg)
    source, target = load_model(path), build_model(target_cfg)
    src, dst = source.backbone.body.state_dict(), target.backbone.body.state_dict()
    assert src.keys() == dst.keys()
    assert all(torch.equal(src[k], dst[k]) for k in src)
    # the neck is not part of the trunk: it starts fresh
    assert not torch.equal(source.backbone.neck.weight, target.backbone.neck.weight)


@pytest.mark.slow
def test_checkpoint_records_its_trunk_source_without_machine_paths(tiny_synth, tmp_path):
    """A shared checkpoint names the trunk file it started from by name and digest, no folder."""
    from engine.checkpoint import file_digest, read_sidecar_config

    _, dataset = tiny_synth
    source = fit(dataset, dataclasses.replace(TINY_MODEL, method="global"),
                 dataclasses.replace(TINY_TRAIN, loss="global", max_epochs=1, max_batches=1),
                 tmp_path / "private" / "global", device=CPU)
    target_cfg = dataclasses.replace(TINY_MODEL, pretrained=str(source))
    path = fit(dataset, target_cfg, dataclasses.replace(TINY_TRAIN, max_epochs=1, max_batches=1),
               tmp_path / "demo", device=CPU)
    recorded = read_sidecar_config(path, file_digest(path))["pretrained"]
    assert "private" not in recorded and str(tmp_path) not in recorded
    assert recorded == f"model.pt (digest {file_digest(source)})"
    assert load_model(path).config.pretrained == "none"  # the checkpoint holds every weight
