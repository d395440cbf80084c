"""Training with the library API on the CPU: learning, exact resume, outputs, checkpoints, bad inputs."""

from __future__ import annotations

import dataclasses

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pconv_kit.errors import ConfigError, InputValueError
from pconv_kit.io import read_image
from pconv_kit.losses import VGG16Features
from pconv_kit.models import PConvUNet, load_model, read_model_config, save_model
from pconv_kit.train import TrainConfig, evaluate, make_grid, resume_config, train
from pconv_kit.train.checkpoint import load_training_state, save_training_state, state_dict_digest
from pconv_kit.train.data import scan_images, split_files
from pconv_kit.train.display import Reporter
from tests.conftest import copy_photos

TINY = dict(size=32, layer_size=3, base_channels=8, batch_size=4, workers=0, perceptual=False, seed=11, preset="paper")


class Recorder(Reporter):
    """Collects everything the trainer reports."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, str]] = []
        self.train: list[dict[str, Any]] = []
        self.val: list[dict[str, Any]] = []
        self.advanced: list[int] = []
        self.closed = False
        self.description = ""

    def start(self, start_step: int, steps: int, description: str = "") -> None:
        self.description = description

    def advance(self, step: int) -> None:
        self.advanced.append(step)

    def train_metrics(self, record: dict[str, Any]) -> None:
        self.train.append(record)

    def val_metrics(self, record: dict[str, Any]) -> None:
        self.val.append(record)

    def message(self, text: str, level: str = "info") -> None:
        self.messages.append((level, text))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def photos(tmp_path: Path, photo_paths: list[Path]) -> Path:
    return copy_photos(photo_paths[:5], tmp_path / "photos")


@pytest.fixture(autouse=True)
def _one_thread():
    """Bitwise comparisons need the same thread count in every run of a test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(run: Path, name: str = "last.safetensors") -> dict[str, torch.Tensor]:
    return load_model(run / name).state_dict()


def test_tiny_model_learns_from_photos(tmp_path: Path, photos: Path) -> None:
    rec = Recorder()
    cfg = TrainConfig(
        images=str(photos), out=str(tmp_path / "run"), steps=40, log_every=5, val_every=10, checkpoint_every=20,
        lr=2e-3, **{**TINY, "size": 48, "layer_size": 4},
    )
    summary = train(cfg, reporter=rec)
    assert summary.final_step == 40 and not summary.interrupted
    run = tmp_path / "run"
    # the hole L1 on the fixed validation images and masks goes down
    assert len(rec.val) == 4
    assert rec.val[-1]["hole_l1"] < 0.9 * rec.val[0]["hole_l1"], rec.val
    # so does the training hole term (averaged over 5-step windows)
    first, last = np.mean([r["hole"] for r in rec.train[:2]]), np.mean([r["hole"] for r in rec.train[-2:]])
    assert last < first, rec.train
    # metrics.jsonl: one line per log and per validation, every loss term, lr and throughput
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if x["split"] == "train"]
    assert [x["step"] for x in train_lines] == list(range(5, 41, 5))
    for key in ("total", "valid", "hole", "tv", "grad_norm", "lr", "it_per_s", "images_per_s"):
        assert all(np.isfinite(x[key]) for x in train_lines), key
    assert train_lines[0]["lr"] == 2e-3
    val_lines = [x for x in lines if x["split"] == "val"]
    assert [x["step"] for x in val_lines] == [10, 20, 30, 40]
    assert all(0 < x["psnr"] < 100 and 0 < x["ssim"] <= 1 for x in val_lines)
    # a sample grid per validation: 1 held-out image x (masked | output | composite | truth)
    grid = read_image(run / "samples" / "step_0000040.png")
    n_val = len(split_files(photos, scan_images(photos), cfg.val_fraction).val)
    assert n_val >= 1 and grid.shape == (48 * n_val + 2 * (n_val - 1), 4 * 48 + 3 * 2, 3)
    # config.toml is the config as used, with everything resolved
    used = TrainConfig.from_toml(run / "config.toml")
    assert used == cfg.with_preset("cpu")[0].resolved(refine_channels=0)
    assert (used.loss_tv, used.loss_ssim) == (0.1, 0.0)
    # checkpoints: weights for `fill`, the model config in the metadata and beside the file
    model_cfg, meta = read_model_config(run / "last.safetensors")
    assert (model_cfg["layer_size"], model_cfg["base_channels"]) == (4, 8) and meta["pconv_kit.step"] == "40"
    assert json.loads((run / "last.safetensors.json").read_text())["config"]["layer_size"] == 4
    best = max(val_lines, key=lambda x: x["psnr"])
    assert summary.best_step == best["step"] and read_model_config(run / "best.safetensors")[1]["pconv_kit.step"] == str(best["step"])
    assert isinstance(load_model(run), PConvUNet)  # a run directory works as --model
    # the last weights are the best ones exactly when the last validation was the best: then one file on disk
    assert os.path.samefile(run / "last.safetensors", run / "best.safetensors") == (summary.best_step == 40)
    assert os.path.samefile(run / "last.safetensors.json", run / "best.safetensors.json") == (summary.best_step == 40)
    # the training state loads without pickles and matches the final weights
    state = torch.load(run / "training_state.pt", weights_only=True)
    assert state["step"] == 40 and state["seed"] == 11
    assert state_dict_digest(state["model"]) == state_dict_digest(_weights(run)) == summary.weights_digest
    assert json.loads((run / "summary.json").read_text())["final_step"] == 40
    assert rec.closed and rec.advanced[-1] == 40


