"""The per-file steps of a folder fill: :func:`read_task` (image, mask, checks) and :func:`write_result`.

Both take a frozen :class:`FillOptions` and return a :class:`~pconv_kit.fill.results.FileResult` for every
problem they meet, so one bad file never stops the others. They run in the pipeline's worker threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pconv_kit.errors import ImageReadError, PConvKitError
from pconv_kit.fill.output import adapt_for_format, encode_grey_alpha, is_finite, write_strip
from pconv_kit.fill.pipeline import Finished
from pconv_kit.fill.plan import FillTask
from pconv_kit.fill.results import FileResult, ResultKind
from pconv_kit.imagemeta import ImageMetadata, embed_metadata, read_metadata
from pconv_kit.inpaint import InpaintJob, Inpainter
from pconv_kit.io import encode_image, image_header, read_image
from pconv_kit.masks.files import MaskIndex, find_mask, fit_mask_to_image
from pconv_kit.utils.files import atomic_write, atomic_write_bytes

__all__ = ["FillOptions", "Loaded", "SharedMask", "read_task", "write_result"]

# the errors a bad file raises (the decoders' errors included); anything else is a bug and stops the run
_FILE_ERRORS = (PConvKitError, OSError, ValueError, cv2.error)


class SharedMask:
    """One mask for every image, fitted once per image size (thread-safe)."""

    def __init__(self, valid: np.ndarray, name: str) -> None:
        self.valid, self.name = valid, name
        self._fitted: dict[tuple[int, int], tuple[np.ndarray, list[str]]] = {}
        self._lock = threading.Lock()

    def fitted(self, height: int, width: int) -> tuple[np.ndarray, list[str]]:
        """The mask at ``(height, width)`` and the warnings fitting it cost (see ``fit_mask_to_image``)."""
        with self._lock:
            if (height, width) not in self._fitted:
                self._fitted[(height, width)] = fit_mask_to_image(self.valid, height, width)
            return self._fitted[(height, width)]


@dataclass(frozen=True)
class FillOptions:
    """What every file of one fill shares: the output folder, mask sources and output settings."""

    out_dir: Path
    inpainter: Inpainter
    mask_convention: str = "hole-white"
    shared_mask: SharedMask | None = None
    masks: MaskIndex | None = None
    recursive: bool = False
    overwrite: bool = False
    quality: int = 95
    max_pixels: int | None = None


@dataclass
class Loaded:
    """A file read and prepared for the model."""

    task: FillTask
    job: InpaintJob
    mask_source: str
    warnings: list[str]
    alpha_mask: bool
    metadata: ImageMetadata = ImageMetadata(None, None)
    grey_alpha: bool = False  # the file is grey + alpha (read as RGBA): written back as grey + alpha


def _failed(task: FillTask, kind: ResultKind, reason: str) -> Finished[FileResult]:
    return Finished(FileResult.of(task.name, kind, reason))


def _check_header(task: FillTask, max_pixels: int | None) -> tuple[Finished[FileResult] | None, bool]:
    """A failure row for a file too large or with several pages (read from its header only), and whether the
    file is grey + alpha."""
    header = image_header(task.src)
    if header is None:
        return None, False
    if max_pixels and header.height * header.width > max_pixels:
        return _failed(
            task, ResultKind.TOO_LARGE,
            f"{header.width}x{header.height} pixels is more than the limit of {max_pixels:,} (max_pixels); "
            "not decoded",
        ), False
    if header.frames > 1:  # a first-page-only output would lose the rest
        return _failed(
            task, ResultKind.MULTI_PAGE,
            f"the file holds {header.frames} pages or frames; pconv-kit fills single images: split it into one "
            "file per page first",
        ), False
    return None, header.mode in ("LA", "La")


def _find_mask(task: FillTask, image: np.ndarray, opts: FillOptions) -> tuple[np.ndarray, str, list[str]]:
    """The image's mask as found (1 = valid, not yet fitted to the image), where it came from, and warnings."""
    shared = opts.shared_mask
    return find_mask(
        task.src, task.rel, image, siblings=task.siblings, mask=shared.valid if shared else None,
        mask_name=shared.name if shared else "", masks=opts.masks, recursive=opts.recursive,
        mask_convention=opts.mask_convention,
    )


def _fit_mask(valid: np.ndarray, image: np.ndarray, opts: FillOptions) -> tuple[np.ndarray, list[str]]:
    """The mask at the image's size (the shared mask is fitted once per size) and the warnings it cost."""
    h, w = image.shape[:2]
    shared = opts.shared_mask
    return shared.fitted(h, w) if shared is not None and valid is shared.valid else fit_mask_to_image(valid, h, w)


