"""Convert partial-convolution U-Net checkpoints of other projects into pconv-kit models (safetensors).

Supported sources (``source=``):

* ``"naoto"``: naoto0804/pytorch-inpainting-with-partial-conv ``.pth`` (``enc_1.conv.input_conv.weight``, ...).
  Exact.
* ``"mmagic"``: OpenMMLab mmagic / mmediting ``PConvEncoderDecoder`` ``.pth`` (``generator.encoder.enc1...``),
  e.g. the published ``pconv_256x256_stage2_4x2_places_*.pth``. Exact (up to a relative 1e-8 from the
  epsilon in the source's division); BGR channel order is converted to RGB.
* ``"keras"``: MathiasGruber/PConv-Keras ``.h5`` (``p_conv2d_N``, ``EncBN*``, ``outputs_img``; needs h5py,
  ``pip install "pconv-kit[keras]"``). Approximate: its output layers (LeakyReLU, 1x1 convolution, sigmoid)
  do not exist in PConvUNet; see :mod:`pconv_kit.convert.keras`.

PyTorch files are read with ``torch.load(..., weights_only=True)`` only (see
:func:`pconv_kit.convert._torchfile.load_torch_file`); nothing in a checkpoint is ever executed.

Example:
    >>> import tempfile, pathlib, torch
    >>> from pconv_kit.models import load_model
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> # a (randomly initialised) checkpoint in naoto0804's layout, 4 layers
    >>> state = {}
    >>> chans, kernels = [3, 64, 128, 256, 512], [7, 5, 5, 3]
    >>> for i in range(4):
    ...     shape = (chans[i + 1], chans[i], kernels[i], kernels[i])
    ...     state[f"enc_{i + 1}.conv.input_conv.weight"] = torch.randn(shape) * 0.01
    ...     state[f"enc_{i + 1}.conv.mask_conv.weight"] = torch.ones(shape)
    ...     if i > 0:
    ...         state.update({f"enc_{i + 1}.bn.{k}": torch.ones(chans[i + 1]) for k in ("weight", "running_var")})
    ...         state.update({f"enc_{i + 1}.bn.{k}": torch.zeros(chans[i + 1]) for k in ("bias", "running_mean")})
    >>> for i in range(4, 0, -1):
    ...     c_in, c_out = chans[i] + chans[i - 1], chans[i - 1]
    ...     shape = (c_out, c_in, 3, 3)
    ...     state[f"dec_{i}.conv.input_conv.weight"] = torch.randn(shape) * 0.01
    ...     state[f"dec_{i}.conv.mask_conv.weight"] = torch.ones(shape)
    ...     if i > 1:
    ...         state.update({f"dec_{i}.bn.{k}": torch.ones(c_out) for k in ("weight", "running_var")})
    ...         state.update({f"dec_{i}.bn.{k}": torch.zeros(c_out) for k in ("bias", "running_mean")})
    >>> state["dec_1.conv.input_conv.bias"] = torch.zeros(3)
    >>> torch.save({"n_iter": 10, "model": state}, d / "10.pth")
    >>> detect_format(d / "10.pth")
    'naoto'
    >>> report = convert(d / "10.pth", d / "converted.safetensors")
    >>> report.source, report.exact, report.config["layer_size"]
    ('naoto', True, 4)
    >>> load_model(d / "converted.safetensors").required_multiple
    16
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pconv_kit.convert import keras as _keras
from pconv_kit.convert import mmagic as _mmagic
from pconv_kit.convert import naoto as _naoto
from pconv_kit.convert._torchfile import OpaqueObject, find_state_dict, load_torch_file
from pconv_kit.errors import InputValueError, WeightsNotFoundError
from pconv_kit.models import PConvUNet, save_model
from pconv_kit.models.serialization import CONFIG_KEY

__all__ = [
    "SOURCES",
    "ConversionReport",
    "ConversionWarning",
    "UnknownFormatError",
    "detect_format",
    "convert_checkpoint",
    "convert",
    "load_torch_file",
    "OpaqueObject",
]

SOURCES = ("naoto", "mmagic", "keras")
"""Checkpoint formats :func:`convert` reads."""

METADATA_PREFIX = "pconv_kit.convert."


class ConversionWarning(UserWarning):
    """The converted model does not compute exactly what the source model computes (the message says how)."""


class UnknownFormatError(InputValueError):
    """The file is none of the formats in :data:`SOURCES`; the message says what was found in it."""


@dataclass(frozen=True)
class ConversionReport:
    """What a conversion did.

    Attributes:
        source: the source format (one of :data:`SOURCES`).
        source_path: the file that was read.
        source_sha256: SHA-256 of that file.
        config: the converted model's ``PConvUNet.config``.
        differences: how the converted model differs from the source model (empty when exact).
        ignored: checkpoint keys (or Keras layers) that were not used, e.g. an OpenMMLab model's loss network.
    """

    source: str
    source_path: str
    source_sha256: str
    config: dict[str, Any]
    differences: tuple[str, ...]
    ignored: tuple[str, ...]

    @property
    def exact(self) -> bool:
        """Whether the converted model computes the same function as the source (eval mode, binary masks)."""
        return not self.differences

    def metadata(self) -> dict[str, str]:
        """String metadata stored in the converted ``.safetensors`` file (keys ``pconv_kit.convert.*``)."""
        return {
            f"{METADATA_PREFIX}source": self.source,
            f"{METADATA_PREFIX}source_file": Path(self.source_path).name,
            f"{METADATA_PREFIX}source_sha256": self.source_sha256,
            f"{METADATA_PREFIX}exact": "true" if self.exact else "false",
            f"{METADATA_PREFIX}differences": json.dumps(list(self.differences)),
        }


def _sha256(path: Path) -> str:
    from pconv_kit.utils.download import sha256_file

    return sha256_file(path)


def _read_tensors(path: Path) -> tuple[str | None, Any]:
    """``(format, payload)``: ``("keras", None)``, ``("pconv-kit", None)`` or ``(None, state_dict)``."""
    if not path.exists():
        raise WeightsNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise InputValueError(f"{path} is a directory; pass a checkpoint file (.pth, .pt, .ckpt, .h5, .safetensors)")
    if _keras.is_keras_file(path):
        return "keras", None
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), framework="pt") as fh:
                if CONFIG_KEY in (fh.metadata() or {}):
                    return "pconv-kit", None
            return None, load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputValueError(f"{path} is not a readable safetensors file: {exc}") from None
    return None, find_state_dict(load_torch_file(path))


def _describe(state: dict[str, torch.Tensor]) -> str:
    keys = sorted(state)
    shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} keys)" if len(keys) > 8 else "")
    return f"found {len(keys)} tensors: {shown}"


def _format_of(path: Path) -> tuple[str, Any]:
    kind, state = _read_tensors(path)
    if kind is not None:
        return kind, state
    if _naoto.matches(state):
        return "naoto", state
    if _mmagic.matches(state):
        return "mmagic", state
    raise UnknownFormatError(
        f"{path} is in none of the formats pconv_kit.convert reads ({', '.join(SOURCES)}): {_describe(state)}. "
        "Expected keys like 'enc_1.conv.input_conv.weight' (naoto0804), 'generator.encoder.enc1.conv.weight' "
        "(mmagic) or a Keras .h5 file with p_conv2d_N layers"
    )


def detect_format(src: str | os.PathLike[str]) -> str:
    """Tell which format a checkpoint file is in.

    Args:
        src: a ``.pth``/``.pt``/``.ckpt`` (PyTorch), ``.h5`` (Keras) or ``.safetensors`` file.

    Returns:
        One of :data:`SOURCES`, or ``"pconv-kit"`` for a model already saved by pconv-kit.

    Raises:
        UnknownFormatError: none of those; the message lists the keys found.
        WeightsNotFoundError: no such file.
    """
    return _format_of(Path(src))[0]


def convert_checkpoint(
    src: str | os.PathLike[str],
    source: str = "auto",
    *,
    layer_size: int | None = None,
    channel_order: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[PConvUNet, ConversionReport]:
    """Read a checkpoint of another project into a :class:`~pconv_kit.models.PConvUNet` (in memory).

    Args:
        src: the checkpoint file.
        source: ``"auto"`` (see :func:`detect_format`) or one of :data:`SOURCES`.
        layer_size: naoto/mmagic: number of encoder layers to use (default: all found).
        channel_order: mmagic only: channel order the network was trained on, ``"bgr"`` (default: the
            published models were trained on OpenCV-loaded images) or ``"rgb"``.
        mean, std: naoto/mmagic: override the input normalisation (on ``[0, 1]`` images, RGB order).
        dtype: dtype of the returned model.

    Returns:
        ``(model, report)``; the model is in eval mode. When ``report.differences`` is not empty, a
        :class:`ConversionWarning` has been issued.

    Raises:
        UnknownFormatError: ``source="auto"`` and the format is not recognised.
        InputValueError: the checkpoint does not fit the named format or PConvUNet (the message says which
            layer and shape), or an option does not apply to the format.
        WeightsNotFoundError: ``src`` does not exist.
    """
    path = Path(src).expanduser()
    if source != "auto" and source not in SOURCES:
        raise InputValueError(f"source must be 'auto' or one of {', '.join(SOURCES)}; got {source!r}")
    kind, state = _format_of(path) if source == "auto" else _read_tensors(path)
    if kind == "pconv-kit":
        raise InputValueError(f"{path} is already a pconv-kit model; load it with pconv_kit.load_model")
    if source == "auto":
        source = kind
    elif source == "keras" and kind != "keras":
        raise InputValueError(f"{path} is not an HDF5 (.h5) file, so not a PConv-Keras checkpoint")
    elif source != "keras" and kind == "keras":
        raise InputValueError(f"{path} is an HDF5 (Keras) file; use source='keras'")
    elif source == "naoto" and not _naoto.matches(state):
        raise InputValueError(f"{path} does not have naoto0804's key layout (enc_1.conv.input_conv.weight): {_describe(state)}")
    elif source == "mmagic" and not _mmagic.matches(state):
        raise InputValueError(f"{path} does not have mmagic's key layout (generator.encoder.enc1.conv.weight): {_describe(state)}")

    if channel_order is not None and source != "mmagic":
        raise InputValueError(f"channel_order applies to mmagic checkpoints only, not to {source}")
    if source == "keras":
        if layer_size is not None or mean is not None or std is not None:
            raise InputValueError(
                "layer_size, mean and std do not apply to Keras checkpoints (the architecture is read from the "
                "file and the network takes [0, 1] images without normalisation)"
            )
        model, differences, ignored = _keras.convert_h5(path, dtype=dtype)
    elif source == "naoto":
        model, differences, ignored = _naoto.convert_state_dict(
            state, layer_size=layer_size, mean=mean, std=std, dtype=dtype
        )
    else:
        model, differences, ignored = _mmagic.convert_state_dict(
            state, layer_size=layer_size, channel_order=channel_order or "bgr", mean=mean, std=std, dtype=dtype
        )
    report = ConversionReport(
        source=source,
        source_path=str(path),
        source_sha256=_sha256(path),
        config=model.config,
        differences=tuple(differences),
        ignored=tuple(ignored),
    )
    if differences:
        warnings.warn(
            ConversionWarning(
                f"the model converted from {path.name} ({source}) is not exact: " + "; ".join(differences)
            ),
            stacklevel=2,
        )
    return model, report


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    source: str = "auto",
    *,
    overwrite: bool = False,
    layer_size: int | None = None,
    channel_order: str | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> ConversionReport:
    """Convert the checkpoint ``src`` and save it as a pconv-kit model at ``dst`` (``.safetensors``).

    ``dst`` (and ``dst.json`` beside it) are written atomically with :func:`pconv_kit.models.save_model`;
    the safetensors metadata records the source format, file name, SHA-256 and the differences
    (keys ``pconv_kit.convert.*``). Options as in :func:`convert_checkpoint`.

    Returns:
        The :class:`ConversionReport`.

    Raises:
        InputValueError: ``dst`` exists and ``overwrite`` is False, ``dst`` does not end in
            ``.safetensors``, or the conversion fails (see :func:`convert_checkpoint`).
    """
    src_path, dst_path = Path(src).expanduser(), Path(dst).expanduser()
    if dst_path.suffix != ".safetensors":
        raise InputValueError(f"the destination must be a .safetensors file; got {dst_path}")
    if dst_path.exists() and not overwrite:
        raise InputValueError(f"{dst_path} already exists; pass overwrite=True to replace it")
    if dst_path.exists() and dst_path.is_dir():
        raise InputValueError(f"{dst_path} is a directory; pass a .safetensors file name")
    if src_path.exists() and dst_path.exists() and src_path.resolve() == dst_path.resolve():
        raise InputValueError("source and destination are the same file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConversionWarning)  # re-issued below, pointing at the caller
        model, report = convert_checkpoint(
            src_path, source, layer_size=layer_size, channel_order=channel_order, mean=mean, std=std
        )
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, dst_path, metadata=report.metadata())
    if report.differences:
        warnings.warn(
            ConversionWarning(
                f"the model converted from {src_path.name} ({report.source}) is not exact: "
                + "; ".join(report.differences)
            ),
            stacklevel=2,
        )
    return report
