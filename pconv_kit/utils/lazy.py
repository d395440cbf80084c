"""Lazy attributes for package ``__init__`` modules (PEP 562), so that ``import pconv_kit`` stays cheap.

Importing torch takes seconds; a command-line ``--help`` or a mask generator should not pay for it. A package
lists what it exports and from where, and the module holding a name is imported the first time the name is
used (``pconv_kit.PConvUNet``, ``from pconv_kit import PConvUNet``).

One trap comes with laziness: importing a sub-module sets it as an attribute of its package, so once anything
imports ``pconv_kit.inpaint`` (the module), ``pconv_kit.inpaint`` would stop being the function of that name.
An eager ``from .inpaint import inpaint`` rebinds the name after the import; here the package's module class
does it instead, whenever the import system binds a sub-module over an exported name.
"""

from __future__ import annotations

import importlib
import sys
import types
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
    # an exported name that is also the name of the module defining it (pconv_kit.inpaint.inpaint)
    shadowed = {name for name, module in exports.items() if module == f"{package}.{name}"}
    if shadowed and isinstance(sys.modules.get(package), types.ModuleType):
        sys.modules[package].__class__ = _export_keeping_module(shadowed)

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        if name in subs:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*exports, *subs})

    return __getattr__, __dir__


def _export_keeping_module(names: frozenset[str] | set[str]) -> type[types.ModuleType]:
    """A module class that binds ``module.name`` instead of the sub-module ``package.name`` for ``names``."""
    keep = frozenset(names)

    class _ExportKeepingModule(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in keep and isinstance(value, types.ModuleType) and value.__name__ == f"{self.__name__}.{name}":
                value = getattr(value, name)  # the import system binding the sub-module: keep the export
            super().__setattr__(name, value)

    return _ExportKeepingModule
