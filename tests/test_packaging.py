"""What `pip install .` and `pip install ".[viewer]"` get: dependencies that cover the imports,
pins inside the ranges, the demo checkpoint as package data, the entry points."""
from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(text) for text in requirements]
    return {canonicalize_name(r.name): r for r in parsed}


BASE = _names(PROJECT["project"]["dependencies"])
EXTRAS = {extra: _names(reqs) for extra, reqs in PROJECT["project"]["optional-dependencies"].items()}


def _third_party_imports(package: str) -> set[str]:
    """Top-level names of the modules that ``package``'s files import, stdlib and ours left out."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"engine", "viewer", "__future__"}


def _distributions(modules: set[str]) -> set[str]:
    owners = importlib.metadata.packages_distributions()
    return {canonicalize_name(dist) for module in modules for dist in owners[module]}


def test_the_engine_needs_only_the_base_dependencies():
    needed = _distributions(_third_party_imports("engine"))
    assert "torch" in needed and "numba" in needed  # the scan sees imports inside functions too
    assert needed <= set(BASE), f"engine/ imports what `pip install .` lacks: {needed - set(BASE)}"
    assert not {name for name in BASE if "pyside" in name or "qt" in name}


def test_the_viewer_extra_adds_what_the_viewer_imports():
    pytest.importorskip("PySide6", reason="the [viewer] extra is not installed here")
    needed = _distributions(_third_party_imports("viewer"))
    missing = needed - set(BASE) - set(EXTRAS["viewer"])
    assert "pyside6-essentials" in needed and not missing, missing
    assert "<6.12" in str(EXTRAS["viewer"]["pyside6-essentials"].specifier)


def test_constraints_pin_each_direct_dependency_inside_its_range():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(req.name)] = spec.version
    declared = {**BASE, **{name: r for reqs in EXTRAS.values() for name, r in reqs.items()}}
    assert set(pins) == set(declared)
    for name, req in declared.items():
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {req}"


def test_the_demo_checkpoint_ships_as_package_data_with_its_sidecar():
    from engine.checkpoint import file_digest, read_sidecar_config
    from viewer.tasks import demo_checkpoint

    checkpoint = demo_checkpoint()
    package = Path(importlib.import_module("viewer.demo").__file__).parent
    assert checkpoint.is_file() and checkpoint.parent == package
    # The sidecar keys the warm launch without torch: it must travel with the model.
    assert read_sidecar_config(checkpoint, file_digest(checkpoint)) is not None
    patterns = PROJECT["tool"]["setuptools"]["package-data"]["viewer.demo"]
    data = [p.name for p in package.iterdir() if p.is_file() and p.suffix != ".py"]
    assert {"model.pt", "model.json"} <= set(data)
    for name in data:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in patterns), f"{name} not shipped"


def test_entry_points_name_the_cli_and_the_launcher():
    def target(spec: str):
        module, _, attr = spec.partition(":")
        return getattr(importlib.import_module(module), attr)

    from engine.__main__ import main as cli_main
    from viewer.app import main as viewer_main

    assert target(PROJECT["project"]["scripts"]["reid-engine"]) is cli_main
    assert target(PROJECT["project"]["gui-scripts"]["reid-inspector"]) is viewer_main


def test_the_launcher_without_the_viewer_extra_says_how_to_get_it(monkeypatch, capsys):
    from viewer.app import main

    monkeypatch.setitem(sys.modules, "PySide6", None)  # what an engine-only install has
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert 'pip install "reid-inspector[viewer]"' in capsys.readouterr().err
