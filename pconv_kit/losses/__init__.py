"""Losses of Liu et al. 2018 and the frozen VGG16 feature extractor they use.

Example:
    >>> import torch
    >>> from pconv_kit.losses import InpaintingLoss
    >>> loss = InpaintingLoss()  # pixel-only: valid, hole and TV terms
    >>> x, m = torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16)
    >>> sorted(loss(x, x, m))
    ['hole', 'total', 'tv', 'valid']
"""

from pconv_kit.losses.inpainting import (
    DEFAULT_WEIGHTS,
    InpaintingLoss,
    composite,
    dilated_hole_region,
    gram_matrix,
    hole_loss,
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

__all__ = [
    "DEFAULT_WEIGHTS",
    "InpaintingLoss",
    "VGG16Features",
    "VGG16_URL",
    "WEIGHTS_ENV",
    "composite",
    "dilated_hole_region",
    "gram_matrix",
    "hole_loss",
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
