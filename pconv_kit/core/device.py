"""One rule for turning a device argument into a ``torch.device``, for inference and training alike."""

from __future__ import annotations

import os

import torch

from pconv_kit.errors import InputValueError

__all__ = ["resolve_device"]


def resolve_device(
    device: str | torch.device | None = "auto",
    model: torch.nn.Module | None = None,
    *,
    local_rank: int | None = None,
) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, a ``torch.device`` or ``None`` into a device.

    ``None`` means the device of ``model`` when one is given, else ``"auto"``; ``"auto"`` is CUDA when available,
    else the CPU. A CUDA device without an index is ``cuda:LOCAL_RANK``: ``local_rank``, else the ``LOCAL_RANK``
    that ``torchrun`` sets, else 0.

    Raises:
        InputValueError: an unknown device name, CUDA asked for where PyTorch sees none, or a local rank beyond
            the number of CUDA devices.

    Example:
        >>> resolve_device("cpu"), resolve_device(None, torch.nn.Linear(1, 1))
        (device(type='cpu'), device(type='cpu'))
    """
    if device is None and model is not None:
        try:
            return next(model.parameters()).device
        except StopIteration:
            pass
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}", param="device") from exc
    if dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        raise InputValueError(
            "device 'cuda' was requested but PyTorch sees no CUDA device (torch.cuda.is_available() is False); use "
            "'cpu' or 'auto'", param="device",
        )
    if dev.index is not None:
        return dev
    rank = int(os.environ.get("LOCAL_RANK", "0") or 0) if local_rank is None else local_rank
    count = torch.cuda.device_count()
    if rank >= count:
        raise InputValueError(f"LOCAL_RANK is {rank} but this machine has only {count} CUDA device(s)", param="device")
    return torch.device("cuda", rank)
