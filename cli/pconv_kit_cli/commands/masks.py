"""``pconv-kit masks``: write random irregular mask files, optionally applied to a folder of images."""

from __future__ import annotations

import os
from pathlib import Path

import click
import cv2
import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pconv_kit.errors import PConvKitError
from pconv_kit.io import list_images, read_image, read_mask, write_image, write_mask
from pconv_kit.masks import FAMILY_UNIT_COUNTS, MASK_KINDS, MIXED_WEIGHTS, MaskGenerator, parse_weights
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
  # also write each image of photos/ with mask (i mod N) applied, holes painted white
  pconv-kit masks --num 10 --out masks/ --images photos/ --masked-out masked/
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
    """Paint the holes of ``valid`` (resized to the image with nearest neighbour) white; alpha is kept."""
    height, width = image.shape[:2]
    if valid.shape != (height, width):
        valid = cv2.resize(valid, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    white = 1.0 if image.dtype.kind == "f" else np.iinfo(image.dtype).max
    out = image.copy()
    colour = 3 if image.shape[2] == 4 else image.shape[2]
    out[valid < 0.5, :colour] = white
    return out


@click.command("masks", epilog=EPILOG)
@click.option("--num", "-n", type=int, required=True, help="Number of mask files to write.")
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
    help="Folder for the mask files mask_00000.png, mask_00001.png, ... (created if missing; the default is "
    "masks/ in the current folder).",
)
@click.option(
    "--size", nargs=2, type=int, default=(512, 512), show_default=True, metavar="H W",
    help="Mask height and width in pixels.",
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
    help="Folder of images to mask (not searched recursively); needs --masked-out.",
)
@click.option(
    "--masked-out", type=click.Path(path_type=Path), metavar="DIR", default=None,
    help="Folder for the masked images: image i (sorted by name) gets mask i mod N, resized to the image "
    "size, holes painted white; written as <name>_mask_<i>.<same format>.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files (default: refuse and stop).")
@options.quiet
def masks(
    num: int,
    kind: str,
    weights: str | None,
    min_units: int | None,
    max_units: int | None,
    out: Path,
    size: tuple[int, int],
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
    scratches. Files are 8-bit black/white PNGs; with the default --mask-convention hole-white, WHITE = HOLE
    (valid-white: white = kept pixel). Existing files are never replaced without --overwrite.
    """
    if num < 0:
        raise CommandError(f"--num must be >= 0; got {num}")
    if (min_units is not None and min_units < 0) or (max_units is not None and max_units < 0):
        raise CommandError(f"--min-units and --max-units must be >= 0; got {min_units} and {max_units}")
    if min_units is not None and max_units is not None and min_units > max_units:
        raise CommandError(f"--min-units ({min_units}) must be <= --max-units ({max_units})")
    if kind == "mixed" and (min_units is not None or max_units is not None):
        raise CommandError("--kind mixed uses each family's own unit counts; drop --min-units/--max-units")
    if weights is not None and kind != "mixed":
        raise CommandError(f"--weights applies to --kind mixed only; got --kind {kind}")
    if size[0] <= 0 or size[1] <= 0:
        raise CommandError(f"--size H W must be positive; got {size[0]} {size[1]}")
    if hole_ratio is not None:
        lo, hi = hole_ratio
        if not (0.0 <= lo <= hi <= 1.0):
            raise CommandError(f"--hole-ratio LO HI must satisfy 0 <= LO <= HI <= 1; got {lo:g} {hi:g}")
    if (images is None) != (masked_out is None):
        raise CommandError("--images and --masked-out must be given together")
    image_paths: list[Path] = []
    if images is not None and masked_out is not None:
        if num == 0:
            raise CommandError("--images needs at least one mask (--num >= 1)")
        if masked_out.resolve() == images.resolve():
            raise CommandError("--masked-out must be a different folder from --images")
        with library_errors():
            image_paths = list_images(images)
        if not image_paths:
            raise CommandError(f"no images found in {images}")

    with library_errors():
        generator = MaskGenerator(
            size[0], size[1], min_units=min_units, max_units=max_units, hole_ratio=hole_ratio, seed=seed,
            unit_scale=unit_scale, kind=kind, weights=None if weights is None else parse_weights(weights),
        )

    digits = max(5, len(str(max(num - 1, 0))))
    mask_paths = [out / f"mask_{i:0{digits}d}.png" for i in range(num)]
    pairs = [(path, k % num) for k, path in enumerate(image_paths)]  # image k gets mask k mod N
    masked_paths = [
        masked_out / f"{path.stem}_mask_{m:0{digits}d}{path.suffix}"  # type: ignore[operator]
        for path, m in pairs
    ]
    if not overwrite:
        existing = [p for p in (*mask_paths, *masked_paths) if p.exists()]
        if existing:
            raise CommandError(
                f"{len(existing)} output file(s) already exist, e.g. {existing[0]}; use --overwrite to replace them"
            )
    with library_errors():  # an infeasible --hole-ratio fails here, before any folder or file is made
        first = generator() if num else None
    _prepare_folder(out, "--out")
    if masked_out is not None:
        _prepare_folder(masked_out, "--masked-out")

    console = Console(stderr=True)
    failures: list[str] = []
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet or not console.is_terminal,
    )
    with progress:
        task = progress.add_task("masks", total=num)
        for i, path in enumerate(mask_paths):
            with library_errors():
                mask = first if i == 0 and first is not None else generator()
            try:
                write_mask(path, mask, mask_convention, overwrite=overwrite)
            except (OSError, PConvKitError) as exc:
                raise CommandError(f"cannot write mask {_describe(exc, path)}") from None
            progress.advance(task)
        if pairs:
            task = progress.add_task("masked images", total=len(pairs))
            for (path, m), target in zip(pairs, masked_paths):
                try:
                    valid = read_mask(mask_paths[m], mask_convention)
                    image = read_image(path)
                    write_image(target, _apply_mask(image, valid), overwrite=overwrite)
                except (OSError, PConvKitError) as exc:
                    failures.append(_describe(exc, path))
                    console.print(f"Error: {failures[-1]}", markup=False, highlight=False)
                progress.advance(task)

    polarity = "white = hole" if mask_convention == "hole-white" else "white = valid"
    click.echo(f"Wrote {num} mask(s) to {out} ({mask_convention}: {polarity}).")
    if pairs:
        done = len(pairs) - len(failures)
        click.echo(f"Wrote {done} masked image(s) to {masked_out} (holes painted white).")
        if failures:
            click.echo(f"{len(failures)} of {len(pairs)} image(s) failed.", err=True)
            click.get_current_context().exit(EXIT_PARTIAL_FAILURE)
