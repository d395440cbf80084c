"""Regenerate docs/images/napari_fill.jpg: the napari plugin's widget after a fill, in a real napari window.

The script opens napari, loads the plugin's sample (File > Open Sample > Chelsea the cat, with holes to fill),
paints one more stroke on its holes layer with the Labels brush, docks the "Fill holes" widget, clicks Fill (built-in model, test-time
augmentation x2) and waits for the worker, then saves a screenshot of the whole window.
For the picture only, the filled layer is shifted to the right of the input so that the input with its
mask and the result are side by side (the widget adds it on top of the input).

It needs a display with OpenGL. On a headless machine use Xvfb with Mesa's software renderer, e.g.

    apt-get install xvfb libgl1-mesa-dri
    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python tools/napari_screenshot.py

with ``pip install "pconv-kit[napari]"`` (or napari and a Qt binding) in that environment.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import napari
import numpy as np
from PIL import Image
from qtpy.QtWidgets import QApplication

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "napari_fill.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUTPUT, help="JPEG to write (default: %(default)s)")
    parser.add_argument("--size", type=int, nargs=2, default=(1280, 640), metavar=("W", "H"), help="window size")
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality")
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari: pconv-kit Fill holes")
    viewer.window.resize(*args.size)
    viewer.open_sample("pconv-kit", "chelsea")  # the plugin's sample contribution: the photo and its holes
    holes = viewer.layers["chelsea holes"]
    holes.brush_size = 12
    for t in np.linspace(0.0, 1.0, 40):  # one more stroke, painted as napari's brush paints (Labels.paint)
        holes.paint((round(272 - 25 * t), round(170 + 170 * t)), 1)
    _, widget = viewer.window.add_plugin_dock_widget("pconv-kit", "Fill holes")
    widget.tta_combo.value = 2

    app = QApplication.instance()
    worker = widget.start_fill()
    if worker is None:
        raise SystemExit("the widget refused to fill (see the notification)")
    deadline = time.monotonic() + 300
    while not widget.fill_button.enabled:
        app.processEvents()
        time.sleep(0.05)
        if time.monotonic() > deadline:
            raise SystemExit("the fill did not finish in 5 minutes")
    if "chelsea filled" not in viewer.layers:
        raise SystemExit(f"no result layer; widget status: {widget.status.value!r}")

    source = viewer.layers["chelsea"]
    result = viewer.layers["chelsea filled"]
    result.translate = (0, source.data.shape[1] + 12)  # side by side, for the picture only
    viewer.layers.selection.active = viewer.layers["chelsea holes"]
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.05)

    pixels = viewer.screenshot(canvas_only=False, flash=False)
    rgb = np.asarray(pixels)[..., :3]
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=args.quality, optimize=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(buffer.getvalue())
    print(f"wrote {args.out} ({rgb.shape[1]} x {rgb.shape[0]}, {len(buffer.getvalue()) // 1024} KiB)")
    viewer.close()


if __name__ == "__main__":
    main()
