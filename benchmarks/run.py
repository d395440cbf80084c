"""Run the pconv-kit benchmark suite: ``python -m benchmarks.run [--quick] [--json out.json]``.

Sections (``--only`` picks some, comma-separated):

- ``layers``: PartialConv2d forward + backward vs nn.Conv2d over PConvUNet's layer shapes;
- ``unet``: PConvUNet training step and inference vs the same U-Net of nn.Conv2d, and inference's useful
  GFLOP/s against the measured peak of a large nn.Conv2d;
- ``fill``: ``pconv-kit fill`` images/s on a folder of JPEGs vs the model alone on the same tensors;
- ``masks``: MaskGenerator masks/s and the TV loss's mask dilation;
- ``memory``: peak memory of a training step and of inference, each in a fresh process;
- ``replace``: a ResNet-18 with partial-convolution padding (``replace_conv2d``) vs zero padding.

Every ratio is measured side by side in one process (alternating rounds, median of per-round ratios);
absolute times are context only. ``--quick`` runs small shapes in under a minute (a CI smoke test; its
ratios are not representative of the paper-sized network).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import environment, format_table, set_threads

SECTIONS = ("layers", "unet", "fill", "masks", "memory", "replace")

TARGETS = {
    "layer_fwd_bwd": 1.10,
    "unet_inference": 1.15,
    "unet_train": 1.20,
    "peak_fraction": 0.50,
    "fill_fraction": 0.90,
}

FULL = {
    "layers": {"image_size": 512, "batch": 1, "repeats": 7},
    "unet": {"sizes": (256, 512), "layer_size": 8, "base_channels": 64, "train_batch": 2, "infer_batch": 1,
             "repeats": 5},
    "peak": {"repeats": 5},
    "fill": {"n_images": 16, "size": 512, "layer_size": 8, "base_channels": 64, "batch_size": 4, "repeats": 3},
    "masks": {"size": 512, "min_time": 2.0, "min_count": 20, "batch": 8, "repeats": 10},
    "memory": {"train_sizes": (512,), "infer_sizes": (512, 1024), "layer_size": 8, "base_channels": 64,
               "train_batch": 1, "infer_batch": 1, "fill_sizes": (1024, 2048, 4096, 8192)},
    "replace": {"size": 224, "infer_batch": 8, "train_batch": 4, "repeats": 7},
}

QUICK = {
    "layers": {"image_size": 64, "layer_size": 5, "base_channels": 16, "batch": 1, "repeats": 3, "warmup": 1},
    "unet": {"sizes": (64,), "layer_size": 5, "base_channels": 16, "train_batch": 2, "infer_batch": 1,
             "repeats": 3},
    "peak": {"repeats": 2, "configs": ((128, 3, 32, 2),)},
    "fill": {"n_images": 4, "size": 128, "layer_size": 5, "base_channels": 16, "batch_size": 2, "repeats": 2},
    "masks": {"size": 512, "min_time": 0.2, "min_count": 5, "batch": 2, "repeats": 3},
    "memory": {"train_sizes": (128,), "infer_sizes": (128,), "layer_size": 5, "base_channels": 16,
               "train_batch": 2, "infer_batch": 1, "fill_sizes": (512,)},
    "replace": {"size": 64, "width": 16, "infer_batch": 2, "train_batch": 2, "repeats": 3},
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="pconv-kit benchmarks: partial convolution vs plain convolution, fill I/O overhead, masks, "
        "memory, partial-convolution padding.",
        epilog="Examples:\n"
        "  python -m benchmarks.run --quick --json quick.json      # CI smoke test, < 1 minute\n"
        "  python -m benchmarks.run --json bench.json --markdown bench.md\n"
        "  python -m benchmarks.run --only layers,unet --channels-last\n"
        "  python -m benchmarks.run --only unet --device cuda --amp bf16 --compile\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats (< 1 minute)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write all results as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write the summary tables as Markdown")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections, comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="default cpu")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per comparison (default per section)")
    parser.add_argument(
        "--clock", default="wall", choices=("wall", "cpu"),
        help="wall-clock time (default) or process CPU time (robust on a loaded machine; CPU only)",
    )
    parser.add_argument("--channels-last", action="store_true", help="channels_last models and inputs")
    parser.add_argument("--compile", action="store_true", help="torch.compile both U-Nets (inductor)")
    parser.add_argument("--amp", choices=("bf16", "fp16"), default=None, help="CUDA autocast dtype for the U-Nets")
    parser.add_argument("--vgg", action="store_true", help="include the VGG16 perceptual/style loss in training")
    args = parser.parse_args(argv)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    if args.clock == "cpu" and args.device == "cuda":
        parser.error("--clock cpu measures CPU time; use wall-clock time on CUDA")
    return args


def _with_repeats(params: dict[str, Any], repeats: int | None) -> dict[str, Any]:
    params = dict(params)
    if repeats is not None and "repeats" in params:
        params["repeats"] = repeats
    return params


def run(args: argparse.Namespace) -> dict[str, Any]:
    threads = set_threads(args.threads)
    cfg = QUICK if args.quick else FULL
    results: dict[str, Any] = {
        "command": "python -m benchmarks.run " + " ".join(sys.argv[1:]),
        "quick": args.quick,
        "environment": environment(args.device),
        "sections": {},
    }
    results["environment"]["torch_threads"] = threads
    env = results["environment"]
    print(
        f"pconv-kit benchmarks ({'quick' if args.quick else 'full'}): torch {env['torch']}, {args.device}"
        f"{' (' + env.get('gpu', '') + ')' if args.device == 'cuda' else ''}, {threads} threads, "
        f"{env.get('cpu_model', env['processor'])}, load average {env['load_average']}",
        flush=True,
    )
    started = time.perf_counter()
    for section in args.sections:
        t0 = time.perf_counter()
        print(f"[{section}]", flush=True)
        if section == "layers":
            from benchmarks import bench_layers

            out = bench_layers.run(
                **_with_repeats(cfg["layers"], args.repeats), device=args.device,
                channels_last=args.channels_last, clock=args.clock,
            )
        elif section == "unet":
            from benchmarks import bench_unet

            peak = bench_unet.measure_peak(torch.device(args.device), **cfg["peak"])
            print(f"  peak nn.Conv2d: {peak['peak_gflops']:.1f} GFLOP/s ({peak['peak_config']['shape']}, "
                  f"channels_last={peak['peak_config']['channels_last']})", flush=True)
            out = bench_unet.run(
                **_with_repeats(cfg["unet"], args.repeats), device=args.device, channels_last=args.channels_last,
                compile=args.compile, amp=args.amp, vgg=args.vgg, clock=args.clock, peak=peak,
            )
        elif section == "fill":
            from benchmarks import bench_fill

            out = bench_fill.run(**_with_repeats(cfg["fill"], args.repeats), device=args.device)
        elif section == "masks":
            from benchmarks import bench_masks

            out = bench_masks.run(**_with_repeats(cfg["masks"], args.repeats), device=args.device)
        elif section == "memory":
            from benchmarks import bench_memory

            out = bench_memory.run(**cfg["memory"], threads=threads, device=args.device)
        else:
            from benchmarks import bench_replace

            out = bench_replace.run(
                **_with_repeats(cfg["replace"], args.repeats), device=args.device,
                channels_last=args.channels_last, clock=args.clock,
            )
        out["elapsed_s"] = time.perf_counter() - t0
        results["sections"][section] = out
    results["elapsed_s"] = time.perf_counter() - started
    results["environment"]["load_average_end"] = environment(args.device)["load_average"]
    results["targets"] = evaluate_targets(results)
    return results


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, with the measured value and whether it is met."""
    sec = results["sections"]
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, target: float, higher_is_better: bool, note: str) -> None:
        if value is None:
            return
        met = value >= target if higher_is_better else value <= target
        out.append({"target": name, "value": value, "limit": target, "met": met, "note": note})

    if "layers" in sec:
        m = sec["layers"]["median_ratio"]
        for mode, value in m.items():
            add(f"PartialConv2d fwd+bwd / nn.Conv2d ({mode} mask), median over layers", value,
                TARGETS["layer_fwd_bwd"], False, f"image size {sec['layers']['image_size']}")
    if "unet" in sec:
        for row in sec["unet"]["rows"]:
            key = "unet_inference" if row["what"] == "inference" else "unet_train"
            add(f"PConvUNet {row['what']} / plain U-Net @{row['size']}", row["ratio"], TARGETS[key], False,
                f"batch {row['batch']}")
            if row["what"] == "inference":
                add(f"PConvUNet forward @{row['size']}: fraction of peak conv GFLOP/s",
                    row["pconv_peak_fraction"], TARGETS["peak_fraction"], True,
                    f"plain U-Net: {row['plain_peak_fraction']:.2f}")
                add(f"PConvUNet.predict @{row['size']}: fraction of peak conv GFLOP/s",
                    row.get("predict_peak_fraction"), TARGETS["peak_fraction"], True, "channels_last on the CPU")
    if "fill" in sec:
        f = sec["fill"]
        add(f"fill images/s / model-only images/s ({f['size']}x{f['size']} JPEG)", f["fill_fraction"],
            TARGETS["fill_fraction"], True, f"{f['n_images']} images, batch {f['batch_size']}")
    return out