def test_resume_is_exact(tmp_path: Path, photos: Path) -> None:
    common = dict(images=str(photos), log_every=2, val_every=3, checkpoint_every=5, **TINY)
    full = train(TrainConfig(out=str(tmp_path / "full"), steps=8, **common), reporter="none")
    half = train(TrainConfig(out=str(tmp_path / "half"), steps=4, **common), reporter="none")
    assert half.final_step == 4 and half.weights_digest != full.weights_digest
    resumed = train(resume_config(tmp_path / "half", steps=8), resume=True, reporter="none")
    assert (resumed.start_step, resumed.final_step) == (4, 8)
    assert resumed.weights_digest == full.weights_digest
    for name in ("last.safetensors", "best.safetensors"):
        a, b = _weights(tmp_path / "full", name), _weights(tmp_path / "half", name)
        assert all(torch.equal(a[k], b[k]) for k in a), name
    sa = load_training_state(tmp_path / "full" / "training_state.pt")
    sb = load_training_state(tmp_path / "half" / "training_state.pt")
    for k, v in sa["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], sb["optimizer"]["state"][k]["exp_avg"])
    assert sa["best_psnr"] == sb["best_psnr"]
    # nothing left to do at the target step
    again = train(resume_config(tmp_path / "half"), resume=True, reporter="none")
    assert again.final_step == again.start_step == 8


def test_workers_and_resume_from_any_checkpoint(tmp_path: Path, photos: Path) -> None:
    common = dict(images=str(photos), log_every=50, val_every=50, **TINY)
    ref = train(TrainConfig(out=str(tmp_path / "ref"), steps=6, checkpoint_every=50, **common), reporter="none")
    two = train(
        TrainConfig(out=str(tmp_path / "two"), steps=6, checkpoint_every=50, **{**common, "workers": 2}), reporter="none"
    )
    assert two.weights_digest == ref.weights_digest  # the worker count changes nothing
    # a run stopped at an odd step (checkpoint written on stop) resumes to the same weights
    train(TrainConfig(out=str(tmp_path / "odd"), steps=3, checkpoint_every=2, **common), reporter="none")
    odd = train(resume_config(tmp_path / "odd", steps=6, workers=2), resume=True, reporter="none")
    assert odd.weights_digest == ref.weights_digest


def test_perceptual_path_with_an_untrained_vgg(tmp_path: Path, photos: Path) -> None:
    rec = Recorder()
    cfg = TrainConfig(
        images=str(photos), out=str(tmp_path / "run"), steps=2, log_every=1, val_every=2, **{**TINY, "perceptual": True}
    )
    train(cfg, feature_extractor=VGG16Features(pretrained=False), reporter=rec)
    for key in ("perceptual", "style_out", "style_comp"):
        assert all(np.isfinite(r[key]) and r[key] > 0 for r in rec.train), key
    with pytest.raises(ConfigError, match="perceptual is false"):
        train(TrainConfig(images=str(photos), out=str(tmp_path / "r2"), steps=1, **TINY),
              feature_extractor=VGG16Features(pretrained=False), reporter="none")


@pytest.mark.parametrize(("key", "term", "upper"), [("loss_ssim", "ssim", 2.0), ("loss_hole_mse", "hole_mse", 1.0)])
def test_optional_loss_terms(tmp_path: Path, photos: Path, key: str, term: str, upper: float) -> None:
    # a term not in the paper, weighted 2: logged unweighted, added to the total, kept in config.toml
    rec = Recorder()
    cfg = TrainConfig(images=str(photos), out=str(tmp_path / "run"), steps=2, log_every=1, val_every=2, **TINY)
    train(dataclasses.replace(cfg, **{key: 2.0}), reporter=rec)
    for r in rec.train:
        assert 0 < r[term] <= upper
        expected = r["valid"] + 6 * r["hole"] + 0.1 * r["tv"] + 2.0 * r[term]
        assert r["total"] == pytest.approx(expected, rel=1e-5)
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(term in x for x in lines if x["split"] == "train")
    assert getattr(TrainConfig.from_toml(tmp_path / "run" / "config.toml"), key) == 2.0


def test_finetune_stage(tmp_path: Path, photos: Path) -> None:
    common = dict(images=str(photos), log_every=1, val_every=10, **TINY)
    train(TrainConfig(out=str(tmp_path / "a"), steps=2, **common), reporter="none")
    before = _weights(tmp_path / "a")
    rec = Recorder()
    train(resume_config(tmp_path / "a", steps=4, finetune=True), resume=True, reporter=rec)
    assert [r["lr"] for r in rec.train] == [5e-5, 5e-5]
    after = _weights(tmp_path / "a")
    bn = [k for k in before if k.startswith("encoder.") and ".bn." in k]
    assert bn and all(torch.equal(before[k], after[k]) for k in bn)  # encoder BatchNorm frozen
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert TrainConfig.from_toml(tmp_path / "a" / "config.toml").finetune
    # a new run that starts from those weights takes the architecture from the file
    cfg = TrainConfig(
        out=str(tmp_path / "b"), steps=1, finetune=True, init_weights=str(tmp_path / "a" / "last.safetensors"),
        **{**common, "layer_size": None, "base_channels": None},
    )
    summary = train(cfg, reporter="none")
    assert summary.final_step == 1
    used = TrainConfig.from_toml(tmp_path / "b" / "config.toml")
    assert (used.layer_size, used.base_channels) == (3, 8)
    with pytest.raises(ConfigError, match="init_weights .* has base_channels = 8"):
        train(TrainConfig(out=str(tmp_path / "c"), steps=1, init_weights=str(tmp_path / "a"),
                          **{**common, "base_channels": 16}), reporter="none")


def test_corrupt_files_are_skipped_with_one_warning_each(tmp_path: Path, photos: Path) -> None:
    for name in ("zz_broken.jpg", "zz_empty.png", "aa_text.webp"):
        (photos / name).write_bytes(b"" if "empty" in name else b"garbage" * 10)
    rec = Recorder()
    cfg = TrainConfig(images=str(photos), out=str(tmp_path / "run"), steps=12, log_every=3, val_every=50, **TINY)
    summary = train(cfg, reporter=rec)
    assert summary.final_step == 12
    warnings = [t for lvl, t in rec.messages if lvl == "warning"]
    for name in ("zz_broken.jpg", "zz_empty.png", "aa_text.webp"):
        assert sum(name in w for w in warnings) == 1, (name, warnings)
    assert sorted(Path(p).name for p in summary.skipped_files) == ["aa_text.webp", "zz_broken.jpg", "zz_empty.png"]


def test_bad_inputs(tmp_path: Path, photos: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputValueError, match="no image files in"):
        train(TrainConfig(images=str(tmp_path / "empty"), out=str(tmp_path / "r1"), **TINY), reporter="none")
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for i in range(3):
        (corrupt / f"{i}.jpg").write_bytes(b"nope")
    with pytest.raises(InputValueError, match="none of the 3 image file"):
        train(TrainConfig(images=str(corrupt), out=str(tmp_path / "r2"), **TINY), reporter="none")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()  # nothing written on bad input
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        train(TrainConfig(images=str(photos), out=str(blocker / "run"), **TINY), reporter="none")
    with pytest.raises(ConfigError, match="out .* is required"):
        train(TrainConfig(images=str(photos), **TINY), reporter="none")
    with pytest.raises(ConfigError, match="divisible by 2 only 1"):
        train(TrainConfig(images=str(photos), out=str(tmp_path / "r3"), **{**TINY, "size": 34, "layer_size": None}),
              reporter="none")
    # an existing run is never overwritten by a fresh start
    train(TrainConfig(images=str(photos), out=str(tmp_path / "done"), steps=1, **TINY), reporter="none")
    with pytest.raises(ConfigError, match="already holds a training run"):
        train(TrainConfig(images=str(photos), out=str(tmp_path / "done"), steps=1, **TINY), reporter="none")
    with pytest.raises(ConfigError, match="cannot resume"):
        train(TrainConfig(images=str(photos), out=str(tmp_path / "fresh"), **TINY), resume=True, reporter="none")
    state = tmp_path / "done" / "training_state.pt"
    state.write_bytes(b"corrupt")
    with pytest.raises(InputValueError, match="not a readable training state"):
        train(resume_config(tmp_path / "done", steps=2), resume=True, reporter="none")


def test_evaluate_and_grid() -> None:
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4)
    x = torch.rand(3, 3, 16, 16)
    m = torch.ones(3, 1, 16, 16)
    m[:, :, 4:12, 4:12] = 0
    metrics, out = evaluate(model, x, m, batch_size=2)
    assert model.training  # the flag is restored
    comp = (m * x + (1 - m) * out).clamp(0, 1)
    mse = ((comp - x) ** 2).mean(dim=(1, 2, 3))
    assert metrics["psnr"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), rel=1e-4)
    holes = (1 - m).expand_as(x)
    assert metrics["hole_l1"] == pytest.approx(float((holes * (out.clamp(0, 1) - x).abs()).sum() / holes.sum()), rel=1e-5)
    assert 0 < metrics["ssim"] <= 1
    perfect, _ = evaluate(model, x, torch.ones(3, 1, 16, 16))
    assert perfect["psnr"] == 100.0 and perfect["ssim"] == pytest.approx(1.0)
    grid = make_grid(x[:2], m[:2], out[:2])
    assert grid.shape == (2 * 16 + 2, 4 * 16 + 6, 3)
    np.testing.assert_array_equal(grid[5, 5], [255, 255, 255])  # holes are white in the masked input
    np.testing.assert_array_equal(grid[0, 3 * 18], (x[0, :, 0, 0] * 255 + 0.5).to(torch.uint8).numpy())


