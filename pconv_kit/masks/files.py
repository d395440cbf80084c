"""Mask files beside images: which file belongs to which image, and how a mask is fitted to its image.

One place for the rules that ``pconv-kit fill``, ``pconv-kit eval`` and ``pconv-kit masks --images`` share, so a
mask that one command accepts the others accept too:

* **Names.** The mask of image ``NAME.*`` is ``NAME.*``, ``NAME_mask.*`` or ``NAME.mask.*`` (in a masks
  folder, or beside the image for the last two): :func:`mask_stem` gives the image stem a mask file names.
* **Size.** A mask of the image's size is used as it is; one of another size with the same aspect ratio (within
  2 %) is resized with nearest neighbour (so it stays binary), with a warning; another aspect ratio is refused,
  since stretching would move the holes off what they cover: :func:`fit_mask_to_image`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pconv_kit.errors import InputValueError

__all__ = ["MASK_TAGS", "ASPECT_TOLERANCE", "mask_stem", "fit_mask_to_image"]

MASK_TAGS: tuple[str, ...] = ("_mask", ".mask")
"""Suffixes of a mask file's stem that name the image it belongs to (``a_mask.png`` and ``a.mask.png`` -> ``a``)."""

ASPECT_TOLERANCE = 0.02
"""How far (relative) a mask's aspect ratio may be from its image's for the mask to be resized to it."""


def mask_stem(path: Path, tagged_only: bool = False) -> str | None:
    """The stem of the image that the mask file ``path`` belongs to.

    Args:
        path: a mask file.
        tagged_only: return ``None`` unless the name carries a tag (``NAME_mask.*``, ``NAME.mask.*``), as for
            sibling masks beside their image; otherwise a plain ``NAME.*`` names ``NAME``.

    Example:
        >>> [mask_stem(Path(p)) for p in ("a.png", "a_mask.png", "b.mask.jpg", "_mask.png")]
        ['a', 'a', 'b', '_mask']
        >>> mask_stem(Path("a.png"), tagged_only=True) is None
        True
    """
    stem = path.stem
    for tag in MASK_TAGS:
        if stem.endswith(tag) and len(stem) > len(tag):
            return stem[: -len(tag)]
    return None if tagged_only else stem


def fit_mask_to_image(valid: np.ndarray, height: int, width: int) -> tuple[np.ndarray, list[str]]:
    """``valid`` (``(h, w)``, 1 = valid) at the image size ``(height, width)``, and the warnings it cost.

    Raises:
        InputValueError: the aspect ratios differ by more than :data:`ASPECT_TOLERANCE`.

    Example:
        >>> m = np.ones((50, 100), np.float32); m[10:20, 10:30] = 0
        >>> out, warnings = fit_mask_to_image(m, 100, 200)
        >>> out.shape, round(float(1 - out.mean()), 4), warnings
        ((100, 200), 0.04, ['mask resized from 100x50 to 200x100 (nearest neighbour)'])
    """
    mh, mw = valid.shape
    if (mh, mw) == (height, width):
        return valid, []
    if abs(mw * height - width * mh) > ASPECT_TOLERANCE * width * mh:
        raise InputValueError(
            f"size mismatch: the mask is {mw}x{mh} but the image is {width}x{height} (width x height) with "
            "a different aspect ratio"
        )
    resized = cv2.resize(valid.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
    return resized.astype(valid.dtype), [f"mask resized from {mw}x{mh} to {width}x{height} (nearest neighbour)"]
