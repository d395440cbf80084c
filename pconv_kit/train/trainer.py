"""The training loop: :func:`train` runs (or resumes) a :class:`~pconv_kit.train.TrainConfig`.

What one step does (the paper's recipe, section 4 of Liu et al. 2018): a batch of random crops and masks,
``PConvUNet(image * mask, mask)``, :class:`~pconv_kit.losses.InpaintingLoss`, Adam with a constant learning
rate (2e-4; 5e-5 in the fine-tuning stage, where encoder BatchNorm is frozen), gradient-norm clipping,
automatic mixed precision on CUDA. Every ``log_every`` steps a line goes to ``metrics.jsonl``; every
``val_every`` steps the held-out images are inpainted (PSNR, SSIM, hole L1 and a PNG grid); every
``checkpoint_every`` steps, at the end and when stopped by Ctrl-C/SIGTERM, ``last.safetensors`` and
``training_state.pt`` are written atomically.

Under ``torchrun`` the same function trains with DistributedDataParallel; see :mod:`.distributed`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from pconv_kit.errors import (
    ConfigError,
    InputValueError,
    RunExistsError,
    VGGWeightsNotFoundError,
    WeightsNotFoundError,
)
from pconv_kit.train.checkpoint import (
    BEST_FILE,
    CONFIG_FILE,
    LAST_FILE,
    METRICS_FILE,
    SAMPLES_DIR,
    STATE_FILE,
    SUMMARY_FILE,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    run_files,
    save_training_state,
    state_dict_digest,
)
from pconv_kit.train.config import RESUME_CHANGEABLE, TrainConfig, load_config
from pconv_kit.train.data import (
    VAL_SEED,
    ImageFolderDataset,
    StepSampler,
    center_crop,
    collate,
    load_rgb,
    make_mask_source,
    sample_rng,
    scan_images,
    split_files,
    worker_init,
)
from pconv_kit.train.display import Reporter, make_reporter
from pconv_kit.train.distributed import DistContext, setup
from pconv_kit.utils.files import atomic_write, write_json

if TYPE_CHECKING:
    from pconv_kit.models import PConvUNet

__all__ = ["train", "resume_config", "TrainSummary", "evaluate", "make_grid"]

_VAL_MASK_STREAM = 3


@dataclass
class TrainSummary:
    """What :func:`train` did (also written to ``RUN_DIR/summary.json``).

    Attributes:
        run_dir: the run directory.
        start_step: step the run started (or resumed) from.
        final_step: last completed step.
        steps: the configured number of steps.
        elapsed_s: wall time of the training loop.
        it_per_s: steps per second of the training loop (validation and checkpoints excluded).
        images_per_s: ``it_per_s * batch_size``.
        interrupted: stopped early by Ctrl-C / SIGTERM (a checkpoint was written).
        last_checkpoint: ``last.safetensors`` (``None`` if no step was run).
        best_checkpoint: ``best.safetensors`` (``None`` without validation).
        best_psnr, best_step: best validation PSNR so far and its step.
        train_metrics: the last metrics line.
        val_metrics: the last validation line.
        world_size: number of processes.
        rank: this process's rank (0 in a single process).
        weights_digest: SHA-256 of this process's final weights (see ``state_dict_digest``).
        rank_digests: every rank's digest (all equal in a healthy distributed run).
        skipped_files: unreadable files that were skipped.
    """

    run_dir: Path
    start_step: int
    final_step: int
    steps: int
    elapsed_s: float = 0.0
    it_per_s: float = 0.0
    images_per_s: float = 0.0
    interrupted: bool = False
    last_checkpoint: Path | None = None
    best_checkpoint: Path | None = None
    best_psnr: float | None = None
    best_step: int | None = None
    train_metrics: dict[str, Any] = field(default_factory=dict)
    val_metrics: dict[str, Any] | None = None
    world_size: int = 1
    rank: int = 0
    weights_digest: str = ""
    rank_digests: list[str] = field(default_factory=list)
    skipped_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (paths as strings)."""
        out = dataclasses.asdict(self)
        for k, v in out.items():
            if isinstance(v, Path):
                out[k] = str(v)
        return out


# ------------------------------------------------------------------------------------------ helpers
DEFAULT_LAYER_SIZE = 7


