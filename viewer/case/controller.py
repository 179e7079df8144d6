"""Save the selected query's case to a folder, and open one again (background jobs for the
files; the state is read and changed on the GUI thread)."""
from __future__ import annotations

import json
import os

from PySide6.QtCore import QObject, Signal

from viewer.case.state import (
    CASE_FILE,
    case_json,
    check_case,
    confirmed_in_time_order,
    contact_sheet,
    read_case,
    sightings_csv,
)
from viewer.formatting import camera_base, format_cam, format_time
from viewer.marks.controller import MarksController
from viewer.state import JobError, PostSettings

__all__ = ["CaseController", "write_case_job"]


def write_case_job(folder: str, files: dict, sheet: list, inputs, force: bool, *, progress, cancel):
    """Render the contact sheet and write every file of the case at once (all or none)."""
    from engine.outputs import write_output_folder

    progress("save case", 0, 1)
    files = dict(files, **{"contact_sheet.png": contact_sheet(sheet)})
    return write_output_folder(folder, files, force=force, inputs=inputs, flag="case folder")


class CaseController(QObject):
    """Saves and opens cases for the window."""

    saved = Signal(str)      # the folder ("" when it failed)
    opened = Signal(bool)

    def __init__(self, marks: MarksController, parent: QObject | None = None):
        super().__init__(parent or marks)
        self.marks = marks
        self.main = marks.main
        self.viewer = marks.viewer

    # ------------------------------------------------------------------ save
    def save(self, folder: str, path_png: bytes | None = None):
        """Write the selected query's case into ``folder`` (made if needed). Returns the job,
        or None with the reason in the window's banner."""
        from engine.outputs import session_inputs

        viewer = self.viewer
        query = viewer.selected_query
        key = viewer.query_key(query)
        if key is None or viewer.marks is None:
            viewer.error = JobError("no case to save", "select one of the dataset's queries "
                                    "(marks are still being read, or the query is external)")
            return None
        session = viewer.session
        gallery = session.dataset.gallery
        sample = viewer.query_sample(query)
        marks = viewer.marks.marks(key)
        settings = viewer.applied
        base = camera_base(viewer)
        record = case_json(dataset=viewer.marks.dataset, checkpoint=session.model_digest,
                           dataset_root=str(session.dataset.root),
                           checkpoint_path=str(session.checkpoint or ""), query=sample,
                           rerank=settings.rerank, tlift=settings.tlift, marks=marks,
                           gallery_paths=[s.path for s in gallery])
        ranking = viewer.shown_ranking(query)
        scores = viewer.score_row(query)
        rows = [(sample.path, sample.pid, format_cam(sample.cam, base), sample.time, "", "",
                 "query")]
        for m in marks:
            item = gallery[m.gallery]
            rank = "" if ranking is None else int(ranking.ranks[ranking.position_of(m.gallery)]) or ""
            rows.append((item.path, item.pid, format_cam(item.cam, base), item.time, rank,
                         float(scores[m.gallery]), m.kind))
        rows[1:] = sorted(rows[1:], key=lambda r: (r[3] is None, r[3] or 0.0))
        sheet = [(s.path, f"{format_cam(s.cam, base)} · {format_time(s.time)}\n"
                          + ("query" if s is sample else os.path.basename(s.path)))
                 for s in confirmed_in_time_order(sample, gallery, marks)]
        files = {CASE_FILE: json.dumps(record, indent=1).encode("utf-8"),
                 "sightings.csv": sightings_csv(rows)}
        if path_png is not None:
            files["path.png"] = path_png
        force = os.path.isfile(os.path.join(folder, CASE_FILE))   # saving over a case
        return self.main.jobs.submit(
            write_case_job, folder, files, sheet, session_inputs(session), force,
            name="save case", pool="io", on_result=lambda _p: self._saved(folder),
            on_error=lambda _e: self.saved.emit(""), on_cancel=lambda: self.saved.emit(""))

    def _saved(self, folder: str) -> None:
        self.viewer.events.message.emit(f"case saved in {folder}")
        self.saved.emit(folder)

    # ------------------------------------------------------------------ open
    def open(self, folder: str) -> bool:
        """Open the case in ``folder`` on the open dataset and checkpoint: its settings, its
        query selected, its marks as the query's marks. Refused (banner) when it was made on
        another dataset or checkpoint."""
        from engine.cache_files import read_json_object

        viewer = self.viewer
        try:
            if viewer.session is None or viewer.marks is None:
                raise ValueError("open the case's dataset and checkpoint first")
            case = read_case(read_json_object(os.path.join(folder, CASE_FILE)))
            session = viewer.session
            query = check_case(case, dataset=viewer.marks.dataset,
                               checkpoint=session.model_digest,
                               query_paths=[s.path for s in session.dataset.query],
                               gallery_paths=[s.path for s in session.dataset.gallery])
        except (OSError, ValueError) as exc:
            viewer.error = JobError("case not opened", str(exc))
            self.opened.emit(False)
            return False
        key = viewer.query_key(query)
        book = viewer.marks
        book.clear_query(key)
        for _path, index, kind, when in case.marks:
            book.set(key, index, kind, when)
        viewer.marks_changed()
        self.marks.save()
        viewer.show_settings(PostSettings(case.rerank, case.tlift))
        viewer.select_query(query)
        self.marks.refine(query)
        viewer.events.message.emit(f"opened the case in {folder}")
        self.opened.emit(True)
        return True
