"""The run directory: starting a run in it or resuming the one it holds, its metrics log, and the summary of
what a call of :func:`~pconv_kit.train.train` did (``summary.json``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pconv_kit.errors import ConfigError, RunExistsError
from pconv_kit.train.checkpoint import (
    BEST_FILE,
    CONFIG_FILE,
    LAST_FILE,
    METRICS_FILE,
    SAMPLES_DIR,
    KEPT_DIR,
    STATE_FILE,
    SUMMARY_FILE,
    TrainingState,
    load_training_state,
    run_files,
)
from pconv_kit.train.config import RESUME_CHANGEABLE, TrainConfig, load_config
from pconv_kit.utils.files import atomic_write

__all__ = ["resume_config", "check_resume_changes", "prepare_run_dir", "MetricsLog", "TrainSummary"]


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
    check_resume_changes(saved, cfg)
    return cfg


def check_resume_changes(saved: TrainConfig, cfg: TrainConfig) -> None:
    """Raise ConfigError if ``cfg`` changes a setting of the ``saved`` run outside ``RESUME_CHANGEABLE``."""
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


def check_writable(run_dir: Path) -> None:
    """Raise ConfigError unless ``run_dir`` exists as a writable folder or can be created."""
    probe = run_dir
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"cannot create the run directory {run_dir}: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write to the run directory {run_dir} ({probe}: {exc.strerror or exc})") from exc


def remove_stale_temp_files(run_dir: Path) -> None:
    """Delete temporary files that a killed run left behind mid-write (``.last.XXXX.tmp.safetensors``...)."""
    stems = (CONFIG_FILE, METRICS_FILE, STATE_FILE, LAST_FILE, BEST_FILE, SUMMARY_FILE)
    prefixes = tuple(f".{Path(n).stem}." for n in stems) + tuple(f".{n}." for n in stems)
    for folder in (run_dir, run_dir / SAMPLES_DIR, run_dir / KEPT_DIR):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            name = path.name
            if ".tmp" in name and (name.startswith(prefixes) or (folder != run_dir and name.startswith(".step_"))):
                with contextlib.suppress(OSError):
                    path.unlink()


def prepare_run_dir(cfg: TrainConfig, resume: bool) -> tuple[TrainConfig, TrainingState | None]:
    """Rank 0: check the run directory; on resume read the saved config and training state.

    Returns:
        ``(cfg, state)``: ``cfg`` with the seed (and on resume the saved sizes and images) filled in; ``state``
        the checkpoint to resume from, ``None`` for a new run or one stopped before its first checkpoint.

    Raises:
        ConfigError: no run to resume, a resume that changes the maths, or an unwritable directory.
        RunExistsError: a new run in a folder that already holds one.
        InputValueError: an unreadable training state.
    """
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
        check_resume_changes(saved, cfg)
        # no state: stopped before its first checkpoint, so the same run starts again from step 0 (the trainer
        # says so); the metrics of that start are dropped like those past any resumed step
        state = TrainingState.from_dict(load_training_state(run_dir / STATE_FILE)) if (run_dir / STATE_FILE).is_file() else None
        check_writable(run_dir)
        remove_stale_temp_files(run_dir)
        return cfg, state
    existing = run_files(run_dir)
    if existing:
        names = ", ".join(p.name for p in existing)
        raise RunExistsError(
            f"{run_dir} already holds a training run ({names}); resume it, or choose another output folder",
            str(run_dir),
        )
    check_writable(run_dir)
    if cfg.seed is None:
        cfg = cfg.resolved(seed=secrets.randbelow(2**31))
    return cfg, None


class MetricsLog:
    """Append-only JSON-lines log; on resume, lines past the resumed step are dropped (atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Drop the lines past ``step`` (and lines cut short by a kill)."""
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
        """Append ``record`` as one JSON line (flushed)."""
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=False) + "\n")
            fh.flush()


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
