"""Benchmark 1: ``PartialConv2d`` forward + backward against ``nn.Conv2d`` of the same configuration.

The shapes are those of PConvUNet's layers (paper network, ``layer_size=8``) for a given image size: the
stride-2 encoder (7x7, 5x5, 3x3) and the stride-1 3x3 decoder layers that see the concatenation of the
upsampled features and the skip connection, plus the head. Three mask forms are timed:

- ``broadcast``: ``layer(x, mask)`` with a ``(B, 1, H, W)`` mask;
- ``per-channel``: ``layer(x, mask)`` with a ``(B, C_in, H, W)`` mask (for decoder layers, the concatenation
  of two single-channel masks expanded to their features' widths, as the reference implementation builds);
- ``count``: ``layer.forward_count(x * m, count, C_in)``, the form PConvUNet uses (masked input and the
  per-pixel channel count, no per-channel mask ever built).

Each configuration times ``out.backward(grad)`` after the forward pass, with gradients for the parameters
(the weights' ``.grad`` reset to ``None`` each call, as an optimiser's ``zero_grad`` does) and for the input
of every layer but the first (whose input is the image), so the timed work is what one layer costs in a
training step. The convolutions have no bias (every PConvUNet layer but the first and the head is followed
by BatchNorm).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from benchmarks.common import compare, ratio_columns
from pconv_kit import PartialConv2d

__all__ = ["LayerShape", "unet_layer_shapes", "run"]

MASK_MODES = ("broadcast", "per-channel", "count")


@dataclass(frozen=True)
class LayerShape:
    """One convolution of the U-Net: input size and channels; ``split`` is the decoder's concat split."""

    name: str
    in_channels: int
    out_channels: int
    kernel: int
    stride: int
    size: int  # input height = width
    split: int | None = None  # channels of the upsampled part of a decoder concatenation

    def describe(self) -> str:
        return f"{self.in_channels}->{self.out_channels} {self.kernel}x{self.kernel} s{self.stride} @{self.size}"


def unet_layer_shapes(image_size: int = 512, layer_size: int = 8, base_channels: int = 64) -> list[LayerShape]:
    """Every convolution of ``PConvUNet(layer_size, base_channels)`` at ``image_size``: the encoder, the
    decoder (deepest first) and the head, skipping layers whose input would be smaller than 2x2."""
    channels = [3] + [base_channels * min(2**i, 8) for i in range(layer_size)]
    kernels = [7, 5, 5] + [3] * max(0, layer_size - 3)
    shapes: list[LayerShape] = []
    for i in range(layer_size):
        size = image_size >> i
        if size >= 2:
            shapes.append(LayerShape(f"enc{i + 1}", channels[i], channels[i + 1], kernels[i], 2, size))
    for k in range(layer_size, 1, -1):
        size = image_size >> (k - 1)
        if size >= 2:
            cin = channels[k] + channels[k - 1]
            shapes.append(LayerShape(f"dec{k}", cin, channels[k - 1], 3, 1, size, split=channels[k]))
    shapes.append(LayerShape("head", channels[1] + 3, 3, 3, 1, image_size, split=channels[1]))
    return shapes


