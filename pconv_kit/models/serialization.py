"""Saving and loading :class:`~pconv_kit.models.PConvUNet` weights as safetensors (no pickles).

A saved model is one ``.safetensors`` file holding the state dict, with the architecture (``model.config``)
as JSON under the metadata key ``"pconv_kit.config"``, plus the same JSON in ``<file>.json`` beside it
(for people and tools that do not read safetensors metadata). Loading needs only the ``.safetensors`` file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from pconv_kit.errors import InputValueError, WeightsNotFoundError
from pconv_kit.models.unet import PConvUNet
from pconv_kit.utils.files import atomic_write

__all__ = [
    "save_model", "read_weights", "build_model", "read_model_config", "check_model_config", "resolve_weights_path",
    "CONFIG_KEY", "CONFIG_LIMITS",
]

CONFIG_KEY = "pconv_kit.config"
FORMAT_KEY = "pconv_kit.format"
FORMAT = "pconv-kit/PConvUNet/1"
RUN_DIR_CANDIDATES = ("best.safetensors", "last.safetensors")


def save_model(model: PConvUNet, path: str | os.PathLike[str], metadata: dict[str, str] | None = None) -> None:
    """Write ``model``'s weights and architecture to ``path`` (``.safetensors``) and ``<path>.json``.

    Both files are written atomically, so an interrupted save never leaves a corrupt file.

    Args:
        model: the model to save (its buffers and parameters are copied to the CPU).
        path: destination file, conventionally ending in ``.safetensors``.
        metadata: extra string metadata stored in the safetensors header (e.g. ``{"step": "1000"}``).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> save_model(PConvUNet(layer_size=3, base_channels=4), path)
        >>> from pconv_kit import load_model
        >>> load_model(path).config["layer_size"]
        3
    """
    path = Path(path)
    config_json = json.dumps(model.config, sort_keys=True)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta.update({CONFIG_KEY: config_json, FORMAT_KEY: FORMAT})
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    sidecar = path.with_name(path.name + ".json")
    with atomic_write(sidecar) as tmp:
        extra = {k: v for k, v in meta.items() if k not in (CONFIG_KEY, FORMAT_KEY)}
        tmp.write_text(json.dumps({"format": FORMAT, "config": model.config, "metadata": extra}, indent=2) + "\n")


def resolve_weights_path(path: str | os.PathLike[str]) -> Path:
    """Return the ``.safetensors`` file for ``path``: the file itself, or a run directory's best/last file."""
    path = Path(path).expanduser()
    if path.is_dir():
        for name in RUN_DIR_CANDIDATES:
            if (path / name).is_file():
                return path / name
        raise WeightsNotFoundError(
            f"{path} is a directory without {' or '.join(RUN_DIR_CANDIDATES)}; pass a .safetensors file or a "
            "run directory written by `pconv-kit train`"
        )
    if not path.is_file():
        raise WeightsNotFoundError(f"model weights not found: {path}")
    return path


# Upper bounds of the integer config values a file may ask for: ten times the paper's model and beyond. A
# crafted file must not make the loader build a model of gigabytes before its tensors are looked at.
CONFIG_LIMITS = {"in_channels": 64, "out_channels": 64, "layer_size": 12, "base_channels": 4096, "refine_channels": 1024}


def _refuse_pickle(path: Path) -> None:
    """A PyTorch checkpoint (zip archive or bare pickle) given where a safetensors file is expected."""
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PK\x03\x04" or head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
        raise InputValueError(
            f"{path} is a PyTorch pickle checkpoint (torch.save), not a safetensors file; pconv-kit does not load "
            "pickles, which can run code. Convert it once with `pconv-kit convert` (it reads the tensors only)"
        )


def check_model_config(config: Any, where: str | os.PathLike[str] = "config") -> dict[str, Any]:
    """Check a stored :attr:`PConvUNet.config` before anything is built from it; returns it.

    Raises:
        InputValueError: not a JSON object, or an integer value of the wrong type or beyond
            :data:`CONFIG_LIMITS` (unknown keys and smaller errors are left to :meth:`PConvUNet.from_config`).
    """
    if not isinstance(config, dict):
        raise InputValueError(f"{where}: the model config must be a JSON object; got {type(config).__name__}")
    for key, top in CONFIG_LIMITS.items():
        value = config.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise InputValueError(
                f"{where}: model config {key}={value!r} is out of range (an integer from 0 to {top}); the file is "
                "damaged or not a pconv-kit model"
            )
    return config


