"""What the napari widget does, as plain functions over NumPy arrays (no napari, no Qt).

The widget (:mod:`pconv_kit.napari._widget`) only collects layer data and options and calls these functions
in a worker thread, so everything here is tested without a GUI.

Mask polarity: napari's convention is used throughout this module. A **hole** is a pixel to fill: a
non-zero pixel of a Labels layer, or a pixel covered by a shape of a Shapes layer. This is the reverse of the
library's in-memory masks (``1 = valid, 0 = hole``); :func:`fill_layer_data` converts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pconv_kit.errors import InputValueError, ShapeError

if TYPE_CHECKING:  # torch is imported by inpaint() when a fill runs
    import torch

    from pconv_kit.models import PConvUNet

__all__ = ["SHAPE_TYPES", "image_size", "labels_to_holes", "shapes_to_holes", "fill_layer_data"]

SHAPE_TYPES = ("rectangle", "polygon", "ellipse", "path", "line")
"""The napari shape types :func:`shapes_to_holes` rasterises: the first three are filled, the last two are
drawn as strokes of the shape's edge width."""

_SUBPIXEL_BITS = 4  # cv2 drawing with fractional vertex coordinates (1/16 pixel)
_ELLIPSE_POINTS = 72  # an ellipse is rasterised as a polygon with this many vertices


def image_size(image: np.ndarray, rgb: bool | None = None) -> tuple[int, int]:
    """``(H, W)`` of a 2-D image layer's data: grey ``(H, W)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)``.

    Args:
        image: the layer's data.
        rgb: whether the last axis holds colour channels (napari's ``Image.rgb``); ``None`` guesses it from
            the shape (a last axis of 3 or 4 on a 3-D array is colour).

    Returns:
        ``(H, W)``.

    Raises:
        ShapeError: the data is not a single 2-D grey, RGB or RGBA image (a stack or a volume, say).

    Example:
        >>> image_size(np.zeros((30, 40, 3), np.uint8)), image_size(np.zeros((30, 40)))
        ((30, 40), (30, 40))
    """
    shape = tuple(int(n) for n in np.shape(image))
    if rgb is None:
        rgb = len(shape) == 3 and shape[-1] in (3, 4)
    if rgb and len(shape) == 3 and shape[-1] in (3, 4):
        return shape[0], shape[1]
    if not rgb and len(shape) == 2:
        return shape[0], shape[1]
    raise ShapeError(
        f"the image must be a 2-D grey (H, W), RGB (H, W, 3) or RGBA (H, W, 4) image; got shape {shape}"
        + (" (a stack or a volume: fill one 2-D plane at a time)" if len(shape) >= 3 and not rgb else "")
    )


