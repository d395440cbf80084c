"""Image and mask file I/O: robust reading, dtype-preserving atomic writing, and mask file conventions.

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

from __future__ import annotations

import contextlib
import io as _io
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple, Union

import cv2
import numpy as np

from pconv_kit.conventions import MASK_FILE_CONVENTIONS
from pconv_kit.errors import ImageReadError, InputValueError
from pconv_kit.utils.files import atomic_write_bytes

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

PathLike = Union[str, "os.PathLike[str]"]
MaskConvention = Literal["hole-white", "valid-white"]

#: Lowercase file suffixes read by :func:`read_image` and written by :func:`write_image`.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"})

#: Image formats that are recognised but not read (animation, palettes, other codecs): a folder tool reports
#: each such file as failed instead of passing over it in silence, and its sibling mask is not taken for an image.
UNSUPPORTED_IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".gif", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".svg", ".psd", ".ico", ".apng"}
)

#: The two mask file conventions; ``"hole-white"`` is the default everywhere (:mod:`pconv_kit.conventions`).
MASK_CONVENTIONS: tuple[str, ...] = MASK_FILE_CONVENTIONS

# What each format can store: allowed dtypes and channel counts (after squeezing a single channel).
_FORMATS: dict[str, tuple[str, tuple[np.dtype, ...], tuple[int, ...]]] = {
    ".png": ("PNG", (np.dtype(np.uint8), np.dtype(np.uint16)), (1, 3, 4)),
    ".jpg": ("JPEG", (np.dtype(np.uint8),), (1, 3)),
    ".jpeg": ("JPEG", (np.dtype(np.uint8),), (1, 3)),
    ".webp": ("WebP", (np.dtype(np.uint8),), (1, 3, 4)),
    ".tif": ("TIFF", (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)), (1, 3, 4)),
    ".tiff": ("TIFF", (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)), (1, 3, 4)),
    ".bmp": ("BMP", (np.dtype(np.uint8),), (1, 3, 4)),
}

_EXIF_ORIENTATION_TAG = 0x0112


def _supported() -> str:
    return ", ".join(sorted(IMAGE_EXTENSIONS))


# ----------------------------------------------------------------------------------------------- listing
def list_images(root: PathLike, recursive: bool = False, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """List the image files under ``root``, sorted by path.

    A file counts as an image when its suffix (case-insensitive) is in :data:`IMAGE_EXTENSIONS`. Hidden files
    and folders (names starting with ``"."``, e.g. macOS ``._photo.jpg`` resource forks or the temporary files
    of an interrupted atomic write) are skipped.

    Args:
        root: folder to search.
        recursive: also search sub-folders.
        extensions: the suffixes (lower case, with the dot) that count; :data:`UNSUPPORTED_IMAGE_EXTENSIONS`
            lists the image files that are not read.

    Returns:
        Sorted list of paths (``root`` joined with the relative path).

    Raises:
        InputValueError: ``root`` does not exist or is not a folder.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("b.JPG", "a.png", "notes.txt", ".hidden.png"):
        ...     _ = (d / name).write_bytes(b"")
        >>> [p.name for p in list_images(d)]
        ['a.png', 'b.JPG']
    """
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise InputValueError(f"image folder {root} {what}")
    pattern = "**/*" if recursive else "*"
    found = []
    for path in root.glob(pattern):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in extensions and path.is_file():
            found.append(path)
    return sorted(found)


# ----------------------------------------------------------------------------------------------- reading
def _exif_orientation(data: bytes) -> int:
    """EXIF orientation (1-8) of an encoded JPEG/PNG/WebP image; 1 when absent, unreadable or another format."""
    head = data[:16]
    if head.startswith(b"\x89PNG"):
        if b"eXIf" not in data:  # skip Pillow entirely (it may decode a PNG to look for late chunks)
            return 1
    elif not (head.startswith(b"\xff\xd8") or (head.startswith(b"RIFF") and head[8:12] == b"WEBP")):
        return 1
    from PIL import Image  # imported lazily: only needed for images that may carry EXIF

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data" and decompression-bomb warnings
            with Image.open(_io.BytesIO(data)) as im:
                value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not make an otherwise decodable image unreadable
        return 1
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(array: np.ndarray, orientation: int) -> np.ndarray:
    """Transform stored pixels ``(H, W, ...)`` to display orientation for an EXIF orientation value 1-8."""
    if orientation == 2:  # mirrored horizontally
        array = array[:, ::-1]
    elif orientation == 3:  # rotated 180 degrees
        array = array[::-1, ::-1]
    elif orientation == 4:  # mirrored vertically
        array = array[::-1]
    elif orientation == 5:  # transposed (mirror along the main diagonal)
        array = np.swapaxes(array, 0, 1)
    elif orientation == 6:  # needs a 90 degree clockwise rotation
        array = np.rot90(array, k=-1)
    elif orientation == 7:  # transversed (mirror along the anti-diagonal)
        array = np.rot90(np.swapaxes(array, 0, 1), k=2)
    elif orientation == 8:  # needs a 90 degree counter-clockwise rotation
        array = np.rot90(array, k=1)
    return np.ascontiguousarray(array)


@contextlib.contextmanager
def _opencv_log_silenced() -> Iterator[None]:
    """Silence OpenCV's log (codec warnings and errors) for the duration of a decode.

    OpenCV's log level is process-wide; a decode running at the same moment in another thread may print or
    lose a log line, which is harmless.
    """
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:  # pragma: no cover - very old OpenCV builds without the logging module
        yield
        return
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(previous)


def _png_damage(data: bytes) -> str | None:
    """What is wrong with the chunks of PNG ``data`` (a CRC mismatch), or ``None`` (also for other formats).

    libpng reports a damaged chunk by printing to the process's stderr, which no Python code can catch; checking
    the CRCs first (``zlib.crc32``, about a millisecond per megabyte) turns that into one clear error instead.
    A file cut short is left to the decoder, which reports it without printing.
    """
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    view, at = memoryview(data), 8  # slices of a memoryview do not copy (an IDAT chunk can be the whole image)
    while at + 12 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind, end = data[at + 4 : at + 8], at + 8 + length
        if end + 4 > len(data):
            return None
        if zlib.crc32(view[at + 4 : end]) != int.from_bytes(data[end : end + 4], "big"):
            return f"CRC error in its {kind.decode('latin-1', 'replace')} chunk"
        if kind == b"IEND":
            return None
        at = end + 4
    return None


def decode_image(data: bytes | bytearray | memoryview, name: str = "<image bytes>") -> np.ndarray:
    """Decode an encoded image (the bytes of a PNG/JPEG/WebP/TIFF/BMP file) like :func:`read_image`.

    Args:
        data: the encoded file content.
        name: how to name the source in error messages (e.g. the file path or URL).

    Returns:
        ``(H, W, C)`` array, ``C`` in ``{1, 3, 4}``, RGB(A) order, dtype ``uint8``, ``uint16`` or ``float32``,
        EXIF orientation applied.

    Raises:
        ImageReadError: empty, truncated, corrupt or unsupported data.
    """
    data = bytes(data)
    if not data:
        raise ImageReadError(f"cannot read image {name}: the file is empty")
    damage = _png_damage(data)
    if damage:  # found here, libpng would print its own "libpng error: ..." line to stderr before failing
        raise ImageReadError(f"cannot read image {name}: the PNG file is corrupt ({damage})")
    try:
        with _opencv_log_silenced():  # the ImageReadError below replaces libpng/libtiff chatter on stderr
            array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        array = None
    if array is None or array.size == 0:
        raise ImageReadError(
            f"cannot read image {name}: not a supported image or the file is corrupt or truncated "
            f"(supported: {_supported()})"
        )
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    elif array.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageReadError(
            f"cannot read image {name}: unsupported sample type {array.dtype} (supported: 8/16-bit unsigned "
            "integers and float32)"
        )
    if array.ndim == 2:
        array = array[:, :, None]
    channels = array.shape[2]
    if channels == 2:  # gray + alpha -> RGBA
        gray, alpha = array[:, :, :1], array[:, :, 1:]
        array = np.concatenate([gray, gray, gray, alpha], axis=2)
    elif channels == 3:
        array = array[:, :, ::-1]
    elif channels == 4:
        array = array[:, :, [2, 1, 0, 3]]
    elif channels != 1:
        raise ImageReadError(f"cannot read image {name}: unsupported number of channels {channels}")
    # JPEG/PNG/WebP: IMREAD_UNCHANGED ignores EXIF orientation, so apply it here. TIFF: OpenCV's TIFF decoder
    # applies the orientation tag itself (for every bit depth), and _exif_orientation returns 1 for TIFF data.
    array = _apply_orientation(array, _exif_orientation(data))
    return np.ascontiguousarray(array)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file into an ``(H, W, C)`` RGB(A) array in its native dtype, EXIF orientation applied.

    Supports PNG, JPEG, WebP, TIFF and BMP (see :data:`IMAGE_EXTENSIONS`), gray, RGB and RGBA, 8 and 16 bit,
    and float32 TIFF. Gray images have ``C == 1``; gray + alpha is returned as RGBA. The format is detected
    from the content, not the suffix.

    Args:
        path: the image file.

    Returns:
        ``(H, W, C)`` array with ``C`` in ``{1, 3, 4}``; dtype ``uint8``, ``uint16`` or ``float32``.

    Raises:
        ImageReadError: the file is missing, unreadable, empty, truncated, corrupt or of an unsupported kind;
            the message names the file.

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "gray.png"
        >>> write_image(p, np.zeros((5, 7), np.uint8))
        >>> read_image(p).shape
        (5, 7, 1)
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"cannot read image {path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"cannot read image {path}: it is a folder") from None
    except OSError as exc:
        raise ImageReadError(f"cannot read image {path}: {exc.strerror or exc}") from None
    return decode_image(data, name=str(path))


class ImageHeader(NamedTuple):
    """What an image file's header says: its size and how many pages or frames it holds."""

    height: int
    width: int
    frames: int
    mode: str = ""  # Pillow's name for the pixel layout: "L", "LA", "RGB", "RGBA", "I;16", ...


