"""Build the held-out evaluation set of the built-in model's card (docs/model_card.md).

Photos listed in HELD_OUT never enter training (see --train-dir below). Each is cut into two 512x512 crops (the
centre of the photo resized to a short side of 512, and a random crop of it resized to a short side of 640).
Every crop gets one mask per family (units, wide, boxes, blobs, thin) and per hole-ratio bin of the paper's
Table 1, drawn by the generators of eval_masks.py: other algorithms than the training generator
(pconv_kit.masks.MaskGenerator), so that the scores are not measured on the training distribution.

Layout (what `pconv-kit eval IMAGES MASKS --recursive` reads, reporting per family and per bin):
    OUT_DIR/images/<photo>_<crop>_<family>_bin<b>.png
    OUT_DIR/masks/<family>/<photo>_<crop>_<family>_bin<b>.png      (white = hole)

Usage:
    python tools/builtin_model/make_eval_set.py PHOTOS_DIR OUT_DIR [--train-dir DIR] [--size 512]
with --train-dir, also a folder of symbolic links to every photo that is not held out (the training photos).

    python tools/builtin_model/make_eval_set.py PHOTOS_DIR VAL_DIR --validation
builds a *validation* set in the same layout from 6 training photos instead (other crops, other mask seeds):
masks the model never trained on, on photos it did. Recipe choices are made on it, so that the held-out set
above only reports.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from eval_masks import FAMILIES, eval_mask

from pconv_kit.io import list_images, read_image, write_image

HELD_OUT = ("aero3", "butterfly", "grace_hopper", "gravel", "kleiber", "orange")
BINS = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
SIZE = 512


def _resize_short(image: np.ndarray, short: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = short / min(h, w)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(image, (max(short, round(w * scale)), max(short, round(h * scale))), interpolation=interp)


def crops(image: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The centre crop at a short side of ``size`` and a random crop at a short side of ``1.25 * size``."""
    centre = _resize_short(image, size)
    h, w = centre.shape[:2]
    out = [centre[(h - size) // 2 : (h - size) // 2 + size, (w - size) // 2 : (w - size) // 2 + size]]
    big = _resize_short(image, round(size * 1.25))
    h, w = big.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    out.append(big[y : y + size, x : x + size])
    return [np.ascontiguousarray(c) for c in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--train-dir", type=Path, help="also link every photo that is not held out here")
    parser.add_argument("--size", type=int, default=SIZE, help="side of the square crops (default 512)")
    parser.add_argument(
        "--validation", action="store_true", help="build the validation set from training photos (see above)"
    )
    args = parser.parse_args()
    photos = list_images(args.photos)
    held = [p for p in photos if p.stem in HELD_OUT]
    if len(held) != len(HELD_OUT):
        raise SystemExit(f"expected held-out photos {HELD_OUT} in {args.photos}; found {[p.stem for p in held]}")
    seed: tuple[int, ...] = ()
    if args.validation:
        training = [p for p in photos if p.stem not in HELD_OUT]
        held = training[:: max(1, len(training) // len(HELD_OUT))][: len(HELD_OUT)]  # evenly spaced, by name
        seed = (1804,)
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    for family in FAMILIES:
        (args.out / "masks" / family).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([2018, *seed])
    n = 0
    for k, photo in enumerate(held):
        image = read_image(photo)[..., :3]
        for c, crop in enumerate(crops(image, args.size, rng)):
            for f, family in enumerate(FAMILIES):
                for b, (lo, hi) in enumerate(BINS):
                    stem = f"{photo.stem}_{c}_{family}_bin{b}"
                    mask_rng = np.random.default_rng([*seed, k, c, f, b])
                    holes = eval_mask(family, args.size, args.size, lo, hi, mask_rng)
                    write_image(args.out / "images" / f"{stem}.png", crop)
                    write_image(args.out / "masks" / family / f"{stem}.png", holes)
                    n += 1
    print(f"wrote {n} image/mask pairs to {args.out}")
    if args.train_dir and not args.validation:
        args.train_dir.mkdir(parents=True, exist_ok=True)
        for p in photos:
            if p.stem not in HELD_OUT and not (args.train_dir / p.name).exists():
                (args.train_dir / p.name).symlink_to(p.resolve())
        print(f"linked {len(photos) - len(held)} training photos in {args.train_dir}")


if __name__ == "__main__":
    main()
