"""The loss weights of Liu et al. 2018 (arXiv:1804.07723, eq. 8): the one place they are written down.

This module imports nothing but the standard library, so the training configuration
(:mod:`pconv_kit.train.config`, read by ``pconv-kit train --help`` without torch) takes its defaults from
here, as do :func:`~pconv_kit.losses.inpainting_loss` and :class:`~pconv_kit.losses.InpaintingLoss`.

Example:
    >>> from pconv_kit.losses.weights import DEFAULT_WEIGHTS
    >>> DEFAULT_WEIGHTS["hole"], DEFAULT_WEIGHTS["style"]
    (6.0, 120.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["DEFAULT_WEIGHTS", "TERM_NAMES", "WEIGHT_NAMES"]

DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {
        "valid": 1.0,
        "hole": 6.0,
        "perceptual": 0.05,
        "style": 120.0,
        "tv": 0.1,
        "ssim": 0.0,
        "hole_mse": 0.0,
    }
)
"""The paper's weights (eq. 8), read-only. ``style`` multiplies both ``style_out`` and ``style_comp``; ``ssim`` and
``hole_mse`` (not in the paper) are off."""

WEIGHT_NAMES: tuple[str, ...] = tuple(DEFAULT_WEIGHTS)
"""The weight names, in the order of :data:`DEFAULT_WEIGHTS`: the keyword arguments of the loss."""

TERM_NAMES: tuple[str, ...] = ("total",) + tuple(
    term for name in WEIGHT_NAMES for term in (("style_out", "style_comp") if name == "style" else (name,))
)
"""The keys :func:`~pconv_kit.losses.inpainting_loss` can return, in display order: ``total``, then one term per
weight (``style`` weighs two terms, ``style_out`` and ``style_comp``).

Example:
    >>> TERM_NAMES[:4], TERM_NAMES[-2:]
    (('total', 'valid', 'hole', 'perceptual'), ('ssim', 'hole_mse'))
"""