def test_save_model_round_trip_used_by_checkpoints(tmp_path: Path) -> None:
    model = PConvUNet(layer_size=3, base_channels=4)
    save_model(model, tmp_path / "m.safetensors", metadata={"pconv_kit.step": "3"})
    assert state_dict_digest(load_model(tmp_path / "m.safetensors").state_dict()) == state_dict_digest(model.state_dict())
    other = PConvUNet(layer_size=3, base_channels=4)
    assert state_dict_digest(other.state_dict()) != state_dict_digest(model.state_dict())


def test_reporters(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from pconv_kit.train.display import PlainReporter, RichReporter, make_reporter

    record = {"step": 5, "total": 1.5, "hole": 0.25, "valid": 0.125, "tv": 0.5, "lr": 2e-4, "it_per_s": 2.0}
    val = {"step": 5, "psnr": 21.5, "ssim": 0.75, "hole_l1": 0.125, "best": True}
    buf = io.StringIO()
    rich = RichReporter(console=Console(file=buf, force_terminal=True, width=200))
    rich.start(0, 10, "hello")
    rich.advance(5)
    rich.train_metrics(record)
    rich.val_metrics(val)
    rich.message("careful", "warning")
    rich.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buf.getvalue())
    assert "hello" in text and "validation at step 5: PSNR 21.50 dB" in text and "careful" in text
    assert "hole 0.25" in text and "2.00 it/s" in text
    plain_buf = io.StringIO()
    plain = PlainReporter(plain_buf)
    plain.start(0, 10)
    plain.train_metrics(record)
    plain.val_metrics(val)
    plain.message("careful", "warning")
    lines = plain_buf.getvalue().splitlines()
    assert lines[0].startswith("step  5/10  total 1.5  valid 0.125  hole 0.25  tv 0.5  lr 0.0002  2.00 it/s  ETA 0:00:02")
    assert lines[1] == "validation at step 5: PSNR 21.50 dB  SSIM 0.7500  hole L1 0.1250  (best)"
    assert lines[2] == "warning: careful"
    quiet_buf = io.StringIO()
    quiet = PlainReporter(quiet_buf, quiet=True)
    quiet.train_metrics(record)
    quiet.message("careful", "warning")
    assert quiet_buf.getvalue() == "warning: careful\n"
    monkeypatch.setenv("CI", "1")
    assert isinstance(make_reporter("auto"), PlainReporter)
    with pytest.raises(ValueError, match="reporter kind"):
        make_reporter("fancy")


