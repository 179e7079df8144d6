"""What the window remembers between launches (QSettings, an INI file in the user's
configuration folder; tests move it with ``QSettings.setPath``): the RR/TLift toggles and
parameters, the window's geometry, docks and splitter, the last dataset and checkpoint, and the
export and case folders. ``run_viewer.py --reset-settings`` forgets them.

Values are stored as JSON text (or Qt's own bytes for the layout), so a damaged or foreign value
is ignored rather than trusted.
"""
from __future__ import annotations

import dataclasses
import json
import logging

from PySide6.QtCore import QByteArray, QSettings

from engine.postprocess.params import RerankParams, TLiftParams

log = logging.getLogger(__name__)

__all__ = ["user_settings", "remember_window", "restore_window", "remembered_inputs",
           "reset_settings"]


def user_settings() -> QSettings:
    """The viewer's settings file (IniFormat, UserScope, ``reid-inspector/viewer.ini``)."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "reid-inspector",
                     "viewer")


def reset_settings() -> None:
    """Forget everything remembered."""
    settings = user_settings()
    settings.clear()
    settings.sync()


def _json(settings: QSettings, key: str):
    text = settings.value(key)
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        log.warning("ignored the remembered %s: not valid JSON", key)
        return None


def _params(cls, data):
    if not isinstance(data, dict):
        return None
    try:
        return cls(**data)
    except TypeError:
        return None


def remember_window(window, settings: QSettings) -> None:
    """Store the window's settings (called when it closes)."""
    state = window.state
    settings.setValue("post/rerank_on", json.dumps(bool(state.rerank_on)))
    settings.setValue("post/tlift_on", json.dumps(bool(state.tlift_on)))
    settings.setValue("post/rerank", json.dumps(dataclasses.asdict(state.rerank)))
    settings.setValue("post/tlift", json.dumps(dataclasses.asdict(state.tlift)))
    settings.setValue("window/geometry", window.saveGeometry())
    settings.setValue("window/state", window.saveState())
    settings.setValue("window/splitter", window.splitter.saveState())
    request = window.controller.last_request
    if request is not None and state.session is not None:
        settings.setValue("inputs/data", json.dumps(None if request.data is None else str(request.data)))
        settings.setValue("inputs/checkpoint",
                          json.dumps(None if request.checkpoint is None else str(request.checkpoint)))
    if window.last_export is not None:
        settings.setValue("folders/export", json.dumps(str(window.last_export.path)))
    if window.last_case_folder:
        settings.setValue("folders/case", json.dumps(str(window.last_case_folder)))
    settings.sync()


def restore_window(window, settings: QSettings) -> None:
    """Apply what was remembered to a new window (before its first load)."""
    state = window.state
    rerank = _params(RerankParams, _json(settings, "post/rerank"))
    tlift = _params(TLiftParams, _json(settings, "post/tlift"))
    if rerank is not None:
        state.rerank = rerank
    if tlift is not None:
        state.tlift = tlift
    state.rerank_on = _json(settings, "post/rerank_on") is True
    state.tlift_on = _json(settings, "post/tlift_on") is True
    for key, restore in (("window/geometry", window.restoreGeometry),
                         ("window/state", window.restoreState)):
        value = settings.value(key)
        if isinstance(value, QByteArray) and not restore(value):   # Qt checks what it reads
            log.warning("ignored the remembered %s: not this window's", key)
    # The panes are laid out once the results show (MainWindow._show_page): their widths then.
    value = settings.value("window/splitter")
    window.pending_splitter = value if isinstance(value, QByteArray) else None
    export = _json(settings, "folders/export")
    if isinstance(export, str) and export:
        from viewer.widgets.export_dialog import ExportChoice

        window.last_export = ExportChoice(path=export, all_queries=False, top_k=state.top_k)
    case = _json(settings, "folders/case")
    if isinstance(case, str):
        window.last_case_folder = case


def remembered_inputs(settings: QSettings) -> tuple[str | None, str | None]:
    """The last dataset and checkpoint opened (None: the demo's, or nothing remembered)."""
    data, checkpoint = _json(settings, "inputs/data"), _json(settings, "inputs/checkpoint")
    return (data if isinstance(data, str) else None,
            checkpoint if isinstance(checkpoint, str) else None)
