"""``pconv-kit masks``: write random mask files, a numbered set or one per image of a folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pconv_kit.errors import PConvKitError
from pconv_kit.io import list_images, read_image, write_image, write_mask
from pconv_kit.masks import FAMILY_UNIT_COUNTS, MASK_KINDS, MIXED_WEIGHTS, MaskGenerator, parse_weights
from pconv_kit.masks.generator import MIN_MASK_SIDE as MIN_SIDE
from pconv_kit.masks.generator import seeded_rng
from pconv_kit_cli import options
from pconv_kit_cli.errors import EXIT_PARTIAL_FAILURE, CommandError, library_errors

EPILOG = """\b
Examples:
  # 6 masks of 512x512 pixels with 5-12 units each, written to masks/ (white = hole)
  pconv-kit masks --num 6 --min-units 5 --max-units 12
  # 1000 of them in another folder
  pconv-kit masks --num 1000 --min-units 5 --max-units 12 --out train_masks/
  # 256x384 masks whose holes cover 10-20% of the image, reproducible with a seed
  pconv-kit masks --num 200 --size 256 384 --hole-ratio 0.1 0.2 --seed 0 --out masks/
  # large holes (50-60%)
  pconv-kit masks --num 100 --hole-ratio 0.5 0.6 --out masks_large/
  # wide brush strokes, boxes or object-shaped blobs: what people erase
  pconv-kit masks --num 100 --kind blobs --hole-ratio 0.1 0.4 --out masks_blobs/
  # a mixture of families (each mask drawn by one family, chosen with these weights)
  pconv-kit masks --num 100 --kind mixed --weights wide=0.4,boxes=0.2,blobs=0.4 --out masks_mixed/
  # files with white = valid pixel (the paper's M as an image)
  pconv-kit masks --num 100 --mask-convention valid-white --out masks_valid/
  # one mask per photo, at the photo's size and named after it, ready for pconv-kit fill
  pconv-kit masks --images photos/ --out masks/ --kind blobs --hole-ratio 0.1 0.3
  pconv-kit fill photos/ filled/ --masks masks/
  # also write each photo with its holes painted white
  pconv-kit masks --images photos/ --out masks/ --masked-out masked/
"""


def _prepare_folder(path: Path, option: str) -> None:
    """Create ``path`` if needed and check that files can be written there (one-line errors)."""
    if path.exists() and not path.is_dir():
        raise CommandError(f"{option} {path} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create {option} folder {path}: {exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CommandError(f"{option} folder {path} is not writable")


def _describe(exc: BaseException, path: Path) -> str:
    """One-line description of a failure on ``path`` (library messages already name the file)."""
    if isinstance(exc, PConvKitError):
        return str(exc)
    return f"{path}: {getattr(exc, 'strerror', None) or exc}"


def _apply_mask(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Paint the holes of ``valid`` (the image's size) white; alpha is kept."""
    white = 1.0 if image.dtype.kind == "f" else np.iinfo(image.dtype).max
    out = image.copy()
    colour = 3 if image.shape[2] == 4 else image.shape[2]
    out[valid < 0.5, :colour] = white
    return out


@click.command("masks", epilog=EPILOG)
@click.option("--num", "-n", type=int, default=None,
              help="Number of mask files to write (mask_00000.png, ...). Not with --images, which writes one mask "
              "per image.")
