"""How numbers are written in the window (one place, so tiles, header and tooltips agree)."""
from __future__ import annotations

import math


def format_time(seconds: float | None) -> str:
    """A capture time as ``m:ss.s`` or ``h:mm:ss`` (``""`` when unknown)."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    seconds = float(seconds)
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    if hours >= 1:
        return f"{int(hours)}:{int(minutes):02d}:{int(secs):02d}"
    return f"{int(minutes)}:{secs:04.1f}"


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
    """``▲3`` moved up three places, ``▼2`` down two, ``=`` unchanged, ``""`` not applicable."""
    if movement is None:
        return ""
    if movement > 0:
        return f"▲{movement}"
    if movement < 0:
        return f"▼{-movement}"
    return "="
