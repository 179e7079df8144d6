"""Above the results: the selected query's image, who and where it is, its AP and first true match."""
from __future__ import annotations

import math
import os

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from viewer import style
from viewer.formatting import camera_base, format_cam, format_time
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
        self.note = QLabel()
        self.note.setObjectName("dim")
        self.note.setWordWrap(True)

        self.first_match = QPushButton("Go to first true match")
        self.first_match.setToolTip("Select the first result of the same identity on another "
                                    "camera (more results are shown if needed)")
        self.first_match.clicked.connect(lambda: state.select_first_true_match())
        text = QVBoxLayout()
        text.setSpacing(2)
        for label in (self.title, self.where, self.numbers, self.note):
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
                     "second_ranks"):
            state.events[name].connect(self.refresh)

    def refresh(self, _value=None) -> None:
        state = self.state
        query = state.selected_query
        if state.session is None or not 0 <= query < state.num_queries:
            self.image.clear()
            self.title.setText("No query selected")
            for label in (self.where, self.numbers, self.note):
                label.clear()
            self.first_match.setEnabled(False)
            return
        sample = state.query_sample(query)
        self.image.setPixmap(self.thumbnails.get(sample.path, *IMAGE_SIZE))
        name = os.path.basename(sample.path)
        method = state.applied.method(state.base_method)
        if state.is_extra(query):
            self.title.setText("External image")
            self.where.setText(name)
            self.numbers.setText(f"Ranking: {method.replace('+tlift', '')}")
            note = "No identity, so no right/wrong marks."
            if state.applied.tlift is not None:
                note += " TLift is not applied to this image (it has no timestamp)."
            self.note.setText(note)
            self.first_match.setEnabled(False)
            return
        self.title.setText(f"Identity {sample.pid:04d}")
        when = format_time(sample.time)
        self.where.setText(f"camera {format_cam(sample.cam, camera_base(self.state))}" + (f" · t {when}" if when else "")
                           + f" · {name}")
        ranking = state.shown_ranking(query)
        override = state.override(query)
        if override is not None:  # the numbers are the list's the grid shows
            method = override.settings.method(state.base_method) if override.settings else method
            method += f" of the {override.probe or 'list shown'}"
        self.first_match.setEnabled(ranking is not None and ranking.first_hit_rank > 0)
        if ranking is None or math.isnan(ranking.ap):
            self.numbers.setText(f"Ranking: {method} · no true match in the gallery on another camera")
        else:
            self.numbers.setText(f"Ranking: {method} · AP {ranking.ap:.3f} · "
                                 f"first true match at rank {ranking.first_hit_rank}")
            second = None if state.second_ranks is None or override is not None else \
                state.second_ranks.ranking(query)
            if second is not None:  # a second model is compared: its numbers too
                self.numbers.setText(f"{self.numbers.text()}<br><span style='color:"
                                     f"{style.SECOND_MODEL.name()}'>Model B: AP {second.ap:.3f} · "
                                     f"first true match at rank {second.first_hit_rank}</span>")
        self.note.setText("Ranks (here, on the tiles, in the CSV and the inspector) do not count "
                          "same-camera junk.")
