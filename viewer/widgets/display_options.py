"""How many results to show (top-k), whether junk items are greyed or hidden, and from which
gallery camera."""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox, QLabel, QSizePolicy, QSpinBox, QWidget

from viewer.state import ViewerState
from viewer.widgets.flow_layout import FlowLayout, joined

__all__ = ["DisplayOptions"]

JUNK_LABELS = {"grey": "greyed", "hide": "hidden"}


class DisplayOptions(QWidget):
    """Two-way binding of ``top_k``, ``junk_mode`` and ``filter_gallery_cam``."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        self.top_k = QSpinBox()
        self.top_k.setRange(1, state.max_top_k)
        self.top_k.setValue(state.top_k)
        self.top_k.setToolTip("Number of ranked gallery images shown (scroll for more; up to "
                              "the whole gallery)")
        self.junk = QComboBox()
        for mode, label in JUNK_LABELS.items():
            self.junk.addItem(label, mode)
        self.junk.setToolTip("Same identity and same camera as the query: ignored by the "
                             "Market-1501 protocol")
        self.junk.setCurrentIndex(self.junk.findData(state.junk_mode))

        self.camera = QComboBox()
        self.camera.setToolTip("Show only the gallery images of one camera")

        for combo in (self.junk, self.camera):
            # Never narrower than the longest entry: a crowded toolbar used to cut them to
            # "greye" and "all car" (a toolbar too narrow for this widget moves it to its menu).
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

        # Each label with its control; the pairs wrap onto a second row when the centre is
        # narrow (the occlusion dock open at 1024 px).
        layout = FlowLayout(self, spacing=14)
        for text, control in (("Top-k", self.top_k), ("Junk", self.junk), ("Gallery", self.camera)):
            layout.addWidget(joined(QLabel(text), control))

        self.top_k.valueChanged.connect(lambda v: setattr(state, "top_k", int(v)))
        self.junk.currentIndexChanged.connect(
            lambda _i: setattr(state, "junk_mode", self.junk.currentData()))
        state.events.top_k.connect(self._show_top_k)
        state.events.session.connect(self._set_range)
        state.events.junk_mode.connect(self._show_junk)
        self.camera.currentIndexChanged.connect(
            lambda _i: setattr(state, "filter_gallery_cam", self.camera.currentData()))
        state.events.session.connect(self._fill_cameras)
        state.events.filter_gallery_cam.connect(self._show_cam)
        self._fill_cameras()

    def _fill_cameras(self, _session=None) -> None:
        with QSignalBlocker(self.camera):
            self.camera.clear()
            self.camera.addItem("all cameras", None)
            for cam in self.state.gallery_cameras():
                self.camera.addItem(f"c{cam + 1}", cam)
        self._show_cam(self.state.filter_gallery_cam)

    def _show_cam(self, cam) -> None:
        with QSignalBlocker(self.camera):
            self.camera.setCurrentIndex(max(self.camera.findData(cam), 0))

    def _set_range(self, _session=None) -> None:
        with QSignalBlocker(self.top_k):
            self.top_k.setRange(1, self.state.max_top_k)
            self.top_k.setValue(self.state.top_k)

    def _show_top_k(self, value: int) -> None:
        with QSignalBlocker(self.top_k):
            self.top_k.setValue(value)

    def _show_junk(self, mode: str) -> None:
        with QSignalBlocker(self.junk):
            self.junk.setCurrentIndex(max(self.junk.findData(mode), 0))
