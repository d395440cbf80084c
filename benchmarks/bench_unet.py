"""Benchmark 2: PConvUNet training step and inference against the same U-Net built from ``nn.Conv2d``.

- Training step: forward, ``InpaintingLoss`` (valid, hole and total-variation terms; with ``vgg=True`` also
  the perceptual and style terms through a randomly initialised VGG16, which costs what the pretrained one
  costs), backward and an Adam step. Both networks get the same loss on their output.
- Inference: ``model.eval()`` under ``torch.inference_mode``, both networks in the same memory layout; and
  ``PConvUNet.predict`` (the inference API: composite, channels_last on the CPU) on the same inputs.
- Useful throughput: the FLOPs of the main convolutions (:func:`benchmarks.plain_unet.conv_flops`) divided
  by the inference time, as a fraction of the machine's practical peak: the best GFLOP/s measured for a few
  large ``nn.Conv2d`` layers (both memory formats) in the same process.

Options: ``channels_last`` converts models and inputs; ``compile`` wraps both models in ``torch.compile``
(inductor); on CUDA ``amp`` picks an autocast dtype (``bf16``/``fp16``), with the loss in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from benchmarks.common import compare, ratio_columns, synchronize
from benchmarks.plain_unet import PlainUNet, conv_flops
from pconv_kit import PConvUNet

__all__ = ["measure_peak", "run", "make_inputs"]

PEAK_CONFIGS = (
    # (channels, kernel, spatial size, batch)
    (256, 3, 64, 4),
    (512, 3, 32, 4),
    (128, 3, 128, 2),
)


def make_inputs(
    batch: int, size: int, device: torch.device, seed: int = 0, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and masks with irregular holes from :class:`pconv_kit.masks.MaskGenerator` (about 10-30 %)."""
    from pconv_kit.masks import MaskGenerator

    g = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, 3, size, size, generator=g)
    masks = MaskGenerator(size, size, max_units=40, hole_ratio=(0.1, 0.3), seed=seed).sample(batch)
    mask = torch.from_numpy(masks)[:, None]
    image, mask = image.to(device), mask.to(device)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    return image, mask