@click.option(
    "--kind", type=click.Choice(MASK_KINDS), default="units", show_default=True,
    help="Mask family: units (lines, circles, ellipse arcs, rectangles), wide (thick brush strokes), boxes, "
    "blobs (object-shaped regions), thin (scratches), or mixed (each mask drawn by one family, see --weights).",
)
@click.option(
    "--weights", default=None, metavar="FAMILY=W,...",
    help="--kind mixed only: family weights, e.g. wide=0.4,blobs=0.4,boxes=0.2 (families left out weigh 0; "
    "default: " + ",".join(f"{k}={v:g}" for k, v in MIXED_WEIGHTS.items()) + ").",
)
@click.option(
    "--min-units", type=int, default=None,
    help="Fewest units (strokes, boxes, blobs, ...) per mask. [default: the family's, "
    + ", ".join(f"{k} {v[0]}" for k, v in FAMILY_UNIT_COUNTS.items()) + "]",
)
@click.option(
    "--max-units", type=int, default=None,
    help="Most units per mask. [default: the family's, "
    + ", ".join(f"{k} {v[1]} ({v[2]} with --hole-ratio)" for k, v in FAMILY_UNIT_COUNTS.items()) + "]",
)
@click.option(
    "--out", "-o", type=click.Path(path_type=Path), metavar="DIR", default=Path("masks"), show_default=True,
    help="Folder for the mask files (created if missing; the default is masks/ in the current folder).",
)
@click.option(
    "--size", nargs=2, type=int, default=None, metavar="H W",
    help="Mask height and width in pixels. [default: 512 512; with --images, each image's size]",
)
@click.option(
    "--hole-ratio", nargs=2, type=float, default=None, metavar="LO HI",
    help="Every mask's fraction of hole pixels lies in [LO, HI], e.g. 0.1 0.2.",
)
@click.option(
    "--unit-scale", type=float, default=1.0, show_default=True,
    help="Multiplies the size and thickness of every unit.",
)
@options.seed
@options.mask_convention
@click.option(
    "--images", type=click.Path(path_type=Path), metavar="DIR", default=None,
    help="Write one mask per image of DIR (not searched recursively), at the image's size, named after it "
    "(photo.jpg -> OUT/photo.png), as pconv-kit fill --masks OUT and pconv-kit eval pair them.",
)
@click.option(
    "--masked-out", type=click.Path(path_type=Path), metavar="DIR", default=None,
    help="With --images: also write each image with its holes painted white, under its own name and format.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files (default: refuse and stop).")
