"""A drop-in for OpenCV's ``cv2.inpaint``: the same call, filled by a partial-convolution model.

Code that calls ``cv2.inpaint(src, mask, 3, cv2.INPAINT_TELEA)`` switches with one line::

    from pconv_kit import cv2_inpaint
    result = cv2_inpaint(src, mask, 3, cv2.INPAINT_TELEA)   # radius and flags are accepted and ignored

OpenCV's conventions hold: ``src`` is a BGR (or grey) ``uint8``/``uint16`` image, ``float32`` too, the mask an
8-bit single-channel image whose **non-zero** pixels are the holes, and the result is an array like ``src``
(same shape, dtype and channel order; ``dst`` is filled too when given). Known pixels are copied exactly.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from pconv_kit.errors import InputValueError, ShapeError
from pconv_kit.inpaint import inpaint
from pconv_kit.models import PConvUNet

__all__ = ["cv2_inpaint"]

_DTYPES = (np.uint8, np.uint16, np.float32)


def cv2_inpaint(
    src: np.ndarray,
    inpaint_mask: np.ndarray,
    inpaint_radius: float | None = None,
    flags: int | None = None,
    dst: np.ndarray | None = None,
    *,
    model: PConvUNet | str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    tta: int = 1,
) -> np.ndarray:
    """Fill the holes of ``src`` where ``inpaint_mask`` is non-zero, with OpenCV's call conventions.

    Args:
        src: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` BGR image, ``uint8``, ``uint16`` or ``float32`` (in
            ``[0, 1]``; other float ranges are clipped, unlike OpenCV).
        inpaint_mask: ``(H, W)`` or ``(H, W, 1)`` mask; every non-zero pixel is a hole (OpenCV's rule).
        inpaint_radius: ``cv2.inpaint``'s radius; accepted so that calls switch unchanged, and ignored.
        flags: ``cv2.INPAINT_TELEA`` / ``cv2.INPAINT_NS``; accepted and ignored.
        dst: optional output array of ``src``'s shape and dtype, filled and returned (as OpenCV does).
        model, device, tta: as in :func:`pconv_kit.inpaint` (default: the built-in model).

    Returns:
        The filled image, same shape, dtype and BGR order as ``src`` (``dst`` if given).

    Raises:
        ShapeError: ``src`` or the mask has a shape OpenCV would refuse, or they differ in size.
        InputValueError: another dtype, or a mask that is all hole.

    Example:
        >>> import numpy as np
        >>> src = np.full((32, 48, 3), (40, 90, 200), np.uint8)          # BGR
        >>> mask = np.zeros((32, 48), np.uint8); mask[10:20, 12:30] = 255
        >>> out = cv2_inpaint(src, mask, 3, 1, model=PConvUNet(layer_size=3, base_channels=4))
        >>> out.shape, out.dtype, bool((out[mask == 0] == src[mask == 0]).all())
        ((32, 48, 3), dtype('uint8'), True)
    """
    del inpaint_radius, flags  # OpenCV's tuning knobs: nothing to tune here
    src_arr = _check_src(src)
    mask = _check_mask(inpaint_mask, src_arr.shape[:2])
    colour = src_arr.ndim == 3 and src_arr.shape[2] == 3
    rgb = src_arr[..., ::-1] if colour else src_arr
    filled = inpaint(np.ascontiguousarray(rgb), mask == 0, model, device=device, tta=tta)
    result = np.ascontiguousarray(filled[..., ::-1]) if colour else filled
    if dst is None:
        return result
    if not isinstance(dst, np.ndarray) or dst.shape != src_arr.shape or dst.dtype != src_arr.dtype:
        raise ShapeError(
            f"dst must be an array of src's shape {src_arr.shape} and dtype {src_arr.dtype}; got "
            f"{getattr(dst, 'shape', None)} {getattr(dst, 'dtype', type(dst).__name__)}"
        )
    dst[...] = result
    return dst


def _check_src(src: Any) -> np.ndarray:
    if not isinstance(src, np.ndarray):
        raise InputValueError(f"src must be a numpy array (as cv2.inpaint takes); got {type(src).__name__}")
    if src.dtype not in _DTYPES:
        raise InputValueError(f"src must be uint8, uint16 or float32 (as cv2.inpaint takes); got {src.dtype}")
    if not (src.ndim == 2 or (src.ndim == 3 and src.shape[2] in (1, 3))) or 0 in src.shape[:2]:
        raise ShapeError(f"src must be (H, W), (H, W, 1) or (H, W, 3) BGR; got shape {src.shape}")
    return src


def _check_mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.shape != size:
        raise ShapeError(
            f"inpaint_mask must be single-channel ({size[0]}, {size[1]}) like src (non-zero = hole); got shape "
            f"{mask.shape}"
        )
    return mask
