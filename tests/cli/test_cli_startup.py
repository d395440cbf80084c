"""Start-up cost: `import pconv_kit`, `pconv-kit --help` and `pconv-kit masks --help` do not import torch, and the
group's lazily listed commands are the real ones."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from click.testing import CliRunner

import pconv_kit
from pconv_kit_cli.commands import COMMANDS
from pconv_kit_cli.main import cli

PROBE = """
import sys
from click.testing import CliRunner
import pconv_kit
from pconv_kit_cli.main import cli
for args in {args!r}:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
print(sorted(m for m in ("torch", "kornia", "pconv_kit.models", "pconv_kit.train.trainer") if m in sys.modules))
"""


@pytest.mark.parametrize("args", [[["--help"]], [["masks", "--help"]], [["--version"]], [["masks", "--help"], ["--help"]]])
def test_help_does_not_import_torch(args: list[list[str]]) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_train_help_imports_the_config_but_not_the_trainer() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=[["train", "--help"]])], capture_output=True, text=True, check=True
    )
    assert "pconv_kit.train.trainer" not in out.stdout, out.stdout


def test_listed_short_help_is_each_commands_own() -> None:
    for name, (module, attribute, short_help) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        assert command.get_short_help_str(limit=300) == short_help, name
    result = CliRunner().invoke(cli, ["--help"], env={"COLUMNS": "200"})
    for name, (_, _, short_help) in COMMANDS.items():
        assert f"{name}" in result.output and short_help in " ".join(result.output.split())


def test_lazy_package_attributes() -> None:
    assert pconv_kit.PConvUNet.__name__ == "PConvUNet"
    assert pconv_kit.train.TrainConfig.__name__ == "TrainConfig"  # the sub-package, not the function
    assert callable(pconv_kit.train.train)
    assert "MaskGenerator" in dir(pconv_kit) and "convert" in dir(pconv_kit)
    for name in pconv_kit.__all__:
        assert getattr(pconv_kit, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        pconv_kit.nope  # noqa: B018
    assert CliRunner().invoke(cli, ["nope"]).exit_code == 2


@pytest.mark.parametrize(
    "code",
    [
        "import pconv_kit; import pconv_kit.fill; f = pconv_kit.inpaint",
        "import pconv_kit; f = pconv_kit.inpaint; import pconv_kit.evaluate; f = pconv_kit.inpaint",
        "from pconv_kit.inpaint import Inpainter; from pconv_kit import inpaint as f",
        "import pconv_kit.inpaint; import pconv_kit; f = pconv_kit.inpaint",
    ],
)
def test_the_inpaint_function_is_not_shadowed_by_its_module(code: str) -> None:
    # importing the sub-module pconv_kit.inpaint binds it on the package; the function must win, in any order
    check = f"{code}; import types; assert callable(f) and not isinstance(f, types.ModuleType), f"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert pconv_kit.__version__ == version("pconv-kit")
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and pconv_kit.__version__ in result.output