def read_task(task: FillTask, opts: FillOptions) -> Loaded | Finished[FileResult]:
    """Read one image and its mask and prepare it for the model, or a failure row saying why not.

    A failure's kind is the step it happened in: reading the image or a mask file, finding the mask, fitting it
    to the image's size, or preparing the pair for the model (all hole when the mask leaves no known pixel).
    """
    kind = ResultKind.UNREADABLE
    try:
        failure, grey_alpha = _check_header(task, opts.max_pixels)
        if failure is not None:
            return failure
        image = read_image(task.src)
        kind = ResultKind.MISSING_MASK
        valid, source, warnings = _find_mask(task, image, opts)
        kind = ResultKind.SIZE_MISMATCH
        valid, more = _fit_mask(valid, image, opts)
        known = valid > 0.5
        kind = ResultKind.BAD_INPUT if known.any() else ResultKind.ALL_HOLE
        job = opts.inpainter.prepare(image, known, "valid", name=task.name)
        return Loaded(task, job, source, warnings + more, source == "alpha", read_metadata(task.src), grey_alpha)
    except ImageReadError as exc:  # the image, or its mask file
        return _failed(task, ResultKind.UNREADABLE, str(exc))
    except _FILE_ERRORS as exc:
        return _failed(task, kind, str(exc))
    except MemoryError:
        return _failed(task, ResultKind.OUT_OF_MEMORY, "out of memory while reading it (see max_pixels)")


def write_result(item: Loaded, prediction: np.ndarray | None, opts: FillOptions) -> FileResult:
    """Write the fill of one image (and its review strip), atomically; a row saying what happened.

    ``prediction`` is ``None`` for an image without holes (copied byte for byte when the format is kept) and for
    a task that only needs the review strip of an output already on disk.
    """
    if item.task.strip_only:
        return _strip_from_output(item, opts)
    task, job = item.task, item.job
    out_rel = task.dest.relative_to(opts.out_dir).as_posix()
    result = FileResult.of(
        task.name, ResultKind.FILLED if prediction is not None else ResultKind.NO_HOLES, output=out_rel,
        mask=item.mask_source, hole_ratio=round(job.hole_ratio, 6), warnings=list(item.warnings),
    )
    try:
        task.dest.parent.mkdir(parents=True, exist_ok=True)
        if prediction is None and task.dest.suffix.lower() == task.src.suffix.lower():
            with atomic_write(task.dest, overwrite=opts.overwrite) as tmp:
                tmp.write_bytes(task.src.read_bytes())
            result.reason = "no holes; copied"
            output = job.image.reshape(job.shape)
        elif prediction is not None and not is_finite(prediction):
            return FileResult.of(task.name, ResultKind.NOT_FINITE, "the model's output is not finite (NaN or "
                                 "infinity); nothing written", mask=item.mask_source)
        else:
            output = _encode_and_write(item, prediction, opts, result)
        if task.concat_dest is not None:
            write_strip(task.concat_dest, job, output, task.dest.suffix, opts.quality, overwrite=True)
    except FileExistsError:
        return FileResult.of(task.name, ResultKind.OUTPUT_APPEARED, "output appeared while running",
                             output=out_rel)
    except (*_FILE_ERRORS, MemoryError) as exc:  # a full disk, an encoder refusing the pixels
        reason = str(exc) or type(exc).__name__
        return FileResult.of(task.name, ResultKind.WRITE_ERROR, f"cannot write {out_rel}: {reason}",
                             mask=item.mask_source)
    return result


def _encode_and_write(item: Loaded, prediction: np.ndarray | None, opts: FillOptions, result: FileResult) -> np.ndarray:
    """Compose, encode (with the input's colour profile and EXIF) and write the output; returns what it holds."""
    task, job = item.task, item.job
    output = opts.inpainter.finish(job, prediction)
    if item.alpha_mask and prediction is not None:  # filled pixels become opaque
        top = 1.0 if output.dtype.kind == "f" else np.iinfo(output.dtype).max
        output[..., 3][~job.valid_pixels] = top
    if prediction is None:
        result.reason = "no holes"
    encoded, warns = adapt_for_format(output, task.dest.suffix)
    result.warnings += warns
    if item.grey_alpha:
        encoded, pixels, warns = encode_grey_alpha(encoded, job.valid_pixels, task.dest.suffix, opts.quality)
        result.warnings += warns
    else:
        pixels = encode_image(encoded, task.dest.suffix, opts.quality)
    data, warns = embed_metadata(pixels, task.dest.suffix, item.metadata)  # orientation 1: stored upright
    result.warnings += warns
    atomic_write_bytes(task.dest, data, overwrite=opts.overwrite)
    return encoded


def _strip_from_output(item: Loaded, opts: FillOptions) -> FileResult:
    """The review strip of an output that is already on disk (the model does not run again)."""
    task, job = item.task, item.job
    out_rel = task.dest.relative_to(opts.out_dir).as_posix()
    try:
        mismatch = write_strip(task.concat_dest, job, read_image(task.dest), task.dest.suffix, opts.quality,  # type: ignore[arg-type]
                               overwrite=False)
    except FileExistsError:
        return FileResult.of(task.name, ResultKind.OUTPUT_EXISTS, "output exists", output=out_rel)
    except (PConvKitError, OSError, ValueError) as exc:
        return FileResult.of(task.name, ResultKind.WRITE_ERROR, f"cannot write the strip of {out_rel}: {exc}",
                             mask=item.mask_source)
    if mismatch:
        return FileResult.of(task.name, ResultKind.OUTPUT_MISMATCH, f"the existing output {out_rel} does not match "
                             f"its input ({mismatch}); rerun with overwrite", output=out_rel, mask=item.mask_source)
    return FileResult.of(task.name, ResultKind.STRIP_FROM_OUTPUT, "output existed; review strip made from it",
                         output=out_rel, mask=item.mask_source, hole_ratio=round(job.hole_ratio, 6),
                         warnings=list(item.warnings))