def image_header(path: PathLike) -> ImageHeader | None:
    """Size and page/frame count of an image file, from its header, without decoding the pixels.

    Lets a folder tool refuse a file before it allocates anything: a 1 MB PNG can hold 20000x20000 pixels, and
    a multi-page TIFF or an animated PNG/WebP decodes to its first frame only. Sizes are those stored in the
    file (before EXIF rotation; the pixel count is the same). ``None`` when the header cannot be read (reading
    the file then says why).

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"
        >>> write_image(p, np.zeros((5, 7, 3), np.uint8))
        >>> image_header(p)
        ImageHeader(height=5, width=7, frames=1, mode='RGB')
    """
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's decompression-bomb warning: the caller decides
            with Image.open(path) as im:
                width, height = im.size
                # pages of a TIFF, frames of an animated PNG or WebP; a phone's JPEG with a second picture (MPO:
                # a depth map or preview after the photo) is one photo, which is what is read and written
                frames = int(getattr(im, "n_frames", 1) or 1) if im.format in ("TIFF", "PNG", "WEBP") else 1
                mode = str(im.mode)
    except Image.DecompressionBombError:
        return ImageHeader((Image.MAX_IMAGE_PIXELS or 0) * 2 + 1, 1, 1)  # more pixels than Pillow will open
    except Exception:  # noqa: BLE001 - unknown or corrupt: reading the file says why
        return None
    return ImageHeader(int(height), int(width), frames, mode)


