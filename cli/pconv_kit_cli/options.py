"""Options shared by several commands, defined once (pip-tools style).

Use them as decorators::

    @click.command()
    @options.mask_convention
    @options.seed
    def masks(mask_convention: str, seed: int | None) -> None: ...
"""

from __future__ import annotations

import click

from pconv_kit.conventions import DEFAULT_MASK_FILE_CONVENTION, MASK_FILE_CONVENTIONS

MASK_CONVENTION_HELP = (
    "How mask files encode holes. 'hole-white' (default, like OpenCV, LaMa and IOPaint): non-zero/white "
    "pixels are holes, black pixels are kept. 'valid-white': white pixels are kept, black pixels are holes "
    "(the paper's M as an image)."
)

mask_convention = click.option(
    "--mask-convention",
    type=click.Choice(MASK_FILE_CONVENTIONS),
    default=DEFAULT_MASK_FILE_CONVENTION,
    show_default=True,
    help=MASK_CONVENTION_HELP,
)

seed = click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Random seed for reproducible results (default: fresh randomness each run).",
)

device = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where to run the model: 'auto' picks CUDA when available, else the CPU.",
)

quiet = click.option("--quiet", "-q", is_flag=True, help="Print only errors and the final summary.")

model = click.option(
    "--model",
    "model",
    metavar="NAME|PATH",
    default=None,
    help="Model weights: a .safetensors file or a run directory written by `pconv-kit train`, or a registered "
    "model name (list them with `pconv-kit models`). Default: the built-in model pconv-photos-small.",
)

batch_size = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Images of the same size filled in one model call.",
)

workers = click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Background threads for reading (decoding) and, as many again, for writing (encoding) images.",
)

tta = click.option(
    "--tta",
    type=click.Choice(["1", "2", "4"]),
    default="1",
    show_default=True,
    callback=lambda _ctx, _param, value: int(value),
    help="Test-time augmentation: fill this many flipped copies of each image and average them (1: off; 2: "
    "also the left-right mirror; 4: also the upside-down copies). Slightly better fills for 2 or 4 times the "
    "model time.",
)
