"""Encoding a fill for its output file: bit depth and alpha the format can store, grey + alpha, review strips."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from pconv_kit.core.pixels import LUMA
from pconv_kit.inpaint import InpaintJob
from pconv_kit.io import encode_image, from_float, to_float, write_image

__all__ = ["adapt_for_format", "encode_grey_alpha", "is_finite", "mask_panel", "write_strip"]

_EIGHT_BIT = {".jpg", ".jpeg", ".webp", ".bmp"}
_NO_ALPHA = {".jpg", ".jpeg"}


def adapt_for_format(array: np.ndarray, suffix: str) -> tuple[np.ndarray, list[str]]:
    """Convert an image to what the output format stores (bit depth, alpha), with warnings.

    Example:
        >>> out, warnings = adapt_for_format(np.zeros((2, 2, 4), np.uint16), ".jpg")
        >>> out.shape, out.dtype, warnings
        ((2, 2, 3), dtype('uint8'), ['alpha channel dropped (.jpg has none)', 'uint16 image stored as 8-bit .jpg'])
    """
    ext = suffix.lower()
    warnings: list[str] = []
    if array.ndim == 3 and array.shape[2] == 4 and ext in _NO_ALPHA:
        array = array[..., :3]
        warnings.append(f"alpha channel dropped ({ext} has none)")
    if ext in _EIGHT_BIT and array.dtype != np.uint8:
        warnings.append(f"{array.dtype} image stored as 8-bit {ext}")
        array = from_float(to_float(array), np.uint8)
    elif ext == ".png" and array.dtype.kind == "f":
        warnings.append("float image stored as 16-bit .png")
        array = from_float(array, np.uint16)
    return array, warnings


def encode_grey_alpha(
    rgba: np.ndarray, valid: np.ndarray, suffix: str, quality: int
) -> tuple[np.ndarray, bytes, list[str]]:
    """Encode the fill of a grey + alpha input as grey + alpha (8-bit PNG) where the format allows it.

    Known pixels keep their grey value exactly (the RGBA read repeats it in R, G and B); filled pixels take the
    luma of the model's colour prediction. Returns the image the review strip shows (grey repeated in RGB), the
    file's bytes and warnings.
    """
    if suffix.lower() != ".png" or rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        what = f"{rgba.dtype} {suffix}" if suffix.lower() == ".png" else suffix
        return rgba, encode_image(rgba, suffix, quality), [f"grey + alpha stored as RGBA ({what} output)"]
    from PIL import Image

    luma = np.rint(rgba[..., :3].astype(np.float32) @ np.asarray(LUMA, np.float32))
    grey = np.where(valid, rgba[..., 0], np.clip(luma, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(np.stack([grey, rgba[..., 3]], axis=2)).save(buffer, format="PNG")
    shown = np.concatenate([np.repeat(grey[..., None], 3, axis=2), rgba[..., 3:]], axis=2)
    return shown, buffer.getvalue(), []


def write_strip(
    dest: Path, job: InpaintJob, output: np.ndarray, suffix: str, quality: int, overwrite: bool
) -> str:
    """Write ``input | mask | output`` to ``dest``; returns why not ("" when written): an output whose shape or
    dtype differs from its input's in the output format ``suffix`` (an output on disk from another input)."""
    original, _ = adapt_for_format(job.image, suffix)
    output = output if output.ndim == 3 else output[..., None]
    original = original if original.ndim == 3 else original[..., None]
    if output.shape != original.shape or output.dtype != original.dtype:
        return f"{output.shape} {output.dtype} vs {original.shape} {original.dtype}"
    strip = np.concatenate([original, mask_panel(job.valid_pixels, original), output], axis=1)
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_image(dest, strip, quality=quality, overwrite=overwrite)
    return ""


def is_finite(array: np.ndarray, rows: int = 256) -> bool:
    """Whether every value is finite, checked in bands of ``rows`` rows (no image-sized temporary).

    Example:
        >>> a = np.zeros((600, 4), np.float32); a[512, 1] = np.nan
        >>> is_finite(a), is_finite(a[:500])
        (False, True)
    """
    return all(bool(np.isfinite(array[i : i + rows]).all()) for i in range(0, array.shape[0], rows))


def mask_panel(valid: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The mask as an image (white = hole) with the dtype and channel count of ``like``.

    Example:
        >>> panel = mask_panel(np.array([[True, False]]), np.zeros((1, 2, 4), np.uint8))
        >>> panel[0].tolist()
        [[0, 0, 0, 255], [255, 255, 255, 255]]
    """
    top = 1.0 if like.dtype.kind == "f" else np.iinfo(like.dtype).max
    panel = np.where(valid, 0, top).astype(like.dtype)[..., None]
    channels = like.shape[2] if like.ndim == 3 else 1
    panel = np.repeat(panel, max(1, min(channels, 3)), axis=2)
    if channels == 4:
        panel = np.concatenate([panel, np.full_like(panel[..., :1], top)], axis=2)
    return panel
