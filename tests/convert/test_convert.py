"""Tests of pconv_kit.convert: synthetic checkpoints in each source's layout, converted and compared against
independent re-implementations of the source networks' forward passes (their layer formulas, not ours)."""

from __future__ import annotations

import doctest
import functools
import json
import os
import pickle
import warnings
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import pconv_kit.convert as convert_pkg
from pconv_kit.convert import (
    SOURCES,
    ConversionWarning,
    OpaqueObject,
    UnknownFormatError,
    convert,
    convert_checkpoint,
    detect_format,
    load_torch_file,
)
from pconv_kit.convert import keras as keras_mod
from pconv_kit.convert import mmagic as mmagic_mod
from pconv_kit.convert import naoto as naoto_mod
from pconv_kit.errors import InputValueError, WeightsNotFoundError
from pconv_kit.models import PConvUNet, load_model, read_model_config

F64 = torch.float64
KERNELS = [7, 5, 5, 3, 3, 3, 3, 3, 3, 3]
# PConvUNet keeps its normalisation statistics as float32 buffers, so a float64 model uses these exact values
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float32).to(F64).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float32).to(F64).view(1, 3, 1, 1)


def widths(layer_size: int, base: int, in_channels: int = 3) -> list[int]:
    return [in_channels] + [base * min(2**i, 8) for i in range(layer_size)]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _bn(g: torch.Generator, c: int) -> dict[str, torch.Tensor]:
    return {
        "weight": torch.rand(c, generator=g, dtype=F64) + 0.5,
        "bias": torch.randn(c, generator=g, dtype=F64) * 0.1,
        "running_mean": torch.randn(c, generator=g, dtype=F64) * 0.2,
        "running_var": torch.rand(c, generator=g, dtype=F64) * 1.5 + 0.5,
        "num_batches_tracked": torch.tensor(7),
    }


# ---------------------------------------------------------------------------------------------- synthetic sources


def naoto_state(layer_size: int = 4, layout: str = "new", seed: int = 0) -> dict[str, torch.Tensor]:
    """A naoto0804 PConvUNet state dict (fixed widths 64..512; enc_1..enc_4 always exist in the source)."""
    g = _gen(seed)
    n = max(layer_size, 4)
    ch = widths(n, 64)
    conv, mask = ("input_conv", "mask_conv") if layout == "new" else ("conv2d", "mask2d")
    state: dict[str, torch.Tensor] = {}

    def layer(name: str, c_in: int, c_out: int, k: int, bias: bool, bn: bool) -> None:
        shape = (c_out, c_in, k, k)
        fan_in = c_in * k * k
        state[f"{name}.conv.{conv}.weight"] = torch.randn(shape, generator=g, dtype=F64) * fan_in**0.5
        state[f"{name}.conv.{mask}.weight"] = torch.ones(shape, dtype=F64)
        if bias:
            state[f"{name}.conv.{conv}.bias"] = torch.randn(c_out, generator=g, dtype=F64) * 0.3
        if layout == "old":
            state[f"{name}.conv.{mask}.bias"] = torch.zeros(c_out, dtype=F64)
        if bn:
            state.update({f"{name}.bn.{k2}": v for k2, v in _bn(g, c_out).items()})

    old = layout == "old"
    for i in range(1, n + 1):
        layer(f"enc_{i}", ch[i - 1], ch[i], KERNELS[i - 1], bias=old, bn=i > 1)
    for i in range(n, 0, -1):
        layer(f"dec_{i}", ch[i] + ch[i - 1], ch[i - 1], 3, bias=old or i == 1, bn=i > 1)
    return state


def mmagic_state(layer_size: int = 4, base: int = 4, seed: int = 0, prefix: str = "generator.") -> dict[str, torch.Tensor]:
    """A PConvInpaintor state dict: generator.encoder.encN / generator.decoder.decN, plus a loss network."""
    g = _gen(seed)
    ch = widths(layer_size, base)
    state: dict[str, torch.Tensor] = {}

    def layer(name: str, c_in: int, c_out: int, k: int, norm: bool) -> None:
        shape = (c_out, c_in, k, k)
        state[f"{prefix}{name}.conv.weight"] = torch.randn(shape, generator=g, dtype=F64) * (2.0 / (c_in * k * k)) ** 0.5
        state[f"{prefix}{name}.conv.weight_mask_updater"] = torch.ones(shape, dtype=F64)
        if norm:
            state.update({f"{prefix}{name}.bn.{k2}": v for k2, v in _bn(g, c_out).items()})
        else:
            state[f"{prefix}{name}.conv.bias"] = torch.randn(c_out, generator=g, dtype=F64) * 0.3

    for i in range(1, layer_size + 1):
        layer(f"encoder.enc{i}", ch[i - 1], ch[i], KERNELS[i - 1], norm=i > 1)
    for i in range(layer_size, 0, -1):
        layer(f"decoder.dec{i}", ch[i] + ch[i - 1], ch[i - 1], 3, norm=i > 1)
    state["loss_composed_percep.vgg.vgg_layers.0.weight"] = torch.randn(8, 3, 3, 3, generator=g, dtype=F64)
    return state


