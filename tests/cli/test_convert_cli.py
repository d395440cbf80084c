"""Tests of ``pconv-kit convert`` (click.testing.CliRunner)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from tests.convert.test_convert import keras_layers, mmagic_state, naoto_state, write_keras_h5

from pconv_kit.models import load_model, read_model_config
from pconv_kit_cli.main import cli


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_convert_naoto(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "1000000.pth"
    torch.save({"n_iter": 1000000, "model": {k: v.float() for k, v in naoto_state(4).items()}}, src)
    dst = tmp_path / "places2.safetensors"
    result = runner.invoke(cli, ["convert", str(src), str(dst)])
    assert result.exit_code == 0, result.output
    assert "(naoto)" in result.output and "Exact" in result.output and "divisible by 16" in result.output
    assert load_model(dst).config["layer_size"] == 4
    assert (tmp_path / "places2.safetensors.json").is_file()
    # an existing destination is kept unless --overwrite
    before = dst.stat().st_mtime_ns
    again = runner.invoke(cli, ["convert", str(src), str(dst)])
    assert again.exit_code == 2 and "already exists" in again.output and "--overwrite" in again.output
    assert dst.stat().st_mtime_ns == before
    forced = runner.invoke(cli, ["convert", "--overwrite", "--quiet", "--layer-size", "3", str(src), str(dst)])
    assert forced.exit_code == 0 and forced.output == ""
    assert read_model_config(dst)[0]["layer_size"] == 3


def test_convert_mmagic_with_options(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "pconv.pth"
    torch.save({"meta": {"iter": 1}, "state_dict": {k: v.float() for k, v in mmagic_state(3, 4).items()}}, src)
    result = runner.invoke(cli, ["convert", "--source", "mmagic", "--channel-order", "rgb", str(src), str(tmp_path / "m.safetensors")])
    assert result.exit_code == 0, result.output
    assert "(mmagic)" in result.output and "Unused entries in the source file: 1" in result.output
    wrong = runner.invoke(cli, ["convert", "--source", "naoto", str(src), str(tmp_path / "n.safetensors")])
    assert wrong.exit_code == 2 and "naoto0804's key layout" in wrong.output
    assert not (tmp_path / "n.safetensors").exists()


def test_convert_keras_warns(runner: CliRunner, tmp_path: Path) -> None:
    src = tmp_path / "weights.h5"
    write_keras_h5(src, keras_layers(3, 4))
    result = runner.invoke(cli, ["convert", str(src), str(tmp_path / "k.safetensors")])
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.output and "LeakyReLU" in result.output and "Not exact" in result.output
    assert read_model_config(tmp_path / "k.safetensors")[1]["pconv_kit.convert.exact"] == "false"


def test_convert_bad_inputs_exit_2_without_traceback(runner: CliRunner, tmp_path: Path) -> None:
    unknown = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 7, 7), "fc.weight": torch.zeros(10, 4)}, unknown)
    result = runner.invoke(cli, ["convert", str(unknown), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2
    assert "is in none of the formats pconv_kit.convert reads (naoto, mmagic, keras)" in result.output
    assert "found 2 tensors: conv1.weight, fc.weight" in result.output
    assert "Traceback" not in result.output

    text = tmp_path / "notes.pth"
    text.write_text("hello")
    result = runner.invoke(cli, ["convert", str(text), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2 and "not a PyTorch checkpoint" in result.output

    naoto = tmp_path / "n.pth"
    torch.save(naoto_state(4), naoto)
    result = runner.invoke(cli, ["convert", "--channel-order", "bgr", str(naoto), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2 and "channel_order applies to mmagic" in result.output
    result = runner.invoke(cli, ["convert", str(naoto), str(tmp_path / "out.pth")])
    assert result.exit_code == 2 and ".safetensors" in result.output
    result = runner.invoke(cli, ["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(cli, ["convert", "--source", "caffe", str(naoto), str(tmp_path / "out.safetensors")])
    assert result.exit_code == 2
    assert not (tmp_path / "out.safetensors").exists() and not (tmp_path / "out.pth").exists()


def test_help_lists_examples(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["convert", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "pconv-kit convert" in result.output
    for source in ("auto", "naoto", "mmagic", "keras"):
        assert source in result.output
