"""Tests of pconv_kit.inpaint (padding, strategies, compositing, dtypes) and pconv_kit.registry."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import pconv_kit
from pconv_kit.errors import ChecksumError, InputValueError, ShapeError, WeightsNotFoundError
from pconv_kit.inpaint import TTA_CHOICES, Inpainter, hole_boxes, inpaint, reflect_pad
from pconv_kit.models import PConvUNet, save_model
from pconv_kit.registry import (
    ModelEntry,
    default_model_name,
    list_models,
    load_model,
    register_model,
    unregister_model,
)


@functools.lru_cache(maxsize=None)
def tiny_model(seed: int = 0, layer_size: int = 3) -> PConvUNet:
    torch.manual_seed(seed)
    model = PConvUNet(layer_size=layer_size, base_channels=8)
    # give BatchNorm non-trivial running statistics so eval mode is not the identity
    model.train()
    with torch.no_grad():
        for _ in range(2):
            x = torch.rand(2, 3, 16, 16)
            m = (torch.rand(2, 1, 16, 16) > 0.3).float()
            model(x, m)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> PConvUNet:
    return tiny_model()


def random_image(shape: tuple[int, ...], dtype: np.dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def hole_mask(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A (H, W) float32 valid mask with one rectangular hole and at least one valid pixel."""
    rng = np.random.default_rng(seed)
    valid = np.ones((h, w), np.float32)
    y0, x0 = rng.integers(0, h), rng.integers(0, w)
    valid[y0 : y0 + max(1, h // 3), x0 : x0 + max(1, w // 3)] = 0
    valid[0, 0] = 1 if not (y0 == 0 and x0 == 0) else valid[0, 0]
    if valid.all() or not valid.any():
        valid[:] = 1
        valid[h // 2, w // 2] = 0 if h * w > 1 else 1
    return valid


def reference_fill(model: PConvUNet, image01: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Independent reference: numpy reflect padding (pads smaller than the image), predict, crop."""
    m = model.required_multiple
    h, w = valid.shape
    hp, wp = -(-h // m) * m, -(-w // m) * m
    top, left = (hp - h) // 2, (wp - w) // 2
    pad = ((top, hp - h - top), (left, wp - w - left))
    x = np.pad(image01, pad + ((0, 0),), mode="reflect")
    v = np.pad(valid, pad, mode="reflect")
    with torch.no_grad():
        out = model.predict(torch.from_numpy(x).permute(2, 0, 1)[None].float(), torch.from_numpy(v)[None, None].float())
    return out[0].permute(1, 2, 0).numpy()[top : top + h, left : left + w]


# ---------------------------------------------------------------------------------------------- numpy API


@given(
    h=st.integers(1, 30),
    w=st.integers(1, 30),
    layout=st.sampled_from(["hw", "hw1", "hw3", "hw4"]),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64]),
    seed=st.integers(0, 1000),
    tta=st.sampled_from(TTA_CHOICES),
)
def test_known_pixels_bit_exact_any_size(h: int, w: int, layout: str, dtype: type, seed: int, tta: int) -> None:
    model = tiny_model()
    shape = {"hw": (h, w), "hw1": (h, w, 1), "hw3": (h, w, 3), "hw4": (h, w, 4)}[layout]
    image = random_image(shape, dtype, seed)
    valid = hole_mask(h, w, seed) > 0.5
    out = inpaint(image, valid, model, tta=tta)
    assert out.shape == image.shape and out.dtype == image.dtype
    known = valid if image.ndim == 2 else valid[..., None].repeat(image.shape[2], axis=2)
    if layout == "hw4":
        known[..., 3] = True  # alpha is kept everywhere
    assert np.array_equal(out[known], image[known])
    if layout == "hw4":
        assert np.array_equal(out[..., 3], image[..., 3])


def test_holes_match_independent_reference(model: PConvUNet) -> None:
    image = random_image((40, 56, 3), np.float32, 3)
    valid = hole_mask(40, 56, 3)
    out = inpaint(image, valid, model)
    ref = reference_fill(model, image, valid)
    hole = valid == 0
    np.testing.assert_allclose(out[hole], ref[hole], atol=1e-6)
    # 16-bit: holes are the reference rounded to nearest
    image16 = (image * 65535).round().astype(np.uint16)
    out16 = inpaint(image16, valid, model)
    ref16 = reference_fill(model, image16.astype(np.float32) / 65535, valid)
    expected = np.rint(np.clip(ref16, 0, 1) * 65535).astype(np.int64)
    assert np.abs(out16[hole].astype(np.int64) - expected[hole]).max() <= 1
    assert np.array_equal(out16[~hole], image16[~hole])
    assert not np.array_equal(out16[hole], image16[hole])


def test_gray_runs_through_rgb_model_and_returns_gray(model: PConvUNet) -> None:
    gray = random_image((24, 20), np.uint8, 1)
    valid = hole_mask(24, 20, 1)
    out = inpaint(gray, valid, model)
    assert out.shape == (24, 20) and out.dtype == np.uint8
    ref = reference_fill(model, np.repeat(gray[..., None].astype(np.float32) / 255, 3, axis=2), valid)
    luma = np.rint(np.clip(ref @ np.array([0.299, 0.587, 0.114], np.float32), 0, 1) * 255)
    hole = valid == 0
    assert np.abs(out[hole].astype(int) - luma[hole].astype(int)).max() <= 1


def test_rgba_keeps_alpha_and_fills_colour(model: PConvUNet) -> None:
    image = random_image((16, 16, 4), np.uint8, 2)
    valid = hole_mask(16, 16, 2)
    out = inpaint(image, valid, model)
    assert np.array_equal(out[..., 3], image[..., 3])
    rgb = inpaint(np.ascontiguousarray(image[..., :3]), valid, model)
    assert np.array_equal(out[..., :3], rgb)


def test_per_channel_mask_changes_only_hole_channels(model: PConvUNet) -> None:
    image = random_image((16, 24, 3), np.uint8, 4)
    valid = np.ones((16, 24, 3), bool)
    valid[4:9, 5:12, 1] = False  # only the green channel is missing
    out = inpaint(image, valid, model)
    assert np.array_equal(out[..., [0, 2]], image[..., [0, 2]])
    assert np.array_equal(out[valid], image[valid])
    assert not np.array_equal(out[..., 1], image[..., 1])


def test_no_hole_returns_copy_without_running_model(model: PConvUNet, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must not run")

    monkeypatch.setattr(model, "predict", boom)
    image = random_image((10, 12, 3), np.uint16)
    out = inpaint(image, np.ones((10, 12), bool), model)
    assert np.array_equal(out, image) and out is not image
    tensor = torch.rand(2, 3, 10, 12)
    assert torch.equal(inpaint(tensor, torch.ones(2, 1, 10, 12), model), tensor)


def test_all_hole_is_an_error(model: PConvUNet) -> None:
    with pytest.raises(InputValueError, match="nothing to inpaint"):
        inpaint(random_image((8, 8, 3), np.uint8), np.zeros((8, 8), bool), model)
    with pytest.raises(InputValueError, match=r"image 1 of the batch: the mask marks every pixel as a hole"):
        inpaint(torch.rand(2, 3, 8, 8), torch.cat([torch.ones(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)]), model)
    inpainter = Inpainter(model)
    with pytest.raises(InputValueError, match="photo.png"):
        inpainter.prepare(random_image((8, 8, 3), np.uint8), np.zeros((8, 8), bool), name="photo.png")


def test_mask_conventions_agree(model: PConvUNet) -> None:
    image = random_image((20, 28, 3), np.uint8, 5)
    valid = hole_mask(20, 28, 5) > 0.5
    expected = inpaint(image, valid, model)
    hole_white = np.where(valid, 0, 255).astype(np.uint8)
    assert np.array_equal(inpaint(image, hole_white, model, mask_convention="hole-white"), expected)
    valid_white = np.where(valid, 255, 0).astype(np.uint8)
    assert np.array_equal(inpaint(image, valid_white, model, mask_convention="valid-white"), expected)
    assert np.array_equal(inpaint(image, valid.astype(np.float32), model), expected)
    with pytest.raises(InputValueError, match="binary"):
        inpaint(image, hole_white, model)  # 0/255 is not a 'valid' mask
    with pytest.raises(InputValueError, match="mask_convention"):
        inpaint(image, valid, model, mask_convention="white")


def test_bad_inputs(model: PConvUNet) -> None:
    with pytest.raises(ShapeError, match=r"\(20, 28\)"):
        inpaint(random_image((20, 28, 3), np.uint8), np.ones((20, 27), bool), model)
    with pytest.raises(ShapeError, match="2"):
        inpaint(random_image((8, 8, 2), np.uint8), np.ones((8, 8), bool), model)
    with pytest.raises(InputValueError, match="int32"):
        inpaint(np.zeros((8, 8, 3), np.int32), np.ones((8, 8), bool), model)
    with pytest.raises(InputValueError, match="strategy"):
        inpaint(random_image((8, 8, 3), np.uint8), np.ones((8, 8), bool), model, strategy="tiles")
    with pytest.raises(InputValueError, match="PConvUNet"):
        inpaint(random_image((8, 8, 3), np.uint8), np.ones((8, 8), bool), model=3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- tensors


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64, torch.uint8])
def test_tensor_same_kind_and_known_exact(model: PConvUNet, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    x = (torch.rand(3, 3, 20, 36) * (255 if dtype == torch.uint8 else 1)).to(dtype)
    mask = torch.ones(3, 1, 20, 36)
    mask[:, :, 3:11, 7:20] = 0
    mask[1] = 1  # no hole in the second image
    out = inpaint(x, mask, model)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    known = mask.bool().expand_as(x)
    assert torch.equal(out[known], x[known])
    assert torch.equal(out[1], x[1])
    assert not torch.equal(out[0], x[0])


def test_tensor_batch_equals_per_item_and_numpy(model: PConvUNet) -> None:
    torch.manual_seed(1)
    x = torch.rand(3, 3, 24, 24)
    mask = (torch.rand(3, 1, 24, 24) > 0.2).float()
    batched = inpaint(x, mask, model)
    for i in range(3):
        single = inpaint(x[i : i + 1], mask[i : i + 1], model)
        torch.testing.assert_close(batched[i : i + 1], single, atol=1e-5, rtol=0)
        as_numpy = inpaint(x[i].permute(1, 2, 0).numpy(), mask[i, 0].numpy(), model)
        torch.testing.assert_close(torch.from_numpy(as_numpy).permute(2, 0, 1), batched[i], atol=1e-5, rtol=0)


def test_tensor_gray_and_rgba(model: PConvUNet) -> None:
    x = torch.rand(2, 4, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    mask[:, :, 4:9, 4:12] = 0
    out = inpaint(x, mask, model)
    assert torch.equal(out[:, 3], x[:, 3])
    gray = inpaint(x[:, :1], mask, model)
    assert gray.shape == (2, 1, 16, 16)
    hole_white = (1 - mask) * 255
    torch.testing.assert_close(inpaint(x, hole_white.to(torch.uint8), model, mask_convention="hole-white"), out)


# ---------------------------------------------------------------------------------------------- test-time augmentation

FLIPS = {1: [()], 2: [(), (1,)], 4: [(), (1,), (0,), (0, 1)]}  # numpy (H, W, C) axes of each flipped copy


@pytest.mark.parametrize("tta", [2, 4])
def test_tta_is_the_mean_of_the_flipped_fills(model: PConvUNet, tta: int) -> None:
    # 40x56 is a multiple of the model's 8: no padding, so flipping commutes with the reference's padding
    image = random_image((40, 56, 3), np.float32, 11)
    valid = hole_mask(40, 56, 11)
    fills = [np.flip(reference_fill(model, np.flip(image, f).copy(), np.flip(valid, f).copy()), f) for f in FLIPS[tta]]
    expected = np.clip(np.mean(fills, axis=0), 0, 1)
    out = inpaint(image, valid, model, tta=tta)
    hole = valid == 0
    np.testing.assert_allclose(out[hole], expected[hole], atol=1e-6)
    assert np.abs(out[hole] - fills[0][hole]).max() > 1e-3  # the flipped copies did change the fill


@given(seed=st.integers(0, 1000), tta=st.sampled_from(TTA_CHOICES), size=st.sampled_from([(16, 24), (32, 8)]))
def test_tta_makes_the_fill_equivariant_to_its_flips(seed: int, tta: int, size: tuple[int, int]) -> None:
    model = tiny_model()
    image = random_image((*size, 3), np.float32, seed)
    valid = hole_mask(*size, seed)
    out = inpaint(image, valid, model, tta=tta)
    hole = np.broadcast_to((valid == 0)[..., None], image.shape)
    for flip in ((1,), (0,)):
        mirrored = np.flip(inpaint(np.flip(image, flip).copy(), np.flip(valid, flip).copy(), model, tta=tta), flip)
        gap = np.abs(mirrored - out)[hole].max()
        if flip in FLIPS[tta]:
            assert gap < 1e-5, (tta, flip)
        else:  # a random model is not symmetric by itself
            assert gap > 1e-3, (tta, flip)


@pytest.mark.parametrize("bad", [0, 3, 8, True, "2", 2.0])
def test_bad_tta(model: PConvUNet, bad: object) -> None:
    with pytest.raises(InputValueError, match=r"tta must be one of \(1, 2, 4\)"):
        Inpainter(model, tta=bad)  # type: ignore[arg-type]


@pytest.fixture
def predict_calls(model: PConvUNet, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The input shapes of every ``model.predict`` call made during the test."""
    calls: list[tuple[int, ...]] = []
    predict = model.predict

    def spy(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(x.shape))
        return predict(x, m)

    monkeypatch.setattr(model, "predict", spy)
    return calls


def test_tta_runs_one_pass_per_flip(model: PConvUNet, predict_calls: list[tuple[int, ...]]) -> None:
    image = random_image((20, 30, 3), np.uint8, 12)
    valid = hole_mask(20, 30, 12)
    for tta in TTA_CHOICES:
        predict_calls.clear()
        inpaint(image, valid, model, tta=tta)
        assert predict_calls == [(1, 3, 24, 32)] * tta


# ---------------------------------------------------------------------------------------------- strategies


def test_strategies_agree_on_small_images(model: PConvUNet) -> None:
    image = random_image((40, 56, 3), np.uint8, 6)
    valid = hole_mask(40, 56, 6)
    full = inpaint(image, valid, model, strategy="full")
    # the crop box covers the whole image when the margin is large: identical result
    crop = inpaint(image, valid, model, strategy="crop", crop_margin=100)
    resize = inpaint(image, valid, model, strategy="resize")  # small enough: no downscaling
    auto = inpaint(image, valid, model)
    assert np.abs(crop.astype(int) - full.astype(int)).max() <= 1
    assert np.array_equal(resize, full) and np.array_equal(auto, full)


def test_crop_and_resize_on_a_larger_image(model: PConvUNet) -> None:
    image = random_image((200, 300, 3), np.uint8, 7)
    valid = np.ones((200, 300), bool)
    valid[20:35, 30:50] = False
    valid[150:170, 240:280] = False
    kw = dict(max_full_pixels=100 * 100, crop_margin=16)
    for strategy in ("auto", "crop", "resize"):
        out = inpaint(image, valid, model, strategy=strategy, **kw)
        assert np.array_equal(out[valid], image[valid]), strategy
        assert not np.array_equal(out[~valid], image[~valid]), strategy
    # crop runs the model on two small boxes only: each hole sees the same context as in a full run of
    # its box, so the two strategies differ only by the context they see
    boxes = hole_boxes(valid, model.required_multiple, 16)
    assert len(boxes) == 2
    crop = inpaint(image, valid, model, strategy="crop", **kw)
    auto = inpaint(image, valid, model, strategy="auto", **kw)
    assert np.array_equal(crop, auto)
    (t, l, b, r) = boxes[0]
    box_only = inpaint(image[t:b, l:r], valid[t:b, l:r], model, strategy="full")
    assert np.array_equal(crop[t:b, l:r], box_only)


def test_resize_downscales(model: PConvUNet, predict_calls: list[tuple[int, ...]]) -> None:
    image = random_image((120, 160, 3), np.uint8, 8)
    valid = np.ones((120, 160), bool)
    valid[40:60, 50:90] = False
    out = inpaint(image, valid, model, strategy="resize", max_full_pixels=60 * 80)
    assert predict_calls == [(1, 3, 64, 80)]  # 60x80 padded to multiples of 8
    assert np.array_equal(out[valid], image[valid])


@given(
    h=st.integers(1, 70),
    w=st.integers(1, 70),
    multiple=st.sampled_from([1, 8, 16]),
    margin=st.integers(0, 12),
    seed=st.integers(0, 10_000),
)
def test_hole_boxes_cover_every_hole_once(h: int, w: int, multiple: int, margin: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    valid = np.ones((h, w), bool)
    for _ in range(rng.integers(1, 5)):
        y, x = rng.integers(0, h), rng.integers(0, w)
        valid[y : y + rng.integers(1, 6), x : x + rng.integers(1, 6)] = False
    boxes = hole_boxes(valid, multiple, margin)
    cover = np.zeros((h, w), int)
    for top, left, bottom, right in boxes:
        assert 0 <= top < bottom <= h and 0 <= left < right <= w
        assert (bottom - top) % multiple == 0 or (top, bottom) == (0, h)
        assert (right - left) % multiple == 0 or (left, right) == (0, w)
        cover[top:bottom, left:right] += 1
    assert cover.max() <= 1  # boxes do not overlap
    assert (cover[~valid] == 1).all()  # every hole lies in exactly one box
    # each hole pixel has `margin` pixels of context inside its box (clipped at the image border)
    ys, xs = np.nonzero(~valid)
    for y, x in zip(ys, xs):
        top, left, bottom, right = next(b for b in boxes if b[0] <= y < b[2] and b[1] <= x < b[3])
        assert top <= max(0, y - margin) and bottom >= min(h, y + margin + 1)
        assert left <= max(0, x - margin) and right >= min(w, x + margin + 1)
    assert hole_boxes(np.ones((h, w), bool), multiple, margin) == []


@given(h=st.integers(1, 20), w=st.integers(1, 20), multiple=st.sampled_from([1, 4, 8, 32]))
def test_reflect_pad(h: int, w: int, multiple: int) -> None:
    x = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)
    padded, (top, left, hh, ww) = reflect_pad(x, multiple)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert padded.shape[-2] - h < multiple and padded.shape[-1] - w < multiple
    assert torch.equal(padded[..., top : top + hh, left : left + ww], x)
    assert set(padded.unique().tolist()) <= set(x.unique().tolist())
    bottom, right = padded.shape[-2] - h - top, padded.shape[-1] - w - left
    if max(top, bottom) < h and max(left, right) < w:  # numpy can do it too: same result
        ref = np.pad(x[0, 0].numpy(), ((top, bottom), (left, right)), mode="reflect")
        assert np.array_equal(padded[0, 0].numpy(), ref)


# ---------------------------------------------------------------------------------------------- models


def test_model_argument_kinds(model: PConvUNet, tmp_path: Path) -> None:
    image = random_image((16, 16, 3), np.uint8, 9)
    valid = hole_mask(16, 16, 9)
    expected = inpaint(image, valid, model)
    (tmp_path / "run").mkdir()
    save_model(model, tmp_path / "run" / "best.safetensors")
    assert np.array_equal(inpaint(image, valid, tmp_path / "run" / "best.safetensors"), expected)
    assert np.array_equal(inpaint(image, valid, str(tmp_path / "run")), expected)
    register_model(ModelEntry("test-tiny", file=str(tmp_path / "run" / "best.safetensors")))
    try:
        assert "test-tiny" in list_models()
        assert np.array_equal(inpaint(image, valid, "test-tiny"), expected)
    finally:
        unregister_model("test-tiny")
    with pytest.raises(WeightsNotFoundError, match="registered"):
        inpaint(image, valid, "no-such-model")
    with pytest.raises(WeightsNotFoundError, match="not found"):
        inpaint(image, valid, tmp_path / "missing.safetensors")


def test_builtin_default_model() -> None:
    assert default_model_name() == "pconv-photos-small"
    model = pconv_kit.load_model()
    assert model.config["layer_size"] == 7 and not model.training
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    valid = np.ones((40, 56), bool)
    valid[10:20, 20:30] = False
    out = inpaint(image, valid)
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[valid], image[valid]) and not np.array_equal(out[~valid], image[~valid])


def test_no_default_model_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import pconv_kit.registry as registry

    monkeypatch.setattr(registry, "_DEFAULT", None)
    valid = np.ones((8, 8), bool)
    valid[2:4, 2:4] = False
    with pytest.raises(WeightsNotFoundError, match="no default model.*pass weights explicitly as model") as info:
        inpaint(np.zeros((8, 8, 3), np.uint8), valid)
    assert info.value.param == "model" and "--model" not in str(info.value)  # the CLI adds its flag
    with pytest.raises(WeightsNotFoundError, match="no default model"):
        pconv_kit.load_model()


def test_registry_download_entry(model: PConvUNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pconv_kit.registry as registry

    monkeypatch.setattr(registry, "_DEFAULT", registry._DEFAULT)  # this test replaces the default: restore it
    monkeypatch.setenv("PCONV_KIT_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "published.safetensors"
    save_model(model, src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    register_model(ModelEntry("test-url", url=src.as_uri(), sha256=digest, filename="test-url.safetensors"), default=True)
    try:
        assert default_model_name() == "test-url"
        loaded = load_model(None)
        assert (tmp_path / "cache" / "test-url.safetensors").is_file()
        assert loaded.config == model.config
        with pytest.raises(InputValueError, match="already registered"):
            register_model(ModelEntry("test-url", url=src.as_uri(), sha256=digest))
    finally:
        unregister_model("test-url")
    assert default_model_name() is None
    register_model(ModelEntry("test-bad", url=src.as_uri(), sha256="0" * 64, filename="bad.safetensors"))
    try:
        with pytest.raises(ChecksumError):
            load_model("test-bad")
    finally:
        unregister_model("test-bad")
    with pytest.raises(InputValueError, match="sha256"):
        ModelEntry("x", url="https://example.org/w.safetensors")
    with pytest.raises(InputValueError, match="exactly one"):
        ModelEntry("x")


def test_exports() -> None:
    assert pconv_kit.inpaint is inpaint
    assert pconv_kit.list_models is list_models
    assert pconv_kit.load_model is load_model


def test_load_model_gives_each_caller_its_own_model_from_one_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pconv_kit.models.serialization as serialization
    from pconv_kit.registry import clear_model_cache, load_model

    path = tmp_path / "m.safetensors"
    torch.manual_seed(0)
    save_model(PConvUNet(layer_size=3, base_channels=4), path)
    reads: list[Path] = []
    real = serialization.read_weights
    monkeypatch.setattr(serialization, "read_weights", lambda p: reads.append(Path(p)) or real(p))
    clear_model_cache()
    a = load_model(path)
    c = Inpainter(str(path), device="cpu").model
    assert len(reads) == 1  # read and checked once
    assert a is not c and all(p is not q for p, q in zip(a.parameters(), c.parameters()))
    a.train()
    with torch.no_grad():
        next(a.parameters()).add_(1.0)
    assert not c.training  # one caller's mode and weights do not leak into another's model
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # a new version of the file
    load_model(path)
    assert len(reads) == 2


def test_hole_boxes_refuses_bad_arguments() -> None:
    with pytest.raises(ShapeError, match=r"valid must have shape \(H, W\)"):
        hole_boxes(np.ones((4, 4, 3), bool), 8, 4)
    with pytest.raises(InputValueError, match="multiple must be >= 1 and margin >= 0"):
        hole_boxes(np.ones((4, 4), bool), 0, 4)
