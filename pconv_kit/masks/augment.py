"""Masks from a folder of mask files, with random augmentation.

For users with a mask dataset (e.g. the NVIDIA irregular-mask set or masks drawn by hand): :class:`MaskFolder`
reads mask files with :func:`pconv_kit.io.read_mask` (honouring the file convention) and returns random masks
of a fixed size, optionally augmented by :func:`augment_mask`:

1. **rotation** by an angle in ``[-max_rotation, max_rotation]`` degrees and **translation** by up to
   ``max_translation`` of the mask size, in one affine warp of the source mask (nearest neighbour; pixels
   moved in from outside are valid);
2. **crop** of a window with the output's aspect ratio, ``crop_scale`` times the largest such window that
   fits, at a random position;
3. **resize** of the crop to ``(height, width)`` with nearest neighbour (masks stay binary);
4. **dilation** of the holes by a random radius in ``[0, max_dilation * sqrt(height * width)]`` output
   pixels (elliptical structuring element);
5. random horizontal and vertical **flips** (``flip=True``).

All randomness comes from a :class:`numpy.random.Generator`, so augmentation is reproducible with a seed.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from pconv_kit.errors import InputValueError
from pconv_kit.io import IMAGE_EXTENSIONS, MASK_CONVENTIONS, list_images, read_mask
from pconv_kit.masks.files import resize_nearest
from pconv_kit.masks.generator import seeded_rng

__all__ = ["MaskAugment", "augment_mask", "fit_mask", "MaskFolder"]

PathLike = Union[str, "os.PathLike[str]"]


def _check_size(height: object, width: object) -> tuple[int, int]:
    for name, value in (("height", height), ("width", width)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
            raise InputValueError(f"{name} must be a positive integer; got {value!r}")
    return int(height), int(width)  # type: ignore[call-overload]


def _hole_map(valid_mask: np.ndarray, name: str = "valid_mask") -> np.ndarray:
    mask = np.asarray(valid_mask)
    if mask.ndim != 2 or mask.shape[0] == 0 or mask.shape[1] == 0:
        raise InputValueError(f"{name} must be a non-empty (H, W) array (1 = valid, 0 = hole); got shape {mask.shape}")
    return (mask < 0.5).astype(np.uint8)


def _max_window(src_h: int, src_w: int, height: int, width: int) -> tuple[float, float]:
    """Largest (h, w) window with aspect ratio height/width that fits in a src_h x src_w mask."""
    aspect = height / width
    if src_h / src_w >= aspect:
        return src_w * aspect, float(src_w)
    return float(src_h), src_h / aspect


def fit_mask(valid_mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop a mask to the aspect ratio of ``(height, width)`` and resize it there (nearest neighbour).

    Args:
        valid_mask: ``(h, w)`` mask, 1 = valid, 0 = hole (values ``>= 0.5`` count as valid).
        height: output height.
        width: output width.

    Returns:
        ``(height, width)`` float32 binary mask.

    Example:
        >>> fit_mask(np.ones((100, 50), np.float32), 20, 20).shape
        (20, 20)
    """
    height, width = _check_size(height, width)
    hole = _hole_map(valid_mask)
    src_h, src_w = hole.shape
    win_h, win_w = _max_window(src_h, src_w, height, width)
    ch, cw = min(src_h, max(1, round(win_h))), min(src_w, max(1, round(win_w)))
    y0, x0 = (src_h - ch) // 2, (src_w - cw) // 2
    hole = resize_nearest(hole[y0 : y0 + ch, x0 : x0 + cw], height, width)
    return np.subtract(1.0, hole, dtype=np.float32)


