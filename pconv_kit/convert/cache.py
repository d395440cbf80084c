"""Registered community checkpoints: fetch once (hash-checked), convert once, reuse from the cache.

:func:`pconv_kit.registry.load_model` calls :func:`converted_entry_path` for a
:class:`~pconv_kit.registry.ModelEntry` with ``converter=`` set: the original checkpoint is taken from
:func:`pconv_kit.utils.download.cached_download`, converted with :func:`pconv_kit.convert.convert`, and the
result is kept as ``<cache>/converted/<name>.safetensors``. Later calls return that file directly, as long as
its recorded source checksum matches the entry's.

An entry with the full SHA-256 of its checkpoint is downloaded and verified. An entry that knows only a prefix
of it (the published mmagic checkpoints: their file names carry the first 8 hex digits, and no full digest is
published) is never downloaded: the user downloads the checkpoint and puts it in the cache, where its digest
is checked against the prefix, an identity check only (see :mod:`pconv_kit.utils.download`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from safetensors import SafetensorError, safe_open

from pconv_kit.errors import InputValueError, WeightsNotFoundError

__all__ = ["converted_entry_path", "converted_cache_path"]


class _Entry(Protocol):  # the fields of pconv_kit.registry.ModelEntry used here
    name: str
    url: str | None
    sha256: str | None
    filename: str | None
    converter: str | None


def converted_cache_path(name: str) -> Path:
    """Where the converted weights of the registered model ``name`` are cached."""
    from pconv_kit.utils.download import cache_dir

    return cache_dir() / "converted" / f"{name}.safetensors"


def _up_to_date(path: Path, entry: _Entry) -> bool:
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return False
    recorded = meta.get("pconv_kit.convert.source_sha256", "").lower()
    return (
        bool(recorded)
        and meta.get("pconv_kit.convert.source") == entry.converter
        and recorded.startswith((entry.sha256 or "").lower())
    )


def converted_entry_path(entry: _Entry) -> Path:
    """Return the converted ``.safetensors`` file of a registered community checkpoint, making it if needed.

    Raises:
        WeightsNotFoundError: the original checkpoint is not cached and cannot be downloaded (offline,
            network error, or only a prefix of its SHA-256 is known); the message says how to provide the
            file by hand.
        ChecksumError: the downloaded file does not have the published checksum, or (prefix) the file put in
            the cache does not start with it.
    """
    from pconv_kit.convert import convert
    from pconv_kit.utils.download import OFFLINE_ENV, DownloadError, NotDownloadableError, cache_dir, cached_download

    if entry.url is None or entry.converter is None:
        raise InputValueError(f"model {entry.name!r} is not a converted community checkpoint")
    dst = converted_cache_path(entry.name)
    if _up_to_date(dst, entry):
        return dst
    name = entry.filename or Path(entry.url).name
    by_hand = (
        f"put it in the cache as {cache_dir() / name}, or convert it yourself: "
        f"pconv_kit.convert.convert('{name}', '{entry.name}.safetensors', source={entry.converter!r}) "
        f"(on the command line: pconv-kit convert {name} {entry.name}.safetensors)"
    )
    try:
        src = cached_download(entry.url, sha256=entry.sha256, filename=entry.filename)
    except NotDownloadableError as exc:
        raise NotDownloadableError(
            f"the registered model {entry.name!r} is converted from {name}, which is not downloaded automatically: "
            f"only the first {len(exc.prefix)} hex digits of its SHA-256 are published ({exc.prefix}, in its "
            f"name), and they cannot verify a download. Download it yourself from {entry.url}, check it, and "
            f"either {by_hand}. A file put in the cache is checked to have a SHA-256 starting with {exc.prefix} "
            "(an identity check, not a verification)",
            url=exc.url,
            reason=exc.reason,
            path=exc.path,
            prefix=exc.prefix,
        ) from exc
    except DownloadError as exc:
        raise WeightsNotFoundError(
            f"the registered model {entry.name!r} is converted from {entry.url} on first use, but that file is "
            f"not in the cache and could not be downloaded ({exc.reason or exc}). Either go online "
            f"(and unset {OFFLINE_ENV}), or download it elsewhere (SHA-256 {entry.sha256}) and either {by_hand}"
        ) from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    convert(src, dst, source=entry.converter, overwrite=True)
    return dst
