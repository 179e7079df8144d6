"""torchreid's OSNet checkpoints, built in the tests: key names and shapes from
tests/data/reference/torchreid_osnet_keys.json.gz (recorded from torchreid's own models), weights
drawn from a seed so that tests/data/reference/torchreid_osnet.npz (torchreid's outputs for
them) can be recomputed anywhere."""
from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import torch

REFERENCE = Path(__file__).parents[1] / "data" / "reference"
with gzip.open(REFERENCE / "torchreid_osnet_keys.json.gz", "rt") as f:
    LAYOUTS: dict[str, list[tuple[str, list[int]]]] = json.load(f)
OSNET_VARIANTS = tuple(LAYOUTS)


def seeded_state(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in torchreid's names for ``arch`` (classifier included): convolutions and
    linears at He scale, BatchNorm / InstanceNorm affines near 0.5 and 0 (activations stay
    moderate through the residual stages), running statistics
    randomised (means around 0, variances in [0.5, 1.5]), so a misplaced weight shows."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, shape in LAYOUTS[arch]:
        if name.endswith("num_batches_tracked"):
            out[name] = torch.tensor(7)
        elif name.endswith("running_var"):
            out[name] = 0.5 + torch.rand(shape, generator=g)
        elif len(shape) == 1:       # norm affines, running means, biases
            base = 0.5 if name.endswith("weight") else 0.0
            out[name] = base + 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = math.prod(shape[1:])
            out[name] = torch.randn(shape, generator=g) * math.sqrt(2.0 / fan_in)
    return out


def torchreid_checkpoint(state_dict: dict[str, torch.Tensor], *, module: bool = True) -> dict:
    """What torchreid's ``save_checkpoint`` writes: ``module.`` prefixes (DataParallel), epoch,
    rank-1 and the optimizer's state."""
    sd = {("module." + k if module else k): v for k, v in state_dict.items()}
    return {"state_dict": sd, "epoch": 60, "rank1": 0.5,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.0003, "params": [0, 1]}]}}
