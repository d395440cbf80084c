"""``pconv-kit eval``: score a model against OpenCV baselines, binned by hole ratio (paper Table 1)."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from pconv_kit.evaluate import ALL_BASELINES, PAIRINGS, EvalReport, evaluate_folder
from pconv_kit.inpaint import TTA_CHOICES
from pconv_kit_cli import options
from pconv_kit_cli.errors import EXIT_PARTIAL_FAILURE, library_errors

EPILOG = """\b
Examples:
  # masks named like the images (a.jpg <- a.png), white = hole
  pconv-kit eval val/images val/masks --model runs/places/best.safetensors

\b
  # a fixed mask set reused over the images (i-th image with mask i mod M), model only, JSON out
  pconv-kit eval val/images nvidia_masks/ --pairing order --baselines none --json results.json

\b
  # one table per mask family as well: masks in family sub-folders (masks/wide/a.png, masks/blobs/b.png)
  pconv-kit eval val/images val/masks --recursive

\b
Scores are computed on the composite (known pixels from the original, holes from the method) against the
original: L1 in percent, PSNR in dB (identical images count as 100 dB) and SSIM (kornia, window 11), averaged
per hole-ratio bin 0.01-0.1, 0.1-0.2, ..., 0.5-0.6 as in Liu et al. 2018, Table 1.
"""


def _baselines(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    names = tuple(v.strip().lower() for v in value.split(",") if v.strip())
    if names in ((), ("none",)):
        return ()
    unknown = [n for n in names if n not in ALL_BASELINES]
    if unknown:
        raise click.BadParameter(
            f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(ALL_BASELINES)} or none"
        )
    return tuple(dict.fromkeys(names))


def _table(report: EvalReport, family: str | None = None) -> Table:
    # short titles: rich wraps a title at the table's width
    title = "Inpainting quality by hole ratio (composite vs original)"
    if family is not None:
        title = f"{family} masks: quality by hole ratio"
    elif report.families():
        title = "all masks: quality by hole ratio"
    table = Table(title=title, title_justify="left")
    for name, justify in (("hole ratio", "left"), ("pairs", "right"), ("method", "left"), ("L1 (%)", "right"),
                          ("PSNR (dB)", "right"), ("SSIM", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in report.table(family):
        for i, method in enumerate(report.methods):
            values = row[method]
            cells = [row["bin"], str(row["count"])] if i == 0 else ["", ""]
            if values is None:
                cells += [method, "-", "-", "-"]
            else:
                cells += [method, f"{values['l1']:.2f}", f"{values['psnr']:.2f}", f"{values['ssim']:.4f}"]
            table.add_row(*cells, end_section=i == len(report.methods) - 1)
    return table


DEFAULTS = options.library_defaults(evaluate_folder)


@click.command("eval", epilog=EPILOG)
@click.argument("images_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("masks_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@options.model
@options.mask_convention
@click.option("--baselines", default=",".join(DEFAULTS["baselines"]), show_default=True, callback=_baselines,
              help="Comma-separated baselines run on the same pairs: telea and ns (cv2.inpaint), patchmatch (the "
              "optional pypatchmatch package: pip install \"pconv-kit[patchmatch]\"; skipped with one line "
              "when it is missing), or 'none'.")
@click.option("--radius", type=click.FloatRange(min=0, min_open=True), default=DEFAULTS["radius"], show_default=True,
              help="Inpainting radius of the OpenCV baselines.")
@click.option("--patch-size", type=click.IntRange(min=3), default=DEFAULTS["patch_size"], show_default=True,
              help="Patch side of the PatchMatch baseline (odd).")
@click.option("--pairing", type=click.Choice(PAIRINGS), default=DEFAULTS["pairing"], show_default=True,
              help="How masks are matched to images: by file stem, or by sorted order (mask i mod M); 'auto' "
              "uses stems when any match.")
@click.option("--recursive", "-r", is_flag=True, help="Search sub-folders of both folders.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score at most this many pairs.")
@options.tta(TTA_CHOICES, DEFAULTS["tta"])
@options.device
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the table, every pair's scores and the failures as JSON.")
@options.quiet
def eval_command(
    images_dir: Path,
    masks_dir: Path,
    model: str | None,
    mask_convention: str,
    baselines: tuple[str, ...],
    radius: float,
    patch_size: int,
    pairing: str,
    recursive: bool,
    limit: int | None,
    tta: int,
    device: str,
    json_path: Path | None,
    quiet: bool,
) -> None:
    """Fill each (image, mask) pair of IMAGES_DIR and MASKS_DIR and score the results.

    Mask files are read with --mask-convention (default hole-white: white = hole). The model is compared with
    OpenCV's cv2.inpaint baselines (Telea, Navier-Stokes), and optionally PatchMatch, on the same pairs; each
    method's time per image is printed below the tables. With --recursive, a mask's first
    sub-folder of MASKS_DIR names its family, and each family gets a table of its own.
    """
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, disable=quiet or not console.is_terminal,
    )
    task_id = progress.add_task("scoring", total=None)

    def on_pair(name: str, reason: str | None) -> None:
        if reason is not None:
            progress.console.print(f"[red]failed[/red] {escape(name)}: {escape(reason)}", highlight=False, soft_wrap=True)
        progress.advance(task_id)

    with library_errors():
        with progress:
            report = evaluate_folder(
                images_dir, masks_dir, model, baselines=baselines, radius=radius, patch_size=patch_size,
                mask_convention=mask_convention,
                pairing=pairing, recursive=recursive, limit=limit, device=device, tta=tta, on_pair=on_pair,
            )
        if json_path is not None:
            report.write_json(json_path)
    out = Console()
    for family in report.families():
        out.print(_table(report, family))
    out.print(_table(report))
    for name, why in report.settings.get("skipped_baselines", {}).items():
        out.print(f"baseline {name} skipped: {why}", highlight=False, soft_wrap=True, markup=False)
    times = report.seconds_per_image()
    if times:
        out.print("time per image: " + ", ".join(f"{m} {t:.3f} s" for m, t in times.items()), highlight=False,
                  soft_wrap=True)
    out.print(f"{len(report.pairs)} pair(s) scored, {len(report.failures)} failed; pairing by {report.pairing}",
              highlight=False)
    if json_path is not None:
        out.print(f"results written to {escape(str(json_path))}", highlight=False)
    if report.failures or not report.pairs:
        raise SystemExit(EXIT_PARTIAL_FAILURE)
