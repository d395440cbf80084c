"""Fill every image of a folder: mask discovery, resumable atomic outputs, pipelined I/O, sharding, report.

:func:`fill_folder` is what ``pconv-kit fill`` runs. Per image it finds the mask (first rule that applies):

1. ``mask=FILE``: one mask for every image;
2. ``masks_dir=DIR``: the mask with the image's stem (``a.jpg`` -> ``a.png``, ``a_mask.png`` or
   ``a.mask.png``), at the same relative path when ``recursive``;
3. a sibling file ``NAME_mask.*`` or ``NAME.mask.*`` next to the image (such files are never filled
   themselves);
4. the image's own alpha channel, when some pixels are transparent (alpha below 50% = hole). The filled
   pixels are then made opaque; the other pixels keep their alpha.

Masks of another size with the same aspect ratio are resized (nearest neighbour) with a warning; another
aspect ratio is a failure. Mask files are read with ``mask_convention`` (default ``"hole-white"``).

Outputs mirror the input's relative path and, with ``fmt="keep"``, its format and bit depth. Every file is
written atomically (temporary file + rename), so an existing output is always complete: outputs that exist
are skipped unless ``overwrite``, which makes an interrupted run resumable. Images without holes are copied
byte for byte when the format is kept.

Throughput: reader threads decode images and masks and writer threads encode and write while the model
runs; images of the same size are batched. With ``shard=(i, n)`` (or under ``torchrun``, from ``RANK`` and
``WORLD_SIZE``) a process fills only the files whose index in the sorted list is ``i`` modulo ``n``.

Every per-file problem (unreadable image, missing mask, size mismatch, all-hole mask, ...) becomes one row of
the :class:`FillReport`; the other files are still processed.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pconv_kit.errors import InputValueError, PConvKitError
from pconv_kit.imagemeta import ImageMetadata, embed_metadata, read_metadata
from pconv_kit.inpaint import _LUMA, DEFAULT_MAX_FULL_PIXELS, InpaintJob, Inpainter
from pconv_kit.io import (
    IMAGE_EXTENSIONS,
    UNSUPPORTED_IMAGE_EXTENSIONS,
    encode_image,
    from_float,
    image_header,
    list_images,
    read_image,
    read_mask,
    to_float,
    write_image,
)
from pconv_kit.masks.files import fit_mask_to_image, mask_stem
from pconv_kit.models import PConvUNet
from pconv_kit.utils.files import atomic_write, atomic_write_bytes, remove_stale_temp_files, write_json

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "FileResult",
    "FillReport",
    "FillTask",
    "fill_folder",
    "plan_tasks",
    "parse_shard",
    "shard_from_env",
    "find_mask",
    "is_sibling_mask",
]

FORMATS = ("keep", "png", "jpg", "webp", "tif")
"""Accepted values of ``fmt``: ``"keep"`` keeps each input's format."""

_SUFFIX = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tif": ".tif"}
_EIGHT_BIT = {".jpg", ".jpeg", ".webp", ".bmp"}
_NO_ALPHA = {".jpg", ".jpeg"}
CONCAT_DIR = "concat"
"""Sub-folder of the output folder that receives the ``input | mask | result`` strips."""


# ---------------------------------------------------------------------------------------------- results