# ----------------------------------------------------------------------------------------------- writing
def encode_image(array: np.ndarray, suffix: str, quality: int = 95) -> bytes:
    """Encode an ``(H, W)`` or ``(H, W, C)`` RGB(A) array to the bytes of a file of type ``suffix``.

    See :func:`write_image` for the rules; this is the same without touching the disk.
    """
    ext = suffix.lower() if suffix.startswith(".") else "." + suffix.lower()
    if ext not in _FORMATS:
        raise InputValueError(f"cannot write image format {suffix!r}; supported suffixes: {_supported()}")
    fmt, dtypes, channel_counts = _FORMATS[ext]
    if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise InputValueError(f"quality must be an integer in [1, 100]; got {quality!r}")
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or array.shape[0] == 0 or array.shape[1] == 0:
        raise InputValueError(
            f"image must have shape (H, W) or (H, W, C) with C in {{1, 3, 4}}; got {tuple(array.shape)}"
        )
    channels = 1 if array.ndim == 2 else array.shape[2]
    if array.dtype == np.float64 and np.dtype(np.float32) in dtypes:
        array = array.astype(np.float32)
    if array.dtype not in dtypes:
        allowed = "/".join(str(d) for d in dtypes)
        hint = (
            " (convert float images with pconv_kit.io.from_float(array, np.uint8) first)"
            if array.dtype.kind in "fb"
            else ""
        )
        raise InputValueError(f"{fmt} files store {allowed} data; got dtype {array.dtype}{hint}")
    if channels not in channel_counts:
        hint = " (JPEG has no alpha channel: drop it, or write .png/.webp)" if channels == 4 else ""
        raise InputValueError(
            f"{fmt} files store {'/'.join(map(str, channel_counts))} channel(s); got {channels} with shape "
            f"{tuple(array.shape)}{hint}"
        )
    if channels == 3:
        array = array[:, :, ::-1]
    elif channels == 4:
        array = array[:, :, [2, 1, 0, 3]]
    params: list[int] = []
    if fmt == "JPEG":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif fmt == "WebP":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    try:
        ok, buf = cv2.imencode(ext, np.ascontiguousarray(array), params)
    except cv2.error as exc:
        raise InputValueError(f"OpenCV could not encode a {fmt} image of shape {tuple(array.shape)}: {exc}") from exc
    if not ok:
        raise InputValueError(f"OpenCV could not encode a {fmt} image of shape {tuple(array.shape)}")
    return buf.tobytes()


