"""What a run trains, built from its :class:`~pconv_kit.train.TrainConfig`: the model's size, the model (fresh,
from ``init_weights`` or from a checkpoint), the loss, Adam and the mixed-precision settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from pconv_kit.errors import ConfigError, VGGWeightsNotFoundError, WeightsNotFoundError
from pconv_kit.train.checkpoint import TrainingState
from pconv_kit.train.config import TrainConfig
from pconv_kit.train.distributed import DistContext
from pconv_kit.train.step import TrainingParts

if TYPE_CHECKING:
    from pconv_kit.models import PConvUNet

__all__ = [
    "DEFAULT_LAYER_SIZE",
    "next_multiple",
    "resolve_model_size",
    "perceptual_or_warn",
    "amp_dtype",
    "grad_scaler",
    "param_groups",
    "build_parts",
]

DEFAULT_LAYER_SIZE = 7
"""Depth of the paper's PConvUNet, used when ``size`` allows it."""


def next_multiple(n: int, m: int) -> int:
    """The smallest multiple of ``m`` that is ``>= n`` (at least ``m``).

    Example:
        >>> next_multiple(200, 128), next_multiple(0, 16)
        (256, 16)
    """
    return max(m, -(-n // m) * m)


def _two_adic(n: int) -> int:
    """How many times 2 divides ``n``."""
    k = 0
    while n % 2 == 0 and n > 0:
        n //= 2
        k += 1
    return k


def resolve_model_size(cfg: TrainConfig, resume: bool = False) -> TrainConfig:
    """Fill in ``layer_size``/``base_channels``/``refine_channels`` from ``init_weights`` or the defaults.

    Raises:
        ConfigError: the sizes contradict ``init_weights``, or ``size`` allows fewer than 4 layers.
    """
    if resume and cfg.layer_size is not None and cfg.base_channels is not None:
        # resolved when the run started (a run from before refine_channels existed had none)
        return cfg if cfg.refine_channels is not None else cfg.resolved(refine_channels=0)
    if cfg.init_weights is not None:
        return _size_from_weights(cfg)
    layer_size = cfg.layer_size
    if layer_size is None:
        layer_size = min(DEFAULT_LAYER_SIZE, _two_adic(cfg.size))
        if layer_size < 4:
            raise ConfigError(
                f"size {cfg.size} is divisible by 2 only {layer_size} time(s), which allows a PConvUNet of at most "
                f"{layer_size} layers, too shallow to fill holes; use a multiple of 128 for the default 7 layers "
                f"(e.g. size {next_multiple(cfg.size, 128)}), or of 16 with layer_size 4 (e.g. size "
                f"{next_multiple(cfg.size, 16)})",
                param="size",
            )
    return cfg.resolved(
        layer_size=layer_size, base_channels=cfg.base_channels or 64, refine_channels=cfg.refine_channels or 0
    )


def _size_from_weights(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the sizes of its ``init_weights`` (a refinement may be added to weights without one)."""
    from pconv_kit.models import read_model_config

    model_cfg, _ = read_model_config(cfg.init_weights)  # type: ignore[arg-type]
    changes: dict[str, Any] = {}
    for key in ("layer_size", "base_channels"):
        have = model_cfg.get(key)
        if getattr(cfg, key) is not None and getattr(cfg, key) != have:
            raise ConfigError(
                f"{key} is {getattr(cfg, key)} but init_weights {cfg.init_weights} has {key} = {have}; "
                f"leave {key} unset to take it from the weights",
                param=key,
            )
        changes[key] = have
    have = model_cfg.get("refine_channels", 0)
    if cfg.refine_channels is not None and cfg.refine_channels != have and have != 0:
        raise ConfigError(
            f"refine_channels is {cfg.refine_channels} but init_weights {cfg.init_weights} has refine_channels = "
            f"{have}; leave it unset to take it from the weights (only weights without a refinement can get one)",
            param="refine_channels",
        )
    changes["refine_channels"] = have if cfg.refine_channels is None else cfg.refine_channels
    return cfg.resolved(**changes)


def perceptual_or_warn(cfg: TrainConfig, warn: Callable[[str], None]) -> TrainConfig:
    """The preset asked for the perceptual terms: keep them if VGG16 weights can be found, else ``warn`` once."""
    from pconv_kit.losses.vgg import resolve_vgg16_weights

    try:
        resolve_vgg16_weights(None)
    except WeightsNotFoundError as exc:
        reason = str(exc).splitlines()[0]
        warn(
            f"perceptual and style terms off: no VGG16 ImageNet weights ({reason}); training with the pixel "
            "terms only. Give vgg_weights (a VGG16 weights file) to use them, or set perceptual to decide yourself"
        )
        return cfg.resolved(perceptual=False)
    return cfg


def _add_refinement(model: PConvUNet, refine_channels: int) -> PConvUNet:
    """``model`` with a new, zero-initialised refinement: the same function until the refinement is trained."""
    from pconv_kit.models import PConvUNet

    grown = PConvUNet.from_config({**model.config, "refine_channels": refine_channels}).train()
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("refine.") for key in missing):  # pragma: no cover - same architecture
        raise ConfigError(f"cannot add a refinement to these weights: missing {missing}, unexpected {unexpected}")
    return grown


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for the ``amp`` setting (``auto``, ``bf16``, ``fp16``, ``off``) on ``device``.

    Raises:
        ConfigError: ``fp16`` on a device other than CUDA.

    Example:
        >>> amp_dtype("auto", torch.device("cpu")), amp_dtype("bf16", torch.device("cpu"))
        (None, torch.bfloat16)
    """
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "auto":
            return None
        if amp == "fp16":
            raise ConfigError("amp = 'fp16' needs a CUDA device; use 'bf16' or 'off' on the CPU", param="amp")
        return torch.bfloat16
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def grad_scaler(device: torch.device, enabled: bool) -> Any:
    """A gradient scaler (only float16 needs one; a disabled scaler passes everything through)."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled and device.type == "cuda")  # PyTorch < 2.3


def param_groups(model: PConvUNet, cfg: TrainConfig) -> list[dict[str, Any]]:
    """One Adam group, or two when the refinement learns at ``refine_lr_scale`` times the stage's rate."""
    if model.refine is None or cfg.refine_lr_scale == 1.0:
        return [{"params": list(model.parameters())}]
    refine = {id(p) for p in model.refine.parameters()}
    return [
        {"params": [p for p in model.parameters() if id(p) not in refine]},
        {"params": list(model.refine.parameters()), "lr_scale": cfg.refine_lr_scale},
    ]


def _criterion(cfg: TrainConfig, feature_extractor: nn.Module | None) -> nn.Module:
    """The inpainting loss with ``cfg``'s weights (and a VGG16 feature extractor when ``perceptual``)."""
    from pconv_kit.losses import InpaintingLoss, VGG16Features

    extractor = feature_extractor
    if cfg.perceptual:
        if extractor is None:
            try:
                extractor = VGG16Features(weights=cfg.vgg_weights)
            except WeightsNotFoundError as exc:  # tell the VGG weights apart from init_weights
                raise VGGWeightsNotFoundError(str(exc)) from exc
    elif extractor is not None:
        raise ConfigError("a feature_extractor was given but perceptual is false")
    return InpaintingLoss(
        extractor,
        valid=cfg.loss_valid,
        hole=cfg.loss_hole,
        perceptual=cfg.loss_perceptual,
        style=cfg.loss_style,
        tv=cfg.loss_tv,
        ssim=cfg.loss_ssim,
        hole_mse=cfg.loss_hole_mse,
    )


def _model(cfg: TrainConfig, state: TrainingState | None) -> PConvUNet:
    """A fresh (seeded) PConvUNet, ``init_weights``, or the checkpoint's weights, in training mode."""
    from pconv_kit.models import PConvUNet, load_model

    torch.manual_seed(cfg.seed)  # type: ignore[arg-type]
    if cfg.init_weights is not None and state is None:
        model = load_model(cfg.init_weights).train()
        if cfg.refine_channels and not model.refine_channels:
            model = _add_refinement(model, cfg.refine_channels)
    else:
        model = PConvUNet(
            layer_size=cfg.layer_size,  # type: ignore[arg-type]
            base_channels=cfg.base_channels,  # type: ignore[arg-type]
            refine_channels=cfg.refine_channels or 0,
        )
    if state is not None:
        model.load_state_dict(state.model)
    model.freeze_encoder_bn = cfg.finetune
    return model


def build_parts(
    cfg: TrainConfig, ctx: DistContext, state: TrainingState | None, feature_extractor: nn.Module | None
) -> TrainingParts:
    """The loss, the model on ``ctx.device`` (wrapped in DDP when distributed), Adam and the gradient scaler.

    With ``state`` the model, optimizer and scaler continue from the checkpoint; the learning rate is always
    the stage's (``cfg.stage_lr`` times each group's ``lr_scale``).

    Raises:
        ConfigError: contradictory settings (``sync_bn`` on the CPU, a feature extractor without ``perceptual``).
        VGGWeightsNotFoundError: ``perceptual`` is on and no VGG16 weights are found.
    """
    device = ctx.device
    criterion = _criterion(cfg, feature_extractor).to(device)
    model = _model(cfg, state)
    if cfg.sync_bn and ctx.enabled:
        if device.type == "cpu":
            raise ConfigError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on the CPU)", param="sync_bn")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    model.train()
    net: nn.Module = model
    if ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # DDP averages gradients and, before every forward, copies rank 0's buffers (BatchNorm running
        # statistics) to the other ranks, so every rank trains the same model.
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(param_groups(model, cfg), lr=cfg.stage_lr)
    dtype = amp_dtype(cfg.amp, device)
    scaler = grad_scaler(device, enabled=dtype == torch.float16)
    if state is not None:
        optimizer.load_state_dict(state.optimizer)
        if scaler.is_enabled() and state.scaler:
            scaler.load_state_dict(state.scaler)
    for group in optimizer.param_groups:
        group["lr"] = cfg.stage_lr * group.get("lr_scale", 1.0)
    return TrainingParts(model, net, criterion, optimizer, scaler, dtype, device.type, list(model.parameters()))
