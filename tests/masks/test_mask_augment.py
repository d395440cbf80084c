"""Mask augmentation (augment_mask / MaskAugment / fit_mask) and MaskFolder."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pconv_kit.errors import ImageReadError, InputValueError
from pconv_kit.io import write_image, write_mask
from pconv_kit.masks import MaskAugment, MaskFolder, MaskGenerator, augment_mask, fit_mask

NO_AUG = {"max_dilation": 0.0, "max_rotation": 0.0, "max_translation": 0.0, "crop_scale": (1.0, 1.0), "flip": False}


def random_mask(h: int, w: int, seed: int = 0) -> np.ndarray:
    return MaskGenerator(h, w, min_units=3, max_units=6, seed=seed)()


@given(
    seed=st.integers(0, 2**32 - 1),
    src=st.tuples(st.integers(8, 80), st.integers(8, 80)),
    out=st.tuples(st.integers(1, 64), st.integers(1, 64)),
)
def test_output_is_binary_float32_of_the_requested_size(
    seed: int, src: tuple[int, int], out: tuple[int, int]
) -> None:
    mask = random_mask(*src, seed=seed % 1000)
    result = augment_mask(mask, *out, np.random.default_rng(seed))
    assert result.shape == out
    assert result.dtype == np.float32
    assert set(np.unique(result).tolist()) <= {0.0, 1.0}


def test_seeded_augmentation_is_reproducible_and_seeds_differ() -> None:
    mask = random_mask(96, 96)
    a = augment_mask(mask, 64, 64, np.random.default_rng(1))
    b = augment_mask(mask, 64, 64, np.random.default_rng(1))
    c = augment_mask(mask, 64, 64, np.random.default_rng(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_everything_disabled_is_the_identity_at_the_same_size() -> None:
    mask = random_mask(40, 56)
    out = augment_mask(mask, 40, 56, np.random.default_rng(0), **NO_AUG)
    np.testing.assert_array_equal(out, mask)


def test_dilation_only_grows_holes() -> None:
    mask = random_mask(64, 64)
    grown = 0
    for seed in range(10):
        out = augment_mask(mask, 64, 64, np.random.default_rng(seed), **{**NO_AUG, "max_dilation": 0.1})
        assert np.all(out[mask == 0] == 0), "every hole stays a hole"
        grown += int((out == 0).sum() > (mask == 0).sum())
    assert grown >= 5


def test_dilation_radius_is_bounded() -> None:
    mask = np.ones((65, 65), np.float32)
    mask[32, 32] = 0  # one hole pixel in the centre
    for seed in range(10):
        out = augment_mask(mask, 65, 65, np.random.default_rng(seed), **{**NO_AUG, "max_dilation": 0.1})
        ys, xs = np.nonzero(out == 0)
        radius = np.sqrt((ys - 32) ** 2 + (xs - 32) ** 2).max()
        assert radius <= round(0.1 * 65) + 0.5


def test_flips_only_give_one_of_the_four_flips() -> None:
    mask = random_mask(30, 50)
    flips = [mask, mask[:, ::-1], mask[::-1], mask[::-1, ::-1]]
    seen = set()
    for seed in range(16):
        out = augment_mask(mask, 30, 50, np.random.default_rng(seed), **{**NO_AUG, "flip": True})
        matches = [i for i, f in enumerate(flips) if np.array_equal(out, f)]
        assert matches
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_rotation_keeps_a_centred_disc() -> None:
    yy, xx = np.mgrid[:101, :101]
    mask = ((yy - 50) ** 2 + (xx - 50) ** 2 > 20**2).astype(np.float32)
    out = augment_mask(mask, 101, 101, np.random.default_rng(3), **{**NO_AUG, "max_rotation": 180.0})
    holes_in, holes_out = mask == 0, out == 0
    iou = (holes_in & holes_out).sum() / (holes_in | holes_out).sum()
    assert iou > 0.97


def test_translation_moves_holes_without_growing_them() -> None:
    mask = np.ones((64, 64), np.float32)
    mask[28:36, 28:36] = 0
    out = augment_mask(mask, 64, 64, np.random.default_rng(4), **{**NO_AUG, "max_translation": 0.2})
    assert 0 < (out == 0).sum() <= 64
    assert not np.array_equal(out, mask)


def test_half_scale_crop_is_upsampled_by_two_with_nearest_neighbour() -> None:
    mask = random_mask(80, 80, seed=5)
    for seed in range(5):
        out = augment_mask(mask, 80, 80, np.random.default_rng(seed), **{**NO_AUG, "crop_scale": (0.5, 0.5)})
        # every source pixel became a 2x2 block, and the 40x40 crop is a window of the source
        np.testing.assert_array_equal(out, np.repeat(np.repeat(out[::2, ::2], 2, 0), 2, 1))
        small = out[::2, ::2]
        windows = np.lib.stride_tricks.sliding_window_view(mask, (40, 40))
        assert np.any(np.all(windows == small, axis=(2, 3)))


def test_fit_mask_centre_crops_to_the_aspect_ratio() -> None:
    mask = np.ones((100, 50), np.float32)
    mask[:25] = 0  # the top quarter is a hole; a centred square crop of rows 25..75 has none
    np.testing.assert_array_equal(fit_mask(mask, 10, 10), np.ones((10, 10), np.float32))
    np.testing.assert_array_equal(fit_mask(mask, 100, 50), mask)
    assert fit_mask(mask, 7, 3).shape == (7, 3)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"max_dilation": -0.1}, "max_dilation must be a finite number >= 0"),
        ({"max_rotation": float("nan")}, "max_rotation must be a finite number >= 0"),
        ({"crop_scale": (0.0, 1.0)}, "crop_scale must satisfy 0 < lo <= hi <= 1"),
        ({"crop_scale": (0.8, 0.5)}, "crop_scale must satisfy"),
    ],
)
def test_invalid_augmentation_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValueError, match=match):
        MaskAugment(**kwargs)
    with pytest.raises(InputValueError, match=match):
        augment_mask(np.ones((8, 8)), 8, 8, **kwargs)


def test_invalid_mask_and_size() -> None:
    with pytest.raises(InputValueError, match=r"non-empty \(H, W\) array"):
        augment_mask(np.ones((2, 8, 8)), 8, 8)
    with pytest.raises(InputValueError, match="height must be a positive integer"):
        augment_mask(np.ones((8, 8)), 0, 8)


# ------------------------------------------------------------------------------------------ MaskFolder
def make_folder(root: Path, convention: str = "hole-white", n: int = 4, size=(48, 64)) -> list[np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    masks = [random_mask(*size, seed=i) for i in range(n)]
    for i, m in enumerate(masks):
        write_mask(root / f"m{i}.png", m, convention)
    return masks


@pytest.mark.parametrize("convention", ["hole-white", "valid-white"])
def test_folder_reads_masks_with_the_file_convention(tmp_path: Path, convention: str) -> None:
    masks = make_folder(tmp_path, convention)
    folder = MaskFolder(tmp_path, 48, 64, mask_convention=convention, augment=False, seed=0)
    assert len(folder) == 4
    for i, m in enumerate(masks):
        np.testing.assert_array_equal(folder.load(i), m)
    for _ in range(8):  # without augmentation every draw is one of the files
        out = folder()
        assert any(np.array_equal(out, m) for m in masks)
    # reading with the wrong convention inverts the masks
    wrong = "valid-white" if convention == "hole-white" else "hole-white"
    np.testing.assert_array_equal(MaskFolder(tmp_path, 48, 64, mask_convention=wrong).load(0), 1 - masks[0])


def test_folder_augments_to_the_requested_size_and_is_seeded(tmp_path: Path) -> None:
    make_folder(tmp_path)
    a = MaskFolder(tmp_path, 32, 40, seed=3).sample(5)
    b = MaskFolder(tmp_path, 32, 40, seed=3).sample(5)
    assert a.shape == (5, 32, 40) and a.dtype == np.float32
    assert set(np.unique(a).tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(a, b)
    c = MaskFolder(tmp_path, 32, 40, seed=3, augment=MaskAugment(max_rotation=0.0)).sample(5)
    assert not np.array_equal(a, c)
    folder = MaskFolder(tmp_path, 32, 40, seed=0)
    np.testing.assert_array_equal(folder(np.random.default_rng(9)), folder(np.random.default_rng(9)))


def test_folder_cache_gives_the_same_masks(tmp_path: Path) -> None:
    make_folder(tmp_path)
    plain = MaskFolder(tmp_path, 48, 64, seed=1)
    cached = MaskFolder(tmp_path, 48, 64, seed=1, cache=True)
    for i in range(len(plain)):
        np.testing.assert_array_equal(cached.load(i), plain.load(i))
    np.testing.assert_array_equal(cached.sample(3), plain.sample(3))


def test_folder_recursive_and_hidden_files(tmp_path: Path) -> None:
    make_folder(tmp_path, n=2)
    make_folder(tmp_path / "sub", n=1)
    write_mask(tmp_path / ".hidden.png", np.ones((8, 8)))
    (tmp_path / "notes.txt").write_text("not a mask")
    assert len(MaskFolder(tmp_path, 16, 16)) == 3
    assert len(MaskFolder(tmp_path, 16, 16, recursive=False)) == 2


def test_folder_rejects_a_folder_without_masks(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no masks here")
    with pytest.raises(InputValueError, match="no mask files found"):
        MaskFolder(tmp_path, 16, 16)
    with pytest.raises(InputValueError, match="does not exist"):
        MaskFolder(tmp_path / "missing", 16, 16)


def test_folder_names_an_unreadable_file_at_construction(tmp_path: Path) -> None:
    make_folder(tmp_path, n=2)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # never skipped with a warning: it is an error
        with pytest.raises(ImageReadError, match="broken.png"):
            MaskFolder(tmp_path, 16, 16)


def test_folder_without_validation_fails_when_the_bad_file_is_drawn(tmp_path: Path) -> None:
    (tmp_path / "only.png").write_bytes(b"garbage")
    folder = MaskFolder(tmp_path, 16, 16, validate=False)
    with pytest.raises(ImageReadError, match="only.png"):
        folder()


def test_folder_accepts_non_binary_and_colour_mask_files(tmp_path: Path) -> None:
    pixels = np.zeros((20, 20, 3), np.uint8)
    pixels[5:10, 5:10] = (200, 30, 30)  # a red stroke: hole in hole-white
    pixels[12:15, 12:15] = (100, 100, 100)  # darker than 50%: not a hole
    write_image(tmp_path / "c.png", pixels)
    mask = MaskFolder(tmp_path, 20, 20, augment=False).load(0)
    assert (mask[5:10, 5:10] == 0).all()
    assert mask.sum() == 400 - 25


def test_folder_argument_checks(tmp_path: Path) -> None:
    make_folder(tmp_path, n=1)
    with pytest.raises(InputValueError, match="mask_convention must be one of"):
        MaskFolder(tmp_path, 16, 16, mask_convention="white-hole")
    with pytest.raises(InputValueError, match="width must be a positive integer"):
        MaskFolder(tmp_path, 16, 0)
    with pytest.raises(InputValueError, match="augment must be"):
        MaskFolder(tmp_path, 16, 16, augment="yes")  # type: ignore[arg-type]
