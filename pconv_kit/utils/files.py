"""Atomic file writes: write to a temporary file in the destination folder, then rename.

A reader (or a crash) never sees a partially written file, and an existing file is only replaced once the
new content is completely on disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_bytes", "replace_with_link", "remove_stale_temp_files"]


def _default_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give (mkstemp files are 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _default_mode()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path`` atomically.

    The caller writes the whole file to the yielded path (with any library that takes a filename). If the
    block raises, the temporary file is removed and ``path`` is left untouched. The temporary file keeps
    ``path``'s suffix so that writers which pick a format from the extension (OpenCV, imageio) still work.

    Args:
        path: final destination. Its parent folder must exist.
        overwrite: if False and ``path`` already exists, raise ``FileExistsError`` without writing.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with atomic_write(d / "a.txt") as tmp:
        ...     _ = tmp.write_text("hello")
        >>> (d / "a.txt").read_text()
        'hello'
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} already exists")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # Some writers (safetensors, ...) replace the file rather than write into it, so the permissions a
        # plain open() would give are set only now, just before the file becomes visible.
        os.chmod(tmp, _FILE_MODE)
        with open(tmp, "rb+") as fh:  # make the content durable before it becomes visible
            os.fsync(fh.fileno())
        if not overwrite and path.exists():
            raise FileExistsError(f"{path} already exists")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def replace_with_link(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Make ``path`` a hard link to ``source``, replacing ``path`` atomically; False where links are refused.

    For two files with the same content (a run's ``last`` and ``best`` weights at a validation step) this keeps
    one copy on disk. Every writer in pconv-kit replaces files by renaming (:func:`atomic_write`), never writes
    into them, so a later write of either name does not change the other.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> atomic_write_bytes(d / "a.bin", b"weights")
        >>> replace_with_link(d / "a.bin", d / "b.bin"), (d / "b.bin").read_bytes()
        (True, b'weights')
    """
    source, path = Path(source), Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()  # a unique name for the link, in the folder's temp-file pattern
        os.link(source, tmp)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        return False
    return True


# the temporary names of atomic_write: "." + stem + "." + mkstemp's 8 random characters + ".tmp" + suffix
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$")


def remove_stale_temp_files(folder: str | os.PathLike[str], recursive: bool = False, min_age_s: float = 600.0) -> int:
    """Delete the temporary files that killed :func:`atomic_write` calls left in ``folder``; returns how many.

    Only names of :func:`atomic_write`'s pattern (``.a.k3j9x_2q.tmp.png``) are touched, and only those not
    modified for ``min_age_s`` seconds, so the writes of another process working on the same folder go on.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / ".a.k3j9x_2q.tmp.png").write_bytes(b"cut short"); _ = (d / "a.png").write_bytes(b"kept")
        >>> remove_stale_temp_files(d, min_age_s=0), sorted(p.name for p in d.iterdir())
        (1, ['a.png'])
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    now, removed = time.time(), 0
    for path in root.rglob(".*") if recursive else root.glob(".*"):
        if not _TEMP_NAME.match(path.name):
            continue
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink() and now - path.stat().st_mtime >= min_age_s:
                path.unlink()
                removed += 1
    return removed
