"""Process-wide settings while the training loop runs: Ctrl-C / SIGTERM handling and the cuDNN flags."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

import torch

__all__ = ["stop_on_signals", "cudnn_flags"]


@contextlib.contextmanager
def stop_on_signals(enabled: bool) -> Iterator[threading.Event]:
    """While active, SIGINT/SIGTERM set the yielded event (a second SIGINT raises KeyboardInterrupt)."""
    event = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield event
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: Any) -> None:
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # pragma: no cover - not allowed here
            pass
    try:
        yield event
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def cudnn_flags(device: torch.device, deterministic: bool) -> Iterator[None]:
    """On CUDA, cuDNN autotuning (or determinism) while active; the previous flags are restored after."""
    old_flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = old_flags
