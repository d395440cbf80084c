"""``pconv-kit masks``: write random mask files, a numbered set or one per image of a folder."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pconv_kit.masks import FAMILY_UNIT_COUNTS, MASK_KINDS, MIXED_WEIGHTS, parse_weights
from pconv_kit.masks.sets import DEFAULT_SIZE, MaskSetOptions, write_mask_set

DEFAULTS = MaskSetOptions()
from pconv_kit_cli import options
from pconv_kit_cli.errors import EXIT_PARTIAL_FAILURE, library_errors

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


@click.command("masks", epilog=EPILOG)
@click.option("--num", "-n", type=int, default=None,
              help="Number of mask files to write (mask_00000.png, ...). Not with --images, which writes one mask "
              "per image.")
@click.option(
    "--kind", type=click.Choice(MASK_KINDS), default=DEFAULTS.kind, show_default=True,
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
    help=f"Mask height and width in pixels. [default: {DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]}; with --images, each "
    "image's size]",
)
@click.option(
    "--hole-ratio", nargs=2, type=float, default=None, metavar="LO HI",
    help="Every mask's fraction of hole pixels lies in [LO, HI], e.g. 0.1 0.2.",
)
@click.option(
    "--unit-scale", type=float, default=DEFAULTS.unit_scale, show_default=True,
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
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=quiet or not console.is_terminal,
    )
    task = progress.add_task("masks", total=None)

    def on_progress(n: int) -> None:
        if progress.tasks[task].total is None:
            progress.update(task, total=n)
        else:
            progress.advance(task, n)

    def on_failure(line: str) -> None:
        progress.console.print(f"Error: {line}", markup=False, highlight=False)

    with library_errors():
        spec = MaskSetOptions(
            kind=kind, weights=None if weights is None else parse_weights(weights), min_units=min_units,
            max_units=max_units, hole_ratio=hole_ratio, unit_scale=unit_scale, seed=seed,
        )
        with progress:
            report = write_mask_set(
                out, num=num, size=size, images=images, masked_out=masked_out, options=spec,
                mask_convention=mask_convention, overwrite=overwrite, on_progress=on_progress, on_failure=on_failure,
            )
    polarity = f"{mask_convention}: {'white = hole' if mask_convention == 'hole-white' else 'white = valid'}"
    if images is None:
        click.echo(f"Wrote {len(report.masks)} mask(s) to {out} ({polarity}).")
        return
    click.echo(f"Wrote {len(report.masks)} mask(s) to {out}, one per image of {images}, named after it ({polarity}).")
    if masked_out is not None:
        click.echo(f"Wrote {len(report.painted)} masked image(s) to {masked_out} (holes painted white).")
    if report.failures:
        click.echo(f"{len(report.failures)} of {report.total} image(s) failed.", err=True)
        click.get_current_context().exit(EXIT_PARTIAL_FAILURE)
