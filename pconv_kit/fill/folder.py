""":func:`fill_folder`: the folder policy (checks, plan, resume, report) over the generic fill pipeline."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch

from pconv_kit.errors import InputValueError, PConvKitError
from pconv_kit.fill.pipeline import Pipeline
from pconv_kit.fill.plan import FORMATS, FillTask, check_folders, check_shard, plan_tasks, shard_from_env
from pconv_kit.fill.results import FileResult, FillReport, ResultKind
from pconv_kit.fill.steps import FillOptions, Loaded, SharedMask, read_task, write_result
from pconv_kit.inpaint import DEFAULT_MAX_FULL_PIXELS, Inpainter
from pconv_kit.io import read_mask
from pconv_kit.masks.files import MaskIndex
from pconv_kit.models import PConvUNet
from pconv_kit.utils.files import remove_stale_temp_files

__all__ = ["DEFAULT_MAX_PIXELS", "fill_folder"]

#: Default pixel limit of :func:`fill_folder`: 100 megapixels (10000x10000). Filling such an image takes a few
#: GB of memory with the crop strategy; larger files are reported as failed before they are decoded.
DEFAULT_MAX_PIXELS = 100_000_000


def _check_options(fmt: str, quality: int, batch_size: int, workers: int, max_pixels: int | None) -> None:
    if fmt not in FORMATS:
        raise InputValueError(f"format must be one of {FORMATS}; got {fmt!r}", param="fmt")
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1):
        raise InputValueError(f"max_pixels must be a positive integer or None; got {max_pixels!r}", param="max_pixels")
    if not 1 <= int(quality) <= 100:
        raise InputValueError(f"quality must be in [1, 100]; got {quality}", param="quality")
    for name, value in (("batch_size", batch_size), ("workers", workers)):
        if value < 1:
            raise InputValueError(f"{name} must be >= 1; got {value}", param=name)


def _split_done(tasks: list[FillTask], out_dir: Path, overwrite: bool) -> tuple[list[FillTask], list[FileResult]]:
    """The tasks to run, and rows for the outputs that exist already (a resumed run skips them)."""
    todo: list[FillTask] = []
    done_before: list[FileResult] = []
    for task in tasks:
        if not overwrite and task.dest.exists() and (task.concat_dest is None or task.concat_dest.exists()):
            done_before.append(FileResult.of(task.name, ResultKind.OUTPUT_EXISTS, "output exists",
                                             output=task.dest.relative_to(out_dir).as_posix()))
        elif not overwrite and task.dest.exists():  # a rerun with concat: strips from the outputs on disk
            todo.append(dataclasses.replace(task, strip_only=True))
        else:
            todo.append(task)
    return todo, done_before


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
    if mask is not None and masks_dir is not None:
        raise InputValueError("give either one mask file (mask) or a masks folder (masks_dir), not both", param="masks_dir")
    check_folders(in_dir, out_dir, masks_dir=Path(masks_dir) if masks_dir is not None else None, overwrite=overwrite)
    _check_options(fmt, quality, batch_size, workers, max_pixels)
    shard = (shard_from_env() or (0, 1)) if shard is None else check_shard(shard)
    inpainter = model if isinstance(model, Inpainter) else Inpainter(
        model, device=device, strategy=strategy, max_full_pixels=max_full_pixels, crop_margin=crop_margin, tta=tta
    )
    opts = FillOptions(
        out_dir, inpainter, mask_convention,
        shared_mask=SharedMask(read_mask(mask, mask_convention), Path(mask).name) if mask is not None else None,
        masks=MaskIndex(Path(masks_dir), recursive) if masks_dir is not None else None,
        recursive=recursive, overwrite=overwrite, quality=quality, max_pixels=max_pixels,
    )
    tasks, collisions = plan_tasks(
        in_dir, out_dir, recursive=recursive, fmt=fmt, concat=concat, shard=shard,
        exclude=[masks_dir] if masks_dir is not None else [], protect=[mask] if mask is not None else [],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_dir, recursive=True)  # left by a run that was killed mid-write
    todo, done_before = _split_done(tasks, out_dir, overwrite)
    if on_start is not None:
        on_start(len(todo) + len(collisions))
    results: dict[str, FileResult] = {}

    def record(result: FileResult) -> None:
        results[result.file] = result
        if on_result is not None:
            on_result(result)

    for row in done_before + collisions:
        record(row)
    _pipeline(opts, record, batch_size, workers).run(todo)
    order = [t.name for t in tasks] + [r.file for r in collisions]
    return FillReport(
        in_dir=str(in_dir), out_dir=str(out_dir), shard=shard,
        results=[results[name] for name in order if name in results], elapsed_s=time.perf_counter() - started,
        model=str(model) if isinstance(model, (str, os.PathLike)) else type(inpainter.model).__name__,
    )


def _pipeline(
    opts: FillOptions, record: Callable[[FileResult], None], batch_size: int, workers: int
) -> Pipeline[FillTask, Loaded, object, FileResult]:
    """The read -> batch by size -> predict -> write pipeline of one fill."""

    def model_failed(item: Loaded, exc: BaseException) -> FileResult:
        return FileResult.of(item.task.name, ResultKind.MODEL_ERROR, f"model failed: {type(exc).__name__}: {exc}")

    return Pipeline(
        read=lambda task: read_task(task, opts),
        predict=lambda items: opts.inpainter.predict_batch([item.job for item in items]),
        write=lambda item, prediction: write_result(item, prediction, opts),  # type: ignore[arg-type]
        record=record,
        batch_key=lambda item: item.job.size if item.job.has_holes and not item.task.strip_only else None,
        predict_failed=model_failed,
        # out of memory (torch's errors are RuntimeErrors) or a model refusing an input; a programming error
        # (TypeError, AttributeError, ...) is not caught and stops the run
        recoverable=(RuntimeError, MemoryError, PConvKitError),
        batch_size=batch_size,
        workers=workers,
    )
