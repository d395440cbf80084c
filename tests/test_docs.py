"""Checks that keep the README, CI, the docs site and the CLI help consistent with each other and the code."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pconv_kit_cli.main import cli
from pconv_kit_cli.options import MASK_CONVENTION_HELP

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
CI_SCRIPT = REPO_ROOT / ".ci" / "run"


def quickstart_block(name: str, page: Path = README) -> list[str]:
    """Lines of the fenced block between ``<!-- quickstart:NAME -->`` and ``<!-- /quickstart:NAME -->``."""
    text = page.read_text(encoding="utf-8")
    match = re.search(rf"<!-- quickstart:{name} -->\n(.*?)<!-- /quickstart:{name} -->", text, re.S)
    assert match, f"{page.name} has no quickstart:{name} block"
    fenced = re.fullmatch(r"```[a-z]*\n(.*?)```\n", match.group(1), re.S)
    assert fenced, f"the quickstart:{name} block must hold exactly one fenced code block"
    return [line for line in fenced.group(1).splitlines() if line.strip()]


def all_commands() -> list[tuple[str, click.Command]]:
    """(command path, command) for the group and every sub-command, recursively."""
    found: list[tuple[str, click.Command]] = []

    def walk(command: click.Command, path: str, parent: click.Context | None) -> None:
        ctx = click.Context(command, info_name=path.split()[-1], parent=parent)
        found.append((path, command))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}", ctx)

    walk(cli, "pconv-kit", None)
    return found


def leaf_commands() -> list[tuple[str, click.Command]]:
    return [(path, cmd) for path, cmd in all_commands() if not isinstance(cmd, click.Group)]


# --- README quick start and CI -------------------------------------------------------------------------------


def test_quickstart_is_exactly_two_commands() -> None:
    setup, test = quickstart_block("setup"), quickstart_block("test")
    assert len(setup) == 1 and len(test) == 1, "the quick start is one set-up line and one test line"
    parts = [shlex.split(part) for part in setup[0].split("&&")]
    assert parts[0] == ["python3", "-m", "venv", ".venv"]
    # torch is pinned in the same pip call that installs the project (an unpinned torch pulls CUDA wheels).
    assert parts[1][:2] == [".venv/bin/pip", "install"]
    assert "torch==2.13.0" in parts[1] and "-e" in parts[1] and ".[dev]" in parts[1]
    assert parts[2][0] == ".venv/bin/pconv-kit", "the set-up command ends with the main job"
    assert shlex.split(test[0]) == [".venv/bin/python", "-m", "pytest"]


def test_the_docs_quick_start_is_the_readmes() -> None:
    for name in ("setup", "test"):
        assert quickstart_block(name, DOCS / "index.md") == quickstart_block(name)


def test_ci_runs_the_readme_commands_and_a_strict_docs_build() -> None:
    script = CI_SCRIPT.read_text(encoding="utf-8")
    assert script.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in script
    assert "quickstart_command setup" in script and "quickstart_command test" in script
    assert "mkdocs build --strict" in script
    assert re.search(r'"\$TEST_RC" -eq 5', script), "pytest's exit code 5 (no tests) must fail CI"


def test_ci_extracts_the_same_commands_as_the_readme() -> None:
    # Run only the extraction function of .ci/run (it is defined before anything runs).
    script = CI_SCRIPT.read_text(encoding="utf-8")
    function = re.search(r"^quickstart_command\(\) \{\n.*?^\}\n", script, re.S | re.M)
    assert function
    for name in ("setup", "test"):
        out = subprocess.run(
            ["bash", "-c", f"{function.group(0)}\nquickstart_command {name}"],
            cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        ).stdout
        assert out.splitlines() == quickstart_block(name)


def test_main_job_of_the_quickstart_parses() -> None:
    """The pconv-kit part of the set-up line names a real command whose options all exist."""
    args = shlex.split(quickstart_block("setup")[0].split("&&")[-1])[1:]
    command = cli.get_command(click.Context(cli), args[0])
    assert command is not None, f"pconv-kit has no command {args[0]!r}"
    command.make_context(args[0], args[1:])  # raises click.UsageError on an unknown option or a bad value


def code_in_markdown(text: str) -> list[str]:
    """Fenced code blocks and inline code spans of a Markdown page."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n(.*?)^```", "", text, flags=re.S | re.M)
    return fenced + re.findall(r"`([^`\n]+)`", prose)


