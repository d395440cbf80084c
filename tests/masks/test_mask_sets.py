"""Tests of pconv_kit.masks.sets: write_mask_set, the library behind `pconv-kit masks` (no CLI involved)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pconv_kit.errors import InputValueError
from pconv_kit.io import read_image, read_mask, write_image
from pconv_kit.masks.sets import MaskSetOptions, paint_holes, write_mask_set


def test_numbered_set_is_reproducible_and_in_the_convention(tmp_path: Path) -> None:
    opts = MaskSetOptions(kind="boxes", hole_ratio=(0.1, 0.3), seed=3)
    a = write_mask_set(tmp_path / "a", num=3, size=(40, 56), options=opts)
    b = write_mask_set(tmp_path / "b", num=3, size=(40, 56), options=opts, mask_convention="valid-white")
    assert [p.name for p in a.masks] == ["mask_00000.png", "mask_00001.png", "mask_00002.png"] and a.total == 3
    for pa, pb in zip(a.masks, b.masks):
        valid = read_mask(pa)
        assert valid.shape == (40, 56) and 0.1 <= 1 - valid.mean() <= 0.3
        np.testing.assert_array_equal(valid, read_mask(pb, "valid-white"))  # same masks, the other polarity
        assert not np.array_equal(read_image(pa), read_image(pb))


def test_per_image_masks_fit_their_images_and_a_bad_image_fails_alone(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    write_image(photos / "wide.png", np.full((30, 70, 3), 80, np.uint8))
    write_image(photos / "tall.png", np.full((64, 32, 4), 80, np.uint8))
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    failed: list[str] = []
    report = write_mask_set(tmp_path / "m", images=photos, masked_out=tmp_path / "painted",
                            options=MaskSetOptions(seed=0), on_failure=failed.append)
    assert report.total == 3 and len(report.failures) == 1 and failed == report.failures
    assert "broken.jpg" in failed[0]
    assert read_mask(tmp_path / "m" / "wide.png").shape == (30, 70)
    assert read_mask(tmp_path / "m" / "tall.png").shape == (64, 32)
    painted = read_image(tmp_path / "painted" / "tall.png")
    holes = read_mask(tmp_path / "m" / "tall.png") < 0.5
    assert (painted[holes][:, :3] == 255).all() and (painted[~holes][:, :3] == 80).all()
    assert (painted[..., 3] == 80).all()  # alpha kept


@pytest.mark.parametrize(
    "kwargs,param",
    [
        ({"num": -1}, "num"),
        ({}, "num"),
        ({"num": 2, "size": (8, 8)}, "size"),
        ({"num": 2, "masked_out": "x"}, "masked_out"),
        ({"num": 2, "options": MaskSetOptions(min_units=5, max_units=2)}, "min_units"),
        ({"num": 2, "options": MaskSetOptions(weights={"wide": 1.0})}, "weights"),
        ({"num": 2, "options": MaskSetOptions(hole_ratio=(0.6, 0.2))}, "hole_ratio"),
    ],
)
def test_bad_arguments_name_their_parameter_and_write_nothing(tmp_path: Path, kwargs: dict, param: str) -> None:
    with pytest.raises(InputValueError) as info:
        write_mask_set(tmp_path / "m", **kwargs)
    assert info.value.param == param and "--" not in str(info.value)
    assert not (tmp_path / "m").exists()


def test_existing_files_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    first = write_mask_set(tmp_path / "m", num=2, size=(32, 32), options=MaskSetOptions(seed=1))
    before = [p.read_bytes() for p in first.masks]
    with pytest.raises(InputValueError, match="already exist") as info:
        write_mask_set(tmp_path / "m", num=3, size=(32, 32), options=MaskSetOptions(seed=2))
    assert info.value.param == "overwrite"
    assert [p.read_bytes() for p in first.masks] == before and not (tmp_path / "m" / "mask_00002.png").exists()


def test_paint_holes_keeps_known_pixels_and_float_images() -> None:
    image = np.random.default_rng(0).random((6, 5, 3)).astype(np.float32)
    valid = np.ones((6, 5), np.float32)
    valid[2:4, 1:3] = 0
    out = paint_holes(image, valid)
    assert (out[valid == 0] == 1.0).all() and np.array_equal(out[valid == 1], image[valid == 1])
    assert out is not image and not (image[valid == 0] == 1.0).all()
