"""Root pytest configuration: keep the GUI module of the napari plugin out of collection when napari is absent.

pytest imports every module of ``pconv_kit`` to collect its docstring examples (``--doctest-modules``).
``pconv_kit/napari/_widget.py`` imports magicgui (and napari when it runs), which the base install and the
``dev`` extra do not bring; ``pip install "pconv-kit[napari]"`` does. The plugin's plain-NumPy logic and its
sample data are collected either way.
"""

from __future__ import annotations

from importlib.util import find_spec

collect_ignore: list[str] = []
if find_spec("napari") is None or find_spec("magicgui") is None:
    collect_ignore.append("pconv_kit/napari/_widget.py")