def measure_peak(
    device: torch.device, repeats: int = 5, configs: tuple[tuple[int, int, int, int], ...] = PEAK_CONFIGS,
    dtype: torch.dtype = torch.float32,
) -> dict[str, Any]:
    """Best inference GFLOP/s of a few large ``nn.Conv2d`` layers (NCHW and channels_last)."""
    rows = []
    for channels, kernel, size, batch in configs:
        for fmt in (torch.contiguous_format, torch.channels_last):
            conv = torch.nn.Conv2d(channels, channels, kernel, padding=kernel // 2, bias=False)
            conv = conv.to(device=device, dtype=dtype, memory_format=fmt).eval()
            x = torch.rand(batch, channels, size, size, device=device, dtype=dtype).contiguous(memory_format=fmt)

            def step(conv: torch.nn.Module = conv, x: torch.Tensor = x) -> None:
                with torch.inference_mode():
                    conv(x)

            res = compare({"conv": step}, repeats=repeats, warmup=2, device=device)
            flops = 2.0 * batch * size * size * channels * channels * kernel * kernel
            rows.append(
                {
                    "shape": f"{channels}->{channels} {kernel}x{kernel} @{size} B{batch}",
                    "channels_last": fmt is torch.channels_last,
                    "gflops": flops / res["conv"]["median_s"] / 1e9,
                }
            )
    best = max(rows, key=lambda r: r["gflops"])
    return {"peak_gflops": best["gflops"], "peak_config": best, "rows": rows}


def _maybe_compile(model: torch.nn.Module, compile: bool) -> Callable[..., Any]:
    return torch.compile(model) if compile else model


def run(
    sizes: tuple[int, ...] = (256, 512),
    layer_size: int = 8,
    base_channels: int = 64,
    train_batch: int = 2,
    infer_batch: int = 1,
    repeats: int = 5,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    compile: bool = False,
    amp: str | None = None,
    vgg: bool = False,
    clock: str = "wall",
    peak: dict[str, Any] | None = None,
    verbose: bool = True,
) -> dict[str, Any]:
    """Time training steps and inference of PConvUNet and PlainUNet at each size; return rows and the peak."""
    from pconv_kit.losses import InpaintingLoss, VGG16Features

    device = torch.device(device)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[amp]
    if amp_dtype is not None and device.type != "cuda":
        raise ValueError("--amp is for CUDA (autocast on the CPU is not what users run)")
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if peak is None:
        peak = measure_peak(device)
    torch.manual_seed(0)
    pconv = PConvUNet(layer_size=layer_size, base_channels=base_channels).to(device, memory_format=fmt)
    plain = PlainUNet.from_pconv(pconv).to(device, memory_format=fmt)
    extractor = VGG16Features(pretrained=False).to(device) if vgg else None
    loss_fn = InpaintingLoss(extractor).to(device)

    def autocast() -> Any:
        if amp_dtype is None:
            return torch.autocast(device.type, enabled=False)
        return torch.autocast(device.type, dtype=amp_dtype)

    rows = []
    for size in sizes:
        image, mask = make_inputs(max(train_batch, infer_batch), size, device, channels_last=channels_last)
        ti, tm = image[:train_batch], mask[:train_batch]
        ii, im = image[:infer_batch], mask[:infer_batch]
        flops = conv_flops(pconv, size, size, infer_batch)

        # --- inference
        pconv.eval()
        plain.eval()
        run_p, run_b = _maybe_compile(pconv, compile), _maybe_compile(plain, compile)

        def infer(model: Callable[..., Any]) -> Callable[[], None]:
            def step() -> None:
                with torch.inference_mode(), autocast():
                    model(ii, im)

            return step

        def predict() -> None:
            with autocast():
                pconv.predict(ii, im)

        res = compare(
            {"plain": infer(run_b), "pconv": infer(run_p), "predict": predict},
            repeats=repeats,
            warmup=2,
            device=device,
            clock=clock,
        )
        row_inf = {
            "what": "inference",
            "size": size,
            "batch": infer_batch,
            **ratio_columns(res, "plain", "pconv"),
            "conv_gflop": flops / 1e9,
            "pconv_gflops": flops / res["pconv"]["median_s"] / 1e9,
            "plain_gflops": flops / res["plain"]["median_s"] / 1e9,
            "predict_ms": res["predict"]["median_s"] * 1e3,
            "predict_ratio": res["predict"]["ratio"],
            "predict_gflops": flops / res["predict"]["median_s"] / 1e9,
        }
        row_inf["pconv_peak_fraction"] = row_inf["pconv_gflops"] / peak["peak_gflops"]
        row_inf["plain_peak_fraction"] = row_inf["plain_gflops"] / peak["peak_gflops"]
        row_inf["predict_peak_fraction"] = row_inf["predict_gflops"] / peak["peak_gflops"]
        rows.append(row_inf)
        if verbose:
            print(
                f"  inference @{size} B{infer_batch}: plain {row_inf['plain_ms']:.0f} ms, pconv/plain "
                f"{row_inf['ratio']:.3f}; pconv {row_inf['pconv_gflops']:.1f} GFLOP/s = "
                f"{100 * row_inf['pconv_peak_fraction']:.0f}% of peak (plain "
                f"{100 * row_inf['plain_peak_fraction']:.0f}%); predict() {row_inf['predict_ms']:.0f} ms = "
                f"{100 * row_inf['predict_peak_fraction']:.0f}% of peak",
                flush=True,
            )

        # --- training step
        pconv.train()
        plain.train()
        opt_p = torch.optim.Adam(pconv.parameters(), lr=1e-4)
        opt_b = torch.optim.Adam(plain.parameters(), lr=1e-4)
        run_p, run_b = _maybe_compile(pconv, compile), _maybe_compile(plain, compile)

        def train(model: Callable[..., Any], opt: torch.optim.Optimizer, returns_mask: bool) -> Callable[[], None]:
            def step() -> None:
                opt.zero_grad(set_to_none=True)
                with autocast():
                    out = model(ti, tm)
                out = out[0] if returns_mask else out
                loss = loss_fn(out.float(), ti.float(), tm)["total"]
                loss.backward()
                opt.step()

            return step

        res = compare(
            {"plain": train(run_b, opt_b, False), "pconv": train(run_p, opt_p, True)},
            repeats=repeats,
            warmup=2,
            device=device,
            clock=clock,
        )
        row_tr = {
            "what": "train step",
            "size": size,
            "batch": train_batch,
            **ratio_columns(res, "plain", "pconv"),
        }
        rows.append(row_tr)
        if verbose:
            print(
                f"  train step @{size} B{train_batch}: plain {row_tr['plain_ms']:.0f} ms, pconv/plain "
                f"{row_tr['ratio']:.3f}",
                flush=True,
            )
        synchronize(device)
    return {
        "layer_size": layer_size,
        "base_channels": base_channels,
        "channels_last": channels_last,
        "compile": compile,
        "amp": amp,
        "loss": "InpaintingLoss(valid, hole, tv" + (", perceptual, style with VGG16)" if vgg else ")"),
        "clock": clock,
        "peak": peak,
        "rows": rows,
    }
