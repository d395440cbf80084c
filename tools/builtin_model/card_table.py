"""Print the Markdown results table of docs/model_card.md from a `pconv-kit eval --json` report.

Each row gives the model's PSNR / SSIM, those of the two cv2.inpaint baselines (Telea, Navier-Stokes), the
margins over the better baseline of that bin, and on how many of the bin's pairs the model's SSIM is above both
baselines' (a bin mean can hide a coin flip); the last row covers all pairs.

Usage:
    python tools/builtin_model/card_table.py eval.json [--name pconv-photos-small]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def ssim_wins(report: dict[str, Any], bin_label: str) -> int:
    """Pairs of the bin (``"all"``: every pair) where the model's SSIM beats both baselines'."""
    return sum(
        1
        for pair in report["pairs"]
        if bin_label in ("all", pair["bin"])
        and pair["metrics"]["pconv"]["ssim"] > max(pair["metrics"]["telea"]["ssim"], pair["metrics"]["ns"]["ssim"])
    )


def table(report: dict[str, Any], name: str) -> str:
    lines = [
        f"| hole ratio | pairs | {name} PSNR / SSIM | Telea PSNR / SSIM | NS PSNR / SSIM | PSNR margin | SSIM margin "
        "| SSIM above both |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["table"]:
        if row["bin"] == "other" or row["count"] == 0:
            continue
        p, t, n = row["pconv"], row["telea"], row["ns"]
        dp = p["psnr"] - max(t["psnr"], n["psnr"])
        ds = p["ssim"] - max(t["ssim"], n["ssim"])
        lines.append(
            f"| {row['bin']} | {row['count']} | {p['psnr']:.2f} / {p['ssim']:.4f} | {t['psnr']:.2f} / {t['ssim']:.4f} | "
            f"{n['psnr']:.2f} / {n['ssim']:.4f} | {dp:+.2f} dB | {ds:+.4f} | {ssim_wins(report, row['bin'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="JSON written by pconv-kit eval --json")
    parser.add_argument("--name", default="pconv-photos-small", help="model name for the column header")
    args = parser.parse_args()
    print(table(json.loads(args.report.read_text(encoding="utf-8")), args.name))


if __name__ == "__main__":
    main()
