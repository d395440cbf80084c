"""The training configuration: one flat dataclass, loaded from and written to TOML, validated in one place.

Every field is a key of ``config.toml`` and an option of ``pconv-kit train`` (``batch_size`` is
``--batch-size``). Values from a TOML file and from command-line flags go through the same
:meth:`TrainConfig.from_dict` / :meth:`TrainConfig.validate`, so they are checked the same way, and an
unknown key is an error that suggests the closest known one.

Example:
    >>> cfg = TrainConfig(images="photos", out="runs/a", steps=1000, batch_size=4)
    >>> cfg2 = TrainConfig.from_toml_string(cfg.to_toml())
    >>> cfg2 == cfg
    True
    >>> TrainConfig.from_dict({"images": "photos", "out": "runs/a", "stpes": 10})
    Traceback (most recent call last):
    ...
    pconv_kit.errors.ConfigError: unknown config key 'stpes' (did you mean 'steps'?)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from pconv_kit.conventions import MASK_FILE_CONVENTIONS
from pconv_kit.errors import ConfigError
from pconv_kit.losses.weights import DEFAULT_WEIGHTS as _LOSS_WEIGHTS  # torch-free, like this module

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["TrainConfig", "RESUME_CHANGEABLE", "load_config", "config_field_help"]

_AMP = ("auto", "off", "bf16", "fp16")
_DEVICES = ("auto", "cpu", "cuda")
_CONVENTIONS = MASK_FILE_CONVENTIONS
_MASK_KINDS = ("units", "wide", "boxes", "blobs", "thin", "mixed")  # pconv_kit.masks.MASK_KINDS, without its import

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"base_channels": 64, "perceptual": True, "loss_tv": _LOSS_WEIGHTS["tv"], "loss_ssim": _LOSS_WEIGHTS["ssim"]},
    "cpu-small": {"base_channels": 24, "perceptual": False, "loss_tv": 0.5, "loss_ssim": 10.0},
}
"""Values a preset gives the keys left unset (``None``): the paper's recipe, and the built-in model's for CPUs."""
_PRESET_CHOICES = ("auto", *PRESETS)


def _f(default: Any, help: str, **meta: Any) -> Any:
    """A dataclass field with its help text and validation metadata."""
    meta["help"] = help
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda d=tuple(default): d, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that defines a training run (see ``docs/training.md`` for the recipe).

    ``images`` and ``out`` are required by :func:`pconv_kit.train.train`; every other field has the
    paper's value or a sensible default. ``seed=None`` draws a seed at start and records it in
    ``RUN_DIR/config.toml``, so a resumed run continues with the same one.

    ``batch_size`` is the **global** batch: with ``torchrun --nproc_per_node=N`` each process takes
    ``batch_size / N`` samples of every step, so the same config gives the same batches on any number of
    processes.
    """

    # ---------------------------------------------------------------- data
    images: str | None = _f(None, "Folder of training images (searched recursively).", kind="path", group="data")
    out: str | None = _f(None, "Run directory for config, metrics, samples and checkpoints.", kind="path")
    size: int = _f(256, "Side of the square training crops, in pixels.", min=8)
    crop_scale: tuple[float, float] = _f(
        (0.5, 1.0),
        "Random scale: each crop covers this fraction (drawn uniformly from [lo, hi]) of the image's shorter "
        "side before it is resized to size (never zooming in past the native resolution when the image is "
        "large enough).",
        kind="pair",
        lo=0.0,
        hi=1.0,
    )
    hflip: bool = _f(True, "Random horizontal flips.")
    vflip: bool = _f(False, "Random vertical flips.")
    val_fraction: float = _f(
        0.02,
        "Fraction of the image files held out for validation, chosen by a hash of their relative path "
        "(at least one file when there are two or more); 0 disables validation.",
        min=0.0,
        max=0.5,
    )
    val_images: int = _f(8, "How many held-out images each validation evaluates (centre crops, fixed masks).", min=1)
    workers: int = _f(2, "Data-loading worker processes (0 loads in the main process).", min=0)
    # ---------------------------------------------------------------- masks
    masks: str | None = _f(None, "Folder of mask files to draw from (default: generate masks on the fly).", kind="path", group="masks")
    mask_convention: str = _f("hole-white", "How the files in masks encode holes.", choices=_CONVENTIONS)
    mask_augment: bool = _f(True, "Randomly dilate, rotate, translate and crop mask files.")
    hole_ratio: tuple[float, float] = _f(
        (0.05, 0.5), "Range of hole-area fractions of generated masks.", kind="pair", lo=0.0, hi=1.0
    )
    mask_kind: str = _f(
        "mixed",
        "Family of generated masks: units, wide, boxes, blobs, thin, or mixed (each mask drawn by one family "
        "chosen with mask_weights).",
        choices=_MASK_KINDS,
    )
    mask_weights: str | None = _f(
        None,
        "Family weights of mask_kind = mixed, e.g. 'wide=0.3,blobs=0.3,boxes=0.2,thin=0.1,units=0.1' (families "
        "left out weigh 0; default: the library's MIXED_WEIGHTS).",
        kind="weights",
    )
    # ---------------------------------------------------------------- model
    layer_size: int | None = _f(
        None, "PConvUNet encoder depth (default 7, or that of init_weights); size must be a multiple of 2**layer_size.", min=1, group="model")
    base_channels: int | None = _f(
        None, "PConvUNet width of the first layer (default: the preset's, 64 or 24, or that of init_weights).", min=1
    )
    refine_channels: int | None = _f(
        None,
        "Width of PConvUNet's full-resolution refinement (not in the paper; default 0 = off, or that of "
        "init_weights; a refinement added to init_weights without one starts as the identity).",
        min=0,
    )
    init_weights: str | None = _f(
        None, "Start from these model weights (.safetensors or a run directory), e.g. for the finetune stage.", kind="path"
    )
    sync_bn: bool = _f(False, "Use SyncBatchNorm across processes (torchrun on GPUs).")
    channels_last: bool = _f(False, "Use the channels_last memory format (often faster on GPUs).")
    # ---------------------------------------------------------------- loss
    preset: str = _f(
        "auto",
        "Defaults of the width, the perceptual/style terms, and the SSIM and TV weights: paper (the paper's "
        "recipe: base_channels 64, perceptual and style on, TV 0.1, no SSIM), cpu-small (what trains on a CPU, the "
        "built-in model's recipe: base_channels 24, perceptual off, TV 0.5, SSIM 10), or auto (paper on CUDA, "
        "cpu-small on the CPU). Keys given explicitly win.",
        choices=_PRESET_CHOICES,
        group="loss",
    )
    perceptual: bool | None = _f(
        None,
        "Use the perceptual and style terms (needs VGG16 ImageNet weights; default: the preset's; when the "
        "preset turns them on and no weights are found, they are turned off with a warning).",
    )
    vgg_weights: str | None = _f(None, "VGG16 weights file (.pth or .safetensors) for the perceptual/style terms.", kind="path")
    loss_valid: float = _f(_LOSS_WEIGHTS["valid"], "Weight of the valid-pixel L1 term.", min=0.0)
    loss_hole: float = _f(_LOSS_WEIGHTS["hole"], "Weight of the hole L1 term.", min=0.0)
    loss_perceptual: float = _f(_LOSS_WEIGHTS["perceptual"], "Weight of the perceptual term.", min=0.0)
    loss_style: float = _f(_LOSS_WEIGHTS["style"], "Weight of each style term.", min=0.0)
    loss_tv: float | None = _f(None, "Weight of the total-variation term (default: the preset's, 0.1 or 0.5).", min=0.0)
    loss_ssim: float | None = _f(
        None, "Weight of 1 - SSIM of the composite (not in the paper; 0 = off; default: the preset's, 0 or 10).", min=0.0
    )
    loss_hole_mse: float = _f(
        _LOSS_WEIGHTS["hole_mse"], "Weight of the squared error in the holes (not in the paper; 0 = off).", min=0.0
    )
    # ---------------------------------------------------------------- optimisation
    steps: int = _f(100_000, "Train until this step (a resumed run may raise it to go further).", min=1, group="optimisation")
    batch_size: int = _f(6, "Global batch size (split over torchrun processes).", min=1)
    lr: float = _f(2e-4, "Adam learning rate of the first stage.", min=0.0, exclusive=True)
    finetune: bool = _f(False, "Fine-tuning stage: encoder BatchNorm frozen, learning rate finetune_lr.")
    finetune_lr: float = _f(5e-5, "Adam learning rate of the fine-tuning stage.", min=0.0, exclusive=True)
    refine_lr_scale: float = _f(
        1.0,
        "Learning rate of the refinement (refine_channels) as a multiple of the stage's; a refinement added to "
        "trained weights starts at zero and can learn faster than the rest.",
        min=0.0,
        exclusive=True,
    )
    grad_clip: float = _f(1.0, "Clip the gradient norm to this value (0 disables clipping).", min=0.0)
    amp: str = _f("auto", "Mixed precision: auto (bf16/fp16 on CUDA, off on CPU), off, bf16 or fp16.", choices=_AMP)
    device: str = _f("auto", "auto, cpu or cuda.", choices=_DEVICES)
    seed: int | None = _f(None, "Random seed (default: drawn at start and recorded in config.toml).", min=0)
    deterministic: bool = _f(False, "Ask PyTorch for deterministic kernels (slower on CUDA).")
    # ---------------------------------------------------------------- logging and checkpoints
    log_every: int = _f(10, "Write a metrics.jsonl line every this many steps.", min=1, group="logging and checkpoints")
    val_every: int = _f(1000, "Validate (PSNR, SSIM, sample grid) every this many steps.", min=1)
    checkpoint_every: int = _f(1000, "Write last.safetensors and the training state every this many steps.", min=1)
    keep_every: int = _f(
        0,
        "Also keep the weights of every this many steps as checkpoints/step_NNNNNNN.safetensors (0 = off), e.g. "
        "to average the last few.",
        min=0,
    )
    grid_rows: int = _f(4, "Validation images shown in each sample grid.", min=1)

    # ------------------------------------------------------------------ construction
    @classmethod
    def keys(cls) -> list[str]:
        """Names of all config keys, in definition order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], base: TrainConfig | None = None) -> TrainConfig:
        """Build a validated config from ``data`` (``-`` in keys is read as ``_``), on top of ``base``.

        Raises:
            ConfigError: unknown key, wrong type or value out of range; the message names the key.
        """
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for raw_key, value in data.items():
            key = str(raw_key).replace("-", "_")
            if key not in known:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
                raise ConfigError(f"unknown config key {raw_key!r}{hint}")
            values[key] = _coerce(known[key], value)
        cfg = dataclasses.replace(base, **values) if base is not None else cls(**values)
        cfg.validate()
        return cfg

    @classmethod
    def from_toml_string(cls, text: str, source: str = "<string>", base: TrainConfig | None = None) -> TrainConfig:
        """Parse TOML text (a flat table of config keys) into a validated config."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
        for key, value in data.items():
            if isinstance(value, dict) and key != "mask_weights":
                raise ConfigError(
                    f"{source}: [{key}] is a table, but the config is a flat list of keys (e.g. 'steps = 1000')"
                )
        try:
            return cls.from_dict(data, base=base)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], base: TrainConfig | None = None) -> TrainConfig:
        """Read and validate a TOML config file.

        Raises:
            ConfigError: unreadable file, invalid TOML, unknown key or invalid value.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        return cls.from_toml_string(text, source=str(path), base=base)

    # ------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """The config as plain values (tuples become lists; ``None`` values are kept)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_toml(self) -> str:
        """TOML text of this config, grouped with comments; keys whose value is ``None`` are left out."""
        lines = ["# pconv-kit train configuration; every key is also an option: batch_size -> --batch-size"]
        for f in fields(self):
            if "group" in f.metadata:
                lines.append(f"\n# {f.metadata['group']}")
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, tuple):
                lines.append(f"{f.name} = [{', '.join(_toml_value(v) for v in value)}]")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every value's type and range, and the relations between them.

        Raises:
            ConfigError: naming the key, the expected values and the value found.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            _coerce(f, value)  # types
            _check_range(f, value)
        lo, hi = self.crop_scale
        if lo <= 0:
            raise ConfigError(f"crop_scale must satisfy 0 < lo <= hi <= 1; got {list(self.crop_scale)}", param="crop_scale")
        if self.layer_size is not None and self.size % (2**self.layer_size):
            m = 2**self.layer_size
            lower, upper = self.size // m * m, (self.size // m + 1) * m
            sizes = f"size {lower} or {upper}" if lower else f"size {upper}"
            raise ConfigError(
                f"size must be a multiple of 2**layer_size = {m} (layer_size={self.layer_size}); got size "
                f"{self.size}: use {sizes}, or a smaller layer_size",
                param="size",
            )
        if self.mask_weights is not None and self.mask_kind != "mixed":
            raise ConfigError(
                f"mask_weights apply to mask_kind = mixed only; got mask_kind = {self.mask_kind!r}", param="mask_weights"
            )
        if self.layer_size is not None and self.layer_size > 12:
            raise ConfigError(f"layer_size must be at most 12; got {self.layer_size}", param="layer_size")

    def resolved(self, **changes: Any) -> TrainConfig:
        """A validated copy with ``changes`` applied."""
        cfg = dataclasses.replace(self, **changes)
        cfg.validate()
        return cfg

    def with_preset(self, device_type: str) -> tuple[TrainConfig, str]:
        """This config with its preset applied to the keys left unset, and a line saying what the preset set.

        ``preset = "auto"`` becomes ``"paper"`` on CUDA and ``"cpu-small"`` elsewhere. ``base_channels`` is left
        to ``init_weights`` when that is given.

        Example:
            >>> cfg, note = TrainConfig(loss_tv=0.2).with_preset("cpu")
            >>> cfg.preset, cfg.base_channels, cfg.perceptual, cfg.loss_tv, cfg.loss_ssim
            ('cpu-small', 24, False, 0.2, 10.0)
            >>> note
            'preset cpu-small (auto on the CPU): base_channels 24, perceptual off, loss_ssim 10'
        """
        name = self.preset if self.preset != "auto" else ("paper" if device_type == "cuda" else "cpu-small")
        changes: dict[str, Any] = {}
        for key, value in PRESETS[name].items():
            if getattr(self, key) is None and not (key == "base_channels" and self.init_weights is not None):
                changes[key] = value
        shown = ", ".join(
            f"{k} {('on' if v else 'off') if isinstance(v, bool) else f'{v:g}'}" for k, v in changes.items()
        )
        why = f" (auto on {'CUDA' if device_type == 'cuda' else 'the CPU'})" if self.preset == "auto" else ""
        return self.resolved(preset=name, **changes), f"preset {name}{why}" + (f": {shown}" if shown else "")

    @property
    def stage_lr(self) -> float:
        """The learning rate of the current stage (``finetune_lr`` when ``finetune``, else ``lr``)."""
        return self.finetune_lr if self.finetune else self.lr


