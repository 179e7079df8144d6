"""The CSV export dialog: which queries (current / all), how long a list (top-k / full), where."""
from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["ExportChoice", "ExportDialog"]


@dataclass(frozen=True)
class ExportChoice:
    path: str
    all_queries: bool
    top_k: int | None      # None = full lists


class ExportDialog(QDialog):
    """Asks for an :class:`ExportChoice`; ``choice()`` reads it after ``exec()``."""

    def __init__(self, top_k: int, default_path: str, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export ranked lists to CSV")
        self.current = QRadioButton("Current query")
        self.all = QRadioButton("All queries")
        self.current.setChecked(True)
        self.top = QRadioButton(f"Top-{top_k}")
        self.full = QRadioButton("Full ranked list")
        self.top.setChecked(True)
        self._top_k = top_k
        self.path = QLineEdit(default_path)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)

        def pair(a, b) -> QWidget:
            box = QWidget()
            row = QHBoxLayout(box)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(a)
            row.addWidget(b)
            row.addStretch(1)
            return box

        path_row = QWidget()
        row = QHBoxLayout(path_row)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout()
        form.addRow("Queries", pair(self.current, self.all))
        form.addRow("Lists", pair(self.top, self.full))
        form.addRow("File", path_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(520, self.sizeHint().height())

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export CSV", self.path.text(), "CSV files (*.csv)")
        if path:
            self.path.setText(path)

    def choice(self) -> ExportChoice:
        path = os.path.expanduser(self.path.text().strip())
        return ExportChoice(path=path, all_queries=self.all.isChecked(),
                            top_k=self._top_k if self.top.isChecked() else None)