def _next_multiple(n: int, m: int) -> int:
    return max(m, -(-n // m) * m)


def _two_adic(n: int) -> int:
    k = 0
    while n % 2 == 0 and n > 0:
        n //= 2
        k += 1
    return k


def resume_config(run_dir: str | os.PathLike[str], **changes: Any) -> TrainConfig:
    """The config of the run in ``run_dir`` with ``changes`` applied, ready for ``train(..., resume=True)``.

    Only keys in :data:`~pconv_kit.train.config.RESUME_CHANGEABLE` may change (``steps`` to go further,
    ``finetune=True`` to start the fine-tuning stage, logging intervals, workers, device, paths).

    Raises:
        ConfigError: no run there, or a change that would alter the maths of the run.

    Example:
        >>> # cfg = resume_config("runs/a", steps=200_000); train(cfg, resume=True)
    """
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        what = "does not exist" if not run_dir.exists() else f"holds no {CONFIG_FILE}"
        raise ConfigError(f"cannot resume {run_dir}: it {what} (expected a run directory written by pconv-kit train)")
    saved = load_config(run_dir)
    changes = {k.replace("-", "_"): v for k, v in changes.items()}
    cfg = TrainConfig.from_dict({**changes, "out": str(run_dir)}, base=saved)
    _check_resume_changes(saved, cfg)
    return cfg


def _check_resume_changes(saved: TrainConfig, cfg: TrainConfig) -> None:
    changed = [
        f"{k} ({getattr(saved, k)!r} -> {getattr(cfg, k)!r})"
        for k in TrainConfig.keys()
        if k not in RESUME_CHANGEABLE and getattr(saved, k) != getattr(cfg, k)
    ]
    if changed:
        raise ConfigError(
            "a resumed run must keep the settings that define its maths; changed: " + ", ".join(changed)
            + ". Start a new run from its weights instead (init_weights = OLD_RUN/last.safetensors)"
        )
    if saved.finetune and not cfg.finetune:
        raise ConfigError("this run is in the fine-tuning stage (finetune = true); it cannot be switched off")


def _resolve_model_size(cfg: TrainConfig, resume: bool = False) -> TrainConfig:
    """Fill in ``layer_size``/``base_channels``/``refine_channels`` from ``init_weights`` or the defaults."""
    if resume and cfg.layer_size is not None and cfg.base_channels is not None:
        # resolved when the run started (a run from before refine_channels existed had none)
        return cfg if cfg.refine_channels is not None else cfg.resolved(refine_channels=0)
    if cfg.init_weights is not None:
        from pconv_kit.models import read_model_config

        model_cfg, _ = read_model_config(cfg.init_weights)
        changes: dict[str, Any] = {}
        for key in ("layer_size", "base_channels"):
            have = model_cfg.get(key)
            if getattr(cfg, key) is not None and getattr(cfg, key) != have:
                raise ConfigError(
                    f"{key} is {getattr(cfg, key)} but init_weights {cfg.init_weights} has {key} = {have}; "
                    f"leave {key} unset to take it from the weights"
                )
            changes[key] = have
        have = model_cfg.get("refine_channels", 0)
        if cfg.refine_channels is not None and cfg.refine_channels != have and have != 0:
            raise ConfigError(
                f"refine_channels is {cfg.refine_channels} but init_weights {cfg.init_weights} has refine_channels = "
                f"{have}; leave it unset to take it from the weights (only weights without a refinement can get one)"
            )
        changes["refine_channels"] = have if cfg.refine_channels is None else cfg.refine_channels
        return cfg.resolved(**changes)
    layer_size = cfg.layer_size
    if layer_size is None:
        layer_size = min(DEFAULT_LAYER_SIZE, _two_adic(cfg.size))
        if layer_size < 4:
            raise ConfigError(
                f"size {cfg.size} is divisible by 2 only {layer_size} time(s), which allows a PConvUNet of at most "
                f"{layer_size} layers, too shallow to fill holes; use a multiple of 128 for the default 7 layers "
                f"(e.g. size {_next_multiple(cfg.size, 128)}), or of 16 with layer_size 4 (e.g. size "
                f"{_next_multiple(cfg.size, 16)})"
            )
    return cfg.resolved(
        layer_size=layer_size, base_channels=cfg.base_channels or 64, refine_channels=cfg.refine_channels or 0
    )


def _add_refinement(model: PConvUNet, refine_channels: int) -> PConvUNet:
    """``model`` with a new, zero-initialised refinement: the same function until the refinement is trained."""
    from pconv_kit.models import PConvUNet

    grown = PConvUNet.from_config({**model.config, "refine_channels": refine_channels}).train()
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("refine.") for key in missing):  # pragma: no cover - same architecture
        raise ConfigError(f"cannot add a refinement to these weights: missing {missing}, unexpected {unexpected}")
    return grown


def _amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp == "auto":
            return None
        if amp == "fp16":
            raise ConfigError("amp = 'fp16' needs a CUDA device; use 'bf16' or 'off' on the CPU")
        return torch.bfloat16
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def _grad_scaler(device: torch.device, enabled: bool) -> Any:
    """A gradient scaler (only float16 needs one; a disabled scaler passes everything through)."""
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device.type, enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled and device.type == "cuda")  # PyTorch < 2.3


