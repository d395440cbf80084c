"""Classical inpainting baselines that a model is compared with: OpenCV's ``cv2.inpaint`` and PatchMatch.

Each returns the **composite** as float32 in ``[0, 1]``: known pixels from the original at full precision, holes
from the method (which works on 8 bits). :func:`pconv_kit.evaluate.evaluate_folder` runs them beside the model.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from pconv_kit.errors import InputValueError
from pconv_kit.io import from_float, to_float

__all__ = [
    "ALL_BASELINES",
    "BASELINES",
    "PATCHMATCH_MISSING",
    "check_patch_size",
    "opencv_inpaint",
    "patchmatch_available",
    "patchmatch_inpaint",
]

BASELINES = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
"""OpenCV baselines by name: Telea's fast marching method and Navier-Stokes."""

ALL_BASELINES: tuple[str, ...] = (*BASELINES, "patchmatch")
"""Every baseline :func:`evaluate_folder` knows: the OpenCV ones and PatchMatch (the optional ``pypatchmatch``
package, ``pip install "pconv-kit[patchmatch]"``)."""

PATCHMATCH_MISSING = 'pypatchmatch is not installed (pip install "pconv-kit[patchmatch]")'


def opencv_inpaint(image: np.ndarray, valid: np.ndarray, method: str = "telea", radius: float = 5.0) -> np.ndarray:
    """Fill the holes with ``cv2.inpaint`` and return the composite as float32 ``[0, 1]``.

    OpenCV inpaints 8-bit images, so other dtypes are converted to 8 bits first; known pixels still come
    from the original at full precision.

    Args:
        image: ``(H, W, C)`` RGB or gray (alpha ignored), uint8/uint16/float.
        valid: ``(H, W)`` bool, True = valid.
        method: a key of :data:`BASELINES`.
        radius: ``inpaintRadius`` of ``cv2.inpaint``.
    """
    if method not in BASELINES:
        raise InputValueError(f"unknown baseline {method!r}; choose from {sorted(BASELINES)}", param="method")
    return _classical_composite(
        image, valid, lambda eight_bit, holes: cv2.inpaint(eight_bit, holes, float(radius), BASELINES[method])
    )


def _classical_composite(
    image: np.ndarray, valid: np.ndarray, fill: Callable[[np.ndarray, np.ndarray], np.ndarray]
) -> np.ndarray:
    """Run an 8-bit classical inpainter ``fill(image, holes)`` (holes: uint8, 255 = hole) and return the
    composite as float32 ``[0, 1]``, known pixels from the original at full precision (alpha ignored)."""
    color = image[..., :3] if image.shape[2] == 4 else image
    original = to_float(color)
    eight_bit = color if color.dtype == np.uint8 else from_float(original, np.uint8)
    holes = (~valid).astype(np.uint8) * 255
    filled = to_float(np.asarray(fill(np.ascontiguousarray(eight_bit), holes)).reshape(color.shape))
    return np.where(valid[..., None], original, filled).astype(np.float32)


def check_patch_size(patch_size: int) -> None:
    """Raise :class:`~pconv_kit.errors.InputValueError` unless ``patch_size`` is an odd integer >= 3."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 3 or patch_size % 2 == 0:
        raise InputValueError(f"patch_size must be an odd integer >= 3; got {patch_size!r}", param="patch_size")


def patchmatch_available() -> bool:
    """Whether the PatchMatch baseline can run (the ``pypatchmatch`` package and its compiled library)."""
    try:
        from patchmatch import patch_match
    except ImportError:
        return False
    return bool(patch_match.patchmatch_available)


def patchmatch_inpaint(image: np.ndarray, valid: np.ndarray, patch_size: int = 3) -> np.ndarray:
    """Fill the holes with PatchMatch (Barnes et al. 2009, ``pypatchmatch``); the composite as float32 ``[0, 1]``.

    Like :func:`opencv_inpaint`: 8-bit for the algorithm, known pixels from the original at full precision.

    Args:
        image: ``(H, W, C)`` RGB or gray (alpha ignored), uint8/uint16/float.
        valid: ``(H, W)`` bool, True = valid.
        patch_size: side of the patches PatchMatch compares (odd, >= 3).

    Raises:
        InputValueError: ``pypatchmatch`` is not installed, or a bad ``patch_size``.
    """
    if not patchmatch_available():
        raise InputValueError(PATCHMATCH_MISSING)
    check_patch_size(patch_size)
    from patchmatch import patch_match

    def fill(eight_bit: np.ndarray, holes: np.ndarray) -> np.ndarray:  # pypatchmatch takes RGB; non-zero = hole
        if eight_bit.shape[2] == 1:
            rgb = patch_match.inpaint(np.repeat(eight_bit, 3, axis=2), holes, patch_size=patch_size)
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return patch_match.inpaint(eight_bit, holes, patch_size=patch_size)

    return _classical_composite(image, valid, fill)
