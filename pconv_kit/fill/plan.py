"""Which files a fill reads and where each output goes, decided before anything is written.

:func:`plan_tasks` lists the images of a folder, drops sibling masks and excluded folders, keeps one shard and
refuses every output that would replace another file. :func:`check_folders` refuses folder combinations that
would mix outputs with inputs or masks.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pconv_kit.errors import InputValueError
from pconv_kit.fill.results import FileResult, ResultKind
from pconv_kit.io import IMAGE_EXTENSIONS, UNSUPPORTED_IMAGE_EXTENSIONS, list_images
from pconv_kit.masks.files import mask_stem

__all__ = [
    "CONCAT_DIR",
    "FORMATS",
    "FillTask",
    "check_folders",
    "is_sibling_mask",
    "parse_shard",
    "plan_tasks",
    "shard_from_env",
]

FORMATS = ("keep", "png", "jpg", "webp", "tif")
"""Accepted values of ``fmt``: ``"keep"`` keeps each input's format."""

_SUFFIX = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tif": ".tif"}

CONCAT_DIR = "concat"
"""Sub-folder of the output folder that receives the ``input | mask | result`` strips."""


@dataclass
class FillTask:
    """One image to fill: where it is, where its output (and review strip) go, its sibling mask files."""

    index: int
    src: Path
    rel: Path
    dest: Path
    concat_dest: Path | None = None
    siblings: tuple[Path, ...] = ()
    strip_only: bool = False  # the output exists (no overwrite) but its review strip does not: make only that

    @property
    def name(self) -> str:
        """The relative path as a POSIX string (for reports)."""
        return self.rel.as_posix()


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"I/N"`` (0-based ``I``) into ``(I, N)``.

    Example:
        >>> parse_shard("1/4")
        (1, 4)
    """
    try:
        i_text, n_text = text.split("/")
        i, n = int(i_text), int(n_text)
    except ValueError:
        raise InputValueError(f"shard must look like I/N (e.g. 0/4); got {text!r}", param="shard") from None
    return check_shard((i, n), text)


def check_shard(shard: tuple[int, int], shown: object = None) -> tuple[int, int]:
    """``shard`` if it is a valid ``(I, N)``: ``N >= 1`` and ``0 <= I < N``.

    Raises:
        InputValueError: otherwise (the message shows ``shown``, default the pair).
    """
    i, n = shard
    if n < 1 or not 0 <= i < n:
        raise InputValueError(f"shard I/N needs N >= 1 and 0 <= I < N; got {shown if shown is not None else shard!r}",
                              param="shard")
    return i, n


def shard_from_env(environ: dict[str, str] | None = None) -> tuple[int, int] | None:
    """``(RANK, WORLD_SIZE)`` when launched by ``torchrun`` with more than one process, else ``None``."""
    env = os.environ if environ is None else environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
    except ValueError:
        return None
    if world > 1 and 0 <= rank < world:
        return rank, world
    return None


def is_sibling_mask(path: Path, stems: set[tuple[Path, str]]) -> bool:
    """Whether ``path`` is ``NAME_mask.*`` / ``NAME.mask.*`` next to an image ``NAME.*``.

    Args:
        path: the candidate file.
        stems: ``(parent folder, stem)`` of every image in the listing.

    Example:
        >>> images = [Path("a.jpg"), Path("a_mask.png"), Path("face_mask.jpg")]
        >>> stems = {(p.parent, p.stem) for p in images}
        >>> [is_sibling_mask(p, stems) for p in images]
        [False, True, False]
    """
    base = mask_stem(path, tagged_only=True)
    return base is not None and (path.parent, base) in stems


def check_folders(
    in_dir: Path, out_dir: Path, *, masks_dir: Path | None = None, overwrite: bool = False
) -> None:
    """Refuse folders that cannot work together, before anything is read or written.

    The input must be a folder; the output a folder or nothing yet; the output may be the input only with
    ``overwrite`` (a fill in place); it may not be or hold the masks folder, nor hold the input folder.

    Raises:
        InputValueError: naming the folders and what to do instead.
    """
    if not in_dir.is_dir():
        raise InputValueError(f"input folder {in_dir} {'is not a folder' if in_dir.exists() else 'does not exist'}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputValueError(f"output folder {out_dir} exists and is not a folder")
    if masks_dir is not None and not masks_dir.is_dir():
        raise InputValueError(f"masks folder {masks_dir} does not exist or is not a folder")
    out, source = out_dir.resolve(), in_dir.resolve()
    if out == source and not overwrite:
        raise InputValueError(
            f"the output folder is the input folder ({in_dir}); choose another folder, or set overwrite to "
            "replace the inputs in place",
            param="overwrite",
        )
    if masks_dir is not None:
        masks = masks_dir.resolve()
        if masks == out or masks.is_relative_to(out):
            what = "is" if masks == out else "holds"
            raise InputValueError(
                f"the output folder {out_dir} {what} the masks folder ({masks_dir}); the fills would be mixed with "
                "the masks or replace them: choose another output folder"
            )
    if source != out and source.is_relative_to(out):
        raise InputValueError(
            f"the output folder {out_dir} holds the input folder ({in_dir}); choose an output folder outside it "
            "(or the input folder itself with overwrite, to fill in place)"
        )


def _output_suffix(src: Path, fmt: str) -> str:
    return src.suffix if fmt == "keep" else _SUFFIX[fmt]


def plan_tasks(
    in_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    recursive: bool = False,
    fmt: str = "keep",
    concat: bool = False,
    shard: tuple[int, int] = (0, 1),
    exclude: Sequence[str | os.PathLike[str]] = (),
    protect: Sequence[str | os.PathLike[str]] = (),
) -> tuple[list[FillTask], list[FileResult]]:
    """List the images of ``in_dir`` (sorted), drop sibling masks and excluded folders, keep this shard.

    Every collision is decided here, before anything is written: an output may replace its own input (a fill in
    place) but never another input, sibling mask or ``protect`` file, and never another file's output.

    Args:
        exclude: folders whose images are not inputs (a masks folder).
        protect: files that are not inputs and must not be written over (a shared mask file).

    Returns:
        ``(tasks, failures)``: the files this shard fills, and rows for files whose output would replace
        another file: another input's output (``a.jpg`` and ``a.png`` with ``fmt="png"``), or another input
        (``a.jpg`` filled in place as ``a.png`` next to an ``a.png`` input). The first shard also reports
        files of unsupported formats and (with ``recursive``) linked folders.
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if fmt not in FORMATS:
        raise InputValueError(f"format must be one of {FORMATS}; got {fmt!r}", param="fmt")
    folders = [Path(p) for p in exclude]
    if out_dir.resolve() != in_dir.resolve():
        folders.append(out_dir)
    elif concat:
        folders.append(out_dir / CONCAT_DIR)
    listing = _Listing(in_dir, recursive, folders, protect)
    failures = listing.unread_rows(recursive) if shard[0] == 0 else []
    tasks: list[FillTask] = []
    owners: dict[Path, Path] = {}
    for i, src in enumerate(listing.kept):
        if i % shard[1] != shard[0]:
            continue
        rel = src.relative_to(in_dir)
        out_rel = rel.with_suffix(_output_suffix(src, fmt))
        concat_dest = out_dir / CONCAT_DIR / out_rel if concat else None
        collision = _collision(listing, owners, src, out_rel, (out_dir / out_rel, concat_dest))
        if collision is not None:
            failures.append(FileResult.of(rel.as_posix(), ResultKind.NAME_COLLISION, collision))
            continue
        owners[_case_key(out_rel)] = rel
        tasks.append(FillTask(i, src, rel, out_dir / out_rel, concat_dest, listing.siblings_of(src)))
    return tasks, failures


