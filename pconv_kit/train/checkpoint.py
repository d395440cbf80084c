"""Run-directory layout and the full training state (for exact resume), saved without pickled objects.

A run directory holds::

    config.toml                  the configuration as used (resolved seed, layer_size, ...)
    metrics.jsonl                one JSON object per line: training losses, throughput, validation metrics
    samples/step_0001000.png     validation grids: masked input | output | composite | truth
    checkpoints/step_0001000.safetensors   weights kept every keep_every steps (when keep_every > 0)
    last.safetensors (+ .json)   latest model weights (pconv_kit.models.save_model format)
    best.safetensors (+ .json)   weights with the best validation PSNR
    training_state.pt            model + optimizer + grad scaler + step + RNG states, for --resume
    summary.json                 written when a run ends: steps, time, checkpoints, metrics

The training state is a plain ``dict`` of tensors, numbers, strings, lists and dicts, written with
``torch.save`` through :func:`pconv_kit.utils.atomic_write` and read back with
``torch.load(..., weights_only=True)``: no pickled Python objects, so loading a state cannot run code.
It holds the model weights itself, so it is always self-consistent even if a kill lands between two writes.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pconv_kit.errors import InputValueError
from pconv_kit.utils.files import atomic_write

if TYPE_CHECKING:
    from pconv_kit.train.config import TrainConfig

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "STATE_FILE",
    "LAST_FILE",
    "BEST_FILE",
    "SUMMARY_FILE",
    "SAMPLES_DIR",
    "KEPT_DIR",
    "kept_weights_path",
    "STATE_FORMAT",
    "TrainingState",
    "capture_rng_state",
    "restore_rng_state",
    "save_training_state",
    "load_training_state",
    "state_dict_digest",
    "weights_metadata",
    "run_files",
]

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
STATE_FILE = "training_state.pt"
LAST_FILE = "last.safetensors"
BEST_FILE = "best.safetensors"
SUMMARY_FILE = "summary.json"
SAMPLES_DIR = "samples"
KEPT_DIR = "checkpoints"
STATE_FORMAT = "pconv-kit/training-state/1"


def run_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The files of ``run_dir`` that mark it as a training run (those that exist)."""
    run_dir = Path(run_dir)
    return [run_dir / n for n in (CONFIG_FILE, STATE_FILE, LAST_FILE, METRICS_FILE) if (run_dir / n).exists()]


def kept_weights_path(run_dir: str | os.PathLike[str], step: int) -> Path:
    """Where ``keep_every`` keeps the weights of ``step``.

    Example:
        >>> kept_weights_path("runs/a", 1500).as_posix()
        'runs/a/checkpoints/step_0001500.safetensors'
    """
    return Path(run_dir) / KEPT_DIR / f"step_{step:07d}.safetensors"