@dataclass
class FileResult:
    """What happened to one input file.

    Attributes:
        file: path relative to the input folder (POSIX separators).
        status: ``"done"``, ``"skipped"`` or ``"failed"``.
        reason: why it was skipped or failed (or a note such as ``"no holes; copied"``).
        output: the written file, relative to the output folder.
        mask: where the mask came from (``"--mask a.png"``, ``"masks/a.png"``, ``"sibling a_mask.png"``,
            ``"alpha"``).
        hole_ratio: fraction of hole pixels.
        warnings: non-fatal problems (mask resized, bit depth reduced, alpha dropped, ...).
    """

    file: str
    status: str
    reason: str = ""
    output: str | None = None
    mask: str | None = None
    hole_ratio: float | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class FillReport:
    """The outcome of :func:`fill_folder`: one :class:`FileResult` per file of this shard, in sorted order."""

    in_dir: str
    out_dir: str
    shard: tuple[int, int]
    results: list[FileResult]
    elapsed_s: float
    model: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status."""
        counts = {"done": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    @property
    def failed(self) -> list[FileResult]:
        """The failed files."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def images_per_s(self) -> float:
        """Images written per second of wall time."""
        return self.counts["done"] / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary: options, counts, throughput and every file's row."""
        return {
            "in_dir": self.in_dir,
            "out_dir": self.out_dir,
            "model": self.model,
            "shard": list(self.shard),
            "counts": self.counts,
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.images_per_s, 3),
            "files": [asdict(r) for r in self.results],
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON, atomically (creating the folder if needed)."""
        write_json(path, self.to_dict())


#: Default pixel limit of :func:`fill_folder`: 100 megapixels (10000x10000). Filling such an image takes a few
#: GB of memory with the crop strategy; larger files are reported as failed before they are decoded.
DEFAULT_MAX_PIXELS = 100_000_000

# ---------------------------------------------------------------------------------------------- planning


@dataclass
class FillTask:
    """One image to fill: where it is, where its output (and review strip) go, its sibling mask files."""

    index: int
    src: Path
    rel: Path
    dest: Path
    concat_dest: Path | None = None
    siblings: tuple[Path, ...] = ()
    strip_only: bool = False  # the output exists (no --overwrite) but its review strip does not: make only that

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
        raise InputValueError(f"shard must look like I/N (e.g. 0/4); got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise InputValueError(f"shard I/N needs N >= 1 and 0 <= I < N; got {text!r}")
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
        (``a.jpg`` filled in place as ``a.png`` next to an ``a.png`` input).
    """
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if fmt not in FORMATS:
        raise InputValueError(f"format must be one of {FORMATS}; got {fmt!r}")
    index, count = shard
    images = list_images(in_dir, recursive=recursive)
    folders = [Path(p) for p in exclude]
    if out_dir.resolve() != in_dir.resolve():
        folders.append(out_dir)
    elif concat:
        folders.append(out_dir / CONCAT_DIR)
    unsupported = _unsupported_files(in_dir, recursive, folders)
    stems = {(p.parent, p.stem) for p in [*images, *unsupported]}  # a.gif's a_mask.png is a mask, not an image
    siblings: dict[tuple[Path, str], list[Path]] = collections.defaultdict(list)
    for p in images:
        if is_sibling_mask(p, stems):
            siblings[(p.parent, mask_stem(p, tagged_only=True) or "")].append(p)
    root = in_dir.resolve()
    resolved = [f.resolve() for f in folders]
    guarded = {p.resolve() for p in protect}
    outside = [p for p in images if not any((root / p.relative_to(in_dir)).is_relative_to(f) for f in resolved)]
    kept = [p for p in outside if not is_sibling_mask(p, stems) and p.resolve() not in guarded]
    # every file that is read (the images outside the excluded folders, sibling masks included, and the protected
    # files): an output may only ever replace the input it comes from
    originals = {_case_key(p.resolve()): p for p in outside} | {_case_key(p): p for p in guarded}
    tasks: list[FillTask] = []
    failures: list[FileResult] = []
    if index == 0:  # files that are not read at all are reported once, by the first shard
        failures += [
            FileResult(
                p.relative_to(in_dir).as_posix(), "failed",
                f"{p.suffix.lower().lstrip('.').upper()} files are not supported (readable: "
                f"{', '.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))}); convert it, e.g. to PNG",
            )
            for p in unsupported
        ]
        failures += [
            FileResult(
                p.relative_to(in_dir).as_posix() + "/", "skipped",
                "a symbolic link to a folder, not followed; fill its target folder on its own",
            )
            for p in (_linked_folders(in_dir, folders) if recursive else [])
        ]
    owners: dict[Path, Path] = {}
    for i, src in enumerate(kept):
        if i % count != index:
            continue
        rel = src.relative_to(in_dir)
        out_rel = rel.with_suffix(_output_suffix(src, fmt))
        key = Path(str(out_rel).lower()) if os.name == "nt" else out_rel
        if key in owners:
            failures.append(
                FileResult(
                    rel.as_posix(),
                    "failed",
                    f"output {out_rel.as_posix()} would overwrite the output of {owners[key].as_posix()}",
                )
            )
            continue
        concat_dest = out_dir / CONCAT_DIR / out_rel if concat else None
        own_source = _case_key(src.resolve())
        victim = next(
            (
                originals[k]
                for d in (out_dir / out_rel, concat_dest)
                if d is not None and (k := _case_key(d.resolve())) in originals and k != own_source
            ),
            None,
        )
        if victim is not None:
            failures.append(
                FileResult(
                    rel.as_posix(),
                    "failed",
                    f"output {out_rel.as_posix()} would replace the input {_shown(victim, in_dir)}; fill into "
                    "another folder or choose another --format",
                )
            )
            continue
        owners[key] = rel
        own = tuple(sorted(siblings.get((src.parent, src.stem), [])))
        tasks.append(FillTask(i, src, rel, out_dir / out_rel, concat_dest, own))
    return tasks, failures


