"""Image files: robust reading (EXIF orientation, 16-bit, alpha, float TIFF), dtype-preserving atomic writing.

Part of :mod:`pconv_kit.io`, which documents the conventions; import from there.
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
