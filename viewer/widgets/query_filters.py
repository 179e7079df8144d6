"""Filter (camera, identity, file name) and sort controls of the query browser."""
from __future__ import annotations

from PySide6.QtCore import QSignalBlocker
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QLineEdit, QWidget

from viewer.formatting import camera_base, format_cam
from viewer.state import SORT_KEYS, ViewerState

__all__ = ["QueryFilters"]

SORT_LABELS = {"file": "file name", "identity": "identity", "ap": "AP (worst first)"}


class QueryFilters(QWidget):
    """Two-way binding of ``filter_cam``, ``filter_pid``, ``filter_name`` and ``sort_key``."""

    def __init__(self, state: ViewerState, parent=None):
        super().__init__(parent)
        self.state = state
        self.camera = QComboBox()
        self.camera.setToolTip("Show only the queries of one camera")
        self.pid = QLineEdit()
        self.pid.setPlaceholderText("any")
        self.pid.setToolTip("Show only the queries of this identity (number)")
        self.pid.setClearButtonEnabled(True)
        self.name = QLineEdit()
        self.name.setPlaceholderText("part of the file name")
        self.name.setClearButtonEnabled(True)
        self.sort = QComboBox()
        for key in SORT_KEYS:
            self.sort.addItem(SORT_LABELS[key], key)

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(4)
        for row, (label, widget) in enumerate(
                [("Camera", self.camera), ("Identity", self.pid), ("File", self.name),
                 ("Sort by", self.sort)]):
            grid.addWidget(QLabel(label), row, 0)
            grid.addWidget(widget, row, 1)
        grid.setColumnStretch(1, 1)

        self.camera.currentIndexChanged.connect(
            lambda _i: setattr(state, "filter_cam", self.camera.currentData()))
        self.pid.textChanged.connect(lambda text: setattr(state, "filter_pid", text))
        self.name.textChanged.connect(lambda text: setattr(state, "filter_name", text))
        self.sort.currentIndexChanged.connect(
            lambda _i: setattr(state, "sort_key", self.sort.currentData()))
        state.events.session.connect(self._fill_cameras)
        state.events.filter_cam.connect(self._show_cam)
        state.events.filter_pid.connect(lambda v: self._set_text(self.pid, v))
        state.events.filter_name.connect(lambda v: self._set_text(self.name, v))
        state.events.sort_key.connect(self._show_sort)
        self._fill_cameras()

    def _fill_cameras(self, _session=None) -> None:
        with QSignalBlocker(self.camera):
            self.camera.clear()
            self.camera.addItem("all cameras", None)
            for cam in self.state.query_cameras():
                self.camera.addItem(format_cam(cam, camera_base(self.state)), cam)
        self._show_cam(self.state.filter_cam)

    def _show_cam(self, cam) -> None:
        with QSignalBlocker(self.camera):
            index = self.camera.findData(cam)
            self.camera.setCurrentIndex(max(index, 0))

    def _show_sort(self, key: str) -> None:
        with QSignalBlocker(self.sort):
            self.sort.setCurrentIndex(max(self.sort.findData(key), 0))

    @staticmethod
    def _set_text(edit: QLineEdit, text: str) -> None:
        if edit.text() != text:
            with QSignalBlocker(edit):
                edit.setText(text)
