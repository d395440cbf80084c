"""Average the weights of several checkpoints of one run into one model file (weight averaging, as in SWA).

Every parameter and every BatchNorm running statistic is the mean over the inputs, computed by
``torch.optim.swa_utils.AveragedModel`` (``use_buffers=True``); integer buffers (BatchNorm's
``num_batches_tracked``) are the last input's. The inputs must be checkpoints of the same
architecture, e.g. the ``checkpoints/step_*.safetensors`` that ``keep_every`` keeps along one low
learning-rate stage; averaging models from unrelated runs gives nonsense.

Usage:
    python tools/builtin_model/average_weights.py OUT.safetensors IN.safetensors [IN.safetensors ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.optim.swa_utils import AveragedModel

from pconv_kit.errors import PConvKitError
from pconv_kit.models import load_model, read_model_config, save_model


def average(paths: list[Path]) -> tuple[torch.nn.Module, list[str]]:
    """The mean model of ``paths`` and the steps the inputs' metadata names (``?`` where none)."""
    first = load_model(paths[0])
    averaged = AveragedModel(first, use_buffers=True)
    steps = []
    for path in paths:
        model = first if path == paths[0] else load_model(path)
        if model.config != first.config:
            raise SystemExit(f"{path} is a {model.config}, {paths[0]} a {first.config}: only one architecture averages")
        averaged.update_parameters(model)  # the first call copies, later ones keep the running mean
        steps.append(read_model_config(path)[1].get("pconv_kit.step", "?"))
    for mean, last in zip(averaged.module.buffers(), model.buffers()):
        if not mean.is_floating_point():  # a running mean of counts rounds at every step: keep the last count
            mean.copy_(last)
    return averaged.module, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("inputs", type=Path, nargs="+")
    args = parser.parse_args()
    try:
        model, steps = average(args.inputs)
    except PConvKitError as exc:  # unreadable, crafted or missing files: one line, nothing written
        raise SystemExit(f"average_weights.py: {exc}") from None
    save_model(model, args.out, metadata={"pconv_kit.averaged_steps": ",".join(steps)})
    print(f"wrote the mean of {len(args.inputs)} checkpoints (steps {', '.join(steps)}) to {args.out}")


if __name__ == "__main__":
    main()
