"""One module per command. Add a command by importing it here and listing it in ``COMMANDS``."""

from __future__ import annotations

import click

from pconv_kit_cli.commands.convert import convert_command
from pconv_kit_cli.commands.eval import eval_command
from pconv_kit_cli.commands.export import export_command
from pconv_kit_cli.commands.fill import fill
from pconv_kit_cli.commands.masks import masks
from pconv_kit_cli.commands.models import models_command
from pconv_kit_cli.commands.train import train_command

COMMANDS: list[click.Command] = [
    masks, fill, eval_command, convert_command, train_command, export_command, models_command,
]
