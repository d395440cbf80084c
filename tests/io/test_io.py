"""pconv_kit.io: image round trips, EXIF orientation, errors, atomic writes and mask conventions."""

from __future__ import annotations

import io as _io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageOps

import pconv_kit.utils.files as files
from pconv_kit.errors import ImageReadError, InputValueError
from pconv_kit.io import (
    IMAGE_EXTENSIONS,
    decode_image,
    decode_mask,
    encode_mask,
    from_float,
    list_images,
    read_image,
    read_mask,
    to_float,
    write_image,
    write_mask,
)


def smooth_image(h: int, w: int, channels: int, dtype: np.dtype, seed: int = 0) -> np.ndarray:
    """A smooth random image (gradients + a blob) so lossy formats stay close."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    planes = []
    for _ in range(channels):
        a, b, c = rng.uniform(0.2, 0.8, 3)
        planes.append(np.clip(a * yy + b * xx + c * np.exp(-((yy - 0.5) ** 2 + (xx - 0.5) ** 2) * 8), 0, 1))
    img = np.stack(planes, axis=2).astype(np.float32) / 2.0
    if np.dtype(dtype) == np.float32:
        return img
    return from_float(img, dtype)


LOSSLESS = [
    (".png", np.uint8, 1), (".png", np.uint8, 3), (".png", np.uint8, 4),
    (".png", np.uint16, 1), (".png", np.uint16, 3), (".png", np.uint16, 4),
    (".tif", np.uint8, 1), (".tif", np.uint8, 3), (".tiff", np.uint8, 4),
    (".tif", np.uint16, 1), (".tif", np.uint16, 3), (".tif", np.uint16, 4),
    (".tif", np.float32, 1), (".tif", np.float32, 3), (".tiff", np.float32, 4),
    (".bmp", np.uint8, 1), (".bmp", np.uint8, 3), (".bmp", np.uint8, 4),
]


@pytest.mark.parametrize("suffix,dtype,channels", LOSSLESS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_lossless_round_trip_keeps_values_dtype_and_channels(
    tmp_path: Path, suffix: str, dtype: type, channels: int
) -> None:
    img = smooth_image(23, 37, channels, np.dtype(dtype))
    path = tmp_path / f"img{suffix}"
    write_image(path, img)
    back = read_image(path)
    assert back.dtype == np.dtype(dtype)
    assert back.shape == (23, 37, channels)
    np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize("suffix,channels", [(".jpg", 1), (".jpg", 3), (".jpeg", 3), (".webp", 3), (".webp", 4)])
def test_lossy_round_trip_is_close(tmp_path: Path, suffix: str, channels: int) -> None:
    img = smooth_image(40, 56, channels, np.dtype(np.uint8))
    path = tmp_path / f"img{suffix}"
    write_image(path, img, quality=95)
    back = read_image(path)
    assert back.dtype == np.uint8 and back.shape == img.shape
    assert np.abs(back.astype(int) - img.astype(int)).mean() < 2.0


def test_webp_gray_comes_back_as_rgb(tmp_path: Path) -> None:
    img = smooth_image(16, 16, 1, np.dtype(np.uint8))
    write_image(tmp_path / "g.webp", img, quality=100)
    back = read_image(tmp_path / "g.webp")
    assert back.shape == (16, 16, 3)
    assert np.abs(back[..., 0].astype(int) - img[..., 0]).max() <= 3


def test_quality_changes_jpeg_size(tmp_path: Path) -> None:
    img = from_float(np.random.default_rng(0).random((64, 64, 3)), np.uint8)
    write_image(tmp_path / "lo.jpg", img, quality=10)
    write_image(tmp_path / "hi.jpg", img, quality=95)
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size


def test_channel_order_is_rgb_against_pillow(tmp_path: Path) -> None:
    red = np.zeros((4, 5, 3), np.uint8)
    red[..., 0] = 255
    write_image(tmp_path / "red.png", red)
    assert Image.open(tmp_path / "red.png").getpixel((0, 0)) == (255, 0, 0)
    Image.new("RGBA", (5, 4), (0, 0, 255, 128)).save(tmp_path / "blue.png")
    assert read_image(tmp_path / "blue.png")[0, 0].tolist() == [0, 0, 255, 128]


def test_sixteen_bit_png_against_pillow(tmp_path: Path) -> None:
    img = (np.arange(12 * 9, dtype=np.uint16).reshape(12, 9) * 601).astype(np.uint16)
    write_image(tmp_path / "g16.png", img)
    with Image.open(tmp_path / "g16.png") as im:
        np.testing.assert_array_equal(np.asarray(im).astype(np.uint16), img)
    Image.fromarray(img).save(tmp_path / "pil16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "pil16.png")[..., 0], img)


def test_gray_alpha_png_is_read_as_rgba(tmp_path: Path) -> None:
    la = np.stack([np.full((3, 4), 90, np.uint8), np.full((3, 4), 200, np.uint8)], axis=2)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png")[0, 0].tolist() == [90, 90, 90, 200]


# ------------------------------------------------------------------------------------- EXIF orientation
def pattern(h: int = 6, w: int = 10) -> np.ndarray:
    """An asymmetric RGB pattern: every orientation gives a different array."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w)[None, :] * 20
    img[..., 1] = np.arange(h)[:, None] * 40
    img[0, 0] = (255, 255, 255)
    return img


