"""Mask files: decoding any mask image to the library's valid-mask, and writing one in a file convention.

Part of :mod:`pconv_kit.io`, which documents the conventions; import from there.
"""

from __future__ import annotations

import numpy as np

from pconv_kit.errors import InputValueError
from pconv_kit.io.images import MASK_CONVENTIONS, PathLike, read_image, write_image

__all__ = ["decode_mask", "encode_mask", "read_mask", "write_mask"]


def _check_convention(mask_convention: str) -> None:
    if mask_convention not in MASK_CONVENTIONS:
        raise InputValueError(
            f"mask_convention must be one of {', '.join(repr(c) for c in MASK_CONVENTIONS)}; got {mask_convention!r}"
        )


def _white(plane: np.ndarray) -> np.ndarray:
    """Boolean 'white' map of a single plane: non-zero if the plane is binary, else above 50% of the range."""
    if plane.dtype == np.bool_:
        return plane.copy()
    top = plane.max() if plane.size else 0
    if top > 0 and bool(np.all((plane == 0) | (plane == top))):
        return plane != 0  # binary {0, v}: non-zero is white (0/1, 0/255, 0/65535 files all work)
    if top <= 0:
        return np.zeros(plane.shape, bool)
    if plane.dtype.kind == "u" or plane.dtype.kind == "i":
        half = np.iinfo(plane.dtype).max / 2.0
    else:
        half = 0.5
    return plane > half


def decode_mask(array: np.ndarray, mask_convention: str = "hole-white") -> np.ndarray:
    """Decode the pixels of a mask file into a valid-mask: ``(H, W)`` float32, 1 = valid, 0 = hole.

    Rules, applied in this order:

    1. **Channels.** ``(H, W)`` and ``(H, W, 1)`` are used as they are. For colour masks the brightest colour
       channel is used (``max`` over R, G, B), so any coloured stroke counts as white. If an RGBA (or gray +
       alpha) mask has constant colour channels but a varying alpha, the alpha channel is used instead
       (strokes painted on a transparent layer; opaque acts as white); otherwise alpha is ignored.
    2. **White.** A plane holding only 0 and one other value (``0/1``, ``0/255``, ``0/65535``, ``False/True``)
       is white wherever it is non-zero. Any other plane (anti-aliased or JPEG-compressed masks) is white
       above 50% of its dtype's range: ``> 127.5`` for ``uint8``, ``> 32767.5`` for ``uint16``, ``> 0.5`` for
       floats.
    3. **Convention.** ``"hole-white"``: white = hole, so ``valid = not white``. ``"valid-white"``:
       ``valid = white``.

    Args:
        array: ``(H, W)`` or ``(H, W, C)`` pixels, ``C`` in 1-4, any integer, bool or float dtype.
        mask_convention: ``"hole-white"`` (default) or ``"valid-white"``.

    Returns:
        ``(H, W)`` float32 array of 0.0 (hole) and 1.0 (valid).

    Raises:
        InputValueError: wrong number of dimensions/channels or unknown convention.

    Example:
        >>> pixels = np.array([[0, 255], [0, 0]], np.uint8)
        >>> decode_mask(pixels).tolist()                    # hole-white: the white pixel is a hole
        [[1.0, 0.0], [1.0, 1.0]]
        >>> decode_mask(pixels, "valid-white").tolist()
        [[0.0, 1.0], [0.0, 0.0]]
    """
    _check_convention(mask_convention)
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        plane = array
    elif array.ndim == 3 and array.shape[2] in (2, 3, 4):
        colour = array[:, :, :1] if array.shape[2] == 2 else array[:, :, :3]
        plane = colour.max(axis=2)
        if array.shape[2] in (2, 4):
            alpha = array[:, :, -1]
            if plane.size and plane.min() == plane.max() and alpha.min() != alpha.max():
                plane = alpha
    else:
        raise InputValueError(
            f"mask pixels must have shape (H, W) or (H, W, C) with C in 1-4; got {tuple(array.shape)}"
        )
    if plane.dtype.kind not in "buif":
        raise InputValueError(f"mask pixels must be numeric; got dtype {plane.dtype}")
    white = _white(plane)
    valid = ~white if mask_convention == "hole-white" else white
    return valid.astype(np.float32)


def encode_mask(valid_mask: np.ndarray, mask_convention: str = "hole-white") -> np.ndarray:
    """Encode a valid-mask (1 = valid, 0 = hole) as the ``(H, W)`` uint8 0/255 pixels of a mask file.

    Args:
        valid_mask: ``(H, W)`` or ``(H, W, 1)`` array of bool or numbers in ``[0, 1]``; values ``>= 0.5``
            count as valid (so a soft or resized mask is binarised at one half).
        mask_convention: ``"hole-white"`` (default: holes become 255) or ``"valid-white"`` (valid pixels
            become 255).

    Raises:
        InputValueError: wrong shape, values outside ``[0, 1]`` or NaN, or unknown convention.

    Example:
        >>> encode_mask(np.array([[1.0, 0.0]])).tolist()
        [[0, 255]]
        >>> encode_mask(np.array([[1.0, 0.0]]), "valid-white").tolist()
        [[255, 0]]
    """
    _check_convention(mask_convention)
    mask = np.asarray(valid_mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise InputValueError(f"valid_mask must have shape (H, W) or (H, W, 1); got {tuple(mask.shape)}")
    if mask.dtype == np.bool_:
        valid = mask
    else:
        if mask.dtype.kind not in "uif":
            raise InputValueError(f"valid_mask must be bool or numeric; got dtype {mask.dtype}")
        if mask.size and (np.isnan(mask).any() if mask.dtype.kind == "f" else False):
            raise InputValueError("valid_mask contains NaN")
        if mask.size and (mask.min() < 0 or mask.max() > 1):
            raise InputValueError(
                f"valid_mask values must lie in [0, 1] (1 = valid, 0 = hole); got min {mask.min():g}, "
                f"max {mask.max():g}"
            )
        valid = mask >= 0.5
    white = ~valid if mask_convention == "hole-white" else valid
    return white.astype(np.uint8) * np.uint8(255)


def read_mask(path: PathLike, mask_convention: str = "hole-white") -> np.ndarray:
    """Read a mask file as a valid-mask ``(H, W)`` float32 (1 = valid, 0 = hole); see :func:`decode_mask`.

    Raises:
        ImageReadError: the file cannot be read (message names it).
        InputValueError: unknown convention.
    """
    _check_convention(mask_convention)
    return decode_mask(read_image(path), mask_convention)


def write_mask(
    path: PathLike, valid_mask: np.ndarray, mask_convention: str = "hole-white", overwrite: bool = True
) -> None:
    """Write a valid-mask (1 = valid) as a black/white 8-bit mask file, atomically; see :func:`encode_mask`.

    Use a lossless suffix (``.png``, ``.bmp``, ``.tif``); JPEG/WebP artefacts are undone by the 50% threshold of
    :func:`decode_mask` but blur the hole borders.
    """
    write_image(path, encode_mask(valid_mask, mask_convention), overwrite=overwrite)
