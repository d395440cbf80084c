"""Download files (pretrained weights) into a local cache, with SHA-256 checks and atomic writes.

The cache folder is :func:`cache_dir`: ``$PCONV_KIT_CACHE`` when set, else ``$XDG_CACHE_HOME/pconv-kit``,
else ``~/.cache/pconv-kit``. Setting ``PCONV_KIT_OFFLINE=1`` forbids network downloads (``file://`` URLs still
work), so a machine without network fails fast with a message saying which file to provide.

Checksums follow torchvision's convention: ``sha256`` is either the full 64-digit hex SHA-256 of the file or
a prefix of it (at least 8 hex digits), e.g. ``"397923af"`` for ``vgg16-397923af.pth``.

Example:
    >>> import pathlib, tempfile
    >>> src = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = src.write_bytes(b"hello")
    >>> dest = download_url(src.as_uri(), src.with_name("copy.txt"), sha256="2cf24dba")
    >>> dest.read_bytes()
    b'hello'
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from pconv_kit.errors import ChecksumError, InputValueError, WeightsNotFoundError
from pconv_kit.utils.files import atomic_write

__all__ = [
    "CACHE_ENV",
    "OFFLINE_ENV",
    "DownloadError",
    "cache_dir",
    "cached_download",
    "download_url",
    "is_offline",
    "sha256_file",
    "sha256_matches",
]

CACHE_ENV = "PCONV_KIT_CACHE"
"""Environment variable that overrides the cache folder."""

OFFLINE_ENV = "PCONV_KIT_OFFLINE"
"""Environment variable that, when set to ``1``/``true``/``yes``, forbids network downloads."""

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_MIN_PREFIX = 8


class DownloadError(WeightsNotFoundError):
    """A file could not be downloaded (no network, offline mode, HTTP error, truncated transfer).

    Subclass of :class:`~pconv_kit.errors.WeightsNotFoundError` (and so of ``FileNotFoundError``): a failed
    download means the file is not available. ``url`` and ``reason`` are kept as attributes.
    """

    def __init__(self, message: str, url: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason


def is_offline() -> bool:
    """Whether ``PCONV_KIT_OFFLINE`` forbids network downloads."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """Folder where downloaded files are kept (not created by this call).

    Returns:
        ``$PCONV_KIT_CACHE`` if set and non-empty, else ``$XDG_CACHE_HOME/pconv-kit``, else
        ``~/.cache/pconv-kit``; ``~`` is expanded.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"PCONV_KIT_CACHE": "/tmp/pconv-cache"}):
        ...     cache_dir()
        PosixPath('/tmp/pconv-cache')
    """
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "pconv-kit"


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str) or not _HEX.match(sha256) or not _MIN_PREFIX <= len(sha256) <= 64:
        raise InputValueError(
            f"sha256 must be a hex SHA-256 digest or a prefix of one ({_MIN_PREFIX} to 64 hex digits); got {sha256!r}"
        )
    return sha256.lower()


def sha256_matches(digest: str, expected: str) -> bool:
    """Whether a full hex ``digest`` matches ``expected`` (a full digest or a prefix of one), ignoring case."""
    return digest.lower().startswith(expected.lower())


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks.

    Example:
        >>> import pathlib, tempfile
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
        >>> _ = p.write_bytes(b"hello")
        >>> sha256_file(p)[:8]
        '2cf24dba'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _progress_callback(total: int | None, description: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A rich progress bar on stderr: returns ``(advance, close)``."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = progress.add_task(description, total=total)
    progress.start()
    return (lambda n: progress.advance(task, n)), progress.stop


def download_url(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str | None = None,
    *,
    progress: bool | None = None,
    timeout: float = _TIMEOUT_S,
) -> Path:
    """Download ``url`` to ``dest``: stream to a temporary file, check the SHA-256, rename atomically.

    ``dest`` is only ever replaced by a complete file whose checksum matched; on any failure the
    temporary file is removed and an existing ``dest`` is left as it was. The parent folder is created.

    Args:
        url: ``http(s)://``, ``ftp://`` or ``file://`` URL.
        dest: final file path.
        sha256: expected SHA-256, full hex digest or a prefix of at least 8 hex digits; ``None`` skips the check.
        progress: show a rich progress bar on stderr; ``None`` shows it only when stderr is a terminal.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ChecksumError: the downloaded file does not match ``sha256`` (message gives expected and actual).
        DownloadError: network failure, HTTP error, truncated transfer, or ``PCONV_KIT_OFFLINE`` is set
            for a non-``file://`` URL.
        InputValueError: ``sha256`` is not a hex string of 8 to 64 digits.

    Example:
        >>> import pathlib, tempfile
        >>> src = pathlib.Path(tempfile.mkdtemp()) / "data.bin"
        >>> _ = src.write_bytes(b"abc")
        >>> download_url(src.as_uri(), src.with_name("out.bin")).read_bytes()
        b'abc'
    """
    expected = _normalise_sha256(sha256)
    dest = Path(dest)
    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in {"http", "https", "ftp", "file"}:
        raise InputValueError(f"url must be an http(s)://, ftp:// or file:// URL; got {url!r}")
    if scheme != "file" and is_offline():
        raise DownloadError(
            f"not downloading {url}: {OFFLINE_ENV} is set (offline mode)", url=url, reason="offline mode"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()

    request = urllib.request.Request(url, headers={"User-Agent": "pconv-kit"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (scheme checked above)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        else:
            reason = str(getattr(exc, "reason", exc))
        raise DownloadError(f"could not download {url}: {reason}", url=url, reason=reason) from exc

    with response, atomic_write(dest) as tmp:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        advance, close = _progress_callback(total, dest.name) if progress else (None, None)
        h = hashlib.sha256()
        size = 0
        try:
            with open(tmp, "wb") as fh:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except (OSError, http.client.HTTPException) as exc:  # reset, timeout, incomplete read
                        raise DownloadError(
                            f"download of {url} failed after {size} bytes: {exc}", url=url, reason=str(exc)
                        ) from exc
                    if not chunk:
                        break
                    fh.write(chunk)
                    h.update(chunk)
                    size += len(chunk)
                    if advance is not None:
                        advance(len(chunk))
        finally:
            if close is not None:
                close()
        if total is not None and size != total:
            raise DownloadError(
                f"download of {url} is truncated: got {size} of {total} bytes", url=url, reason="truncated"
            )
        actual = h.hexdigest()
        if expected is not None and not sha256_matches(actual, expected):
            raise ChecksumError(
                f"SHA-256 mismatch for {url}: expected {expected}{'' if len(expected) == 64 else '...'}, "
                f"got {actual}; the file was not saved to {dest}"
            )
    return dest


def cached_download(
    url: str,
    sha256: str | None = None,
    filename: str | None = None,
    *,
    progress: bool | None = None,
) -> Path:
    """Return the cached copy of ``url`` in :func:`cache_dir`, downloading it first if needed.

    A cached file is reused when it exists and (if ``sha256`` is given) its checksum matches; a file with
    a wrong checksum (e.g. corrupted) is downloaded again and replaced atomically.

    Args:
        url: URL of the file.
        sha256: expected SHA-256 (full or a prefix of at least 8 hex digits), or ``None`` to trust the cache.
        filename: name in the cache folder; defaults to the last component of the URL path.
        progress: as in :func:`download_url`.

    Returns:
        Path of the file in the cache.

    Raises:
        ChecksumError: the freshly downloaded file does not match ``sha256``.
        DownloadError: the file is not cached and cannot be downloaded (see :func:`download_url`).

    Example:
        >>> import os, pathlib, tempfile
        >>> from unittest import mock
        >>> src = pathlib.Path(tempfile.mkdtemp()) / "w.bin"
        >>> _ = src.write_bytes(b"weights")
        >>> with mock.patch.dict(os.environ, {"PCONV_KIT_CACHE": tempfile.mkdtemp()}):
        ...     cached_download(src.as_uri()).parent == cache_dir()
        True
    """
    expected = _normalise_sha256(sha256)
    if filename is None:
        filename = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not filename or Path(filename).name != filename or filename in {".", ".."}:
        raise InputValueError(f"cannot derive a cache file name from {url!r}; pass filename=")
    path = cache_dir() / filename
    if path.is_file() and (expected is None or sha256_matches(sha256_file(path), expected)):
        return path
    return download_url(url, path, sha256=expected, progress=progress)
