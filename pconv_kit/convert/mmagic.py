"""Converter for OpenMMLab mmagic / mmediting PConv checkpoints (``PConvEncoderDecoder``).

Source layout (``PConvInpaintor`` -> ``generator`` = ``PConvEncoderDecoder``; published files hold
``{"meta": ..., "state_dict": ...}``):

* ``generator.encoder.enc1`` ... ``encN`` and ``generator.decoder.decN`` ... ``dec1``, each a
  ``MaskConvModule`` (mmcv ``ConvModule``) with ``conv`` (``PartialConv2d``, with a constant
  ``weight_mask_updater`` buffer of ones) and ``bn`` (SyncBN / BN). ``enc1`` and ``dec1`` have no norm and so
  (mmcv's ``bias="auto"``) a bias; all other convolutions have no bias. Channels 64, 128, 256, 512, 512, ...;
  kernels 7, 5, 5, 3, ...; ReLU / LeakyReLU(0.2); nothing after ``dec1``; 7 layers in the published models.
* ``PartialConv2d(multi_channel=True)`` computes ``(conv(X * M) - b) * numel / (sum(M) + eps) + b`` times the
  updated mask ``clamp(sum(M), 0, 1)``, with ``numel = C_in * kH * kW`` and ``eps = 1e-8``: pconv-kit's
  formula with the same weights. ``sum(M) + eps`` versus pconv-kit's ``max(sum(M), eps)`` changes outputs by a
  relative 1e-8 at most for binary masks (``sum(M) >= 1`` wherever a window sees a valid pixel).
* The decoder upsamples features and masks with nearest neighbour (the ``interpolation`` default that the
  published configs keep) and concatenates ``[upsampled, skip]``: pconv-kit's layout.

Data: mmediting 0.x (which trained the published models) loads images with OpenCV in **BGR** order and
normalises them with mean 127.5 and std 127.5 (``to_rgb=False``), i.e. ``(x - 0.5) / 0.5`` on ``[0, 1]``
images; the output is de-normalised the same way. The converter reorders the first layer's input channels
and the last layer's output (and image-input) channels, so the converted model takes and returns RGB.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from pconv_kit.convert._build import KeyLayout, SourceLayer, convert_unet, reorder_image_channels
from pconv_kit.convert._torchfile import strip_prefix
from pconv_kit.errors import InputValueError
from pconv_kit.models import PConvUNet

__all__ = ["matches", "convert_state_dict", "MEAN", "STD", "LAYOUT"]

MEAN = (0.5, 0.5, 0.5)
"""127.5 / 255: the ``mean=[127.5] * 3`` of the published configs on ``[0, 1]`` images."""
STD = (0.5, 0.5, 0.5)
"""127.5 / 255: the ``std=[127.5] * 3`` of the published configs."""

LAYOUT = KeyLayout(
    source="an mmagic PConvEncoderDecoder",
    prefixes=("module.", "generator."),
    encoder="encoder.enc{}",
    decoder="decoder.dec{}",
    convs=(("conv", "conv.weight_mask_updater"),),
    mask_error="{key} has shape {found}; pconv-kit converts PartialConv2d(multi_channel=True) only, whose updater "
    "is all ones of shape {shape} (the single-channel variant cannot run the U-Net's concatenated masks)",
)
"""mmagic's key names (``[module.][generator.]encoder.enc1.conv.weight``, ...)."""


def matches(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` has the ``PConvEncoderDecoder`` layout (``[generator.]encoder.enc1.conv.weight``)."""
    keys = strip_prefix(state, LAYOUT.prefixes)
    return "encoder.enc1.conv.weight" in keys and "decoder.dec1.conv.weight" in keys


def _half(in_channels: int) -> tuple[Sequence[float], Sequence[float]]:
    return (0.5,) * in_channels, (0.5,) * in_channels


def _bgr_to_rgb(encoder: list[SourceLayer], head: SourceLayer) -> None:
    in_channels = int(encoder[0].weight.shape[1])
    if in_channels != 3 or head.weight.shape[0] != 3:
        raise InputValueError(f"channel_order='bgr' needs a 3-channel network; this one has {in_channels} inputs")
    reorder_image_channels(encoder[0], head, [2, 1, 0])


def convert_state_dict(
    state: Mapping[str, torch.Tensor],
    *,
    layer_size: int | None = None,
    channel_order: str = "bgr",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[PConvUNet, list[str], list[str]]:
    """Convert an mmagic/mmediting PConv state dict.

    Args:
        state: ``checkpoint["state_dict"]``; keys outside ``generator.`` (losses, VGG) are ignored.
        layer_size: number of encoder layers; default: the highest ``encN`` found.
        channel_order: channel order the network was trained on: ``"bgr"`` (mmediting/mmagic's OpenCV
            loading, the published models) or ``"rgb"``. The converted model always takes RGB.
        mean, std: input normalisation on ``[0, 1]`` images in RGB order; default 0.5 / 0.5
            (the published configs' 127.5 / 127.5).
        dtype: dtype of the returned model.

    Returns:
        ``(model, differences, ignored_keys)`` as in :func:`pconv_kit.convert.naoto.convert_state_dict`.
    """
    if channel_order not in ("bgr", "rgb"):
        raise InputValueError(f"channel_order must be 'bgr' or 'rgb'; got {channel_order!r}")
    return convert_unet(
        state,
        LAYOUT,
        layer_size=layer_size,
        mean=mean,
        std=std,
        default_normalisation=_half,
        prepare=_bgr_to_rgb if channel_order == "bgr" else None,
        dtype=dtype,
    )
