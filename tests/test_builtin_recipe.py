"""The recipe of the built-in model (tools/builtin_model/): its configs load, the evaluation set is built as the
model card says, and the card's table is computed from an eval report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pconv_kit.io import read_image, read_mask, write_image
from pconv_kit.train import load_config

TOOLS = Path(__file__).resolve().parents[1] / "tools" / "builtin_model"
sys.path.insert(0, str(TOOLS))

import card_table  # noqa: E402
import make_eval_set  # noqa: E402


@pytest.mark.parametrize("name", sorted(p.name for p in TOOLS.glob("*.toml")))
def test_training_configs_load(name: str) -> None:
    cfg = load_config(TOOLS / name)
    assert (cfg.layer_size, cfg.base_channels) == (7, 24)  # every stage trains the same network
    assert not cfg.perceptual and cfg.size % 2**cfg.layer_size == 0


def test_make_eval_set(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for stem in (*make_eval_set.HELD_OUT, "train_a", "train_b"):
        write_image(photos / f"{stem}.png", rng.integers(0, 256, (300, 420, 3), dtype=np.uint8))
    out = tmp_path / "evalset"
    subprocess.run(
        [sys.executable, str(TOOLS / "make_eval_set.py"), str(photos), str(out), "--train-dir", str(tmp_path / "train")],
        check=True, capture_output=True, text=True,
    )
    images, masks = sorted((out / "images").iterdir()), sorted((out / "masks").iterdir())
    assert len(images) == len(masks) == len(make_eval_set.HELD_OUT) * 2 * len(make_eval_set.BINS)
    assert [p.name for p in images] == [p.name for p in masks]
    for image, mask in zip(images, masks):
        assert read_image(image).shape == (256, 256, 3)
        lo, hi = make_eval_set.BINS[int(image.stem[-1])]
        hole = 1 - read_mask(mask).mean()  # mask files are white = hole
        assert lo <= hole <= hi, (image.name, hole)
    # the training folder links every photo that is not held out, and nothing else
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == ["train_a.png", "train_b.png"]


def test_card_table() -> None:
    def scores(psnr: float, ssim: float) -> dict[str, float]:
        return {"l1": 1.0, "psnr": psnr, "ssim": ssim}

    report = {
        "table": [
            {"bin": "0.01-0.1", "count": 2, "pconv": scores(30, 0.95), "telea": scores(29, 0.96), "ns": scores(29.5, 0.94)},
            {"bin": "0.1-0.2", "count": 0, "pconv": None, "telea": None, "ns": None},
            {"bin": "all", "count": 2, "pconv": scores(30, 0.95), "telea": scores(29, 0.96), "ns": scores(29.5, 0.94)},
        ],
        "pairs": [
            {"bin": "0.01-0.1", "metrics": {"pconv": scores(30, 0.97), "telea": scores(29, 0.96), "ns": scores(29, 0.96)}},
            {"bin": "0.01-0.1", "metrics": {"pconv": scores(30, 0.93), "telea": scores(29, 0.96), "ns": scores(29, 0.92)}},
            {"bin": "0.5-0.6", "metrics": {"pconv": scores(30, 0.93), "telea": scores(29, 0.92), "ns": scores(29, 0.92)}},
        ],
    }
    lines = card_table.table(report, "m").splitlines()
    assert lines[0].startswith("| hole ratio | pairs | m PSNR / SSIM |")
    assert len(lines) == 4  # header, rule, two rows: the empty bin is left out
    assert lines[2] == "| 0.01-0.1 | 2 | 30.00 / 0.9500 | 29.00 / 0.9600 | 29.50 / 0.9400 | +0.50 dB | -0.0100 | 1 |"
    assert lines[3].endswith("| 2 |")  # all pairs: the first and the third
