"""Mask files beside images: which file belongs to which image, and how a mask is fitted to its image.

One place for the rules that ``pconv-kit fill``, ``pconv-kit eval`` and ``pconv-kit masks --images`` share, so a
mask that one command accepts the others accept too:

* **Names.** The mask of image ``NAME.*`` is ``NAME.*``, ``NAME_mask.*`` or ``NAME.mask.*`` (in a masks
  folder, or beside the image for the last two): :func:`mask_stem` gives the image stem a mask file names.
* **Size.** A mask of the image's size is used as it is; one of another size with the same aspect ratio (within
  2 %) is resized with nearest neighbour (so it stays binary), with a warning; another aspect ratio is refused,
  since stretching would move the holes off what they cover: :func:`fit_mask_to_image`.
* **Discovery.** :func:`find_mask` applies ``pconv-kit fill``'s rules in order: one mask for every image, a
  masks folder (:class:`MaskIndex`), a sibling file, the image's own transparent pixels.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pconv_kit.errors import InputValueError
from pconv_kit.io import list_images, read_mask

__all__ = [
    "MASK_TAGS", "ASPECT_TOLERANCE", "MaskIndex", "find_mask", "fit_mask_to_image", "mask_stem", "resize_nearest",
]

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
    resized = resize_nearest(valid.astype(np.uint8), height, width)
    return resized.astype(valid.dtype), [f"mask resized from {mw}x{mh} to {width}x{height} (nearest neighbour)"]


def resize_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """``mask`` ``(h, w)`` resized to ``(height, width)`` by nearest neighbour, so a binary mask stays binary.

    The one resize of masks in pconv-kit (fitting a mask file to its image, fitting a training mask to a crop):
    each output pixel takes the input pixel under its centre (OpenCV's ``INTER_NEAREST_EXACT``, which unlike
    ``INTER_NEAREST`` does not shift the mask by half a pixel).

    Example:
        >>> resize_nearest(np.array([[0, 1], [1, 1]], np.uint8), 4, 4).tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]]
    """
    if mask.shape == (height, width):
        return mask
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)


class MaskIndex:
    """The mask files of a folder, keyed by relative parent folder and the image stem they name.

    Example:
        >>> import tempfile
        >>> from pconv_kit.io import write_mask
        >>> root = Path(tempfile.mkdtemp())
        >>> write_mask(root / "a_mask.png", np.ones((4, 4), np.float32))
        >>> MaskIndex(root, recursive=False).lookup(Path("a.jpg"), recursive=False)[0].name
        'a_mask.png'
    """

    def __init__(self, root: Path, recursive: bool) -> None:
        self.root = root
        self.entries: dict[tuple[str, str], list[Path]] = collections.defaultdict(list)
        for path in list_images(root, recursive=recursive):
            self.entries[(path.parent.relative_to(root).as_posix(), mask_stem(path) or "")].append(path)

    def lookup(self, rel: Path, recursive: bool) -> tuple[Path | None, list[str]]:
        """The mask of the image at ``rel`` (relative to the input folder) and warnings (several matches)."""
        parent = rel.parent.as_posix() if recursive else "."
        found = sorted(self.entries.get((parent, rel.stem), []))
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            return found[0], [f"several masks match ({names}); using {found[0].name}"]
        return (found[0] if found else None), []


def find_mask(
    src: Path,
    rel: Path,
    image: np.ndarray,
    *,
    siblings: Sequence[Path] = (),
    mask: np.ndarray | None = None,
    mask_name: str = "",
    masks: MaskIndex | None = None,
    recursive: bool = False,
    mask_convention: str = "hole-white",
) -> tuple[np.ndarray, str, list[str]]:
    """Find and read the mask of one image with the discovery rules of this module.

    Args:
        src, rel: the image file, and its path relative to the input folder.
        image: its pixels ``(H, W, C)`` (for the alpha rule).
        siblings: its ``NAME_mask.*`` / ``NAME.mask.*`` files.
        mask, mask_name: one decoded mask for every image (1 = valid) and its file name, if any.
        masks, recursive: the masks folder index and whether to match relative paths.
        mask_convention: how mask files encode holes (``"hole-white"`` or ``"valid-white"``).

    Returns:
        ``(valid, source, warnings)``: ``(H', W')`` float32 1 = valid (not yet fitted to the image), where it
        came from, and warnings.

    Raises:
        InputValueError: no rule applies.
        ImageReadError: the mask file cannot be read.
    """
    warnings: list[str] = []
    if mask is not None:
        return mask, f"--mask {mask_name}", warnings
    if masks is not None:
        path, warnings = masks.lookup(rel, recursive)
        if path is not None:
            return read_mask(path, mask_convention), path.relative_to(masks.root.parent).as_posix(), warnings
    siblings = sorted(siblings)
    if siblings:
        if len(siblings) > 1:
            warnings.append(f"several sibling masks ({', '.join(p.name for p in siblings)}); using {siblings[0].name}")
        return read_mask(siblings[0], mask_convention), f"sibling {siblings[0].name}", warnings
    if image.shape[2] == 4:
        alpha = image[..., 3]
        top = 1.0 if alpha.dtype.kind == "f" else float(np.iinfo(alpha.dtype).max)
        valid = (alpha.astype(np.float32) >= 0.5 * top).astype(np.float32)
        if not valid.all():
            return valid, "alpha", warnings
    looked = ["a masks folder match" if masks is not None else None, f"{src.stem}_mask.* / {src.stem}.mask.*"]
    looked.append("transparent pixels" if image.shape[2] == 4 else "an alpha channel")
    raise InputValueError(f"no mask found (looked for {', '.join(x for x in looked if x)})")
