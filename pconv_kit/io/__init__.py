"""Image and mask file I/O: robust reading, dtype-preserving atomic writing, and mask file conventions.

The package has two modules, :mod:`~pconv_kit.io.images` and :mod:`~pconv_kit.io.masks`; everything is
imported from ``pconv_kit.io``.

Arrays follow the library's NumPy conventions:

* images are ``(H, W, C)`` with ``C`` in ``{1, 3, 4}``, channels in **RGB(A)** order (never BGR), in their
  native dtype: ``uint8``, ``uint16`` or (float TIFF only) ``float32``. Use :func:`to_float` /
  :func:`from_float` to convert to and from float32 in ``[0, 1]``.
* masks are ``(H, W)`` float32 with **1 = valid pixel, 0 = hole** (the paper's ``M``).

Mask *files* use one of two conventions (``mask_convention``):

* ``"hole-white"`` (default, like OpenCV's ``inpaint``, LaMa and IOPaint): white/non-zero pixels are holes,
  black pixels are kept.
* ``"valid-white"``: white pixels are kept, black pixels are holes (the paper's ``M`` saved as an image).

Reading (:func:`read_image`) decodes with OpenCV (``IMREAD_UNCHANGED``, so 16-bit, alpha and float TIFF
survive) and then applies the EXIF orientation tag, which ``IMREAD_UNCHANGED`` ignores: for JPEG, PNG and WebP
the tag is read with Pillow (header only, the pixels are decoded once) and applied with NumPy; OpenCV's TIFF
decoder applies the TIFF orientation tag itself. Every failure raises
:class:`~pconv_kit.errors.ImageReadError` naming the file.

Writing (:func:`write_image`) picks the format from the suffix, keeps the dtype where the format can store it
(``uint16`` PNG/TIFF, ``float32`` TIFF) and refuses, with a message saying what to do, where it cannot (e.g.
float data to PNG, alpha to JPEG). Files are written atomically with :func:`pconv_kit.utils.atomic_write`:
a crash or an encoder error never leaves a partial file behind.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_image(d / "a.png", np.full((4, 6, 3), 65535, np.uint16))
    >>> img = read_image(d / "a.png")
    >>> img.shape, img.dtype
    ((4, 6, 3), dtype('uint16'))
    >>> valid = np.ones((4, 6), np.float32); valid[1:3, 2:4] = 0       # a 2x2 hole
    >>> write_mask(d / "m.png", valid)                                  # hole-white: the hole is white
    >>> int(read_image(d / "m.png")[1, 2, 0]), int(read_image(d / "m.png")[0, 0, 0])
    (255, 0)
    >>> bool((read_mask(d / "m.png") == valid).all())
    True
"""

from pconv_kit.io.images import (
    IMAGE_EXTENSIONS,
    MASK_CONVENTIONS,
    UNSUPPORTED_IMAGE_EXTENSIONS,
    ImageHeader,
    MaskConvention,
    decode_image,
    encode_image,
    from_float,
    image_header,
    list_images,
    read_image,
    to_float,
    write_image,
)
from pconv_kit.io.masks import decode_mask, encode_mask, read_mask, write_mask

__all__ = [
    "IMAGE_EXTENSIONS",
    "UNSUPPORTED_IMAGE_EXTENSIONS",
    "MASK_CONVENTIONS",
    "MaskConvention",
    "list_images",
    "image_header",
    "ImageHeader",
    "read_image",
    "decode_image",
    "write_image",
    "encode_image",
    "to_float",
    "from_float",
    "decode_mask",
    "encode_mask",
    "read_mask",
    "write_mask",
]
