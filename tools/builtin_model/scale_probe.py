"""A measurement behind the model card's "what was tried": does a second pass at half resolution help in wide holes?

For every pair of an evaluation-set layout (make_eval_set.py) in the given families, the model fills the hole
at full resolution and at half resolution (`inpaint`'s "resize" strategy: area-downscaled image, a pixel valid only if all four under it are;
the fill upscaled bicubically), and the composite of each variant is scored with pconv-kit eval's metrics:

    full      the full-resolution fill (what pconv-kit fill does)
    half      the half-resolution fill
    avg       the mean of the two
    blend32   full near the hole's border, half deep inside (weight = distance to the nearest known pixel / 32)

Prints the mean margin over the better of Telea and Navier-Stokes *on each pair* (their scores taken from a
``pconv-kit eval --json`` report of the same pairs), PSNR dB / SSIM x 1000, per family and hole-ratio bin. That
baseline picks the better OpenCV method pair by pair, so these margins are lower than the model card's, which
compare means with the better method's mean.

Usage:
    python tools/builtin_model/scale_probe.py SET_DIR BASELINES.json [--model M] [--families blobs,boxes,wide]
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

import cv2
import numpy as np
import torch

from pconv_kit.evaluate import score
from pconv_kit.inpaint import Inpainter
from pconv_kit.io import read_image, read_mask

VARIANTS = ("full", "half", "avg", "blend32")


def variants(inpainter: Inpainter, image: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """The composite of each variant, ``(H, W, 3)`` float in ``[0, 1]`` rounded to 8 bits like a written file."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    v = torch.from_numpy(valid)[None, None].float()
    full = inpainter.predict_tensor(x, v)
    # inpaint's "resize" strategy at a quarter of the pixels: the half-resolution pass, upscaled
    halver = Inpainter(inpainter.model, strategy="resize", max_full_pixels=valid.size // 4)
    half = halver.predict_tensor(x, v)
    depth = torch.from_numpy(cv2.distanceTransform((~valid).astype(np.uint8), cv2.DIST_L2, 5))[None, None]
    weight = (depth / 32).clamp(0, 1)
    preds = {"full": full, "half": half, "avg": (full + half) / 2}
    preds["blend32"] = full * (1 - weight) + half * weight
    out = {}
    for name, pred in preds.items():
        comp = (x * v + pred * (1 - v))[0].permute(1, 2, 0).numpy()
        out[name] = (np.round(comp * 255) / 255).astype(np.float32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set_dir", type=Path)
    parser.add_argument("baselines", type=Path, help="pconv-kit eval --json report with telea and ns")
    parser.add_argument("--model", default=None)
    parser.add_argument("--families", default="blobs,boxes,wide")
    args = parser.parse_args()
    base = {}
    for pair in json.loads(args.baselines.read_text())["pairs"]:
        m = pair["metrics"]
        base[pair["mask"]] = (pair["bin"], max(m["telea"]["psnr"], m["ns"]["psnr"]), max(m["telea"]["ssim"], m["ns"]["ssim"]))
    inpainter = Inpainter(args.model, device="cpu")
    cells: dict[tuple[str, str, str], list[tuple[float, float]]] = collections.defaultdict(list)
    for family in args.families.split(","):
        for mask_path in sorted((args.set_dir / "masks" / family).glob("*.png")):
            image = read_image(args.set_dir / "images" / mask_path.name)[..., :3]
            valid = read_mask(mask_path) > 0.5  # mask files: white = hole; read_mask gives 1 = valid
            b, psnr, ssim = base[f"{family}/{mask_path.name}"]
            for name, comp in variants(inpainter, image, valid).items():
                s = score(comp, image.astype(np.float32) / 255)
                for key in ((name, family, b), (name, family, "all"), (name, "all", b), (name, "all", "all")):
                    cells[key].append((s["psnr"] - psnr, s["ssim"] - ssim))
    bins = sorted({k[2] for k in cells if k[2] != "all"}) + ["all"]
    print("variant family " + " ".join(bins))
    for name in VARIANTS:
        for family in [*args.families.split(","), "all"]:
            row = [np.mean(cells[(name, family, b)], axis=0) for b in bins]
            print(f"{name} {family} " + " ".join(f"{p:+.2f}/{s * 1000:+.1f}" for p, s in row))


if __name__ == "__main__":
    main()
