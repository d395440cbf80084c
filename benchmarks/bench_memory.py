"""Benchmark 5: peak memory of a training step and of inference, PConvUNet against the plain-conv U-Net, and of
``pconv-kit fill`` as a function of the image size.

Method. Every measurement runs in a fresh Python process (``python -m benchmarks.bench_memory --worker
JSON``), so allocations of earlier measurements cannot hide or inflate it:

- CPU (Linux): the process builds the model, the optimiser and the inputs, and runs one warm-up step on a
  small input so that libraries, kernels, thread pools, gradients and Adam's state are in place. It then
  resets the kernel's peak-RSS counter (writing ``5`` to ``/proc/self/clear_refs``), reads its resident set
  size (``VmRSS``), runs the measured step at full size and reads the peak (``VmHWM``). The figure is
  ``VmHWM - VmRSS``: the memory the step needs on top of parameters, gradients, optimiser state and inputs
  (activations and temporaries). ``tracemalloc`` would not see torch's allocations, and
  ``getrusage().ru_maxrss`` is useless in a child process (Linux carries the parent's peak over ``fork`` and
  ``exec``). The worker runs with ``MALLOC_MMAP_THRESHOLD_=131072`` so that glibc returns large freed blocks
  to the system and the resident set follows live memory; gradients are zeroed in place
  (``set_to_none=False``) so they stay resident.
- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the allocation before
  the step (same warm-up).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["run", "measure"]

REPO_ROOT = Path(__file__).resolve().parents[1]


def _status_bytes(field: str) -> int:
    """A ``/proc/self/status`` memory field (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak() -> bool:
    """Reset the peak resident set size (VmHWM) to the current one; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _fill_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of ``fill_folder`` on one ``size`` x ``size`` photo-like PNG with one square hole.

    The image is a smooth gradient with a little noise (a small file, like a real photo's PNG), its mask a
    square hole of a tenth of the side in the middle. The built-in model fills it with ``pconv-kit fill``'s
    defaults (strategy ``auto``: the whole image up to 2 megapixels, crops around the holes above). A small
    image is filled first so that the model and libraries are loaded.
    """
    import tempfile

    import numpy as np
    import torch

    from pconv_kit.fill import fill_folder
    from pconv_kit.inpaint import Inpainter
    from pconv_kit.io import write_image, write_mask

    torch.set_num_threads(spec["threads"])
    inpainter = Inpainter(None, device=spec["device"])
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, n in (("warm", 256), ("big", spec["size"])):
            (root / name / "in").mkdir(parents=True)
            (root / name / "masks").mkdir()
            ramp = np.linspace(0, 200, n, dtype=np.float32)
            image = (ramp[None, :, None] + ramp[:, None, None] / 4 + rng.integers(0, 8, (n, 1, 3))).astype(np.uint8)
            write_image(root / name / "in" / "a.png", image)
            valid = np.ones((n, n), np.float32)
            valid[n // 2 - n // 20 : n // 2 + n // 20, n // 2 - n // 20 : n // 2 + n // 20] = 0
            write_mask(root / name / "masks" / "a.png", valid)
            del image, valid
        fill_folder(root / "warm" / "in", root / "warm" / "out", inpainter, masks_dir=root / "warm" / "masks", workers=1)
        reset = _reset_peak()
        before = _status_bytes("VmRSS")
        report = fill_folder(root / "big" / "in", root / "big" / "out", inpainter, masks_dir=root / "big" / "masks",
                             workers=1)
        peak = _status_bytes("VmHWM")
    if report.counts["done"] != 1:
        raise RuntimeError(f"the fill failed: {report.results}")
    method = "VmHWM - VmRSS (peak reset)" if reset else "VmHWM - VmRSS (peak not reset: upper bound)"
    return {"step_bytes": max(0, peak - before), "baseline_bytes": before, "peak_rss_bytes": peak, "method": method}


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["kind"] == "fill":
        return _fill_worker(spec)
    import torch

    from benchmarks.bench_unet import make_inputs
    from benchmarks.plain_unet import PlainUNet
    from pconv_kit import PConvUNet
    from pconv_kit.losses import InpaintingLoss

    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    torch.manual_seed(0)
    pconv = PConvUNet(layer_size=spec["layer_size"], base_channels=spec["base_channels"])
    model = pconv if spec["model"] == "pconv" else PlainUNet.from_pconv(pconv)
    del pconv
    model = model.to(device)
    image, mask = make_inputs(spec["batch"], spec["size"], device)
    small = 2 ** spec["layer_size"] if spec["layer_size"] > 6 else 64
    warm = make_inputs(max(2, spec["batch"]), small, device)
    if spec["kind"] == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        loss_fn = InpaintingLoss(None).to(device)

        def step(image: torch.Tensor = image, mask: torch.Tensor = mask) -> None:
            opt.zero_grad(set_to_none=False)
            out = model(image, mask)
            out = out[0] if isinstance(out, tuple) else out
            loss_fn(out, image, mask)["total"].backward()
            opt.step()

    else:
        model.eval()

        def step(image: torch.Tensor = image, mask: torch.Tensor = mask) -> None:
            with torch.inference_mode():
                model(image, mask)

    step(*warm)  # warm-up on a small input: libraries, kernels, gradients and Adam state in place
    del warm
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {"step_bytes": peak - before, "baseline_bytes": before, "method": "torch.cuda.max_memory_allocated"}
    if not sys.platform.startswith("linux"):
        raise RuntimeError("CPU peak memory is measured from /proc (Linux only)")
    reset = _reset_peak()
    before = _status_bytes("VmRSS")
    step()
    peak = _status_bytes("VmHWM")
    method = "VmHWM - VmRSS (peak reset)" if reset else "VmHWM - VmRSS (peak not reset: upper bound)"
    return {"step_bytes": max(0, peak - before), "baseline_bytes": before, "peak_rss_bytes": peak, "method": method}


def measure(spec: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run one measurement in a fresh process and return its result."""
    env = dict(os.environ)
    env.setdefault("MALLOC_MMAP_THRESHOLD_", "131072")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_memory", "--worker", json.dumps(spec)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker failed for {spec}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_fill(sizes: tuple[int, ...], threads: int = 2, device: str = "cpu", verbose: bool = True) -> list[dict[str, Any]]:
    """Peak memory of ``pconv-kit fill`` (``fill_folder``, built-in model) per image side, each in its own process."""
    rows = []
    for size in sizes:
        res = measure({"kind": "fill", "size": size, "threads": threads, "device": device})
        pixels = size * size
        row = {"size": size, "megapixels": pixels / 1e6, "fill_mib": res["step_bytes"] / 2**20,
               "bytes_per_pixel": res["step_bytes"] / pixels, "method": res["method"]}
        rows.append(row)
        if verbose:
            print(f"  fill {size}x{size}: {row['fill_mib']:.0f} MiB ({row['bytes_per_pixel']:.1f} bytes/pixel)",
                  flush=True)
    return rows


def run(
    train_sizes: tuple[int, ...] = (512,),
    infer_sizes: tuple[int, ...] = (512, 1024),
    layer_size: int = 8,
    base_channels: int = 64,
    train_batch: int = 1,
    infer_batch: int = 1,
    fill_sizes: tuple[int, ...] = (),
    threads: int = 2,
    device: str = "cpu",
    verbose: bool = True,
) -> dict[str, Any]:
    """Peak memory of each (kind, size) for both models, and of ``fill`` per image size, each in its own process."""
    rows = []
    cases = [("train", s, train_batch) for s in train_sizes] + [("inference", s, infer_batch) for s in infer_sizes]
    for kind, size, batch in cases:
        row: dict[str, Any] = {"what": kind, "size": size, "batch": batch}
        for model in ("plain", "pconv"):
            spec = {
                "kind": "train" if kind == "train" else "inference",
                "model": model,
                "size": size,
                "batch": batch,
                "layer_size": layer_size,
                "base_channels": base_channels,
                "threads": threads,
                "device": device,
            }
            res = measure(spec)
            row[f"{model}_mib"] = res["step_bytes"] / 2**20
            row[f"{model}_baseline_mib"] = res["baseline_bytes"] / 2**20
            row["method"] = res["method"]
        row["ratio"] = row["pconv_mib"] / row["plain_mib"] if row["plain_mib"] else None
        rows.append(row)
        if verbose:
            print(
                f"  {kind} @{size} B{batch}: plain {row['plain_mib']:.0f} MiB, pconv {row['pconv_mib']:.0f} MiB "
                f"(x{row['ratio']:.2f}) on top of the baseline",
                flush=True,
            )
    fill_rows = run_fill(fill_sizes, threads=threads, device=device, verbose=verbose) if fill_sizes else []
    return {"layer_size": layer_size, "base_channels": base_channels, "rows": rows, "fill_rows": fill_rows}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: python -m benchmarks.bench_memory --worker JSON (run by benchmarks.run)")
