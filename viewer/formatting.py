"""How numbers are written in the window (one place, so tiles, header and tooltips agree)."""
from __future__ import annotations

import math


def format_time(seconds: float | None) -> str:
    """A capture time as ``h:mm:ss.s`` everywhere (``""`` when unknown)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    tenths = round(float(seconds) * 10)
    hours, rest = divmod(tenths, 36000)
    minutes, rest = divmod(rest, 600)
    return f"{hours}:{minutes:02d}:{rest // 10:02d}.{rest % 10}"


def format_rank(rank: int) -> str:
    """``#3``; junk (rank 0) is not counted by the protocol and shows as ``junk``."""
    return f"#{rank}" if rank > 0 else "junk"


def method_value_label(method: str) -> str:
    """What a tile's number is under a method: the raw score (QAConv's logit, a global model's
    cosine), the distance after RR/TLift."""
    if "+" in method:
        return "dist"
    return "cosine" if method.startswith("global") else "logit"


def format_method_value(label: str, value: float) -> str:
    """``logit 3.21``, ``cosine 0.874``, ``dist 0.412``: a tile's number (:func:`method_value_label`)."""
    return f"{label} {value:.2f}" if label == "logit" else f"{label} {value:.3f}"


def format_cam(cam: int | None, base: int = 1) -> str:
    """A camera as the dataset names it: the engine's 0-based index plus ``base``
    (:func:`camera_base`; 1 for Market-style ``c1``, 0 for a CSV manifest's own numbers)."""
    return "" if cam is None else f"c{int(cam) + base}"


def camera_base(state) -> int:
    """The open dataset's ``camera_base`` (1 before one is open), so tiles and CSV agree."""
    dataset = getattr(getattr(state, "session", None), "dataset", None)
    return getattr(dataset, "camera_base", 1)


def format_percent(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{100.0 * value:.1f}%"


def format_movement(movement: int | None) -> str:
    """``▲3`` moved up three ranks, ``▼2`` down two, ``=`` unchanged, ``""`` not applicable."""
    if movement is None:
        return ""
    if movement > 0:
        return f"▲{movement}"
    if movement < 0:
        return f"▼{-movement}"
    return "="