def _unsupported_files(in_dir: Path, recursive: bool, skip: Sequence[Path]) -> list[Path]:
    """Image files of a format that is not read, outside the ``skip`` folders."""
    skipped = [f.resolve() for f in skip]
    root = in_dir.resolve()
    return [
        p
        for p in list_images(in_dir, recursive=recursive, extensions=UNSUPPORTED_IMAGE_EXTENSIONS)
        if not any((root / p.relative_to(in_dir)).is_relative_to(f) for f in skipped)
    ]


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


# ---------------------------------------------------------------------------------------------- masks


class _MaskIndex:
    """Masks of a folder keyed by relative parent + stem (also ``stem_mask`` / ``stem.mask``)."""

    def __init__(self, root: Path, recursive: bool) -> None:
        self.root = root
        self.entries: dict[tuple[str, str], list[Path]] = collections.defaultdict(list)
        for path in list_images(root, recursive=recursive):
            parent = path.parent.relative_to(root).as_posix()
            stem = mask_stem(path)
            self.entries[(parent, stem)].append(path)

    def lookup(self, rel: Path, recursive: bool) -> tuple[Path | None, list[str]]:
        parent = rel.parent.as_posix() if recursive else "."
        found = sorted(self.entries.get((parent, rel.stem), []))
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            return found[0], [f"several masks match ({names}); using {found[0].name}"]
        return (found[0] if found else None), []


def find_mask(
    src: Path,
    rel: Path,
    image: np.ndarray,
    *,
    siblings: Sequence[Path] = (),
    mask: np.ndarray | None = None,
    mask_name: str = "",
    masks: _MaskIndex | None = None,
    recursive: bool = False,
    mask_convention: str = "hole-white",
) -> tuple[np.ndarray, str, list[str]]:
    """Find and read the mask of one image with the discovery rules of this module.

    Args:
        src, rel: the image file, and its path relative to the input folder.
        image: its pixels (for the alpha rule).
        siblings: its ``NAME_mask.*`` / ``NAME.mask.*`` files (:attr:`FillTask.siblings`).
        mask, mask_name: the ``--mask`` file's decoded mask and name, if any.
        masks, recursive: the ``--masks`` folder index and whether to match relative paths.
        mask_convention: how mask files encode holes.

    Returns:
        ``(valid, source, warnings)``: ``(H', W')`` float32 1 = valid (not yet resized), where it came
        from, and warnings.

    Raises:
        InputValueError: no rule applies.
        ImageReadError: the mask file cannot be read.
    """
    warnings: list[str] = []
    if mask is not None:
        return mask, f"--mask {mask_name}", warnings
    if masks is not None:
        path, warnings = masks.lookup(rel, recursive)
        if path is not None:
            return read_mask(path, mask_convention), path.relative_to(masks.root.parent).as_posix(), warnings
    siblings = sorted(siblings)
    if siblings:
        if len(siblings) > 1:
            warnings.append(f"several sibling masks ({', '.join(p.name for p in siblings)}); using {siblings[0].name}")
        return read_mask(siblings[0], mask_convention), f"sibling {siblings[0].name}", warnings
    if image.shape[2] == 4:
        alpha = image[..., 3]
        top = 1.0 if alpha.dtype.kind == "f" else float(np.iinfo(alpha.dtype).max)
        valid = (alpha.astype(np.float32) >= 0.5 * top).astype(np.float32)
        if not valid.all():
            return valid, "alpha", warnings
    looked = ["a masks folder match" if masks is not None else None, f"{src.stem}_mask.* / {src.stem}.mask.*"]
    looked.append("transparent pixels" if image.shape[2] == 4 else "an alpha channel")
    raise InputValueError(f"no mask found (looked for {', '.join(x for x in looked if x)})")