def test_readme_and_docs_only_use_existing_commands() -> None:
    names = {path.split()[1] for path, _ in all_commands() if " " in path}
    pages = [README, *sorted(DOCS.rglob("*.md"))]
    for page in pages:
        for code in code_in_markdown(page.read_text(encoding="utf-8")):
            for word in re.findall(r"pconv-kit[ \t]+([a-z][\w-]*)", code):
                assert word in names, f"{page.relative_to(REPO_ROOT)}: `pconv-kit {word}` is not a command"


@pytest.mark.parametrize("page", ["README.md", "docs/index.md", "docs/conventions.md", "docs/napari.md"])
def test_python_examples_in_pages_run(page: str) -> None:
    """The Python blocks of a page, run in order as one script from the repository root, as a reader would."""
    text = (REPO_ROOT / page).read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)
    assert blocks, f"{page} has no Python example"
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    if page == "README.md":
        assert "torch.Size([1, 64, 256, 256]) torch.Size([1, 1, 256, 256])" in result.stdout
    if page == "docs/conventions.md":
        assert result.stdout.strip() == "0.125"
    if page == "docs/napari.md":
        assert result.stdout.strip() == "(120, 160, 3) uint8 True"


# --- CLI help ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path,command", leaf_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_command_has_examples_in_its_epilog(path: str, command: click.Command) -> None:
    assert command.help, f"{path} has no help text"
    assert command.epilog, f"{path} has no epilog with examples"
    assert "\b" in command.epilog, f"{path}: put the examples in a \\b block so Click keeps the lines"
    assert path in command.epilog, f"{path}: the epilog shows no example invocation of `{path}`"