def keras_layers(layer_size: int = 4, base: int = 4, seed: int = 0) -> list[tuple[str, dict[str, np.ndarray]]]:
    """PConv-Keras layers in model.layers order (channels-last kernels), including weightless layers."""
    g = _gen(seed)
    ch = widths(layer_size, base)
    layers: list[tuple[str, dict[str, np.ndarray]]] = [("inputs_img", {}), ("inputs_mask", {})]
    counter = {"pconv": 0, "bn": 0, "act": 0}

    def arr(*shape: int, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
        return (torch.randn(shape, generator=g, dtype=F64) * scale + offset).numpy()

    def pconv(c_in: int, c_out: int, k: int) -> None:
        counter["pconv"] += 1
        layers.append((f"p_conv2d_{counter['pconv']}", {
            "img_kernel": arr(k, k, c_in, c_out, scale=c_in / (c_in * k * k) ** 0.5),
            "bias": arr(c_out, scale=0.3),
        }))

    def bn(name: str, c: int) -> None:
        p = _bn(g, c)
        layers.append((name, {"gamma": p["weight"].numpy(), "beta": p["bias"].numpy(),
                              "moving_mean": p["running_mean"].numpy(), "moving_variance": p["running_var"].numpy()}))

    def act() -> None:
        counter["act"] += 1
        layers.append((f"activation_{counter['act']}", {}))

    for i in range(1, layer_size + 1):
        pconv(ch[i - 1], ch[i], KERNELS[i - 1])
        if i > 1:
            bn(f"EncBN{i - 1}", ch[i])
        act()
    for j in range(layer_size):
        k = layer_size - j
        layers.append((f"up_sampling2d_{2 * j + 1}", {}))
        layers.append((f"concatenate_{j + 1}", {}))
        pconv(ch[k - 1] + ch[k], ch[k - 1], 3)
        if k > 1:
            counter["bn"] += 1
            bn(f"batch_normalization_{counter['bn']}", ch[k - 1])
        act()
    layers.append(("outputs_img", {"kernel": arr(1, 1, 3, 3, scale=0.5), "bias": arr(3, scale=0.1)}))
    return layers


def write_keras_h5(path: Path, layers: list[tuple[str, dict[str, np.ndarray]]], model_config: dict | None = None) -> None:
    """Write ``layers`` like Keras 2's save_weights (or, with ``model_config``, like model.save)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if model_config is not None else f
        root.attrs["layer_names"] = np.array([n.encode() for n, _ in layers])
        root.attrs["backend"] = b"tensorflow"
        for name, weights in layers:
            group = root.create_group(name)
            group.attrs["weight_names"] = np.array([f"{name}/{k}:0".encode() for k in weights], dtype="S64")
            for k, v in weights.items():
                group.create_dataset(f"{name}/{k}:0", data=v.astype(np.float32) if v.dtype == np.float32 else v)
        if model_config is not None:
            f.attrs["model_config"] = json.dumps(model_config).encode()


# ---------------------------------------------------------------------------------------------- source formulas


def up2(x: torch.Tensor) -> torch.Tensor:
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def bn_eval(x: torch.Tensor, p: dict[str, torch.Tensor], eps: float, axis: int = 1) -> torch.Tensor:
    shape = [1] * x.dim()
    shape[axis] = -1
    v = {k: t.view(shape) for k, t in p.items() if k != "num_batches_tracked"}
    return (x - v["running_mean"]) / torch.sqrt(v["running_var"] + eps) * v["weight"] + v["bias"]


def reference_unet(
    pconv: Callable[[str, torch.Tensor, torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
    state: dict[str, torch.Tensor], x: torch.Tensor, m: torch.Tensor, layer_size: int, enc: str, dec: str,
) -> torch.Tensor:
    """The U-Net walk the reference forwards share around their own partial convolution ``pconv``: blocks named
    ``enc.format(i)`` / ``dec.format(i)``, BatchNorm where ``state`` has it, ReLU in the encoder, LeakyReLU 0.2 in
    the decoder but its last block, nearest 2x upsampling and skip concatenation of images and masks."""

    def block(name: str, x: torch.Tensor, m: torch.Tensor, stride: int, act: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        h, hm = pconv(name, x, m, stride)
        if f"{name}.bn.weight" in state:
            h = bn_eval(h, {k: state[f"{name}.bn.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}, 1e-5)
        if act == "relu":
            h = F.relu(h)
        elif act == "leaky":
            h = F.leaky_relu(h, 0.2)
        return h, hm

    hs, ms = [x], [m]
    for i in range(1, layer_size + 1):
        h, hm = block(enc.format(i), hs[-1], ms[-1], 2, "relu")
        hs.append(h)
        ms.append(hm)
    h, hm = hs[-1], ms[-1]
    for i in range(layer_size, 0, -1):
        h, hm = up2(h), up2(hm)
        h, hm = torch.cat([h, hs[i - 1]], 1), torch.cat([hm, ms[i - 1]], 1)
        h, hm = block(dec.format(i), h, hm, 1, "leaky" if i > 1 else None)
    return h


def naoto_reference(state: dict[str, torch.Tensor], image: torch.Tensor, mask: torch.Tensor, layer_size: int) -> torch.Tensor:
    """naoto0804's forward: (conv(X*M) - b) / mask_conv(M) + b (C_in-channel masks), ImageNet normalisation."""
    conv = "input_conv" if any("input_conv" in k for k in state) else "conv2d"

    def pconv(name: str, x: torch.Tensor, m: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        w = state[f"{name}.conv.{conv}.weight"]
        b = state.get(f"{name}.conv.{conv}.bias")
        pad = w.shape[-1] // 2
        out = F.conv2d(x * m, w, b, stride, pad)
        output_mask = F.conv2d(m, torch.ones_like(w), None, stride, pad)
        holes = output_mask == 0
        bias = b.view(1, -1, 1, 1) if b is not None else torch.zeros_like(out)
        out = (out - bias) / output_mask.masked_fill(holes, 1.0) + bias
        out = out.masked_fill(holes, 0.0)
        return out, (~holes).to(x.dtype)

    x = (image - IMAGENET_MEAN) / IMAGENET_STD
    h = reference_unet(pconv, state, x, mask.expand_as(image), layer_size, "enc_{}", "dec_{}")
    return h * IMAGENET_STD + IMAGENET_MEAN


def mmagic_reference(
    state: dict[str, torch.Tensor], image: torch.Tensor, mask: torch.Tensor, layer_size: int, eps: float = 1e-8,
    bgr: bool = True,
) -> torch.Tensor:
    """mmagic's PConvEncoderDecoder on BGR images normalised with 127.5/127.5 (PartialConv2d, multi_channel)."""
    s = {k.removeprefix("generator."): v for k, v in state.items()}

    def pconv(name: str, x: torch.Tensor, m: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        w, b = s[f"{name}.conv.weight"], s.get(f"{name}.conv.bias")
        pad = w.shape[-1] // 2
        updated = F.conv2d(m, s[f"{name}.conv.weight_mask_updater"], None, stride, pad)
        numel = w.shape[1] * w.shape[2] * w.shape[3]
        ratio = numel / (updated + eps) if eps else torch.where(updated > 0, numel / updated.clamp_min(1e-300), 0.0)
        updated = updated.clamp(0, 1)
        ratio = ratio * updated
        raw = F.conv2d(x * m, w, b, stride, pad)
        if b is None:
            return raw * ratio, updated
        bv = b.view(1, -1, 1, 1)
        return ((raw - bv) * ratio + bv) * updated, updated

    img = image.flip(1) if bgr else image  # OpenCV loads BGR
    h = reference_unet(pconv, s, (img - 0.5) / 0.5, mask.expand_as(image), layer_size, "encoder.enc{}", "decoder.dec{}")
    out = h * 0.5 + 0.5
    return out.flip(1) if bgr else out


def keras_conv(x: torch.Tensor, kernel: torch.Tensor, stride: int, pad: int) -> torch.Tensor:
    """Channels-last cross-correlation with a (kH, kW, C_in, C_out) kernel, written out window by window."""
    xp = F.pad(x.permute(0, 3, 1, 2), (pad, pad, pad, pad)).permute(0, 2, 3, 1)
    kh, kw = kernel.shape[:2]
    ho = (xp.shape[1] - kh) // stride + 1
    wo = (xp.shape[2] - kw) // stride + 1
    out = 0
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride, :]
            out = out + torch.einsum("bhwc,co->bhwo", patch, kernel[i, j])
    return out


def keras_reference(
    layers: list[tuple[str, dict[str, np.ndarray]]], image: torch.Tensor, mask: torch.Tensor, tail: str = "linear",
    bn_eps: float = 1e-3, eps: float = 1e-8,
) -> torch.Tensor:
    """PConv-Keras' forward in NHWC: W^T(X*M) * kH*kW / (sum(M) + eps) * clip(sum(M)) + b, [skip, up] concat.

    ``tail="exact"`` ends with LeakyReLU -> 1x1 conv -> sigmoid; ``tail="linear"`` with the documented
    approximation (LeakyReLU as identity, sigmoid as 0.5 + t/4).
    """
    w = {name: {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in ws.items()} for name, ws in layers}
    pconvs = [name for name, ws in layers if "img_kernel" in ws]
    bns = {}
    last = None
    for name, ws in layers:
        if "img_kernel" in ws:
            last = name
        elif "moving_mean" in ws:
            bns[last] = name
    n = len(pconvs) // 2

    def pconv(name: str, x: torch.Tensor, m: torch.Tensor, stride: int) -> tuple[torch.Tensor, torch.Tensor]:
        kernel = w[name]["img_kernel"]
        k = kernel.shape[0]
        pad = (k - 1) // 2
        mask_out = keras_conv(m, torch.ones_like(kernel), stride, pad)
        img_out = keras_conv(x * m, kernel, stride, pad)
        ratio = (k * k) / (mask_out + eps) if eps else torch.where(mask_out > 0, k * k / mask_out.clamp_min(1e-300), 0.0)
        mask_out = mask_out.clamp(0, 1)
        img_out = img_out * (ratio * mask_out) + w[name]["bias"]
        if name in bns:
            p = w[bns[name]]
            img_out = bn_eval(img_out, {"weight": p["gamma"], "bias": p["beta"], "running_mean": p["moving_mean"],
                                        "running_var": p["moving_variance"]}, bn_eps, axis=-1)
        return img_out, mask_out

    def up(x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)

    img = image.permute(0, 2, 3, 1)
    m = mask.expand_as(image).permute(0, 2, 3, 1)
    hs, ms = [img], [m]
    for i in range(n):
        h, hm = pconv(pconvs[i], hs[-1], ms[-1], 2)
        hs.append(F.relu(h))
        ms.append(hm)
    h, hm = hs[-1], ms[-1]
    for j in range(n):
        k = n - j
        cat_h = torch.cat([hs[k - 1], up(h)], dim=-1)
        cat_m = torch.cat([ms[k - 1], up(hm)], dim=-1)
        h, hm = pconv(pconvs[n + j], cat_h, cat_m, 1)
        if j < n - 1:
            h = F.leaky_relu(h, 0.2)
    out_w = w["outputs_img"]
    if tail == "exact":
        t = torch.einsum("bhwc,co->bhwo", F.leaky_relu(h, 0.2), out_w["kernel"][0, 0]) + out_w["bias"]
        out = torch.sigmoid(t)
    else:
        t = torch.einsum("bhwc,co->bhwo", h, out_w["kernel"][0, 0]) + out_w["bias"]
        out = 0.5 + t / 4
    return out.permute(0, 3, 1, 2)


# ---------------------------------------------------------------------------------------------- inputs


def random_inputs(seed: int, size: int, batch: int = 2, max_hole: float = 0.45) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [0, 1] and binary masks (B, 1, H, W) with a few rectangular holes."""
    g = _gen(seed)
    image = torch.rand(batch, 3, size, size, generator=g, dtype=F64)
    mask = torch.ones(batch, 1, size, size, dtype=F64)
    for b in range(batch):
        for _ in range(3):
            hh, ww = (torch.randint(1, max(2, int(size * max_hole)), (2,), generator=g)).tolist()
            top, left = torch.randint(0, size - hh + 1, (1,), generator=g).item(), torch.randint(0, size - ww + 1, (1,), generator=g).item()
            mask[b, :, top : top + hh, left : left + ww] = 0
    return image, mask


def tight(actual: torch.Tensor, expected: torch.Tensor, rtol: float = 1e-9, atol: float = 1e-9) -> None:
    assert actual.dtype == expected.dtype == F64
    actual, expected = actual.detach(), expected.detach()
    assert float(expected.std()) > 1e-3, "degenerate reference output"
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------------- naoto


@functools.lru_cache(maxsize=None)
def _naoto(layer_size: int, layout: str) -> tuple[dict[str, torch.Tensor], PConvUNet]:
    state = naoto_state(layer_size, layout)
    model, differences, _ = naoto_mod.convert_state_dict(state, layer_size=layer_size, dtype=F64)
    assert differences == []
    return state, model


@pytest.mark.parametrize("layout", ["new", "old"])
def test_naoto_matches_its_formula(layout: str) -> None:
    state, model = _naoto(4, layout)
    assert model.config["layer_size"] == 4 and model.config["base_channels"] == 64
    image, mask = random_inputs(1, 16)
    out, out_mask = model(image, mask)
    tight(out, naoto_reference(state, image, mask, 4))
    # the source feeds C_in-channel masks: the same mask repeated gives the same output, and masks that
    # differ per channel are counted per channel as in the source's all-ones mask convolution
    tight(model(image, mask.expand(-1, 3, -1, -1))[0], out)
    per_channel = torch.cat([mask, random_inputs(2, 16)[1], random_inputs(3, 16)[1]], dim=1)
    tight(model(image, per_channel)[0], naoto_reference(state, image, per_channel, 4))


@settings(max_examples=5)  # full 64..512 widths in float64: about 0.5 s per example
@given(seed=st.integers(0, 2**16))
def test_naoto_matches_on_random_masks(seed: int) -> None:
    state, model = _naoto(4, "new")
    image, mask = random_inputs(seed, 16, batch=1, max_hole=0.9)
    tight(model(image, mask)[0], naoto_reference(state, image, mask, 4))


def test_naoto_fewer_layers_than_modules() -> None:
    state = naoto_state(4, "new", seed=3)  # the source always builds enc_1..enc_4 / dec_1..dec_4
    model, _, ignored = naoto_mod.convert_state_dict(state, layer_size=3, dtype=F64)
    assert model.config["layer_size"] == 3
    assert any(k.startswith("enc_4.") for k in ignored) and any(k.startswith("dec_4.") for k in ignored)
    image, mask = random_inputs(2, 8)
    tight(model(image, mask)[0], naoto_reference(state, image, mask, 3))


def test_naoto_weights_are_rescaled_by_the_window_size() -> None:
    state, model = _naoto(4, "new")
    w = state["enc_2.conv.input_conv.weight"]
    torch.testing.assert_close(model.encoder[1].conv.weight, w / (64 * 5 * 5), rtol=0, atol=0)
    # the first layer has no bias in the source: pconv-kit's bias is zero
    assert torch.equal(model.encoder[0].conv.bias, torch.zeros(64, dtype=F64))


def test_naoto_module_prefix_and_checkpoint_wrapping(tmp_path: Path) -> None:
    state = {f"module.{k}": v.float() for k, v in naoto_state(4, "new", seed=5).items()}
    optimizer_state = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 2e-4, "params": [0]}]}
    torch.save({"n_iter": 1000, "model": state, "optimizer": optimizer_state}, tmp_path / "1000.pth")
    assert detect_format(tmp_path / "1000.pth") == "naoto"
    model, report = convert_checkpoint(tmp_path / "1000.pth")
    assert report.source == "naoto" and report.exact and model.config["mean"] == pytest.approx([0.485, 0.456, 0.406])


def test_naoto_errors() -> None:
    state = naoto_state(4, "new")
    bad = dict(state)
    bad["enc_2.conv.mask_conv.weight"] = bad["enc_2.conv.mask_conv.weight"] * 2
    with pytest.raises(InputValueError, match="enc_2.conv.mask_conv.weight should be all ones"):
        naoto_mod.convert_state_dict(bad)
    missing = {k: v for k, v in state.items() if not k.startswith("dec_2.")}
    with pytest.raises(InputValueError, match="layer dec_2 is missing"):
        naoto_mod.convert_state_dict(missing)
    wrong = dict(state)
    wrong["enc_3.conv.input_conv.weight"] = torch.zeros(256, 100, 5, 5)
    wrong["enc_3.conv.mask_conv.weight"] = torch.ones(256, 100, 5, 5)
    with pytest.raises(InputValueError, match=r"layer enc_3 has weight of shape \(256, 100, 5, 5\).*needs \(256, 128, 5, 5\)"):
        naoto_mod.convert_state_dict(wrong)
    with pytest.raises(InputValueError, match="layer_size must be between 1 and 4"):
        naoto_mod.convert_state_dict(state, layer_size=5)


# ---------------------------------------------------------------------------------------------- mmagic


@functools.lru_cache(maxsize=None)
def _mmagic(channel_order: str = "bgr") -> tuple[dict[str, torch.Tensor], PConvUNet, list[str]]:
    state = mmagic_state(4, 4, seed=11)
    model, differences, ignored = mmagic_mod.convert_state_dict(state, channel_order=channel_order, dtype=F64)
    assert differences == []
    return state, model, ignored


@pytest.mark.parametrize("channel_order", ["bgr", "rgb"])
def test_mmagic_matches_its_formula(channel_order: str) -> None:
    state, model, ignored = _mmagic(channel_order)
    assert ignored == ["loss_composed_percep.vgg.vgg_layers.0.weight"]
    assert model.config["mean"] == [0.5] * 3 and model.config["std"] == [0.5] * 3
    image, mask = random_inputs(4, 32)
    out = model(image, mask)[0]
    bgr = channel_order == "bgr"
    # without the source's epsilon in sum(M) + eps, the two agree to rounding; with it, to its relative 1e-8
    tight(out, mmagic_reference(state, image, mask, 4, eps=0.0, bgr=bgr))
    tight(out, mmagic_reference(state, image, mask, 4, eps=1e-8, bgr=bgr), rtol=1e-6, atol=1e-6)
    # the channel order matters: the RGB-trained reading of the same weights gives another function
    assert not torch.allclose(out, mmagic_reference(state, image, mask, 4, eps=0.0, bgr=not bgr), atol=1e-3)


@settings(max_examples=12)
@given(seed=st.integers(0, 2**16))
def test_mmagic_matches_on_random_masks(seed: int) -> None:
    state, model, _ = _mmagic()
    image, mask = random_inputs(seed, 16, batch=1, max_hole=0.9)
    tight(model(image, mask)[0], mmagic_reference(state, image, mask, 4, eps=0.0))


def test_mmagic_checkpoint_file_legacy_format_with_metadata(tmp_path: Path) -> None:
    state = {k: v.float() for k, v in mmagic_state(4, 4, seed=11).items()}
    meta = {"mmedit_version": "0.4.0", "config": "model = dict(type='PConvInpaintor')", "iter": 500000,
            "time": "Fri Jun 19 2020", "hook_msgs": {"last_ckpt": "iter_500000.pth"}}
    path = tmp_path / "pconv_256x256_stage2_4x2_places_20200619-00000000.pth"
    torch.save({"meta": meta, "state_dict": OrderedDict(state)}, path, _use_new_zipfile_serialization=False)
    assert detect_format(path) == "mmagic"
    model, report = convert_checkpoint(path)
    assert report.exact and report.source == "mmagic" and model.config["layer_size"] == 4
    reference = _mmagic()[1]
    for (k, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items()):
        torch.testing.assert_close(a, b.to(a.dtype), rtol=1e-6, atol=1e-7, msg=k)


def test_mmagic_raw_generator_state_and_errors() -> None:
    raw = mmagic_state(4, 4, seed=2, prefix="")
    assert mmagic_mod.matches(raw)
    model, _, _ = mmagic_mod.convert_state_dict(raw, channel_order="rgb", dtype=F64)
    image, mask = random_inputs(6, 16)
    tight(model(image, mask)[0], mmagic_reference(raw, image, mask, 4, eps=0.0, bgr=False))
    single = dict(raw)
    single["encoder.enc2.conv.weight_mask_updater"] = torch.ones(1, 1, 5, 5)
    with pytest.raises(InputValueError, match="multi_channel=True"):
        mmagic_mod.convert_state_dict(single)
    with pytest.raises(InputValueError, match="channel_order must be"):
        mmagic_mod.convert_state_dict(raw, channel_order="brg")


def test_full_size_architectures_map() -> None:
    """The published layouts (naoto: 7 layers, mmagic: 7 layers, keras: 8 layers, widths 64..512) fit."""
    model, _, _ = naoto_mod.convert_state_dict(naoto_state(7, "new"))
    assert model.config["layer_size"] == 7 and model.config["base_channels"] == 64
    model, _, _ = mmagic_mod.convert_state_dict(mmagic_state(7, 64))
    assert model.config["layer_size"] == 7 and model.config["base_channels"] == 64
    model, differences, _ = keras_mod.convert_layers(keras_layers(8, 64))
    assert model.config["layer_size"] == 8 and model.config["base_channels"] == 64
    assert differences == list(keras_mod.DIFFERENCES)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in PConvUNet().parameters())


# ---------------------------------------------------------------------------------------------- keras


@functools.lru_cache(maxsize=None)
def _keras() -> tuple[list[tuple[str, dict[str, np.ndarray]]], PConvUNet]:
    layers = keras_layers(4, 4, seed=21)
    model, differences, ignored = keras_mod.convert_layers(layers, dtype=F64)
    assert differences == list(keras_mod.DIFFERENCES)
    assert "activation_1" not in ignored  # weightless layers are not "ignored weights"
    return layers, model


def test_keras_matches_its_formula_with_the_documented_tail() -> None:
    layers, model = _keras()
    assert model.config["mean"] == [0.0] * 3 and model.config["std"] == [1.0] * 3
    image, mask = random_inputs(7, 32, max_hole=0.3)
    out, out_mask = model(image, mask)
    assert bool(out_mask.all()), "test masks must leave no pixel unreachable"
    tight(out, keras_reference(layers, image, mask, tail="linear", eps=0.0))
    tight(out, keras_reference(layers, image, mask, tail="linear", eps=1e-8), rtol=1e-6, atol=1e-6)
    # what differs is the tail only: the exact Keras output is another function of the same features
    exact = keras_reference(layers, image, mask, tail="exact")
    assert not torch.allclose(out, exact, atol=1e-3)


@settings(max_examples=12)
@given(seed=st.integers(0, 2**16))
def test_keras_matches_on_random_masks(seed: int) -> None:
    layers, model = _keras()
    image, mask = random_inputs(seed, 16, batch=1, max_hole=0.4)
    out, out_mask = model(image, mask)
    valid = out_mask.expand_as(out).bool()  # Keras adds biases where no valid pixel was seen; pconv-kit does not
    expected = keras_reference(layers, image, mask, tail="linear", eps=0.0)
    torch.testing.assert_close(out[valid], expected[valid], rtol=1e-9, atol=1e-9)


def test_keras_h5_files(tmp_path: Path) -> None:
    layers, model = _keras()
    weights_file = tmp_path / "weights.26-1.07.h5"
    write_keras_h5(weights_file, layers)
    assert detect_format(weights_file) == "keras"
    with pytest.warns(ConversionWarning, match="LeakyReLU"):
        converted, report = convert_checkpoint(weights_file, dtype=F64)
    assert not report.exact and report.differences == keras_mod.DIFFERENCES
    for (k, a), (_, b) in zip(converted.state_dict().items(), model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    # a full model file (model.save) stores the config, whose BatchNorm epsilon is used
    config = {"class_name": "Model", "config": {"layers": [
        {"class_name": "BatchNormalization", "config": {"name": name, "epsilon": 2e-3}}
        for name, ws in layers if "moving_mean" in ws
    ]}}
    full_file = tmp_path / "model.h5"
    write_keras_h5(full_file, layers, model_config=config)
    with pytest.warns(ConversionWarning):
        converted, _ = convert_checkpoint(full_file, source="keras", dtype=F64)
    image, mask = random_inputs(8, 16, max_hole=0.3)
    tight(converted(image, mask)[0], keras_reference(layers, image, mask, bn_eps=2e-3, eps=0.0))


def test_keras_structure_errors() -> None:
    layers = keras_layers(4, 4, seed=1)
    no_tail = [item for item in layers if item[0] != "outputs_img"]
    with pytest.raises(InputValueError, match="no output convolution"):
        keras_mod.convert_layers(no_tail)
    odd = [item for item in layers if item[0] != "p_conv2d_5"]
    with pytest.raises(InputValueError):
        keras_mod.convert_layers(odd)
    enc_bn1 = next(item for item in layers if item[0] == "EncBN1")
    moved = [item for item in layers if item[0] != "EncBN1"]
    i = next(k for k, (n, _) in enumerate(moved) if n == "EncBN2")
    moved.insert(i + 1, enc_bn1)  # two BatchNorms after one convolution, none after p_conv2d_2
    with pytest.raises(InputValueError, match="EncBN1 does not follow a partial convolution"):
        keras_mod.convert_layers(moved)


def test_keras_without_h5py(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "w.h5"
    write_keras_h5(path, keras_layers(2, 2))
    import builtins

    real_import = builtins.__import__

    def no_h5py(name: str, *args: object, **kwargs: object) -> object:
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(InputValueError, match=r'pip install "pconv-kit\[keras\]"'):
        convert_checkpoint(path)


# ---------------------------------------------------------------------------------------------- files, detection


def test_convert_writes_a_loadable_model_with_metadata(tmp_path: Path) -> None:
    src = tmp_path / "ckpt.pth"
    torch.save({"state_dict": mmagic_state(4, 4, seed=11)}, src)
    dst = tmp_path / "out" / "mmagic.safetensors"
    report = convert(src, dst)
    loaded = load_model(dst)
    config, metadata = read_model_config(dst)
    assert config == report.config == loaded.config
    assert metadata["pconv_kit.convert.source"] == "mmagic"
    assert metadata["pconv_kit.convert.exact"] == "true"
    assert metadata["pconv_kit.convert.source_file"] == "ckpt.pth"
    assert json.loads(metadata["pconv_kit.convert.differences"]) == []
    assert (tmp_path / "out" / "mmagic.safetensors.json").is_file()
    image, mask = random_inputs(9, 16)
    expected = mmagic_reference(mmagic_state(4, 4, seed=11), image, mask, 4)
    torch.testing.assert_close(loaded(image.float(), mask.float())[0], expected.float(), rtol=1e-4, atol=1e-4)
    with pytest.raises(InputValueError, match="already exists"):
        convert(src, dst)
    before = loaded.state_dict()
    convert(src, dst, overwrite=True)
    after = load_model(dst).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # deterministic
    with pytest.raises(InputValueError, match=r"\.safetensors"):
        convert(src, tmp_path / "out.pth")
    with pytest.raises(InputValueError, match="already a pconv-kit model"):
        convert(dst, tmp_path / "again.safetensors")
    assert detect_format(dst) == "pconv-kit"


def test_state_dicts_in_safetensors_files(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.float().contiguous() for k, v in naoto_state(4, "new").items()}, str(tmp_path / "naoto.safetensors"))
    assert detect_format(tmp_path / "naoto.safetensors") == "naoto"


def test_unknown_and_invalid_files(tmp_path: Path) -> None:
    torch.save({"model": {"backbone.conv1.weight": torch.zeros(2, 3, 3, 3), "fc.bias": torch.zeros(2)}}, tmp_path / "other.pth")
    with pytest.raises(UnknownFormatError, match=r"found 2 tensors: backbone.conv1.weight, fc.bias"):
        detect_format(tmp_path / "other.pth")
    with pytest.raises(InputValueError, match="does not have naoto0804's key layout"):
        convert_checkpoint(tmp_path / "other.pth", source="naoto")
    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(InputValueError, match="not a PyTorch checkpoint"):
        detect_format(tmp_path / "notes.pth")
    torch.save({"epoch": 3, "optimizer": {}}, tmp_path / "nostate.pth")
    with pytest.raises(InputValueError, match=r"top-level keys: 'epoch' \(int\), 'optimizer' \(dict\)"):
        detect_format(tmp_path / "nostate.pth")
    with pytest.raises(WeightsNotFoundError):
        detect_format(tmp_path / "missing.pth")
    with pytest.raises(InputValueError, match="source must be"):
        convert_checkpoint(tmp_path / "other.pth", source="caffe")
    torch.save({"state_dict": mmagic_state(2, 2)}, tmp_path / "m.pth")
    torch.save(naoto_state(4, "new"), tmp_path / "n.pth")
    with pytest.raises(InputValueError, match="channel_order applies to mmagic"):
        convert_checkpoint(tmp_path / "n.pth", source="naoto", channel_order="bgr")
    with pytest.raises(InputValueError, match="mmagic's key layout"):
        convert_checkpoint(tmp_path / "n.pth", source="mmagic")
    with pytest.raises(InputValueError, match="HDF5"):
        convert_checkpoint(tmp_path / "m.pth", source="keras")
    assert set(SOURCES) == {"naoto", "mmagic", "keras"}


# ---------------------------------------------------------------------------------------------- safe loading

TRIPWIRE: list[object] = []


def _tripwire(*args: object) -> object:
    TRIPWIRE.append(args)
    return args


class CodeInMetadata:
    """Pickles as a call to _tripwire: a checkpoint that would run code when unpickled without weights_only."""

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (_tripwire, ("side effect",))


class AttrDict(dict):
    """A dict subclass, like mmcv's ConfigDict, as it may appear in a checkpoint's meta."""


class ListSub(list):
    """A list subclass."""


class RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_load_torch_file_never_runs_foreign_code(tmp_path: Path, zip_format: bool) -> None:
    meta = {"code": CodeInMetadata(), "scalar": np.float64(1.5), "cfg": AttrDict(a=1, b="x"), "plain": [1, "two"],
            "counts": defaultdict(list, a=[1]), "items": ListSub([3, 4])}
    path = tmp_path / "ckpt.pth"
    torch.save({"meta": meta, "state_dict": {"w": torch.arange(3.0)}}, path, _use_new_zipfile_serialization=zip_format)
    TRIPWIRE.clear()
    loaded = load_torch_file(path)
    assert TRIPWIRE == []
    assert torch.equal(loaded["state_dict"]["w"], torch.arange(3.0))
    assert isinstance(loaded["meta"]["code"], OpaqueObject)
    assert loaded["meta"]["code"].global_name.endswith("_tripwire") and loaded["meta"]["code"].args == ("side effect",)
    assert isinstance(loaded["meta"]["scalar"], OpaqueObject)
    assert dict(loaded["meta"]["cfg"]) == {"a": 1, "b": "x"} and not isinstance(loaded["meta"]["cfg"], AttrDict)
    assert loaded["meta"]["plain"] == [1, "two"]
    assert dict(loaded["meta"]["counts"]) == {"a": [1]} and loaded["meta"]["items"] == [3, 4]
    assert type(loaded["meta"]["items"]) is list
    # the allowlist is back to normal afterwards
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)

    marker = tmp_path / "executed"
    torch.save({"meta": RunsShell(marker), "state_dict": {}}, tmp_path / "evil.pth", _use_new_zipfile_serialization=zip_format)
    with pytest.raises(InputValueError, match="cannot be read safely"):
        load_torch_file(tmp_path / "evil.pth")
    assert not marker.exists()


def test_opaque_object_in_place_of_a_tensor(tmp_path: Path) -> None:
    state = mmagic_state(2, 2)
    bad = {"state_dict": {**{k: v for k, v in state.items()}, "generator.encoder.enc1.conv.weight": CodeInMetadata()}}
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(InputValueError, match="no state dict"):
        convert_checkpoint(tmp_path / "bad.pth")


def test_doctests() -> None:
    for module in (convert_pkg, convert_pkg._torchfile):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_no_unexpected_warnings_for_exact_sources(tmp_path: Path) -> None:
    torch.save(naoto_state(4, "new"), tmp_path / "n.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert(tmp_path / "n.pth", tmp_path / "n.safetensors")


def test_library_errors_name_parameters_not_command_line_flags(tmp_path: Path) -> None:
    dst = tmp_path / "exists.safetensors"
    dst.write_bytes(b"")
    with pytest.raises(InputValueError, match="already exists; pass overwrite=True to replace it") as info:
        convert(tmp_path / "any.pth", dst)
    assert "--" not in str(info.value)
