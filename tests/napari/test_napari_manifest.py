"""The napari plugin's npe2 manifest and packaging (needs npe2, which the ``test`` extra installs; no Qt)."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
from pathlib import Path

import numpy as np
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

npe2 = pytest.importorskip("npe2")

REPO_ROOT = Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "pconv_kit" / "napari" / "napari.yaml"
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
GUI_DISTRIBUTIONS = re.compile(r"^(napari|magicgui|qtpy|pyqt[56]?|pyside[26]?|pytest-qt|superqt|vispy)\b", re.I)


def _commands(manifest: npe2.PluginManifest) -> dict[str, str]:
    return {command.id: command.python_name for command in manifest.contributions.commands or []}


def test_manifest_file_is_valid() -> None:
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "pconv-kit" == PYPROJECT["project"]["name"]
    commands = _commands(manifest)
    widgets = manifest.contributions.widgets or []
    samples = manifest.contributions.sample_data or []
    assert [w.command for w in widgets] == ["pconv-kit.fill_widget"]
    assert [s.command for s in samples] == ["pconv-kit.sample_chelsea"]
    assert commands["pconv-kit.fill_widget"] == "pconv_kit.napari._widget:FillWidget"
    assert commands["pconv-kit.sample_chelsea"] == "pconv_kit.napari._sample_data:chelsea_with_holes"


def test_every_command_points_at_a_callable() -> None:
    """Import what can be imported without napari; for the GUI module check the name statically."""
    for python_name in _commands(npe2.PluginManifest.from_file(MANIFEST)).values():
        module_name, attribute = python_name.split(":")
        path = REPO_ROOT / (module_name.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
        assert attribute in defined, f"{python_name}: no such function or class"
        if module_name.endswith("._sample_data"):
            assert callable(getattr(importlib.import_module(module_name), attribute))


def test_entry_point_and_package_data_ship_the_manifest() -> None:
    assert PYPROJECT["project"]["entry-points"]["napari.manifest"] == {"pconv-kit": "pconv_kit.napari:napari.yaml"}
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["pconv_kit"]
    assert "napari/napari.yaml" in package_data and "napari/data/*" in package_data


def test_installed_distribution_exposes_the_manifest() -> None:
    """What `npe2 validate pconv-kit` checks: the entry point of the installed distribution gives a valid manifest."""
    try:
        points = importlib.metadata.entry_points(group="napari.manifest")
    except TypeError:  # pragma: no cover - Python < 3.10 API
        pytest.skip("old importlib.metadata")
    if not any(point.name == "pconv-kit" for point in points):
        pytest.skip("pconv-kit is not installed with its entry points (pip install -e . registers them)")
    manifest = npe2.PluginManifest.from_distribution("pconv-kit")
    assert _commands(manifest) == _commands(npe2.PluginManifest.from_file(MANIFEST))


def test_sample_data_contribution_runs_through_npe2() -> None:
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    plugins = npe2.PluginManager()  # a private one: napari's global plugin manager is left alone
    plugins.register(manifest)
    plugins.activate(manifest.name)
    sample = (manifest.contributions.sample_data or [])[0]
    layers = sample.open(_registry=plugins.commands)
    assert [kind for _, _, kind in layers] == ["image", "labels"]
    assert layers[0][0].shape == (300, 451, 3) and set(np.unique(layers[1][0]).tolist()) == {0, 1}


def test_napari_and_qt_stay_out_of_the_base_install_and_the_dev_extra() -> None:
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    for name in ("test", "docs", "onnx", "keras", "dev"):
        bad = [req for req in extras[name] if GUI_DISTRIBUTIONS.match(req)]
        assert not bad, f"the {name} extra pulls GUI packages: {bad}"
    assert not [req for req in project["dependencies"] if GUI_DISTRIBUTIONS.match(req)]
    assert "pconv-kit[napari]" not in extras["dev"][0]
    assert any(req.startswith("napari") for req in extras["napari"])
    assert any(req.startswith("npe2") for req in extras["napari"])
    # npe2 itself (in the test extra, to validate the manifest in CI) must not bring Qt either
    requirements = importlib.metadata.requires("npe2") or []
    assert not [r for r in requirements if "extra ==" not in r and GUI_DISTRIBUTIONS.match(r)]
