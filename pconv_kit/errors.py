"""Exception types raised by pconv-kit.

Every error the library raises on bad *input* derives from :class:`PConvKitError`, so callers (and the
CLI, which maps them to exit codes) can tell a user mistake from a bug. Subclasses also derive from the
matching built-in (``ValueError``, ``FileNotFoundError``, ...) so plain ``except ValueError`` still works.
"""

from __future__ import annotations

__all__ = [
    "PConvKitError",
    "ShapeError",
    "InputValueError",
    "ImageReadError",
    "WeightsNotFoundError",
    "ChecksumError",
    "ConfigError",
    "RunExistsError",
    "VGGWeightsNotFoundError",
]


class PConvKitError(Exception):
    """Base class of all errors raised by pconv-kit for invalid input or missing resources.

    Args:
        *args: the message (as for :class:`Exception`).
        param: the name of the function parameter whose value is wrong, where one is. Messages name
            parameters, never command-line flags; the CLI adds the flag of an option of the same name.

    Example:
        >>> err = InputValueError("quality must be in [1, 100]; got 0", param="quality")
        >>> str(err), err.param
        ('quality must be in [1, 100]; got 0', 'quality')
    """

    def __init__(self, *args: object, param: str | None = None) -> None:
        super().__init__(*args)
        self.param = param


class ShapeError(PConvKitError, ValueError):
    """A tensor or array has the wrong number of dimensions or the wrong size along one of them."""


class InputValueError(PConvKitError, ValueError):
    """An argument has an invalid value (out of range, wrong dtype, non-binary mask, ...)."""


class ImageReadError(PConvKitError, OSError):
    """An image or mask file could not be read or decoded."""


class WeightsNotFoundError(PConvKitError, FileNotFoundError):
    """Pretrained weights are needed but are not available locally and cannot be downloaded."""


class ChecksumError(PConvKitError, ValueError):
    """A downloaded or local file does not have the expected SHA-256 checksum."""


class ConfigError(PConvKitError, ValueError):
    """A configuration file or option set is invalid (unknown key, wrong type, ...)."""


class RunExistsError(ConfigError):
    """A new training run was asked for in a folder that already holds one (``run_dir``: that folder)."""

    def __init__(self, message: str, run_dir: str = "", param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.run_dir = run_dir


class VGGWeightsNotFoundError(WeightsNotFoundError):
    """The VGG16 ImageNet weights of the perceptual and style loss terms are not available."""