def test_training_with_mask_files(tmp_path: Path, photos: Path) -> None:
    from pconv_kit.io import write_mask

    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(3):
        valid = np.ones((48, 64), np.float32)
        valid[5 + 5 * i : 30, 10 : 40 + 5 * i] = 0
        write_mask(masks / f"m{i}.png", valid, mask_convention="valid-white")
    rec = Recorder()
    cfg = TrainConfig(images=str(photos), out=str(tmp_path / "run"), steps=2, log_every=1, val_every=2,
                      masks=str(masks), mask_convention="valid-white", **TINY)
    summary = train(cfg, reporter=rec)
    assert summary.final_step == 2 and all(r["hole"] > 0 for r in rec.train)
    assert f"mask files from {masks}" in rec.description
    with pytest.raises(InputValueError):
        train(TrainConfig(images=str(photos), out=str(tmp_path / "r2"), masks=str(tmp_path / "none"), **TINY),
              reporter="none")


def test_refinement_added_to_weights_without_one(tmp_path: Path, photos: Path) -> None:
    """init_weights of the paper's network plus refine_channels: the same function at step 0, then the
    refinement trains; the run records it, resumes with it, and a later run takes it from the weights."""
    common = dict(images=str(photos), log_every=1, val_every=10, **TINY)
    train(TrainConfig(out=str(tmp_path / "a"), steps=2, **common), reporter="none")
    cfg = TrainConfig(out=str(tmp_path / "b"), steps=2, init_weights=str(tmp_path / "a" / "last.safetensors"),
                      refine_channels=4, **{**common, "layer_size": None, "base_channels": None})
    rec = Recorder()
    train(cfg, reporter=rec)
    assert "refine_channels=4" in rec.description
    used = TrainConfig.from_toml(tmp_path / "b" / "config.toml")
    assert (used.layer_size, used.base_channels, used.refine_channels) == (3, 8, 4)
    model = load_model(tmp_path / "b" / "last.safetensors")
    assert model.refine_channels == 4 and model.refine[-1].weight.abs().sum() > 0  # trained away from zero
    before = _weights(tmp_path / "a")
    after = _weights(tmp_path / "b")
    assert set(after) - set(before) == {k for k in after if k.startswith("refine.")}
    train(resume_config(tmp_path / "b", steps=3), resume=True, reporter="none")
    assert load_model(tmp_path / "b").refine_channels == 4
    later = TrainConfig(out=str(tmp_path / "c"), steps=1, init_weights=str(tmp_path / "b" / "last.safetensors"),
                        **{**common, "layer_size": None, "base_channels": None})
    train(later, reporter="none")
    assert TrainConfig.from_toml(tmp_path / "c" / "config.toml").refine_channels == 4
    with pytest.raises(ConfigError, match="init_weights .* has refine_channels = 4"):
        train(TrainConfig(out=str(tmp_path / "d"), steps=1, init_weights=str(tmp_path / "b" / "last.safetensors"),
                          refine_channels=2, **{**common, "layer_size": None, "base_channels": None}),
              reporter="none")
    # a run without init_weights builds the refinement from the config
    train(TrainConfig(out=str(tmp_path / "e"), steps=1, refine_channels=3, **common), reporter="none")
    assert load_model(tmp_path / "e").refine_channels == 3


