"""Fill every image of a folder: mask discovery, resumable atomic outputs, pipelined I/O, sharding, report.

:func:`fill_folder` is what ``pconv-kit fill`` runs. Per image it finds the mask (first rule that applies,
:func:`pconv_kit.masks.files.find_mask`):

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
runs; images of the same size are batched (:class:`~pconv_kit.fill.pipeline.Pipeline`). With ``shard=(i, n)``
(or under ``torchrun``, from ``RANK`` and ``WORLD_SIZE``) a process fills only the files whose index in the
sorted list is ``i`` modulo ``n``.

Every per-file problem (unreadable image, missing mask, size mismatch, all-hole mask, ...) becomes one row of
the :class:`FillReport`, with a :class:`ResultKind`; the other files are still processed.

The package's modules: :mod:`~pconv_kit.fill.plan` (which files, which outputs), :mod:`~pconv_kit.fill.steps`
(read one file, write one result), :mod:`~pconv_kit.fill.output` (encoding for the output format),
:mod:`~pconv_kit.fill.pipeline` (threads and batches) and :mod:`~pconv_kit.fill.folder` (:func:`fill_folder`).
"""

from pconv_kit.fill.folder import DEFAULT_MAX_PIXELS, fill_folder
from pconv_kit.fill.plan import CONCAT_DIR, FORMATS, FillTask, is_sibling_mask, parse_shard, plan_tasks, shard_from_env
from pconv_kit.fill.results import FileResult, FillReport, ResultKind
from pconv_kit.masks.files import find_mask

__all__ = [
    "CONCAT_DIR",
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "FileResult",
    "FillReport",
    "FillTask",
    "ResultKind",
    "fill_folder",
    "find_mask",
    "is_sibling_mask",
    "parse_shard",
    "plan_tasks",
    "shard_from_env",
]
