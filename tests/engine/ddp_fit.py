"""Run under ``torchrun``: train each case of tests/engine/test_distributed.py for a few steps,
one output folder per case (``OUT/<loss>-<sampler>``). Not a test module: the test launches it."""
from __future__ import annotations

import sys

import torch

from engine.data import load_dataset
from engine.distributed import init_from_env, shutdown
from tests.engine.test_distributed import CASES, model_config, train_config


def main(root: str, out: str) -> None:
    torch.set_num_threads(1)
    _, device = init_from_env(torch.device("cpu"))
    from engine.train import fit

    dataset = load_dataset(root)
    try:
        for loss, sampler in CASES:
            fit(dataset, model_config(loss), train_config(loss, sampler), f"{out}/{loss}-{sampler}",
                device=device)
    finally:
        shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:3])
