"""Validation during training: the held-out images with fixed masks, their metrics, the sample grids and the
best PSNR so far."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from pconv_kit.train.checkpoint import SAMPLES_DIR
from pconv_kit.train.data import VAL_SEED, center_crop, sample_rng

__all__ = ["evaluate", "make_grid", "Validation"]

VAL_MASK_STREAM = 3
"""Random stream (see :func:`~pconv_kit.train.data.sample_rng`) of the validation masks."""


def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    masks: torch.Tensor,
    batch_size: int = 8,
    autocast: contextlib.AbstractContextManager[Any] | None = None,
) -> tuple[dict[str, float], torch.Tensor]:
    """Inpaint ``images`` under ``masks`` in eval mode and measure the composite against the truth.

    Args:
        model: a :class:`~pconv_kit.models.PConvUNet` (its training flag is restored).
        images: ``(N, 3, H, W)`` in ``[0, 1]``, on the model's device.
        masks: ``(N, 1, H, W)``, 1 = valid, 0 = hole.
        batch_size: images per forward pass.
        autocast: optional autocast context for the forward passes.

    Returns:
        ``(metrics, output)``: ``metrics`` has ``psnr`` (dB, mean over images, each capped at 100) and ``ssim``
        (kornia, 11x11 Gaussian window) of the clamped composite, both from
        :func:`pconv_kit.evaluate.psnr_ssim`, and ``hole_l1`` (mean absolute error per
        hole pixel and channel); ``output`` is the raw network output ``(N, 3, H, W)`` in float32.

    Example:
        >>> from pconv_kit.models import PConvUNet
        >>> x, m = torch.rand(2, 3, 32, 32), torch.ones(2, 1, 32, 32)
        >>> m[:, :, 8:20, 8:20] = 0
        >>> metrics, out = evaluate(PConvUNet(layer_size=3, base_channels=4), x, m)
        >>> sorted(metrics), out.shape
        (['hole_l1', 'psnr', 'ssim'], torch.Size([2, 3, 32, 32]))
    """
    from pconv_kit.evaluate import psnr_ssim

    was_training = model.training
    model.eval()
    outs = []
    try:
        with torch.inference_mode(), (autocast or contextlib.nullcontext()):
            for i in range(0, images.shape[0], batch_size):
                x, m = images[i : i + batch_size], masks[i : i + batch_size]
                out, _ = model(x * m, m)
                outs.append(out.float())
    finally:
        model.train(was_training)
    output = torch.cat(outs)
    masks = masks.to(output.dtype)
    comp = (masks * images + (1 - masks) * output).clamp(0, 1)
    psnr, ssim = psnr_ssim(comp, images)
    holes = (1 - masks).expand_as(images)
    hole_l1 = float((holes * (output.clamp(0, 1) - images).abs()).sum() / holes.sum().clamp_min(1))
    metrics = {"psnr": float(np.mean(psnr.tolist())), "ssim": float(ssim.mean()), "hole_l1": hole_l1}
    return metrics, output


def make_grid(images: torch.Tensor, masks: torch.Tensor, output: torch.Tensor, gap: int = 2) -> np.ndarray:
    """Rows of ``masked input (holes white) | output | composite | truth`` as an ``(H, W, 3)`` uint8 array.

    Args:
        images: ``(N, 3, H, W)`` truth in ``[0, 1]``.
        masks: ``(N, 1, H, W)``, 1 = valid, 0 = hole.
        output: ``(N, 3, H, W)`` network output (clamped to ``[0, 1]`` here).
        gap: white pixels between rows and columns.

    Example:
        >>> g = make_grid(torch.rand(2, 3, 8, 8), torch.ones(2, 1, 8, 8), torch.rand(2, 3, 8, 8))
        >>> g.shape, g.dtype
        ((18, 38, 3), dtype('uint8'))
    """
    images, masks, output = images.float().cpu(), masks.float().cpu(), output.float().cpu()
    masked = images * masks + (1 - masks)
    comp = masks * images + (1 - masks) * output
    n, _, h, w = images.shape
    grid = torch.ones(3, n * h + (n - 1) * gap, 4 * w + 3 * gap)
    for i in range(n):
        for j, col in enumerate((masked, output, comp, images)):
            y, x = i * (h + gap), j * (w + gap)
            grid[:, y : y + h, x : x + w] = col[i].clamp(0, 1)
    return (grid.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)


class Validation:
    """The validation set of a run and what validating on it found so far.

    Args:
        images: ``(N, 3, size, size)`` held-out crops in ``[0, 1]`` on the model's device, or ``None``: no
            validation (no held-out images, or a rank other than 0).
        masks: ``(N, 1, size, size)`` their fixed masks (``None`` with ``images``).
        run_dir: the run directory (grids go to ``run_dir/samples``).
        grid_rows: images per sample grid.
        best_psnr: best PSNR of the run so far (from its checkpoint), ``None`` if none.
        best_step: the step of ``best_psnr``.

    Attributes:
        last: the last validation record (``None`` before the first).
    """

    def __init__(
        self,
        images: torch.Tensor | None,
        masks: torch.Tensor | None,
        run_dir: Path,
        grid_rows: int,
        best_psnr: float | None = None,
        best_step: int | None = None,
    ) -> None:
        self.images = images
        self.masks = masks
        self.run_dir = run_dir
        self.grid_rows = grid_rows
        self.best_psnr = best_psnr
        self.best_step = best_step
        self.last: dict[str, Any] | None = None

    @staticmethod
    def prepare(
        crops: Sequence[np.ndarray], mask_source: Callable[[np.random.Generator], np.ndarray], size: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Centre crops of the held-out images and their masks (fixed by :data:`~pconv_kit.train.data.VAL_SEED`).

        Args:
            crops: ``(H, W, 3)`` held-out images as read.
            mask_source: the run's mask source (called with a generator, returns ``(size, size)`` 1 = valid).
            size: the crop side.
            device: where the tensors go.

        Returns:
            ``(images, masks)``: ``(N, 3, size, size)`` and ``(N, 1, size, size)`` float32 on ``device``.
        """
        imgs = [torch.from_numpy(center_crop(a, size).transpose(2, 0, 1).copy()) for a in crops]
        msks = [
            torch.from_numpy(np.asarray(mask_source(sample_rng(VAL_SEED, VAL_MASK_STREAM, i)), np.float32))[None]
            for i in range(len(imgs))
        ]
        return torch.stack(imgs).to(device), torch.stack(msks).to(device)

    def run(
        self, step: int, model: nn.Module, batch_size: int, autocast: contextlib.AbstractContextManager[Any]
    ) -> dict[str, Any] | None:
        """Validate ``model`` at ``step``: metrics, a sample grid, and whether it is the best so far.

        Returns:
            The record ``{"step", "split": "val", "psnr", "ssim", "hole_l1", "best"}``, or ``None`` without a
            validation set. When ``best`` is true, :attr:`best_psnr` and :attr:`best_step` are updated.
        """
        if self.images is None or self.masks is None:
            return None
        from pconv_kit.io import write_image

        metrics, output = evaluate(model, self.images, self.masks, batch_size=batch_size, autocast=autocast)
        rows = min(self.grid_rows, len(output))
        grid = make_grid(self.images[:rows], self.masks[:rows], output[:rows])
        (self.run_dir / SAMPLES_DIR).mkdir(exist_ok=True)
        write_image(self.run_dir / SAMPLES_DIR / f"step_{step:07d}.png", grid)
        best = self.best_psnr is None or metrics["psnr"] > self.best_psnr
        if best:
            self.best_psnr, self.best_step = metrics["psnr"], step
        self.last = {"step": step, "split": "val", **metrics, "best": best}
        return self.last