def write_image(path: PathLike, array: np.ndarray, quality: int = 95, overwrite: bool = True) -> None:
    """Write an image atomically; the format comes from the file suffix and the dtype is kept.

    | suffix | dtypes | channels |
    | --- | --- | --- |
    | `.png` | uint8, uint16 | 1, 3, 4 |
    | `.tif`, `.tiff` | uint8, uint16, float32 | 1, 3, 4 |
    | `.jpg`, `.jpeg` | uint8 | 1, 3 |
    | `.webp` (lossy) | uint8 | 1, 3, 4 (grey is stored as RGB) |
    | `.bmp` | uint8 | 1, 3, 4 |

    Args:
        path: destination; its folder must exist. The suffix (case-insensitive) selects the format.
        array: ``(H, W)`` or ``(H, W, C)`` array, channels in RGB(A) order. ``float64`` is stored as
            ``float32`` in TIFF; other dtype/format combinations raise (nothing is silently rescaled).
        quality: JPEG/WebP quality in ``[1, 100]`` (ignored by lossless formats).
        overwrite: if False and ``path`` exists, raise ``FileExistsError`` and leave it untouched.

    Raises:
        InputValueError: unsupported suffix, dtype, channel count or quality.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: the folder is missing or not writable (no partial file is left behind).

    Example:
        >>> import numpy as np, tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> write_image(d / "x.tif", np.random.rand(8, 8, 3).astype(np.float32))
        >>> read_image(d / "x.tif").dtype
        dtype('float32')
    """
    path = Path(path)
    data = encode_image(array, path.suffix, quality=quality)
    atomic_write_bytes(path, data, overwrite=overwrite)


# ----------------------------------------------------------------------------------------- float helpers
def to_float(array: np.ndarray) -> np.ndarray:
    """Convert an image array to float32 in ``[0, 1]``.

    ``uint8`` is divided by 255, ``uint16`` by 65535, ``bool`` maps to 0/1; float input is cast to float32
    and clipped to ``[0, 1]`` (NaN becomes 0).

    Example:
        >>> [round(float(v), 3) for v in to_float(np.array([0, 128, 255], np.uint8))]
        [0.0, 0.502, 1.0]
    """
    array = np.asarray(array)
    # one new float32 array, then in-place arithmetic: a large image costs one copy, not three
    if array.dtype in (np.uint8, np.uint16):
        out = array.astype(np.float32)
        out /= np.float32(np.iinfo(array.dtype).max)
        return out
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype.kind == "f":
        out = array.astype(np.float32)  # always a copy: the caller's array is never changed
        np.nan_to_num(out, copy=False, nan=0.0)
        return np.clip(out, 0.0, 1.0, out=out)
    raise InputValueError(f"to_float expects a uint8, uint16, bool or float array; got dtype {array.dtype}")