def test_refinement_learning_rate_scale(tmp_path: Path, photos: Path) -> None:
    """refine_lr_scale gives the refinement its own Adam group at a multiple of the stage's learning rate; the
    run resumes exactly with it."""
    common = dict(images=str(photos), log_every=1, val_every=10, **TINY)
    cfg = TrainConfig(out=str(tmp_path / "a"), steps=2, refine_channels=4, refine_lr_scale=10.0, **common)
    from pconv_kit.train.build import param_groups

    groups = param_groups(PConvUNet(layer_size=3, base_channels=8, refine_channels=4), cfg)
    assert len(groups) == 2 and groups[1]["lr_scale"] == 10.0 and len(groups[1]["params"]) == 6
    assert len(param_groups(PConvUNet(layer_size=3, base_channels=8, refine_channels=4),
                            TrainConfig(**{**cfg.to_dict(), "refine_lr_scale": 1.0}))) == 1
    train(cfg, reporter="none")
    state = load_training_state(tmp_path / "a" / "training_state.pt")
    assert [g["lr"] for g in state["optimizer"]["param_groups"]] == pytest.approx([2e-4, 2e-3])
    train(TrainConfig(out=str(tmp_path / "b"), steps=4, refine_channels=4, refine_lr_scale=10.0, **common),
          reporter="none")
    train(resume_config(tmp_path / "a", steps=4), resume=True, reporter="none")
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed == uninterrupted"
    with pytest.raises(ConfigError, match="refine_lr_scale must be > 0"):
        TrainConfig.from_dict({"refine_lr_scale": 0})


