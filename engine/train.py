"""Training: plain functions with explicit arguments, shared by the CLI and the viewer.

``fit`` runs the whole loop (checkpoint after every epoch, resume, the adaptive schedule of
docs/arithmetic.md section 6); ``train_one_epoch`` is one pass over a loader. Everything runs on the
device it is given; mixed precision is fp16 on CUDA and (when asked for) bfloat16 on the CPU.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.checkpoint import (
    file_digest,
    load_checkpoint,
    load_state_strict,
    nonfinite_tensors,
    save_checkpoint,
)
from engine.data import Dataset, Sample, read_image_rgb
from engine.data.samplers import GraphSampler, PKBatchSampler, RandomBatchSampler
from engine.data.transforms import TrainTransform
from engine.distributed import (
    RankSlices,
    World,
    average_gradients,
    gather_batch,
    gather_tensor,
    sync_batchnorms,
)
from engine.distributed import current as current_world
from engine.jobs import check_cancel
from engine.leftovers import remove_stale_temporaries
from engine.losses import build_criterion
from engine.models.config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig
from engine.models.reid import ReIDModel, build_model
from engine.utils import autocast_dtype, seed_everything, seed_worker

log = logging.getLogger(__name__)

LOSSES = ("focal", "bce", "softmax", "focal+triplet", "bce+triplet", "softmax+triplet",
          "pairwise", "triplet", "global")


@dataclass
class TrainConfig:
    """Everything that decides a training run besides the model settings."""

    loss: str = "focal"
    sampler: str = "random"          # random | pk | graph
    batch_size: int = 64
    k: int = 2                       # images per identity (pk, graph)
    augment: str = "random_occlusion"
    flip: bool = True
    pad: int = 10
    rotation: float = 5.0
    color_jitter: float = 0.0
    lr: float = 0.005
    backbone_lr_mult: float | None = None  # None: 0.1 with ImageNet weights, 1.0 without
    momentum: float = 0.9
    weight_decay: float = 5e-4
    max_epochs: int = 60
    drop_ratio: float = 0.7          # adaptive schedule: drop lr once loss < ratio * base
    clip: float = 8.0
    triplet_margin: float = 16.0
    amp: str = "auto"                # auto (CUDA only) | on | off
    seed: int = 0
    workers: int = 2
    max_batches: int | None = None   # cap batches per epoch (quick runs, tests)
    sync_bn: bool = True             # torchrun: trained trunk BatchNorms see every rank's images

    def __post_init__(self) -> None:
        """Refuse settings that would fail later (a division by zero in the sampler) or train
        garbage (a NaN learning rate); messages name the command-line flag."""
        def flag(name: str) -> str:
            return "--" + name.replace("_", "-")

        for name in ("lr", "momentum", "weight_decay", "rotation", "color_jitter", "clip",
                     "triplet_margin", "drop_ratio", "backbone_lr_mult"):
            value = getattr(self, name)
            if value is None and name == "backbone_lr_mult":
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{flag(name)} must be a finite number >= 0, got {value!r}")
        if self.lr <= 0:
            raise ValueError(f"--lr must be > 0, got {self.lr!r}")
        for name, low in (("batch_size", 1), ("k", 1), ("max_epochs", 1), ("workers", 0)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{flag(name)} must be an integer >= {low}, got {value!r}")
        if self.max_batches is not None and self.max_batches < 1:
            raise ValueError(f"--max-batches must be >= 1, got {self.max_batches!r}")
        if self.sampler in ("pk", "graph") and self.k > self.batch_size:
            raise ValueError(f"--k {self.k} images per identity do not fit in a batch of "
                             f"--batch-size {self.batch_size}; use --k <= --batch-size")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class TrainImages(torch.utils.data.Dataset):
    """Training images with their relabelled pids; augmentation seeded by (seed, epoch, index)."""

    def __init__(self, samples: list[Sample], transform: TrainTransform, seed: int,
                 imagenet_norm: bool = False):
        self.samples, self.transform, self.seed, self.epoch = samples, transform, seed, 0
        self.imagenet_norm = imagenet_norm

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        tensor = self.transform(read_image_rgb(s.path), rng)
        if self.imagenet_norm:
            tensor = (tensor - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / \
                torch.tensor(IMAGENET_STD).view(3, 1, 1)
        return tensor, s.pid


@dataclass
class Schedule:
    """The adaptive schedule: lr x0.1 once the epoch loss falls below ``ratio * base``."""

    ratio: float = 0.7
    max_epochs: int = 60
    base: float | None = None
    drop_epoch: int | None = None
    stop_epoch: int | None = None
    history: list[float] = field(default_factory=list)

    def step(self, epoch: int, mean_loss: float) -> bool:
        """Record epoch ``epoch`` (1-based); return True when the lr must drop now."""
        self.history.append(float(mean_loss))
        if epoch == 2:
            self.base = float(mean_loss)
        if self.base is not None and self.drop_epoch is None and epoch >= 2 \
                and mean_loss < self.ratio * self.base:
            self.drop_epoch = epoch
            self.stop_epoch = min(self.max_epochs, epoch + epoch // 2)
            return True
        return False

    def finished(self, epoch: int) -> bool:
        return epoch >= (self.stop_epoch or self.max_epochs)


def _loss_side_parameters(model: ReIDModel, criterion: nn.Module) -> list[nn.Parameter]:
    """Parameters outside the backbone (matcher, loss), each once: the ones a distributed run
    computes on every rank from the gathered batch."""
    own = {id(p) for p in model.backbone.parameters()}
    out, seen = [], set()
    for p in list(model.parameters()) + list(criterion.parameters()):
        if id(p) not in own and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _parameter_split(model: ReIDModel, criterion: nn.Module) -> tuple[list, list]:
    """(trunk, neck + matcher + loss parameters), each trainable parameter exactly once.

    The losses hold the matcher too, so parameters are deduplicated by identity.
    """
    trunk, head = model.parameter_groups()
    seen: set[int] = set()
    out: tuple[list, list] = ([], [])
    for group, params in ((0, trunk), (1, list(head) + list(criterion.parameters()))):
        for p in params:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                out[group].append(p)
    return out


def has_pretrained_weights(cfg: ModelConfig) -> bool:
    """Whether building ``cfg`` loads ImageNet weights into the trunk."""
    from engine.models.backbone import cached_imagenet_weights

    if cfg.pretrained == "none":
        return False
    return cfg.pretrained != "auto" or cached_imagenet_weights(cfg.depth) is not None


def make_optimizer(model: ReIDModel, criterion: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum; the pretrained-style backbone learns at ``backbone_lr_mult``."""
    trunk, head = _parameter_split(model, criterion)
    mult = cfg.backbone_lr_mult
    if mult is None:
        # A pretrained trunk is fine-tuned gently; a randomly initialised one must learn at
        # the full rate or it barely moves.
        mult = 0.1 if has_pretrained_weights(model.config) else 1.0
    groups = [{"params": trunk, "lr": cfg.lr * mult},
              {"params": head, "lr": cfg.lr}]
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                           weight_decay=cfg.weight_decay)


