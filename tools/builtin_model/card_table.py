"""Print the Markdown results tables of docs/model_card.md from a `pconv-kit eval --json` report.

For every mask family of the report (and for all pairs together) one table gives, per hole-ratio bin, the
model's PSNR / SSIM, those of the two cv2.inpaint baselines (Telea, Navier-Stokes), the margins over the better
baseline of that bin, and on how many of the bin's pairs the model's SSIM is above both baselines' (a bin mean
can hide a coin flip). A summary table gives the margins of every family and bin at a glance.

All numbers are computed here from the report's per-pair scores. With --baselines-from, the baselines' scores
come from another report of the same pairs (e.g. a model-only eval of a checkpoint, `--baselines none`, scored
against the baselines computed once).

With --row LABEL, only one line of the card's progress table is printed: all-pairs PSNR / SSIM of the model,
then its margins over the better baseline for each family's pairs.

Usage:
    python tools/builtin_model/card_table.py eval.json [--name pconv-photos-small] [--baselines-from full.json]
    python tools/builtin_model/card_table.py checkpoint.json --baselines-from full.json --row "stage 8, step 8,000"
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

BINS = ("0.01-0.1", "0.1-0.2", "0.2-0.3", "0.3-0.4", "0.4-0.5", "0.5-0.6")
MODEL, BASELINES = "pconv", ("telea", "ns")


def merge_baselines(report: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``report`` with each pair's baseline scores taken from the same (image, mask) pair of ``other``."""
    scores = {(p["image"], p["mask"]): p["metrics"] for p in other["pairs"]}
    pairs = []
    for pair in report["pairs"]:
        key = (pair["image"], pair["mask"])
        if key not in scores:
            raise SystemExit(f"pair {key} is not in the --baselines-from report")
        pairs.append({**pair, "metrics": {**{b: scores[key][b] for b in BASELINES}, **pair["metrics"]}})
    return {**report, "pairs": pairs}


def _mean(pairs: list[dict[str, Any]], method: str, metric: str) -> float:
    return sum(p["metrics"][method][metric] for p in pairs) / len(pairs)


def ssim_wins(pairs: Iterable[dict[str, Any]]) -> int:
    """Pairs where the model's SSIM beats both baselines'."""
    return sum(1 for p in pairs if p["metrics"][MODEL]["ssim"] > max(p["metrics"][b]["ssim"] for b in BASELINES))


def groups(report: dict[str, Any], family: str | None) -> dict[str, list[dict[str, Any]]]:
    """The pairs of ``family`` (``None``: all) per bin, plus ``"all"``; empty bins left out."""
    pairs = [p for p in report["pairs"] if family is None or p.get("family") == family]
    out = {b: [p for p in pairs if p["bin"] == b] for b in BINS}
    out = {b: members for b, members in out.items() if members}
    if pairs:
        out["all"] = pairs
    return out


def margins(pairs: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean PSNR and SSIM of the model minus those of the better baseline (per metric)."""
    dp = _mean(pairs, MODEL, "psnr") - max(_mean(pairs, b, "psnr") for b in BASELINES)
    ds = _mean(pairs, MODEL, "ssim") - max(_mean(pairs, b, "ssim") for b in BASELINES)
    return dp, ds


def table(report: dict[str, Any], name: str, family: str | None = None) -> str:
    lines = [
        f"| hole ratio | pairs | {name} PSNR / SSIM | Telea PSNR / SSIM | NS PSNR / SSIM | PSNR margin | SSIM margin "
        "| SSIM above both |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, pairs in groups(report, family).items():
        cells = [f"{_mean(pairs, m, 'psnr'):.2f} / {_mean(pairs, m, 'ssim'):.4f}" for m in (MODEL, *BASELINES)]
        dp, ds = margins(pairs)
        lines.append(
            f"| {label} | {len(pairs)} | {' | '.join(cells)} | {dp:+.2f} dB | {ds:+.4f} | {ssim_wins(pairs)} |"
        )
    return "\n".join(lines)


def families(report: dict[str, Any]) -> list[str]:
    return sorted({p["family"] for p in report["pairs"] if p.get("family")})


def summary(report: dict[str, Any]) -> str:
    """PSNR (dB) / SSIM margins over the better baseline: one row per family, one column per bin."""
    lines = ["| family | " + " | ".join(BINS) + " | all |", "| --- |" + " --- |" * (len(BINS) + 1)]
    for family in [*families(report), None]:
        by_bin = groups(report, family)
        cells = []
        for label in (*BINS, "all"):
            if label in by_bin:
                dp, ds = margins(by_bin[label])
                cells.append(f"{dp:+.2f} / {ds:+.4f}")
            else:
                cells.append("-")
        lines.append(f"| {family or 'all'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def methods_table(report: dict[str, Any], methods: list[str]) -> str:
    """PSNR / SSIM of every method over each family's pairs and all pairs, and each method's time per image."""
    fams = [*families(report), None]
    lines = ["| method | " + " | ".join(f or "all" for f in fams) + " | s/image |", "| --- |" + " --- |" * (len(fams) + 1)]
    times = report.get("seconds_per_image", {})
    for method in methods:
        cells = []
        for family in fams:
            pairs = groups(report, family)["all"]
            cells.append(f"{_mean(pairs, method, 'psnr'):.2f} / {_mean(pairs, method, 'ssim'):.4f}")
        cells.append(f"{times[method]:.3f}" if method in times else "-")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def progress_row(report: dict[str, Any], label: str) -> str:
    """``| label | all-pairs PSNR / SSIM | margin per family ... |`` for the card's progress table."""
    pairs = report["pairs"]
    cells = [f"{_mean(pairs, MODEL, 'psnr'):.2f} / {_mean(pairs, MODEL, 'ssim'):.4f}"]
    for family in families(report):
        dp, ds = margins(groups(report, family)["all"])
        cells.append(f"{dp:+.2f} / {ds:+.4f}")
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="JSON written by pconv-kit eval --json")
    parser.add_argument("--name", default="pconv-photos-small", help="model name for the column header")
    parser.add_argument("--baselines-from", type=Path, help="take the baselines' scores from this report")
    parser.add_argument("--row", metavar="LABEL", help="print only the progress-table row of this checkpoint")
    parser.add_argument("--methods", help="print only PSNR / SSIM per family and time per image of these methods "
                        "(comma-separated, e.g. pconv,telea,ns,patchmatch)")
    args = parser.parse_args()
    report = json.loads(args.report.read_text(encoding="utf-8"))
    if args.baselines_from:
        report = merge_baselines(report, json.loads(args.baselines_from.read_text(encoding="utf-8")))
    if args.row:
        print(progress_row(report, args.row))
        return
    if args.methods:
        print(methods_table(report, args.methods.split(",")))
        return
    print("Margins over the better baseline, PSNR (dB) / SSIM:\n")
    print(summary(report))
    for family in families(report):
        print(f"\n{family}:\n")
        print(table(report, args.name, family))
    print("\nall pairs:\n")
    print(table(report, args.name))


if __name__ == "__main__":
    main()
