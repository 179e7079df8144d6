"""Shared by every test folder: the ``cuda`` marker's skip where there is no GPU."""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    """Skip tests marked ``cuda`` when torch sees no CUDA device, saying so in the summary."""
    marked = [item for item in items if item.get_closest_marker("cuda") is not None]
    if not marked:
        return
    import torch

    if torch.cuda.is_available():
        return
    for item in marked:
        item.add_marker(pytest.mark.skip(
            reason=f"{item.name} needs a CUDA GPU (torch.cuda.is_available() is False); "
                   "run `make test` on a machine with one"))