def _check_writable(run_dir: Path) -> None:
    """Raise ConfigError unless ``run_dir`` exists as a writable folder or can be created."""
    probe = run_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"cannot create the run directory {run_dir}: {probe} is a file, not a folder")
    try:
        import tempfile

        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write to the run directory {run_dir} ({probe}: {exc.strerror or exc})") from exc


def _remove_stale_temp_files(run_dir: Path) -> None:
    """Delete temporary files that a killed run left behind mid-write (``.last.XXXX.tmp.safetensors``...)."""
    stems = (CONFIG_FILE, METRICS_FILE, STATE_FILE, LAST_FILE, BEST_FILE, SUMMARY_FILE)
    prefixes = tuple(f".{Path(n).stem}." for n in stems) + tuple(f".{n}." for n in stems)
    for folder in (run_dir, run_dir / SAMPLES_DIR):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            name = path.name
            if ".tmp" in name and (name.startswith(prefixes) or (folder.name == SAMPLES_DIR and name.startswith(".step_"))):
                with contextlib.suppress(OSError):
                    path.unlink()


def _prepare_run_dir(cfg: TrainConfig, resume: bool) -> tuple[TrainConfig, dict[str, Any] | None]:
    """Rank 0: check the run directory; on resume read the saved config and training state."""
    run_dir = Path(cfg.out)  # type: ignore[arg-type]
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise ConfigError(
                f"cannot resume: {run_dir} holds no {STATE_FILE} or {CONFIG_FILE} (it is not a run directory of "
                "pconv-kit train)"
            )
        saved = load_config(run_dir)
        fill = {k: getattr(saved, k) for k in ("seed", "layer_size", "base_channels", "refine_channels", "images") if getattr(cfg, k) is None}
        cfg = cfg.resolved(**fill)
        _check_resume_changes(saved, cfg)
        # no state: stopped before its first checkpoint, so the same run starts again from step 0 (the trainer
        # says so); the metrics of that start are dropped like those past any resumed step
        state = load_training_state(run_dir / STATE_FILE) if (run_dir / STATE_FILE).is_file() else None
        _check_writable(run_dir)
        _remove_stale_temp_files(run_dir)
        return cfg, state
    existing = run_files(run_dir)
    if existing:
        names = ", ".join(p.name for p in existing)
        raise RunExistsError(
            f"{run_dir} already holds a training run ({names}); resume it, or choose another output folder",
            str(run_dir),
        )
    _check_writable(run_dir)
    if cfg.seed is None:
        cfg = cfg.resolved(seed=secrets.randbelow(2**31))
    return cfg, None