def _check_params(
    max_dilation: float, max_rotation: float, max_translation: float, crop_scale: Sequence[float]
) -> tuple[float, float]:
    for name, value in (
        ("max_dilation", max_dilation),
        ("max_rotation", max_rotation),
        ("max_translation", max_translation),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
            raise InputValueError(f"{name} must be a finite number >= 0; got {value!r}")
    try:
        lo, hi = (float(v) for v in crop_scale)
    except (TypeError, ValueError):
        raise InputValueError(f"crop_scale must be a pair (lo, hi); got {crop_scale!r}") from None
    if not (0.0 < lo <= hi <= 1.0):
        raise InputValueError(f"crop_scale must satisfy 0 < lo <= hi <= 1; got ({lo:g}, {hi:g})")
    return lo, hi


def augment_mask(
    valid_mask: np.ndarray,
    height: int,
    width: int,
    rng: np.random.Generator | None = None,
    *,
    max_dilation: float = 0.02,
    max_rotation: float = 180.0,
    max_translation: float = 0.1,
    crop_scale: tuple[float, float] = (0.5, 1.0),
    flip: bool = True,
) -> np.ndarray:
    """Randomly rotate, translate, crop, resize, dilate and flip a mask (see the module docs for the order).

    Args:
        valid_mask: ``(h, w)`` source mask, 1 = valid, 0 = hole (values ``>= 0.5`` count as valid); any size.
        height: output height.
        width: output width.
        rng: random generator (``None``: a fresh unseeded one).
        max_dilation: largest hole dilation radius as a fraction of ``sqrt(height * width)`` (0 disables).
        max_rotation: largest rotation in degrees (0 disables).
        max_translation: largest shift as a fraction of the source height/width (0 disables).
        crop_scale: ``(lo, hi)`` range of the crop window's side relative to the largest window with the
            output aspect ratio (``(1, 1)`` always takes the largest window; its position is still random
            when the source and output aspect ratios differ).
        flip: random horizontal and vertical flips.

    Returns:
        ``(height, width)`` float32 binary mask (1 = valid, 0 = hole).

    Example:
        >>> src = np.ones((128, 128), np.float32); src[40:80, 30:90] = 0
        >>> out = augment_mask(src, 64, 96, np.random.default_rng(0))
        >>> out.shape, sorted(np.unique(out).tolist())
        ((64, 96), [0.0, 1.0])
    """
    height, width = _check_size(height, width)
    scale_lo, scale_hi = _check_params(max_dilation, max_rotation, max_translation, crop_scale)
    hole = _hole_map(valid_mask)
    rng = np.random.default_rng() if rng is None else rng
    # Draw every random number up front, in a fixed order, so the stream does not depend on the data.
    u = rng.random(9)
    src_h, src_w = hole.shape

    # 1. rotation + translation of the source
    angle = (2.0 * u[0] - 1.0) * max_rotation
    tx = (2.0 * u[1] - 1.0) * max_translation * src_w
    ty = (2.0 * u[2] - 1.0) * max_translation * src_h
    if angle != 0.0 or tx != 0.0 or ty != 0.0:
        matrix = cv2.getRotationMatrix2D(((src_w - 1) / 2.0, (src_h - 1) / 2.0), angle, 1.0)
        matrix[0, 2] += tx
        matrix[1, 2] += ty
        hole = cv2.warpAffine(
            hole, matrix, (src_w, src_h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )

    # 2. crop a window with the output aspect ratio, 3. resize it to the output size
    win_h, win_w = _max_window(src_h, src_w, height, width)
    scale = scale_lo + (scale_hi - scale_lo) * u[3]
    ch = min(src_h, max(1, round(win_h * scale)))
    cw = min(src_w, max(1, round(win_w * scale)))
    y0 = min(int(u[4] * (src_h - ch + 1)), src_h - ch)
    x0 = min(int(u[5] * (src_w - cw + 1)), src_w - cw)
    hole = resize_nearest(hole[y0 : y0 + ch, x0 : x0 + cw], height, width)

    # 4. dilation of the holes (in output pixels)
    max_radius = int(round(max_dilation * math.sqrt(height * width)))
    radius = min(int(u[6] * (max_radius + 1)), max_radius)
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        hole = cv2.dilate(hole, kernel)

    # 5. flips
    if flip:
        if u[7] < 0.5:
            hole = hole[:, ::-1]
        if u[8] < 0.5:
            hole = hole[::-1]
    return np.subtract(1.0, hole, dtype=np.float32)


@dataclass(frozen=True)
class MaskAugment:
    """Augmentation settings for :class:`MaskFolder`; calling it runs :func:`augment_mask`.

    Example:
        >>> aug = MaskAugment(max_rotation=0.0, flip=False)
        >>> aug(np.ones((32, 32), np.float32), 16, 16, np.random.default_rng(0)).shape
        (16, 16)
    """

    max_dilation: float = 0.02
    max_rotation: float = 180.0
    max_translation: float = 0.1
    crop_scale: tuple[float, float] = (0.5, 1.0)
    flip: bool = True

    def __post_init__(self) -> None:
        _check_params(self.max_dilation, self.max_rotation, self.max_translation, self.crop_scale)

    def __call__(
        self, valid_mask: np.ndarray, height: int, width: int, rng: np.random.Generator | None = None
    ) -> np.ndarray:
        return augment_mask(
            valid_mask,
            height,
            width,
            rng,
            max_dilation=self.max_dilation,
            max_rotation=self.max_rotation,
            max_translation=self.max_translation,
            crop_scale=self.crop_scale,
            flip=self.flip,
        )


class MaskFolder:
    """Random masks from a folder of mask files, resized (and by default augmented) to ``(height, width)``.

    Files are found with :func:`pconv_kit.io.list_images` (suffixes in :data:`pconv_kit.io.IMAGE_EXTENSIONS`,
    hidden files skipped) and decoded with :func:`pconv_kit.io.read_mask` using ``mask_convention``.

    Unreadable files: with ``validate=True`` (default) every file is decoded once when the folder is opened
    and the first unreadable one raises :class:`~pconv_kit.errors.ImageReadError` naming it, so a broken
    dataset fails before training starts (cost: one decode per file, a few milliseconds for a 512 x 512
    PNG). With ``validate=False`` opening only lists the files, and a file that turns out unreadable raises
    ``ImageReadError`` naming it when it is drawn. Files are never skipped silently.

    Args:
        root: folder of mask files.
        height: output height.
        width: output width.
        mask_convention: how the files encode holes: ``"hole-white"`` (default) or ``"valid-white"``.
        augment: ``True`` for the default :class:`MaskAugment`, a :class:`MaskAugment` for custom settings,
            or ``False`` to only centre-crop to the aspect ratio and resize (:func:`fit_mask`).
        seed: seed of the folder's own random generator (used when a call passes no ``rng``).
        recursive: also use files in sub-folders.
        validate: decode every file when opening (see above).
        cache: keep the decoded masks in memory, bit-packed (``h * w / 8`` bytes per mask: 32 KiB at
            512 x 512), instead of reading the file at every draw. Implies ``validate``.

    Raises:
        InputValueError: ``root`` is not a folder, holds no mask files, or an argument is invalid.
        ImageReadError: a file cannot be read (``validate``/``cache``).

    Example:
        >>> import tempfile, pathlib
        >>> from pconv_kit.io import write_mask
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> m = np.ones((64, 64), np.float32); m[10:30, 10:50] = 0
        >>> write_mask(d / "m0.png", m)
        >>> folder = MaskFolder(d, 32, 48, seed=0)
        >>> len(folder), folder().shape
        (1, (32, 48))
    """

    def __init__(
        self,
        root: PathLike,
        height: int,
        width: int,
        mask_convention: str = "hole-white",
        augment: bool | MaskAugment = True,
        seed: int | None = None,
        recursive: bool = True,
        validate: bool = True,
        cache: bool = False,
    ) -> None:
        self.height, self.width = _check_size(height, width)
        if mask_convention not in MASK_CONVENTIONS:
            choices = ", ".join(repr(c) for c in MASK_CONVENTIONS)
            raise InputValueError(f"mask_convention must be one of {choices}; got {mask_convention!r}")
        if isinstance(augment, MaskAugment):
            self.augment: MaskAugment | None = augment
        elif augment is True:
            self.augment = MaskAugment()
        elif augment is False or augment is None:
            self.augment = None
        else:
            raise InputValueError(f"augment must be True, False or a MaskAugment; got {augment!r}")
        self.root = Path(root)
        self.mask_convention = mask_convention
        self.recursive = bool(recursive)
        self.paths: list[Path] = list_images(self.root, recursive=self.recursive)
        if not self.paths:
            where = f"{self.root} or its sub-folders" if self.recursive else str(self.root)
            raise InputValueError(
                f"no mask files found in {where} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
            )
        self.seed = seed
        self._rng = seeded_rng(seed)
        self._cache: list[tuple[tuple[int, int], np.ndarray]] | None = [] if cache else None
        if validate or cache:
            for path in self.paths:
                mask = read_mask(path, mask_convention)
                if self._cache is not None:
                    self._cache.append((mask.shape, np.packbits(mask < 0.5)))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (
            f"MaskFolder({str(self.root)!r}, height={self.height}, width={self.width}, "
            f"mask_convention={self.mask_convention!r}, files={len(self)}, augment={self.augment})"
        )

    def load(self, index: int) -> np.ndarray:
        """Mask file ``index`` (in :attr:`paths` order) at its own size: ``(h, w)`` float32, 1 = valid."""
        if self._cache is not None:
            shape, packed = self._cache[index]
            hole = np.unpackbits(packed, count=shape[0] * shape[1]).reshape(shape)
            return np.subtract(1.0, hole, dtype=np.float32)
        return read_mask(self.paths[index], self.mask_convention)

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """A random mask file, augmented (or fitted) to ``(height, width)``: float32, 1 = valid, 0 = hole."""
        rng = self._rng if rng is None else rng
        source = self.load(int(rng.integers(len(self.paths))))
        if self.augment is None:
            return fit_mask(source, self.height, self.width)
        return self.augment(source, self.height, self.width, rng)

    def sample(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """``n`` random masks stacked as ``(n, height, width)`` float32."""
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
            raise InputValueError(f"n must be a non-negative integer; got {n!r}")
        out = np.empty((int(n), self.height, self.width), np.float32)
        for i in range(int(n)):
            out[i] = self(rng)
        return out
