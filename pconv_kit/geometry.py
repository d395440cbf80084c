"""Image geometry for filling images of any size: reflect padding to a multiple, boxes around hole clusters.

:func:`reflect_pad` lets a model that needs sides divisible by ``2 ** layer_size`` take any image;
:func:`hole_boxes` finds the parts of a large image that need the model at all (strategy ``"crop"`` of
:func:`pconv_kit.inpaint`).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from pconv_kit.errors import InputValueError, ShapeError

__all__ = ["Box", "hole_boxes", "reflect_pad"]

Box = tuple[int, int, int, int]
"""``(top, left, bottom, right)`` of a box in pixels; bottom and right are exclusive."""

def _reflect_indices(size: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Source indices of a reflect-101 padding (``dcb|abcd|cba``) of any width, repeating as needed."""
    idx = torch.arange(-before, size + after, device=device)
    if size == 1:
        return torch.zeros_like(idx)
    period = 2 * (size - 1)
    idx = torch.remainder(idx, period)
    return torch.where(idx >= size, period - idx, idx)


def reflect_pad(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """Reflect-pad the last two dimensions of ``x`` up to multiples of ``multiple`` (centred).

    Unlike ``F.pad(mode="reflect")`` the padding may be wider than the image (it reflects back and forth).

    Args:
        x: ``(..., H, W)`` tensor.
        multiple: the padded height and width are the smallest multiples of it that are ``>= H, W``.

    Returns:
        ``(padded, (top, left, H, W))``; crop back with ``padded[..., top:top + H, left:left + W]``.

    Example:
        >>> padded, (top, left, h, w) = reflect_pad(torch.arange(6.0).view(1, 1, 2, 3), 4)
        >>> padded.shape, (top, left, h, w)
        (torch.Size([1, 1, 4, 4]), (1, 0, 2, 3))
        >>> torch.equal(padded[..., top:top + h, left:left + w], torch.arange(6.0).view(1, 1, 2, 3))
        True
    """
    h, w = int(x.shape[-2]), int(x.shape[-1])
    hp, wp = -(-h // multiple) * multiple, -(-w // multiple) * multiple
    top, left = (hp - h) // 2, (wp - w) // 2
    if hp == h and wp == w:
        return x, (0, 0, h, w)
    rows = _reflect_indices(h, top, hp - h - top, x.device)
    cols = _reflect_indices(w, left, wp - w - left, x.device)
    return x.index_select(-2, rows).index_select(-1, cols), (top, left, h, w)


def _align(lo: int, hi: int, length: int, multiple: int) -> tuple[int, int]:
    """Grow ``[lo, hi)`` to a multiple of ``multiple`` around its centre, shifted to stay inside ``[0, length)``.

    When the whole axis is shorter than the aligned size the box is the whole axis (padding handles it).
    """
    size = hi - lo
    target = -(-size // multiple) * multiple
    if target >= length:
        return 0, length
    lo = lo - (target - size) // 2
    lo = min(max(lo, 0), length - target)
    return lo, lo + target


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def hole_boxes(valid: np.ndarray, multiple: int, margin: int) -> list[Box]:
    """Boxes around each cluster of holes plus a context ``margin``, aligned to ``multiple``, not overlapping.

    Holes closer than about ``margin`` pixels fall in the same cluster (the hole mask is dilated by
    ``margin`` before ``cv2.connectedComponentsWithStats``); each cluster's box is grown to a multiple of
    ``multiple`` (or to the whole axis when the image is smaller) and overlapping boxes are merged. Every
    hole pixel lies in exactly one box.

    Args:
        valid: ``(H, W)`` bool, True = valid pixel.
        multiple: box sides become multiples of this (the model's ``required_multiple``).
        margin: minimum context around the holes, in pixels.

    Returns:
        ``[(top, left, bottom, right), ...]`` with exclusive bottom/right, sorted.

    Example:
        >>> valid = np.ones((100, 300), bool)
        >>> valid[10:20, 10:20] = False
        >>> valid[50:60, 250:260] = False
        >>> hole_boxes(valid, multiple=16, margin=8)
        [(0, 0, 32, 32), (39, 239, 71, 271)]
    """
    if valid.ndim != 2:
        raise ShapeError(f"valid must have shape (H, W); got {tuple(valid.shape)}")
    if multiple < 1 or margin < 0:
        raise InputValueError(f"multiple must be >= 1 and margin >= 0; got {multiple} and {margin}")
    hole = ~valid.astype(bool)
    if not hole.any():
        return []
    h, w = hole.shape
    # Dilate on a coarse grid (cells of `cell` pixels, a cell is a hole if any of its pixels is): the
    # kernel stays small whatever the margin, and the boxes can only come out slightly larger.
    cell = max(1, margin // 4)
    hc, wc = -(-h // cell), -(-w // cell)
    padded = np.zeros((hc * cell, wc * cell), np.uint8)
    padded[:h, :w] = hole
    coarse = padded.reshape(hc, cell, wc, cell).max(axis=(1, 3))
    radius = -(-margin // cell)
    if radius:
        coarse = cv2.dilate(coarse, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(coarse, connectivity=8)
    boxes: list[Box] = []
    for x0, y0, bw, bh, _area in stats[1:count]:
        top, bottom = _align(int(y0) * cell, min(h, int(y0 + bh) * cell), h, multiple)
        left, right = _align(int(x0) * cell, min(w, int(x0 + bw) * cell), w, multiple)
        boxes.append((top, left, bottom, right))
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                if _overlap(boxes[i], boxes[j]):
                    a, b = boxes[i], boxes[j]
                    top, bottom = _align(min(a[0], b[0]), max(a[2], b[2]), h, multiple)
                    left, right = _align(min(a[1], b[1]), max(a[3], b[3]), w, multiple)
                    boxes[i] = (top, left, bottom, right)
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return sorted(boxes)
