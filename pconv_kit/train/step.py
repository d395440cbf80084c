"""One optimisation step and the window of metrics averaged between two log lines.

:func:`train_step` is the paper's step: ``PConvUNet(image * mask, mask)`` under autocast, the inpainting loss,
backward through the gradient scaler, gradient-norm clipping, and an Adam update that is skipped when the
loss or the gradients are not finite. :class:`MetricWindow` sums the loss terms of the steps since the last
log line and times them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["TrainingParts", "StepResult", "train_step", "MetricWindow"]


@dataclass
class TrainingParts:
    """What a training step uses.

    Attributes:
        model: the :class:`~pconv_kit.models.PConvUNet` being trained (its weights are saved).
        net: what the step calls: ``model``, or its DistributedDataParallel wrapper.
        criterion: the :class:`~pconv_kit.losses.InpaintingLoss`; returns a dict of terms with ``"total"``.
        optimizer: Adam over ``model``'s parameters.
        scaler: a gradient scaler (``torch.amp.GradScaler``), enabled only for float16 autocast.
        amp_dtype: the autocast dtype (``torch.bfloat16``, ``torch.float16``) or ``None`` for float32.
        device_type: ``"cuda"`` or ``"cpu"`` (the autocast device).
        params: ``model``'s parameters, whose gradient norm is clipped.
    """

    model: nn.Module
    net: nn.Module
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any
    amp_dtype: torch.dtype | None
    device_type: str
    params: list[nn.Parameter]

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast to ``amp_dtype`` on ``device_type`` (a null context without AMP)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device_type, dtype=self.amp_dtype)


@dataclass
class StepResult:
    """What one :func:`train_step` did.

    Attributes:
        terms: the loss terms (scalar tensors, ``"total"`` among them), not detached.
        grad_norm: total gradient norm before clipping (scalar tensor), ``None`` without clipping.
        skipped: the update was skipped for a non-finite loss or gradient norm (only detected without a
            gradient scaler; an enabled scaler skips such updates itself and adjusts its scale).
    """

    terms: dict[str, torch.Tensor]
    grad_norm: torch.Tensor | None
    skipped: bool


def train_step(parts: TrainingParts, image: torch.Tensor, mask: torch.Tensor, grad_clip: float) -> StepResult:
    """Forward, loss, backward, clipping and (unless non-finite) an optimizer step.

    With bfloat16 autocast the loss also runs under autocast on the bfloat16 output; otherwise the loss gets the
    output in float32.

    Args:
        parts: model, loss, optimizer and scaler.
        image: ``(B, 3, H, W)`` float in ``[0, 1]`` on the model's device.
        mask: ``(B, 1, H, W)``, 1 = valid, 0 = hole.
        grad_clip: clip the gradients' total norm to this (``0``: no clipping).

    Returns:
        A :class:`StepResult`.

    Example:
        >>> from pconv_kit.train.build import grad_scaler
        >>> class Criterion(nn.Module):
        ...     def forward(self, out, image, mask):
        ...         return {"total": ((out - image) ** 2).mean()}
        >>> class Net(nn.Linear):
        ...     def forward(self, x, m):
        ...         return super().forward(x), m
        >>> net = Net(4, 4)
        >>> parts = TrainingParts(net, net, Criterion(), torch.optim.SGD(net.parameters(), lr=0.1),
        ...                       grad_scaler(torch.device("cpu"), enabled=False), None, "cpu", list(net.parameters()))
        >>> r = train_step(parts, torch.rand(2, 4), torch.ones(2, 4), grad_clip=1.0)
        >>> sorted(r.terms), r.grad_norm is not None, r.skipped
        (['total'], True, False)
    """
    bf16 = parts.amp_dtype == torch.bfloat16
    with parts.autocast():
        output, _ = parts.net(image * mask, mask)
    with parts.autocast() if bf16 else contextlib.nullcontext():
        terms = parts.criterion(output if bf16 else output.float(), image, mask)
    loss = terms["total"]
    parts.optimizer.zero_grad(set_to_none=True)
    parts.scaler.scale(loss).backward()
    grad_norm = None
    if grad_clip > 0:
        parts.scaler.unscale_(parts.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(parts.params, grad_clip)
    skipped = False
    if parts.scaler.is_enabled():
        parts.scaler.step(parts.optimizer)  # skips the update on inf/NaN gradients
        parts.scaler.update()
    elif bool(torch.isfinite(grad_norm if grad_norm is not None else loss.detach())):
        parts.optimizer.step()
    else:
        skipped = True
    return StepResult(terms, grad_norm, skipped)


class MetricWindow:
    """Sums of the loss terms (and gradient norm) over the steps since the last log line, and their time.

    Time spent on validation and checkpoints inside the window is :meth:`exclude`-d from the rate.

    Args:
        clock: seconds as a float (default :func:`time.perf_counter`).

    Example:
        >>> w = MetricWindow()
        >>> w.add({"total": torch.tensor(1.0)}, grad_norm=torch.tensor(4.0))
        >>> w.add({"total": torch.tensor(3.0)}, grad_norm=torch.tensor(2.0))
        >>> w.means()
        {'grad_norm': 3.0, 'total': 2.0}
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.excluded_s = 0.0
        self.start = clock()

    def add(self, terms: dict[str, torch.Tensor], grad_norm: torch.Tensor | None = None) -> None:
        """Add one step's loss terms (detached, as float32) and gradient norm."""
        self.steps += 1
        for k, v in terms.items():
            v = v.detach().float()
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        if grad_norm is not None:
            g = grad_norm.detach().float()
            self.sums["grad_norm"] = self.sums["grad_norm"] + g if "grad_norm" in self.sums else g

    def exclude(self, seconds: float) -> None:
        """Leave ``seconds`` (validation, checkpoints) out of the window's training time."""
        self.excluded_s += seconds

    def means(self, reduce: Callable[[torch.Tensor], torch.Tensor] = lambda t: t) -> dict[str, float]:
        """Mean of every summed value over the window's steps, by name (sorted).

        Args:
            reduce: applied to the ``(K,)`` tensor of means before it is read, e.g. the mean over processes.
        """
        keys = sorted(self.sums)
        values = reduce(torch.stack([self.sums[k] for k in keys]) / self.steps).cpu().tolist()
        return {k: float(v) for k, v in zip(keys, values)}

    def rate(self, now: float) -> float:
        """Steps per second of training (excluded time left out) from the window's start to ``now``."""
        return self.steps / max(1e-9, now - self.start - self.excluded_s)

    def reset(self, now: float) -> None:
        """Start a new window at ``now``."""
        self.sums, self.steps, self.excluded_s, self.start = {}, 0, 0.0, now