def test_last_and_best_weights_share_one_file_when_equal(tmp_path: Path, photos: Path) -> None:
    # one validation, at the step of the checkpoint: last == best, stored once (a hard link)
    run = tmp_path / "run"
    cfg = TrainConfig(images=str(photos), out=str(run), steps=4, val_every=4, checkpoint_every=4, **TINY)
    summary = train(cfg, reporter="none")
    assert summary.best_step == 4
    assert os.path.samefile(run / "last.safetensors", run / "best.safetensors")
    assert (run / "last.safetensors").stat().st_nlink == 2
    # a later checkpoint that is not the best (the state is told of an unbeatable best) replaces last alone:
    # rewriting a name that was a link leaves the other name's weights as they were
    best_before = _weights(run, "best.safetensors")
    state = load_training_state(run / "training_state.pt")
    save_training_state(run / "training_state.pt", {**state, "best_psnr": 1e9})
    resumed = train(resume_config(run, steps=6), resume=True, reporter="none")
    assert resumed.final_step == 6 and resumed.best_step == 4
    assert not os.path.samefile(run / "last.safetensors", run / "best.safetensors")
    assert read_model_config(run / "last.safetensors")[1]["pconv_kit.step"] == "6"
    assert read_model_config(run / "best.safetensors")[1]["pconv_kit.step"] == "4"
    best_after = _weights(run, "best.safetensors")
    assert all(torch.equal(best_before[k], best_after[k]) for k in best_before)
    assert not all(torch.equal(best_before[k], v) for k, v in _weights(run, "last.safetensors").items())
    assert not [p for p in run.iterdir() if ".tmp" in p.name]


