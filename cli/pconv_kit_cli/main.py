"""Entry point of the ``pconv-kit`` console script: a Click group whose commands live one per module.

The group imports a command's module only when that command is used, so ``pconv-kit --help`` and the help of
light commands (``masks``) start without torch; see :mod:`pconv_kit_cli.commands`.
"""

from __future__ import annotations

import importlib

import click

from pconv_kit import __version__
from pconv_kit_cli.commands import COMMANDS

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use, from :data:`~pconv_kit_cli.commands.COMMANDS`."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands or name not in COMMANDS:
            return super().get_command(ctx, name)
        module, attribute, _ = COMMANDS[name]
        command = getattr(importlib.import_module(module), attribute)
        self.add_command(command, name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list with the short help of :data:`COMMANDS`, without importing the command modules."""
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx) if name in COMMANDS]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="pconv-kit")
def cli() -> None:
    """pconv-kit: image inpainting with partial convolutions (Liu et al. 2018).

    Tensors use 1 = valid pixel, 0 = hole. Mask *files* default to white = hole (like OpenCV, LaMa and
    IOPaint); every command that reads or writes masks takes --mask-convention hole-white|valid-white.
    """
