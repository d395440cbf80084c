"""The napari plugin of pconv-kit: a "Fill holes" widget and a sample image with its mask.

Install it with ``pip install "pconv-kit[napari]"``; napari finds it through the ``napari.manifest`` entry
point (the manifest is ``napari.yaml`` in this folder). Open the widget from napari's menu
*Plugins > Fill holes (pconv-kit)*, and the sample from *File > Open Sample > Chelsea the cat, with holes to
fill (pconv-kit)*.

Only :mod:`pconv_kit.napari.logic` (plain NumPy, no napari or Qt) and :mod:`pconv_kit.napari._sample_data`
can be imported without napari; ``_widget`` needs napari, magicgui and a Qt binding. Importing this package
imports none of them.
"""

from __future__ import annotations