def read_model_config(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Return ``(config, metadata)`` stored in a saved model, without loading the tensors.

    Raises:
        WeightsNotFoundError: no such file.
        InputValueError: a pickle, not a safetensors file, or a config that is not valid JSON or out of range.
    """
    path = resolve_weights_path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        # only a file that safetensors cannot read is looked at as a pickle: a safetensors header length can
        # begin with the same bytes as a pickle
        _refuse_pickle(path)
        raise InputValueError(f"{path} is not a readable safetensors file: {exc}") from exc
    if CONFIG_KEY in metadata:
        text, where = metadata[CONFIG_KEY], f"{path} (metadata '{CONFIG_KEY}')"
    else:
        sidecar = path.with_name(path.name + ".json")
        if not sidecar.is_file():
            raise InputValueError(
                f"{path} has no '{CONFIG_KEY}' metadata and no {sidecar.name} beside it; cannot tell the "
                "architecture (was it saved with pconv_kit.models.save_model?)"
            )
        text, where = sidecar.read_text(encoding="utf-8", errors="replace"), str(sidecar)
    try:
        config = json.loads(text)
        if CONFIG_KEY not in metadata:  # the sidecar holds {"format", "config", "metadata"}
            config = config["config"]
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise InputValueError(f"{where}: the model config is not valid JSON ({exc})") from exc
    return check_model_config(config, where), metadata


def _check_tensors(path: Path, config: dict[str, Any]) -> None:
    """Compare the file's tensor names and shapes (header only) with those of ``config``'s model (meta device)."""
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in PConvUNet.from_config(config).state_dict().items()}
    except (TypeError, ValueError) as exc:
        raise InputValueError(f"{path}: cannot build a model from the stored config {config}: {exc}") from exc
    with safe_open(str(path), framework="pt") as fh:
        stored = {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    missing, unexpected = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    if missing or unexpected or wrong:
        detail = "; ".join(
            part
            for part in (
                f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}" if missing else "",
                f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}" if unexpected else "",
                ", ".join(f"{k} is {stored[k]}, expected {expected[k]}" for k in wrong[:3]) if wrong else "",
            )
            if part
        )
        raise InputValueError(f"weights in {path} do not match the stored architecture {config}: {detail}")


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The checked ``(config, state_dict)`` of a model file saved by :func:`save_model`, on the CPU.

    This is the file-reading half of :func:`pconv_kit.load_model`, which resolves names and run directories,
    caches what this returns and builds the model.

    Args:
        path: a ``.safetensors`` file written by :func:`save_model` or ``pconv-kit train``.

    Raises:
        WeightsNotFoundError: no such file.
        InputValueError: a pickle or not a pconv-kit safetensors file, a config that is not valid JSON or out of
            range, tensors whose names or shapes do not fit the config (checked from the header, before any
            allocation), or weights that are not finite.
    """
    path = resolve_weights_path(path)
    config, _ = read_model_config(path)
    _check_tensors(path, config)  # names and shapes from the header, before anything is allocated
    state = load_file(str(path), device="cpu")
    bad = sorted(k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all()))
    if bad:
        raise InputValueError(
            f"weights in {path} hold NaN or infinite values ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); "
            "a model like that fills holes with garbage: use an earlier checkpoint"
        )
    return config, state


def build_model(
    config: dict[str, Any], state: dict[str, torch.Tensor], device: str | torch.device = "cpu", where: object = ""
) -> PConvUNet:
    """A new :class:`PConvUNet` of ``config`` holding a copy of ``state``, in eval mode on ``device``.

    Raises:
        InputValueError: ``state`` does not fit ``config`` (``where`` names the file in the message).
    """
    model = PConvUNet.from_config(config).to(device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputValueError(f"weights in {where} do not match the stored architecture {config}: {exc}") from exc
    return model.eval()
