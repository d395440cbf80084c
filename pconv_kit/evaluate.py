"""Score a model on (image, mask) pairs, binned by hole ratio like Table 1 of Liu et al. 2018.

For each pair the holes are filled by the model (and by OpenCV's ``cv2.inpaint`` baselines, Telea and
Navier-Stokes, on the same pairs), the **composite** (known pixels from the original, holes from the method)
is compared with the original, and L1, PSNR and SSIM are averaged per hole-ratio bin
``[0.01, 0.1), [0.1, 0.2), ..., [0.5, 0.6]``.

Metrics (on RGB, or gray, in ``[0, 1]``; the alpha channel is ignored):

- L1: mean absolute error over all pixels and channels (reported in percent, as in the paper);
- PSNR: :func:`kornia.metrics.psnr` with ``max_val=1``; identical images are capped at ``PSNR_CAP`` dB;
- SSIM: mean of :func:`kornia.metrics.ssim` (Gaussian window 11, sigma 1.5).

The model's composite goes through the image's dtype (e.g. uint8), as a saved output would.

Mask families: a mask file in a sub-folder of the masks folder (read with ``recursive=True``) belongs to the
family named by its first folder, ``MASKS/wide/a.png`` to ``wide``; the report then has one table per family
besides the table of all pairs (:meth:`EvalReport.table` with ``family=``). Masks directly in the masks folder
have no family.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> from pconv_kit.io import write_image, write_mask
    >>> from pconv_kit.models import PConvUNet
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "img").mkdir(); (d / "msk").mkdir()
    >>> yy, xx = np.mgrid[0:32, 0:32]
    >>> write_image(d / "img" / "a.png", np.stack([yy * 6, xx * 6, yy * 3 + xx * 3], 2).astype(np.uint8))
    >>> valid = np.ones((32, 32), np.float32); valid[8:16, 8:20] = 0        # 9.4% holes
    >>> write_mask(d / "msk" / "a.png", valid)
    >>> report = evaluate_folder(d / "img", d / "msk", PConvUNet(layer_size=3, base_channels=4), device="cpu")
    >>> report.methods, report.pairs[0].bin
    (['pconv', 'telea', 'ns'], '0.01-0.1')
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import kornia
import numpy as np
import torch

from pconv_kit import baselines as _baselines
from pconv_kit.baselines import (
    ALL_BASELINES,
    BASELINES,
    PATCHMATCH_MISSING,
    check_patch_size,
    opencv_inpaint,
    patchmatch_available,
    patchmatch_inpaint,
)
from pconv_kit.errors import InputValueError, PConvKitError
from pconv_kit.inpaint import DEFAULT_MAX_FULL_PIXELS, Inpainter
from pconv_kit.io import list_images, read_image, read_mask, to_float
from pconv_kit.losses.inpainting import SSIM_WINDOW
from pconv_kit.masks.files import fit_mask_to_image, mask_stem
from pconv_kit.models import PConvUNet
from pconv_kit.utils.files import write_json

__all__ = [
    "HOLE_BINS",
    "BASELINES",
    "ALL_BASELINES",
    "patchmatch_available",
    "patchmatch_inpaint",
    "PSNR_CAP",
    "PAIRINGS",
    "MODEL_METHOD",
    "bin_label",
    "psnr_ssim",
    "score",
    "opencv_inpaint",
    "pair_files",
    "PairResult",
    "EvalReport",
    "evaluate_folder",
]

HOLE_BINS: tuple[tuple[float, float], ...] = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))
"""Hole-ratio bins of the paper's Table 1; each is ``[lo, hi)``, the last ``[0.5, 0.6]``."""

PSNR_CAP = 100.0
"""PSNR reported for identical images (whose PSNR is infinite)."""

MODEL_METHOD = "pconv"
"""Name of the model's column."""

METRICS = ("l1", "psnr", "ssim")


def bin_label(ratio: float) -> str | None:
    """The label (``"0.1-0.2"``) of the bin holding ``ratio``, or ``None`` outside all bins.

    Example:
        >>> bin_label(0.05), bin_label(0.6), bin_label(0.7)
        ('0.01-0.1', '0.5-0.6', None)
    """
    for i, (lo, hi) in enumerate(HOLE_BINS):
        last = i == len(HOLE_BINS) - 1
        if lo <= ratio < hi or (last and ratio == hi):
            return f"{lo:g}-{hi:g}"
    return None