def test_keep_every_keeps_the_weights_of_those_steps(tmp_path: Path, photos: Path) -> None:
    run = tmp_path / "run"
    cfg = TrainConfig(images=str(photos), out=str(run), steps=5, val_every=100, checkpoint_every=100, keep_every=2, **TINY)
    train(cfg, reporter="none")
    kept = sorted(p.name for p in (run / "checkpoints").glob("*.safetensors"))
    assert kept == ["step_0000002.safetensors", "step_0000004.safetensors"]  # not step 5, the end
    assert read_model_config(run / "checkpoints" / kept[1])[1]["pconv_kit.step"] == "4"
    assert not all(torch.equal(a, b) for a, b in zip(*(_weights(run, f"checkpoints/{k}").values() for k in kept)))
    # a resumed run may change keep_every; the kept weights of a step equal last.safetensors at that step
    train(resume_config(run, steps=6, keep_every=3), resume=True, reporter="none")
    six = _weights(run, "checkpoints/step_0000006.safetensors")
    assert all(torch.equal(v, _weights(run, "last.safetensors")[k]) for k, v in six.items())


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(tmp_path: Path, photos: Path) -> None:
    # what a kill before the first checkpoint leaves: config.toml and metrics.jsonl, no training state
    common = dict(images=str(photos), steps=4, log_every=1, val_every=2, checkpoint_every=100, **TINY)
    whole = train(TrainConfig(out=str(tmp_path / "whole"), **common), reporter="none")
    run = tmp_path / "cut"
    train(TrainConfig(out=str(run), **common), reporter="none")
    for name in ("training_state.pt", "last.safetensors", "last.safetensors.json", "summary.json"):
        (run / name).unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="already holds a training run"):  # a fresh start still never overwrites
        train(TrainConfig(out=str(run), **common), reporter="none")
    rec = Recorder()
    again = train(resume_config(run), resume=True, reporter=rec)
    assert (again.start_step, again.final_step) == (0, 4)
    assert any(level == "warning" and "starts again from step 0" in text for level, text in rec.messages), rec.messages
    assert again.weights_digest == whole.weights_digest  # the same run, from its saved config and seed
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [json.loads(x)["step"] for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]


def test_stale_temp_files_are_removed_from_the_run_folders(tmp_path: Path) -> None:
    from pconv_kit.train.rundir import remove_stale_temp_files

    run = tmp_path / "run"
    for folder in (run, run / "samples", run / "checkpoints"):
        folder.mkdir(parents=True)
    left = [run / ".last.0a1b2c3d.tmp.safetensors", run / "samples" / ".step_0000010.0a1b2c3d.tmp.png",
            run / "checkpoints" / ".step_0000010.0a1b2c3d.tmp.safetensors",
            run / "checkpoints" / ".step_0000010.safetensors.0a1b2c3d.tmp.json"]
    kept = [run / "checkpoints" / "step_0000010.safetensors", run / "notes.tmp.txt", run / ".mine.0a1b2c3d.tmp.txt"]
    for path in left + kept:
        path.write_text("x")
    remove_stale_temp_files(run)
    assert [p.exists() for p in left] == [False] * len(left)
    assert [p.exists() for p in kept] == [True] * len(kept)