def summary_markdown(results: dict[str, Any]) -> str:
    """Markdown tables of the main figures (the docs page's table is made with this)."""
    env = results["environment"]
    parts = [
        f"Command: `{results['command']}`  ",
        f"torch {env['torch']}, {env['device']}, {env['torch_threads']} threads, "
        f"{env.get('cpu_model', env['processor'])} ({env['cpu_count']} CPUs), load average at start "
        f"{', '.join(f'{x:.2f}' for x in env['load_average'] or [])}, at end "
        f"{', '.join(f'{x:.2f}' for x in env.get('load_average_end') or [])}.",
        "",
    ]
    sec = results["sections"]
    if "layers" in sec:
        rows = [r for r in sec["layers"]["rows"]]
        modes = sorted({r["mode"] for r in rows}, key=["broadcast", "per-channel", "count"].index)
        table = []
        for layer in dict.fromkeys(r["layer"] for r in rows):
            entry: dict[str, Any] = {"layer": layer}
            for r in rows:
                if r["layer"] == layer:
                    entry["shape"] = r["shape"]
                    entry["conv_ms"] = r["conv_ms"] if "conv_ms" not in entry else entry["conv_ms"]
                    entry[r["mode"]] = r["ratio"]
            table.append(entry)
        table.append({"layer": "**median**", **sec["layers"]["median_ratio"]})
        parts += [
            f"**PartialConv2d forward+backward / nn.Conv2d** (the layer shapes of PConvUNet(layer_size="
            f"{sec['layers']['layer_size']}, base_channels={sec['layers']['base_channels']}) at "
            f"{sec['layers']['image_size']}x{sec['layers']['image_size']}, batch {sec['layers']['batch']}):",
            "",
            format_table(table, [("layer", "layer", ""), ("shape", "shape", ""), ("conv_ms", "nn.Conv2d ms", ".1f")]
                         + [(m, m, ".3f") for m in modes]),
            "",
        ]
    if "unet" in sec:
        u = sec["unet"]
        parts += [
            f"**PConvUNet / plain-conv U-Net** (layer_size={u['layer_size']}, base_channels={u['base_channels']}, "
            f"loss {u['loss']}, channels_last={u['channels_last']}, compile={u['compile']}); peak nn.Conv2d "
            f"{u['peak']['peak_gflops']:.1f} GFLOP/s:",
            "",
            format_table(u["rows"], [
                ("what", "", ""), ("size", "size", "d"), ("batch", "batch", "d"), ("plain_ms", "plain ms", ".0f"),
                ("pconv_ms", "PConvUNet ms", ".0f"), ("ratio", "ratio", ".3f"),
                ("pconv_peak_fraction", "PConvUNet % of peak", ".1%"),
                ("plain_peak_fraction", "plain % of peak", ".1%"),
                ("predict_ms", "predict() ms", ".0f"), ("predict_peak_fraction", "predict() % of peak", ".1%"),
            ]),
            "",
        ]
    if "fill" in sec:
        f = sec["fill"]
        parts += [
            f"**fill**: {f['n_images']} JPEGs {f['size']}x{f['size']}, batch {f['batch_size']}, {f['workers']} "
            f"reader/writer threads: {f['fill_images_per_s']:.2f} images/s vs model alone "
            f"{f['model_images_per_s']:.2f} images/s = **{f['fill_fraction']:.1%}**.",
            "",
        ]
    if "masks" in sec:
        m = sec["masks"]
        gens = "; ".join(f"{g['generator']}: {g['masks_per_s']:.0f} masks/s" for g in m["generator"])
        d = m["dilation"]
        parts += [
            f"**masks** ({m['generator'][0]['size']}x{m['generator'][0]['size']}): MaskGenerator {gens}. "
            f"TV-loss dilation: {d['masks_per_s']:.0f} masks/s ({d['ratio_to_max_pool']:.2f}x the cost of "
            f"`F.max_pool2d`, same result: {d['same_result']}).",
            "",
        ]
    if "memory" in sec:
        parts += [
            "**Peak memory** on top of parameters, gradients, optimiser state and inputs (fresh process each):",
            "",
            format_table(sec["memory"]["rows"], [
                ("what", "", ""), ("size", "size", "d"), ("batch", "batch", "d"), ("plain_mib", "plain MiB", ".0f"),
                ("pconv_mib", "PConvUNet MiB", ".0f"), ("ratio", "ratio", ".2f"), ("method", "method", ""),
            ]),
            "",
        ]
        if sec["memory"].get("fill_rows"):
            parts += [
                "**Peak memory of `pconv-kit fill`** (built-in model, one square photo with a centred hole a "
                "tenth of its side, on top of the loaded model):",
                "",
                format_table(sec["memory"]["fill_rows"], [
                    ("size", "side", "d"), ("megapixels", "megapixels", ".1f"), ("fill_mib", "MiB", ".0f"),
                    ("bytes_per_pixel", "bytes/pixel", ".1f"),
                ]),
                "",
            ]
    if "replace" in sec:
        r = sec["replace"]
        parts += [
            f"**replace_conv2d** (ResNet-18, width {r['width']}, @{r['size']}: partial-convolution padding / zero "
            "padding):",
            "",
            format_table(r["rows"], [
                ("what", "", ""), ("batch", "batch", "d"), ("zero_ms", "zero padding ms", ".0f"),
                ("partial_ms", "partial padding ms", ".0f"), ("ratio", "ratio", ".3f"),
            ]),
            "",
        ]
    if results.get("targets"):
        parts += [
            "**Targets**"
            + (" (quick mode: small shapes, not representative of the paper network)" if results["quick"] else "")
            + ":",
            "",
            format_table(
                [{**t, "met": "met" if t["met"] else "missed"} for t in results["targets"]],
                [("target", "target", ""), ("value", "measured", ".3f"), ("limit", "limit", ".2f"), ("met", "", ""),
                 ("note", "", "")],
            ),
            "",
        ]
    return "\n".join(parts)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:  # NaN
        return None
    return obj


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    text = summary_markdown(results)
    print()
    print(text)
    from pconv_kit.utils.files import atomic_write

    if args.json:
        with atomic_write(args.json) as tmp:
            tmp.write_text(json.dumps(_jsonable(results), indent=2) + "\n", encoding="utf-8")
        print(f"results written to {args.json}")
    if args.markdown:
        with atomic_write(args.markdown) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(f"tables written to {args.markdown}")
    print(f"total {results['elapsed_s']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