def with_orientation(img: np.ndarray, fmt: str, orientation: int, **save) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = _io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt, exif=exif.tobytes(), **save)
    return buf.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_of_png_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / "o.png"
    path.write_bytes(with_orientation(pattern(), "PNG", orientation))
    with Image.open(path) as im:
        assert im.getexif()[0x0112] == orientation
        expected = np.asarray(ImageOps.exif_transpose(im))
    got = read_image(path)
    np.testing.assert_array_equal(got, expected)
    if orientation in (5, 6, 7, 8):
        assert got.shape[:2] == (10, 6)


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("WEBP", ".webp")])
def test_exif_orientation_of_jpeg_and_webp(tmp_path: Path, fmt: str, suffix: str) -> None:
    big = np.repeat(np.repeat(pattern(), 8, 0), 8, 1)  # 48 x 80 blocks survive lossy coding
    path = tmp_path / f"o{suffix}"
    path.write_bytes(with_orientation(big, fmt, 6, quality=95))
    got = read_image(path)
    assert got.shape == (80, 48, 3)  # rotated 90 degrees clockwise for display
    expected = np.rot90(big, k=-1)
    assert np.abs(got.astype(int) - expected.astype(int)).mean() < 6


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_orientation_tag_is_applied_once(tmp_path: Path, dtype: type) -> None:
    img = (np.arange(6 * 10).reshape(6, 10) * (1 if dtype == np.uint8 else 1000)).astype(dtype)
    path = tmp_path / "o.tif"
    Image.fromarray(img).save(path, tiffinfo={274: 6})
    got = read_image(path)
    np.testing.assert_array_equal(got[..., 0], np.rot90(img, k=-1))


def test_corrupt_exif_does_not_prevent_reading(tmp_path: Path) -> None:
    buf = _io.BytesIO()
    Image.fromarray(pattern()).save(buf, format="JPEG", exif=b"Exif\x00\x00garbage-not-tiff")
    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(buf.getvalue())
    assert read_image(path).shape == (6, 10, 3)


# ------------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif", ".bmp"])
def test_truncated_file_raises_image_read_error_naming_it(tmp_path: Path, suffix: str) -> None:
    good = tmp_path / f"good{suffix}"
    write_image(good, smooth_image(64, 64, 3, np.dtype(np.uint8)))
    bad = tmp_path / f"cut{suffix}"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageReadError, match=f"cut{suffix}"):
        read_image(bad)


@pytest.mark.parametrize(
    "content,match",
    [(b"", "is empty"), (b"hello, I am text", "corrupt"), (os.urandom(300), "corrupt")],
)
def test_unreadable_content(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)
    with pytest.raises(ImageReadError, match="<stream>"):
        decode_image(b"junk", name="<stream>")


@pytest.mark.parametrize(
    "name,array,match",
    [
        ("a.gif", np.zeros((4, 4), np.uint8), "supported suffixes"),
        ("a.png", np.zeros((4, 4), np.float32), "from_float"),
        ("a.jpg", np.zeros((4, 4), np.uint16), "JPEG files store uint8"),
        ("a.jpg", np.zeros((4, 4, 4), np.uint8), "no alpha"),
        ("a.png", np.zeros((4, 4, 2), np.uint8), "1/3/4 channel"),
        ("a.png", np.zeros((4,), np.uint8), r"shape \(H, W\)"),
        ("a.png", np.zeros((0, 4), np.uint8), r"got \(0, 4\)"),
    ],
)
def test_write_rejects_what_the_format_cannot_store(tmp_path: Path, name: str, array: np.ndarray, match: str) -> None:
    with pytest.raises(InputValueError, match=match):
        write_image(tmp_path / name, array)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("quality", [0, 101, 9.5, True])
