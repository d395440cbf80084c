"""Tests of the ``pconv-kit fill`` command (Click layer: options, exit codes, report, output)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pconv_kit.inpaint import inpaint
from pconv_kit.io import read_image, read_mask, write_image, write_mask
from pconv_kit.models import PConvUNet, save_model
from pconv_kit_cli.main import cli


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    save_model(PConvUNet(layer_size=3, base_channels=8), tmp_path / "model.safetensors")
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(src / f"img{i}.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    valid = np.ones((24, 32), np.float32)
    valid[5:15, 8:20] = 0
    write_mask(tmp_path / "mask.png", valid)
    return tmp_path


def invoke(*args: str | Path) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_fill_writes_outputs_and_report(workspace: Path) -> None:
    result = invoke(
        "fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png",
        "--model", workspace / "model.safetensors", "--device", "cpu", "--report", workspace / "r.json",
        "--workers", "1", "--batch-size", "2",
    )
    assert result.exit_code == 0, result.output
    assert "done" in result.output and "3" in result.output
    # the headline is one line, not wrapped at the narrower table's width
    assert re.search(r"^pconv-kit fill: 3 done in \d+\.\d s \(\d+\.\d\d images/s\)$", result.output, re.M), result.output
    assert sorted(p.name for p in (workspace / "out").iterdir()) == ["img0.png", "img1.png", "img2.png"]
    report = json.loads((workspace / "r.json").read_text())
    assert report["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    assert [f["file"] for f in report["files"]] == ["img0.png", "img1.png", "img2.png"]
    assert all(f["mask"] == "--mask mask.png" and f["hole_ratio"] > 0 for f in report["files"])
    # second run resumes: everything skipped, exit 0
    again = invoke("fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png",
                   "--model", workspace / "model.safetensors")
    assert again.exit_code == 0 and "output exists (3)" in again.output


def test_partial_failure_exits_1(workspace: Path) -> None:
    (workspace / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    result = invoke("fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png",
                    "--model", workspace / "model.safetensors", "--report", workspace / "r.json")
    assert result.exit_code == 1
    assert "broken.jpg" in result.output and "unreadable image (1)" in result.output
    report = json.loads((workspace / "r.json").read_text())
    assert report["counts"] == {"done": 3, "skipped": 0, "failed": 1}
    assert len(list((workspace / "out").iterdir())) == 3


def test_missing_masks_listed_one_line_each(workspace: Path) -> None:
    result = invoke("fill", workspace / "in", workspace / "out", "--model", workspace / "model.safetensors")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.startswith("failed ")]
    assert len(lines) == 3 and all("no mask found" in line for line in lines)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--model", "nope"), "registered"),
        (("--shard", "2/2"), "0 <= I < N"),
        (("--shard", "x"), "I/N"),
        (("--format", "gif"), "gif"),
        (("--quality", "0"), "quality"),
        (("--masks", "."), "not both"),
        (("--tta", "3"), "'3' is not one of '1', '2', '4'"),
    ],
)
def test_bad_arguments_exit_2(workspace: Path, extra: tuple[str, ...], message: str) -> None:
    args = ["fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png", *extra]
    if "--model" not in extra:
        args += ["--model", workspace / "model.safetensors"]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_same_folder_needs_overwrite(workspace: Path) -> None:
    result = invoke("fill", workspace / "in", workspace / "in", "--mask", workspace / "mask.png",
                    "--model", workspace / "model.safetensors")
    assert result.exit_code == 2 and "set overwrite" in result.output and "(--overwrite)" in result.output
    before = read_image(workspace / "in" / "img0.png")
    result = invoke("fill", workspace / "in", workspace / "in", "--mask", workspace / "mask.png",
                    "--model", workspace / "model.safetensors", "--overwrite")
    assert result.exit_code == 0
    assert not np.array_equal(read_image(workspace / "in" / "img0.png"), before)


def test_options_reach_the_job(workspace: Path) -> None:
    result = invoke(
        "fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png", "--model",
        workspace / "model.safetensors", "--format", "jpg", "--quality", "80", "--concat", "--shard", "1/2",
        "--strategy", "crop", "--mask-convention", "valid-white",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (workspace / "out").iterdir()) == ["concat", "img1.jpg"]
    assert read_image(workspace / "out" / "concat" / "img1.jpg").shape == (24, 96, 3)


def test_tta_reaches_the_model(workspace: Path) -> None:
    model = workspace / "model.safetensors"
    result = invoke("fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png", "--model", model,
                    "--tta", "4")
    assert result.exit_code == 0, result.output
    image = read_image(workspace / "in" / "img0.png")
    valid = read_mask(workspace / "mask.png", "hole-white") > 0.5
    got = read_image(workspace / "out" / "img0.png")
    with_tta = inpaint(image, valid, str(model), tta=4)
    assert np.abs(got.astype(int) - with_tta.astype(int)).max() <= 1
    assert not np.array_equal(with_tta, inpaint(image, valid, str(model)))


def test_torchrun_env_gives_each_rank_a_report(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = invoke("fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png",
                    "--model", workspace / "model.safetensors", "--report", workspace / "r.json")
    assert result.exit_code == 0, result.output
    report = json.loads((workspace / "r.rank1.json").read_text())
    assert report["shard"] == [1, 2] and [f["file"] for f in report["files"]] == ["img1.png"]


def test_help_has_examples() -> None:
    result = invoke("fill", "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--mask-convention" in result.output and "hole-white" in result.output


def test_empty_folder(workspace: Path) -> None:
    (workspace / "empty").mkdir()
    result = invoke("fill", workspace / "empty", workspace / "out", "--model", workspace / "model.safetensors")
    assert result.exit_code == 0 and "no images found" in result.output


def test_plain_progress_lines_without_a_terminal(workspace: Path) -> None:
    """CliRunner is not a terminal: no bar, but a plain progress line (here only the final one)."""
    result = invoke("fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png",
                    "--model", workspace / "model.safetensors", "--device", "cpu")
    assert result.exit_code == 0
    assert re.search(r"^filled 3/3 \(\d+\.\d images/s\)$", result.output, re.M), result.output
    quiet = invoke("fill", workspace / "in", workspace / "out2", "--mask", workspace / "mask.png",
                   "--model", workspace / "model.safetensors", "--device", "cpu", "--quiet")
    assert "filled 3/3" not in quiet.output


def test_plain_progress_rate_limit_and_eta() -> None:
    import io

    from rich.console import Console

    from pconv_kit_cli.commands.fill import _PlainProgress

    now = [0.0]
    buffer = io.StringIO()
    plain = _PlainProgress(Console(file=buffer, width=200), interval=10.0, clock=lambda: now[0])
    plain.total = 100
    for _ in range(50):  # 50 images in 25 s: 2 images/s, a line every 10 s
        now[0] += 0.5
        plain.advance()
    lines = buffer.getvalue().splitlines()
    assert lines == ["filled 20/100 (2.0 images/s, ETA 40s)", "filled 40/100 (2.0 images/s, ETA 30s)"]
    for _ in range(50):
        now[0] += 2.0  # slower: the rate falls, the last image always gets a line
        plain.advance()
    assert buffer.getvalue().splitlines()[-1].startswith("filled 100/100 (")


@pytest.mark.slow
def test_ctrl_c_exits_130_with_counts_and_a_rerun_resumes(tmp_path: Path) -> None:
    """A real SIGINT to a running fill: exit 130, what was done, no partial file; the same command finishes."""
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    count = 120  # about 7 s of work on 2 cores: room for the signal to land mid-run on a loaded machine
    for i in range(count):
        write_image(src / f"img{i:03d}.png", rng.integers(0, 256, (128, 256, 3), dtype=np.uint8))
    valid = np.ones((128, 256), np.float32)
    valid[20:100, 60:180] = 0
    write_mask(tmp_path / "mask.png", valid)
    for attempt in range(3):  # a run that finished before the signal landed lost the race: try again, then fail
        out = tmp_path / f"out{attempt}"
        command = [sys.executable, "-m", "pconv_kit_cli", "fill", str(src), str(out), "--mask",
                   str(tmp_path / "mask.png"), "--device", "cpu", "--batch-size", "1", "--workers", "1"]
        # the default SIGINT action in the child: a shell's background job ('pytest &') ignores SIGINT, and a
        # child inherits that, so the signal would never land
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (out.is_dir() and any(out.glob("img*.png"))):
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
        if proc.returncode != 0:
            break
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr and "Aborted" not in stdout + stderr
    match = re.search(r"interrupted \((\d+) done, 0 skipped, 0 failed\); run the same command again to resume", stdout)
    assert match, stdout + stderr
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == int(match.group(1)) and 0 < len(written) < count
    assert all(read_image(out / name).shape == (128, 256, 3) for name in written), "no partial file"
    again = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(list(out.glob("*.png"))) == count and f"output exists ({len(written)})" in again.stdout


def test_a_library_error_gets_the_flag_of_its_parameter(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pconv_kit.registry as registry

    monkeypatch.setattr(registry, "_DEFAULT", None)  # no default model: the error names the parameter `model`
    result = invoke("fill", workspace / "in", workspace / "out", "--mask", workspace / "mask.png", "--device", "cpu")
    assert result.exit_code == 2
    assert "pass weights explicitly as model" in result.output and "(--model)" in result.output
