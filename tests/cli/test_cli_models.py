"""`pconv-kit models`: the registry on the command line, with the built-in default and download state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pconv_kit.registry import ModelEntry, model_statuses, register_model, unregister_model
from pconv_kit.utils.download import cached_download, sha256_file
from pconv_kit_cli.main import cli


@pytest.fixture
def downloadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A registered model served from a file:// URL, with an empty cache."""
    monkeypatch.setenv("PCONV_KIT_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "served" / "tiny.safetensors"
    source.parent.mkdir()
    source.write_bytes(b"not really weights, but a file of 45 bytes...")
    entry = ModelEntry("test-download", url=source.as_uri(), sha256=sha256_file(source), description="a test entry")
    register_model(entry)
    yield entry
    unregister_model("test-download")


def test_table_lists_the_built_in_default_and_what_downloads(downloadable: ModelEntry) -> None:
    result = CliRunner().invoke(cli, ["models"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    builtin = next(line for line in lines if "pconv-photos-small" in line)
    from pconv_kit.registry import BUILTIN_MODEL, model_info

    weights = Path(__file__).resolve().parents[2] / "pconv_kit" / model_info(BUILTIN_MODEL).file  # type: ignore[operator]
    assert "(default)" in builtin and "built in" in builtin and f"{weights.stat().st_size / 1e6:.1f} MB" in builtin
    test = next(line for line in lines if "test-download" in line)
    assert "download" in test and "not yet downloaded" in test
    assert any("mmagic-places2-256" in line and "fetch by hand + convert (mmagic)" in line for line in lines)
    # once it is in the cache, its size shows
    cached_download(downloadable.url, sha256=downloadable.sha256)  # type: ignore[arg-type]
    again = CliRunner().invoke(cli, ["models"], env={"COLUMNS": "160"}).output
    assert "0.0 MB" in next(line for line in again.splitlines() if "test-download" in line)


def test_json_has_paths_sizes_urls_and_licences(downloadable: ModelEntry) -> None:
    result = CliRunner().invoke(cli, ["models", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.output)}
    builtin = rows["pconv-photos-small"]
    assert builtin["default"] and builtin["source"] == "built in" and builtin["url"] is None
    assert Path(builtin["local"]).is_file() and builtin["size_bytes"] == Path(builtin["local"]).stat().st_size
    assert "Apache-2.0" in builtin["license"]
    assert rows["test-download"]["local"] is None and rows["test-download"]["url"] == downloadable.url
    assert [s.name for s in model_statuses()] == sorted(rows)


def test_help_has_examples() -> None:
    result = CliRunner().invoke(cli, ["models", "--help"])
    assert result.exit_code == 0 and "pconv-kit models --json" in result.output
    fill_help = "".join(CliRunner().invoke(cli, ["fill", "--help"]).output.split())  # Click wraps at hyphens too
    assert "`pconv-kitmodels`" in fill_help


def test_a_narrow_terminal_gets_one_block_per_model_with_nothing_cut(downloadable: ModelEntry) -> None:
    result = CliRunner().invoke(cli, ["models"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line.rstrip()) for line in result.output.splitlines()) <= 80
    text = " ".join(result.output.split())
    for status in model_statuses():
        assert status.name in text and " ".join(status.description.split()) in text, status.name
    assert "pconv-photos-small (default) built in;" in text and "test-download download; not yet downloaded" in text