@pytest.mark.parametrize("path,command", all_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_help_has_no_stray_backspace(path: str, command: click.Command) -> None:
    """Click removes a ``\\b`` marker only when it opens a paragraph (after a blank line); elsewhere the
    backspace character is printed into the help text."""
    result = CliRunner().invoke(cli, [*path.split()[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "\b" not in result.output, f"`{path} --help` prints a literal \\b: put a blank line before it"


@pytest.mark.parametrize("path,command", leaf_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_mask_file_options_come_with_the_shared_mask_convention(path: str, command: click.Command) -> None:
    params = {p.name: p for p in command.params}
    mask_paths = [
        name for name, p in params.items()
        if name and re.fullmatch(r"masks?(_.*)?", name) and isinstance(p.type, click.Path)
    ]
    if "mask_convention" in params:
        option = params["mask_convention"]
        assert isinstance(option.type, click.Choice)
        assert list(option.type.choices) == ["hole-white", "valid-white"]
        assert option.help == MASK_CONVENTION_HELP, f"{path}: use pconv_kit_cli.options.mask_convention"
    elif mask_paths:
        pytest.fail(f"{path} reads or writes mask files ({mask_paths}) but has no --mask-convention")


# --- docs site -----------------------------------------------------------------------------------------------


def mkdocs_config() -> dict:
    yaml = pytest.importorskip("yaml")  # installed with the docs extra (mkdocs needs it)

    class Loader(yaml.SafeLoader):
        """mkdocs.yml may use !!python/name tags (pymdownx options); they do not matter here."""

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def nav_pages(nav: list) -> list[str]:
    pages: list[str] = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_nav_lists_every_page_and_only_existing_pages() -> None:
    pages = nav_pages(mkdocs_config()["nav"])
    assert len(pages) == len(set(pages)), "a page is listed twice in the nav"
    missing = [p for p in pages if not (DOCS / p).is_file()]
    assert not missing, f"pages in mkdocs.yml's nav that do not exist: {missing}"
    on_disk = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.parts}
    assert on_disk == set(pages), f"pages not in the nav: {sorted(on_disk - set(pages))}"


def test_api_pages_document_importable_modules() -> None:
    for page in sorted((DOCS / "api").glob("*.md")):
        targets = re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M)
        assert targets, f"{page.name} documents nothing"
        for target in targets:
            importlib.import_module(target)


def test_required_api_pages_exist() -> None:
    documented = {
        target
        for page in (DOCS / "api").glob("*.md")
        for target in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(encoding="utf-8"), re.M)
    }
    required = {
        "pconv_kit.layers", "pconv_kit.models", "pconv_kit.masks", "pconv_kit.io", "pconv_kit.losses",
        "pconv_kit.utils", "pconv_kit.core.check", "pconv_kit.errors",
    }
    assert required <= documented, f"missing API pages for {sorted(required - documented)}"


def test_cli_page_is_generated_from_the_click_group() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert re.search(r"^::: mkdocs-click\n    :module: pconv_kit_cli.main\n    :command: cli\n", text, re.M)
    assert "<!-- cli-examples -->" in text


def test_cli_examples_hook_renders_every_epilog() -> None:
    hook = load_hook("cli_examples")
    page = hook.on_page_markdown("before\n<!-- cli-examples -->\nafter", page=None, config=None, files=None)
    assert "<!-- cli-examples -->" not in page
    for path, command in leaf_commands():
        if command.epilog:
            assert f"### `{path}`" in page
            assert "\b" not in page


def load_hook(name: str):
    spec = importlib.util.spec_from_file_location(name, DOCS / "hooks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_griffe_extension_adapts_napoleon_style_docstrings() -> None:
    adapt = load_hook("griffe_docstrings").adapt
    text = (
        "Summary with :func:`partial_conv2d` and :math:`(B, C, H, W)`.\n\n"
        ".. math::\n\n    x' = W^T X\n    m' = 1\n\n"
        "Args:\n    a, b: shared\n        description.\n    c (int): alone.\n\n"
        "Returns:\n    x, y: not a parameter section, left alone.\n\n"
        "Example:\n    >>> 1 + 1\n    2\n"
    )
    assert adapt(text) == (
        "Summary with `partial_conv2d` and `(B, C, H, W)`.\n\n"
        "```latex\nx' = W^T X\nm' = 1\n```\n\n"
        "Args:\n    a: shared\n        description.\n    b: shared\n        description.\n    c (int): alone.\n\n"
        "Returns:\n    x, y: not a parameter section, left alone.\n\n"
        "Examples:\n    >>> 1 + 1\n    2\n"
    )


def test_griffe_extension_parses_every_documented_module_without_warnings(caplog: pytest.LogCaptureFixture) -> None:
    """The strict docs build fails on any griffe warning; check the API modules' docstrings here, fast."""
    griffe = pytest.importorskip("griffe")
    extension = load_hook("griffe_docstrings").PConvKitDocstrings()
    targets = sorted(
        {t for page in (DOCS / "api").glob("*.md") for t in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), re.M)}
    )
    loader = griffe.GriffeLoader(
        extensions=griffe.load_extensions(extension), search_paths=[str(REPO_ROOT), str(REPO_ROOT / "cli")],
        docstring_parser=griffe.Parser.google,
    )
    warnings: list[str] = []
    for target in targets:
        module = loader.load(target)
        objects = [module]
        while objects:
            obj = objects.pop()
            if obj.is_alias:
                continue
            if obj.docstring is not None:
                with caplog.at_level("WARNING", logger="griffe"):
                    caplog.clear()
                    obj.docstring.parse(griffe.Parser.google)
                    warnings += [f"{obj.path}: {r.getMessage()}" for r in caplog.records]
            objects.extend(m for m in obj.members.values() if not m.is_alias)
    assert not warnings, "\n".join(warnings)


def test_docstring_examples_run_as_tests_and_leave_the_environment_alone() -> None:
    # pyproject's pytest settings collect the package's doctests; none may set os.environ (use mock.patch.dict)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    settings = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]
    assert "pconv_kit" in settings["testpaths"] and "--doctest-modules" in settings["addopts"]
    offenders = [
        f"{path.relative_to(REPO_ROOT)}:{n}"
        for path in sorted((REPO_ROOT / "pconv_kit").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"(>>>|\.\.\.)\s.*os\.environ\[[^\]]*\]\s*=(?!=)", line)
    ]
    assert not offenders, offenders
