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

import math
import threading
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from pconv_kit.errors import ConfigError
from pconv_kit.train.build import DEFAULT_LAYER_SIZE, build_parts, next_multiple, perceptual_or_warn, resolve_model_size
from pconv_kit.train.checkpoint import BEST_FILE, CONFIG_FILE, LAST_FILE, METRICS_FILE, STATE_FILE, SUMMARY_FILE, TrainingState
from pconv_kit.train.checkpoint import capture_rng_state, kept_weights_path, restore_rng_state, save_training_state
from pconv_kit.train.checkpoint import state_dict_digest, weights_metadata
from pconv_kit.train.config import TrainConfig
from pconv_kit.train.data import (
    DataSplit,
    ImageFolderDataset,
    MaskSource,
    StepSampler,
    collate,
    make_mask_source,
    readable_split,
    worker_init,
)
from pconv_kit.train.display import Reporter, make_reporter
from pconv_kit.train.distributed import DistContext, setup
from pconv_kit.train.rundir import MetricsLog, TrainSummary, prepare_run_dir, resume_config
from pconv_kit.train.runtime import cudnn_flags, stop_on_signals
from pconv_kit.train.step import MetricWindow, train_step
from pconv_kit.train.validation import Validation, evaluate, make_grid
from pconv_kit.utils.files import atomic_write, write_json

# TrainSummary, resume_config, evaluate and make_grid live in .rundir and .validation; importable from here as before
__all__ = ["train", "resume_config", "TrainSummary", "evaluate", "make_grid"]