@options.quiet
def masks(
    num: int | None,
    kind: str,
    weights: str | None,
    min_units: int | None,
    max_units: int | None,
    out: Path,
    size: tuple[int, int] | None,
    hole_ratio: tuple[float, float] | None,
    unit_scale: float,
    seed: int | None,
    mask_convention: str,
    images: Path | None,
    masked_out: Path | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Generate random masks and write them as PNG files.

    Each mask paints a random number of units (in [--min-units, --max-units]) of its family as holes, sized
    relative to the mask: by default (--kind units) lines, filled circles, ellipse arcs and rotated
    rectangles; --kind wide, boxes, blobs and thin draw brush strokes, boxes, object-shaped regions and
    scratches. --num N writes a numbered set; --images DIR writes one mask per image, at its size and named
    after it. Files are 8-bit black/white PNGs; with the default --mask-convention hole-white, WHITE = HOLE
    (valid-white: white = kept pixel). Existing files are never replaced without --overwrite.
    """
    if num is not None and num < 0:
        raise CommandError(f"--num must be >= 0; got {num}")
    if (min_units is not None and min_units < 0) or (max_units is not None and max_units < 0):
        raise CommandError(f"--min-units and --max-units must be >= 0; got {min_units} and {max_units}")
    if min_units is not None and max_units is not None and min_units > max_units:
        raise CommandError(f"--min-units ({min_units}) must be <= --max-units ({max_units})")
    if kind == "mixed" and (min_units is not None or max_units is not None):
        raise CommandError("--kind mixed uses each family's own unit counts; drop --min-units/--max-units")
    if weights is not None and kind != "mixed":
        raise CommandError(f"--weights applies to --kind mixed only; got --kind {kind}")
    if size is not None and (size[0] < MIN_SIDE or size[1] < MIN_SIDE):
        raise CommandError(
            f"--size H W must be at least {MIN_SIDE} {MIN_SIDE} (smaller masks have no room for holes beside known "
            f"pixels); got {size[0]} {size[1]}"
        )
    if hole_ratio is not None:
        lo, hi = hole_ratio
        if not (0.0 <= lo <= hi <= 1.0):
            raise CommandError(f"--hole-ratio LO HI must satisfy 0 <= LO <= HI <= 1; got {lo:g} {hi:g}")
    if images is None:
        if masked_out is not None:
            raise CommandError("--masked-out needs --images (the images to paint the masks on)")
        if num is None:
            raise CommandError("give --num N (how many masks to write), or --images DIR (one mask per image)")
    elif num is not None:
        raise CommandError("--images writes one mask per image, named after it; drop --num")
    elif size is not None:
        raise CommandError("--images makes each mask the size of its image; drop --size")
    with library_errors():
        parsed_weights = None if weights is None else parse_weights(weights)

    def generator(height: int, width: int) -> MaskGenerator:
        return MaskGenerator(
            height, width, min_units=min_units, max_units=max_units, hole_ratio=hole_ratio, seed=seed,
            unit_scale=unit_scale, kind=kind, weights=parsed_weights,
        )

    if images is None:
        assert num is not None
        _numbered(num, out, size or (512, 512), generator, mask_convention, overwrite, quiet)
    else:
        _per_image(images, out, masked_out, generator, seed, mask_convention, overwrite, quiet)


def _check_free(paths: list[Path], overwrite: bool) -> None:
    if not overwrite:
        existing = [p for p in paths if p.exists()]
        if existing:
            raise CommandError(
                f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; use --overwrite to replace them"
            )


def _progress(quiet: bool) -> tuple[Progress, Console]:
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet or not console.is_terminal,
    )
    return progress, console


def _polarity(mask_convention: str) -> str:
    return f"{mask_convention}: {'white = hole' if mask_convention == 'hole-white' else 'white = valid'}"


def _numbered(
    num: int,
    out: Path,
    size: tuple[int, int],
    generator: Callable[[int, int], MaskGenerator],
    mask_convention: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """``num`` masks of ``size`` as ``OUT/mask_00000.png`` ..."""
    with library_errors():
        gen = generator(*size)
    digits = max(5, len(str(max(num - 1, 0))))
    mask_paths = [out / f"mask_{i:0{digits}d}.png" for i in range(num)]
    _check_free(mask_paths, overwrite)
    with library_errors():  # an infeasible --hole-ratio fails here, before any folder or file is made
        first = gen() if num else None
    _prepare_folder(out, "--out")
    progress, _ = _progress(quiet)
    with progress:
        task = progress.add_task("masks", total=num)
        for i, path in enumerate(mask_paths):
            with library_errors():
                mask = first if i == 0 and first is not None else gen()
            try:
                write_mask(path, mask, mask_convention, overwrite=overwrite)
            except (OSError, PConvKitError) as exc:
                raise CommandError(f"cannot write mask {_describe(exc, path)}") from None
            progress.advance(task)
    click.echo(f"Wrote {num} mask(s) to {out} ({_polarity(mask_convention)}).")


def _per_image(
    images: Path,
    out: Path,
    masked_out: Path | None,
    generator: Callable[[int, int], MaskGenerator],
    seed: int | None,
    mask_convention: str,
    overwrite: bool,
    quiet: bool,
) -> None:
    """One mask per image of ``images``, at its size, as ``OUT/<stem>.png`` (and the masked image)."""
    with library_errors():
        image_paths = list_images(images)
    if not image_paths:
        raise CommandError(f"no images found in {images}")
    for folder, option in ((out, "--out"), (masked_out, "--masked-out")):
        if folder is not None and folder.resolve() == images.resolve():
            raise CommandError(f"{option} must be a different folder from --images")
    if masked_out is not None and masked_out.resolve() == out.resolve():
        raise CommandError("--masked-out must be a different folder from --out")
    stems: dict[str, Path] = {}
    for path in image_paths:
        if path.stem in stems:
            raise CommandError(
                f"{stems[path.stem].name} and {path.name} would both get the mask {path.stem}.png; rename one"
            )
        stems[path.stem] = path
    mask_paths = [out / f"{path.stem}.png" for path in image_paths]
    masked_paths = [masked_out / path.name for path in image_paths] if masked_out is not None else []
    _check_free(mask_paths + masked_paths, overwrite)
    with library_errors():  # bad generator settings fail here, before any folder or file is made
        generator(64, 64)
    _prepare_folder(out, "--out")
    if masked_out is not None:
        _prepare_folder(masked_out, "--masked-out")
    rng = seeded_rng(seed)
    failures: list[str] = []
    progress, console = _progress(quiet)
    with progress:
        task = progress.add_task("masks", total=len(image_paths))
        for k, (path, mask_path) in enumerate(zip(image_paths, mask_paths)):
            try:
                image = read_image(path)
                mask = generator(*image.shape[:2])(rng)
                write_mask(mask_path, mask, mask_convention, overwrite=overwrite)
                if masked_out is not None:
                    write_image(masked_paths[k], _apply_mask(image, mask), overwrite=overwrite)
            except (OSError, PConvKitError) as exc:
                failures.append(_describe(exc, path))
                console.print(f"Error: {failures[-1]}", markup=False, highlight=False)
            progress.advance(task)
    done = len(image_paths) - len(failures)
    click.echo(f"Wrote {done} mask(s) to {out}, one per image of {images}, named after it ({_polarity(mask_convention)}).")
    if masked_out is not None:
        click.echo(f"Wrote {done} masked image(s) to {masked_out} (holes painted white).")
    if failures:
        click.echo(f"{len(failures)} of {len(image_paths)} image(s) failed.", err=True)
        click.get_current_context().exit(EXIT_PARTIAL_FAILURE)
