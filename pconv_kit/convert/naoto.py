"""Converter for checkpoints of naoto0804/pytorch-inpainting-with-partial-conv (the popular PyTorch port).

Source layout (``net.py``; its trainer saves ``{"n_iter": ..., "model": state_dict, "optimizer": ...}``):

* ``enc_1`` ... ``enc_L`` and ``dec_L`` ... ``dec_1``, each a ``PCBActiv`` with ``conv`` (a ``PartialConv``)
  and, except ``enc_1`` and ``dec_1``, ``bn`` (``nn.BatchNorm2d``). Channels 64, 128, 256, 512, 512, ...;
  kernels 7, 5, 5, 3, ...; ReLU in the encoder, LeakyReLU(0.2) in the decoder, nothing after ``dec_1``.
* ``PartialConv`` keeps ``input_conv`` (the weights) and ``mask_conv`` (all ones, ``C_in -> C_out``, frozen).
  Since mid-2018 only ``dec_1`` has a bias; the first versions (June 2018) named them ``conv2d``/``mask2d``,
  gave every layer a bias and ``mask2d`` a zero bias. Both layouts are read.

Layer formula: ``out = (input_conv(X * M) - b) / mask_conv(M) + b`` where ``mask_conv(M) > 0``, else 0, i.e.
``W^T (X * M) / sum(M) + b`` with ``sum(M)`` over the window *and* the ``C_in`` mask channels (the mask has
as many channels as the input). pconv-kit computes ``W'^T (X * M) * sum(1) / sum(M) + b`` with
``sum(1) = C_in * kH * kW``, so ``W' = W / (C_in * kH * kW)``. Feeding a one-channel mask to pconv-kit gives
the same ``sum(M)`` (it counts the mask once per input channel), so mask shapes do not matter.

The decoder upsamples features and masks (nearest by default) and concatenates ``[upsampled, skip]`` with
the masks in the same order: exactly pconv-kit's layout. Images are normalised with the ImageNet mean and
std before the network and the output is de-normalised, as pconv-kit does by default. A checkpoint trained
with ``upsampling_mode="bilinear"`` (an option added in August 2018) cannot be told apart from its weights;
pconv-kit always upsamples features with nearest neighbour.

Conv biases before BatchNorm (old layout) are folded into the BatchNorm running mean: exact in eval mode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from pconv_kit.convert._build import KeyLayout, convert_unet
from pconv_kit.convert._torchfile import strip_prefix
from pconv_kit.errors import InputValueError
from pconv_kit.models import PConvUNet
from pconv_kit.models.unet import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["matches", "convert_state_dict", "LAYOUT"]

LAYOUT = KeyLayout(
    source="a naoto0804 PConvUNet",
    prefixes=("module.",),
    encoder="enc_{}",
    decoder="dec_{}",
    convs=(("conv.input_conv", "conv.mask_conv.weight"), ("conv.conv2d", "conv.mask2d.weight")),
    mask_error="{key} should be all ones with the shape of the weights {shape}; this is not the partial "
    "convolution of naoto0804/pytorch-inpainting-with-partial-conv",
    per_window=True,
)
"""naoto0804's key names: both layouts (``input_conv``/``mask_conv`` and the first ``conv2d``/``mask2d``)."""


def matches(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` has naoto0804's key layout (``enc_1.conv.input_conv.weight`` or ``enc_1.conv.conv2d.weight``)."""
    keys = strip_prefix(state, LAYOUT.prefixes)
    return any(f"enc_1.{conv}.weight" in keys for conv, _ in LAYOUT.convs)


def _imagenet(in_channels: int) -> tuple[Sequence[float], Sequence[float]]:
    if in_channels != 3:
        raise InputValueError(
            f"the network takes {in_channels} channels; pass mean= and std= (the normalisation it was trained "
            "with), since the ImageNet statistics only exist for RGB"
        )
    return IMAGENET_MEAN, IMAGENET_STD


def convert_state_dict(
    state: Mapping[str, torch.Tensor],
    *,
    layer_size: int | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[PConvUNet, list[str], list[str]]:
    """Convert a naoto0804 ``PConvUNet`` state dict.

    Args:
        state: the model's state dict (``checkpoint["model"]``); a ``module.`` prefix is removed.
        layer_size: number of encoder layers; default: the highest ``enc_N`` in the checkpoint (the source
            always creates ``enc_1`` ... ``enc_4``, so give it for networks with fewer layers).
        mean, std: input normalisation; default ImageNet statistics (the source's ``opt.MEAN``/``opt.STD``)
            for 3 channels. Networks with another channel count need them.
        dtype: dtype of the returned model.

    Returns:
        ``(model, differences, ignored_keys)``: the model in eval mode, what differs from the source (empty:
        the conversion is exact), and the checkpoint keys that were not used (as named in ``state``).

    Raises:
        InputValueError: keys or shapes do not fit.
    """
    return convert_unet(
        state, LAYOUT, layer_size=layer_size, mean=mean, std=std, default_normalisation=_imagenet, dtype=dtype
    )