class _Listing:
    """The images of a folder split into inputs, sibling masks and files that are read but not filled."""

    def __init__(self, in_dir: Path, recursive: bool, skip: Sequence[Path], protect: Sequence[str | os.PathLike[str]]):
        self.in_dir = in_dir
        self.skip = skip
        images = list_images(in_dir, recursive=recursive)
        self.unsupported = _outside(in_dir, list_images(in_dir, recursive, UNSUPPORTED_IMAGE_EXTENSIONS), skip)
        stems = {(p.parent, p.stem) for p in [*images, *self.unsupported]}  # a.gif's a_mask.png is a mask
        self.siblings: dict[tuple[Path, str], list[Path]] = collections.defaultdict(list)
        for p in images:
            if is_sibling_mask(p, stems):
                self.siblings[(p.parent, mask_stem(p, tagged_only=True) or "")].append(p)
        guarded = {Path(p).resolve() for p in protect}
        outside = _outside(in_dir, images, skip)
        self.kept = [p for p in outside if not is_sibling_mask(p, stems) and p.resolve() not in guarded]
        # every file that is read (the images outside the excluded folders, sibling masks included, and the
        # protected files): an output may only ever replace the input it comes from
        self.originals = {_case_key(p.resolve()): p for p in outside} | {_case_key(p): p for p in guarded}

    def siblings_of(self, src: Path) -> tuple[Path, ...]:
        return tuple(sorted(self.siblings.get((src.parent, src.stem), [])))

    def unread_rows(self, recursive: bool) -> list[FileResult]:
        """Rows for files that are not read at all (reported once, by the first shard)."""
        readable = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
        rows = [
            FileResult.of(
                p.relative_to(self.in_dir).as_posix(), ResultKind.UNSUPPORTED_FORMAT,
                f"{p.suffix.lower().lstrip('.').upper()} files are not supported (readable: {readable}); "
                "convert it, e.g. to PNG",
            )
            for p in self.unsupported
        ]
        rows += [
            FileResult.of(
                p.relative_to(self.in_dir).as_posix() + "/", ResultKind.LINKED_FOLDER,
                "a symbolic link to a folder, not followed; fill its target folder on its own",
            )
            for p in (_linked_folders(self.in_dir, self.skip) if recursive else [])
        ]
        return rows


