"""Mapping of library errors to CLI messages and exit codes.

Exit codes: 0 success, 1 some inputs failed (the others were processed), 2 bad arguments or an error that
stopped the command before it did any work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import click

from pconv_kit.errors import PConvKitError

EXIT_OK = 0
EXIT_PARTIAL_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class CommandError(click.ClickException):
    """A one-line error printed as ``Error: ...`` with exit code 2."""

    exit_code = EXIT_USAGE


@contextlib.contextmanager
def library_errors() -> Iterator[None]:
    """Turn library errors (bad input, missing files or weights) into a one-line message and exit code 2."""
    try:
        yield
    except PConvKitError as exc:
        raise CommandError(str(exc) + _flag_hint(exc.param)) from exc
    except OSError as exc:  # missing or read-only folders, a full disk, ...
        raise CommandError(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc)) from exc
    except MemoryError as exc:
        raise CommandError(f"out of memory{f' ({exc})' if str(exc) else ''}; {_MEMORY_HINT}") from exc
    except RuntimeError as exc:  # torch reports failed allocations as RuntimeError subclasses
        if type(exc).__name__ != "OutOfMemoryError" and "can't allocate memory" not in str(exc):
            raise
        raise CommandError(f"out of memory: {str(exc).splitlines()[0]}; {_MEMORY_HINT}") from exc


def _flag_hint(param: str | None) -> str:
    """`` (--flag)`` for the option of the running command whose parameter is ``param``, else ``""``.

    The library names its parameters (``overwrite``); the command's option of that name says how to set it.
    """
    ctx = click.get_current_context(silent=True)
    if param is None or ctx is None:
        return ""
    for option in ctx.command.params:
        if option.name == param and isinstance(option, click.Option):
            return f" ({' / '.join(option.opts + option.secondary_opts)})"
    return ""


_MEMORY_HINT = "a smaller --batch-size needs less (and for fill, --strategy crop on large images)"
