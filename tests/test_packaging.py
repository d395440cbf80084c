"""The declared dependency floors are the versions that are tested: pyproject.toml against the README's set-up."""

from __future__ import annotations

import re
import sys
from importlib.metadata import version
from pathlib import Path

from tests.test_docs import quickstart_block

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]


def _release(text: str) -> tuple[int, ...]:
    """``"2.13"`` -> ``(2, 13, 0)``; a local part (``+cpu``) is dropped."""
    parts = tuple(int(p) for p in text.split("+")[0].split("."))
    return parts + (0,) * (3 - len(parts))


def _floor(requirement: str) -> tuple[int, ...]:
    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    found = [d for d in dependencies if re.match(rf"{requirement}\s*[<>=!~]", d)]
    assert len(found) == 1, f"pyproject.toml should declare {requirement} once; got {found}"
    match = re.fullmatch(rf"{requirement}\s*>=\s*([\d.]+)", found[0].split(";")[0].strip())
    assert match, f"pyproject.toml should give {requirement} a plain floor (>=X.Y); got {found[0]!r}"
    return _release(match.group(1))


def test_the_torch_floor_is_the_version_the_readme_installs_and_ci_tests() -> None:
    # CI (.ci/run) runs the README's set-up command as written, so its torch pin is the tested version
    setup = " ".join(quickstart_block("setup"))
    pins = re.findall(r"\btorch==([\d.]+)", setup)
    assert len(pins) == 1, f"the README's set-up command should pin torch once; got {pins}"
    assert _floor("torch") == _release(pins[0]), "pyproject.toml's torch floor and the README's pin have drifted"


def test_the_installed_versions_meet_the_floors() -> None:
    assert _release(version("torch")) >= _floor("torch")
    assert _release(version("kornia")) >= _floor("kornia")