# ---------------------------------------------------------------------------------------------- output


def _adapt_for_format(array: np.ndarray, suffix: str) -> tuple[np.ndarray, list[str]]:
    """Convert an image to what the output format stores (bit depth, alpha), with warnings."""
    ext = suffix.lower()
    warnings: list[str] = []
    if array.ndim == 3 and array.shape[2] == 4 and ext in _NO_ALPHA:
        array = array[..., :3]
        warnings.append(f"alpha channel dropped ({ext} has none)")
    if ext in _EIGHT_BIT and array.dtype != np.uint8:
        warnings.append(f"{array.dtype} image stored as 8-bit {ext}")
        array = from_float(to_float(array), np.uint8)
    elif ext == ".png" and array.dtype.kind == "f":
        warnings.append("float image stored as 16-bit .png")
        array = from_float(array, np.uint16)
    return array, warnings


def _grey_alpha(rgba: np.ndarray, valid: np.ndarray, suffix: str, quality: int) -> tuple[np.ndarray, bytes, list[str]]:
    """Encode the fill of a grey + alpha input as grey + alpha (8-bit PNG) where the format allows it.

    Known pixels keep their grey value exactly (the RGBA read repeats it in R, G and B); filled pixels take the
    luma of the model's colour prediction. Returns the image the review strip shows (grey repeated in RGB), the
    file's bytes and warnings.
    """
    if suffix.lower() != ".png" or rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        what = f"{rgba.dtype} {suffix}" if suffix.lower() == ".png" else suffix
        return rgba, encode_image(rgba, suffix, quality), [f"grey + alpha stored as RGBA ({what} output)"]
    from PIL import Image

    luma = np.rint(rgba[..., :3].astype(np.float32) @ np.asarray(_LUMA, np.float32))
    grey = np.where(valid, rgba[..., 0], np.clip(luma, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    Image.fromarray(np.stack([grey, rgba[..., 3]], axis=2)).save(buffer, format="PNG")
    shown = np.concatenate([np.repeat(grey[..., None], 3, axis=2), rgba[..., 3:]], axis=2)
    return shown, buffer.getvalue(), []


def _write_strip(task: FillTask, job: InpaintJob, output: np.ndarray, quality: int, overwrite: bool) -> str:
    """Write ``input | mask | output`` to ``task.concat_dest``; returns why not ("" when written): an output whose
    shape or dtype differs from its input's in the output format (an output on disk from another input)."""
    original, _ = _adapt_for_format(job.image, task.dest.suffix)
    output = output if output.ndim == 3 else output[..., None]
    original = original if original.ndim == 3 else original[..., None]
    if output.shape != original.shape or output.dtype != original.dtype:
        return f"{output.shape} {output.dtype} vs {original.shape} {original.dtype}"
    strip = np.concatenate([original, _mask_panel(job.valid_pixels, original), output], axis=1)
    task.concat_dest.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
    write_image(task.concat_dest, strip, quality=quality, overwrite=overwrite)  # type: ignore[arg-type]
    return ""


def _finite(array: np.ndarray, rows: int = 256) -> bool:
    """Whether every value is finite, checked in bands of ``rows`` rows (no image-sized temporary)."""
    return all(bool(np.isfinite(array[i : i + rows]).all()) for i in range(0, array.shape[0], rows))


def _mask_panel(valid: np.ndarray, like: np.ndarray) -> np.ndarray:
    """The mask as an image (white = hole) with the dtype and channel count of ``like``."""
    top = 1.0 if like.dtype.kind == "f" else np.iinfo(like.dtype).max
    panel = np.where(valid, 0, top).astype(like.dtype)[..., None]
    channels = like.shape[2] if like.ndim == 3 else 1
    panel = np.repeat(panel, max(1, min(channels, 3)), axis=2)
    if channels == 4:
        panel = np.concatenate([panel, np.full_like(panel[..., :1], top)], axis=2)
    return panel


# ---------------------------------------------------------------------------------------------- the job


@dataclass
class _Loaded:
    task: FillTask
    job: InpaintJob
    mask_source: str
    warnings: list[str]
    alpha_mask: bool
    metadata: ImageMetadata = ImageMetadata(None, None)
    grey_alpha: bool = False  # the file is grey + alpha (read as RGBA): written back as grey + alpha


def _check_output_folder(in_dir: Path, out_dir: Path, masks_dir: str | os.PathLike[str] | None) -> None:
    """Refuse an output folder that is or holds the masks folder, or holds the input folder (``in_dir`` itself
    is allowed with ``overwrite``, checked by the caller)."""
    out = out_dir.resolve()
    if masks_dir is not None:
        masks = Path(masks_dir).resolve()
        if masks == out or masks.is_relative_to(out):
            what = "is" if masks == out else "holds"
            raise InputValueError(
                f"the output folder {out_dir} {what} the masks folder ({masks_dir}); the fills would be mixed with "
                "the masks or replace them: choose another output folder"
            )
    source = in_dir.resolve()
    if source != out and source.is_relative_to(out):
        raise InputValueError(
            f"the output folder {out_dir} holds the input folder ({in_dir}); choose an output folder outside it "
            "(or the input folder itself with overwrite, to fill in place)"
        )


def fill_folder(
    in_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    model: PConvUNet | str | os.PathLike[str] | Inpainter | None = None,
    *,
    mask: str | os.PathLike[str] | None = None,
    masks_dir: str | os.PathLike[str] | None = None,
    mask_convention: str = "hole-white",
    strategy: str = "auto",
    device: str | torch.device | None = None,
    batch_size: int = 4,
    workers: int = 2,
    recursive: bool = False,
    overwrite: bool = False,
    fmt: str = "keep",
    quality: int = 95,
    concat: bool = False,
    shard: tuple[int, int] | None = None,
    max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
    crop_margin: int | None = None,
    tta: int = 1,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> FillReport:
    """Fill the holes of every image in ``in_dir`` and write the results under ``out_dir``.

    Args:
        in_dir: folder of images.
        out_dir: output folder (created). Must differ from ``in_dir`` unless ``overwrite``.
        model: as in :func:`pconv_kit.inpaint`, or a ready :class:`~pconv_kit.inpaint.Inpainter`.
        mask: one mask file for every image.
        masks_dir: folder of masks matched by stem (and relative path with ``recursive``).
        mask_convention: how mask files encode holes: ``"hole-white"`` (default) or ``"valid-white"``.
        strategy, device, max_full_pixels, crop_margin, tta: as in :func:`pconv_kit.inpaint` (ignored when
            ``model`` is an :class:`~pconv_kit.inpaint.Inpainter`).
        batch_size: images of the same size filled in one model call.
        workers: reader threads and writer threads (each).
        recursive: also fill sub-folders; outputs mirror the relative paths.
        overwrite: replace existing outputs (default: skip them, so a re-run resumes).
        fmt: ``"keep"`` (each input's format and bit depth) or ``"png"``/``"jpg"``/``"webp"``/``"tif"``.
        quality: JPEG/WebP quality (1-100).
        concat: also write ``input | mask | result`` strips under ``out_dir/concat/``.
        shard: ``(i, n)``: fill only the files whose sorted index is ``i`` modulo ``n``; default from
            ``torchrun``'s ``RANK``/``WORLD_SIZE``, else ``(0, 1)``.
        max_pixels: an image with more pixels (width x height, read from the file's header) fails without
            being decoded, so that one huge file cannot exhaust the memory; ``None`` for no limit.
        on_start: called once with the number of files that will get a result other than "output exists"
            (the files to fill plus output-name collisions).
        on_result: called (in the calling thread) with each file's :class:`FileResult` as it completes.

    Returns:
        A :class:`FillReport` with one row per file of this shard.

    Raises:
        InputValueError: bad arguments (missing folders, ``out_dir == in_dir`` without ``overwrite``, both
            ``mask`` and ``masks_dir``, ...). Problems with single files are rows of the report instead.
        WeightsNotFoundError: the model cannot be found.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from pconv_kit.io import write_image, write_mask
        >>> from pconv_kit.models import PConvUNet
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> (d / "in").mkdir()
        >>> write_image(d / "in" / "a.png", np.full((24, 40, 3), 90, np.uint8))
        >>> valid = np.ones((24, 40), np.float32); valid[5:12, 8:20] = 0
        >>> write_mask(d / "in" / "a_mask.png", valid)            # a sibling mask, white = hole
        >>> report = fill_folder(d / "in", d / "out", PConvUNet(layer_size=3, base_channels=4), device="cpu")
        >>> report.counts, sorted(p.name for p in (d / "out").iterdir())
        ({'done': 1, 'skipped': 0, 'failed': 0}, ['a.png'])
    """
    started = time.perf_counter()
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if not in_dir.is_dir():
        raise InputValueError(f"input folder {in_dir} {'is not a folder' if in_dir.exists() else 'does not exist'}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputValueError(f"output folder {out_dir} exists and is not a folder")
    if out_dir.resolve() == in_dir.resolve() and not overwrite:
        raise InputValueError(
            f"the output folder is the input folder ({in_dir}); choose another folder, or pass --overwrite to "
            "replace the inputs in place"
        )
    if mask is not None and masks_dir is not None:
        raise InputValueError("give either a mask file (--mask) or a masks folder (--masks), not both")
    if masks_dir is not None and not Path(masks_dir).is_dir():
        raise InputValueError(f"masks folder {masks_dir} does not exist or is not a folder")
    _check_output_folder(in_dir, out_dir, masks_dir)
    if fmt not in FORMATS:
        raise InputValueError(f"format must be one of {FORMATS}; got {fmt!r}")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise InputValueError(f"max_pixels must be a positive integer or None; got {max_pixels!r}")
    if not 1 <= int(quality) <= 100:
        raise InputValueError(f"quality must be in [1, 100]; got {quality}")
    if batch_size < 1 or workers < 1:
        raise InputValueError(f"batch_size and workers must be >= 1; got {batch_size} and {workers}")
    if shard is None:
        shard = shard_from_env() or (0, 1)
    elif shard[1] < 1 or not 0 <= shard[0] < shard[1]:
        raise InputValueError(f"shard (I, N) needs N >= 1 and 0 <= I < N; got {shard}")

    shared_mask = read_mask(mask, mask_convention) if mask is not None else None
    mask_index = _MaskIndex(Path(masks_dir), recursive) if masks_dir is not None else None
    inpainter = (
        model
        if isinstance(model, Inpainter)
        else Inpainter(
            model, device=device, strategy=strategy, max_full_pixels=max_full_pixels, crop_margin=crop_margin, tta=tta
        )
    )
    exclude = [masks_dir] if masks_dir is not None else []
    tasks, collisions = plan_tasks(
        in_dir, out_dir, recursive=recursive, fmt=fmt, concat=concat, shard=shard, exclude=exclude,
        protect=[mask] if mask is not None else [],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir, recursive=True)  # left by a run that was killed mid-write

    results: dict[str, FileResult] = {}
    order = [t.name for t in tasks] + [r.file for r in collisions]

    def record(result: FileResult) -> None:
        results[result.file] = result
        if on_result is not None:
            on_result(result)

    todo: list[FillTask] = []
    done_before: list[FileResult] = []
    for task in tasks:
        if not overwrite and task.dest.exists() and (task.concat_dest is None or task.concat_dest.exists()):
            out_rel = task.dest.relative_to(out_dir).as_posix()
            done_before.append(FileResult(task.name, "skipped", "output exists", output=out_rel))
        elif not overwrite and task.dest.exists():  # a rerun with --concat: strips from the outputs on disk
            todo.append(dataclasses.replace(task, strip_only=True))
        else:
            todo.append(task)
    if on_start is not None:
        on_start(len(todo) + len(collisions))
    for row in done_before + collisions:
        record(row)

    resized_masks: dict[tuple[int, int], tuple[np.ndarray, list[str]]] = {}
    resize_lock = threading.Lock()

    def read(task: FillTask) -> _Loaded | FileResult:
        try:
            header = image_header(task.src)
            if header is not None and max_pixels and header.height * header.width > max_pixels:
                return FileResult(
                    task.name, "failed",
                    f"{header.width}x{header.height} pixels is more than the limit of {max_pixels:,} (max_pixels, "
                    "--max-pixels); not decoded",
                )
            if header is not None and header.frames > 1:  # a first-page-only output would lose the rest
                return FileResult(
                    task.name, "failed",
                    f"the file holds {header.frames} pages or frames; pconv-kit fills single images: split it "
                    "into one file per page first",
                )
            image = read_image(task.src)
            valid, source, warns = find_mask(
                task.src,
                task.rel,
                image,
                siblings=task.siblings,
                mask=shared_mask,
                mask_name=Path(mask).name if mask is not None else "",
                masks=mask_index,
                recursive=recursive,
                mask_convention=mask_convention,
            )
            h, w = image.shape[:2]
            if valid is shared_mask:
                with resize_lock:
                    if (h, w) not in resized_masks:
                        resized_masks[(h, w)] = fit_mask_to_image(valid, h, w)
                    valid, more = resized_masks[(h, w)]
            else:
                valid, more = fit_mask_to_image(valid, h, w)
            job = inpainter.prepare(image, valid > 0.5, "valid", name=task.name)
            grey_alpha = header is not None and header.mode in ("LA", "La")
            return _Loaded(
                task, job, source, warns + more, source == "alpha", read_metadata(task.src), grey_alpha
            )
        except (PConvKitError, OSError, ValueError, cv2.error) as exc:  # a bad file (the decoders' errors)
            return FileResult(task.name, "failed", str(exc))
        except MemoryError:
            return FileResult(task.name, "failed", "out of memory while reading it (see --max-pixels)")

    def write_strip(item: _Loaded) -> FileResult:
        """The review strip of an output that is already on disk (the model does not run again)."""
        task, job = item.task, item.job
        out_rel = task.dest.relative_to(out_dir).as_posix()
        try:
            mismatch = _write_strip(task, job, read_image(task.dest), quality, overwrite=False)
            if mismatch:
                return FileResult(
                    task.name, "failed", f"the existing output {out_rel} does not match its input ({mismatch}); "
                    "rerun with --overwrite", output=out_rel, mask=item.mask_source,
                )
        except FileExistsError:
            return FileResult(task.name, "skipped", "output exists", output=out_rel)
        except (PConvKitError, OSError, ValueError) as exc:
            return FileResult(task.name, "failed", f"cannot write the strip of {out_rel}: {exc}", mask=item.mask_source)
        return FileResult(
            task.name, "done", "output existed; review strip made from it", output=out_rel, mask=item.mask_source,
            hole_ratio=round(job.hole_ratio, 6), warnings=list(item.warnings),
        )

    def write(item: _Loaded, prediction: np.ndarray | None) -> FileResult:
        task, job = item.task, item.job
        out_rel = task.dest.relative_to(out_dir).as_posix()
        result = FileResult(
            task.name, "done", output=out_rel, mask=item.mask_source, hole_ratio=round(job.hole_ratio, 6),
            warnings=list(item.warnings),
        )
        try:
            task.dest.parent.mkdir(parents=True, exist_ok=True)
            if prediction is None and task.dest.suffix.lower() == task.src.suffix.lower():
                with atomic_write(task.dest, overwrite=overwrite) as tmp:
                    tmp.write_bytes(task.src.read_bytes())
                result.reason = "no holes; copied"
                output = job.image.reshape(job.shape)
            else:
                if prediction is not None and not _finite(prediction):
                    return FileResult(
                        task.name, "failed", "the model's output is not finite (NaN or infinity); nothing written",
                        mask=item.mask_source,
                    )
                output = inpainter.finish(job, prediction)
                if item.alpha_mask and prediction is not None:  # filled pixels become opaque
                    top = 1.0 if output.dtype.kind == "f" else np.iinfo(output.dtype).max
                    output[..., 3][~job.valid_pixels] = top
                if prediction is None:
                    result.reason = "no holes"
                encoded, warns = _adapt_for_format(output, task.dest.suffix)
                result.warnings += warns
                # the pixels, then the input's colour profile and EXIF (orientation 1: stored upright)
                if item.grey_alpha:
                    encoded, pixels, warns = _grey_alpha(encoded, job.valid_pixels, task.dest.suffix, quality)
                    result.warnings += warns
                else:
                    pixels = encode_image(encoded, task.dest.suffix, quality)
                data, warns = embed_metadata(pixels, task.dest.suffix, item.metadata)
                result.warnings += warns
                atomic_write_bytes(task.dest, data, overwrite=overwrite)
                output = encoded
            if task.concat_dest is not None:
                _write_strip(task, job, output, quality, overwrite=True)
        except FileExistsError:
            return FileResult(task.name, "skipped", "output appeared while running", output=out_rel)
        except (PConvKitError, OSError, ValueError, cv2.error, MemoryError) as exc:  # a full disk, an encoder
            reason = str(exc) or type(exc).__name__
            return FileResult(task.name, "failed", f"cannot write {out_rel}: {reason}", mask=item.mask_source)
        return result

    lookahead = max(2 * batch_size, 2 * workers)
    reads: collections.deque[Future] = collections.deque()
    writes: collections.deque[Future] = collections.deque()
    groups: dict[tuple[int, int], list[_Loaded]] = {}
    pending = iter(todo)
    reader = ThreadPoolExecutor(workers, thread_name_prefix="pconv-read")
    writer = ThreadPoolExecutor(workers, thread_name_prefix="pconv-write")

    def drain(limit: int) -> None:
        while writes and (len(writes) > limit or writes[0].done()):
            record(writes.popleft().result())

    def run(batch: list[_Loaded]) -> None:
        try:
            predictions = inpainter.predict_batch([item.job for item in batch])
        except (RuntimeError, MemoryError, PConvKitError) as exc:  # out of memory (torch's errors are
            # RuntimeErrors) or a model refusing an input: retry one by one, then fail only that file; a
            # programming error (TypeError, AttributeError, ...) is not caught and stops the run
            if len(batch) > 1:
                for item in batch:
                    run([item])
                return
            record(FileResult(batch[0].task.name, "failed", f"model failed: {type(exc).__name__}: {exc}"))
            return
        for item, prediction in zip(batch, predictions):
            writes.append(writer.submit(write, item, prediction))
        drain(2 * lookahead)

    try:
        for task in pending:
            reads.append(reader.submit(read, task))
            if len(reads) >= lookahead:
                break
        while reads:
            loaded = reads.popleft().result()
            nxt = next(pending, None)
            if nxt is not None:
                reads.append(reader.submit(read, nxt))
            if isinstance(loaded, FileResult):
                record(loaded)
            elif loaded.task.strip_only:
                writes.append(writer.submit(write_strip, loaded))
            elif not loaded.job.has_holes:
                writes.append(writer.submit(write, loaded, None))
            else:
                group = groups.setdefault(loaded.job.size, [])
                group.append(loaded)
                if len(group) >= batch_size:
                    run(groups.pop(loaded.job.size))
                elif sum(len(g) for g in groups.values()) > lookahead:  # many sizes: flush the largest group
                    run(groups.pop(max(groups, key=lambda k: len(groups[k]))))
            drain(2 * lookahead)
        for size in list(groups):
            run(groups.pop(size))
        drain(0)
    except KeyboardInterrupt:
        # Ctrl-C: no new work; the writes already running finish (the finally below waits for them) and are
        # reported through on_result, so a caller's counts match the files on disk.
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)
        for future in writes:
            if future.done() and not future.cancelled():
                record(future.result())
        raise
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=True)

    model_desc = str(model) if isinstance(model, (str, os.PathLike)) else type(inpainter.model).__name__
    return FillReport(
        in_dir=str(in_dir),
        out_dir=str(out_dir),
        shard=shard,
        results=[results[name] for name in order if name in results],
        elapsed_s=time.perf_counter() - started,
        model=model_desc,
    )
