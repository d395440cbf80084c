"""Pixel rules shared by the NumPy and tensor paths of :func:`pconv_kit.inpaint`, each written once.

Float conversion in and out of an image's dtype, which channels are colour (RGBA keeps its alpha), which mask
channels count, when an image has nothing to inpaint from, grey images through an RGB model and back (BT.601
luma). The helpers that take "NumPy array or tensor" work on channels-last data of either kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from pconv_kit.errors import InputValueError, ShapeError

__all__ = [
    "INT_DTYPES", "LUMA", "as_model_input", "colour_channels", "fill_holes", "luma", "np_from_float", "np_to_float",
    "np_valid", "split_valid", "to_float", "torch_from_float", "torch_to_float",
]

LUMA = (0.299, 0.587, 0.114)
"""ITU-R BT.601 weights of R, G and B in grey (as OpenCV's ``RGB2GRAY``)."""

INT_DTYPES = (np.uint8, np.uint16)
"""Integer image dtypes the NumPy path takes."""

def np_to_float(array: np.ndarray) -> np.ndarray:
    from pconv_kit.io import to_float

    return to_float(array)  # float32 in [0, 1] (NaN -> 0) for every dtype it takes, in one new array


def np_from_float(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.dtype(dtype).kind == "f":  # float images: any float dtype, no rounding
        return np.clip(array, 0.0, 1.0).astype(dtype, copy=False)
    from pconv_kit.io import from_float

    return from_float(array, dtype)


def torch_to_float(x: torch.Tensor) -> torch.Tensor:
    if x.is_floating_point():  # as the NumPy path (pconv_kit.io.to_float): NaN -> 0, then clipped
        return torch.nan_to_num(x.float(), nan=0.0).clamp(0, 1)
    return x.float() / float(torch.iinfo(x.dtype).max)


def torch_from_float(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype.is_floating_point:
        return x.to(dtype)
    top = float(torch.iinfo(dtype).max)
    return (x * top).round_().clamp_(0, top).to(dtype)


def np_valid(mask: Any, h: int, w: int, channels: int, convention: str) -> np.ndarray:
    """Mask array -> bool ``(H, W, 1|C)``, True = valid, for an ``(H, W, C)`` image."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.dtype.kind not in "biuf":
        raise InputValueError(f"mask must be a bool or numeric array; got dtype {mask.dtype}")
    if mask.ndim == 2:
        mask = mask[..., None]
    if mask.ndim != 3 or mask.shape[:2] != (h, w):
        raise ShapeError(f"mask must have shape ({h}, {w}) or ({h}, {w}, C) to match the image; got {mask.shape}")
    if convention == "valid":
        if mask.shape[2] not in (1, channels):
            raise ShapeError(
                f"mask must have shape ({h}, {w}), ({h}, {w}, 1) or ({h}, {w}, {channels}); got {mask.shape}"
            )
        if mask.dtype != bool:
            bad = (mask != 0) & (mask != 1)
            if bad.any():
                raise InputValueError(
                    "mask must be binary with mask_convention='valid' (1 = valid pixel, 0 = hole); found "
                    f"{int(bad.sum())} other value(s), e.g. {mask[bad].flat[0]!r}. For a mask image (e.g. "
                    "0/255) pass mask_convention='hole-white' or 'valid-white'"
                )
        return mask.astype(bool)
    from pconv_kit.io import decode_mask

    return decode_mask(mask, convention)[..., None] > 0.5


# One implementation of each rule, used by the NumPy path (channels-last arrays, one image) and the tensor path
# (channels-first batches, permuted to channels-last for these helpers): which channels are colour, which
# mask channels count, when an image has nothing to inpaint from, grey through an RGB model and back.


def colour_channels(channels: int, shape: tuple[int, ...], layout: str) -> int:
    """Colour channels of an image with ``channels`` channels (RGBA: 3, its alpha is kept, not filled)."""
    if channels not in (1, 3, 4):
        raise ShapeError(f"image must have 1, 3 or 4 channels ({layout}); got shape {shape}")
    return 3 if channels == 4 else channels


def split_valid(valid: Any, channels: int, color: int, names: Sequence[str]) -> tuple[Any, Any]:
    """``(valid for the colour channels, valid_pixels)`` of channels-last masks ``(N, H, W, 1|channels)``.

    A pixel is valid for the model only if all its colour channels are. Works on bool NumPy arrays and tensors.

    Raises:
        InputValueError: an image has no fully known pixel (``names`` names the images).
    """
    valid = valid[..., :color] if valid.shape[-1] == channels else valid
    pixels = valid.all(-1)
    known = pixels.reshape(pixels.shape[0], -1).any(1)
    if not bool(known.all()):
        bad = [i for i, ok in enumerate(known.tolist()) if not ok]
        what = "every pixel as a hole" if not bool(valid[bad[0]].any()) else "a hole channel in every pixel"
        label = names[bad[0]] if len(bad) == 1 else f"images {', '.join(names[i] for i in bad)}"
        raise InputValueError(f"{label}: the mask marks {what}; there is nothing to inpaint from")
    return valid, pixels


def luma(pred: Any) -> Any:
    """Grey ``(..., 1)`` from channels-last RGB ``(..., 3)`` (BT.601 weights), for a NumPy array or a tensor."""
    weights = torch.tensor(LUMA, dtype=pred.dtype, device=pred.device) if isinstance(pred, torch.Tensor) else (
        np.asarray(LUMA, pred.dtype)
    )
    return (pred @ weights)[..., None]


def as_model_input(colour: Any, model_channels: int) -> Any:
    """Grey images go through an RGB model as three equal channels (channels-last, NumPy or tensor)."""
    if colour.shape[-1] == 1 and model_channels == 3:
        return colour.expand(*colour.shape[:-1], 3) if isinstance(colour, torch.Tensor) else np.repeat(colour, 3, -1)
    return colour


def to_float(image: Any) -> Any:
    """A NumPy image or a tensor as float32 in ``[0, 1]`` (integers divided by their maximum, NaN -> 0)."""
    return torch_to_float(image) if isinstance(image, torch.Tensor) else np_to_float(image)


def fill_holes(colour: Any, valid: Any, prediction: Any) -> Any:
    """Known pixels of ``colour`` where ``valid``, else ``prediction`` in ``colour``'s dtype (rounded for integers).

    The composite of both paths of :func:`pconv_kit.inpaint`, channels-last: ``colour`` ``(..., c)`` in its own
    dtype, ``valid`` bool ``(..., 1|c)``, ``prediction`` float ``(..., c|3)`` in ``[0, 1]`` (an RGB prediction of a
    grey image is taken as its luma). Known pixels never go through floating point, so they come back bit-exact.

    Example:
        >>> fill_holes(np.array([[[10], [20]]], np.uint8), np.array([[[True], [False]]]), np.full((1, 2, 3), 0.5))
        array([[[ 10],
                [128]]], dtype=uint8)
    """
    if colour.shape[-1] == 1 and prediction.shape[-1] == 3:
        prediction = luma(prediction)
    if isinstance(colour, torch.Tensor):
        return torch.where(valid, colour, torch_from_float(prediction, colour.dtype))
    return np.where(valid, colour, np_from_float(prediction, colour.dtype))