def from_float(array: np.ndarray, dtype: np.dtype | type | str = np.uint8) -> np.ndarray:
    """Convert a float array in ``[0, 1]`` to ``dtype`` (``uint8``, ``uint16`` or ``float32``).

    Values are clipped to ``[0, 1]`` (NaN becomes 0), scaled to the integer range and rounded to nearest.

    Example:
        >>> from_float(np.array([0.0, 0.5, 1.2]), np.uint8).tolist()
        [0, 128, 255]
    """
    target = np.dtype(dtype)
    clipped = np.clip(np.nan_to_num(np.asarray(array, dtype=np.float32), nan=0.0), 0.0, 1.0)
    if target == np.uint8:
        return np.rint(clipped * 255.0).astype(np.uint8)
    if target == np.uint16:
        return np.rint(clipped * 65535.0).astype(np.uint16)
    if target == np.float32:
        return clipped
    raise InputValueError(f"from_float supports dtype uint8, uint16 or float32; got {target}")


# ------------------------------------------------------------------------------------------------- masks
def _check_convention(mask_convention: str) -> None:
    if mask_convention not in MASK_CONVENTIONS:
        raise InputValueError(
            f"mask_convention must be one of {', '.join(repr(c) for c in MASK_CONVENTIONS)}; got {mask_convention!r}"
        )


def _white(plane: np.ndarray) -> np.ndarray:
    """Boolean 'white' map of a single plane: non-zero if the plane is binary, else above 50% of the range."""
    if plane.dtype == np.bool_:
        return plane.copy()
    top = plane.max() if plane.size else 0
    if top > 0 and bool(np.all((plane == 0) | (plane == top))):
        return plane != 0  # binary {0, v}: non-zero is white (0/1, 0/255, 0/65535 files all work)
    if top <= 0:
        return np.zeros(plane.shape, bool)
    if plane.dtype.kind == "u" or plane.dtype.kind == "i":
        half = np.iinfo(plane.dtype).max / 2.0
    else:
        half = 0.5
    return plane > half


def decode_mask(array: np.ndarray, mask_convention: str = "hole-white") -> np.ndarray:
    """Decode the pixels of a mask file into a valid-mask: ``(H, W)`` float32, 1 = valid, 0 = hole.

    Rules, applied in this order:

    1. **Channels.** ``(H, W)`` and ``(H, W, 1)`` are used as they are. For colour masks the brightest colour
       channel is used (``max`` over R, G, B), so any coloured stroke counts as white. If an RGBA (or gray +
       alpha) mask has constant colour channels but a varying alpha, the alpha channel is used instead
       (strokes painted on a transparent layer; opaque acts as white); otherwise alpha is ignored.
    2. **White.** A plane holding only 0 and one other value (``0/1``, ``0/255``, ``0/65535``, ``False/True``)
       is white wherever it is non-zero. Any other plane (anti-aliased or JPEG-compressed masks) is white
       above 50% of its dtype's range: ``> 127.5`` for ``uint8``, ``> 32767.5`` for ``uint16``, ``> 0.5`` for
       floats.
    3. **Convention.** ``"hole-white"``: white = hole, so ``valid = not white``. ``"valid-white"``:
       ``valid = white``.

    Args:
        array: ``(H, W)`` or ``(H, W, C)`` pixels, ``C`` in 1-4, any integer, bool or float dtype.
        mask_convention: ``"hole-white"`` (default) or ``"valid-white"``.

    Returns:
        ``(H, W)`` float32 array of 0.0 (hole) and 1.0 (valid).

    Raises:
        InputValueError: wrong number of dimensions/channels or unknown convention.

    Example:
        >>> pixels = np.array([[0, 255], [0, 0]], np.uint8)
        >>> decode_mask(pixels).tolist()                    # hole-white: the white pixel is a hole
        [[1.0, 0.0], [1.0, 1.0]]
        >>> decode_mask(pixels, "valid-white").tolist()
        [[0.0, 1.0], [0.0, 0.0]]
    """
    _check_convention(mask_convention)
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        plane = array
    elif array.ndim == 3 and array.shape[2] in (2, 3, 4):
        colour = array[:, :, :1] if array.shape[2] == 2 else array[:, :, :3]
        plane = colour.max(axis=2)
        if array.shape[2] in (2, 4):
            alpha = array[:, :, -1]
            if plane.size and plane.min() == plane.max() and alpha.min() != alpha.max():
                plane = alpha
    else:
        raise InputValueError(
            f"mask pixels must have shape (H, W) or (H, W, C) with C in 1-4; got {tuple(array.shape)}"
        )
    if plane.dtype.kind not in "buif":
        raise InputValueError(f"mask pixels must be numeric; got dtype {plane.dtype}")
    white = _white(plane)
    valid = ~white if mask_convention == "hole-white" else white
    return valid.astype(np.float32)