class _Trainer:
    """One call of :func:`train`: ``__init__`` checks and builds everything (no file written yet), :meth:`run`
    trains."""

    def __init__(
        self,
        cfg: TrainConfig,
        ctx: DistContext,
        resume: bool,
        feature_extractor: nn.Module | None,
        reporter: Reporter,
        handle_signals: bool,
    ) -> None:
        self.ctx = ctx
        self.resume = resume
        self.reporter = reporter
        self.handle_signals = handle_signals
        self.run_dir = Path(cfg.out)  # type: ignore[arg-type]
        self.skipped: dict[str, str] = {}  # unreadable files: path -> reason
        self.cfg, state = self._resolve_config(cfg, feature_extractor)
        self.local_batch = self.cfg.batch_size // ctx.world_size
        self.start_step = state.step if state is not None else 0
        self.elapsed_before = state.elapsed_s if state is not None else 0.0
        for path in state.skipped_files if state is not None else []:
            self.skipped[path] = "unreadable in an earlier part of this run"
        # everything that can fail on bad input comes before the first file is written
        self.parts = build_parts(self.cfg, ctx, state, feature_extractor)
        self.split, self.mask_source, self.validation, self.n_val = self._setup_data(state)
        self._continue_from(state)
        self.metrics_log = MetricsLog(self.run_dir / METRICS_FILE)
        self.train_record: dict[str, Any] = {}  # the last metrics line
        self.skipped_steps = 0  # updates skipped for a non-finite loss or gradient
        self.pending_skips: list[str] = []  # unreadable files reported by the data loader since the last log line
        self.loop_start = 0.0
        self.loop_time = 0.0
        self.overhead_time = 0.0  # validation and checkpoints inside the loop

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
    def _resolve_config(
        self, cfg: TrainConfig, feature_extractor: nn.Module | None
    ) -> tuple[TrainConfig, TrainingState | None]:
        """Check the run directory (rank 0) and complete ``cfg``: preset, perceptual terms, model size."""
        ctx = self.ctx
        # rank 0 checks the run directory (and reads the training state); every rank gets the result
        cfg, state = ctx.run_on_main(prepare_run_dir, cfg, self.resume)
        if self.resume and state is None:
            self.warn(
                f"{self.run_dir} has no checkpoint ({STATE_FILE}): the run stopped before its first one, so it "
                "starts again from step 0 with its saved configuration"
            )
        perceptual_from_preset = cfg.perceptual is None
        cfg, preset_note = cfg.with_preset(ctx.device.type)
        if not self.resume:
            self.info(preset_note)
        if perceptual_from_preset and cfg.perceptual and cfg.vgg_weights is None and feature_extractor is None:
            cfg = perceptual_or_warn(cfg, self.warn)
        unset_depth = cfg.layer_size is None and cfg.init_weights is None
        cfg = resolve_model_size(cfg, self.resume)
        if unset_depth and cfg.layer_size < DEFAULT_LAYER_SIZE:  # type: ignore[operator]
            self.warn(
                f"size {cfg.size} allows at most layer_size {cfg.layer_size} (2 ** layer_size must divide it), so "
                f"this PConvUNet has {cfg.layer_size} layers instead of the default {DEFAULT_LAYER_SIZE}; use a "
                f"multiple of 128 for the default (e.g. size {next_multiple(cfg.size, 128)}), or set layer_size"
            )
        if cfg.batch_size % ctx.world_size:
            raise ConfigError(
                f"batch_size ({cfg.batch_size}) is the global batch and must be divisible by the number of "
                f"processes ({ctx.world_size})"
            )
        return cfg, state

    def _setup_data(self, state: TrainingState | None) -> tuple[DataSplit, MaskSource, Validation, int]:
        """The file split, the mask source, the validation set (rank 0) and the number of validation images."""
        cfg = self.cfg
        split, val_arrays = readable_split(
            cfg.images, cfg.val_fraction, cfg.val_images, self.skipped, self._note_skipped, self.warn  # type: ignore[arg-type]
        )
        mask_source = make_mask_source(
            cfg.size, cfg.masks, cfg.hole_ratio, cfg.mask_convention, cfg.mask_augment, cfg.mask_kind, cfg.mask_weights
        )
        images = masks = None
        if val_arrays and self.ctx.is_main:
            images, masks = Validation.prepare(val_arrays, mask_source, cfg.size, self.ctx.device)
        best_psnr, best_step = (state.best_psnr, state.best_step) if state is not None else (None, None)
        validation = Validation(images, masks, self.run_dir, cfg.grid_rows, best_psnr, best_step)
        return split, mask_source, validation, len(val_arrays)

    def _continue_from(self, state: TrainingState | None) -> None:
        """Restore the checkpoint's RNG states; warn where the run will differ from what it continues."""
        if self.cfg.finetune and state is None and self.cfg.init_weights is None:
            self.warn("fine-tuning a freshly initialised model; pass init_weights to start from trained weights")
        if state is None:
            return
        restore_rng_state(state.rng)
        before = state.train_files if state.train_files is not None else len(self.split.train)
        if before != len(self.split.train):
            self.warn(
                f"the image folder now has {len(self.split.train)} training files (was {before}); the data "
                "order from here on differs from an uninterrupted run"
            )

    def _loader(self) -> DataLoader:
        """Batches of this rank's samples for steps ``[start_step, steps)``."""
        cfg, ctx = self.cfg, self.ctx
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
        return DataLoader(
            dataset,
            batch_size=self.local_batch,
            sampler=StepSampler(self.start_step, cfg.steps, cfg.batch_size, ctx.rank, ctx.world_size),
            num_workers=cfg.workers,
            collate_fn=collate,
            pin_memory=ctx.device.type == "cuda",
            worker_init_fn=worker_init if cfg.workers else None,
            prefetch_factor=4 if cfg.workers else None,
        )

    # -------------------------------------------------------------- periodic work
    def _validate(self, step: int) -> None:
        """Validate (rank 0); save the weights as ``best`` when their PSNR is the best so far."""
        if not self.ctx.is_main:
            return
        model = self.parts.model
        record = self.validation.run(step, model, max(1, self.local_batch), self.parts.autocast())
        if record is None:
            return
        if record["best"]:
            from pconv_kit.models import save_model

            save_model(model, self.run_dir / BEST_FILE, metadata=weights_metadata(step, self.cfg, record))
        self.metrics_log.append(record)
        self.reporter.val_metrics(record)

    def _link_best_as_last(self, step: int) -> bool:
        """At a step whose weights were just saved as the best, ``last`` is the same file: link, do not copy."""
        if self.validation.best_step != step:
            return False
        from pconv_kit.utils.files import replace_with_link

        # the weights, then their .json sidecar; stops at the first link refused (the caller then saves a copy)
        return all(
            replace_with_link(self.run_dir / f"{BEST_FILE}{ext}", self.run_dir / f"{LAST_FILE}{ext}") for ext in ("", ".json")
        )

    def _checkpoint(self, step: int) -> None:
        """Rank 0: write ``last.safetensors`` and ``training_state.pt``."""
        if not self.ctx.is_main:
            return
        from pconv_kit.models import save_model

        cfg, parts = self.cfg, self.parts
        metadata = weights_metadata(step, cfg, self.validation.last)
        if not self._link_best_as_last(step):
            save_model(parts.model, self.run_dir / LAST_FILE, metadata=metadata)
        if cfg.keep_every and step % cfg.keep_every == 0:  # checkpoints/step_NNNNNNN.safetensors
            kept_weights_path(self.run_dir, step).parent.mkdir(exist_ok=True)
            save_model(parts.model, kept_weights_path(self.run_dir, step), metadata=metadata)
        state = TrainingState(
            step=step,
            steps=cfg.steps,
            model={k: v.detach().to("cpu").clone() for k, v in parts.model.state_dict().items()},
            optimizer=parts.optimizer.state_dict(),
            scaler=parts.scaler.state_dict() if parts.scaler.is_enabled() else {},
            best_psnr=self.validation.best_psnr,
            best_step=self.validation.best_step,
            rng=capture_rng_state(),
            train_files=len(self.split.train),
            global_batch=cfg.batch_size,
            next_sample=step * cfg.batch_size,
            seed=int(cfg.seed),  # type: ignore[arg-type]
            config=cfg.to_toml(),
            world_size=self.ctx.world_size,
            elapsed_s=float(self.elapsed_before + self.loop_time),
            skipped_files=sorted(self.skipped),
            torch_version=str(torch.__version__),
        )
        save_training_state(self.run_dir / STATE_FILE, state.to_dict())

    # -------------------------------------------------------------- main
    def run(self) -> TrainSummary:
        """Write the run's config, train from ``start_step`` to ``steps`` and write the summary."""
        ctx, cfg = self.ctx, self.cfg
        if ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if self.resume:
                self.metrics_log.truncate_after(self.start_step)
            with atomic_write(self.run_dir / CONFIG_FILE) as tmp:
                tmp.write_text(cfg.to_toml(), encoding="utf-8")
        start_step = self.start_step
        summary = TrainSummary(run_dir=self.run_dir, start_step=start_step, final_step=start_step, steps=cfg.steps)
        summary.world_size, summary.rank = ctx.world_size, ctx.rank
        if start_step >= cfg.steps:
            self.info(f"{self.run_dir} is already at step {start_step} of {cfg.steps}; raise steps to train further")
            return self._finish(summary, start_step)
        if ctx.is_main:
            self.reporter.start(start_step, cfg.steps, self._description())
        with stop_on_signals(self.handle_signals) as stop_event:
            final_step, interrupted = self._loop(stop_event)
        summary.interrupted = interrupted
        return self._finish(summary, final_step)

    def _description(self) -> str:
        """What is trained, on what data, how and where (the reporter's first lines)."""
        cfg, ctx = self.cfg, self.ctx
        n_params = sum(p.numel() for p in self.parts.model.parameters())
        amp = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.parts.amp_dtype]
        return (
            f"{'resuming' if self.resume else 'training'} PConvUNet(layer_size={cfg.layer_size}, "
            f"base_channels={cfg.base_channels}{f', refine_channels={cfg.refine_channels}' if cfg.refine_channels else ''}, "
            f"{n_params / 1e6:.2f}M parameters) from step {self.start_step} to "
            f"{cfg.steps}{' (fine-tuning)' if cfg.finetune else ''}\n"
            f"  data: {len(self.split.train)} training images, {self.n_val} validation images from {cfg.images}; "
            f"{'mask files from ' + str(cfg.masks) if cfg.masks else f'generated {cfg.mask_kind} masks'}; crops {cfg.size}x{cfg.size}\n"
            f"  batch {cfg.batch_size} on {ctx.world_size} process(es), device {ctx.device} ({amp}), lr {cfg.stage_lr:g}, "
            f"perceptual {'on' if cfg.perceptual else 'off'}, seed {cfg.seed}\n"
            f"  run directory: {self.run_dir}"
        )

    def _loop(self, stop_event: threading.Event) -> tuple[int, bool]:
        """Train until ``steps`` or a stop request; returns ``(last completed step, interrupted)``."""
        cfg = self.cfg
        step, interrupted = self.start_step, False
        loader = self._loader()
        window = MetricWindow()
        self.loop_start = window.start
        with cudnn_flags(self.ctx.device, cfg.deterministic):
            batches = iter(loader)
            try:
                while step < cfg.steps:
                    try:
                        batch = next(batches)
                    except StopIteration:  # pragma: no cover - the sampler yields exactly the remaining steps
                        break
                    except Exception:
                        if stop_event.is_set():  # a worker stopped by the same Ctrl-C
                            interrupted = True
                            break
                        raise
                    self._train_step(batch, window)
                    step += 1
                    if self.ctx.is_main:
                        self.reporter.advance(step)
                    last = step == cfg.steps
                    if step % cfg.log_every == 0 or last:
                        self._log(step, window)
                    if self._periodic(step, last, stop_event, window):
                        interrupted = not last
                        break
            finally:
                del batches
        self.loop_time = time.perf_counter() - self.loop_start
        if interrupted:
            self.warn(f"stopped at step {step} (interrupted); checkpoint written, so the run can be resumed")
        return step, interrupted

    def _train_step(self, batch: dict[str, Any], window: MetricWindow) -> None:
        """One optimisation step on ``batch``; its loss terms go into ``window``."""
        device = self.ctx.device
        self.pending_skips.extend(batch["skipped"])
        image = batch["image"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True)
        if self.cfg.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
            mask = mask.contiguous(memory_format=torch.channels_last)
        result = train_step(self.parts, image, mask, self.cfg.grad_clip)
        self.skipped_steps += result.skipped
        window.add(result.terms, result.grad_norm)

    def _log(self, step: int, window: MetricWindow) -> None:
        """Close the metric window: one metrics line (means over the window and the processes), then a new window."""
        ctx, cfg = self.ctx, self.cfg
        pending = self.pending_skips
        if ctx.enabled:
            pending = [s for part in ctx.gather(pending) for s in part]
        self._note_skipped(pending)
        self.pending_skips = []
        means = window.means(ctx.all_reduce_mean)
        now = time.perf_counter()
        rate = window.rate(now)
        record: dict[str, Any] = {"step": step, "split": "train", **means}
        record.update(
            {
                "lr": self.parts.optimizer.param_groups[0]["lr"],
                "it_per_s": rate,
                "images_per_s": rate * cfg.batch_size,
                "elapsed_s": self.elapsed_before + (now - self.loop_start),
            }
        )
        if self.skipped_steps:
            record["skipped_steps"] = self.skipped_steps
        if not all(math.isfinite(v) for v in means.values()):
            self.warn(f"non-finite loss at step {step}: {record}")
        if ctx.is_main:
            self.metrics_log.append(record)
            self.reporter.train_metrics(record)
        self.train_record = record
        window.reset(now)

    def _periodic(self, step: int, last: bool, stop_event: threading.Event, window: MetricWindow) -> bool:
        """Validation and checkpoints due at ``step`` (their time left out of ``window``); True: stop now."""
        cfg = self.cfg
        t_extra = time.perf_counter()
        if step % cfg.val_every == 0 or last:
            self._validate(step)
        stop = self.ctx.any(stop_event.is_set())
        if step % cfg.checkpoint_every == 0 or last or stop or (cfg.keep_every and step % cfg.keep_every == 0):
            self.loop_time = time.perf_counter() - self.loop_start
            self._checkpoint(step)
        spent = time.perf_counter() - t_extra
        window.exclude(spent)
        self.overhead_time += spent
        return stop

    def _finish(self, summary: TrainSummary, final_step: int) -> TrainSummary:
        """Fill in ``summary`` (every rank's weights digest included) and write ``summary.json`` (rank 0)."""
        ctx, model = self.ctx, self.parts.model
        if ctx.enabled:  # the last step updated each rank's running statistics: take rank 0's, as DDP would
            ctx.broadcast_buffers(model)
        digest = state_dict_digest(model.state_dict())
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
        summary.best_psnr, summary.best_step = self.validation.best_psnr, self.validation.best_step
        summary.train_metrics = self.train_record
        summary.val_metrics = self.validation.last
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
        raise ConfigError("out (the run directory) is required", param="out")
    if config.images is None and not resume:
        raise ConfigError("images (the folder of training photos) is required", param="images")
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
