"""pconv-kit: image inpainting with partial convolutions (Liu et al. 2018, arXiv:1804.07723).

Conventions: images are float tensors ``(B, C, H, W)`` in ``[0, 1]``; masks are float ``(B, 1, H, W)`` or
``(B, C, H, W)`` with **1 = valid pixel, 0 = hole** (the paper's ``M``).

The names below are imported on first use (:mod:`pconv_kit.utils.lazy`): ``import pconv_kit`` does not import
torch, so command-line help and mask generation start at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pconv_kit.utils.lazy import lazy_attributes

try:  # the version of the installed distribution, so it cannot drift from pyproject.toml
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _distribution_version

    __version__ = _distribution_version("pconv-kit")
except PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0+unknown"

_EXPORTS = {
    **dict.fromkeys(
        ("PConvKitError", "ShapeError", "InputValueError", "ImageReadError", "WeightsNotFoundError", "ChecksumError",
         "ConfigError"),
        "pconv_kit.errors",
    ),
    **dict.fromkeys(("partial_conv2d", "PartialConv2d", "replace_conv2d"), "pconv_kit.layers"),
    **dict.fromkeys(("PConvUNet", "save_model"), "pconv_kit.models"),
    **dict.fromkeys(("list_models", "load_model"), "pconv_kit.registry"),  # load_model: paths, run dirs, names
    "inpaint": "pconv_kit.inpaint",
    "cv2_inpaint": "pconv_kit.opencv",  # cv2.inpaint's call, filled by a model
    **dict.fromkeys(("InpaintingLoss", "VGG16Features"), "pconv_kit.losses"),
    **dict.fromkeys(("MaskGenerator", "MaskFolder"), "pconv_kit.masks"),
    # `train` stays the name of the subpackage (pconv_kit.train.train is the function), like `convert`
    **dict.fromkeys(("TrainConfig", "TrainSummary"), "pconv_kit.train"),
}
_SUBMODULES = (
    "baselines", "conventions", "convert", "core", "errors", "evaluate", "export", "fill", "geometry", "inpaint", "io",
    "layers", "losses", "masks", "models", "napari", "opencv", "registry", "train", "utils",
)

__getattr__, __dir__ = lazy_attributes(__name__, _EXPORTS, _SUBMODULES)

if TYPE_CHECKING:  # what the lazy attributes are, for type checkers and IDEs
    from pconv_kit import convert, train  # noqa: F401
    from pconv_kit.errors import (
        ChecksumError,
        ConfigError,
        ImageReadError,
        InputValueError,
        PConvKitError,
        ShapeError,
        WeightsNotFoundError,
    )
    from pconv_kit.inpaint import inpaint
    from pconv_kit.layers import PartialConv2d, partial_conv2d, replace_conv2d
    from pconv_kit.losses import InpaintingLoss, VGG16Features
    from pconv_kit.masks import MaskFolder, MaskGenerator
    from pconv_kit.models import PConvUNet, save_model
    from pconv_kit.opencv import cv2_inpaint
    from pconv_kit.registry import list_models, load_model
    from pconv_kit.train import TrainConfig, TrainSummary

__all__ = [
    "__version__",
    "PConvKitError",
    "ShapeError",
    "InputValueError",
    "ImageReadError",
    "WeightsNotFoundError",
    "ChecksumError",
    "ConfigError",
    "partial_conv2d",
    "PartialConv2d",
    "replace_conv2d",
    "PConvUNet",
    "save_model",
    "load_model",
    "list_models",
    "inpaint",
    "cv2_inpaint",
    "InpaintingLoss",
    "VGG16Features",
    "MaskGenerator",
    "MaskFolder",
    "TrainConfig",
    "TrainSummary",
]
