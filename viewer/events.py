"""A tiny change-event mechanism for Qt-free state objects (napari's EventedModel, hand-written).

``EventedModel`` subclasses declare their fields and defaults in ``_fields``; assigning a field
a different value stores it and calls every callback connected to ``model.events.<field>`` with
the new value. Widgets connect to these events and write the user's changes back by plain
assignment, so the state object never needs to know that Qt exists.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

__all__ = ["Emitter", "Events", "EventedModel"]

log = logging.getLogger(__name__)


class Emitter:
    """Callbacks called in connection order with the emitted value."""

    def __init__(self, name: str):
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """Call ``callback(value)`` on every emit; returns it (usable as a decorator)."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any] | None = None) -> None:
        """Remove one callback, or all when ``callback`` is None."""
        if callback is None:
            self._callbacks.clear()
        elif callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        # Iterate over a copy: a callback may connect or disconnect others.
        for callback in list(self._callbacks):
            callback(*args)

    def __len__(self) -> int:
        return len(self._callbacks)


class Events:
    """A namespace of :class:`Emitter`, one per name."""

    def __init__(self, names):
        self._names = tuple(names)
        for name in self._names:
            setattr(self, name, Emitter(name))

    def __getitem__(self, name: str) -> Emitter:
        if name not in self._names:
            raise KeyError(f"no event named {name!r}; known: {', '.join(self._names)}")
        return getattr(self, name)

    def disconnect_all(self) -> None:
        for name in self._names:
            getattr(self, name).disconnect()


def _same(old: Any, new: Any) -> bool:
    """Whether an assignment changes nothing (arrays compare by identity, not by content)."""
    if old is new:
        return True
    if isinstance(old, np.ndarray) or isinstance(new, np.ndarray):
        return False
    try:
        return bool(type(old) is type(new) and old == new)
    except Exception:  # objects whose == is not a plain bool
        return False


class EventedModel:
    """Fields with defaults that emit ``events.<name>(new_value)`` when assigned a new value.

    Subclasses set ``_fields = {"name": default, ...}`` and may list extra event names (events
    not tied to a field) in ``_signals``. Mutable defaults are deep-copied per instance.
    """

    _fields: ClassVar[dict[str, Any]] = {}
    _signals: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **values: Any):
        object.__setattr__(self, "events", Events(tuple(self._fields) + tuple(self._signals)))
        for name, default in self._fields.items():
            object.__setattr__(self, name, copy.deepcopy(default))
        unknown = set(values) - set(self._fields)
        if unknown:
            raise TypeError(f"unknown field(s) {sorted(unknown)}; fields: {sorted(self._fields)}")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._fields:
            object.__setattr__(self, name, value)
            return
        old = getattr(self, name)
        if _same(old, value):
            return
        object.__setattr__(self, name, value)
        self._field_changed(name)
        self.events[name].emit(value)

    def _field_changed(self, name: str) -> None:
        """Hook for subclasses to drop derived caches before listeners run."""
