"""The running job's progress bar and Cancel button (status bar and loading page)."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from viewer.progress import ProgressClock
from viewer.state import ViewerState

__all__ = ["JobProgress", "describe_stage", "show_progress"]

# Engine stage names -> what the user reads; unknown stages are shown as they are.
STAGE_LABELS = {
    "generate demo data": "Generating the demo data set (first launch only)",
    "rendering": "Drawing the demo images (first launch only)",
    "open dataset and checkpoint": "Opening the dataset and the checkpoint",
    "extract query": "Extracting feature maps: queries",
    "extract gallery": "Extracting feature maps: gallery",
    "score qg": "Matching queries against the gallery",
    "score qq": "Matching queries against each other (for re-ranking)",
    "score gg": "Matching the gallery against itself (for re-ranking)",
    "post-process": "Re-ranking / temporal lifting",
    "export": "Writing the CSV file",
}


def describe_stage(stage: str) -> str:
    return STAGE_LABELS.get(stage, stage[:1].upper() + stage[1:])


def show_progress(bar: QProgressBar, clock: ProgressClock, stage: str, done: int, total: int, *,
                  label: str | None = None) -> None:
    """Show a job's report on ``bar``: its range and value, and ``clock``'s words for it
    ("LABEL 1200/3400 · about 40 s left"; ``label`` as in :meth:`ProgressClock.text`)."""
    if total <= 0:
        bar.setRange(0, 0)  # indeterminate
    else:
        bar.setRange(0, total)
        bar.setValue(min(done, total))
    bar.setFormat(clock.text(stage, done, total, label=label))


class JobProgress(QWidget):
    """Bound to ``state.busy`` and ``state.progress``; hidden while idle. The bar reads
    ``"STAGE 1200/3400 · about 40 s left"`` (:class:`viewer.progress.ProgressClock`; the stage
    left out where the label above says it)."""

    cancel_requested = Signal()

    def __init__(self, state: ViewerState, parent=None, *, show_stage: bool = True,
                 only_when_loaded: bool = False):
        super().__init__(parent)
        self.state = state
        self.only_when_loaded = only_when_loaded
        self.stage = QLabel()
        self.stage.setVisible(show_stage)
        self.bar = QProgressBar()
        self.bar.setTextVisible(True)
        self.bar.setMinimumWidth(160)
        self.clock = ProgressClock()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the running job; the window keeps its current results")
        self.cancel_button.clicked.connect(self.cancel_requested)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stage)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        state.events.busy.connect(self._show_busy)
        state.events.session.connect(lambda _s: self._show_busy(state.busy))
        state.events.progress.connect(self._show_progress)
        self._show_busy(state.busy)

    def _show_busy(self, busy: str) -> None:
        # The status bar's copy stays hidden while the loading page shows its own.
        loaded = self.state.session is not None
        self.setVisible(bool(busy) and (loaded or not self.only_when_loaded))

    def _show_progress(self, progress) -> None:
        if progress is None:
            self.bar.setRange(0, 1)
            self.bar.setValue(0)
            self.stage.clear()
            self.clock.finish()
            return
        stage, done, total = progress
        label = describe_stage(stage)
        self.stage.setText(label)
        self.bar.setToolTip(label)
        show_progress(self.bar, self.clock, stage, done, total,
                      label="" if self.stage.isVisibleTo(self) else stage)
