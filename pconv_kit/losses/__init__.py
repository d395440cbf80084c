"""Losses of Liu et al. 2018 and the frozen VGG16 feature extractor they use.

The names below are imported on first use (:mod:`pconv_kit.utils.lazy`): ``import pconv_kit.losses`` does not
import torch, so the torch-free :mod:`pconv_kit.losses.weights` (the paper's loss weights, which the training
configuration reads) stays cheap to reach.

Example:
    >>> import torch
    >>> from pconv_kit.losses import InpaintingLoss
    >>> loss = InpaintingLoss()  # pixel-only: valid, hole and TV terms
    >>> x, m = torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16)
    >>> sorted(loss(x, x, m))
    ['hole', 'total', 'tv', 'valid']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pconv_kit.utils.lazy import lazy_attributes

_EXPORTS = {
    **dict.fromkeys(("DEFAULT_WEIGHTS", "TERM_NAMES"), "pconv_kit.losses.weights"),
    **dict.fromkeys(
        ("InpaintingLoss", "composite", "dilated_hole_region", "gram_matrix", "hole_loss", "hole_mse_loss",
         "inpainting_loss",
         "perceptual_loss", "ssim_loss", "style_loss", "total_variation_loss", "valid_loss"),
        "pconv_kit.losses.inpainting",
    ),
    **dict.fromkeys(
        ("VGG16_URL", "WEIGHTS_ENV", "VGG16Features", "load_vgg16_state_dict", "resolve_vgg16_weights",
         "vgg16_expected_shapes"),
        "pconv_kit.losses.vgg",
    ),
}
__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, ("inpainting", "vgg", "weights"))

if TYPE_CHECKING:  # what the lazy attributes are, for type checkers, IDEs and the API documentation
    from pconv_kit.losses.inpainting import (
        InpaintingLoss,
        composite,
        dilated_hole_region,
        gram_matrix,
        hole_loss,
        hole_mse_loss,
        inpainting_loss,
        perceptual_loss,
        ssim_loss,
        style_loss,
        total_variation_loss,
        valid_loss,
    )
    from pconv_kit.losses.vgg import (
        VGG16_URL,
        WEIGHTS_ENV,
        VGG16Features,
        load_vgg16_state_dict,
        resolve_vgg16_weights,
        vgg16_expected_shapes,
    )
    from pconv_kit.losses.weights import DEFAULT_WEIGHTS, TERM_NAMES

__all__ = [
    "DEFAULT_WEIGHTS",
    "InpaintingLoss",
    "TERM_NAMES",
    "VGG16Features",
    "VGG16_URL",
    "WEIGHTS_ENV",
    "composite",
    "dilated_hole_region",
    "gram_matrix",
    "hole_loss",
    "hole_mse_loss",
    "inpainting_loss",
    "load_vgg16_state_dict",
    "perceptual_loss",
    "resolve_vgg16_weights",
    "ssim_loss",
    "style_loss",
    "total_variation_loss",
    "valid_loss",
    "vgg16_expected_shapes",
]
