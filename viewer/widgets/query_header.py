"""Above the results: the selected query's image, who and where it is, its AP and first true match."""
from __future__ import annotations

import os

from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from viewer import style
from viewer.formatting import camera_base, format_cam, format_time
from viewer.marks.state import marks_summary
from viewer.state import ViewerState
from viewer.widgets.thumbnails import ThumbnailCache

__all__ = ["QueryHeader"]

IMAGE_SIZE = style.RESULT_THUMB   # the query as large as a result's image


class QueryHeader(QFrame):
    """Shows the selected query and its per-query numbers under the applied settings."""

    def __init__(self, state: ViewerState, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.setObjectName("card")
        self.state, self.thumbnails = state, thumbnails
        self.image = QLabel()
        self.image.setFixedSize(*IMAGE_SIZE)
        self.title = QLabel("No query selected")
        self.title.setObjectName("big")
        self.where = QLabel()
        self.where.setObjectName("dim")
        self.numbers = QLabel()
        self.marks = QLabel()
        self.marks.setToolTip("Your marks of this query's results: S same person, D different "
                              "person, C clear (or right-click a result); the list re-ranks "
                              "from them")
        # Long lines wrap rather than widen the centre (and squeeze the query list beside it).
        for label in (self.title, self.where, self.numbers, self.marks):
            label.setWordWrap(True)
        self.note = QLabel()
        self.note.setObjectName("dim")
        self.note.setWordWrap(True)
        self.note_text = ""   # the whole note; the label may show it shortened (_fit_note)

        self.first_match = QPushButton("Go to first true match")
        self.first_match.setToolTip("Select the first result of the same identity on another "
                                    "camera (more results are shown if needed)")
        self.first_match.clicked.connect(lambda: state.select_first_true_match())
        text = QVBoxLayout()
        text.setSpacing(2)
        for label in (self.title, self.where, self.numbers, self.marks, self.note):
            text.addWidget(label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.first_match)
        buttons.addStretch(1)
        text.addLayout(buttons)
        text.addStretch(1)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 8, 10, 8)
        layout.addWidget(self.image)
        layout.addLayout(text, 1)
        for name in ("selected_query", "distmat", "extra_queries", "session", "overrides",
                     "second_ranks", "marks"):
            state.events[name].connect(self.refresh)

    def refresh(self, _value=None) -> None:
        state = self.state
        query = state.selected_query
        if state.session is None or not 0 <= query < state.num_queries:
            self.image.clear()
            self.title.setText("No query selected")
            for label in (self.where, self.numbers, self.marks):
                label.clear()
            self._set_note("")
            self.first_match.setEnabled(False)
            return
        sample = state.query_sample(query)
        self.image.setPixmap(self.thumbnails.get(sample.path, *IMAGE_SIZE))
        name = os.path.basename(sample.path)
        described = state.describe(query)  # the list the grid shows: image, method, AP
        if state.is_extra(query):
            self.title.setText("External image")
            self.where.setText(name)
        else:
            self.title.setText(f"Identity {sample.pid:04d}")
            when = format_time(sample.time)
            self.where.setText(f"camera {format_cam(sample.cam, camera_base(self.state))}"
                               + (f" · t {when}" if when else "") + f" · {name}")
        key = state.query_key(query)
        same, different = (0, 0) if key is None or state.marks is None else state.marks.counts(key)
        self.marks.setText("" if key is None else
                           f"Marks: {marks_summary(same, different)} (S / D / C on a result)")
        self.first_match.setEnabled(described is not None and described.first_hit_rank > 0)
        if described is None:
            self.numbers.setText("Ranking: computing…")
            self._set_note("")
            return
        if described.identity_known:
            self.numbers.setText(f"Ranking: {described.summary()}")
            second = None if state.second_ranks is None or state.override(query) is not None \
                else state.second_ranks.ranking(query)
            if second is not None:  # a second model is compared: its numbers too
                self.numbers.setText(f"{self.numbers.text()}<br><span style='color:"
                                     f"{style.SECOND_MODEL.name()}'>Model B: AP {second.ap:.3f} · "
                                     f"first true match at rank {second.first_hit_rank}</span>")
            note = ("Ranks (here, on the tiles, in the CSV and the inspector) do not count "
                    "same-camera junk.")
        else:
            self.numbers.setText(f"Ranking: {described.label}")
            note = "No identity, so no right/wrong marks."
        self._set_note(" ".join(filter(None, (note, described.note))))

    def _set_note(self, text: str) -> None:
        self.note_text = text
        self._fit_note()

    def _fit_note(self) -> None:
        """The note whole when it takes two lines at most; narrower (the occlusion dock open at
        1024 px), shortened with "…" to about two lines, whole in its tooltip: the grid below
        keeps its height."""
        text, fm = self.note_text, self.note.fontMetrics()
        width = max(self.note.width(), 1)
        wrapped = fm.boundingRect(QRect(0, 0, width, 1 << 20), Qt.TextFlag.TextWordWrap, text)
        whole = wrapped.height() <= 2 * fm.lineSpacing()
        self.note.setToolTip("" if whole else text)
        self.note.setText(text if whole else
                          fm.elidedText(text, Qt.TextElideMode.ElideRight, int(1.7 * width)))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_note()
