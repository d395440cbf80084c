"""``pconv-kit convert``: turn a checkpoint of another PConv project into a pconv-kit ``.safetensors`` model."""

from __future__ import annotations

import warnings
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from pconv_kit.convert import SOURCES, ConversionWarning, convert
from pconv_kit_cli.errors import CommandError, library_errors

EPILOG = """\b
Examples:
  # naoto0804/pytorch-inpainting-with-partial-conv checkpoint (format detected from the keys)
  pconv-kit convert 1000000.pth places2.safetensors
  # OpenMMLab mmagic / mmediting checkpoint (trained on BGR images; the result takes RGB)
  pconv-kit convert pconv_256x256_stage2_4x2_places_20200619-1ffed0e8.pth mmagic_places.safetensors
  # MathiasGruber/PConv-Keras weights (needs: pip install "pconv-kit[keras]"); approximate, see the warning
  pconv-kit convert --source keras pconv_imagenet.h5 keras_imagenet.safetensors
  # replace an existing file, then fill images with the converted model
  pconv-kit convert --overwrite 1000000.pth places2.safetensors
  pconv-kit fill photos/ filled/ --masks masks/ --model places2.safetensors

\b
Formats: naoto (.pth with keys enc_1.conv.input_conv.weight, ...), mmagic (.pth with keys
generator.encoder.enc1.conv.weight, ...), keras (.h5 with layers p_conv2d_N, EncBN*, outputs_img).
PyTorch files are read with torch.load(weights_only=True); nothing in them is executed. The registered
models mmagic-places2-256 and mmagic-celeba-256 are converted automatically on first use with --model NAME
once their .pth file is in the cache: only an 8-digit prefix of its SHA-256 is published, so it is not
downloaded automatically (see docs/convert.md).
"""


@click.command("convert", epilog=EPILOG)
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--source",
    type=click.Choice(["auto", *SOURCES]),
    default="auto",
    show_default=True,
    help="Format of SRC; 'auto' detects it from the file's keys (naoto, mmagic) or HDF5 signature (keras).",
)
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists (it is replaced atomically).")
@click.option(
    "--layer-size",
    type=click.IntRange(min=1),
    default=None,
    help="naoto/mmagic: number of encoder layers to convert (default: all found in the file).",
)
@click.option(
    "--channel-order",
    type=click.Choice(["bgr", "rgb"]),
    default=None,
    help="mmagic: channel order the network was trained on (default bgr, as OpenMMLab loads images with "
    "OpenCV). The converted model always takes RGB.",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only errors and warnings.")
def convert_command(
    src: Path,
    dst: Path,
    source: str,
    overwrite: bool,
    layer_size: int | None,
    channel_order: str | None,
    quiet: bool,
) -> None:
    """Convert the checkpoint SRC of another partial-convolution project into a pconv-kit model DST.

    DST must end in .safetensors; it is written atomically, with DST.json beside it. The file records the
    source format and checksum, and whether the conversion is exact.
    """
    err = Console(stderr=True, highlight=False)
    target = Path(dst).expanduser()
    if target.suffix == ".safetensors" and target.exists() and not overwrite:  # the library's message names overwrite=
        raise CommandError(f"{target} already exists; pass --overwrite to replace it")
    with library_errors(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConversionWarning)
        report = convert(
            src, dst, source, overwrite=overwrite, layer_size=layer_size, channel_order=channel_order
        )
    for warning in caught:
        if issubclass(warning.category, ConversionWarning):
            err.print(f"[yellow]Warning:[/yellow] {escape(str(warning.message))}")
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    if not quiet:
        config = report.config
        out = Console(highlight=False, soft_wrap=True)
        out.print(
            f"Converted {escape(str(src))} ({report.source}) -> {escape(str(dst))}: PConvUNet(layer_size="
            f"{config['layer_size']}, base_channels={config['base_channels']}, in_channels={config['in_channels']}); "
            f"inputs need sides divisible by {2 ** config['layer_size']}."
        )
        out.print("Exact: the converted model computes what the source model computes." if report.exact else
                  "Not exact: see the warning and docs/convert.md.")
        if report.ignored:
            out.print(f"Unused entries in the source file: {len(report.ignored)} (e.g. {escape(report.ignored[0])}).")
