"""``pconv-kit train`` through Click's CliRunner: options, TOML configs, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pconv_kit.io import write_image, write_mask
from pconv_kit.models import load_model
from pconv_kit.train import TrainConfig
from pconv_kit_cli.main import cli
from tests.conftest import copy_photos

TINY = ["--size", "32", "--layer-size", "3", "--base-channels", "8", "--batch-size", "2", "--workers", "0",
        "--no-perceptual", "--seed", "1", "--device", "cpu"]


@pytest.fixture
def photos(tmp_path: Path, photo_paths: list[Path]) -> Path:
    return copy_photos(photo_paths[:4], tmp_path / "photos")


@pytest.fixture(autouse=True)
def _no_vgg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No VGG16 weights anywhere and no network: the perceptual path must fail fast."""
    monkeypatch.setenv("PCONV_KIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PCONV_KIT_OFFLINE", "1")
    monkeypatch.delenv("PCONV_KIT_VGG16_WEIGHTS", raising=False)
    monkeypatch.setenv("CI", "1")  # plain log lines


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["train", *args], catch_exceptions=False)
    return result.exit_code, result.output


def test_help_has_worked_examples() -> None:
    code, out = run("--help")
    assert code == 0
    for text in ("Examples:", "--config train.toml", "--resume runs/places", "--finetune", "torchrun",
                 "--no-perceptual", "--mask-convention", "white = hole", "last.safetensors"):
        assert text in out, text


def test_train_resume_and_fill(tmp_path: Path, photos: Path) -> None:
    out = tmp_path / "run"
    code, text = run("--images", str(photos), "--out", str(out), "--steps", "4", "--log-every", "2",
                     "--val-every", "4", *TINY)
    assert code == 0, text
    assert "step 4/4" in text and "validation at step 4" in text and "done: step 4 of 4" in text
    for name in ("config.toml", "metrics.jsonl", "last.safetensors", "last.safetensors.json", "best.safetensors",
                 "training_state.pt", "summary.json", "samples/step_0000004.png"):
        assert (out / name).is_file(), name
    # go further with --resume and a higher --steps
    code, text = run("--resume", str(out), "--steps", "6", "--log-every", "1")
    assert code == 0, text
    assert "resuming" in text and "step 6/6" in text
    assert TrainConfig.from_toml(out / "config.toml").steps == 6
    assert json.loads((out / "summary.json").read_text())["start_step"] == 4
    code, text = run("--resume", str(out))
    assert code == 0 and "nothing to do" in text
    # the weights work with `pconv-kit fill --model RUN_DIR/last.safetensors`
    images, masks, filled = tmp_path / "in", tmp_path / "masks", tmp_path / "filled"
    images.mkdir()
    masks.mkdir()
    write_image(images / "a.png", np.full((40, 48, 3), 128, np.uint8))
    valid = np.ones((40, 48), np.float32)
    valid[10:20, 10:30] = 0
    write_mask(masks / "a.png", valid)
    result = CliRunner().invoke(cli, ["fill", str(images), str(filled), "--masks", str(masks), "--model",
                                      str(out / "last.safetensors"), "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert any(filled.iterdir())
    assert load_model(out).config["layer_size"] == 3


def test_config_file_and_precedence(tmp_path: Path, photos: Path) -> None:
    toml = tmp_path / "train.toml"
    toml.write_text(f'images = "{photos.as_posix()}"\nsteps = 77\nbatch-size = 2\nhole_ratio = [0.1, 0.2]\n'
                    "perceptual = false\nlr = 1e-3\n", encoding="utf-8")
    code, text = run("--config", str(toml), "--out", str(tmp_path / "r"), "--steps", "5", "--print-config")
    assert code == 0, text
    cfg = TrainConfig.from_toml_string(text)
    assert (cfg.steps, cfg.batch_size, cfg.hole_ratio, cfg.lr, cfg.perceptual) == (5, 2, (0.1, 0.2), 1e-3, False)
    assert cfg.images == photos.as_posix() and cfg.device == "auto"
    assert not (tmp_path / "r").exists()  # --print-config writes nothing
    code, text = run("--config", str(toml), "--out", str(tmp_path / "r"), "--hole-ratio", "0.3", "0.4",
                     "--perceptual", "--print-config")
    cfg = TrainConfig.from_toml_string(text)
    assert cfg.hole_ratio == (0.3, 0.4) and cfg.perceptual


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "steps must be >= 1; got 0 (--steps)"),
        (["--lr", "-1"], "lr must be > 0"),
        (["--hole-ratio", "0.5", "0.1"], "hole_ratio must be [lo, hi]"),
        (["--size", "100"], "use a multiple of 128 for the default 7 layers (e.g. size 128), or of 16 with "
                            "layer_size 4 (e.g. size 112)"),
        (["--size", "100", "--layer-size", "7"], "got size 100: use size 128, or a smaller layer_size"),
        (["--size", "200", "--layer-size", "7"], "got size 200: use size 128 or 256, or a smaller layer_size"),
        (["--amp", "fp16", "--device", "cpu"], "needs a CUDA device; use 'bf16' or 'off' on the CPU (--amp)"),
        (["--size", "100", "--base-channels", "8"], "or of 16 with layer_size 4 (e.g. size 112) (--size)"),
    ],
)
def test_bad_flags_exit_2(tmp_path: Path, photos: Path, args: list[str], message: str) -> None:
    code, text = run("--images", str(photos), "--out", str(tmp_path / "r"), "--no-perceptual", *args)
    assert code == 2, text
    assert message in text and "Traceback" not in text


