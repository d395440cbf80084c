"""Names shared by the CLI, the training config and the library, in a module that imports nothing.

The command line's choices and defaults come from here (or from the library functions' own signatures), so
they cannot drift from what the library accepts, and ``pconv-kit --help`` stays fast.

In the library a mask is ``M`` of the paper: **1 = valid pixel, 0 = hole**. Mask *files* are images, and default
to **white (non-zero) = hole**, like OpenCV, LaMa and IOPaint; ``"valid-white"`` reads them the other way round.

Example:
    >>> MASK_FILE_CONVENTIONS, DEFAULT_MASK_FILE_CONVENTION
    (('hole-white', 'valid-white'), 'hole-white')
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_DEVICE", "DEFAULT_MASK_FILE_CONVENTION", "DEVICE_CHOICES", "MASK_ARRAY_CONVENTIONS", "MASK_FILE_CONVENTIONS",
]

MASK_FILE_CONVENTIONS: tuple[str, ...] = ("hole-white", "valid-white")
"""How a mask file encodes holes: ``"hole-white"`` (white = hole) or ``"valid-white"`` (white = kept)."""

DEFAULT_MASK_FILE_CONVENTION = "hole-white"
"""The convention of every command and function that reads or writes mask files, unless told otherwise."""

MASK_ARRAY_CONVENTIONS: tuple[str, ...] = ("valid", *MASK_FILE_CONVENTIONS)
"""What :func:`pconv_kit.inpaint` takes: ``"valid"`` is the library's binary ``M`` (1/True = valid); the file
conventions read an array like a decoded mask image (thresholded at 50 % of its range)."""

DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda")
"""Device names the CLI and the config take (the library also takes ``"cuda:N"`` and ``torch.device``)."""

DEFAULT_DEVICE = "auto"
"""CUDA when PyTorch sees a device, else the CPU."""
