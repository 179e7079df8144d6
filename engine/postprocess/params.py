"""Parameter records of the post-processing steps (no torch import: the viewer builds its
controls from them before the engine's heavy modules load)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RerankParams", "TLiftParams"]


@dataclass
class RerankParams:
    """k-reciprocal re-ranking (SPEC.md section 8)."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3


@dataclass
class TLiftParams:
    """Temporal lifting (SPEC.md section 9); tau and sigma in seconds."""

    tau: float = 100.0
    sigma: float = 200.0
    k: int = 10
    alpha: float = 0.2