RESUME_CHANGEABLE = frozenset(
    {
        "images",
        "out",
        "steps",
        "workers",
        "device",
        "deterministic",
        "channels_last",
        "vgg_weights",
        "finetune",
        "log_every",
        "val_every",
        "checkpoint_every",
        "keep_every",
        "grid_rows",
    }
)
"""Keys a resumed run may change. Everything else defines the maths of the run and must stay as it was
(``finetune`` may only be switched on, which starts the paper's second stage)."""


def config_field_help(name: str) -> str:
    """The help text of config key ``name``."""
    return next(f.metadata["help"] for f in fields(TrainConfig) if f.name == name)


def load_config(path: str | os.PathLike[str]) -> TrainConfig:
    """Read ``path`` (a TOML file, or a run directory holding ``config.toml``).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "train.toml"
        >>> _ = p.write_text('steps = 500\\nbatch-size = 2\\n')
        >>> cfg = load_config(p)
        >>> cfg.steps, cfg.batch_size
        (500, 2)
    """
    path = Path(path)
    if not path.is_dir():
        return TrainConfig.from_toml(path)
    path = path / "config.toml"
    if not path.is_file():
        raise ConfigError(f"{path.parent} holds no config.toml; is it a run directory written by pconv-kit train?")
    cfg = TrainConfig.from_toml(path)
    try:
        keys = set(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):  # pragma: no cover - from_toml read it
        keys = {"mask_kind", "preset"}
    changes: dict[str, Any] = {}
    # A run written before mask families existed drew its masks with the units family: keep them on resume.
    if "mask_kind" not in keys:
        changes["mask_kind"] = "units"
    # A run written before presets existed had the paper's values for the keys it did not record.
    if "preset" not in keys:
        changes["preset"] = "paper"
        changes.update({k: v for k, v in PRESETS["paper"].items() if k != "base_channels" and getattr(cfg, k) is None})
    return cfg.resolved(**changes) if changes else cfg