def _hole_mask(batch: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """A (B, 1, size, size) mask with rectangular holes covering roughly a quarter of the image."""
    mask = torch.ones(batch, 1, size, size)
    for b in range(batch):
        for _ in range(3):
            h, w = (torch.randint(max(1, size // 8), max(2, size // 3), (2,), generator=generator)).tolist()
            top = int(torch.randint(0, size - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, size - w + 1, (1,), generator=generator))
            mask[b, :, top : top + h, left : left + w] = 0
    return mask


def _case(
    shape: LayerShape, batch: int, mode: str, device: torch.device, channels_last: bool, generator: torch.Generator
) -> tuple[Any, Any]:
    """Return ``(conv_step, pconv_step)``: zero-argument callables running forward + backward once."""
    conv = nn.Conv2d(shape.in_channels, shape.out_channels, shape.kernel, shape.stride, shape.kernel // 2, bias=False)
    pconv = PartialConv2d(
        shape.in_channels, shape.out_channels, shape.kernel, shape.stride, shape.kernel // 2, bias=False
    )
    pconv.load_state_dict(conv.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = conv.to(device, memory_format=fmt)
    pconv = pconv.to(device, memory_format=fmt)
    x = torch.rand(batch, shape.in_channels, shape.size, shape.size, generator=generator)
    m1 = _hole_mask(batch, shape.size, generator)
    if shape.split is not None:  # decoder: upsampled part has its own (slightly different) mask
        m_up = torch.nn.functional.max_pool2d(m1, 3, 1, 1)
        mask_parts = [(m_up, shape.split), (m1, shape.in_channels - shape.split)]
    else:
        mask_parts = [(m1, shape.in_channels)]
    if mode == "broadcast":
        mask = m1
    else:
        mask = torch.cat([m.expand(-1, c, -1, -1) for m, c in mask_parts], dim=1)
    count = sum(m * c for m, c in mask_parts)
    x = x.to(device).contiguous(memory_format=fmt)
    mask = mask.to(device).contiguous(memory_format=fmt)
    masked = (x * mask).contiguous(memory_format=fmt)
    count = count.to(device)
    # The first layer's input is the image, which needs no gradient; every other layer's input does.
    x.requires_grad_(shape.name != "enc1")
    masked.requires_grad_(shape.name != "enc1")
    out_size = (shape.size + 2 * (shape.kernel // 2) - shape.kernel) // shape.stride + 1
    grad = torch.rand(batch, shape.out_channels, out_size, out_size, generator=generator).to(device)
    grad = grad.contiguous(memory_format=fmt)

    def conv_step() -> None:
        conv.weight.grad = None
        x.grad = None
        conv(x).backward(grad)

    if mode == "count":

        def pconv_step() -> None:
            pconv.weight.grad = None
            masked.grad = None
            pconv.forward_count(masked, count, shape.in_channels)[0].backward(grad)

    else:

        def pconv_step() -> None:
            pconv.weight.grad = None
            x.grad = None
            pconv(x, mask)[0].backward(grad)

    return conv_step, pconv_step


def run(
    image_size: int = 512,
    layer_size: int = 8,
    base_channels: int = 64,
    batch: int = 1,
    repeats: int = 10,
    modes: tuple[str, ...] = MASK_MODES,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    clock: str = "wall",
    warmup: int = 2,
    verbose: bool = True,
) -> dict[str, Any]:
    """Time every U-Net layer shape at ``image_size`` in every mask mode; return rows and medians."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for shape in unet_layer_shapes(image_size, layer_size, base_channels):
        for mode in modes:
            conv_step, pconv_step = _case(shape, batch, mode, device, channels_last, generator)
            res = compare(
                {"conv": conv_step, "pconv": pconv_step}, repeats=repeats, warmup=warmup, device=device, clock=clock
            )
            row = {
                "layer": shape.name,
                "shape": shape.describe(),
                "mode": mode,
                "batch": batch,
                **ratio_columns(res, "conv", "pconv"),
            }
            rows.append(row)
            if verbose:
                print(
                    f"  {row['layer']:6s} {row['shape']:28s} {mode:12s} conv {row['conv_ms']:9.2f} ms  "
                    f"pconv/conv {row['ratio']:.3f} (best {row['ratio_of_best']:.3f})",
                    flush=True,
                )
    medians = {mode: statistics.median(r["ratio"] for r in rows if r["mode"] == mode) for mode in modes}
    return {
        "image_size": image_size,
        "layer_size": layer_size,
        "base_channels": base_channels,
        "batch": batch,
        "repeats": repeats,
        "channels_last": channels_last,
        "clock": clock,
        "rows": rows,
        "median_ratio": medians,
    }