def psnr_ssim(
    output: torch.Tensor, target: torch.Tensor, window_size: int = SSIM_WINDOW
) -> tuple[torch.Tensor, torch.Tensor]:
    """PSNR and SSIM of each image of ``output`` against ``target`` (the one implementation of both metrics).

    PSNR is :func:`kornia.metrics.psnr` with ``max_val=1`` per image, capped at :data:`PSNR_CAP` (identical
    images, whose PSNR is infinite, get the cap); SSIM is the mean of :func:`kornia.metrics.ssim`'s map (Gaussian
    window ``window_size``, sigma 1.5) per image.

    Args:
        output: ``(N, C, H, W)`` float in ``[0, 1]``.
        target: same shape as ``output``.
        window_size: SSIM window (odd; images need sides larger than ``window_size // 2``).

    Returns:
        ``(psnr, ssim)``: two ``(N,)`` float tensors on ``output``'s device, PSNR in dB.

    Example:
        >>> a = torch.zeros(2, 3, 16, 16); b = a.clone(); b[1, :, :4] = 0.1
        >>> psnr, ssim = psnr_ssim(b, a)
        >>> [round(v, 2) for v in psnr.tolist()], ssim.shape
        ([100.0, 26.02], torch.Size([2]))
    """
    psnr = torch.stack([kornia.metrics.psnr(output[i : i + 1], target[i : i + 1], 1.0) for i in range(len(output))])
    psnr = torch.nan_to_num(psnr, nan=PSNR_CAP, posinf=PSNR_CAP).clamp(max=PSNR_CAP)
    ssim = kornia.metrics.ssim(output, target, window_size=window_size, max_val=1.0).mean(dim=(1, 2, 3))
    return psnr, ssim


def score(result: np.ndarray, original: np.ndarray, window_size: int = SSIM_WINDOW) -> dict[str, float]:
    """L1 (percent), PSNR (dB) and SSIM of ``result`` against ``original``.

    PSNR and SSIM come from :func:`psnr_ssim`.

    Args:
        result: ``(H, W, C)`` float in ``[0, 1]``.
        original: same shape.
        window_size: SSIM window (odd; images need sides larger than ``window_size // 2``).

    Example:
        >>> a = np.zeros((16, 16, 3), np.float32); b = a.copy(); b[:4] = 0.1
        >>> s = score(b, a)
        >>> round(s["l1"], 3), round(s["psnr"], 2)
        (2.5, 26.02)
    """
    if result.shape != original.shape or result.ndim != 3:
        raise InputValueError(f"result and original must have the same (H, W, C) shape; got {result.shape} and {original.shape}")
    a = torch.from_numpy(np.ascontiguousarray(result, np.float32)).permute(2, 0, 1)[None]
    b = torch.from_numpy(np.ascontiguousarray(original, np.float32)).permute(2, 0, 1)[None]
    l1 = float((a - b).abs().mean()) * 100.0
    psnr, ssim = psnr_ssim(a, b, window_size)
    return {"l1": l1, "psnr": float(psnr[0]), "ssim": float(ssim[0])}


# ---------------------------------------------------------------------------------------------- pairing

PAIRINGS = ("auto", "stem", "order")
"""Accepted values of ``pairing``: by file stem, by sorted order, or ``"auto"`` (stems when any match)."""


def pair_files(
    images: Sequence[Path], masks: Sequence[Path], pairing: str = "auto"
) -> tuple[list[tuple[Path, Path]], list[Path], str]:
    """Pair images with masks.

    ``"stem"``: the mask with the image's stem (``a.jpg`` <- ``a.png`` / ``a_mask.png``). ``"order"``: the
    i-th sorted image with the ``i % len(masks)``-th sorted mask (a fixed mask set reused over the images).
    ``"auto"``: ``"stem"`` if any image has a same-stem mask, else ``"order"``.

    Returns:
        ``(pairs, unmatched_images, pairing_used)``.
    """
    if pairing not in PAIRINGS:
        raise InputValueError(f"pairing must be one of {PAIRINGS}; got {pairing!r}", param="pairing")
    by_stem: dict[str, Path] = {}
    for mask in sorted(masks):
        by_stem.setdefault(mask_stem(mask), mask)
    if pairing == "auto":
        pairing = "stem" if any(img.stem in by_stem for img in images) else "order"
    if pairing == "order":
        if not masks:
            return [], list(images), pairing
        ordered = sorted(masks)
        return [(img, ordered[i % len(ordered)]) for i, img in enumerate(sorted(images))], [], pairing
    pairs = [(img, by_stem[img.stem]) for img in sorted(images) if img.stem in by_stem]
    return pairs, [img for img in sorted(images) if img.stem not in by_stem], pairing


# ---------------------------------------------------------------------------------------------- report


@dataclass
class PairResult:
    """Scores of one (image, mask) pair: ``metrics[method] = {"l1", "psnr", "ssim"}``; ``family``: the mask's family
    (its first sub-folder in the masks folder), or ``None``."""

    image: str
    mask: str
    hole_ratio: float
    bin: str | None
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    family: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)  # each method's time to fill this pair


