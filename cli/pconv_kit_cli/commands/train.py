"""``pconv-kit train``: train a PConvUNet from a folder of photos (a thin layer over :func:`pconv_kit.train.train`).

Every option is a key of :class:`pconv_kit.train.TrainConfig` (``--batch-size`` is ``batch_size``), so the
options are generated from the config's fields: a TOML file given with ``--config`` and the flags go through
the same validation. Precedence: defaults < ``--config`` file < flags; with ``--resume RUN_DIR`` the run's own
``config.toml`` < flags (only those that do not change the maths of the run).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from pconv_kit.errors import RunExistsError, VGGWeightsNotFoundError
from pconv_kit.train.config import RESUME_CHANGEABLE, TrainConfig
from pconv_kit_cli import options
from pconv_kit_cli.errors import EXIT_INTERRUPTED, EXIT_PARTIAL_FAILURE, CommandError, library_errors

EPILOG = """\b
Examples:
  # train on a folder of photos (searched recursively; 2% held out for validation); on a CPU the
  # cpu-small preset (the built-in model's recipe, no download), on CUDA the paper's (--preset)
  pconv-kit train --images photos/ --out runs/exp1

\b
  # a smaller model that trains on a CPU in minutes
  pconv-kit train --images photos/ --out runs/tiny --size 128 --layer-size 5 \\
      --base-channels 16 --batch-size 4 --steps 2000 --device cpu

\b
  # the paper's recipe on a GPU
  pconv-kit train --images places/ --out runs/places --preset paper --steps 200000

\b
  # the same settings from a TOML file (keys = option names with _), flags override it
  cat > train.toml <<'EOF'
  images = "photos/"
  size = 128
  layer_size = 5
  base_channels = 16
  batch_size = 4
  steps = 2000
  perceptual = false
  EOF
  pconv-kit train --config train.toml --out runs/tiny

\b
  # perceptual and style terms with a local VGG16 ImageNet weights file
  pconv-kit train --images photos/ --out runs/a --vgg-weights ~/weights/vgg16-397923af.pth

\b
  # masks from a folder of mask files (white = hole) instead of generated ones
  pconv-kit train --images photos/ --out runs/b --masks masks/ --mask-convention hole-white

\b
  # continue a stopped run exactly where it stopped, or raise --steps to go further
  pconv-kit train --resume runs/places
  pconv-kit train --resume runs/places --steps 300000

\b
  # the paper's second stage: fine-tune at lr 5e-5 with encoder BatchNorm frozen
  pconv-kit train --resume runs/places --finetune --steps 350000
  pconv-kit train --images photos/ --out runs/ft --finetune --init-weights runs/places/last.safetensors

\b
  # 4 GPUs on one machine (--batch-size is the global batch), then use the model
  torchrun --standalone --nproc_per_node=4 -m pconv_kit_cli train --images photos/ --out runs/ddp --batch-size 24
  pconv-kit fill damaged/ filled/ --masks masks/ --model runs/ddp/best.safetensors

\b
  # print the resolved config without training
  pconv-kit train --images photos/ --out runs/x --print-config

\b
Writes to RUN_DIR: config.toml, metrics.jsonl, samples/step_*.png (masked input | output |
composite | truth), last.safetensors, best.safetensors (best validation PSNR), training_state.pt and
summary.json. Ctrl-C finishes the current step, writes a checkpoint and exits (code 130). Exit codes:
0 done, 1 done but some image files could not be read (skipped), 2 bad arguments or config.
"""

# Options that come from pconv_kit_cli.options (shared with other commands) instead of being generated.
_SHARED = {"device": options.device, "seed": options.seed, "mask_convention": options.mask_convention}
_METAVARS = {"images": "DIR", "out": "RUN_DIR", "masks": "DIR", "init_weights": "PATH", "vgg_weights": "PATH"}
_NEGATIVE = {"perceptual": "--no-perceptual"}


def _option_for(f: dataclasses.Field[Any]) -> Any:
    """A Click option for config field ``f`` (default ``None``: unset flags leave the config alone)."""
    if f.name in _SHARED:
        return _SHARED[f.name]
    flag = "--" + f.name.replace("_", "-")
    meta = f.metadata
    help_text = meta["help"]
    t = str(f.type)
    if t.startswith("bool"):
        default = f.default
        negative = _NEGATIVE.get(f.name, "--no-" + f.name.replace("_", "-"))
        if default is not None:  # None: the preset decides (the help says so)
            help_text += f" [default: {'on' if default else 'off'}]"
        return click.option(f"{flag}/{negative}", f.name, default=None, help=help_text)
    if meta.get("kind") == "pair":
        lo, hi = f.default_factory()  # type: ignore[misc]
        return click.option(
            flag, f.name, nargs=2, type=float, default=None, metavar="LO HI", help=f"{help_text} [default: {lo:g} {hi:g}]"
        )
    if meta.get("kind") == "weights":
        return click.option(flag, f.name, type=str, default=None, metavar="FAMILY=W,...", help=help_text)
    if meta.get("kind") == "path":
        return click.option(flag, f.name, type=str, default=None, metavar=_METAVARS.get(f.name, "PATH"), help=help_text)
    if "choices" in meta:
        return click.option(
            flag, f.name, type=click.Choice(meta["choices"]), default=None, help=f"{help_text} [default: {f.default}]"
        )
    kind: type = int if t.startswith("int") else float
    default_text = "" if f.default is None else f" [default: {f.default:g}]"
    return click.option(flag, f.name, type=kind, default=None, help=help_text + default_text)


def _config_options(func: Any) -> Any:
    for f in reversed(dataclasses.fields(TrainConfig)):
        func = _option_for(f)(func)
    return func


def _explicit(ctx: click.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The config values the user actually gave on the command line (or through the environment)."""
    given = {ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT}
    out = {}
    for key, value in values.items():
        if ctx.get_parameter_source(key) in given and value is not None:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def _vgg_hint(exc: VGGWeightsNotFoundError) -> CommandError:
    return CommandError(
        f"{exc}\nHint: pass --vgg-weights PATH (a VGG16 ImageNet weights file, e.g. torchvision's "
        "vgg16-397923af.pth), or --no-perceptual to train with the pixel losses (valid, hole, TV) only."
    )


