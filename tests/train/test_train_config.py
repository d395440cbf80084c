"""TrainConfig: TOML round trip, validation messages, resume rules (no training here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pconv_kit.errors import ConfigError
from pconv_kit.train import RESUME_CHANGEABLE, TrainConfig, load_config, resume_config
from pconv_kit.train.checkpoint import CONFIG_FILE


def test_defaults_are_the_papers() -> None:
    cfg, note = TrainConfig().with_preset("cuda")  # preset auto: the paper's recipe on CUDA
    assert note.startswith("preset paper (auto on CUDA)")
    assert (cfg.lr, cfg.finetune_lr) == (2e-4, 5e-5)
    assert (cfg.loss_valid, cfg.loss_hole, cfg.loss_perceptual, cfg.loss_style, cfg.loss_tv) == (1, 6, 0.05, 120, 0.1)
    assert cfg.loss_ssim == 0  # not in the paper: off unless asked for
    assert cfg.size == 256 and cfg.perceptual and not cfg.finetune and cfg.base_channels == 64
    assert cfg.stage_lr == 2e-4
    assert dataclasses.replace(cfg, finetune=True).stage_lr == 5e-5
    cfg.validate()


def test_toml_round_trip_with_special_characters(tmp_path: Path) -> None:
    cfg = TrainConfig(
        images='pho"tos\\ü', out=str(tmp_path / "r un"), size=64, layer_size=4, base_channels=8,
        crop_scale=(0.25, 0.75), hole_ratio=(0.1, 0.2), seed=7, lr=1e-3, masks="m", perceptual=False,
    )
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml(), encoding="utf-8")
    assert load_config(path) == cfg
    # None values are left out of the file and come back as None
    assert "vgg_weights" not in cfg.to_toml()
    assert TrainConfig.from_toml_string(TrainConfig().to_toml()) == TrainConfig()


def test_every_key_has_help_and_a_toml_form() -> None:
    for f in dataclasses.fields(TrainConfig):
        assert f.metadata["help"], f.name
    text = TrainConfig(images="a", out="b", seed=1, layer_size=7, base_channels=64, masks="m", vgg_weights="v",
                       init_weights="w", mask_weights="wide=1", refine_channels=2, perceptual=True,
                       loss_tv=0.1, loss_ssim=0.0).to_toml()
    for key in TrainConfig.keys():
        assert f"\n{key} = " in text, key


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"stpes": 10}, "unknown config key 'stpes' (did you mean 'steps'?)"),
        ({"zzz_qqq": 1}, "unknown config key 'zzz_qqq'; known keys: images"),
        ({"steps": "10"}, "steps must be an integer; got '10'"),
        ({"steps": True}, "steps must be an integer; got True"),
        ({"steps": 0}, "steps must be >= 1; got 0"),
        ({"lr": 0}, "lr must be > 0; got 0.0"),
        ({"lr": float("nan")}, "lr must be finite"),
        ({"hflip": 1}, "hflip must be true or false; got 1"),
        ({"amp": "fp8"}, "amp must be one of auto, off, bf16, fp16; got 'fp8'"),
        ({"device": "tpu"}, "device must be one of auto, cpu, cuda"),
        ({"hole_ratio": [0.5]}, "hole_ratio must be a list of two numbers"),
        ({"hole_ratio": [0.6, 0.5]}, "hole_ratio must be [lo, hi] with 0 <= lo <= hi <= 1; got [0.6, 0.5]"),
        ({"crop_scale": [0.0, 1.0]}, "crop_scale must satisfy 0 < lo"),
        ({"val_fraction": 0.9}, "val_fraction must be <= 0.5; got 0.9"),
        ({"images": ""}, "images must be a non-empty path string"),
        ({"size": 96, "layer_size": 6}, "size must be a multiple of 2**layer_size = 64"),
        ({"mask_convention": "black"}, "mask_convention must be one of hole-white, valid-white"),
        ({"mask_kind": "stars"}, "mask_kind must be one of units, wide, boxes, blobs, thin, mixed; got 'stars'"),
        ({"mask_weights": "blob=1"}, "mask_weights: unknown mask families in weights: ['blob']"),
        ({"mask_weights": 3}, "mask_weights must be a string like 'wide=0.3,blobs=0.3'; got 3"),
        ({"mask_kind": "wide", "mask_weights": "wide=1"}, "mask_weights apply to mask_kind = mixed only"),
    ],
)
def test_invalid_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(data)
    assert message in str(info.value)


def test_toml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = \n", encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        TrainConfig.from_toml(bad)
    bad.write_text("[model]\nlayer_size = 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[model\] is a table"):
        TrainConfig.from_toml(bad)
    bad.write_text("batch_size = 4\nlearning_rate = 1e-3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown config key 'learning_rate'"):
        TrainConfig.from_toml(bad)
    with pytest.raises(ConfigError, match="cannot read config file"):
        TrainConfig.from_toml(tmp_path / "missing.toml")


def test_hyphenated_keys_and_base() -> None:
    base = TrainConfig(steps=5, batch_size=3)
    cfg = TrainConfig.from_dict({"batch-size": 2}, base=base)
    assert (cfg.steps, cfg.batch_size) == (5, 2)
    assert base.batch_size == 3  # the base is not modified


@given(
    steps=st.integers(1, 10**7),
    batch=st.integers(1, 512),
    lr=st.floats(1e-8, 1.0),
    lo=st.floats(0.0, 1.0),
    width=st.floats(0.0, 1.0),
    hflip=st.booleans(),
)
def test_round_trip_property(steps: int, batch: int, lr: float, lo: float, width: float, hflip: bool) -> None:
    hi = min(1.0, lo + width)
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=lr, hole_ratio=(lo, hi), hflip=hflip)
    assert TrainConfig.from_toml_string(cfg.to_toml()) == cfg


def test_resume_config_rules(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    saved = TrainConfig(images="p", out=str(run), seed=3, layer_size=4, base_channels=8, size=64, steps=100)
    (run / CONFIG_FILE).write_text(saved.to_toml(), encoding="utf-8")
    cfg = resume_config(run, steps=200, workers=0, finetune=True)
    assert (cfg.steps, cfg.workers, cfg.finetune, cfg.seed) == (200, 0, True, 3)
    with pytest.raises(ConfigError, match=r"changed: batch_size \(6 -> 8\), lr"):
        resume_config(run, batch_size=8, lr=1e-3)
    with pytest.raises(ConfigError, match="unknown config key"):
        resume_config(run, stepz=3)
    (run / CONFIG_FILE).write_text(dataclasses.replace(saved, finetune=True).to_toml(), encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot be switched off"):
        resume_config(run, finetune=False)
    with pytest.raises(ConfigError, match="cannot resume .*does not exist"):
        resume_config(tmp_path / "nope")
    assert "steps" in RESUME_CHANGEABLE and "batch_size" not in RESUME_CHANGEABLE


# ------------------------------------------------------------------------------ mask families
def test_generated_masks_default_to_the_mixture_of_families() -> None:
    cfg = TrainConfig()
    assert cfg.mask_kind == "mixed" and cfg.mask_weights is None


@pytest.mark.parametrize(
    "text,expected",
    [
        ('mask_weights = "wide=1,blobs=1"', "wide=0.5,blobs=0.5"),
        ("mask_weights = {wide = 3, boxes = 1}", "wide=0.75,boxes=0.25"),  # a TOML inline table works too
    ],
)
def test_mask_weights_from_toml_are_normalised(text: str, expected: str) -> None:
    cfg = TrainConfig.from_toml_string(text)
    assert cfg.mask_weights == expected
    assert TrainConfig.from_toml_string(cfg.to_toml()) == cfg


def test_a_run_from_before_mask_families_resumes_with_its_units_masks(tmp_path: Path) -> None:
    run = tmp_path / "old_run"
    run.mkdir()
    text = TrainConfig(images="p", out=str(run), seed=1, layer_size=3, base_channels=4).to_toml()
    old = "\n".join(line for line in text.splitlines() if not line.startswith("mask_kind"))
    (run / CONFIG_FILE).write_text(old, encoding="utf-8")
    assert load_config(run).mask_kind == "units"
    assert resume_config(run, steps=10).mask_kind == "units"
    # a run directory written now keeps its own kind, and a plain TOML file gets the default
    (run / CONFIG_FILE).write_text(text, encoding="utf-8")
    assert load_config(run).mask_kind == "mixed"
    (tmp_path / "c.toml").write_text(old, encoding="utf-8")
    assert load_config(tmp_path / "c.toml").mask_kind == "mixed"


def test_presets_fill_only_what_is_unset() -> None:
    cpu, note = TrainConfig().with_preset("cpu")
    assert (cpu.preset, cpu.base_channels, cpu.perceptual, cpu.loss_tv, cpu.loss_ssim) == ("cpu-small", 24, False, 0.5, 10.0)
    assert note == "preset cpu-small (auto on the CPU): base_channels 24, perceptual off, loss_tv 0.5, loss_ssim 10"
    paper, _ = TrainConfig(preset="paper").with_preset("cpu")  # asked for by name: the device does not matter
    assert (paper.base_channels, paper.perceptual) == (64, True)
    mine, note = TrainConfig(preset="cpu-small", perceptual=True, base_channels=32).with_preset("cpu")
    assert (mine.base_channels, mine.perceptual, mine.loss_ssim) == (32, True, 10.0)
    assert note == "preset cpu-small: loss_tv 0.5, loss_ssim 10"
    # base_channels of init_weights win over the preset's
    assert TrainConfig(init_weights="w.safetensors").with_preset("cpu")[0].base_channels is None
    with pytest.raises(ConfigError, match="preset must be one of auto, paper, cpu-small; got 'gpu'"):
        TrainConfig.from_dict({"preset": "gpu"})


def test_a_run_from_before_presets_resumes_with_the_papers_values(tmp_path: Path) -> None:
    run = tmp_path / "old"
    run.mkdir()
    text = TrainConfig(images="p", out=str(run), seed=1, layer_size=3, base_channels=4, perceptual=False).to_toml()
    old = "\n".join(line for line in text.splitlines() if not line.startswith("preset"))
    (run / CONFIG_FILE).write_text(old, encoding="utf-8")  # no preset, no loss_tv, no loss_ssim
    cfg = load_config(run)
    assert (cfg.preset, cfg.perceptual, cfg.loss_tv, cfg.loss_ssim, cfg.base_channels) == ("paper", False, 0.1, 0.0, 4)
