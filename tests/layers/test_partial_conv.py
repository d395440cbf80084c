"""Tests of partial_conv2d / PartialConv2d: reference implementations, properties, gradients, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.conftest import tolerance
from pconv_kit import PartialConv2d, partial_conv2d
from pconv_kit.errors import InputValueError, ShapeError
from pconv_kit.layers import partial_conv2d_from_count


def loop_reference(x, mask, weight, bias, stride, padding, dilation, groups):
    """Direct evaluation of the paper's formula with explicit loops (float64 numpy).

    For groups > 1 the valid fraction is measured over all input channels, as NVIDIA's multi_channel layer
    does, so the output mask is shared by all output channels.
    """
    x = x.double().numpy()
    m = mask.double().expand_as(torch.as_tensor(x)).numpy()
    w = weight.double().numpy()
    b = None if bias is None else bias.double().numpy()
    B, C, H, W = x.shape
    O, Cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    mp = np.pad(m, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho = (H + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    Wo = (W + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((B, O, Ho, Wo))
    new_mask = np.zeros((B, 1, Ho, Wo))
    og = O // groups
    for n, i, j in itertools.product(range(B), range(Ho), range(Wo)):
        rows = [i * stride + dilation * a for a in range(kh)]
        cols = [j * stride + dilation * c for c in range(kw)]
        win_m_all = mp[n][:, rows][:, :, cols]  # (C, kh, kw)
        sum_m = win_m_all.sum()
        sum_1 = C * kh * kw
        if sum_m == 0:
            continue
        new_mask[n, 0, i, j] = 1
        for o in range(O):
            g = o // og
            chans = slice(g * Cg, (g + 1) * Cg)
            win_x = xp[n, chans][:, rows][:, :, cols]
            win_m = mp[n, chans][:, rows][:, :, cols]
            val = (w[o] * win_x * win_m).sum() * sum_1 / sum_m
            out[n, o, i, j] = val + (0 if b is None else b[o])
    return torch.from_numpy(out), torch.from_numpy(new_mask)


def nvidia_style(x, mask, weight, bias, stride, padding, dilation, groups):
    """NVIDIA's multi_channel formulation: a second full C_out x C_in convolution of ones over the mask."""
    mask = mask.expand_as(x)
    out_channels, _, kh, kw = weight.shape
    updater = torch.ones(out_channels, x.shape[1], kh, kw, dtype=x.dtype)
    slide_winsize = updater.shape[1] * kh * kw
    update = F.conv2d(mask, updater, None, stride, padding, dilation, groups=1)
    ratio = slide_winsize / (update + 1e-8)
    update = update.clamp(0, 1)
    ratio = ratio * update
    raw = F.conv2d(x * mask, weight, bias, stride, padding, dilation, groups)
    if bias is None:
        return raw * ratio, update[:, :1]
    b = bias.view(1, -1, 1, 1)
    return ((raw - b) * ratio + b) * update, update[:, :1]


def random_mask(shape, p_hole, generator):
    return (torch.rand(shape, generator=generator, dtype=torch.float64) >= p_hole).double()


conv_configs = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 2),
        "groups": st.sampled_from([1, 2]),
        "cin_per_group": st.integers(1, 3),
        "cout_per_group": st.integers(1, 3),
        "kernel": st.tuples(st.integers(1, 4), st.integers(1, 4)),
        "stride": st.integers(1, 2),
        "padding": st.integers(0, 2),
        "dilation": st.integers(1, 2),
        "size": st.tuples(st.integers(5, 9), st.integers(5, 9)),
        "per_channel": st.booleans(),
        "bias": st.booleans(),
        "p_hole": st.sampled_from([0.0, 0.3, 0.7, 1.0]),
        "seed": st.integers(0, 2**16),
    }
).filter(
    lambda c: all(
        c["dilation"] * (k - 1) + 1 <= n + 2 * c["padding"] for k, n in zip(c["kernel"], c["size"])
    )
)