def test_bad_inputs_exit_2(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, text = run("--images", str(tmp_path / "empty"), "--out", str(tmp_path / "r1"), *TINY)
    assert code == 2 and "no image files in" in text
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (bad / "b.png").write_bytes(b"")
    code, text = run("--images", str(bad), "--out", str(tmp_path / "r2"), *TINY)
    assert code == 2 and "none of the 2 image file(s)" in text
    assert text.count("skipping unreadable image") == 2  # one warning per file, then the error
    toml = tmp_path / "c.toml"
    toml.write_text("stepz = 3\n")
    code, text = run("--config", str(toml), "--images", str(photos), "--out", str(tmp_path / "r3"))
    assert code == 2 and "unknown config key 'stepz' (did you mean 'steps'?)" in text
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code, text = run("--images", str(photos), "--out", str(blocker / "run"), *TINY)
    assert code == 2 and "cannot create the run directory" in text
    code, text = run("--out", str(tmp_path / "r4"))
    assert code == 2 and "missing --images DIR" in text
    code, text = run("--resume", str(tmp_path / "nothing"))
    assert code == 2 and "cannot resume" in text
    code, text = run("--resume", str(tmp_path / "r5"), "--config", str(toml))
    assert code == 2 and "--config cannot be combined with --resume" in text
    assert not any((tmp_path / n).exists() for n in ("r1", "r2", "r3", "r4"))


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root can write to read-only folders")
def test_read_only_run_dir(tmp_path: Path, photos: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, text = run("--images", str(photos), "--out", str(ro / "run"), *TINY)
    finally:
        ro.chmod(0o755)
    assert code == 2 and "cannot write to the run directory" in text


def test_missing_vgg_weights_fail_fast_with_a_hint(tmp_path: Path, photos: Path) -> None:
    """--perceptual asked for explicitly and no VGG16 weights: exit 2 with the ways out."""
    args = [("--perceptual" if a == "--no-perceptual" else a) for a in TINY]
    code, text = run("--images", str(photos), "--out", str(tmp_path / "r"), *args)
    assert code == 2, text
    assert "VGG16" in text and "--vgg-weights" in text and "--no-perceptual" in text
    assert not (tmp_path / "r").exists()
    code, text = run("--images", str(photos), "--out", str(tmp_path / "r"), "--vgg-weights", str(tmp_path / "no.pth"), *args)
    assert code == 2 and "no.pth" in text
    # missing --init-weights is not about VGG: no VGG hint for someone who passed --no-perceptual
    code, text = run("--images", str(photos), "--out", str(tmp_path / "r"), "--init-weights", str(tmp_path / "w.safetensors"),
                     *TINY)
    assert code == 2 and "w.safetensors" in text and "VGG" not in text and "--no-perceptual" not in text


def test_existing_run_and_resume_rules(tmp_path: Path, photos: Path) -> None:
    out = tmp_path / "run"
    assert run("--images", str(photos), "--out", str(out), "--steps", "1", *TINY)[0] == 0
    code, text = run("--images", str(photos), "--out", str(out), "--steps", "2", *TINY)
    assert code == 2 and "already holds a training run" in text and f"pconv-kit train --resume {out}" in text
    assert "resume=True" not in text and text.count("--resume") == 1
    code, text = run("--resume", str(out), "--batch-size", "4")
    assert code == 2 and "batch_size (2 -> 4)" in text
    code, text = run("--resume", str(out), "--out", str(tmp_path / "other"))
    assert code == 2 and "a run is resumed in its own folder" in text


def test_unreadable_files_give_exit_1(tmp_path: Path, photos: Path) -> None:
    (photos / "zz_bad.jpg").write_bytes(b"broken")
    code, text = run("--images", str(photos), "--out", str(tmp_path / "r"), "--steps", "4", *TINY)
    assert code == 1, text
    assert text.count("skipping unreadable image") == 1 and "1 unreadable image file(s) were skipped" in text
    assert (tmp_path / "r" / "last.safetensors").is_file()
    torch.load(tmp_path / "r" / "training_state.pt", weights_only=True)


def test_default_run_on_a_cpu_uses_the_cpu_small_preset(tmp_path: Path, photos: Path) -> None:
    """`pconv-kit train --images photos/ --out runs/a` (plus a short run) works offline on a CPU: the cpu-small
    preset, no VGG16 download; the run records what it used."""
    code, text = run("--images", str(photos), "--out", str(tmp_path / "a"), "--steps", "2", "--size", "128",
                     "--workers", "0", "--device", "cpu", "--batch-size", "2")
    assert code == 0, text
    assert "preset cpu-small (auto on the CPU): base_channels 24, perceptual off, loss_tv 0.5, loss_ssim 10" in text
    used = TrainConfig.from_toml(tmp_path / "a" / "config.toml")
    assert (used.preset, used.base_channels, used.perceptual, used.loss_tv, used.loss_ssim) == ("cpu-small", 24, False, 0.5, 10.0)
    assert load_model(tmp_path / "a").base_channels == 24


def test_paper_preset_without_vgg_weights_trains_without_them_and_says_so(tmp_path: Path, photos: Path) -> None:
    args = [a for a in TINY if a != "--no-perceptual"]
    code, text = run("--images", str(photos), "--out", str(tmp_path / "p"), "--steps", "1", "--preset", "paper", *args)
    assert code == 0, text
    assert text.count("perceptual and style terms off: no VGG16 ImageNet weights") == 1
    used = TrainConfig.from_toml(tmp_path / "p" / "config.toml")
    assert used.preset == "paper" and used.perceptual is False and used.loss_tv == 0.1 and used.loss_ssim == 0.0
    assert used.base_channels == 8  # given explicitly: the preset does not override it
    # --print-config shows what the preset resolves to
    code, text = run("--images", str(photos), "--out", str(tmp_path / "x"), "--preset", "paper", "--device", "cpu",
                     "--print-config")
    assert code == 0 and "base_channels = 64" in text and "perceptual = true" in text