def _collision(
    listing: _Listing, owners: dict[Path, Path], src: Path, out_rel: Path, dests: tuple[Path, Path | None]
) -> str | None:
    """Why the outputs ``dests`` of ``src`` may not be written (another output's name, another input), or None."""
    key = _case_key(out_rel)
    if key in owners:
        return f"output {out_rel.as_posix()} would overwrite the output of {owners[key].as_posix()}"
    own_source = _case_key(src.resolve())
    for dest in dests:
        if dest is not None and (k := _case_key(dest.resolve())) in listing.originals and k != own_source:
            return (
                f"output {out_rel.as_posix()} would replace the input {_shown(listing.originals[k], listing.in_dir)}; "
                "fill into another folder or choose another format"
            )
    return None


def _outside(in_dir: Path, paths: list[Path], skip: Sequence[Path]) -> list[Path]:
    """``paths`` (under ``in_dir``) that do not lie in one of the ``skip`` folders."""
    skipped = [f.resolve() for f in skip]
    root = in_dir.resolve()
    return [p for p in paths if not any((root / p.relative_to(in_dir)).is_relative_to(f) for f in skipped)]


def _linked_folders(in_dir: Path, skip: Sequence[Path]) -> list[Path]:
    """Symbolic links to folders under ``in_dir`` (which a recursive listing does not enter)."""
    skipped = [f.resolve() for f in skip]
    found = []
    for parent, dirs, _ in os.walk(in_dir):
        for name in list(dirs):
            path = Path(parent) / name
            rel = path.relative_to(in_dir)
            if any(part.startswith(".") for part in rel.parts) or any(
                (in_dir.resolve() / rel).is_relative_to(f) for f in skipped
            ):
                dirs.remove(name)
            elif path.is_symlink():
                found.append(path)
    return sorted(found)


def _case_key(path: Path) -> Path:
    """``path`` as the file system compares names (case-insensitive on Windows)."""
    return Path(str(path).lower()) if os.name == "nt" else path


def _shown(path: Path, in_dir: Path) -> str:
    """``path`` relative to the input folder where it lies inside it, else as given."""
    try:
        return path.resolve().relative_to(in_dir.resolve()).as_posix()
    except ValueError:
        return str(path)
