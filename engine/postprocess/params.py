"""Parameter records of the post-processing steps, the one home of their defaults (no torch
import: the viewer builds its controls from them before the engine's heavy modules load).

Functions that take the parameters one by one use these class attributes as their defaults
(``k1: int = RerankParams.k1``); :func:`rerank_params` and :func:`tlift_params` turn every
accepted spelling of "off / on with defaults / on with some values" into a record or None.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["RerankParams", "TLiftParams", "rerank_params", "tlift_params", "stage_name"]


@dataclass
class RerankParams:
    """k-reciprocal re-ranking (docs/arithmetic.md section 8)."""

    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3


@dataclass
class TLiftParams:
    """Temporal lifting (docs/arithmetic.md section 9); tau and sigma in seconds."""

    tau: float = 100.0
    sigma: float = 200.0
    k: int = 10
    alpha: float = 0.2


P = TypeVar("P", RerankParams, TLiftParams)


def _params(value: Any, cls: type[P], name: str) -> P | None:
    """None/False -> None (off); True -> the defaults; a record -> itself; a dict -> the
    defaults with its keys replaced (unknown keys refused)."""
    if value is None or value is False:
        return None
    if value is True:
        return cls()
    if isinstance(value, cls):
        return value
    allowed = sorted(f.name for f in dataclasses.fields(cls))
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be None, True, a {cls.__name__} or a dict with keys {allowed}, "
                         f"got {value!r}")
    unknown = set(value) - set(allowed)
    if unknown:
        raise ValueError(f"unknown {name} settings {sorted(unknown)}; allowed: {allowed}")
    return cls(**value)


def rerank_params(value: Any) -> RerankParams | None:
    """Re-ranking settings as a :class:`RerankParams`, or None when off (see :func:`_params`)."""
    return _params(value, RerankParams, "rerank")


def tlift_params(value: Any) -> TLiftParams | None:
    """TLift settings as a :class:`TLiftParams`, or None when off (see :func:`_params`)."""
    return _params(value, TLiftParams, "tlift")


def stage_name(base: str, rerank: bool, tlift: bool) -> str:
    """``qaconv``, ``qaconv+rr``, ``qaconv+tlift``, ``qaconv+rr+tlift`` (the export's names)."""
    return "+".join([base] + (["rr"] if rerank else []) + (["tlift"] if tlift else []))
