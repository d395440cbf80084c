"""Whether a graph capture (``torch.compile``, ``torch.export``/ONNX export, TorchScript) is running the code.

Code that reads tensor values (a range check on a mask, a Python ``if`` on a tensor) breaks a captured graph,
so the checks that do so are skipped while one is being made. This is the one place that asks.
"""

from __future__ import annotations

import torch

__all__ = ["capturing_graph"]


def capturing_graph() -> bool:
    """True while ``torch.compile``, ``torch.export``, ONNX export or TorchScript tracing/scripting runs the code.

    Example:
        >>> capturing_graph()
        False
    """
    return bool(
        torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.jit.is_scripting()
    )
