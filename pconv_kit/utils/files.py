"""Atomic file writes: write to a temporary file in the destination folder, then rename.

A reader (or a crash) never sees a partially written file, and an existing file is only replaced once the
new content is completely on disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "atomic_write_bytes", "write_json", "replace_with_link", "remove_stale_temp_files"]


def _new_temp_file(path: Path) -> tuple[Path, int]:
    """Create an empty file next to ``path``, named ``.<stem>.<8 hex>.tmp<suffix>``, exclusively.

    Returns the file and its permissions: those a plain ``open(path, "w")`` gives (``0o666`` less the process
    umask), applied by the kernel at creation. The umask is never read or changed (``os.umask`` changes it for
    every thread of the process while it runs).
    """
    for _ in range(100):
        tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        try:
            mode = stat.S_IMODE(os.fstat(fd).st_mode)
        finally:
            os.close(fd)
        return tmp, mode
    raise FileExistsError(f"no free temporary name next to {path}")


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give ``tmp`` the name ``path``: replace an existing file, or (``overwrite=False``) never replace one."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic: fails if path exists, even if another process made it a moment ago
    except FileExistsError:
        raise FileExistsError(f"{path} already exists") from None
    except OSError:  # a file system without hard links: check, then rename (a small window remains)
        if path.exists():
            raise FileExistsError(f"{path} already exists") from None
        os.replace(tmp, path)
        return
    tmp.unlink()


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
    tmp, mode = _new_temp_file(path)
    try:
        yield tmp
        # Some writers (safetensors, ...) replace the file with one of their own (mode 0600) rather than write
        # into it, so the permissions the temporary file was created with are set again before it becomes visible.
        os.chmod(tmp, mode)
        with open(tmp, "rb+") as fh:  # make the content durable before it becomes visible
            os.fsync(fh.fileno())
        _publish(tmp, path, overwrite)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | os.PathLike[str], data: Any, sort_keys: bool = False) -> None:
    """Write ``data`` as indented JSON (and a final newline) atomically, creating the folder if needed.

    Example:
        >>> import json, tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "reports" / "r.json"
        >>> write_json(p, {"b": 1, "a": [2]}, sort_keys=True)
        >>> json.loads(p.read_text())
        {'a': [2], 'b': 1}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=sort_keys) + "\n").encode("utf-8"))


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
    tmp, _ = _new_temp_file(path)
    try:
        tmp.unlink()  # a unique name for the link, in the folder's temp-file pattern
        os.link(source, tmp)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        return False
    return True


# the temporary names of atomic_write: "." + stem + "." + 8 random characters + ".tmp" + suffix (also those of
# earlier versions, which used tempfile.mkstemp's [a-z0-9_] names)
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