@dataclass
class EvalReport:
    """All pair scores, the failures, and the per-bin averages (:meth:`table`)."""

    methods: list[str]
    pairs: list[PairResult]
    failures: list[dict[str, str]]
    pairing: str
    settings: dict[str, Any] = field(default_factory=dict)

    def families(self) -> list[str]:
        """The mask families of the scored pairs, sorted (empty when no mask is in a family sub-folder)."""
        return sorted({p.family for p in self.pairs if p.family is not None})

    def table(self, family: str | None = None) -> list[dict[str, Any]]:
        """One row per bin (all bins, empty ones with ``count == 0``) plus ``"other"`` (if any) and ``"all"``.

        Args:
            family: only the pairs of this mask family; ``None``: every pair.

        Each row: ``{"bin", "count", "<method>": {"l1", "psnr", "ssim"} or None}``.
        """
        pairs = self.pairs if family is None else [p for p in self.pairs if p.family == family]
        labels = [f"{lo:g}-{hi:g}" for lo, hi in HOLE_BINS]
        groups: dict[str, list[PairResult]] = {label: [] for label in labels}
        other = [p for p in pairs if p.bin is None]
        for p in pairs:
            if p.bin is not None:
                groups[p.bin].append(p)
        if other:
            groups["other"] = other
        groups["all"] = list(pairs)
        rows = []
        for label, members in groups.items():
            row: dict[str, Any] = {"bin": label, "count": len(members)}
            for method in self.methods:
                row[method] = (
                    {m: float(np.mean([p.metrics[method][m] for p in members])) for m in METRICS} if members else None
                )
            rows.append(row)
        return rows

    def seconds_per_image(self) -> dict[str, float]:
        """Each method's mean time to fill one pair, in seconds (reading and scoring not included)."""
        timed = {m: [p.seconds[m] for p in self.pairs if m in p.seconds] for m in self.methods}
        return {m: float(np.mean(v)) for m, v in timed.items() if v}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable: settings, methods, the binned tables (all pairs, each family), times, every pair,
        failures."""
        return {
            "settings": self.settings,
            "pairing": self.pairing,
            "methods": self.methods,
            "seconds_per_image": self.seconds_per_image(),
            "bins": [list(b) for b in HOLE_BINS],
            "table": self.table(),
            "families": {family: self.table(family) for family in self.families()},
            "pairs": [asdict(p) for p in self.pairs],
            "failures": self.failures,
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON, atomically (creating the folder if needed)."""
        write_json(path, self.to_dict())


# ---------------------------------------------------------------------------------------------- evaluation


def _usable_baselines(baselines: Sequence[str], patch_size: int) -> tuple[list[str], dict[str, str]]:
    """The baselines that can run here, and why the others are left out (PatchMatch without its package)."""
    unknown = [b for b in baselines if b not in ALL_BASELINES]
    if unknown:
        raise InputValueError(f"unknown baseline(s) {unknown}; choose from {list(ALL_BASELINES)}", param="baselines")
    skipped = {}
    if "patchmatch" in baselines:
        check_patch_size(patch_size)
        if not _baselines.patchmatch_available():
            skipped["patchmatch"] = PATCHMATCH_MISSING
            baselines = [b for b in baselines if b != "patchmatch"]
    return list(baselines), skipped


def _find_pairs(
    images_dir: Path, masks_dir: Path, recursive: bool, pairing: str
) -> tuple[list[tuple[Path, Path]], list[Path], str]:
    """``(pairs, images without a mask, the pairing used)`` of two folders."""
    images = list_images(images_dir, recursive=recursive)
    masks = list_images(masks_dir, recursive=recursive)
    if not images:
        raise InputValueError(f"no images found in {images_dir}", param="images_dir")
    if not masks:
        raise InputValueError(f"no masks found in {masks_dir}", param="masks_dir")
    return pair_files(images, masks, pairing)


def _score_pair(
    pair: PairResult, image_path: Path, mask_path: Path, mask_convention: str, inpainter: Inpainter,
    baselines: Sequence[str], radius: float, patch_size: int,
) -> PairResult:
    """Fill one pair with the model and every baseline; scores, hole ratio, family and seconds into ``pair``."""
    image = read_image(image_path)
    h, w = image.shape[:2]
    # the rule of pconv-kit fill: same aspect ratio, or a failure
    valid = fit_mask_to_image(read_mask(mask_path, mask_convention) > 0.5, h, w)[0]
    ratio = float(1.0 - valid.mean())
    if ratio == 0.0:
        raise InputValueError("the mask has no hole")
    color = image[..., :3] if image.shape[2] == 4 else image
    original = to_float(color)
    started = time.perf_counter()
    filled = to_float(inpainter(np.ascontiguousarray(color), valid))
    pair.seconds = {MODEL_METHOD: time.perf_counter() - started}
    pair.metrics[MODEL_METHOD] = score(filled, original)
    for method in baselines:
        started = time.perf_counter()
        if method == "patchmatch":
            composite = patchmatch_inpaint(color, valid, patch_size)
        else:
            composite = opencv_inpaint(color, valid, method, radius)
        pair.seconds[method] = time.perf_counter() - started
        pair.metrics[method] = score(composite, original)
    parts = Path(pair.mask).parts
    pair.hole_ratio, pair.bin, pair.family = round(ratio, 6), bin_label(ratio), parts[0] if len(parts) > 1 else None
    return pair


