"""Options shared by several commands, defined once (pip-tools style).

Use them as decorators::

    @click.command()
    @options.mask_convention
    @options.seed
    def masks(mask_convention: str, seed: int | None) -> None: ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pconv_kit.conventions import DEFAULT_DEVICE, DEFAULT_MASK_FILE_CONVENTION, DEVICE_CHOICES, MASK_FILE_CONVENTIONS

F = TypeVar("F", bound=Callable[..., Any])

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
    type=click.Choice(DEVICE_CHOICES),
    default=DEFAULT_DEVICE,
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

def library_defaults(func: Callable[..., Any]) -> dict[str, Any]:
    """The default of every parameter of a library function, so a command shows and uses the library's own.

    Example:
        >>> library_defaults(lambda a, b=2, *, c="x": None)
        {'b': 2, 'c': 'x'}
    """
    return {
        name: p.default for name, p in inspect.signature(func).parameters.items() if p.default is not inspect.Parameter.empty
    }


def batch_size(default: int) -> Callable[[F], F]:
    """``--batch-size`` with the library's default."""
    return click.option(
        "--batch-size", type=click.IntRange(min=1), default=default, show_default=True,
        help="Images of the same size filled in one model call.",
    )


def workers(default: int) -> Callable[[F], F]:
    """``--workers`` with the library's default."""
    return click.option(
        "--workers", type=click.IntRange(min=1), default=default, show_default=True,
        help="Background threads for reading (decoding) and, as many again, for writing (encoding) images.",
    )


def tta(choices: tuple[int, ...], default: int) -> Callable[[F], F]:
    """``--tta`` with the library's choices and default."""
    return click.option(
        "--tta", type=click.Choice([str(c) for c in choices]), default=str(default), show_default=True,
        callback=lambda _ctx, _param, value: int(value),
        help="Test-time augmentation: fill this many flipped copies of each image and average them (1: off; 2: "
        "also the left-right mirror; 4: also the upside-down copies). Slightly better fills for 2 or 4 times the "
        "model time.",
    )
