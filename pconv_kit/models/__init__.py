"""Models: the paper's :class:`PConvUNet` and its (de)serialisation.

``pconv_kit.models.load_model`` is :func:`pconv_kit.registry.load_model` (names, paths, run directories).
"""

from pconv_kit.models.serialization import read_model_config, save_model
from pconv_kit.models.unet import PConvBlock, PConvUNet
from pconv_kit.registry import load_model

__all__ = ["PConvUNet", "PConvBlock", "save_model", "load_model", "read_model_config"]