def evaluate_folder(
    images_dir: str | os.PathLike[str],
    masks_dir: str | os.PathLike[str],
    model: PConvUNet | str | os.PathLike[str] | Inpainter | None = None,
    *,
    baselines: Sequence[str] = ("telea", "ns"),
    radius: float = 5.0,
    patch_size: int = 3,
    mask_convention: str = "hole-white",
    pairing: str = "auto",
    recursive: bool = False,
    limit: int | None = None,
    device: str | torch.device | None = None,
    strategy: str = "auto",
    max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
    tta: int = 1,
    on_pair: Callable[[str, str | None], None] | None = None,
) -> EvalReport:
    """Fill each (image, mask) pair with the model and the baselines and score the composites.

    Args:
        images_dir: folder of ground-truth images.
        masks_dir: folder of mask files, read with ``mask_convention``; a mask of another size with the same
            aspect ratio is resized (nearest neighbour) to its image, another aspect ratio is a failure (the
            rule of ``pconv-kit fill``, :func:`~pconv_kit.masks.files.fit_mask_to_image`). With ``recursive``, a
            mask's first sub-folder names its family.
        model: as in :func:`pconv_kit.inpaint`; ``None`` is the built-in model.
        baselines: names from :data:`ALL_BASELINES` (empty: the model only). ``"patchmatch"`` is left out when
            ``pypatchmatch`` is not installed, and the report's ``settings["skipped_baselines"]`` says why.
        radius: ``cv2.inpaint`` radius.
        patch_size: PatchMatch's patch side.
        mask_convention: ``"hole-white"`` (default) or ``"valid-white"``.
        pairing: ``"auto"``, ``"stem"`` or ``"order"`` (see :func:`pair_files`).
        recursive: search sub-folders.
        limit: score at most this many pairs.
        device, strategy, max_full_pixels, tta: as in :func:`pconv_kit.inpaint` (ignored when ``model`` is an
            :class:`~pconv_kit.inpaint.Inpainter`).
        on_pair: called after each pair with ``(image name, failure reason or None)``.

    Raises:
        InputValueError: bad folders or options, or no pair at all.
    """
    baselines, skipped = _usable_baselines(baselines, patch_size)
    if limit is not None and limit < 1:
        raise InputValueError(f"limit must be >= 1; got {limit}", param="limit")
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    pairs, unmatched, used = _find_pairs(images_dir, masks_dir, recursive, pairing)
    inpainter = (
        model
        if isinstance(model, Inpainter)
        else Inpainter(model, device=device, strategy=strategy, max_full_pixels=max_full_pixels, tta=tta)
    )
    methods = [MODEL_METHOD, *baselines]
    results: list[PairResult] = []
    failures = [{"image": p.relative_to(images_dir).as_posix(), "reason": "no mask with this stem"} for p in unmatched]
    if on_pair is not None:
        for row in failures:
            on_pair(row["image"], row["reason"])
    for image_path, mask_path in pairs[:limit]:
        name = image_path.relative_to(images_dir).as_posix()
        reason = None
        try:
            pair = PairResult(name, mask_path.relative_to(masks_dir).as_posix(), 0.0, "")
            results.append(_score_pair(pair, image_path, mask_path, mask_convention, inpainter, baselines,
                                       radius, patch_size))
        except (PConvKitError, OSError, ValueError, cv2.error) as exc:
            reason = str(exc)
            failures.append({"image": name, "reason": reason})
        if on_pair is not None:
            on_pair(name, reason)
    settings = {
        "images_dir": str(images_dir),
        "masks_dir": str(masks_dir),
        "model": str(model) if isinstance(model, (str, os.PathLike)) else type(inpainter.model).__name__,
        "mask_convention": mask_convention,
        "tta": inpainter.tta,
        "radius": radius,
        "patch_size": patch_size,
        "skipped_baselines": skipped,
        "ssim_window": SSIM_WINDOW,
        "psnr_cap_db": PSNR_CAP,
    }
    return EvalReport(methods, results, failures, used, settings)
