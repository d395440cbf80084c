"""Lazy attributes for package ``__init__`` modules (PEP 562), so that ``import pconv_kit`` stays cheap.

Importing torch takes seconds; a command-line ``--help`` or a mask generator should not pay for it. A package
lists what it exports and from where, and the module holding a name is imported the first time the name is
used (``pconv_kit.PConvUNet``, ``from pconv_kit import PConvUNet``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str, exports: Mapping[str, str], submodules: Iterable[str] = ()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a name to the module that defines it.

    Args:
        package: the package's ``__name__``.
        exports: ``{name: module}``, e.g. ``{"PConvUNet": "pconv_kit.models"}``.
        submodules: sub-modules reachable as attributes before anything imported them (``pconv_kit.train``).

    Example:
        >>> getattr_, dir_ = lazy_attributes("pkg", {"sqrt": "math"})
        >>> getattr_("sqrt")(9.0), "sqrt" in dir_()
        (3.0, True)
    """
    exports = dict(exports)
    subs = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        if name in subs:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*exports, *subs})

    return __getattr__, __dir__
