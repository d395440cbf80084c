"""One module per command, imported only when its command runs (or its own ``--help`` is asked for).

``COMMANDS`` maps each command name to ``(module, attribute, short help)``. The short help is what
``pconv-kit --help`` lists, so the group's help needs no command module (and no torch); a test checks that it
equals the command's own. Add a command by writing its module and adding its line here.
"""

from __future__ import annotations

COMMANDS: dict[str, tuple[str, str, str]] = {
    "masks": ("pconv_kit_cli.commands.masks", "masks", "Generate random masks and write them as PNG files."),
    "fill": (
        "pconv_kit_cli.commands.fill", "fill", "Fill the holes of every image in IN_DIR and write the results to OUT_DIR.",
    ),
    "eval": (
        "pconv_kit_cli.commands.eval", "eval_command",
        "Fill each (image, mask) pair of IMAGES_DIR and MASKS_DIR and score the results.",
    ),
    "convert": (
        "pconv_kit_cli.commands.convert", "convert_command",
        "Convert the checkpoint SRC of another partial-convolution project into a pconv-kit model DST.",
    ),
    "train": (
        "pconv_kit_cli.commands.train", "train_command", "Train a PConvUNet inpainting model from a folder of photos.",
    ),
    "export": (
        "pconv_kit_cli.commands.export", "export_command",
        "Export a PConvUNet to ONNX (dynamic batch, height and width by default).",
    ),
    "models": (
        "pconv_kit_cli.commands.models", "models_command",
        "List the registered models: name, the default, built in or downloaded, size on this machine.",
    ),
}
