"""The import rules written in pyproject.toml ([tool.importlinter]) hold.

The engine's layers import only downwards, the engine never imports the viewer or Qt, and the
views' states are Qt-free. Checked on the source (import-linter builds the import graph without
running anything), so a new violation fails the suite with the offending import line.
"""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(capsys, monkeypatch):
    from importlinter import api  # noqa: F401  (registers import-linter's adapters)
    from importlinter.application import use_cases

    monkeypatch.syspath_prepend(str(ROOT))
    kept = use_cases.lint_imports(config_filename=str(ROOT / "pyproject.toml"), cache_dir=None,
                                  no_logo=True)
    report = capsys.readouterr().out
    assert kept, report

