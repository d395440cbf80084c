"""``pconv_kit.cv2_inpaint``: cv2.inpaint's call conventions (BGR or grey, non-zero mask = hole, an array like
src back, radius and flags accepted, dst filled), with a partial-convolution model doing the filling."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import pconv_kit
from pconv_kit import cv2_inpaint, inpaint
from pconv_kit.errors import InputValueError, ShapeError
from pconv_kit.models import PConvUNet


@pytest.fixture
def model() -> PConvUNet:
    torch.manual_seed(0)
    return PConvUNet(layer_size=3, base_channels=8).eval()


@pytest.fixture
def scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    bgr = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    mask = np.zeros((40, 56), np.uint8)
    mask[10:22, 14:40] = 255
    mask[30, 5] = 7  # any non-zero value is a hole, as in OpenCV
    return bgr, mask


def test_the_same_call_as_cv2_inpaint(scene: tuple[np.ndarray, np.ndarray], model: PConvUNet) -> None:
    bgr, mask = scene
    ours = cv2_inpaint(bgr, mask, 3, cv2.INPAINT_TELEA, model=model)
    theirs = cv2.inpaint(bgr, mask, 3, cv2.INPAINT_TELEA)
    assert ours.shape == theirs.shape == bgr.shape and ours.dtype == theirs.dtype == np.uint8
    known = mask == 0
    assert np.array_equal(ours[known], bgr[known]) and np.array_equal(theirs[known], bgr[known])
    assert not np.array_equal(ours[~known], bgr[~known])
    assert pconv_kit.cv2_inpaint is cv2_inpaint


def test_bgr_in_bgr_out(scene: tuple[np.ndarray, np.ndarray], model: PConvUNet) -> None:
    bgr, mask = scene
    reference = inpaint(np.ascontiguousarray(bgr[..., ::-1]), mask == 0, model)[..., ::-1]  # the RGB API
    assert np.array_equal(cv2_inpaint(bgr, mask, model=model), reference)
    wrong_order = inpaint(bgr, mask == 0, model)  # what forgetting the conversion would give
    assert not np.array_equal(cv2_inpaint(bgr, mask, model=model), wrong_order)


@pytest.mark.parametrize(
    ("shape", "dtype"), [((40, 56), np.uint8), ((40, 56, 1), np.uint8), ((40, 56, 3), np.uint16),
                         ((40, 56), np.float32)],
)
def test_grey_and_other_depths_come_back_like_src(
    scene: tuple[np.ndarray, np.ndarray], model: PConvUNet, shape: tuple[int, ...], dtype: type
) -> None:
    _, mask = scene
    rng = np.random.default_rng(1)
    src = rng.random(shape).astype(np.float32) if dtype is np.float32 else rng.integers(
        0, np.iinfo(dtype).max + 1, shape, dtype=np.int64).astype(dtype)
    out = cv2_inpaint(src, mask[..., None], model=model)  # a (H, W, 1) mask is fine too
    assert out.shape == src.shape and out.dtype == src.dtype
    known = mask == 0
    assert np.array_equal(out[known], src[known])


def test_dst_is_filled_and_returned(scene: tuple[np.ndarray, np.ndarray], model: PConvUNet) -> None:
    bgr, mask = scene
    dst = np.zeros_like(bgr)
    out = cv2_inpaint(bgr, mask, 5, cv2.INPAINT_NS, dst, model=model)
    assert out is dst and np.array_equal(dst, cv2_inpaint(bgr, mask, model=model))
    with pytest.raises(ShapeError, match=r"dst must be an array of src's shape \(40, 56, 3\) and dtype uint8"):
        cv2_inpaint(bgr, mask, dst=np.zeros((40, 56), np.uint8), model=model)


def test_errors_name_what_was_expected(scene: tuple[np.ndarray, np.ndarray], model: PConvUNet) -> None:
    bgr, mask = scene
    with pytest.raises(ShapeError, match=r"inpaint_mask must be single-channel \(40, 56\) like src .*\(40, 50\)"):
        cv2_inpaint(bgr, mask[:, :50], model=model)
    with pytest.raises(ShapeError, match=r"\(H, W\), \(H, W, 1\) or \(H, W, 3\) BGR; got shape \(40, 56, 4\)"):
        cv2_inpaint(np.zeros((40, 56, 4), np.uint8), mask, model=model)
    with pytest.raises(InputValueError, match="uint8, uint16 or float32 .* got int32"):
        cv2_inpaint(bgr.astype(np.int32), mask, model=model)
    with pytest.raises(InputValueError, match="must be a numpy array"):
        cv2_inpaint(bgr.tolist(), mask, model=model)  # type: ignore[arg-type]
    with pytest.raises(InputValueError, match="nothing to inpaint from"):
        cv2_inpaint(bgr, np.full((40, 56), 255, np.uint8), model=model)
