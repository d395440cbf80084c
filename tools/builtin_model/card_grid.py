"""Draw the model card's grid of fills: per row, the masked input, the model's fill, cv2.inpaint Telea and
Navier-Stokes (radius 5), and the original, for pairs of the held-out evaluation set (make_eval_set.py).

Usage:
    python tools/builtin_model/card_grid.py EVALSET OUT.jpg STEM [STEM ...] [--model PATH] [--tile 192]
STEM names a pair, e.g. `kleiber_0_blobs_bin4` (its mask is EVALSET/masks/<family>/<STEM>.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from pconv_kit.evaluate import opencv_inpaint
from pconv_kit.inpaint import Inpainter
from pconv_kit.io import from_float, read_image, read_mask, write_image

COLUMNS = ("input", "pconv-kit", "Telea", "Navier-Stokes", "original")


def row(inpainter: Inpainter, image: np.ndarray, valid: np.ndarray, tile: int) -> np.ndarray:
    """One grid row of ``tile``-pixel squares (holes of the input shown in white)."""
    masked = image.copy()
    masked[~valid] = 255
    fills = [masked, inpainter(image, valid)]
    fills += [from_float(opencv_inpaint(image, valid, m), np.uint8) for m in ("telea", "ns")]
    fills.append(image)
    tiles = [cv2.resize(f, (tile, tile), interpolation=cv2.INTER_AREA) for f in fills]
    gap = np.full((tile, 4, 3), 255, np.uint8)
    return np.concatenate([x for t in tiles for x in (t, gap)][:-1], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evalset", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("stems", nargs="+")
    parser.add_argument("--model", default=None, help="weights (default: the built-in model)")
    parser.add_argument("--tile", type=int, default=192)
    args = parser.parse_args()
    inpainter = Inpainter(args.model, device="cpu")
    rows = []
    for stem in args.stems:
        family = stem.split("_")[-2]
        image = read_image(args.evalset / "images" / f"{stem}.png")[..., :3]
        valid = read_mask(args.evalset / "masks" / family / f"{stem}.png") > 0.5
        rows.append(row(inpainter, image, valid, args.tile))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1], axis=0)
    write_image(args.out, grid, overwrite=True)
    print(f"wrote {args.out} ({grid.shape[1]}x{grid.shape[0]}); columns: {', '.join(COLUMNS)}")


if __name__ == "__main__":
    main()