# ---------------------------------------------------------------------- helpers
def _type_name(f: dataclasses.Field[Any]) -> str:
    t = str(f.type)
    if f.metadata.get("kind") == "pair":
        return "a list of two numbers [lo, hi]"
    if f.metadata.get("kind") == "path" or t.startswith("str"):
        return "a string"
    if t.startswith("bool"):
        return "true or false"
    if t.startswith("int"):
        return "an integer"
    return "a number"


def _coerce(f: dataclasses.Field[Any], value: Any) -> Any:
    """Check ``value``'s type for field ``f`` and convert it (ints to floats, lists to tuples, paths to str)."""
    t = str(f.type)
    optional = "None" in t
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{f.name} must be {_type_name(f)}; got nothing", param=f.name)
    kind = f.metadata.get("kind")
    if kind == "path":
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{f.name} must be a non-empty path string; got {value!r}", param=f.name)
        return value
    if kind == "weights":
        if isinstance(value, Mapping):  # a TOML inline table {wide = 0.3, blobs = 0.3}
            value = ",".join(f"{k}={v}" for k, v in value.items())
        if not isinstance(value, str):
            raise ConfigError(f"{f.name} must be a string like 'wide=0.3,blobs=0.3'; got {value!r}", param=f.name)
        from pconv_kit.errors import InputValueError
        from pconv_kit.masks.generator import format_weights, parse_weights

        try:
            return format_weights(parse_weights(value))
        except InputValueError as exc:
            raise ConfigError(f"{f.name}: {exc}", param=f.name) from None
    if kind == "pair":
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ConfigError(f"{f.name} must be a list of two numbers [lo, hi]; got {value!r}", param=f.name)
        pair = tuple(_number(f.name, v) for v in value)
        return pair
    if t.startswith("bool"):
        if not isinstance(value, bool):
            raise ConfigError(f"{f.name} must be true or false; got {value!r}", param=f.name)
        return value
    if t.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{f.name} must be an integer; got {value!r}", param=f.name)
        return value
    if t.startswith("float"):
        return _number(f.name, value)
    if t.startswith("str"):
        if not isinstance(value, str):
            raise ConfigError(f"{f.name} must be a string; got {value!r}", param=f.name)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{f.name} must be one of {', '.join(choices)}; got {value!r}", param=f.name)
        return value
    raise AssertionError(f"unhandled config type {t}")  # pragma: no cover


def _toml_value(value: Any) -> str:
    """One TOML value (strings escaped by tomli-w)."""
    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number; got {value!r}", param=name)
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite; got {value!r}", param=name)
    return float(value)


def _check_range(f: dataclasses.Field[Any], value: Any) -> None:
    if value is None:
        return
    meta = f.metadata
    if meta.get("kind") == "pair":
        lo, hi = value
        if not (meta["lo"] <= lo <= hi <= meta["hi"]):
            raise ConfigError(
                f"{f.name} must be [lo, hi] with {meta['lo']:g} <= lo <= hi <= {meta['hi']:g}; got {list(value)}"
            )
        return
    if "min" in meta:
        low = meta["min"]
        if meta.get("exclusive") and not value > low:
            raise ConfigError(f"{f.name} must be > {low:g}; got {value!r}", param=f.name)
        if not value >= low:
            raise ConfigError(f"{f.name} must be >= {low:g}; got {value!r}", param=f.name)
    if "max" in meta and not value <= meta["max"]:
        raise ConfigError(f"{f.name} must be <= {meta['max']:g}; got {value!r}", param=f.name)
