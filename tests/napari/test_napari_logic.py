"""The napari plugin's logic (pconv_kit.napari.logic) and sample data, without napari or Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pconv_kit.errors import InputValueError, ShapeError, WeightsNotFoundError
from pconv_kit.inpaint import inpaint
from pconv_kit.io import read_image, read_mask
from pconv_kit.models import PConvUNet, save_model
from pconv_kit.napari._sample_data import chelsea_with_holes
from pconv_kit.napari.logic import fill_layer_data, image_size, labels_to_holes, shapes_to_holes

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO_ROOT / "pconv_kit" / "napari"


@pytest.fixture(scope="module")
def tiny_model() -> PConvUNet:
    return PConvUNet(layer_size=3, base_channels=4).eval()


def _holes(h: int = 24, w: int = 40) -> np.ndarray:
    labels = np.zeros((h, w), np.uint8)
    labels[5:12, 8:20] = 1
    labels[15:20, 25:33] = 7  # every non-zero label is a hole
    return labels


def _image(shape: tuple[int, ...], dtype: type, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    top = np.iinfo(dtype).max
    return rng.integers(0, top, shape, dtype=dtype, endpoint=True)


# ---------------------------------------------------------------------------------------------- fill_layer_data


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((24, 40), np.uint8), ((24, 40, 3), np.uint8), ((24, 40, 4), np.uint16), ((24, 40, 3), np.float32)],
    ids=["grey-u8", "rgb-u8", "rgba-u16", "rgb-f32"],
)
def test_fill_is_inpaint_with_napari_mask_polarity(tiny_model: PConvUNet, shape: tuple[int, ...], dtype: type) -> None:
    image, holes = _image(shape, dtype), _holes()
    before = image.copy()
    out = fill_layer_data(image, holes, tiny_model)
    expected = inpaint(image, (holes == 0).astype(np.float32), tiny_model)  # the library: 1 = valid
    np.testing.assert_array_equal(out, expected)
    assert out.shape == image.shape and out.dtype == image.dtype
    np.testing.assert_array_equal(image, before)  # the input layer's data is not touched
    assert out is not image
    keep = holes == 0
    np.testing.assert_array_equal(out[keep], image[keep])  # known pixels bit-exact
    assert not np.array_equal(out[~keep], image[~keep])  # the holes were filled
    if len(shape) == 3 and shape[2] == 4:
        np.testing.assert_array_equal(out[..., 3], image[..., 3])  # alpha kept


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float64], ids=["int16", "int32", "float-0-1000"])
def test_other_dtypes_are_scaled_by_the_known_range_and_back(tiny_model: PConvUNet, dtype: type) -> None:
    rng = np.random.default_rng(1)
    image = (rng.random((24, 40)) * 1000 - (300 if dtype != np.float64 else 0)).astype(dtype)
    holes = _holes()
    out = fill_layer_data(image, holes, tiny_model)
    assert out.dtype == image.dtype and out.shape == image.shape
    keep = holes == 0
    np.testing.assert_array_equal(out[keep], image[keep])
    low, high = image[keep].min(), image[keep].max()
    assert out[~keep].min() >= low and out[~keep].max() <= high
    # same fill as the library's on the image scaled to [0, 1] by the known range
    unit = ((image.astype(np.float64) - low) / (float(high) - float(low))).astype(np.float32)
    reference = inpaint(unit, keep.astype(np.float32), tiny_model).astype(np.float64) * (float(high) - float(low)) + low
    tolerance = 1.0 if dtype != np.float64 else 1e-3
    np.testing.assert_allclose(out[~keep].astype(np.float64), reference[~keep], atol=tolerance)


def test_options_reach_inpaint(tiny_model: PConvUNet) -> None:
    image, holes = _image((24, 40, 3), np.uint8), _holes()
    valid = (holes == 0).astype(np.float32)
    tta2 = fill_layer_data(image, holes, tiny_model, tta=2)
    np.testing.assert_array_equal(tta2, inpaint(image, valid, tiny_model, tta=2))
    assert not np.array_equal(tta2, fill_layer_data(image, holes, tiny_model, tta=1))
    resized = fill_layer_data(image, holes, tiny_model, strategy="resize")
    np.testing.assert_array_equal(resized, inpaint(image, valid, tiny_model, strategy="resize"))
    with pytest.raises(InputValueError):
        fill_layer_data(image, holes, tiny_model, tta=3)
    with pytest.raises(InputValueError):
        fill_layer_data(image, holes, tiny_model, strategy="tiles")


def test_model_from_a_weights_file(tiny_model: PConvUNet, tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    save_model(tiny_model, path)
    image, holes = _image((24, 40, 3), np.uint8), _holes()
    out = fill_layer_data(image, holes, str(path))
    np.testing.assert_array_equal(out, fill_layer_data(image, holes, tiny_model))
    with pytest.raises(WeightsNotFoundError):
        fill_layer_data(image, holes, str(tmp_path / "missing.safetensors"))


def test_bad_inputs_raise_the_library_errors(tiny_model: PConvUNet) -> None:
    image, holes = _image((24, 40, 3), np.uint8), _holes()
    with pytest.raises(ShapeError, match="mask layer has shape"):
        fill_layer_data(image, holes[:, :30], tiny_model)
    with pytest.raises(InputValueError, match="no hole"):
        fill_layer_data(image, np.zeros_like(holes), tiny_model)
    with pytest.raises(InputValueError, match="whole image"):
        fill_layer_data(image, np.ones_like(holes), tiny_model)
    with pytest.raises(ShapeError, match="stack or a volume"):
        fill_layer_data(np.zeros((5, 24, 40), np.uint8), holes, tiny_model, rgb=False)
    with pytest.raises(InputValueError, match="dtype"):
        fill_layer_data(np.zeros((24, 40), complex), holes, tiny_model)


def test_image_size_and_labels() -> None:
    assert image_size(np.zeros((7, 9, 4))) == (7, 9)
    assert image_size(np.zeros((7, 9))) == (7, 9)
    with pytest.raises(ShapeError):
        image_size(np.zeros((7, 9, 3)), rgb=False)
    with pytest.raises(ShapeError):
        image_size(np.zeros((7, 9)), rgb=True)
    labels = np.array([[0, 3], [0, 0]], np.int32)
    np.testing.assert_array_equal(labels_to_holes(labels, (2, 2)), [[False, True], [False, False]])


# ---------------------------------------------------------------------------------------------- shapes


def _box(top: float, left: float, bottom: float, right: float) -> np.ndarray:
    return np.array([[top, left], [top, right], [bottom, right], [bottom, left]], float)


def test_rectangle_covers_the_pixels_whose_centres_it_contains() -> None:
    holes = shapes_to_holes([_box(2, 3, 5, 6)], ["rectangle"], (10, 12))
    expected = np.zeros((10, 12), bool)
    expected[2:6, 3:7] = True
    np.testing.assert_array_equal(holes, expected)


def test_polygon_and_ellipse_areas() -> None:
    triangle = np.array([[10.0, 10.0], [10.0, 90.0], [70.0, 10.0]])
    area = shapes_to_holes([triangle], ["polygon"], (100, 100)).sum()
    # the pixels the edges pass through are filled too: up to about half the perimeter (240 px) more
    assert 0.5 * 80 * 60 <= area <= 0.5 * 80 * 60 + 0.5 * 240 + 5
    ellipse = shapes_to_holes([_box(20, 10, 60, 90)], ["ellipse"], (100, 100))
    ellipse_area, ellipse_perimeter = np.pi * 20 * 40, 194
    assert ellipse_area <= ellipse.sum() <= ellipse_area + 0.5 * ellipse_perimeter + 5
    assert ellipse[40, 50] and not ellipse[21, 11] and not ellipse[59, 89]  # centre in, box corners out
    # a rotated box (what napari stores for a rotated ellipse): same area
    angle = np.deg2rad(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    corners = (_box(-20, -40, 20, 40) @ rotation.T) + 50
    rotated = shapes_to_holes([corners], ["ellipse"], (100, 100))
    assert ellipse_area <= rotated.sum() <= ellipse_area + 0.5 * ellipse_perimeter + 5
    assert not np.array_equal(rotated, ellipse)


def test_paths_and_lines_are_strokes_of_their_edge_width() -> None:
    path = np.array([[50.0, 10.0], [50.0, 90.0]])
    thin = shapes_to_holes([path], ["path"], (100, 100), edge_widths=1)
    thick = shapes_to_holes([path, path], ["path", "line"], (100, 100), edge_widths=[7, 1])
    assert thin.sum() == 81 and thin[50, 10:91].all()  # width 1: the pixels on the line
    assert thick[47:54, 10:91].all() and not thick[46, 50] and not thick[54, 50]  # width 7: rows 47..53
    assert 7 * 81 <= thick.sum() <= 7 * 81 + 2 * 20  # plus the round caps
    diagonal = shapes_to_holes([np.array([[0.0, 0.0], [9.0, 9.0]])], ["line"], (10, 10))
    np.testing.assert_array_equal(diagonal, np.eye(10, dtype=bool))


def test_shapes_use_the_last_two_axes_and_are_clipped() -> None:
    box3d = np.column_stack([np.full(4, 2.0), _box(-5, -5, 3, 3)])  # (plane, row, col), partly outside
    holes = shapes_to_holes([box3d], ["rectangle"], (10, 10))
    expected = np.zeros((10, 10), bool)
    expected[:4, :4] = True
    np.testing.assert_array_equal(holes, expected)
    assert not shapes_to_holes([], [], (4, 4)).any()


def test_bad_shapes_raise() -> None:
    with pytest.raises(InputValueError, match="unknown shape type"):
        shapes_to_holes([_box(0, 0, 2, 2)], ["star"], (4, 4))
    with pytest.raises(InputValueError, match="shape types"):
        shapes_to_holes([_box(0, 0, 2, 2)], [], (4, 4))
    with pytest.raises(InputValueError, match="edge widths"):
        shapes_to_holes([_box(0, 0, 2, 2)], ["path"], (4, 4), edge_widths=[1, 2])
    with pytest.raises(InputValueError, match="4 corners"):
        shapes_to_holes([_box(0, 0, 2, 2)[:3]], ["ellipse"], (4, 4))


# ---------------------------------------------------------------------------------------------- sample data


def test_sample_data_is_the_bundled_example_with_attribution() -> None:
    (image, image_meta, image_kind), (labels, labels_meta, labels_kind) = chelsea_with_holes()
    assert (image_kind, labels_kind) == ("image", "labels")
    assert image_meta["name"] == "chelsea" and labels_meta["name"] == "chelsea holes"
    np.testing.assert_array_equal(image, read_image(REPO_ROOT / "examples" / "images" / "chelsea.jpg"))
    valid = read_mask(REPO_ROOT / "examples" / "fill_masks" / "chelsea.png")  # white = hole -> 1 = valid
    np.testing.assert_array_equal(labels, (valid == 0).astype(np.uint8))
    data = PLUGIN_DIR / "data"
    assert sum(p.stat().st_size for p in data.iterdir()) < 150_000
    attribution = (data / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert "Stefan van der Walt" in attribution and "CC0" in attribution


def test_sample_filled_by_the_built_in_model_beats_a_flat_fill() -> None:
    (image, _, _), (labels, _, _) = chelsea_with_holes()
    out = fill_layer_data(image, labels)  # model=None: the built-in model
    hole = labels != 0
    np.testing.assert_array_equal(out[~hole], image[~hole])
    error = np.abs(out[hole].astype(float) - image[hole]).mean()
    flat = np.abs(image[~hole].mean(axis=0) - image[hole].astype(float)).mean()
    assert error < 0.6 * flat, (error, flat)


# ---------------------------------------------------------------------------------------------- packaging


def test_importing_the_plugin_logic_imports_neither_napari_nor_qt() -> None:
    code = (
        "import sys, pconv_kit.napari, pconv_kit.napari.logic, pconv_kit.napari._sample_data\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'napari', 'magicgui', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'npe2'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