class _MetricsLog:
    """Append-only JSON-lines log; on resume, lines past the resumed step are dropped (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        if not self.path.is_file():
            return
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            if isinstance(record, dict) and int(record.get("step", 0)) <= step:
                keep.append(line)
        with atomic_write(self.path) as tmp:
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=False) + "\n")
            fh.flush()


@contextlib.contextmanager
def _stop_on_signals(enabled: bool) -> Iterator[threading.Event]:
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


# ------------------------------------------------------------------------------------------ evaluation
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


# ------------------------------------------------------------------------------------------ the trainer
class _Trainer:
    def __init__(
        self,
        cfg: TrainConfig,
        ctx: DistContext,
        resume: bool,
        feature_extractor: nn.Module | None,
        reporter: Reporter,
        handle_signals: bool,
    ) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.resume = resume
        self.feature_extractor = feature_extractor
        self.reporter = reporter
        self.handle_signals = handle_signals
        self.run_dir = Path(cfg.out)  # type: ignore[arg-type]
        self.skipped: dict[str, str] = {}

    # -------------------------------------------------------------- messages
    def info(self, text: str) -> None:
        if self.ctx.is_main:
            self.reporter.message(text)

    def warn(self, text: str) -> None:
        if self.ctx.is_main:
            self.reporter.message(text, "warning")

    def _note_skipped(self, entries: list[str]) -> None:
        """Record unreadable files; rank 0 warns once per file."""
        for entry in entries:
            path, _, reason = entry.partition(": ")
            if path not in self.skipped:
                self.skipped[path] = reason
                self.warn(f"skipping unreadable image {path}: {reason}")

    # -------------------------------------------------------------- set-up
    def _setup_data(self, cfg: TrainConfig) -> None:
        root = Path(cfg.images)  # type: ignore[arg-type]
        files = scan_images(root)
        split = split_files(root, files, cfg.val_fraction)
        first_error = ""

        def probe(paths: list[Path], limit: int | None = None) -> list[tuple[Path, np.ndarray]]:
            nonlocal first_error
            ok: list[tuple[Path, np.ndarray]] = []
            for p in paths:
                try:
                    ok.append((p, load_rgb(p)))
                except Exception as exc:  # corrupt or unreadable: skip with one warning
                    first_error = first_error or f"{p}: {exc}"
                    self._note_skipped([f"{p}: {exc}"])
                    continue
                if limit is not None and len(ok) >= limit:
                    break
            return ok

        train_ok = probe(split.train, limit=1)
        val_ok = probe(split.val, limit=cfg.val_images)
        if not train_ok and val_ok:
            self.warn(
                f"no readable training image is left once {len(split.val)} file(s) are held out for validation; "
                "training on all files without validation (set val_fraction = 0 to silence this)"
            )
            split.train, split.val, val_ok = sorted(split.train + split.val), [], []
            train_ok = probe([p for p in split.train if str(p) not in self.skipped], limit=1)
        if not train_ok:
            raise InputValueError(
                f"none of the {len(files)} image file(s) in {root} can be read (first error: {first_error})"
            )
        self.split = split
        self.mask_source = make_mask_source(
            cfg.size, cfg.masks, cfg.hole_ratio, cfg.mask_convention, cfg.mask_augment, cfg.mask_kind, cfg.mask_weights
        )
        self.val_images: torch.Tensor | None = None
        self.val_masks: torch.Tensor | None = None
        if val_ok and self.ctx.is_main:
            imgs = [torch.from_numpy(center_crop(a, cfg.size).transpose(2, 0, 1).copy()) for _, a in val_ok]
            msks = [
                torch.from_numpy(np.asarray(self.mask_source(sample_rng(VAL_SEED, _VAL_MASK_STREAM, i)), np.float32))[None]
                for i in range(len(imgs))
            ]
            self.val_images = torch.stack(imgs).to(self.ctx.device)
            self.val_masks = torch.stack(msks).to(self.ctx.device)
        self.n_val = len(val_ok)

    def _perceptual_or_warn(self, cfg: TrainConfig) -> TrainConfig:
        """The preset asked for the perceptual terms: keep them if VGG16 weights can be found, else say so once."""
        from pconv_kit.losses.vgg import resolve_vgg16_weights

        try:
            resolve_vgg16_weights(None)
        except WeightsNotFoundError as exc:
            reason = str(exc).splitlines()[0]
            self.warn(
                f"perceptual and style terms off: no VGG16 ImageNet weights ({reason}); training with the pixel "
                "terms only. Give vgg_weights (a VGG16 weights file) to use them, or set perceptual to decide yourself"
            )
            return cfg.resolved(perceptual=False)
        return cfg

    def _setup_model(self, cfg: TrainConfig, state: dict[str, Any] | None) -> None:
        from pconv_kit.losses import InpaintingLoss, VGG16Features
        from pconv_kit.models import PConvUNet, load_model

        device = self.ctx.device
        if cfg.perceptual:
            extractor = self.feature_extractor
            if extractor is None:
                try:
                    extractor = VGG16Features(weights=cfg.vgg_weights)
                except WeightsNotFoundError as exc:  # tell the VGG weights apart from init_weights
                    raise VGGWeightsNotFoundError(str(exc)) from exc
        else:
            if self.feature_extractor is not None:
                raise ConfigError("a feature_extractor was given but perceptual is false")
            extractor = None
        self.criterion = InpaintingLoss(
            extractor,
            valid=cfg.loss_valid,
            hole=cfg.loss_hole,
            perceptual=cfg.loss_perceptual,
            style=cfg.loss_style,
            tv=cfg.loss_tv,
            ssim=cfg.loss_ssim,
        ).to(device)

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
            model.load_state_dict(state["model"])
        model.freeze_encoder_bn = cfg.finetune
        if cfg.sync_bn and self.ctx.enabled:
            if device.type == "cpu":
                raise ConfigError("sync_bn needs CUDA devices (PyTorch's SyncBatchNorm does not run on the CPU)")
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        model.train()
        self.model = model
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # DDP averages gradients and, before every forward, copies rank 0's buffers (BatchNorm running
            # statistics) to the other ranks, so every rank trains the same model.
            self.ddp: nn.Module = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        else:
            self.ddp = model
        self.params = [p for p in model.parameters()]
        self.optimizer = torch.optim.Adam(self._param_groups(model, cfg), lr=cfg.stage_lr)
        self.amp_dtype = _amp_dtype(cfg.amp, device)
        self.scaler = _grad_scaler(device, enabled=self.amp_dtype == torch.float16)
        if state is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler.is_enabled() and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.stage_lr * group.get("lr_scale", 1.0)

    @staticmethod
    def _param_groups(model: PConvUNet, cfg: TrainConfig) -> list[dict[str, Any]]:
        """One Adam group, or two when the refinement learns at ``refine_lr_scale`` times the stage's rate."""
        if model.refine is None or cfg.refine_lr_scale == 1.0:
            return [{"params": list(model.parameters())}]
        refine = {id(p) for p in model.refine.parameters()}
        return [
            {"params": [p for p in model.parameters() if id(p) not in refine]},
            {"params": list(model.refine.parameters()), "lr_scale": cfg.refine_lr_scale},
        ]

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.ctx.device.type, dtype=self.amp_dtype)

    # -------------------------------------------------------------- periodic work
    def _validate(self, step: int) -> dict[str, Any] | None:
        if self.val_images is None or not self.ctx.is_main:
            return None
        metrics, output = evaluate(
            self.model, self.val_images, self.val_masks, batch_size=max(1, self.local_batch), autocast=self._autocast()  # type: ignore[arg-type]
        )
        rows = min(self.cfg.grid_rows, len(output))
        from pconv_kit.io import write_image

        grid = make_grid(self.val_images[:rows], self.val_masks[:rows], output[:rows])  # type: ignore[index]
        (self.run_dir / SAMPLES_DIR).mkdir(exist_ok=True)
        write_image(self.run_dir / SAMPLES_DIR / f"step_{step:07d}.png", grid)
        best = self.best_psnr is None or metrics["psnr"] > self.best_psnr
        record = {"step": step, "split": "val", **metrics, "best": best}
        if best:
            from pconv_kit.models import save_model

            self.best_psnr, self.best_step = metrics["psnr"], step
            save_model(self.model, self.run_dir / BEST_FILE, metadata=self._weights_metadata(step, metrics))
        self.metrics_log.append(record)
        self.reporter.val_metrics(record)
        self.last_val = record
        return record

    def _weights_metadata(self, step: int, val: dict[str, Any] | None = None) -> dict[str, str]:
        meta = {
            "pconv_kit.step": str(step),
            "pconv_kit.stage": "finetune" if self.cfg.finetune else "train",
            "pconv_kit.seed": str(self.cfg.seed),
        }
        if val:
            meta.update({f"pconv_kit.val_{k}": f"{v:.6g}" for k, v in val.items() if k in ("psnr", "ssim", "hole_l1")})
        return meta

    def _link_best_as_last(self, step: int) -> bool:
        """At a step whose weights were just saved as the best, ``last`` is the same file: link, do not copy."""
        if self.best_step != step:
            return False
        from pconv_kit.utils.files import replace_with_link

        # the weights, then their .json sidecar; stops at the first link refused (the caller then saves a copy)
        return all(
            replace_with_link(self.run_dir / f"{BEST_FILE}{ext}", self.run_dir / f"{LAST_FILE}{ext}") for ext in ("", ".json")
        )

    def _checkpoint(self, step: int) -> None:
        if not self.ctx.is_main:
            return
        from pconv_kit.models import save_model

        if not self._link_best_as_last(step):
            save_model(self.model, self.run_dir / LAST_FILE, metadata=self._weights_metadata(step, self.last_val))
        state = {
            "step": step,
            "steps": self.cfg.steps,
            "model": {k: v.detach().to("cpu").clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "best_psnr": self.best_psnr,
            "best_step": self.best_step,
            "rng": capture_rng_state(),
            "data": {
                "train_files": len(self.split.train),
                "global_batch": self.cfg.batch_size,
                "next_sample": step * self.cfg.batch_size,
            },
            "seed": int(self.cfg.seed),  # type: ignore[arg-type]
            "config": self.cfg.to_toml(),
            "world_size": self.ctx.world_size,
            "elapsed_s": float(self.elapsed_before + self.loop_time),
            "skipped_files": sorted(self.skipped),
            "torch_version": str(torch.__version__),
        }
        save_training_state(self.run_dir / STATE_FILE, state)
        self.last_checkpoint_step = step

    # -------------------------------------------------------------- main
    def run(self) -> TrainSummary:
        ctx = self.ctx
        # rank 0 checks the run directory (and reads the training state); every rank gets the result
        cfg, state = ctx.run_on_main(_prepare_run_dir, self.cfg, self.resume)
        if self.resume and state is None:
            self.warn(
                f"{self.run_dir} has no checkpoint ({STATE_FILE}): the run stopped before its first one, so it "
                "starts again from step 0 with its saved configuration"
            )
        perceptual_from_preset = cfg.perceptual is None
        cfg, preset_note = cfg.with_preset(ctx.device.type)
        if not self.resume:
            self.info(preset_note)
        if perceptual_from_preset and cfg.perceptual and cfg.vgg_weights is None and self.feature_extractor is None:
            cfg = self._perceptual_or_warn(cfg)
        unset_depth = cfg.layer_size is None and cfg.init_weights is None
        cfg = _resolve_model_size(cfg, self.resume)
        if unset_depth and cfg.layer_size < DEFAULT_LAYER_SIZE:  # type: ignore[operator]
            self.warn(
                f"size {cfg.size} allows at most layer_size {cfg.layer_size} (2 ** layer_size must divide it), so "
                f"this PConvUNet has {cfg.layer_size} layers instead of the default {DEFAULT_LAYER_SIZE}; use a "
                f"multiple of 128 for the default (e.g. size {_next_multiple(cfg.size, 128)}), or set layer_size"
            )
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(
                f"batch_size ({cfg.batch_size}) is the global batch and must be divisible by the number of "
                f"processes ({ctx.world_size})"
            )
        self.cfg = cfg
        self.local_batch = cfg.batch_size // ctx.world_size
        start_step = int(state["step"]) if state is not None else 0
        self.best_psnr = state.get("best_psnr") if state is not None else None
        self.best_step = state.get("best_step") if state is not None else None
        self.elapsed_before = float(state.get("elapsed_s", 0.0)) if state is not None else 0.0
        self.loop_time = 0.0
        self.overhead_time = 0.0  # validation and checkpoints inside the loop
        self.last_val: dict[str, Any] | None = None
        self.last_checkpoint_step = start_step
        for path in (state or {}).get("skipped_files", []):
            self.skipped[path] = "unreadable in an earlier part of this run"

        # everything that can fail on bad input comes before the first file is written
        self._setup_model(cfg, state)
        self._setup_data(cfg)
        if cfg.finetune and state is None and cfg.init_weights is None:
            self.warn("fine-tuning a freshly initialised model; pass init_weights to start from trained weights")
        if state is not None:
            restore_rng_state(state["rng"])
            before = int(state.get("data", {}).get("train_files", len(self.split.train)))
            if before != len(self.split.train):
                self.warn(
                    f"the image folder now has {len(self.split.train)} training files (was {before}); the data "
                    "order from here on differs from an uninterrupted run"
                )

        self.metrics_log = _MetricsLog(self.run_dir / METRICS_FILE)
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.resume:
                self.metrics_log.truncate_after(start_step)
            with atomic_write(self.run_dir / CONFIG_FILE) as tmp:
                tmp.write_text(cfg.to_toml(), encoding="utf-8")
        summary = TrainSummary(run_dir=self.run_dir, start_step=start_step, final_step=start_step, steps=cfg.steps)
        summary.world_size, summary.rank = ctx.world_size, ctx.rank
        if start_step >= cfg.steps:
            self.info(f"{self.run_dir} is already at step {start_step} of {cfg.steps}; raise steps to train further")
            return self._finish(summary, start_step)

        n_params = sum(p.numel() for p in self.model.parameters())
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        description = (
            f"{'resuming' if self.resume else 'training'} PConvUNet(layer_size={cfg.layer_size}, "
            f"base_channels={cfg.base_channels}{f', refine_channels={cfg.refine_channels}' if cfg.refine_channels else ''}, "
            f"{n_params / 1e6:.2f}M parameters) from step {start_step} to "
            f"{cfg.steps}{' (fine-tuning)' if cfg.finetune else ''}\n"
            f"  data: {len(self.split.train)} training images, {self.n_val} validation images from {cfg.images}; "
            f"{'mask files from ' + str(cfg.masks) if cfg.masks else f'generated {cfg.mask_kind} masks'}; crops {cfg.size}x{cfg.size}\n"
            f"  batch {cfg.batch_size} on {ctx.world_size} process(es), device {ctx.device} ({amp}), lr {cfg.stage_lr:g}, "
            f"perceptual {'on' if cfg.perceptual else 'off'}, seed {cfg.seed}\n"
            f"  run directory: {self.run_dir}"
        )
        if ctx.is_main:
            self.reporter.start(start_step, cfg.steps, description)
        with _stop_on_signals(self.handle_signals) as stop_event:
            final_step, interrupted = self._loop(start_step, stop_event)
        summary.interrupted = interrupted
        return self._finish(summary, final_step)

    def _loop(self, start_step: int, stop_event: threading.Event) -> tuple[int, bool]:
        cfg, ctx, device = self.cfg, self.ctx, self.ctx.device
        dataset = ImageFolderDataset(
            self.split.train,
            cfg.size,
            self.mask_source,
            seed=cfg.seed,  # type: ignore[arg-type]
            crop_scale=cfg.crop_scale,
            hflip=cfg.hflip,
            vflip=cfg.vflip,
            known_bad=[Path(p) for p in self.skipped],
        )
        sampler = StepSampler(start_step, cfg.steps, cfg.batch_size, ctx.rank, ctx.world_size)
        loader = DataLoader(
            dataset,
            batch_size=self.local_batch,
            sampler=sampler,
            num_workers=cfg.workers,
            collate_fn=collate,
            pin_memory=device.type == "cuda",
            worker_init_fn=worker_init if cfg.workers else None,
            prefetch_factor=4 if cfg.workers else None,
        )
        old_flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = not cfg.deterministic
            torch.backends.cudnn.deterministic = cfg.deterministic
        loss_autocast = self._autocast if self.amp_dtype == torch.bfloat16 else contextlib.nullcontext
        sums: dict[str, torch.Tensor] = {}
        n_sum = 0
        skipped_steps = 0
        step = start_step
        t_interval = time.perf_counter()
        steps_in_interval = 0
        extra_time = 0.0  # validation / checkpoint time inside the current interval
        t_loop = time.perf_counter()
        interrupted = False
        pending_skips: list[str] = []
        self.train_record: dict[str, Any] = {}
        it = iter(loader)
        try:
            while step < cfg.steps:
                try:
                    batch = next(it)
                except StopIteration:  # pragma: no cover - the sampler yields exactly the remaining steps
                    break
                except Exception:
                    if stop_event.is_set():  # a worker stopped by the same Ctrl-C
                        interrupted = True
                        break
                    raise
                pending_skips.extend(batch["skipped"])
                image = batch["image"].to(device, non_blocking=True)
                mask = batch["mask"].to(device, non_blocking=True)
                if cfg.channels_last:
                    image = image.contiguous(memory_format=torch.channels_last)
                    mask = mask.contiguous(memory_format=torch.channels_last)
                with self._autocast():
                    output, _ = self.ddp(image * mask, mask)
                with loss_autocast():
                    terms = self.criterion(output if self.amp_dtype == torch.bfloat16 else output.float(), image, mask)
                loss = terms["total"]
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                grad_norm = None
                if cfg.grad_clip > 0:
                    self.scaler.unscale_(self.optimizer)
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
                if self.scaler.is_enabled():
                    self.scaler.step(self.optimizer)  # skips the update on inf/NaN gradients
                    self.scaler.update()
                else:
                    finite = torch.isfinite(grad_norm if grad_norm is not None else loss.detach())
                    if bool(finite):
                        self.optimizer.step()
                    else:
                        skipped_steps += 1
                step += 1
                steps_in_interval += 1
                n_sum += 1
                for k, v in terms.items():
                    v = v.detach().float()
                    sums[k] = sums[k] + v if k in sums else v
                if grad_norm is not None:
                    g = grad_norm.detach().float()
                    sums["grad_norm"] = sums["grad_norm"] + g if "grad_norm" in sums else g
                if ctx.is_main:
                    self.reporter.advance(step)

                last = step == cfg.steps
                if step % cfg.log_every == 0 or last:
                    if ctx.enabled:
                        pending_skips = [s for part in ctx.gather(pending_skips) for s in part]
                    self._note_skipped(pending_skips)
                    pending_skips = []
                    keys = sorted(sums)
                    values = ctx.all_reduce_mean(torch.stack([sums[k] for k in keys]) / n_sum).cpu().tolist()
                    now = time.perf_counter()
                    busy = max(1e-9, now - t_interval - extra_time)
                    rate = steps_in_interval / busy
                    record: dict[str, Any] = {"step": step, "split": "train"}
                    record.update({k: float(v) for k, v in zip(keys, values)})
                    record.update(
                        {
                            "lr": self.optimizer.param_groups[0]["lr"],
                            "it_per_s": rate,
                            "images_per_s": rate * cfg.batch_size,
                            "elapsed_s": self.elapsed_before + (now - t_loop),
                        }
                    )
                    if skipped_steps:
                        record["skipped_steps"] = skipped_steps
                    if not all(math.isfinite(v) for v in values):
                        self.warn(f"non-finite loss at step {step}: {record}")
                    if ctx.is_main:
                        self.metrics_log.append(record)
                        self.reporter.train_metrics(record)
                    self.train_record = record
                    sums, n_sum, steps_in_interval, extra_time = {}, 0, 0, 0.0
                    t_interval = now
                t_extra = time.perf_counter()
                if step % cfg.val_every == 0 or last:
                    self._validate(step)
                stop = ctx.any(stop_event.is_set())
                if step % cfg.checkpoint_every == 0 or last or stop:
                    self.loop_time = time.perf_counter() - t_loop
                    self._checkpoint(step)
                extra_time += time.perf_counter() - t_extra
                self.overhead_time += time.perf_counter() - t_extra
                if stop:
                    interrupted = not last
                    break
        finally:
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = old_flags
            del it
        self.loop_time = time.perf_counter() - t_loop
        if interrupted:
            self.warn(f"stopped at step {step} (interrupted); checkpoint written, so the run can be resumed")
        return step, interrupted

    def _finish(self, summary: TrainSummary, final_step: int) -> TrainSummary:
        ctx = self.ctx
        if ctx.enabled:  # the last step updated each rank's running statistics: take rank 0's, as DDP would
            ctx.broadcast_buffers(self.model)
        digest = state_dict_digest(self.model.state_dict()) if hasattr(self, "model") else ""
        digests = ctx.gather(digest)
        if len(set(digests)) > 1:
            self.warn(f"the processes ended with different weights (digests {digests}); this should not happen")
        summary.final_step = final_step
        summary.elapsed_s = self.loop_time
        ran = final_step - summary.start_step
        busy = self.loop_time - self.overhead_time
        summary.it_per_s = ran / busy if busy > 0 else 0.0
        summary.images_per_s = summary.it_per_s * self.cfg.batch_size
        summary.weights_digest = digest
        summary.rank_digests = digests
        summary.best_psnr, summary.best_step = self.best_psnr, self.best_step
        summary.train_metrics = getattr(self, "train_record", {})
        summary.val_metrics = self.last_val if hasattr(self, "last_val") else None
        summary.skipped_files = sorted(self.skipped)
        if (self.run_dir / LAST_FILE).is_file():
            summary.last_checkpoint = self.run_dir / LAST_FILE
        if (self.run_dir / BEST_FILE).is_file():
            summary.best_checkpoint = self.run_dir / BEST_FILE
        if ctx.is_main:
            write_json(self.run_dir / SUMMARY_FILE, summary.to_dict(), sort_keys=True)
        ctx.barrier()
        return summary


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    feature_extractor: nn.Module | None = None,
    reporter: Reporter | str = "auto",
    quiet: bool = False,
    handle_signals: bool = True,
) -> TrainSummary:
    """Train a :class:`~pconv_kit.models.PConvUNet` as ``config`` says, or resume the run in ``config.out``.

    Single process by default; under ``torchrun`` every process calls this and they train together with
    DistributedDataParallel (rank 0 logs and writes files).

    Args:
        config: the run's settings; ``images`` and ``out`` are required (on resume ``images`` defaults to the
            saved one). Build it with :class:`TrainConfig`, :meth:`TrainConfig.from_toml` or
            :func:`resume_config`.
        resume: continue the run in ``config.out`` from its ``training_state.pt``; ``config`` may differ from
            the saved one only in :data:`~pconv_kit.train.config.RESUME_CHANGEABLE` keys.
        feature_extractor: the perceptual/style feature network (default:
            ``VGG16Features(weights=config.vgg_weights)``, which needs the ImageNet weights file). Pass e.g.
            ``VGG16Features(pretrained=False)`` to exercise the perceptual path without weights.
        reporter: a :class:`~pconv_kit.train.display.Reporter` or one of ``"auto"``, ``"rich"``,
            ``"plain"``, ``"none"``.
        quiet: only warnings (for the built-in reporters).
        handle_signals: while training, Ctrl-C / SIGTERM finish the current step, write a checkpoint and
            return (``summary.interrupted``); a second Ctrl-C stops at once. Only in the main thread.

    Returns:
        A :class:`TrainSummary`.

    Raises:
        ConfigError: invalid settings, an unusable run directory, or a resume that changes the maths.
        InputValueError: no readable image, bad mask folder, bad init weights.
        WeightsNotFoundError: ``perceptual`` is on and no VGG16 weights are available.

    Example:
        >>> import tempfile, pathlib, numpy as np
        >>> from pconv_kit.io import write_image
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> (d / "photos").mkdir()
        >>> for i in range(3):
        ...     write_image(d / "photos" / f"{i}.png", np.random.default_rng(i).integers(0, 255, (48, 48, 3), dtype=np.uint8))
        >>> cfg = TrainConfig(images=str(d / "photos"), out=str(d / "run"), size=32, layer_size=3, base_channels=4,
        ...                   batch_size=2, steps=4, workers=0, perceptual=False, seed=0)
        >>> summary = train(cfg, reporter="none")
        >>> summary.final_step, (d / "run" / "last.safetensors").is_file()
        (4, True)
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config must be a TrainConfig; got {type(config).__name__}")
    config.validate()
    if config.out is None:
        raise ConfigError("out (the run directory) is required")
    if config.images is None and not resume:
        raise ConfigError("images (the folder of training photos) is required")
    ctx = setup(config.device)
    rep: Reporter
    if not ctx.is_main:
        rep = make_reporter("none")
    elif isinstance(reporter, str):
        rep = make_reporter(reporter, quiet=quiet)
    else:
        rep = reporter
    try:
        return _Trainer(config, ctx, resume, feature_extractor, rep, handle_signals).run()
    finally:
        rep.close()
        ctx.close()
