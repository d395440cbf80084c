"""The geometry of mask *units* and of the mask *families* that draw them.

A :class:`Unit` is one painted element of a mask (a line, a disc, a brush stroke, a box, a blob ...) with
integer pixel geometry, so a list of units replays a mask exactly. A *family* is a way of drawing random
units that gives masks a recognisable look:

| family | units drawn | looks like |
| --- | --- | --- |
| ``units`` | ``line``, ``circle``, ``ellipse``, ``rectangle`` (the original generator) | scattered strokes and small shapes |
| ``wide`` | ``polyline``: random walks with a brush up to about 1/6 of the short side | LaMa's "thick" brush masks |
| ``boxes`` | ``rectangle``: axis-aligned or rotated, up to about half of each side | erased boxes, panels, captions |
| ``blobs`` | ``polygon``: smooth irregular regions from a thresholded noise field | removed objects (people, cars, signs) |
| ``thin`` | ``polyline``: long scratches 1-6 px wide at 512 x 512 | old-photo damage, cracks, wires |

Sizes are fractions of the image: ``s = min(H, W) * unit_scale`` for widths and lengths, ``H`` and ``W``
for box sides, so masks look alike at any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from pconv_kit.errors import InputValueError

__all__ = ["SHAPES", "UNIT_KINDS", "FAMILIES", "Unit", "draw_units", "FAMILY_SAMPLERS"]

#: The kinds of unit of the ``units`` family (its ``shapes`` parameter picks among them).
SHAPES: tuple[str, ...] = ("line", "circle", "ellipse", "rectangle")

#: Every kind of unit a mask can be made of.
UNIT_KINDS: tuple[str, ...] = (*SHAPES, "polyline", "polygon")

#: The mask families, in the order of their mixture weights.
FAMILIES: tuple[str, ...] = ("units", "wide", "boxes", "blobs", "thin")


@dataclass(frozen=True)
class Unit:
    """One drawn unit of a mask: its kind and integer pixel geometry (OpenCV ``(x, y)`` points).

    ``params`` per kind:

    * ``"line"``: ``pt1``, ``pt2``, ``thickness``
    * ``"circle"``: ``center``, ``radius`` (filled)
    * ``"ellipse"``: ``center``, ``axes``, ``angle``, ``start``, ``end`` (degrees), ``thickness``
    * ``"rectangle"``: ``corners`` (4 points of the rotated rectangle, filled)
    * ``"polyline"``: ``points`` (the vertices of an open path), ``thickness`` (round joints and ends)
    * ``"polygon"``: ``points`` (a closed outline, filled)

    :meth:`draw` paints the unit, so a list of units replays a mask exactly (see :func:`draw_units`).
    """

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    def draw(self, canvas: np.ndarray, value: int = 1) -> None:
        """Paint the unit into a ``(H, W)`` uint8 ``canvas`` in place with ``value`` (8-connected, no anti-aliasing)."""
        p = self.params
        if self.kind == "line":
            cv2.line(canvas, p["pt1"], p["pt2"], value, p["thickness"], cv2.LINE_8)
        elif self.kind == "circle":
            cv2.circle(canvas, p["center"], p["radius"], value, -1, cv2.LINE_8)
        elif self.kind == "ellipse":
            cv2.ellipse(
                canvas, p["center"], p["axes"], p["angle"], p["start"], p["end"], value, p["thickness"], cv2.LINE_8
            )
        elif self.kind == "rectangle":
            cv2.fillConvexPoly(canvas, np.asarray(p["corners"], np.int32), value, cv2.LINE_8)
        elif self.kind == "polyline":
            cv2.polylines(canvas, [np.asarray(p["points"], np.int32)], False, value, p["thickness"], cv2.LINE_8)
        elif self.kind == "polygon":
            cv2.fillPoly(canvas, [np.asarray(p["points"], np.int32)], value, cv2.LINE_8)
        else:
            raise InputValueError(f"unknown unit kind {self.kind!r}; expected one of {', '.join(UNIT_KINDS)}")


def draw_units(units: Sequence[Unit], height: int, width: int) -> np.ndarray:
    """Replay ``units`` on an empty canvas and return the valid-mask ``(H, W)`` float32 (1 = valid, 0 = hole).

    Example:
        >>> from pconv_kit.masks import MaskGenerator
        >>> gen = MaskGenerator(64, 96, kind="blobs", seed=0)
        >>> mask, units = gen.generate()
        >>> bool((draw_units(units, 64, 96) == mask).all())
        True
    """
    canvas = np.zeros((height, width), np.uint8)
    for unit in units:
        unit.draw(canvas)
    return (1 - canvas).astype(np.float32)


def _lerp(u: float, lo: float, hi: float) -> float:
    return lo + (hi - lo) * u


def _px(frac: tuple[float, float], s: float) -> tuple[float, float]:
    """A size range in pixels from fractions of ``s``, at least one pixel."""
    lo = max(1.0, frac[0] * s)
    return lo, max(lo, frac[1] * s)


# ------------------------------------------------------------------------------------------- units
# The original generator's sizes, as fractions of sqrt(H * W) * unit_scale.
_THICKNESS = (0.02, 0.06)
_CIRCLE_RADIUS = (0.02, 0.08)
_ELLIPSE_AXIS = (0.04, 0.30)
_ELLIPSE_EXTENT_DEG = (60.0, 360.0)
_RECT_SIDE = (0.04, 0.20)


def _rotated_rect(cx: float, cy: float, sw: float, sh: float, angle: float) -> tuple[tuple[int, int], ...]:
    c, s = math.cos(angle) / 2.0, math.sin(angle) / 2.0
    return tuple(
        (int(round(cx + dx * sw * c - dy * sh * s)), int(round(cy + dx * sw * s + dy * sh * c)))
        for dx, dy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    )


class UnitsSampler:
    """The ``units`` family: lines, discs, ellipse arcs and rotated rectangles sized by ``sqrt(H * W)``."""

    def __init__(self, height: int, width: int, unit_scale: float, shapes: Sequence[str] = SHAPES) -> None:
        self.height, self.width, self.shapes = height, width, tuple(shapes)
        s = math.sqrt(height * width) * unit_scale
        self.thickness = _px(_THICKNESS, s)
        self.radius = _px(_CIRCLE_RADIUS, s)
        self.axis = _px(_ELLIPSE_AXIS, s)
        self.side = _px(_RECT_SIDE, s)

    def __call__(self, rng: np.random.Generator) -> Unit:
        u = rng.random(9)  # one call per unit: much cheaper than nine scalar draws
        kind = self.shapes[min(int(u[0] * len(self.shapes)), len(self.shapes) - 1)]
        w, h = self.width, self.height
        cx, cy = min(int(u[1] * w), w - 1), min(int(u[2] * h), h - 1)
        if kind == "line":
            x2, y2 = min(int(u[3] * w), w - 1), min(int(u[4] * h), h - 1)
            thickness = int(round(_lerp(u[5], *self.thickness)))
            return Unit("line", {"pt1": (cx, cy), "pt2": (x2, y2), "thickness": thickness})
        if kind == "circle":
            return Unit("circle", {"center": (cx, cy), "radius": int(round(_lerp(u[3], *self.radius)))})
        if kind == "ellipse":
            axes = (int(round(_lerp(u[3], *self.axis))), int(round(_lerp(u[4], *self.axis))))
            start = int(u[5] * 360.0)
            extent = int(round(_lerp(u[6], *_ELLIPSE_EXTENT_DEG)))
            thickness = int(round(_lerp(u[7], *self.thickness)))
            angle = int(u[8] * 180.0)
            return Unit(
                "ellipse",
                {"center": (cx, cy), "axes": axes, "angle": angle, "start": start, "end": start + extent,
                 "thickness": thickness},
            )
        sw, sh = _lerp(u[3], *self.side), _lerp(u[4], *self.side)
        return Unit("rectangle", {"corners": _rotated_rect(cx, cy, sw, sh, u[5] * math.pi)})


# ------------------------------------------------------------------------------------------- strokes
def _random_walk(
    rng: np.random.Generator,
    height: int,
    width: int,
    segments: tuple[int, int],
    length: tuple[float, float],
    turn: float,
) -> tuple[tuple[int, int], ...]:
    """Vertices of a random walk: a random start, then ``segments`` steps whose heading turns by N(0, ``turn``).

    A step that would leave the image is mirrored back at the border, so the path stays inside.
    """
    n = int(rng.integers(segments[0], segments[1] + 1))
    x, y = rng.random() * (width - 1), rng.random() * (height - 1)
    heading = rng.random() * 2.0 * math.pi
    points = [(int(round(x)), int(round(y)))]
    for _ in range(n):
        heading += rng.normal(0.0, turn)
        step = _lerp(rng.random(), *length)
        x, y = x + step * math.cos(heading), y + step * math.sin(heading)
        if not 0 <= x <= width - 1:
            x = min(max(-x, 0.0), 2.0 * (width - 1) - x) if width > 1 else 0.0
            x = min(max(x, 0.0), width - 1)
            heading = math.pi - heading
        if not 0 <= y <= height - 1:
            y = min(max(-y, 0.0), 2.0 * (height - 1) - y) if height > 1 else 0.0
            y = min(max(y, 0.0), height - 1)
            heading = -heading
        points.append((int(round(x)), int(round(y))))
    return tuple(points)


class StrokeSampler:
    """Brush strokes (``wide``) or scratches (``thin``): a random walk painted with one brush width.

    Args:
        width_frac: brush width range, fractions of ``s = min(H, W) * unit_scale``.
        length_frac: length range of one segment, fractions of ``s``.
        segments: range of the number of segments of a stroke.
        turn: standard deviation of the heading change between segments, radians.
    """

    def __init__(
        self,
        height: int,
        width: int,
        unit_scale: float,
        width_frac: tuple[float, float],
        length_frac: tuple[float, float],
        segments: tuple[int, int],
        turn: float,
    ) -> None:
        self.height, self.width = height, width
        s = min(height, width) * unit_scale
        self.brush = _px(width_frac, s)
        self.length = _px(length_frac, s)
        self.segments, self.turn = segments, turn

    def __call__(self, rng: np.random.Generator) -> Unit:
        thickness = max(1, int(round(_lerp(rng.random(), *self.brush))))
        points = _random_walk(rng, self.height, self.width, self.segments, self.length, self.turn)
        return Unit("polyline", {"points": points, "thickness": thickness})


# ------------------------------------------------------------------------------------------- boxes
class BoxSampler:
    """Boxes: sides 10-50 % of the image's height and width (times ``unit_scale``), half of them rotated."""

    SIDE = (0.10, 0.50)

    def __init__(self, height: int, width: int, unit_scale: float) -> None:
        self.height, self.width = height, width
        self.side_w = _px(self.SIDE, width * unit_scale)
        self.side_h = _px(self.SIDE, height * unit_scale)

    def __call__(self, rng: np.random.Generator) -> Unit:
        u = rng.random(6)
        cx, cy = u[0] * (self.width - 1), u[1] * (self.height - 1)
        sw, sh = _lerp(u[2], *self.side_w), _lerp(u[3], *self.side_h)
        angle = 0.0 if u[4] < 0.5 else u[5] * math.pi
        return Unit("rectangle", {"corners": _rotated_rect(cx, cy, sw, sh, angle)})