def _amp_settings(cfg: TrainConfig, device: torch.device) -> tuple[bool, torch.dtype]:
    enabled = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    return enabled, autocast_dtype(device)


def train_one_epoch(model: ReIDModel, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    loader, device: torch.device, epoch: int, *, clip: float = 8.0,
                    amp: bool = False, amp_dtype: torch.dtype = torch.bfloat16,
                    scaler: torch.amp.GradScaler | None = None, max_batches: int | None = None,
                    progress: Callable[[int, int, float], None] | None = None,
                    cancel: Callable[[], bool] | None = None, world: World | None = None,
                    backbone: nn.Module | None = None) -> dict:
    """One pass over ``loader``. Non-finite losses are skipped (no step) and counted.

    In a distributed run (``world``), ``loader`` yields this rank's slice of each batch and
    ``backbone`` is the DistributedDataParallel wrapper of ``model.backbone``: the slices' maps
    are gathered and every rank computes the loss of the whole batch (engine/distributed.py).

    With a ``scaler`` (fp16 mixed precision), a step whose gradients overflowed is skipped by
    the scaler itself; those are counted apart, as ``overflow``.

    Returns ``{"loss": mean finite loss, "skipped": n, "overflow": n, "batches": n,
    "images_per_s": x}``.
    """
    model.train()
    criterion.train()
    world = world or World()
    backbone = backbone or model.backbone
    shared = _loss_side_parameters(model, criterion)  # same gradient on every rank: averaged
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    losses, skipped, overflow, images = [], 0, 0, 0
    start = time.perf_counter()
    for step, (inputs, pids) in enumerate(loader):
        if step >= total:
            break
        check_cancel(cancel)
        inputs, pids = inputs.to(device, non_blocking=True), pids.to(device)
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=amp):
            feats = gather_batch(backbone(inputs), world)   # [B, D, h, w], the whole batch
            pids = gather_tensor(pids, world)
            loss = criterion(feats, pids)
        if not torch.isfinite(loss):
            skipped += 1
            optimizer.zero_grad(set_to_none=True)
            continue
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        average_gradients(shared, world)
        if clip > 0:  # docs/arithmetic.md section 6: clipped separately for the model and the loss's parameters
            torch.nn.utils.clip_grad_norm_(list(model.backbone.parameters()), clip)
            if shared:
                torch.nn.utils.clip_grad_norm_(shared, clip)
        if scaler is not None:
            scale = scaler.get_scale()
            scaler.step(optimizer)
            scaler.update()
            overflow += scaler.get_scale() < scale  # the scale drops only after a skipped step
        else:
            optimizer.step()
        if hasattr(criterion, "update_memory"):
            criterion.update_memory(feats.detach(), pids)
        losses.append(float(loss.detach()))
        images += len(pids)
        if progress is not None:
            progress(step + 1, total, losses[-1])
    elapsed = max(time.perf_counter() - start, 1e-9)
    return {"loss": float(np.mean(losses)) if losses else math.nan, "skipped": skipped,
            "overflow": int(overflow), "batches": len(losses) + skipped, "images_per_s": images / elapsed}


