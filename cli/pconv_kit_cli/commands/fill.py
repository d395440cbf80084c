"""``pconv-kit fill``: inpaint every image of a folder (a thin layer over :func:`pconv_kit.fill.fill_folder`)."""

from __future__ import annotations

import collections
import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from pconv_kit import errors as lib_errors
from pconv_kit.fill import (
    FORMATS,
    FileResult,
    FillReport,
    ResultKind,
    fill_folder,
    parse_shard,
    shard_from_env,
)
from pconv_kit.inpaint import STRATEGIES, TTA_CHOICES
from pconv_kit_cli import options
from pconv_kit_cli.errors import EXIT_INTERRUPTED, EXIT_PARTIAL_FAILURE, library_errors

DEFAULTS = options.library_defaults(fill_folder)

EPILOG = """\b
Examples:
  # masks with the same names in another folder (white = hole)
  pconv-kit fill photos/ filled/ --masks masks/ --model runs/places/

\b
  # one mask for every image, black = hole, everything as PNG
  pconv-kit fill scans/ out/ --mask scratch.png --mask-convention valid-white --format png

\b
  # the built-in model, each fill averaged over 4 flipped copies (4x the model time)
  pconv-kit fill photos/ filled/ --masks masks/ --tta 4

\b
  # sibling masks (a.jpg + a_mask.png) or transparent pixels, sub-folders too, a JSON report
  pconv-kit fill album/ album-filled/ --recursive --model model.safetensors --report report.json

\b
  # 4 GPUs split one folder (each process fills every 4th file); or --shard 0/4 ... 3/4 by hand
  torchrun --nproc-per-node 4 -m pconv_kit_cli fill in/ out/ --masks masks/ --model model.safetensors

\b
Mask discovery per image (first that applies): --mask FILE; --masks DIR (same stem, same relative path
with --recursive); a sibling NAME_mask.* or NAME.mask.* file; the image's alpha channel (transparent =
hole). Existing outputs are skipped unless --overwrite, so re-running an interrupted job resumes it.
Progress: a bar with images/s and ETA on a terminal, a plain line every 10 s otherwise (logs, pipes).
Exit code: 0 all done, 1 some files failed (the others were written), 2 bad arguments, 130 interrupted
(Ctrl-C; run the same command again to resume).
"""