# ------------------------------------------------------------------------------------------- blobs
_BLOB_GRID = 24
_BLOB_RES = 96


class BlobSampler:
    """Object-shaped regions: the outline of a smooth random field thresholded inside an elliptic envelope.

    A ``24 x 24`` normal field is blurred (so the outline has a few lobes and dents, not noise), added to a
    bump that keeps one connected region near the centre, upsampled, thresholded, and the outline of the
    region around the centre is scaled to a random size (long side 12-70 % of ``s``, aspect ratio 0.35-1),
    rotated and placed at a random centre.
    """

    EXTENT = (0.12, 0.70)
    ASPECT = (0.35, 1.0)

    def __init__(self, height: int, width: int, unit_scale: float) -> None:
        self.height, self.width = height, width
        self.extent = _px(self.EXTENT, min(height, width) * unit_scale)
        g = np.linspace(-1.0, 1.0, _BLOB_GRID)
        self._r2 = (g[None, :] ** 2 + g[:, None] ** 2).astype(np.float64)

    def outline(self, rng: np.random.Generator) -> np.ndarray:
        """A closed outline ``(N, 2)`` of float ``(x, y)`` points centred on 0, its long side about 1."""
        noise = cv2.GaussianBlur(rng.standard_normal((_BLOB_GRID, _BLOB_GRID)), (0, 0), _lerp(rng.random(), 2.0, 4.0))
        noise /= noise.std() + 1e-12
        field = 2.2 * (1.0 - self._r2 / 0.55) + _lerp(rng.random(), 0.6, 1.4) * noise
        big = cv2.resize(field, (_BLOB_RES, _BLOB_RES), interpolation=cv2.INTER_CUBIC)
        binary = (big > 0).astype(np.uint8)
        count, labels = cv2.connectedComponents(binary, connectivity=8)
        centre = labels[_BLOB_RES // 2, _BLOB_RES // 2]
        if centre == 0:  # the centre fell in a dent: take the largest region
            sizes = np.bincount(labels.ravel(), minlength=count)[1:]
            centre = int(np.argmax(sizes)) + 1 if sizes.size else 0
        if centre == 0:
            binary = np.zeros_like(binary)
            cv2.circle(binary, (_BLOB_RES // 2, _BLOB_RES // 2), _BLOB_RES // 4, 1, -1)
        else:
            binary = (labels == centre).astype(np.uint8)
        contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        pts = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(np.float64)
        pts -= pts.min(0) + (pts.max(0) - pts.min(0)) / 2.0
        return pts / max(float(np.ptp(pts, axis=0).max()), 1.0)

    def __call__(self, rng: np.random.Generator) -> Unit:
        pts = self.outline(rng)
        u = rng.random(5)
        long_side = _lerp(u[0], *self.extent)
        aspect = _lerp(u[1], *self.ASPECT)
        pts = pts * np.array([long_side, long_side * aspect])
        angle = u[2] * math.pi
        c, s = math.cos(angle), math.sin(angle)
        pts = pts @ np.array([[c, s], [-s, c]])
        pts += (u[3] * (self.width - 1), u[4] * (self.height - 1))
        return Unit("polygon", {"points": tuple((int(round(x)), int(round(y))) for x, y in pts)})


# ------------------------------------------------------------------------------------------- families
_WIDE = {"width_frac": (0.03, 0.17), "length_frac": (0.08, 0.30), "segments": (1, 6), "turn": 0.8}
_THIN = {"width_frac": (0.002, 0.012), "length_frac": (0.05, 0.30), "segments": (1, 8), "turn": 0.4}


def _units(h: int, w: int, scale: float, shapes: Sequence[str]) -> Callable[[np.random.Generator], Unit]:
    return UnitsSampler(h, w, scale, shapes)


FAMILY_SAMPLERS: dict[str, Callable[[int, int, float, Sequence[str]], Callable[[np.random.Generator], Unit]]] = {
    "units": _units,
    "wide": lambda h, w, scale, _: StrokeSampler(h, w, scale, **_WIDE),
    "boxes": lambda h, w, scale, _: BoxSampler(h, w, scale),
    "blobs": lambda h, w, scale, _: BlobSampler(h, w, scale),
    "thin": lambda h, w, scale, _: StrokeSampler(h, w, scale, **_THIN),
}
"""Family name -> ``(height, width, unit_scale, shapes) -> sampler``; a sampler maps an rng to one :class:`Unit`."""