@torch.no_grad()
def _class_distances(model: ReIDModel, dataset: TrainImages, device: torch.device,
                     indices: list[int], world: World | None = None) -> np.ndarray:
    """QAConv distances between one image per class (graph sampler), eval mode.

    In a distributed run each rank extracts its share of the images and the maps of all of
    them are gathered: every rank then scores the same class graph.
    """
    from engine.features import load_input
    from engine.models.scoring import score_matrix

    world = world or World()
    was_training = model.training
    model.eval()
    prep = model.config.preprocessing
    mine = indices[world.rank * len(indices) // world.size:(world.rank + 1) * len(indices) // world.size]
    maps = []
    use_half = device.type == "cuda"
    for start in range(0, len(mine), 64):
        batch = torch.stack([load_input(dataset.samples[i].path, prep) for i in mine[start:start + 64]])
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_half):
            maps.append(model.features(batch.to(device)).float())
    shape = (0, *model.config.feature_shape)
    maps = gather_tensor(torch.cat(maps) if maps else torch.zeros(shape, device=device), world)
    logits = score_matrix(model.matcher, maps, maps, device=device)
    model.train(was_training)
    return -np.asarray(logits, dtype=np.float64)


def decodable(samples: list[Sample]) -> list[Sample]:
    """``samples`` whose image decodes (each read once); the others are listed in one warning.

    The loader only checks an image's first and last bytes: a garbage body behind valid markers
    fails only when decoded.
    """
    good, bad = [], []
    for s in samples:
        try:
            read_image_rgb(s.path)
        except (OSError, ValueError) as exc:
            bad.append(f"{s.path} ({exc})")
        else:
            good.append(s)
    if bad:
        log.warning("skipped %d training image(s) that do not decode: %s", len(bad),
                    "; ".join(bad[:5]) + (" ..." if len(bad) > 5 else ""))
    return good


