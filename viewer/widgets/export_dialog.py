"""The CSV export dialog: which queries (current / all), how long a list (top-k / full), where.

It refuses a name it cannot write (empty, a folder, a link, a device or FIFO, a missing or
read-only folder) with the reason under the file field, asks before replacing an existing file,
and opens with the previous export's folder and options (see :class:`ExportChoice`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
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

    def __init__(self, top_k: int, default_path: str, parent=None,
                 last: ExportChoice | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export ranked lists to CSV")
        self.current = QRadioButton("Current query")
        self.all = QRadioButton("All queries")
        self.top = QRadioButton(f"Top-{top_k}")
        self.full = QRadioButton("Full ranked list")
        (self.all if last is not None and last.all_queries else self.current).setChecked(True)
        (self.full if last is not None and last.top_k is None else self.top).setChecked(True)
        self._top_k = top_k
        if last is not None and last.path:  # the previous export's folder
            default_path = os.path.join(os.path.dirname(last.path), os.path.basename(default_path))
        self.path = QLineEdit(default_path)
        self.problem = QLabel()
        self.problem.setObjectName("errorText")
        self.problem.setWordWrap(True)
        self.problem.hide()
        self.path.textChanged.connect(lambda _t: self.problem.hide())
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
        form.addRow("", self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.resize(520, self.sizeHint().height())

    def _browse(self) -> None:
        # The dialog asks before replacing a file itself (accept), once.
        path, _ = QFileDialog.getSaveFileName(
            self, "Export CSV", self.path.text(), "CSV files (*.csv)",
            options=QFileDialog.Option.DontConfirmOverwrite)
        if path:
            self.path.setText(path)

    def accept(self) -> None:
        """Close only on a name that can be written; an existing file only after a yes."""
        from engine.outputs import OutputRefused, check_output_path

        path = self.choice().path
        try:
            check_output_path(path, force=True, flag="file name")
        except OutputRefused as exc:
            self.problem.setText(str(exc))
            self.problem.show()
            return
        if os.path.isfile(path) and not self.confirm_replace(path):
            return
        super().accept()

    def confirm_replace(self, path: str) -> bool:
        answer = QMessageBox.question(self, "Replace file?",
                                      f"{path} already exists.\nReplace it with the export?")
        return answer == QMessageBox.StandardButton.Yes

    def choice(self) -> ExportChoice:
        path = os.path.expanduser(self.path.text().strip())
        return ExportChoice(path=path, all_queries=self.all.isChecked(),
                            top_k=self._top_k if self.top.isChecked() else None)
