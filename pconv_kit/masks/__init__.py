"""Masks for inpainting: random masks of several families, mask datasets with augmentation, mask-file rules.

All masks are ``(H, W)`` float32 NumPy arrays with **1 = valid pixel, 0 = hole**. Mask *files* are read and
written with :mod:`pconv_kit.io` (default file convention: white = hole).
"""

from pconv_kit.masks.augment import MaskAugment, MaskFolder, augment_mask, fit_mask
from pconv_kit.masks.files import fit_mask_to_image, mask_stem
from pconv_kit.masks.sets import MaskSetOptions, paint_holes, write_mask_set
from pconv_kit.masks.generator import (
    FAMILIES,
    FAMILY_UNIT_COUNTS,
    MASK_KINDS,
    MIXED_WEIGHTS,
    SHAPES,
    UNIT_KINDS,
    MaskGenerator,
    Unit,
    draw_units,
    format_weights,
    parse_weights,
)

__all__ = [
    "MaskGenerator",
    "Unit",
    "SHAPES",
    "UNIT_KINDS",
    "FAMILIES",
    "MASK_KINDS",
    "MIXED_WEIGHTS",
    "FAMILY_UNIT_COUNTS",
    "draw_units",
    "parse_weights",
    "format_weights",
    "MaskFolder",
    "MaskAugment",
    "augment_mask",
    "fit_mask",
    "fit_mask_to_image",
    "mask_stem",
    "MaskSetOptions",
    "paint_holes",
    "write_mask_set",
]
