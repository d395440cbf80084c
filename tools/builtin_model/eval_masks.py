"""Evaluation masks drawn by generators that training never uses.

The built-in model trains on masks of :class:`pconv_kit.masks.MaskGenerator`. Scoring it on masks of that
same generator would measure how well it learned its own training distribution, so the evaluation set
(``make_eval_set.py``) draws its masks here instead, with other algorithms for each family:

| family | algorithm here | training generator (``pconv_kit.masks``) |
| --- | --- | --- |
| ``units`` | PConv-Keras style: up to 20 lines, 20 discs and 20 ellipse arcs, sizes from ``0.03 * (H + W)`` | lines, discs, arcs, rotated rectangles, sizes from ``sqrt(H W)`` |
| ``wide`` | LaMa style polylines: 1-5 segments whose angle is an integer number of radians, brushes up to 0.2 s | random walks with Gaussian turns, brushes up to 0.17 s |
| ``boxes`` | LaMa style axis-aligned boxes with a margin, sides 12-60 % of s | half rotated, sides 10-50 % of each side |
| ``blobs`` | figure-like unions of ellipses along a bent spine, or star-shaped Fourier outlines | thresholded smooth noise fields |
| ``thin`` | jagged cracks that branch, and straight wires across the image, 1-4 px | random-walk scratches |

(``s`` is the short side.) Every mask is drawn for a target hole ratio in a bin: elements are added until the
target is reached, and a mask that overshoots the bin is thrown away and drawn again.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

FAMILIES = ("units", "wide", "boxes", "blobs", "thin")


def _ratio(canvas: np.ndarray) -> float:
    return cv2.countNonZero(canvas) / canvas.size


def _keras_units(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """One element of the PConv-Keras style: a line, a disc or an ellipse arc."""
    h, w = canvas.shape
    size = max(4, int((w + h) * 0.03))
    kind = rng.integers(3)
    x1, y1 = int(rng.integers(1, w)), int(rng.integers(1, h))
    if kind == 0:
        x2, y2 = int(rng.integers(1, w)), int(rng.integers(1, h))
        cv2.line(canvas, (x1, y1), (x2, y2), 255, int(rng.integers(3, size)))
    elif kind == 1:
        cv2.circle(canvas, (x1, y1), int(rng.integers(3, size)), 255, -1)
    else:
        axes = (int(rng.integers(1, w // 4)), int(rng.integers(1, h // 4)))
        a1, a2, a3 = (int(v) for v in rng.integers(3, 180, 3))
        cv2.ellipse(canvas, (x1, y1), axes, a1, a2, a3, 255, int(rng.integers(3, size)))


def _lama_stroke(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """One LaMa style irregular stroke: segments at integer-radian angles, one brush width per segment."""
    h, w = canvas.shape
    s = min(h, w)
    max_len, max_width = int(0.4 * s), int(0.2 * s)
    x, y = int(rng.integers(w)), int(rng.integers(h))
    flip = rng.random() < 0.5
    for _ in range(1 + int(rng.integers(5))):
        angle = 0.01 + int(rng.integers(4))
        if flip:
            angle = 2 * math.pi - angle
        length = int(0.04 * s) + int(rng.integers(max_len))
        brush = int(0.02 * s) + int(rng.integers(max_width))
        nx = int(np.clip(x + length * math.sin(angle), 0, w - 1))
        ny = int(np.clip(y + length * math.cos(angle), 0, h - 1))
        cv2.line(canvas, (x, y), (nx, ny), 255, brush)
        x, y = nx, ny


def _lama_box(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """One LaMa style box: axis-aligned, sides 12-60 % of the short side, kept ``margin`` from the border."""
    h, w = canvas.shape
    s = min(h, w)
    margin, lo, hi = int(0.04 * s), int(0.12 * s), int(0.6 * s)
    bw = int(rng.integers(lo, min(hi, w - 2 * margin)))
    bh = int(rng.integers(lo, min(hi, h - 2 * margin)))
    x = int(rng.integers(margin, w - margin - bw + 1))
    y = int(rng.integers(margin, h - margin - bh + 1))
    canvas[y : y + bh, x : x + bw] = 255


def _figure(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """A figure-like object: 2-5 overlapping ellipses along a bent spine (a person, an animal, a bottle)."""
    h, w = canvas.shape
    s = min(h, w)
    length = rng.uniform(0.15, 0.6) * s
    parts = int(rng.integers(2, 6))
    heading = rng.uniform(0, 2 * math.pi)
    x, y = rng.uniform(0, w), rng.uniform(0, h)
    width = rng.uniform(0.2, 0.5) * length
    for _ in range(parts):
        step = length / parts
        cx, cy = x + 0.5 * step * math.cos(heading), y + 0.5 * step * math.sin(heading)
        axes = (max(2, int(0.6 * step)), max(2, int(width * rng.uniform(0.3, 0.6))))
        cv2.ellipse(canvas, (int(cx), int(cy)), axes, math.degrees(heading), 0, 360, 255, -1)
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
        heading += rng.normal(0, 0.35)


def _fourier_blob(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """A star-shaped outline r(t) = R (1 + sum_k a_k cos(k t + p_k)), k = 2..5, stretched and rotated."""
    h, w = canvas.shape
    s = min(h, w)
    t = np.linspace(0, 2 * math.pi, 180, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 6):
        r += rng.uniform(0, 0.25 / (k - 1)) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
    radius = rng.uniform(0.06, 0.32) * s
    stretch = rng.uniform(1.0, 2.2)
    xs, ys = radius * r * np.cos(t) * stretch, radius * r * np.sin(t)
    a = rng.uniform(0, math.pi)
    px = xs * math.cos(a) - ys * math.sin(a) + rng.uniform(0, w)
    py = xs * math.sin(a) + ys * math.cos(a) + rng.uniform(0, h)
    cv2.fillPoly(canvas, [np.stack([px, py], 1).round().astype(np.int32)], 255)


def _object(canvas: np.ndarray, rng: np.random.Generator) -> None:
    (_figure if rng.random() < 0.5 else _fourier_blob)(canvas, rng)


def _crack_or_wire(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """A jagged crack (short steps, sharp turns, branches) or a straight wire across the image, 1-4 px wide."""
    h, w = canvas.shape
    width = int(rng.integers(1, 5))
    if rng.random() < 0.3:
        a = rng.uniform(0, math.pi)
        cx, cy, d = rng.uniform(0, w), rng.uniform(0, h), 2 * (h + w)
        p1 = (int(cx - d * math.cos(a)), int(cy - d * math.sin(a)))
        p2 = (int(cx + d * math.cos(a)), int(cy + d * math.sin(a)))
        cv2.line(canvas, p1, p2, 255, width)
        return
    stack = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, 2 * math.pi), int(rng.integers(20, 80)))]
    while stack:
        x, y, heading, steps = stack.pop()
        for _ in range(steps):
            heading += rng.uniform(-0.6, 0.6)
            nx, ny = x + rng.uniform(3, 9) * math.cos(heading), y + rng.uniform(3, 9) * math.sin(heading)
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 255, width)
            x, y = nx, ny
            if rng.random() < 0.03 and len(stack) < 3:
                stack.append((x, y, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), int(rng.integers(10, 40))))


ELEMENTS: dict[str, Callable[[np.ndarray, np.random.Generator], None]] = {
    "units": _keras_units,
    "wide": _lama_stroke,
    "boxes": _lama_box,
    "blobs": _object,
    "thin": _crack_or_wire,
}


def eval_mask(
    family: str, height: int, width: int, lo: float, hi: float, rng: np.random.Generator, max_tries: int = 2000
) -> np.ndarray:
    """A ``(H, W)`` uint8 mask, 255 = hole, of ``family`` with a hole ratio in ``[lo, hi]``.

    A target ratio is drawn in ``[lo, hi]``; elements are added until it is reached; a mask that ends above
    ``hi`` is discarded and drawn again.
    """
    draw = ELEMENTS[family]
    for _ in range(max_tries):
        canvas = np.zeros((height, width), np.uint8)
        target = rng.uniform(lo, hi)
        while _ratio(canvas) < target:
            draw(canvas, rng)
        if _ratio(canvas) <= hi:
            return canvas
    raise RuntimeError(f"no {family} mask in [{lo}, {hi}] after {max_tries} tries")
