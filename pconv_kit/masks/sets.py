"""Sets of mask files on disk: a numbered set, or one mask per image of a folder (what ``pconv-kit masks`` writes).

:func:`write_mask_set` checks every argument and every output name before it makes a folder or writes a file,
then writes the masks (and, for a folder of images, each image with its holes painted white). Files are 8-bit
black/white PNGs in ``mask_convention`` (default ``"hole-white"``: white = hole).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pconv_kit.conventions import DEFAULT_MASK_FILE_CONVENTION
from pconv_kit.errors import InputValueError, PConvKitError
from pconv_kit.io import list_images, read_image, write_image, write_mask
from pconv_kit.masks.generator import MIN_MASK_SIDE, MaskGenerator, seeded_rng

__all__ = ["DEFAULT_SIZE", "MaskSetOptions", "MaskSetReport", "paint_holes", "write_mask_set"]

DEFAULT_SIZE = (512, 512)
"""Height and width of a numbered mask set unless told otherwise."""


@dataclass(frozen=True)
class MaskSetOptions:
    """How the masks of a set are drawn: the :class:`~pconv_kit.masks.MaskGenerator` arguments but the size.

    Example:
        >>> MaskSetOptions(kind="blobs", hole_ratio=(0.1, 0.3), seed=0).generator(64, 96)().shape
        (64, 96)
    """

    kind: str = "units"
    weights: Mapping[str, float] | None = None
    min_units: int | None = None
    max_units: int | None = None
    hole_ratio: tuple[float, float] | None = None
    unit_scale: float = 1.0
    seed: int | None = None

    def check(self) -> None:
        """Raise :class:`~pconv_kit.errors.InputValueError` (naming the parameter) for options that cannot work
        together; the generator checks the rest."""
        for name in ("min_units", "max_units"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InputValueError(f"{name} must be >= 0; got {value}", param=name)
        if self.min_units is not None and self.max_units is not None and self.min_units > self.max_units:
            raise InputValueError(
                f"min_units ({self.min_units}) must be <= max_units ({self.max_units})", param="min_units"
            )
        if self.kind == "mixed" and (self.min_units is not None or self.max_units is not None):
            raise InputValueError(
                "kind 'mixed' uses each family's own unit counts; leave min_units and max_units unset", param="kind"
            )
        if self.weights is not None and self.kind != "mixed":
            raise InputValueError(f"weights apply to kind 'mixed' only; got kind {self.kind!r}", param="weights")
        if self.hole_ratio is not None and not 0.0 <= self.hole_ratio[0] <= self.hole_ratio[1] <= 1.0:
            lo, hi = self.hole_ratio
            raise InputValueError(f"hole_ratio (LO, HI) must satisfy 0 <= LO <= HI <= 1; got {lo:g} {hi:g}",
                                  param="hole_ratio")

    def generator(self, height: int, width: int) -> MaskGenerator:
        """A generator of ``(height, width)`` masks with these options."""
        return MaskGenerator(
            height, width, min_units=self.min_units, max_units=self.max_units, hole_ratio=self.hole_ratio,
            seed=self.seed, unit_scale=self.unit_scale, kind=self.kind,
            weights=dict(self.weights) if self.weights is not None else None,
        )


@dataclass
class MaskSetReport:
    """What :func:`write_mask_set` wrote: mask files, painted images, and one line per image that failed."""

    total: int = 0  # masks asked for: num, or the number of images
    masks: list[Path] = field(default_factory=list)
    painted: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def paint_holes(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """A copy of ``image`` ``(H, W, C)`` with the holes of ``valid`` ``(H, W)`` (1 = valid) painted white.

    The alpha channel of an RGBA image is kept.

    Example:
        >>> out = paint_holes(np.zeros((1, 2, 3), np.uint8), np.array([[1.0, 0.0]]))
        >>> out[0].tolist()
        [[0, 0, 0], [255, 255, 255]]
    """
    white = 1.0 if image.dtype.kind == "f" else np.iinfo(image.dtype).max
    out = image.copy()
    colour = 3 if image.shape[2] == 4 else image.shape[2]
    out[valid < 0.5, :colour] = white
    return out


def _prepare_folder(path: Path, param: str) -> None:
    """Create ``path`` if needed and check that files can be written there."""
    if path.exists() and not path.is_dir():
        raise InputValueError(f"{param} {path} exists and is not a folder", param=param)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputValueError(f"cannot create the {param} folder {path}: {exc.strerror or exc}", param=param) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputValueError(f"the {param} folder {path} is not writable", param=param)


def _check_free(paths: list[Path], overwrite: bool) -> None:
    existing = [p for p in paths if p.exists()] if not overwrite else []
    if existing:
        raise InputValueError(
            f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; set overwrite to replace them",
            param="overwrite",
        )


def _check_arguments(num: int | None, size: tuple[int, int] | None, images: Path | None,
                     masked_out: Path | None) -> None:
    if num is not None and num < 0:
        raise InputValueError(f"num must be >= 0; got {num}", param="num")
    if size is not None and (size[0] < MIN_MASK_SIDE or size[1] < MIN_MASK_SIDE):
        raise InputValueError(
            f"size (H, W) must be at least {MIN_MASK_SIDE} {MIN_MASK_SIDE} (smaller masks have no room for holes "
            f"beside known pixels); got {size[0]} {size[1]}", param="size",
        )
    if images is None:
        if masked_out is not None:
            raise InputValueError("masked_out needs images (the images to paint the masks on)", param="masked_out")
        if num is None:
            raise InputValueError("give num (how many masks to write), or images (a folder: one mask per image)",
                                  param="num")
    elif num is not None:
        raise InputValueError("images gives one mask per image, named after it; leave num unset", param="num")
    elif size is not None:
        raise InputValueError("images makes each mask the size of its image; leave size unset", param="size")


def _per_image_paths(images: Path, out: Path, masked_out: Path | None) -> tuple[list[Path], list[Path], list[Path]]:
    """The images of ``images`` and their mask and painted-image paths, refusing names that would collide."""
    image_paths = list_images(images)
    if not image_paths:
        raise InputValueError(f"no images found in {images}", param="images")
    for folder, param in ((out, "out"), (masked_out, "masked_out")):
        if folder is not None and folder.resolve() == images.resolve():
            raise InputValueError(f"{param} must be a different folder from images", param=param)
    if masked_out is not None and masked_out.resolve() == out.resolve():
        raise InputValueError("masked_out must be a different folder from out", param="masked_out")
    stems: dict[str, Path] = {}
    for path in image_paths:
        if path.stem in stems:
            raise InputValueError(
                f"{stems[path.stem].name} and {path.name} would both get the mask {path.stem}.png; rename one"
            )
        stems[path.stem] = path
    masked = [masked_out / p.name for p in image_paths] if masked_out is not None else []
    return image_paths, [out / f"{p.stem}.png" for p in image_paths], masked


def write_mask_set(
    out: str | os.PathLike[str],
    *,
    num: int | None = None,
    size: tuple[int, int] | None = None,
    images: str | os.PathLike[str] | None = None,
    masked_out: str | os.PathLike[str] | None = None,
    options: MaskSetOptions = MaskSetOptions(),
    mask_convention: str = DEFAULT_MASK_FILE_CONVENTION,
    overwrite: bool = False,
    on_progress: Callable[[int], None] | None = None,
    on_failure: Callable[[str], None] | None = None,
) -> MaskSetReport:
    """Write ``num`` masks as ``out/mask_00000.png``..., or one mask per image of ``images`` as ``out/STEM.png``.

    Every argument and output name is checked before a folder is made or a file written; with ``images`` an
    image that cannot be read or written is reported (``on_failure`` and the report) and the others go on.

    Args:
        out: folder of the mask files (created).
        num: how many masks to write (not with ``images``).
        size: ``(H, W)`` of numbered masks (default :data:`DEFAULT_SIZE`; not with ``images``).
        images: a folder (not searched recursively): one mask per image, at its size, named after it, as
            ``pconv-kit fill --masks`` and ``pconv-kit eval`` pair them.
        masked_out: with ``images``, also write each image with its holes painted white (same name and format).
        options: how the masks are drawn (:class:`MaskSetOptions`).
        mask_convention: ``"hole-white"`` (default: white = hole) or ``"valid-white"``.
        overwrite: replace existing files (default: refuse before writing anything).
        on_progress: called with the total first, then with 1 after each mask.
        on_failure: called with the line of each image that failed.

    Returns:
        The files written and the failures.

    Raises:
        InputValueError: bad arguments, existing outputs without ``overwrite``, output folders that cannot be
            made, options the generator cannot satisfy (naming the parameter).

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> report = write_mask_set(d / "masks", num=2, size=(32, 48), options=MaskSetOptions(seed=0))
        >>> [p.name for p in report.masks]
        ['mask_00000.png', 'mask_00001.png']
    """
    out = Path(out)
    images_dir = Path(images) if images is not None else None
    painted_dir = Path(masked_out) if masked_out is not None else None
    options.check()
    _check_arguments(num, size, images_dir, painted_dir)
    if images_dir is None:
        return _write_numbered(out, num or 0, size or DEFAULT_SIZE, options, mask_convention, overwrite, on_progress)
    return _write_per_image(images_dir, out, painted_dir, options, mask_convention, overwrite, on_progress, on_failure)


def _write_numbered(out: Path, num: int, size: tuple[int, int], options: MaskSetOptions, mask_convention: str,
                    overwrite: bool, on_progress: Callable[[int], None] | None) -> MaskSetReport:
    gen = options.generator(*size)
    digits = max(5, len(str(max(num - 1, 0))))
    paths = [out / f"mask_{i:0{digits}d}.png" for i in range(num)]
    _check_free(paths, overwrite)
    first = gen() if num else None  # an infeasible hole_ratio fails here, before any folder or file is made
    _prepare_folder(out, "out")
    report = MaskSetReport(total=num)
    if on_progress is not None:
        on_progress(num)
    for i, path in enumerate(paths):
        write_mask(path, first if i == 0 and first is not None else gen(), mask_convention, overwrite=overwrite)
        report.masks.append(path)
        if on_progress is not None:
            on_progress(1)
    return report


def _write_per_image(images: Path, out: Path, masked_out: Path | None, options: MaskSetOptions, mask_convention: str,
                     overwrite: bool, on_progress: Callable[[int], None] | None,
                     on_failure: Callable[[str], None] | None) -> MaskSetReport:
    image_paths, mask_paths, painted_paths = _per_image_paths(images, out, masked_out)
    _check_free(mask_paths + painted_paths, overwrite)
    options.generator(64, 64)  # bad generator settings fail here, before any folder or file is made
    for folder, param in ((out, "out"), (masked_out, "masked_out")):
        if folder is not None:
            _prepare_folder(folder, param)
    rng = seeded_rng(options.seed)
    report = MaskSetReport(total=len(image_paths))
    if on_progress is not None:
        on_progress(len(image_paths))
    for k, (path, mask_path) in enumerate(zip(image_paths, mask_paths)):
        try:
            image = read_image(path)
            mask = options.generator(*image.shape[:2])(rng)
            write_mask(mask_path, mask, mask_convention, overwrite=overwrite)
            report.masks.append(mask_path)
            if masked_out is not None:
                write_image(painted_paths[k], paint_holes(image, mask), overwrite=overwrite)
                report.painted.append(painted_paths[k])
        except (OSError, PConvKitError) as exc:
            line = str(exc) if isinstance(exc, PConvKitError) else f"{path}: {getattr(exc, 'strerror', None) or exc}"
            report.failures.append(line)
            if on_failure is not None:
                on_failure(line)
        if on_progress is not None:
            on_progress(1)
    return report