def weights_metadata(step: int, cfg: TrainConfig, val: dict[str, Any] | None = None) -> dict[str, str]:
    """Metadata of ``last.safetensors`` / ``best.safetensors``: step, stage, seed and the validation metrics.

    Example:
        >>> from pconv_kit.train.config import TrainConfig
        >>> weights_metadata(10, TrainConfig(seed=1), {"step": 10, "psnr": 21.123456789})
        {'pconv_kit.step': '10', 'pconv_kit.stage': 'train', 'pconv_kit.seed': '1', 'pconv_kit.val_psnr': '21.1235'}
    """
    meta = {
        "pconv_kit.step": str(step),
        "pconv_kit.stage": "finetune" if cfg.finetune else "train",
        "pconv_kit.seed": str(cfg.seed),
    }
    if val:
        meta.update({f"pconv_kit.val_{k}": f"{v:.6g}" for k, v in val.items() if k in ("psnr", "ssim", "hole_l1")})
    return meta


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) global RNG states as tensors and plain Python values."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)  # type: ignore[misc]
    state: dict[str, Any] = {
        "python": [int(py_version), torch.tensor(py_state, dtype=torch.int64), py_gauss],
        "numpy": [str(np_name), torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos), int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured (CUDA states only when the device count matches)."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((int(py_version), tuple(int(v) for v in py_state.tolist()), py_gauss))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(gauss)))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


@dataclass
class TrainingState:
    """Everything :func:`~pconv_kit.train.train` needs to resume a run exactly, as saved in ``training_state.pt``.

    :meth:`to_dict` gives the on-disk dict (the keys below, with ``train_files``, ``global_batch`` and
    ``next_sample`` under ``"data"``); :meth:`from_dict` reads it back, also from older runs that lack the
    optional keys.

    Attributes:
        step: the last completed step.
        model: the model's state dict (CPU tensors).
        optimizer: the Adam optimizer's state dict.
        rng: Python, NumPy and torch RNG states from :func:`capture_rng_state`.
        steps: the run's configured number of steps at this checkpoint.
        scaler: the float16 gradient scaler's state dict (``{}`` without one).
        best_psnr: best validation PSNR so far (``None`` without validation).
        best_step: the step of ``best_psnr``.
        train_files: number of training files (``None`` if not recorded); the data order depends on it.
        global_batch: images per step over all processes.
        next_sample: index of the next sample in the run's sample stream (``step * global_batch``).
        seed: the run's seed.
        config: the run's configuration as TOML text.
        world_size: number of processes that wrote it.
        elapsed_s: training-loop time of the run so far, over all its parts.
        skipped_files: unreadable files skipped so far.
        torch_version: the PyTorch version that wrote it.
    """

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    steps: int = 0
    scaler: dict[str, Any] = field(default_factory=dict)
    best_psnr: float | None = None
    best_step: int | None = None
    train_files: int | None = None
    global_batch: int = 0
    next_sample: int = 0
    seed: int = 0
    config: str = ""
    world_size: int = 1
    elapsed_s: float = 0.0
    skipped_files: list[str] = field(default_factory=list)
    torch_version: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The dict :func:`save_training_state` writes (plain values and tensors only).

        Example:
            >>> s = TrainingState(step=3, model={}, optimizer={}, rng={}, global_batch=2, next_sample=6)
            >>> s.to_dict()["data"], TrainingState.from_dict(s.to_dict()) == s
            ({'train_files': None, 'global_batch': 2, 'next_sample': 6}, True)
        """
        return {
            "step": int(self.step),
            "steps": int(self.steps),
            "model": self.model,
            "optimizer": self.optimizer,
            "scaler": self.scaler,
            "best_psnr": self.best_psnr,
            "best_step": self.best_step,
            "rng": self.rng,
            "data": {"train_files": self.train_files, "global_batch": self.global_batch, "next_sample": self.next_sample},
            "seed": int(self.seed),
            "config": self.config,
            "world_size": int(self.world_size),
            "elapsed_s": float(self.elapsed_s),
            "skipped_files": list(self.skipped_files),
            "torch_version": self.torch_version,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TrainingState:
        """Read a dict written by :meth:`to_dict` (or by an older pconv-kit: missing optional keys get defaults).

        Raises:
            InputValueError: ``step``, ``model``, ``optimizer`` or ``rng`` is missing.
        """
        missing = [k for k in ("step", "model", "optimizer", "rng") if k not in state]
        if missing:
            raise InputValueError(f"the training state lacks {', '.join(missing)}")
        data = state.get("data") or {}
        train_files = data.get("train_files")
        return cls(
            step=int(state["step"]),
            model=state["model"],
            optimizer=state["optimizer"],
            rng=state["rng"],
            steps=int(state.get("steps", 0)),
            scaler=state.get("scaler") or {},
            best_psnr=state.get("best_psnr"),
            best_step=state.get("best_step"),
            train_files=None if train_files is None else int(train_files),
            global_batch=int(data.get("global_batch", 0)),
            next_sample=int(data.get("next_sample", 0)),
            seed=int(state.get("seed", 0)),
            config=str(state.get("config", "")),
            world_size=int(state.get("world_size", 1)),
            elapsed_s=float(state.get("elapsed_s", 0.0)),
            skipped_files=[str(p) for p in state.get("skipped_files", [])],
            torch_version=str(state.get("torch_version", "")),
        )


def save_training_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Write ``state`` atomically with ``torch.save`` (adds the format marker).

    ``state`` must contain only tensors, numbers, strings, ``None`` and lists/tuples/dicts of them, so
    that :func:`load_training_state` can read it with ``weights_only=True``.
    """
    payload = dict(state)
    payload["format"] = STATE_FORMAT
    _check_plain(payload, "state")
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


_PLAIN = (int, float, bool, str, type(None))


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError on anything ``torch.load(weights_only=True)`` would refuse (e.g. str subclasses)."""
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:
        return
    if type(obj) in (list, tuple):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    if type(obj) is dict:
        for k, v in obj.items():
            _check_plain(k, f"{where} key {k!r}")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where} is a {type(obj).__qualname__}; a training state may hold only tensors and plain values")


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training state with ``torch.load(..., weights_only=True)`` onto the CPU.

    Raises:
        InputValueError: missing, unreadable or not a pconv-kit training state.
    """
    path = Path(path)
    if not path.is_file():
        raise InputValueError(f"no training state at {path}; is {path.parent} a run directory written by pconv-kit train?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt zip, pickle with disallowed globals, ...
        raise InputValueError(f"{path} is not a readable training state: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise InputValueError(f"{path} is not a pconv-kit training state (format {found!r}, expected {STATE_FORMAT!r})")
    return state


def state_dict_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names, dtypes, shapes and bytes of a state dict's tensors (order-independent).

    Two models have the same digest exactly when their parameters and buffers are bitwise equal.

    Example:
        >>> a = torch.nn.Linear(2, 2)
        >>> state_dict_digest(a.state_dict()) == state_dict_digest({k: v.clone() for k, v in a.state_dict().items()})
        True
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


