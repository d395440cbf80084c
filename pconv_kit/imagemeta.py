"""Colour profile and EXIF of image files: read them from an input, put them back into an output's bytes.

A filled photo should look like its original: an ICC profile (a phone's Display P3, a camera's Adobe RGB) tells
viewers how to show its colours, and EXIF holds the camera, date and GPS data a user may rely on. The pixel
codecs (OpenCV) drop both, so :func:`pconv_kit.fill.fill_folder` reads them here and writes them into the encoded
output: PNG (``iCCP`` and ``eXIf`` chunks), JPEG (``APP2 ICC_PROFILE`` and ``APP1 Exif`` segments) and WebP
(``ICCP`` and ``EXIF`` chunks of the extended format) and 8-bit RGB or grey TIFF (tags, written again by Pillow),
with the EXIF orientation set to 1, since pixels are stored upright. Other TIFF layouts and BMP outputs get a
warning instead.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from PIL import Image
    >>> from pconv_kit.io import encode_image
    >>> meta = ImageMetadata(icc=None, exif=b"Exif\\x00\\x00MM\\x00*\\x00\\x00\\x00\\x08\\x00\\x00\\x00\\x00\\x00\\x00")
    >>> data, warnings = embed_metadata(encode_image(np.zeros((4, 4, 3), np.uint8), ".png"), ".png", meta)
    >>> b"eXIf" in data, warnings
    (True, [])
"""

from __future__ import annotations

import io
import os
import struct
import warnings as _warnings
import zlib
from typing import NamedTuple

__all__ = ["ImageMetadata", "read_metadata", "embed_metadata"]

_ORIENTATION = 0x0112
# the tags of a TIFF's first IFD that describe the photo (ImageDescription, Make, Model, Orientation, Software,
# DateTime, Artist, Copyright), not its pixel layout
_TIFF_DESCRIPTIVE = (0x010E, 0x010F, 0x0110, 0x0112, 0x0131, 0x0132, 0x013B, 0x8298)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SEGMENT_MAX = 65533  # payload bytes of one APPn segment (its 2-byte length counts itself)
_ICC_CHUNK_MAX = _JPEG_SEGMENT_MAX - 14  # "ICC_PROFILE\0" + sequence number + count


class ImageMetadata(NamedTuple):
    """An input's ICC profile and EXIF block (``b"Exif\\0\\0"`` + TIFF data, orientation 1); ``None`` if absent."""

    icc: bytes | None
    exif: bytes | None

    @property
    def empty(self) -> bool:
        return not self.icc and not self.exif


def read_metadata(path: str | os.PathLike[str]) -> ImageMetadata:
    """The ICC profile and EXIF of an image file, EXIF orientation reset to 1 (the pixels are read upright).

    Unreadable or absent metadata gives ``None`` fields; this never raises for a bad file (reading the pixels
    reports that).
    """
    from PIL import Image

    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            with Image.open(path) as im:
                icc = im.info.get("icc_profile") or None
                if im.format == "TIFF":  # its first IFD mixes layout tags with the descriptive ones: keep those
                    source = im.getexif()
                    exif = Image.Exif()
                    for tag in _TIFF_DESCRIPTIVE:
                        if tag in source:
                            exif[tag] = source[tag]
                elif im.format in ("JPEG", "MPO", "PNG", "WEBP"):  # MPO: a phone's JPEG with a second picture
                    exif = im.getexif()
                else:
                    return ImageMetadata(icc, None)
                if len(exif) == 0:
                    return ImageMetadata(icc, None)
                if _ORIENTATION in exif:
                    exif[_ORIENTATION] = 1
                return ImageMetadata(icc, exif.tobytes())
    except Exception:  # noqa: BLE001 - metadata is a courtesy; the pixels decide whether the file is readable
        return ImageMetadata(None, None)


