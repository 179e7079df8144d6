"""Toggles and parameters of k-reciprocal re-ranking (k1, k2, lambda) and TLift (tau, sigma, K, alpha).

A change is written to the state; the controller recomputes in the background. TLift is
disabled, with the reason shown, when the dataset has no timestamps.
"""
from __future__ import annotations

import dataclasses

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QLabel,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from engine.postprocess.params import RerankParams, TLiftParams
from viewer.state import ViewerState

__all__ = ["PostprocessPanel"]

# (field, label, kind, minimum, maximum, step, decimals, tooltip)
RERANK_FIELDS = [
    ("k1", "k1", int, 1, 100, 1, 0, "Size of the k-reciprocal neighbourhoods"),
    ("k2", "k2", int, 1, 50, 1, 0, "Query expansion size (1 = off)"),
    ("lambda_value", "λ", float, 0.0, 1.0, 0.05, 2, "Weight of the original distance"),
]
TLIFT_FIELDS = [
    ("tau", "τ (s)", float, 0.1, 100000.0, 10.0, 1, "Window of co-occurring queries, seconds"),
    ("sigma", "σ (s)", float, 0.1, 100000.0, 10.0, 1, "Width of the temporal Gaussian, seconds"),
    ("k", "K", int, 1, 100, 1, 0, "Pivots per query window and gallery camera"),
    ("alpha", "α", float, 0.0, 10.0, 0.05, 2, "Offset: larger means milder lifting"),
]


def _spin(kind, lo, hi, step, decimals, tip):
    box = QSpinBox() if kind is int else QDoubleSpinBox()
    if kind is float:
        box.setDecimals(decimals)
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setToolTip(tip)
    box.setKeyboardTracking(False)  # one request per finished edit, not per keystroke
    return box


class _ParamGroup(QGroupBox):
    """A checkable group bound to ``state.<flag>`` and the dataclass ``state.<params>``."""

    def __init__(self, title: str, state: ViewerState, flag: str, params: str, fields, defaults):
        super().__init__(title)
        self.state, self.flag, self.params, self.defaults = state, flag, params, defaults
        self.setCheckable(True)
        self.spins = {}
        form = QFormLayout(self)
        form.setContentsMargins(8, 4, 8, 4)
        for name, label, kind, lo, hi, step, decimals, tip in fields:
            spin = _spin(kind, lo, hi, step, decimals, tip)
            spin.valueChanged.connect(lambda v, n=name, k=kind: self._write(n, k(v)))
            form.addRow(label, spin)
            self.spins[name] = spin
        reset = QPushButton("Defaults")
        reset.setToolTip("Back to the published settings")
        reset.clicked.connect(lambda: setattr(state, params, defaults()))
        form.addRow("", reset)
        self.toggled.connect(lambda on: setattr(state, flag, bool(on)))
        state.events[flag].connect(self._show_flag)
        state.events[params].connect(self._show_params)
        self._show_flag(getattr(state, flag))
        self._show_params(getattr(state, params))

    def _write(self, name: str, value) -> None:
        current = getattr(self.state, self.params)
        setattr(self.state, self.params, dataclasses.replace(current, **{name: value}))

    def _show_flag(self, on: bool) -> None:
        with QSignalBlocker(self):
            self.setChecked(bool(on))

    def _show_params(self, params) -> None:
        for name, spin in self.spins.items():
            with QSignalBlocker(spin):
                spin.setValue(getattr(params, name))


class PostprocessPanel(QWidget):
    """The RR and TLift groups plus a line saying what is shown or being computed."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        self.rerank = _ParamGroup("k-reciprocal re-ranking", state, "rerank_on", "rerank",
                                  RERANK_FIELDS, RerankParams)
        self.tlift = _ParamGroup("Temporal lifting (TLift)", state, "tlift_on", "tlift",
                                 TLIFT_FIELDS, TLiftParams)
        self.tlift_reason = QLabel()
        self.tlift_reason.setObjectName("dim")
        self.tlift_reason.setWordWrap(True)
        self.showing = QLabel()
        self.showing.setObjectName("dim")
        self.showing.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.rerank)
        layout.addWidget(self.tlift)
        layout.addWidget(self.tlift_reason)
        layout.addWidget(self.showing)
        state.events.session.connect(self._update_availability)
        for name in ("applied", "busy"):
            state.events[name].connect(self._update_showing)
        self._update_availability()
        self._update_showing()

    def _update_availability(self, _value=None) -> None:
        state = self.state
        loaded = state.session is not None
        self.rerank.setEnabled(loaded)
        self.tlift.setEnabled(loaded and state.has_times)
        if loaded and not state.has_times:
            self.tlift_reason.setText("TLift is unavailable: this dataset's images carry no "
                                      "timestamps, and TLift needs capture times.")
            self.tlift_reason.show()
        else:
            self.tlift_reason.hide()

    def _update_showing(self, _value=None) -> None:
        state = self.state
        text = f"Showing: {state.applied.method(state.base_method)}"
        if state.busy.startswith("compute"):
            text += f"\nWorking: {state.busy.removeprefix('compute ')}…"
        self.showing.setText(text)
