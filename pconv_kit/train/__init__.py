"""Training: :func:`train` a :class:`~pconv_kit.models.PConvUNet` from a plain folder of photos.

Example:
    >>> from pconv_kit.train import TrainConfig, train
    >>> cfg = TrainConfig(images="photos/", out="runs/first", steps=1000, batch_size=4, perceptual=False)
    >>> # summary = train(cfg)                            # a fresh run
    >>> # summary = train(resume_config("runs/first", steps=2000), resume=True)   # go further

See ``docs/training.md`` for the recipe, the run-directory layout, resuming and multi-GPU training.

The trainer (and torch) is imported on first use; the configuration (:mod:`pconv_kit.train.config`) alone is
cheap, which keeps ``pconv-kit train --help`` fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pconv_kit.utils.lazy import lazy_attributes

_EXPORTS = {
    **dict.fromkeys(("RESUME_CHANGEABLE", "TrainConfig", "load_config"), "pconv_kit.train.config"),
    "train": "pconv_kit.train.trainer",
    **dict.fromkeys(("evaluate", "make_grid"), "pconv_kit.train.validation"),
    **dict.fromkeys(("TrainSummary", "resume_config"), "pconv_kit.train.rundir"),
}
__getattr__, __dir__ = lazy_attributes(
    __name__,
    _EXPORTS,
    ("build", "checkpoint", "config", "data", "display", "distributed", "rundir", "runtime", "step", "trainer", "validation"),
)

if TYPE_CHECKING:
    from pconv_kit.train.config import RESUME_CHANGEABLE, TrainConfig, load_config
    from pconv_kit.train.rundir import TrainSummary, resume_config
    from pconv_kit.train.trainer import train
    from pconv_kit.train.validation import evaluate, make_grid

__all__ = [
    "TrainConfig",
    "TrainSummary",
    "train",
    "resume_config",
    "load_config",
    "evaluate",
    "make_grid",
    "RESUME_CHANGEABLE",
]