def make_case(cfg):
    g = torch.Generator().manual_seed(cfg["seed"])
    cin, cout = cfg["cin_per_group"] * cfg["groups"], cfg["cout_per_group"] * cfg["groups"]
    H, W = cfg["size"]
    x = torch.randn(cfg["batch"], cin, H, W, generator=g, dtype=torch.float64)
    mc = cin if cfg["per_channel"] else 1
    mask = random_mask((cfg["batch"], mc, H, W), cfg["p_hole"], g)
    weight = torch.randn(cout, cfg["cin_per_group"], *cfg["kernel"], generator=g, dtype=torch.float64)
    bias = torch.randn(cout, generator=g, dtype=torch.float64) if cfg["bias"] else None
    kw = {"stride": cfg["stride"], "padding": cfg["padding"], "dilation": cfg["dilation"], "groups": cfg["groups"]}
    return x, mask, weight, bias, kw


@given(conv_configs)
def test_matches_loop_reference(cfg):
    x, mask, weight, bias, kw = make_case(cfg)
    out, new_mask = partial_conv2d(x, mask, weight, bias, **kw)
    ref_out, ref_mask = loop_reference(x, mask, weight, bias, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    torch.testing.assert_close(out, ref_out, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(new_mask, ref_mask)


@given(conv_configs)
def test_matches_nvidia_multichannel_formulation(cfg):
    x, mask, weight, bias, kw = make_case(cfg)
    out, new_mask = partial_conv2d(x, mask, weight, bias, **kw)
    ref_out, ref_mask = nvidia_style(x, mask, weight, bias, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-7)
    torch.testing.assert_close(new_mask, ref_mask)


@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_all_ones_mask_equals_conv2d_away_from_border(padding, stride):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 5, 5, stride=stride, padding=padding).double()
    pconv = PartialConv2d(4, 5, 5, stride=stride, padding=padding).double()
    pconv.load_state_dict(conv.state_dict())
    x = torch.randn(2, 4, 17, 15, dtype=torch.float64)
    out, new_mask = pconv(x, torch.ones(2, 1, 17, 15, dtype=torch.float64))
    ref = conv(x)
    assert bool(new_mask.all())
    # Output positions whose window lies fully inside the image see no zero padding.
    first = -(-padding // stride)
    last_h = (17 + padding - 5) // stride
    last_w = (15 + padding - 5) // stride
    inner = (slice(None), slice(None), slice(first, last_h + 1), slice(first, last_w + 1))
    torch.testing.assert_close(out[inner], ref[inner])
    if padding == 0:
        torch.testing.assert_close(out, ref)
    else:  # at the border the padded zeros are treated as holes and the result is re-weighted
        assert not torch.allclose(out, ref)


def test_hole_windows_give_zero_output_and_mask():
    torch.manual_seed(0)
    x = torch.randn(1, 3, 12, 12)
    mask = torch.ones(1, 1, 12, 12)
    mask[..., 2:10, 2:10] = 0
    layer = PartialConv2d(3, 4, 3, padding=1, bias=True)
    nn.init.constant_(layer.bias, 5.0)
    out, new_mask = layer(x, mask)
    inside = (..., slice(3, 9), slice(3, 9))  # windows entirely within the hole
    assert torch.count_nonzero(out[inside]) == 0
    assert torch.count_nonzero(new_mask[inside]) == 0
    assert bool((new_mask[..., 2, 2:10] == 1).all())  # the ring of the hole sees valid neighbours


def test_values_in_hole_do_not_matter():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10, 10)
    mask = (torch.rand(2, 1, 10, 10) > 0.5).float()
    y = x + (1 - mask) * torch.randn_like(x) * 100
    w = torch.randn(4, 3, 3, 3)
    torch.testing.assert_close(partial_conv2d(x, mask, w, padding=1)[0], partial_conv2d(y, mask, w, padding=1)[0])


@given(
    st.integers(0, 2**16),
    st.sampled_from([1, 3, 5]),
    st.floats(0.0, 1.0),
    st.booleans(),
)
def test_new_mask_binary_and_keeps_valid_pixels_at_stride_one(seed, k, p_hole, per_channel):
    g = torch.Generator().manual_seed(seed)
    c = 3
    mask = random_mask((2, c if per_channel else 1, 9, 11), p_hole, g).float()
    x = torch.rand(2, c, 9, 11, generator=g)
    _, new_mask = partial_conv2d(x, mask, torch.randn(2, c, k, k, generator=g), padding=k // 2)
    assert set(new_mask.unique().tolist()) <= {0.0, 1.0}
    any_valid = mask.amax(dim=1, keepdim=True)
    assert bool((new_mask >= any_valid).all()), "a valid input pixel became a hole"
    # and it grows by at most k // 2 pixels: dilation of the valid region by the kernel
    expected = F.max_pool2d(any_valid, k, stride=1, padding=k // 2)
    torch.testing.assert_close(new_mask, expected)


@given(st.integers(0, 2**16), st.integers(1, 2), st.sampled_from([1, 2]))
def test_broadcast_mask_equals_expanded_mask(seed, stride, groups):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 9, 9, generator=g, dtype=torch.float64)
    mask = random_mask((2, 1, 9, 9), 0.4, g)
    w = torch.randn(6, 4 // groups, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    a = partial_conv2d(x, mask, w, b, stride=stride, padding=1, groups=groups)
    e = partial_conv2d(x, mask.expand(-1, 4, -1, -1).contiguous(), w, b, stride=stride, padding=1, groups=groups)
    torch.testing.assert_close(a, e)


def test_batch_equals_per_item():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    mask = (torch.rand(4, 3, 12, 12) > 0.5).double()
    layer = PartialConv2d(3, 5, 3, stride=2, padding=1).double()
    out, new_mask = layer(x, mask)
    for i in range(4):
        o, m = layer(x[i : i + 1], mask[i : i + 1])
        torch.testing.assert_close(out[i : i + 1], o)
        torch.testing.assert_close(new_mask[i : i + 1], m)


def test_module_equals_function():
    torch.manual_seed(0)
    layer = PartialConv2d(4, 6, (3, 5), stride=(1, 2), padding=(1, 2), dilation=(1, 1), groups=2)
    x, mask = torch.randn(2, 4, 10, 12), (torch.rand(2, 1, 10, 12) > 0.3).float()
    out, new_mask = layer(x, mask)
    ref = partial_conv2d(x, mask, layer.weight, layer.bias, (1, 2), (1, 2), 1, 2)
    torch.testing.assert_close(out, ref[0])
    torch.testing.assert_close(new_mask, ref[1])


def test_count_form_equals_mask_form():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8, 8, dtype=torch.float64)
    m1, m2 = (torch.rand(2, 1, 8, 8) > 0.5).double(), (torch.rand(2, 1, 8, 8) > 0.5).double()
    full = torch.cat([m1.expand(-1, 2, -1, -1), m2.expand(-1, 3, -1, -1)], 1)
    w = torch.randn(3, 5, 3, 3, dtype=torch.float64)
    count = 2 * m1 + 3 * m2
    torch.testing.assert_close(
        partial_conv2d_from_count(x * full, count, 5, w, padding=1), partial_conv2d(x, full, w, padding=1)
    )


def test_state_dict_is_that_of_conv2d():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    pconv = PartialConv2d(3, 8, 3, padding=1)
    assert pconv.state_dict().keys() == conv.state_dict().keys()
    pconv.load_state_dict(conv.state_dict())
    assert "partial=True" in repr(pconv)


def test_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    mask = (torch.rand(2, 3, 6, 6) > 0.4).double()
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: partial_conv2d(x, mask, w, b, 2, 1)[0], (x, w, b))
    assert torch.autograd.gradgradcheck(lambda x, w, b: partial_conv2d(x, mask, w, b, 1, 1)[0], (x, w, b))


def test_dtypes_and_devices(dtype, device):
    torch.manual_seed(0)
    x = torch.rand(2, 8, 16, 16, dtype=torch.float64)
    mask = (torch.rand(2, 8, 16, 16) > 0.5).double()
    layer = PartialConv2d(8, 16, 3, padding=1).double()
    ref_out, ref_mask = layer(x, mask)
    layer = layer.to(device=device, dtype=dtype)
    out, new_mask = layer(x.to(device, dtype), mask.to(device, dtype))
    assert out.dtype == dtype and new_mask.dtype == dtype and out.device.type == device.type
    torch.testing.assert_close(out.double().cpu(), ref_out, **tolerance(dtype))
    torch.testing.assert_close(new_mask.double().cpu(), ref_mask)


def test_channels_last_gives_same_result():
    torch.manual_seed(0)
    layer = PartialConv2d(8, 16, 3, padding=1)
    x, mask = torch.rand(2, 8, 16, 16), (torch.rand(2, 1, 16, 16) > 0.5).float()
    ref = layer(x, mask)
    out = layer.to(memory_format=torch.channels_last)(
        x.contiguous(memory_format=torch.channels_last), mask.contiguous(memory_format=torch.channels_last)
    )
    torch.testing.assert_close(out[0], ref[0])
    torch.testing.assert_close(out[1], ref[1])


def test_changing_masks_between_calls_is_stateless():
    torch.manual_seed(0)
    layer = PartialConv2d(3, 4, 3, padding=1)
    x = torch.rand(1, 3, 8, 8)
    m1, m2 = torch.ones(1, 1, 8, 8), (torch.rand(1, 1, 8, 8) > 0.5).float()
    first = layer(x, m1)[0]
    layer(x, m2)
    torch.testing.assert_close(layer(x, m1)[0], first)


def test_soft_mask_weights_between_zero_and_one():
    x = torch.ones(1, 1, 3, 3)
    w = torch.ones(1, 1, 3, 3)
    mask = torch.full((1, 1, 3, 3), 0.5)
    out, new_mask = partial_conv2d(x, mask, w)
    # sum(W * X * M) * sum(1) / sum(M) = 4.5 * 9 / 4.5
    torch.testing.assert_close(out, torch.full((1, 1, 1, 1), 9.0))
    assert new_mask.item() == 1.0


@pytest.mark.parametrize(
    ("x_shape", "mask_shape", "w_shape", "groups", "error", "match"),
    [
        ((2, 3, 8, 8), (2, 2, 8, 8), (4, 3, 3, 3), 1, ShapeError, r"\(B, 1, H, W\) = \(2, 1, 8, 8\)"),
        ((2, 3, 8, 8), (1, 1, 8, 8), (4, 3, 3, 3), 1, ShapeError, "got \\(1, 1, 8, 8\\)"),
        ((2, 3, 8, 8), (2, 1, 8, 7), (4, 3, 3, 3), 1, ShapeError, "mask must have shape"),
        ((2, 3, 8, 8), (2, 1, 8, 8), (4, 2, 3, 3), 1, ShapeError, "weight must have shape"),
        ((2, 4, 8, 8), (2, 1, 8, 8), (4, 4, 3, 3), 3, InputValueError, "groups=3 must divide"),
        ((3, 8, 8), (1, 8, 8), (4, 3, 3, 3), 1, ShapeError, "input must have 4 dimensions"),
    ],
)
def test_shape_errors(x_shape, mask_shape, w_shape, groups, error, match):
    with pytest.raises(error, match=match):
        partial_conv2d(torch.rand(x_shape), torch.ones(mask_shape), torch.rand(w_shape), groups=groups)


def test_integer_mask_and_bad_bias_are_rejected():
    x, w = torch.rand(1, 3, 8, 8), torch.rand(4, 3, 3, 3)
    with pytest.raises(InputValueError, match="floating point"):
        partial_conv2d(x, torch.ones(1, 1, 8, 8, dtype=torch.int64), w)
    with pytest.raises(ShapeError, match=r"bias must have shape \(4,\)"):
        partial_conv2d(x, torch.ones(1, 1, 8, 8), w, torch.zeros(3))
    with pytest.raises(InputValueError, match="integer padding"):
        PartialConv2d(3, 4, 3, padding="same")  # type: ignore[arg-type]


def test_torch_compile_matches_eager():
    torch.manual_seed(0)
    layer = PartialConv2d(3, 4, 3, padding=1)
    x, m1 = torch.rand(1, 3, 8, 8), (torch.rand(1, 1, 8, 8) > 0.5).float()
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    for mask in (m1, 1 - m1):
        torch.testing.assert_close(compiled(x, mask), layer(x, mask))
