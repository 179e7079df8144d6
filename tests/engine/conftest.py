"""Shared fixtures: one tiny synthetic benchmark per test session."""
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