@click.command("train", epilog=EPILOG)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="TOML",
    help="Read settings from this TOML file (flat keys named like the options, with _ for -); flags override it.",
)
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    metavar="RUN_DIR",
    help="Continue the run in RUN_DIR exactly where its last checkpoint stopped. Flags may change only "
    + ", ".join("--" + k.replace("_", "-") for k in sorted(RESUME_CHANGEABLE - {"out"}))
    + " (raise --steps to go further; --finetune starts the second stage).",
)
@click.option("--print-config", is_flag=True, help="Print the resolved configuration as TOML and exit.")
@options.quiet
@_config_options
@click.pass_context
def train_command(
    ctx: click.Context,
    config_file: Path | None,
    resume_dir: Path | None,
    print_config: bool,
    quiet: bool,
    **values: Any,
) -> None:
    """Train a PConvUNet inpainting model from a folder of photos.

    Images (PNG, JPEG, WebP, TIFF, BMP; 8/16-bit; gray, RGB or RGBA) are cut into random square crops with
    random scale and flips; masks are generated on the fly, or drawn from --masks DIR (read with
    --mask-convention). The loss is the paper's (valid, hole, perceptual, style, TV; --no-perceptual keeps
    the pixel terms only). Adam at a constant --lr (2e-4), or --finetune at --finetune-lr (5e-5) with
    encoder BatchNorm frozen; gradient clipping; mixed precision on CUDA. Every option can also be set in a
    TOML file (--config). Under torchrun it trains on all processes with DistributedDataParallel.
    """
    from pconv_kit.train import resume_config, train  # the trainer (and torch): not needed for --help

    explicit = _explicit(ctx, values)
    with library_errors():
        if resume_dir is not None:
            if config_file is not None:
                raise CommandError("--config cannot be combined with --resume: a resumed run uses its own config.toml")
            out = explicit.pop("out", None)
            if out is not None and Path(out).resolve() != resume_dir.resolve():
                raise CommandError(f"--out {out} differs from --resume {resume_dir}; a run is resumed in its own folder")
            cfg = resume_config(resume_dir, **explicit)
        else:
            base = TrainConfig.from_toml(config_file) if config_file is not None else None
            cfg = TrainConfig.from_dict(explicit, base=base)
            missing = [opt for opt, key in (("--images DIR", "images"), ("--out RUN_DIR", "out")) if getattr(cfg, key) is None]
            if missing:
                raise CommandError(f"missing {' and '.join(missing)} (or set {' and '.join(m.split()[0][2:] for m in missing)} in --config)")
        if print_config:
            import torch

            device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
            click.echo(cfg.with_preset(device)[0].to_toml(), nl=False)
            return
        try:
            summary = train(cfg, resume=resume_dir is not None, quiet=quiet)
        except VGGWeightsNotFoundError as exc:
            raise _vgg_hint(exc) from exc
        except RunExistsError as exc:
            raise CommandError(
                f"{exc.run_dir} already holds a training run; continue it with: pconv-kit train --resume "
                f"{exc.run_dir} (or choose another --out)"
            ) from exc
    if summary.rank != 0:  # under torchrun only rank 0 reports
        return
    if summary.interrupted:  # the trainer has said where it stopped: add only the command that continues
        click.echo(f"continue with: pconv-kit train --resume {summary.run_dir}", err=True)
        raise SystemExit(EXIT_INTERRUPTED)
    _print_summary(summary, quiet)
    if summary.skipped_files:
        click.echo(f"{len(summary.skipped_files)} unreadable image file(s) were skipped (see the warnings above)", err=True)
        raise SystemExit(EXIT_PARTIAL_FAILURE)


def _print_summary(summary: Any, quiet: bool) -> None:
    ran = summary.final_step - summary.start_step
    if ran == 0:
        click.echo(f"nothing to do: {summary.run_dir} is at step {summary.final_step} of {summary.steps} (raise --steps to go further)")
        return
    lines = [f"done: step {summary.final_step} of {summary.steps} ({ran} run in {summary.elapsed_s:.1f} s, {summary.it_per_s:.2f} it/s)"]
    if summary.last_checkpoint:
        lines.append(f"  last weights: {summary.last_checkpoint}")
    if summary.best_checkpoint:
        lines.append(f"  best weights: {summary.best_checkpoint} (validation PSNR {summary.best_psnr:.2f} dB at step {summary.best_step})")
    lines.append(f"  fill images with: pconv-kit fill IN_DIR OUT_DIR --masks MASK_DIR --model {summary.run_dir}")
    click.echo("\n".join(lines[:1] if quiet else lines))


train_command.name = "train"