def embed_metadata(data: bytes, suffix: str, meta: ImageMetadata) -> tuple[bytes, list[str]]:
    """``data`` (an encoded image of type ``suffix``) with ``meta`` written into it, and warnings for what the
    format cannot hold."""
    if meta.empty:
        return data, []
    kind = suffix.lower()
    if kind == ".png":
        return _png_with(data, meta), []
    if kind in (".jpg", ".jpeg"):
        return _jpeg_with(data, meta)
    if kind == ".webp":
        return _webp_with(data, meta), []
    if kind in (".tif", ".tiff"):
        tagged = _tiff_with(data, meta)
        if tagged is not None:
            return tagged, []
        kind = f"{kind} (16-bit, float or RGBA)"
    what = " and ".join(name for name, value in (("ICC colour profile", meta.icc), ("EXIF", meta.exif)) if value)
    return data, [f"the input's {what} is not kept in {kind} outputs (PNG, JPEG, WebP and 8-bit RGB or grey TIFF keep it)"]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png_with(data: bytes, meta: ImageMetadata) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not PNG data")
    ihdr_end = len(_PNG_SIGNATURE) + 8 + struct.unpack(">I", data[8:12])[0] + 4
    extra = b""
    if meta.icc:  # iCCP: name, NUL, compression method 0 (zlib), compressed profile; before PLTE and IDAT
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(meta.icc))
    if meta.exif:  # eXIf holds the TIFF data without JPEG's "Exif\0\0" prefix
        extra += _png_chunk(b"eXIf", meta.exif.removeprefix(b"Exif\x00\x00"))
    return data[:ihdr_end] + extra + data[ihdr_end:]


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def _webp_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not WebP data")
    chunks, at = [], 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        chunks.append((kind, data[at + 8 : at + 8 + size]))
        at += 8 + size + (size % 2)
    return chunks


def _webp_size(kind: bytes, payload: bytes) -> tuple[int, int]:
    """Width and height of a still WebP from its ``VP8 `` (lossy) or ``VP8L`` (lossless) bitstream header."""
    if kind == b"VP8 ":
        width, height = struct.unpack("<HH", payload[6:10])
        return width & 0x3FFF, height & 0x3FFF
    bits = struct.unpack("<I", payload[1:5])[0]
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1


def _webp_with(data: bytes, meta: ImageMetadata) -> bytes:
    """The extended WebP layout: ``VP8X`` (flags, canvas size), ``ICCP``, the image chunks, ``EXIF``."""
    chunks = _webp_chunks(data)
    header = dict(chunks).get(b"VP8X")
    if header is None:
        image = next((k, p) for k, p in chunks if k in (b"VP8 ", b"VP8L"))
        width, height = _webp_size(*image)
        flags = 0x10 if any(k == b"ALPH" for k, _ in chunks) else 0
        canvas = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    else:
        flags, canvas = header[0], header[4:10]
    flags |= (0x20 if meta.icc else 0) | (0x08 if meta.exif else 0)
    body = _riff_chunk(b"VP8X", bytes([flags, 0, 0, 0]) + canvas)
    if meta.icc:
        body += _riff_chunk(b"ICCP", meta.icc)
    body += b"".join(_riff_chunk(k, p) for k, p in chunks if k not in (b"VP8X", b"ICCP", b"EXIF"))
    if meta.exif:
        body += _riff_chunk(b"EXIF", meta.exif.removeprefix(b"Exif\x00\x00"))
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _tiff_with(data: bytes, meta: ImageMetadata) -> bytes | None:
    """An 8-bit RGB or grey TIFF written again by Pillow with the profile and EXIF tags (lossless, the same
    pixels); ``None`` for the layouts Pillow does not write back exactly (16-bit and float colour, RGBA)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.mode not in ("RGB", "L"):
            return None
        im.load()
        extra: dict[str, bytes] = {}
        if meta.icc:
            extra["icc_profile"] = meta.icc
        if meta.exif:
            extra["exif"] = meta.exif
        out = io.BytesIO()
        im.save(out, format="TIFF", compression="tiff_lzw", **extra)
    return out.getvalue()


def _jpeg_with(data: bytes, meta: ImageMetadata) -> tuple[bytes, list[str]]:
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not JPEG data")
    segments, warnings = b"", []
    if meta.exif:
        payload = meta.exif if meta.exif.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + meta.exif
        if len(payload) <= _JPEG_SEGMENT_MAX:
            segments += b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
        else:
            warnings.append(f"the input's EXIF ({len(payload)} bytes) is too large for one JPEG segment; not kept")
    if meta.icc:
        parts = [meta.icc[i : i + _ICC_CHUNK_MAX] for i in range(0, len(meta.icc), _ICC_CHUNK_MAX)]
        if len(parts) <= 255:
            for k, part in enumerate(parts, 1):
                payload = b"ICC_PROFILE\x00" + bytes([k, len(parts)]) + part
                segments += b"\xff\xe2" + struct.pack(">H", len(payload) + 2) + payload
        else:
            warnings.append("the input's ICC profile is too large for a JPEG file; not kept")
    # after SOI and a JFIF APP0 segment, if there is one
    at = 2
    if data[2:4] == b"\xff\xe0":
        at = 4 + struct.unpack(">H", data[4:6])[0]
    return data[:at] + segments + data[at:], warnings
