"""``pconv-kit models``: the registered models, where they come from and whether they are on this machine."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table

from pconv_kit.registry import model_statuses

EPILOG = """\b
Examples:
  # the models --model NAME accepts (fill, eval, export, train --init-weights)
  pconv-kit models
  # the same as JSON, with local paths, sizes, URLs and licences
  pconv-kit models --json
"""


def _size(size: int | None) -> str:
    return "-" if size is None else f"{size / 1e6:.1f} MB"


@click.command("models", epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON instead of a table.")
def models_command(as_json: bool) -> None:
    """List the registered models: name, the default, built in or downloaded, size on this machine.

    Built-in models ship inside the package and work offline. The others are downloaded (and converted) into
    the cache on first use, checked against their published SHA-256; their size shows once they are there.
    """
    statuses = model_statuses()
    if as_json:
        rows = [
            {
                "name": s.name, "default": s.default, "source": s.source, "local": None if s.local is None else str(s.local),
                "size_bytes": s.size_bytes, "url": s.url, "description": s.description, "license": s.license,
            }
            for s in statuses
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    console = Console()
    rows = [
        (f"{s.name} (default)" if s.default else s.name, s.source,
         _size(s.size_bytes) if s.local is not None else "not yet downloaded", s.description)
        for s in statuses
    ]
    if console.width < 110:  # a narrow terminal: one block per model, so no column is squeezed to nothing
        console.print("Registered models (use one with --model NAME):", highlight=False)
        for name, source, here, description in rows:
            console.print(f"\n[bold]{escape(name)}[/bold]  {escape(source)}; {here}", highlight=False)
            console.print(Padding(escape(description), (0, 0, 0, 2)), highlight=False)
        return
    table = Table(title="Registered models (use one with --model NAME)", title_justify="left")
    for column in ("name", "source", "on this machine"):
        table.add_column(column, no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1)
    for name, source, here, description in rows:
        table.add_row(escape(name), escape(source), here, escape(description))
    console.print(table)
