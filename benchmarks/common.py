"""Timing, environment and result helpers shared by the benchmarks.

Shared machines are noisy, so every comparison is measured *side by side in one process*: the candidates run
in alternating order, round after round, and the reported figure is the median over rounds of the per-round
ratio ``time(candidate) / time(baseline)``. Absolute times (medians and minima) are kept only as context.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Timing",
    "compare",
    "time_calls",
    "environment",
    "synchronize",
    "set_threads",
    "format_table",
]


def synchronize(device: torch.device | str) -> None:
    """Wait for queued CUDA work so that wall-clock times are complete (no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def set_threads(threads: int | None) -> int:
    """Set ``torch``'s intra-op threads (``None`` keeps the current value) and return the value in use."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


@dataclass
class Timing:
    """Wall-clock times (seconds) of one candidate and, unless it is the baseline, its ratio to the baseline."""

    name: str
    times: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def ratio(self) -> float | None:
        """Median over rounds of ``time / baseline time`` (``None`` for the baseline itself)."""
        return statistics.median(self.ratios) if self.ratios else None

    @property
    def ratio_iqr(self) -> tuple[float, float] | None:
        """25th and 75th percentiles of the per-round ratios (a measure of the noise)."""
        if len(self.ratios) < 2:
            return None
        q = statistics.quantiles(self.ratios, n=4, method="inclusive")
        return (q[0], q[2])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "median_s": self.median,
            "best_s": self.best,
            "rounds": len(self.times),
        }
        if self.ratios:
            out["ratio"] = self.ratio
            out["ratio_iqr"] = self.ratio_iqr
            out["ratio_of_best"] = None  # filled by compare()
        return out


def time_calls(fn: Callable[[], object], device: torch.device | str = "cpu") -> float:
    """Seconds taken by one call of ``fn`` (synchronising CUDA before and after)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def compare(
    candidates: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    calls_per_round: int = 1,
    clock: str = "wall",
) -> dict[str, dict[str, Any]]:
    """Time ``candidates`` side by side; the first one is the baseline.

    Each round calls every candidate ``calls_per_round`` times, in an order rotated from round to round so
    that slow drifts of the machine hit all candidates alike, and records the ratio of each candidate's time
    to the baseline's time *in that round*.

    Args:
        candidates: name -> zero-argument callable; the first entry is the baseline.
        repeats: number of rounds.
        warmup: untimed calls of each candidate first (allocator, oneDNN primitive caches, compilation).
        device: synchronised around each timed call when CUDA.
        calls_per_round: timed calls per candidate per round (their total time is recorded).
        clock: ``"wall"`` (``time.perf_counter``, the default and what users feel) or ``"cpu"``
            (``time.process_time``: CPU time of this process, all threads, much less sensitive to other
            processes competing for the cores; only meaningful on the CPU).

    Returns:
        name -> ``{"median_s", "best_s", "rounds", "ratio", "ratio_iqr", "ratio_of_best"}`` (per call; the
        ratio fields only for non-baseline candidates).
    """
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu'; got {clock!r}")
    now = time.perf_counter if clock == "wall" else time.process_time
    names = list(candidates)
    timings = {name: Timing(name) for name in names}
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    synchronize(device)
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        round_times: dict[str, float] = {}
        for name in order:
            fn = candidates[name]
            synchronize(device)
            start = now()
            for _ in range(calls_per_round):
                fn()
            synchronize(device)
            round_times[name] = (now() - start) / calls_per_round
        for name in names:
            timings[name].times.append(round_times[name])
            if name != names[0]:
                timings[name].ratios.append(round_times[name] / round_times[names[0]])
    base_best = timings[names[0]].best
    result = {}
    for name in names:
        summary = timings[name].summary()
        if name != names[0]:
            summary["ratio_of_best"] = timings[name].best / base_best
        result[name] = summary
    return result


def ratio_columns(result: dict[str, dict[str, Any]], base: str, other: str) -> dict[str, Any]:
    """The row fields of a :func:`compare` result for ``other`` against the baseline ``base``.

    Returns:
        ``{"<base>_ms", "<other>_ms", "ratio", "ratio_iqr", "ratio_of_best"}`` (median times in ms).
    """
    return {
        f"{base}_ms": result[base]["median_s"] * 1e3,
        f"{other}_ms": result[other]["median_s"] * 1e3,
        "ratio": result[other]["ratio"],
        "ratio_iqr": result[other]["ratio_iqr"],
        "ratio_of_best": result[other]["ratio_of_best"],
    }


def environment(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Versions, threads, device and machine load: the context every result file records."""
    import numpy

    import pconv_kit

    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pconv_kit": pconv_kit.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        env["load_average"] = list(os.getloadavg())
    except OSError:  # not available on this platform
        env["load_average"] = None
    cpu_model = _cpu_model()
    if cpu_model:
        env["cpu_model"] = cpu_model
    if torch.device(device).type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """A Markdown table of ``rows``; ``columns`` are ``(key, header, format spec)``."""

    def cell(row: dict[str, Any], key: str, spec: str) -> str:
        value = row.get(key)
        if value is None:
            return "-"
        return format(value, spec) if spec else str(value)

    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(cell(row, k, s) for k, _, s in columns) + " |")
    return "\n".join(lines)