def portable_config(cfg: ModelConfig) -> dict:
    """The model settings to store in a checkpoint, free of this machine's paths.

    A trunk initialised from a file is recorded by its file name and content digest: the
    checkpoint holds every weight, so the path is never needed to load it, and a path would
    only leak the trainer's folder layout into a file that is shared.
    """
    settings = cfg.to_dict()
    if settings["pretrained"] not in ("auto", "none"):
        source = Path(settings["pretrained"])
        settings["pretrained"] = f"{source.name} (digest {file_digest(source)})"
    return settings


def fit(dataset: Dataset, model_cfg: ModelConfig, cfg: TrainConfig, out_dir: str | Path, *,
        device: torch.device, resume: bool = False,
        epoch_callback: Callable[[int, dict], None] | None = None,
        batch_progress: Callable[[int, int, float], None] | None = None,
        cancel: Callable[[], bool] | None = None) -> Path:
    """Train on ``dataset.train`` and write ``last.pt`` (full state) and ``model.pt`` (weights
    and settings only) to ``out_dir`` after every epoch. Returns the path of ``model.pt``.
    Training images that do not decode are skipped (listed in one warning) before the first
    epoch, so a damaged file cannot stop a run hours in.
    """
    train = decodable(dataset.train)
    if not train:
        raise ValueError(f"the dataset at {dataset.root} has no (decodable) training images")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = current_world()  # torchrun: this rank; otherwise one process
    if world.main:
        remove_stale_temporaries(out_dir)  # checkpoint-sized leftovers of a killed run
    last_path, model_path = out_dir / "last.pt", out_dir / "model.pt"
    seed_everything(cfg.seed)
    num_classes = dataset.num_train_pids
    model = build_model(model_cfg).to(device)
    model.freeze_bn = has_pretrained_weights(model_cfg)
    if not model.freeze_bn:
        log.info("no ImageNet weights: the trunk's BatchNorm layers train (they are frozen only "
                 "to keep pretrained statistics)")
    if world.active and not model.freeze_bn and cfg.sync_bn:
        sync_batchnorms(model.backbone)  # trained trunk statistics: those of the whole batch
    criterion = build_criterion(model, cfg.loss, num_classes, triplet_margin=cfg.triplet_margin).to(device)
    optimizer = make_optimizer(model, criterion, cfg)
    schedule = Schedule(cfg.drop_ratio, cfg.max_epochs)
    start_epoch = 1
    state = None
    if resume and last_path.is_file():
        state = load_checkpoint(last_path)
        differs = {k: (v, model_cfg.to_dict().get(k)) for k, v in state["config"].items()
                   if model_cfg.to_dict().get(k) != v and k != "pretrained"}
        if differs:
            raise ValueError(f"cannot resume {last_path}: model settings differ (checkpoint vs now): {differs}")
        load_state_strict(model, state["model"], "model weights")
        load_state_strict(criterion, state["criterion"], "loss state")
        optimizer.load_state_dict(state["optimizer"])
        schedule = Schedule(**state["schedule"])
        schedule.max_epochs = cfg.max_epochs  # a resumed run may be given a larger budget
        start_epoch = int(state["epoch"]) + 1
        log.info("resuming from %s at epoch %d", last_path, start_epoch)
    elif resume:
        log.info("nothing to resume in %s; starting fresh", out_dir)

    transform = TrainTransform(model_cfg.height, model_cfg.width, pad=cfg.pad, flip=cfg.flip,
                               rotation=cfg.rotation, color_jitter=cfg.color_jitter,
                               occlusion=cfg.augment)
    images = TrainImages(train, transform, cfg.seed, model_cfg.imagenet_norm)
    pids = [s.pid for s in train]
    if cfg.sampler == "random":
        sampler = RandomBatchSampler(len(images), cfg.batch_size, seed=cfg.seed)
    elif cfg.sampler == "pk":
        sampler = PKBatchSampler(pids, cfg.batch_size // cfg.k, cfg.k, seed=cfg.seed)
    elif cfg.sampler == "graph":
        sampler = GraphSampler(pids, cfg.batch_size, cfg.k, seed=cfg.seed)
    else:
        raise ValueError(f"unknown sampler {cfg.sampler!r}; choose random, pk or graph")
    backbone = model.backbone
    if world.active:  # after any resume: DDP starts every rank from rank 0's weights
        from torch.nn.parallel import DistributedDataParallel

        backbone = DistributedDataParallel(
            model.backbone, device_ids=[device] if device.type == "cuda" else None)
    loader = torch.utils.data.DataLoader(
        images, batch_sampler=RankSlices(sampler, world) if world.active else sampler,
        num_workers=cfg.workers, worker_init_fn=seed_worker,
        persistent_workers=False, pin_memory=device.type == "cuda")
    amp, amp_dtype = _amp_settings(cfg, device)
    scaler = torch.amp.GradScaler(device.type) if amp and amp_dtype == torch.float16 else None
    if scaler is not None and state is not None and state.get("scaler"):
        # The loss scale learnt so far: a fresh scaler would skip steps the run never skipped.
        scaler.load_state_dict(state["scaler"])

    saved_config = portable_config(model_cfg)

    def save(epoch: int, stats: dict | None) -> None:
        if not world.main:  # every rank holds the same state; rank 0 writes it
            return
        bad = nonfinite_tensors(model.state_dict())
        if bad:  # never write a model that cannot rank; the last finite epoch stays on disk
            raise ValueError(f"training diverged by epoch {epoch}: {len(bad)} weight tensor(s) hold "
                             f"NaN or infinity ({', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''}); "
                             f"not saved; {model_path} keeps the last finite epoch, if any")
        common = {"config": saved_config, "train_settings": cfg.to_dict(), "epoch": epoch,
                  "num_classes": num_classes, "stats": stats or {}}
        save_checkpoint(last_path, {**common, "model": model.state_dict(),
                                    "criterion": criterion.state_dict(),
                                    "optimizer": optimizer.state_dict(),
                                    "scaler": scaler.state_dict() if scaler is not None else {},
                                    "schedule": dataclasses.asdict(schedule)})
        save_checkpoint(model_path, {**common, "model": model.state_dict()})

    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.max_epochs + 1):
            if schedule.finished(epoch - 1):
                break
            sampler.set_epoch(epoch)
            images.epoch = epoch
            if isinstance(sampler, GraphSampler):
                sampler.prepare(lambda idx: _class_distances(model, images, device, idx, world))
            stats = train_one_epoch(model, criterion, optimizer, loader, device, epoch,
                                    clip=cfg.clip, amp=amp, amp_dtype=amp_dtype, scaler=scaler,
                                    max_batches=cfg.max_batches, progress=batch_progress,
                                    cancel=cancel, world=world, backbone=backbone)
            if schedule.step(epoch, stats["loss"]):
                for g in optimizer.param_groups:
                    g["lr"] *= 0.1
                log.info("epoch %d: loss %.4f < %.2f x base %.4f: lr x0.1, stopping after epoch %d",
                         epoch, stats["loss"], schedule.ratio, schedule.base, schedule.stop_epoch)
            stats["lr"] = optimizer.param_groups[-1]["lr"]
            save(epoch, stats)
            if epoch_callback is not None:
                epoch_callback(epoch, stats)
    except KeyboardInterrupt:
        # The last complete epoch is on disk already; if none is, keep what we have so
        # the run is at least usable for evaluation.
        if not model_path.exists():
            save(epoch - 1 if epoch >= start_epoch else 0, {"interrupted": True})
        log.warning("interrupted; resume with --resume (continues after epoch %d)", max(epoch - 1, 0))
        raise
    return model_path