def test_write_rejects_bad_quality(tmp_path: Path, quality: object) -> None:
    with pytest.raises(InputValueError, match="quality"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 3), np.uint8), quality=quality)  # type: ignore[arg-type]


def test_atomic_write_leaves_no_partial_file_when_the_writer_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "img.png"
    write_image(target, np.zeros((8, 8, 3), np.uint8))
    before = target.read_bytes()

    def failing_write_bytes(self: Path, data: bytes) -> int:
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])  # half the file reaches the disk, then the writer dies
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.Path, "write_bytes", failing_write_bytes)
    with pytest.raises(OSError, match="No space left"):
        write_image(target, np.full((8, 8, 3), 255, np.uint8))
    with pytest.raises(OSError):
        write_image(tmp_path / "new.png", np.full((8, 8, 3), 255, np.uint8))
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.png"], "no temporary or partial files"
    assert target.read_bytes() == before, "the existing file is untouched"


def test_write_without_overwrite_keeps_the_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    write_image(target, np.zeros((4, 4), np.uint8))
    before = target.read_bytes()
    with pytest.raises(FileExistsError):
        write_image(target, np.full((4, 4), 255, np.uint8), overwrite=False)
    assert target.read_bytes() == before


def test_write_to_a_missing_folder_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_image(tmp_path / "missing" / "a.png", np.zeros((4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ float helpers
@given(st.sampled_from([np.uint8, np.uint16]), st.integers(0, 2**16 - 1))
def test_to_float_and_back_is_exact_for_integers(dtype: type, seed: int) -> None:
    info = np.iinfo(dtype)
    arr = np.random.default_rng(seed).integers(0, int(info.max) + 1, size=(5, 7), dtype=dtype)
    f = to_float(arr)
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    np.testing.assert_array_equal(from_float(f, dtype), arr)


def test_float_helpers_clip_and_reject() -> None:
    np.testing.assert_array_equal(to_float(np.array([-1.0, 0.25, 2.0, np.nan])), [0.0, 0.25, 1.0, 0.0])
    assert from_float(np.array([0.5]), np.uint16).tolist() == [32768]
    assert to_float(np.array([True, False])).tolist() == [1.0, 0.0]
    with pytest.raises(InputValueError):
        to_float(np.array([1], np.int32))
    with pytest.raises(InputValueError):
        from_float(np.array([0.5]), np.int8)


# ------------------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize(
    "pixels",
    [
        np.array([[0, 1]], np.uint8),
        np.array([[0, 255]], np.uint8),
        np.array([[0, 65535]], np.uint16),
        np.array([[0, 7]], np.uint16),
        np.array([[False, True]]),
        np.array([[0.0, 1.0]], np.float32),
        np.array([[0.0, 0.2]], np.float32),
    ],
    ids=["u8-0/1", "u8-0/255", "u16-0/65535", "u16-0/7", "bool", "float", "float-0/0.2"],
)
def test_binary_mask_files_non_zero_is_white(pixels: np.ndarray) -> None:
    np.testing.assert_array_equal(decode_mask(pixels), [[1.0, 0.0]])  # hole-white: white = hole
    np.testing.assert_array_equal(decode_mask(pixels, "valid-white"), [[0.0, 1.0]])


def test_non_binary_masks_are_thresholded_at_half_the_range() -> None:
    u8 = np.array([[0, 127, 128, 255]], np.uint8)
    np.testing.assert_array_equal(decode_mask(u8), [[1, 1, 0, 0]])
    u16 = np.array([[0, 32767, 32768, 65535]], np.uint16)
    np.testing.assert_array_equal(decode_mask(u16), [[1, 1, 0, 0]])
    f = np.array([[0.0, 0.5, 0.51, 1.0]], np.float32)
    np.testing.assert_array_equal(decode_mask(f), [[1, 1, 0, 0]])
    # JPEG-like noise around 0 and 255
    noisy = np.array([[3, 0, 250, 255, 12, 240]], np.uint8)
    np.testing.assert_array_equal(decode_mask(noisy, "valid-white"), [[0, 0, 1, 1, 0, 1]])


def test_colour_masks_use_the_brightest_channel_and_alpha_when_colour_is_flat() -> None:
    rgb = np.zeros((1, 3, 3), np.uint8)
    rgb[0, 1] = (0, 255, 0)  # a green stroke
    rgb[0, 2] = (255, 255, 255)
    np.testing.assert_array_equal(decode_mask(rgb), [[1, 0, 0]])
    rgba = np.zeros((1, 3, 4), np.uint8)
    rgba[..., 3] = [0, 255, 255]  # strokes on a transparent layer, colour channels all black
    np.testing.assert_array_equal(decode_mask(rgba), [[1, 0, 0]])
    rgba_colour = np.concatenate([rgb, np.full((1, 3, 1), 255, np.uint8)], axis=2)  # opaque colour mask
    np.testing.assert_array_equal(decode_mask(rgba_colour), [[1, 0, 0]])


@given(
    st.integers(1, 12), st.integers(1, 12), st.sampled_from(["hole-white", "valid-white"]), st.integers(0, 999)
)
def test_encode_decode_round_trip(h: int, w: int, convention: str, seed: int) -> None:
    valid = (np.random.default_rng(seed).random((h, w)) > 0.5).astype(np.float32)
    encoded = encode_mask(valid, convention)
    assert encoded.dtype == np.uint8 and set(np.unique(encoded).tolist()) <= {0, 255}
    np.testing.assert_array_equal(decode_mask(encoded, convention), valid)


def test_encode_mask_conventions_and_checks() -> None:
    valid = np.array([[1.0, 0.0, 0.7, 0.2]])
    assert encode_mask(valid).tolist() == [[0, 255, 0, 255]]
    assert encode_mask(valid, "valid-white").tolist() == [[255, 0, 255, 0]]
    assert encode_mask(np.array([[True, False]])).tolist() == [[0, 255]]
    with pytest.raises(InputValueError, match=r"\[0, 1\]"):
        encode_mask(np.array([[2.0]]))
    with pytest.raises(InputValueError, match="NaN"):
        encode_mask(np.array([[np.nan]]))
    with pytest.raises(InputValueError, match="mask_convention must be one of"):
        encode_mask(valid, "black-hole")
    with pytest.raises(InputValueError, match=r"\(H, W\)"):
        encode_mask(np.ones((2, 2, 3)))


@pytest.mark.parametrize("convention", ["hole-white", "valid-white"])
def test_mask_files_both_conventions(tmp_path: Path, convention: str) -> None:
    valid = np.ones((6, 8), np.float32)
    valid[2:4, 3:6] = 0
    path = tmp_path / "m.png"
    write_mask(path, valid, convention)
    with Image.open(path) as im:  # independent reader: the file is 8-bit gray 0/255
        assert im.mode == "L"
        pixels = np.asarray(im)
    hole_value = 255 if convention == "hole-white" else 0
    assert (pixels[2:4, 3:6] == hole_value).all() and (pixels[0] == 255 - hole_value).all()
    np.testing.assert_array_equal(read_mask(path, convention), valid)
    other = "valid-white" if convention == "hole-white" else "hole-white"
    np.testing.assert_array_equal(read_mask(path, other), 1 - valid)


def test_read_mask_from_a_sixteen_bit_rgba_file(tmp_path: Path) -> None:
    pixels = np.zeros((4, 4, 4), np.uint16)
    pixels[..., 3] = 65535
    pixels[1, 1, :3] = 65535
    write_image(tmp_path / "m16.png", pixels)
    mask = read_mask(tmp_path / "m16.png")
    assert mask.dtype == np.float32 and mask.shape == (4, 4)
    assert mask[1, 1] == 0 and mask.sum() == 15


# ---------------------------------------------------------------------------------------------- listing
def test_list_images(tmp_path: Path) -> None:
    for rel in ["b.PNG", "a.jpg", "c.txt", ".hidden.png", "sub/d.webp", ".git/e.png", "x.tiff"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "x.tiff"]
    assert [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path, recursive=True)] == [
        "a.jpg", "b.PNG", "sub/d.webp", "x.tiff",
    ]
    with pytest.raises(InputValueError, match="does not exist"):
        list_images(tmp_path / "missing")
    with pytest.raises(InputValueError, match="is not a folder"):
        list_images(tmp_path / "a.jpg")
    assert {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"} == set(IMAGE_EXTENSIONS)


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import doctest

    import pconv_kit.io

    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(pconv_kit.io)
    assert result.attempted > 0 and result.failed == 0