def labels_to_holes(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A Labels layer's data as a hole mask: every non-zero label is a hole.

    Args:
        labels: ``(H, W)`` integer (or bool) labels.
        size: ``(H, W)`` of the image to fill; the labels must have exactly this shape.

    Returns:
        ``(H, W)`` bool, True = hole.

    Raises:
        ShapeError: the labels' shape differs from ``size``.

    Example:
        >>> labels = np.zeros((4, 5), np.uint8)
        >>> labels[1:3, 2] = 7
        >>> int(labels_to_holes(labels, (4, 5)).sum())
        2
    """
    labels = np.asarray(labels)
    if labels.shape != tuple(size):
        raise ShapeError(
            f"the mask layer has shape {labels.shape} but the image is {tuple(size)}; draw the mask on a "
            "Labels layer of the image's size (Layers > New Labels layer, with the image selected)"
        )
    return labels != 0


def _cv2_points(vertices: np.ndarray) -> np.ndarray:
    """``(N, 2)`` (row, col) float vertices -> cv2's ``(N, 1, 2)`` (x, y) int32 points in 1/16 pixel."""
    xy = vertices[:, ::-1] * (1 << _SUBPIXEL_BITS)
    return np.round(xy).astype(np.int32).reshape(-1, 1, 2)


def _ellipse_polygon(corners: np.ndarray) -> np.ndarray:
    """The ellipse inscribed in a (possibly rotated) box given by its four corners, as a polygon."""
    centre = corners.mean(axis=0)
    half_a = (corners[1] - corners[0]) / 2.0
    half_b = (corners[2] - corners[1]) / 2.0
    t = np.linspace(0.0, 2.0 * np.pi, _ELLIPSE_POINTS, endpoint=False)[:, None]
    return centre + np.cos(t) * half_a + np.sin(t) * half_b


def _stroke(canvas: np.ndarray, points: np.ndarray, width: float) -> None:
    """Set the pixels whose centres lie within ``width / 2`` (at least 0.5) of the polyline ``points``."""
    radius = max(0.5, float(width) / 2.0)
    height, wide = canvas.shape
    segments = zip(points[:-1], points[1:]) if len(points) > 1 else [(points[0], points[0])]
    for start, end in segments:
        r0 = max(0, int(np.floor(min(start[0], end[0]) - radius)))
        r1 = min(height, int(np.ceil(max(start[0], end[0]) + radius)) + 1)
        c0 = max(0, int(np.floor(min(start[1], end[1]) - radius)))
        c1 = min(wide, int(np.ceil(max(start[1], end[1]) + radius)) + 1)
        if r0 >= r1 or c0 >= c1:
            continue
        rows, cols = np.mgrid[r0:r1, c0:c1].astype(np.float64)
        direction = end - start
        length2 = float(direction @ direction)
        if length2 == 0:  # a single point: a disc
            t = np.zeros_like(rows)
        else:  # the position along the segment of the closest point to each pixel centre
            t = np.clip(((rows - start[0]) * direction[0] + (cols - start[1]) * direction[1]) / length2, 0.0, 1.0)
        distance2 = (rows - start[0] - t * direction[0]) ** 2 + (cols - start[1] - t * direction[1]) ** 2
        canvas[r0:r1, c0:c1] |= (distance2 <= radius * radius).astype(np.uint8)


def shapes_to_holes(
    shapes: Sequence[np.ndarray],
    shape_types: Sequence[str],
    size: tuple[int, int],
    edge_widths: Sequence[float] | float = 1.0,
) -> np.ndarray:
    """Rasterise the shapes of a napari Shapes layer into a hole mask: covered pixels are holes.

    Rectangles, polygons (the polygon and lasso tools) and ellipses are filled; paths and lines are strokes
    ``edge_width`` pixels wide (pixels whose centre is within half the width of the line, with round ends).
    Vertices are in the image's pixel (data) coordinates, ``(row, col)`` in the last two columns (napari's
    order). Pixel ``(r, c)`` is covered when its centre is inside a filled
    shape or the shape's outline passes through the pixel (a hole mask had better cover a little too much
    than too little). Parts outside the image are clipped.

    Args:
        shapes: one ``(N, D)`` vertex array per shape, ``D >= 2`` (a Shapes layer's ``data``; for
            rectangles and ellipses the four corners of the bounding box).
        shape_types: one of :data:`SHAPE_TYPES` per shape (a Shapes layer's ``shape_type``).
        size: ``(H, W)`` of the image.
        edge_widths: stroke width in pixels of paths and lines, one per shape or one for all.

    Returns:
        ``(H, W)`` bool, True = hole.

    Raises:
        InputValueError: an unknown shape type, or as many types/widths as shapes are not given.

    Example:
        >>> rectangle = np.array([[2.0, 3.0], [2.0, 6.0], [5.0, 6.0], [5.0, 3.0]])
        >>> holes = shapes_to_holes([rectangle], ["rectangle"], (8, 10))
        >>> int(holes.sum()), bool(holes[2:6, 3:7].all())
        (16, True)
    """
    height, width = (int(n) for n in size)
    if len(shape_types) != len(shapes):
        raise InputValueError(f"got {len(shapes)} shapes but {len(shape_types)} shape types")
    widths = [float(edge_widths)] * len(shapes) if np.isscalar(edge_widths) else [float(w) for w in edge_widths]
    if len(widths) != len(shapes):
        raise InputValueError(f"got {len(shapes)} shapes but {len(widths)} edge widths")
    canvas = np.zeros((height, width), np.uint8)
    for vertices, kind, edge in zip(shapes, shape_types, widths):
        points = np.asarray(vertices, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] < 2 or len(points) == 0:
            raise InputValueError(f"a shape's vertices must be an (N, D >= 2) array; got shape {points.shape}")
        points = points[:, -2:]
        if kind in ("rectangle", "polygon"):
            cv2.fillPoly(canvas, [_cv2_points(points)], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        elif kind == "ellipse":
            if len(points) != 4:
                raise InputValueError(f"an ellipse is given by the 4 corners of its box; got {len(points)} vertices")
            cv2.fillPoly(canvas, [_cv2_points(_ellipse_polygon(points))], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        elif kind in ("path", "line"):
            _stroke(canvas, points, edge)
        else:
            raise InputValueError(f"unknown shape type {kind!r}; expected one of {SHAPE_TYPES}")
    return canvas.astype(bool)


def _to_unit_range(image: np.ndarray, holes: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """Images ``inpaint`` cannot take as they are -> float32 in [0, 1], with the ``(low, high)`` to undo it.

    ``None`` when the image is uint8, uint16 or float already in [0, 1]. Other dtypes (int16, int32, uint32,
    bool, ...) and floats outside [0, 1] are scaled by the range of their known pixels.
    """
    if image.dtype in (np.uint8, np.uint16):
        return None
    if image.dtype.kind not in "biuf":
        raise InputValueError(f"cannot fill an image of dtype {image.dtype}")
    values = image.astype(np.float64)
    known = values[~holes].ravel()
    known = known[np.isfinite(known)]
    if image.dtype.kind == "f" and (known.size == 0 or (known.min() >= 0.0 and known.max() <= 1.0)):
        return None
    low, high = (float(known.min()), float(known.max())) if known.size else (0.0, 1.0)
    scale = high - low if high > low else 1.0
    return ((values - low) / scale).astype(np.float32), low, scale


def fill_layer_data(
    image: np.ndarray,
    holes: np.ndarray,
    model: PConvUNet | str | os.PathLike[str] | None = None,
    *,
    rgb: bool | None = None,
    tta: int = 1,
    strategy: str = "auto",
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Fill the holes of a napari image layer's data; the input array is left untouched.

    A thin layer over :func:`pconv_kit.inpaint.inpaint` for what napari layers hold: the mask is in
    napari's polarity (**non-zero = hole**, as a Labels layer), and images of any numeric dtype are accepted.
    uint8, uint16 and float images in ``[0, 1]`` go to ``inpaint`` as they are; other dtypes and float
    ranges are scaled to ``[0, 1]`` by the range of the known pixels and back. Either way known pixels are
    returned bit-exact, and the result has the input's shape and dtype.

    Args:
        image: grey ``(H, W)``, RGB ``(H, W, 3)`` or RGBA ``(H, W, 4)`` (alpha is kept).
        holes: ``(H, W)`` mask, non-zero/True = hole (napari's convention, the reverse of the library's
            ``1 = valid``): a Labels layer's data or the output of :func:`shapes_to_holes`.
        model: a registered name (:func:`pconv_kit.registry.list_models`), a weights file (``.safetensors``
            or a ``pconv-kit train`` run directory), a :class:`~pconv_kit.models.PConvUNet`, or ``None`` for
            the built-in default model.
        rgb: whether the last axis holds colour channels (napari's ``Image.rgb``); ``None`` guesses.
        tta: test-time augmentation, 1, 2 or 4 mirrored copies averaged (see
            :data:`pconv_kit.inpaint.TTA_CHOICES`).
        strategy: ``"auto"``, ``"full"``, ``"crop"`` or ``"resize"``: how large images are filled (see
            :func:`pconv_kit.inpaint.inpaint`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``None`` (the model's device, else auto).

    Returns:
        The filled image, a new array of ``image``'s shape and dtype.

    Raises:
        ShapeError: the image is not a 2-D grey/RGB/RGBA image, or the mask's shape differs.
        InputValueError: the mask marks no hole, or only holes; a bad option or dtype.
        WeightsNotFoundError: ``model`` names nothing that exists.

    Example:
        >>> from pconv_kit.models import PConvUNet
        >>> image = np.full((24, 32, 3), 120, np.uint8)
        >>> holes = np.zeros((24, 32), np.uint8)     # a Labels layer: non-zero = hole
        >>> holes[8:14, 10:20] = 1
        >>> out = fill_layer_data(image, holes, PConvUNet(layer_size=3, base_channels=4))
        >>> out.shape, out.dtype, bool((out[holes == 0] == 120).all()), out is image
        ((24, 32, 3), dtype('uint8'), True, False)
    """
    from pconv_kit.inpaint import inpaint

    image = np.asarray(image)
    size = image_size(image, rgb)
    hole = labels_to_holes(holes, size)
    if not hole.any():
        raise InputValueError("the mask marks no hole: paint the pixels to fill (non-zero labels or shapes)")
    if hole.all():
        raise InputValueError("the mask covers the whole image: there is no known pixel to fill from")
    valid = (~hole).astype(np.float32)  # the library's convention: 1 = valid, 0 = hole
    scaled = _to_unit_range(image, hole)
    if scaled is None:
        return inpaint(image, valid, model, strategy=strategy, tta=tta, device=device)
    unit, low, scale = scaled
    filled = inpaint(unit, valid, model, strategy=strategy, tta=tta, device=device).astype(np.float64)
    filled = filled * scale + low
    if image.dtype.kind in "iub":
        info = np.iinfo(image.dtype) if image.dtype.kind != "b" else None
        filled = np.round(filled)
        if info is not None:
            filled = np.clip(filled, info.min, info.max)
        else:
            filled = filled >= 0.5
    out = image.copy()
    colour = slice(0, 3) if image.ndim == 3 else slice(None)  # alpha stays as it was
    if image.ndim == 3:
        out[hole, colour] = filled[hole, colour].astype(image.dtype)
    else:
        out[hole] = filled[hole].astype(image.dtype)
    return out