def encode_mask(valid_mask: np.ndarray, mask_convention: str = "hole-white") -> np.ndarray:
    """Encode a valid-mask (1 = valid, 0 = hole) as the ``(H, W)`` uint8 0/255 pixels of a mask file.

    Args:
        valid_mask: ``(H, W)`` or ``(H, W, 1)`` array of bool or numbers in ``[0, 1]``; values ``>= 0.5``
            count as valid (so a soft or resized mask is binarised at one half).
        mask_convention: ``"hole-white"`` (default: holes become 255) or ``"valid-white"`` (valid pixels
            become 255).

    Raises:
        InputValueError: wrong shape, values outside ``[0, 1]`` or NaN, or unknown convention.

    Example:
        >>> encode_mask(np.array([[1.0, 0.0]])).tolist()
        [[0, 255]]
        >>> encode_mask(np.array([[1.0, 0.0]]), "valid-white").tolist()
        [[255, 0]]
    """
    _check_convention(mask_convention)
    mask = np.asarray(valid_mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise InputValueError(f"valid_mask must have shape (H, W) or (H, W, 1); got {tuple(mask.shape)}")
    if mask.dtype == np.bool_:
        valid = mask
    else:
        if mask.dtype.kind not in "uif":
            raise InputValueError(f"valid_mask must be bool or numeric; got dtype {mask.dtype}")
        if mask.size and (np.isnan(mask).any() if mask.dtype.kind == "f" else False):
            raise InputValueError("valid_mask contains NaN")
        if mask.size and (mask.min() < 0 or mask.max() > 1):
            raise InputValueError(
                f"valid_mask values must lie in [0, 1] (1 = valid, 0 = hole); got min {mask.min():g}, "
                f"max {mask.max():g}"
            )
        valid = mask >= 0.5
    white = ~valid if mask_convention == "hole-white" else valid
    return white.astype(np.uint8) * np.uint8(255)


def read_mask(path: PathLike, mask_convention: str = "hole-white") -> np.ndarray:
    """Read a mask file as a valid-mask ``(H, W)`` float32 (1 = valid, 0 = hole); see :func:`decode_mask`.

    Raises:
        ImageReadError: the file cannot be read (message names it).
        InputValueError: unknown convention.
    """
    _check_convention(mask_convention)
    return decode_mask(read_image(path), mask_convention)


def write_mask(
    path: PathLike, valid_mask: np.ndarray, mask_convention: str = "hole-white", overwrite: bool = True
) -> None:
    """Write a valid-mask (1 = valid) as a black/white 8-bit mask file, atomically; see :func:`encode_mask`.

    Use a lossless suffix (``.png``, ``.bmp``, ``.tif``); JPEG/WebP artefacts are undone by the 50% threshold of
    :func:`decode_mask` but blur the hole borders.
    """
    write_image(path, encode_mask(valid_mask, mask_convention), overwrite=overwrite)
