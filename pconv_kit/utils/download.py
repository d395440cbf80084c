"""Download files (pretrained weights) into a local cache, with SHA-256 checks and atomic writes.

The cache folder is :func:`cache_dir`: ``$PCONV_KIT_CACHE`` when set, else ``$XDG_CACHE_HOME/pconv-kit``,
else ``~/.cache/pconv-kit``. Setting ``PCONV_KIT_OFFLINE=1`` forbids network downloads (``file://`` URLs still
work), so a machine without network fails fast with a message saying which file to provide.

A download is verified against the **full** 64-digit hex SHA-256 of the file. A prefix of it, such as the 8 hex
digits in torchvision's and OpenMMLab's file names (``vgg16-397923af.pth``), only names the file: about four
billion files share any 8-digit prefix, and one that matches it can be made on purpose, so :func:`download_url`
refuses a prefix. :func:`cached_download` accepts one for files whose full digest is not published: it then
never downloads, but returns a file the user has put in the cache after checking that its digest starts with
the prefix (an identity check against a mix-up, not a verification).

Example:
    >>> import pathlib, tempfile
    >>> src = pathlib.Path(tempfile.mkdtemp()) / "hello.txt"
    >>> _ = src.write_bytes(b"hello")
    >>> digest = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256 of b"hello"
    >>> dest = download_url(src.as_uri(), src.with_name("copy.txt"), sha256=digest)
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
    "NotDownloadableError",
    "cache_dir",
    "cached_download",
    "download_url",
    "is_offline",
    "sha256_file",
    "sha256_matches",
    "sha256_prefix_matches",
]

CACHE_ENV = "PCONV_KIT_CACHE"
"""Environment variable that overrides the cache folder."""

OFFLINE_ENV = "PCONV_KIT_OFFLINE"
"""Environment variable that, when set to ``1``/``true``/``yes``, forbids network downloads."""

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_MIN_PREFIX = 8
_FULL = 64


class DownloadError(WeightsNotFoundError):
    """A file could not be downloaded (no network, offline mode, HTTP error, truncated transfer).

    Subclass of :class:`~pconv_kit.errors.WeightsNotFoundError` (and so of ``FileNotFoundError``): a failed
    download means the file is not available. ``url`` and ``reason`` are kept as attributes.
    """

    def __init__(self, message: str, url: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.reason = reason


class NotDownloadableError(DownloadError):
    """A file is known only by a prefix of its SHA-256, so it is not downloaded: the user provides it.

    Raised by :func:`cached_download` when its ``sha256`` is a prefix and the file is not in the cache; the
    message says where to put the file. ``path`` is that place and ``prefix`` the digits it must start with.
    """

    def __init__(
        self, message: str, url: str = "", reason: str = "", path: Path | None = None, prefix: str = ""
    ) -> None:
        super().__init__(message, url=url, reason=reason)
        self.path = path
        self.prefix = prefix


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


def _normalise_sha256(sha256: str | None, *, allow_prefix: bool = False) -> str | None:
    """``sha256`` in lower case; a full 64-digit digest, or with ``allow_prefix`` a prefix of 8 or more digits."""
    if sha256 is None:
        return None
    if not isinstance(sha256, str) or not _HEX.match(sha256) or not _MIN_PREFIX <= len(sha256) <= _FULL:
        also = f", or a prefix of at least {_MIN_PREFIX} of them" if allow_prefix else ""
        raise InputValueError(f"sha256 must be the full SHA-256 of the file ({_FULL} hex digits{also}); got {sha256!r}")
    if len(sha256) < _FULL and not allow_prefix:
        raise InputValueError(
            f"sha256 must be the full SHA-256 of the file ({_FULL} hex digits) to verify a download; got the "
            f"{len(sha256)}-digit prefix {sha256!r}, which only names a file (as in 'vgg16-397923af.pth') and "
            "cannot verify it. Pass the full digest, or download the file yourself and pass its path"
        )
    return sha256.lower()


def sha256_matches(digest: str, expected: str) -> bool:
    """Whether two full hex SHA-256 digests are equal, ignoring case.

    Raises:
        InputValueError: ``expected`` is not a full 64-digit digest (see :func:`sha256_prefix_matches`).

    Example:
        >>> sha256_matches("AB" * 32, "ab" * 32), sha256_matches("ab" * 32, "ac" * 32)
        (True, False)
    """
    full = _normalise_sha256(expected)
    return digest.lower() == full


def sha256_prefix_matches(digest: str, prefix: str) -> bool:
    """Whether a full hex ``digest`` starts with ``prefix`` (8 to 64 hex digits), ignoring case.

    An identity check only: it tells a file from another one it may be mixed up with, but a prefix is too short
    to verify a file's content (see the module documentation).

    Example:
        >>> sha256_prefix_matches("397923af" + "0" * 56, "397923AF")
        True
    """
    expected = _normalise_sha256(prefix, allow_prefix=True)
    assert expected is not None
    return digest.lower().startswith(expected)


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
        sha256: the file's full SHA-256 (64 hex digits), checked before ``dest`` is written; ``None`` skips
            the check. A prefix is refused (see the module documentation).
        progress: show a rich progress bar on stderr; ``None`` shows it only when stderr is a terminal.
        timeout: socket timeout in seconds.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        ChecksumError: the downloaded file does not match ``sha256`` (message gives expected and actual).
        DownloadError: network failure, HTTP error, truncated transfer, or ``PCONV_KIT_OFFLINE`` is set
            for a non-``file://`` URL.
        InputValueError: ``sha256`` is not a full 64-digit hex digest (a prefix included).

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
        if expected is not None and actual != expected:
            raise ChecksumError(
                f"SHA-256 mismatch for {url}: expected {expected}, got {actual}; the file was not saved to {dest}"
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

    With a full ``sha256`` (64 hex digits), a cached file is reused when its checksum matches; a file with a
    wrong checksum (e.g. corrupted) is downloaded again, verified and replaced atomically. With ``None`` the
    cache is trusted and a download is not checked.

    With a prefix of the digest (8 to 63 hex digits, e.g. from a file name, for files whose full digest is not
    published), nothing is downloaded: a prefix cannot verify a download. The user downloads the file and puts
    it in the cache under ``filename``; it is returned when its SHA-256 starts with the prefix, an identity check
    only (it catches a wrong or truncated file, not a forged one).

    Args:
        url: URL of the file.
        sha256: the full SHA-256, a prefix of it (see above), or ``None`` to trust the cache.
        filename: name in the cache folder; defaults to the last component of the URL path.
        progress: as in :func:`download_url`.

    Returns:
        Path of the file in the cache.

    Raises:
        ChecksumError: the freshly downloaded file does not match ``sha256``, or (prefix) the file put in the
            cache does not start with it.
        NotDownloadableError: ``sha256`` is a prefix and the file is not in the cache; the message says where
            to put it.
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
    expected = _normalise_sha256(sha256, allow_prefix=True)
    if filename is None:
        filename = Path(urllib.parse.unquote(urllib.parse.urlparse(url).path)).name
    if not filename or Path(filename).name != filename or filename in {".", ".."}:
        raise InputValueError(f"cannot derive a cache file name from {url!r}; pass filename=")
    path = cache_dir() / filename
    if expected is not None and len(expected) < _FULL:
        return _user_provided(url, path, expected)
    if path.is_file() and (expected is None or sha256_file(path) == expected):
        return path
    return download_url(url, path, sha256=expected, progress=progress)


def _user_provided(url: str, path: Path, prefix: str) -> Path:
    """The file the user put at ``path`` after an identity check against ``prefix``; never downloads."""
    if not path.is_file():
        raise NotDownloadableError(
            f"{path.name} is not downloaded automatically: only the first {len(prefix)} hex digits of its SHA-256 "
            f"are published ({prefix}), which name the file but cannot verify a download. Download it yourself "
            f"from {url}, check it, and put it at {path}; pconv-kit then checks that its SHA-256 starts with "
            f"{prefix} (an identity check, not a verification)",
            url=url,
            reason=f"only a {len(prefix)}-digit SHA-256 prefix is known",
            path=path,
            prefix=prefix,
        )
    actual = sha256_file(path)
    if not actual.startswith(prefix):
        raise ChecksumError(
            f"{path} is not the file of {url}: its SHA-256 is {actual}, which does not start with {prefix}"
        )
    return path