class _RateColumn(ProgressColumn):
    """Images per second."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} img/s" if speed else "- img/s", style="progress.data.speed")


class _PlainProgress:
    """Progress for logs and pipes (no terminal): one line every ``interval`` seconds, and at the end.

    ``filled 120/1000 (12.3 images/s, ETA 1m11s)``; the rich bar is used on a terminal instead.
    """

    def __init__(self, console: Console, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.interval, self.clock = console, interval, clock
        self.total: int | None = None
        self.count = 0
        self.start = self.last = clock()

    def advance(self) -> None:
        self.count += 1
        now = self.clock()
        if now - self.last >= self.interval or self.count == self.total:
            self.last = now
            self.console.print(self.line(now), highlight=False)

    def line(self, now: float) -> str:
        rate = self.count / max(now - self.start, 1e-9)
        text = f"filled {self.count}/{self.total if self.total is not None else '?'} ({rate:.1f} images/s"
        if self.total is not None and rate > 0 and self.count < self.total:
            text += f", ETA {_duration((self.total - self.count) / rate)}"
        return text + ")"


class _FillProgress:
    """The bar on a terminal (a line every 10 s otherwise) and one line per failure, skip or warning."""

    def __init__(self, quiet: bool) -> None:
        console = Console(stderr=True)
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=quiet or not console.is_terminal, transient=False,
        )
        self.task_id = self.progress.add_task("filling", total=None)
        self.plain = None if quiet or console.is_terminal else _PlainProgress(console)
        self.seen: collections.Counter[str] = collections.Counter()

    def start(self, total: int) -> None:
        self.progress.update(self.task_id, total=total)
        if self.plain is not None:
            self.plain.total = total

    def _line(self, style: str, word: str, result: FileResult, text: str) -> None:
        self.progress.console.print(f"[{style}]{word}[/{style}] {escape(result.file)}: {escape(text)}",
                                    highlight=False, soft_wrap=True)

    def result(self, result: FileResult) -> None:
        self.seen[result.status] += 1
        if result.status == "failed":
            self._line("red", "failed", result, result.reason)
        elif result.status == "skipped" and result.kind is not ResultKind.OUTPUT_EXISTS and not self.quiet:
            self._line("yellow", "skipped", result, result.reason)
        elif not self.quiet:
            for warning in result.warnings:
                self._line("yellow", "warning", result, warning)
        if result.kind is not ResultKind.OUTPUT_EXISTS:
            self.progress.advance(self.task_id)
        if self.plain is not None:
            self.plain.advance()


def _duration(seconds: float) -> str:
    """``1h02m``, ``3m05s`` or ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _shard_option(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        return parse_shard(value)
    except lib_errors.InputValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


@contextlib.contextmanager
def _interrupt_exit(seen: collections.Counter[str], out: Console) -> Iterator[None]:
    """Ctrl-C (or SIGINT): say what was done so far and how to resume, and exit 130 (not 'Aborted!', exit 1)."""
    try:
        yield
    except KeyboardInterrupt:
        counts = ", ".join(f"{seen[s]} {s}" for s in ("done", "skipped", "failed"))
        out.print(f"pconv-kit fill: interrupted ({counts}); run the same command again to resume: finished "
                  "outputs are kept and skipped", highlight=False, soft_wrap=True)
        raise SystemExit(EXIT_INTERRUPTED) from None


def _report_path(path: Path, shard_from_launcher: tuple[int, int] | None) -> Path:
    """Under torchrun every rank gets the same arguments: give each its own report file."""
    if shard_from_launcher is None:
        return path
    return path.with_name(f"{path.stem}.rank{shard_from_launcher[0]}{path.suffix}")


def _summary(report: FillReport) -> Group:
    """The headline (a line of its own: a table title would wrap at the table's width) and the status table."""
    headline = Text(f"pconv-kit fill: {report.counts['done']} done in {report.elapsed_s:.1f} s "
                    f"({report.images_per_s:.2f} images/s)")
    table = Table()
    table.add_column("status")
    table.add_column("files", justify="right")
    table.add_column("reasons")
    styles = {"done": "green", "skipped": "yellow", "failed": "red"}
    for status in ("done", "skipped", "failed"):
        rows = [r for r in report.results if r.status == status]
        if status == "failed":
            reasons = collections.Counter(r.kind.value for r in rows)
        else:
            reasons = collections.Counter(r.reason for r in rows if r.reason)
        text = "; ".join(f"{reason} ({n})" for reason, n in reasons.most_common())
        table.add_row(Text(status, style=styles[status]), str(len(rows)), escape(text))
    return Group(headline, table)


@click.command("fill", epilog=EPILOG)
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--masks", "masks_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder of masks matched to images by file stem (and relative path with --recursive).")
@click.option("--mask", "mask_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="One mask file used for every image (resized if the size differs, same aspect ratio).")
@options.model
@options.mask_convention
@click.option("--strategy", type=click.Choice(STRATEGIES), default=DEFAULTS["strategy"], show_default=True,
              help="How to fill large images: 'full' (whole image), 'crop' (boxes around the holes plus "
              "context), 'resize' (downscale, fill, upscale; holes only); 'auto' = full up to "
              "--max-full-pixels, else crop.")
@click.option("--max-full-pixels", type=click.IntRange(min=1), default=DEFAULTS["max_full_pixels"], show_default=True,
              help="Largest image (in pixels) that 'auto' fills whole; the size 'resize' scales down to.")
@click.option("--max-pixels", type=click.IntRange(min=0), default=DEFAULTS["max_pixels"], show_default=True,
              help="Images with more pixels (width x height, read from the file header) fail without being "
              "decoded, so one huge file cannot exhaust the memory; 0 = no limit.")
@options.tta(TTA_CHOICES, DEFAULTS["tta"])
@options.device
@options.batch_size(DEFAULTS["batch_size"])
@options.workers(DEFAULTS["workers"])
@click.option("--recursive", "-r", is_flag=True, help="Also fill sub-folders; outputs mirror the relative paths.")
@click.option("--overwrite", is_flag=True,
              help="Replace existing outputs (default: skip them, which resumes an interrupted run).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=DEFAULTS["fmt"], show_default=True,
              help="Output format; 'keep' keeps each input's format and bit depth.")
@click.option("--quality", type=click.IntRange(1, 100), default=DEFAULTS["quality"], show_default=True,
              help="JPEG/WebP quality of re-encoded outputs.")
@click.option("--concat", is_flag=True, help="Also write input|mask|result strips to OUT_DIR/concat/ for review.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the per-file report (done/skipped/failed with reasons) as JSON.")
@click.option("--shard", metavar="I/N", callback=_shard_option,
              help="Fill only files whose sorted index is I modulo N (0-based); default from torchrun's "
              "RANK/WORLD_SIZE.")
@options.quiet
def fill(
    in_dir: Path,
    out_dir: Path,
    masks_dir: Path | None,
    mask_file: Path | None,
    model: str | None,
    mask_convention: str,
    strategy: str,
    max_full_pixels: int,
    max_pixels: int,
    tta: int,
    device: str,
    batch_size: int,
    workers: int,
    recursive: bool,
    overwrite: bool,
    fmt: str,
    quality: int,
    concat: bool,
    report_path: Path | None,
    shard: tuple[int, int] | None,
    quiet: bool,
) -> None:
    """Fill the holes of every image in IN_DIR and write the results to OUT_DIR.

    Mask files are read with --mask-convention (default hole-white: white = hole). Known pixels are kept
    bit for bit (JPEG outputs are re-encoded at --quality); outputs keep each input's format, bit depth and
    relative path, and are written atomically.
    """
    out = Console()
    launcher_shard = shard_from_env() if shard is None else None
    reporter = _FillProgress(quiet)
    with library_errors(), _interrupt_exit(reporter.seen, out):
        with reporter.progress:
            report = fill_folder(
                in_dir, out_dir, model, mask=mask_file, masks_dir=masks_dir, mask_convention=mask_convention,
                strategy=strategy, device=device, batch_size=batch_size, workers=workers, recursive=recursive,
                overwrite=overwrite, fmt=fmt, quality=quality, concat=concat, shard=shard,
                max_full_pixels=max_full_pixels, max_pixels=max_pixels or None, tta=tta,
                on_start=reporter.start, on_result=reporter.result,
            )
        if report_path is not None:
            report.write_json(_report_path(report_path, launcher_shard))
    if not report.results:
        out.print(f"no images found in {escape(str(in_dir))}{'' if recursive else ' (sub-folders need --recursive)'}",
                  highlight=False)
        return
    out.print(_summary(report))
    if report_path is not None:
        out.print(f"report written to {escape(str(_report_path(report_path, launcher_shard)))}", highlight=False)
    if report.failed:
        raise SystemExit(EXIT_PARTIAL_FAILURE)
