"""Progress reporting for training: a rich live display on a terminal, plain log lines elsewhere.

:func:`make_reporter` picks the kind: ``"rich"`` on an interactive terminal (not under ``CI``), ``"plain"``
(one line per logged step, good for log files and CI) otherwise, ``"none"`` for silence. All reporters share
one small interface, so the trainer does not care which it has.
"""

from __future__ import annotations

import os
import sys
import time
from typing import IO, Any

from pconv_kit.losses.weights import TERM_NAMES

__all__ = ["Reporter", "PlainReporter", "RichReporter", "NullReporter", "make_reporter", "format_terms"]


def format_terms(record: dict[str, Any]) -> str:
    """``"total 1.234 valid 0.0123 ..."`` for the loss terms present in ``record``."""
    return "  ".join(f"{k} {record[k]:.4g}" for k in TERM_NAMES if k in record)


def _eta(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}"


class Reporter:
    """Interface of the trainer's progress reporting (this base class prints nothing)."""

    def start(self, start_step: int, steps: int, description: str = "") -> None:
        """Training of steps ``start_step + 1 ... steps`` begins."""

    def advance(self, step: int) -> None:
        """Step ``step`` is done (called every step: keep it cheap)."""

    def train_metrics(self, record: dict[str, Any]) -> None:
        """A training metrics record (``step``, loss terms, ``lr``, ``it_per_s``...) was logged."""

    def val_metrics(self, record: dict[str, Any]) -> None:
        """A validation record (``step``, ``psnr``, ``ssim``, ``hole_l1``, ``best``) was logged."""

    def message(self, text: str, level: str = "info") -> None:
        """A one-line message; ``level`` is ``"info"`` or ``"warning"``."""

    def close(self) -> None:
        """Training ended (also on errors)."""


class NullReporter(Reporter):
    """Reports nothing."""


class PlainReporter(Reporter):
    """Plain lines on a stream (stderr by default): one per logged step, validation and message.

    Args:
        stream: where to write.
        quiet: print only warnings.
    """

    def __init__(self, stream: IO[str] | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.steps = 0
        self.start_step = 0
        self.t0 = time.perf_counter()

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, start_step: int, steps: int, description: str = "") -> None:
        self.steps, self.start_step, self.t0 = steps, start_step, time.perf_counter()
        if not self.quiet and description:
            self._print(description)

    def train_metrics(self, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        step = int(record["step"])
        rate = record.get("it_per_s") or 0.0
        eta = _eta((self.steps - step) / rate) if rate > 0 else "?"
        width = len(str(self.steps))
        self._print(
            f"step {step:>{width}}/{self.steps}  {format_terms(record)}  lr {record.get('lr', 0):.3g}  "
            f"{rate:.2f} it/s  ETA {eta}"
        )

    def val_metrics(self, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        best = "  (best)" if record.get("best") else ""
        self._print(
            f"validation at step {record['step']}: PSNR {record['psnr']:.2f} dB  SSIM {record['ssim']:.4f}  "
            f"hole L1 {record['hole_l1']:.4f}{best}"
        )

    def message(self, text: str, level: str = "info") -> None:
        if level == "warning":
            self._print(f"warning: {text}")
        elif not self.quiet:
            self._print(text)


class RichReporter(Reporter):
    """A rich progress bar with it/s, ETA and the latest loss terms; messages print above it."""

    def __init__(self, quiet: bool = False, console: Any = None) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True)
        self.quiet = quiet
        self.progress: Any = None
        self.task: Any = None

    def start(self, start_step: int, steps: int, description: str = "") -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        if description and not self.quiet:
            self.console.print(description)
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[terms]}"),
            console=self.console,
            transient=False,
            refresh_per_second=4,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, completed=start_step, rate="", terms="")

    def advance(self, step: int) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step)

    def train_metrics(self, record: dict[str, Any]) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task,
                rate=f"{record.get('it_per_s', 0):.2f} it/s",
                terms=f"{format_terms(record)}  lr {record.get('lr', 0):.3g}",
            )

    def val_metrics(self, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        best = " [green](best)" if record.get("best") else ""
        self.console.print(
            f"validation at step {record['step']}: PSNR {record['psnr']:.2f} dB  SSIM {record['ssim']:.4f}  "
            f"hole L1 {record['hole_l1']:.4f}{best}"
        )

    def message(self, text: str, level: str = "info") -> None:
        if level == "warning":
            self.console.print(f"[yellow]warning:[/yellow] {text}", markup=True, highlight=False)
        elif not self.quiet:
            self.console.print(text, markup=False, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def make_reporter(kind: str = "auto", quiet: bool = False, stream: IO[str] | None = None) -> Reporter:
    """Build a reporter: ``"auto"`` (rich on an interactive terminal outside CI, else plain), ``"rich"``,
    ``"plain"`` or ``"none"``.

    Example:
        >>> isinstance(make_reporter("none"), NullReporter)
        True
    """
    if kind == "auto":
        out = stream if stream is not None else sys.stderr
        interactive = hasattr(out, "isatty") and out.isatty() and os.environ.get("TERM") != "dumb"
        kind = "rich" if interactive and not os.environ.get("CI") else "plain"
    if kind == "rich":
        return RichReporter(quiet=quiet)
    if kind == "plain":
        return PlainReporter(stream=stream, quiet=quiet)
    if kind == "none":
        return NullReporter()
    raise ValueError(f"reporter kind must be auto, rich, plain or none; got {kind!r}")
