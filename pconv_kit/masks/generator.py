"""Random masks of five families (and mixtures of them), with exact hole-ratio ranges and seeds.

The ``units`` family (the default) follows the irregular-mask tool that came with an early TensorFlow port of
partial convolutions (``--min_units`` / ``--max_units``) and PConv-Keras's ``MaskGenerator``: random lines,
discs, ellipse arcs and rectangles painted as holes with OpenCV. Differences, all deliberate:

* a mask draws a random **total** number of units in ``[min_units, max_units]`` (both inclusive), each of a
  random kind (the TensorFlow tool drew that many units *of every kind*, with an exclusive upper bound);
* unit sizes are fractions of the image size (``sqrt(H * W)``), so masks look alike at any resolution and
  aspect ratio (the TensorFlow tool used fixed pixel sizes for 512 x 512);
* an optional ``hole_ratio=(lo, hi)`` range that every returned mask satisfies;
* reproducible with a seed through :func:`numpy.random.default_rng`.

Sizes of the ``units`` family at ``unit_scale=1`` for an image of size ``s = sqrt(H * W)`` (``s = 512``
gives the pixel values):

| kind | geometry | at 512 x 512 |
| --- | --- | --- |
| line | two random end points anywhere in the image | thickness 10-31 px |
| circle | filled disc, random centre | radius 10-41 px |
| ellipse | arc of 60-360 degrees, random centre, axes and rotation | axes 20-154 px, 10-31 px thick |
| rectangle | filled, rotated, random centre | sides 20-102 px |

Line and arc thickness is ``2%-6%`` of ``s``. With the defaults (5-12 units) a 512 x 512 mask has a hole
ratio of about 3-29% (median 13%, measured over 1000 masks); use ``hole_ratio`` to get a precise range.

The other families (``wide`` brush strokes, ``boxes``, object-shaped ``blobs``, ``thin`` scratches) and the
``mixed`` kind are described in :mod:`pconv_kit.masks.shapes` and in the user guide; wide holes far from
any known pixel are what a model must learn to generalise (LaMa, Suvorov et al. 2022), and what people erase.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from pconv_kit.errors import InputValueError
from pconv_kit.masks.mixture import MIXED_WEIGHTS, check_weights, format_weights, parse_weights
from pconv_kit.masks.shapes import FAMILIES, FAMILY_SAMPLERS, SHAPES, UNIT_KINDS, Unit, draw_units

__all__ = [
    "MIN_MASK_SIDE",
    "SHAPES",
    "UNIT_KINDS",
    "FAMILIES",
    "MASK_KINDS",
    "MIXED_WEIGHTS",
    "FAMILY_UNIT_COUNTS",
    "Unit",
    "MaskGenerator",
    "draw_units",
    "parse_weights",
    "format_weights",
]

#: What ``MaskGenerator(kind=...)`` accepts: one family, or ``"mixed"`` (a weighted mixture of them).
MASK_KINDS: tuple[str, ...] = (*FAMILIES, "mixed")

#: Smallest height and width that ``pconv-kit masks --size`` accepts. The generator takes any size, but below
#: this every family's shapes tend to cover the whole mask, and an all-hole mask is never returned (redrawn,
#: then an error), so a tiny size fails part-way through a set instead of at once.
MIN_MASK_SIDE = 16

#: Default ``(min_units, max_units without hole_ratio, max_units with hole_ratio)`` of each family: the unit
#: count of a free mask, and enough units to reach a hole ratio of 0.6 when a range is asked for.
FAMILY_UNIT_COUNTS: dict[str, tuple[int, int, int]] = {
    "units": (5, 12, 60),
    "wide": (1, 4, 40),
    "boxes": (1, 3, 20),
    "blobs": (1, 3, 12),
    "thin": (3, 20, 800),
}


def seeded_rng(seed: object) -> np.random.Generator:
    """``numpy.random.default_rng(seed)``, raising ``InputValueError`` for a seed NumPy rejects."""
    try:
        return np.random.default_rng(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InputValueError(f"seed must be None or a non-negative integer; got {seed!r} ({exc})") from None


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _unit_counts(
    kind: str, weights: object, min_units: int | None, max_units: int | None, hole_ratio: object
) -> tuple[int, int]:
    """``(min_units, max_units)`` checked, with the family's defaults for the unset ones."""
    if kind not in MASK_KINDS:
        raise InputValueError(f"kind must be one of {', '.join(MASK_KINDS)}; got {kind!r}", param="kind")
    if weights is not None and kind != "mixed":
        raise InputValueError(f"weights apply to kind='mixed' only; got kind={kind!r}", param="weights")
    if kind == "mixed" and (min_units is not None or max_units is not None):
        raise InputValueError(
            "kind='mixed' uses each family's own unit counts; leave min_units and max_units unset", param="kind"
        )
    family_counts = FAMILY_UNIT_COUNTS.get(kind, (0, 0, 0))
    if min_units is None:
        min_units = family_counts[0]
    if max_units is None:
        max_units = family_counts[1] if hole_ratio is None else family_counts[2]
        max_units = max(max_units, min_units) if _is_int(min_units) else max_units
    for name, value in (("min_units", min_units), ("max_units", max_units)):
        if not _is_int(value) or value < 0:
            raise InputValueError(f"{name} must be a non-negative integer; got {value!r}", param=name)
    if min_units > max_units:
        raise InputValueError(f"min_units ({min_units}) must be <= max_units ({max_units})", param="min_units")
    return int(min_units), int(max_units)


def _check_shapes(shapes: Sequence[str] | str) -> tuple[str, ...]:
    """``shapes`` as a tuple of known unit shapes (a single name is allowed)."""
    shapes = (shapes,) if isinstance(shapes, str) else tuple(shapes)
    unknown = [s for s in shapes if s not in SHAPES]
    if not shapes or unknown:
        raise InputValueError(
            f"shapes must be a non-empty subset of {', '.join(SHAPES)}; got {', '.join(map(repr, shapes)) or 'none'}",
            param="shapes",
        )
    return shapes


class MaskGenerator:
    """Random masks: ``(H, W)`` float32 arrays with 1 = valid pixel and 0 = hole.

    ``kind`` picks the family: ``"units"`` (default; lines, circles, ellipse arcs and rectangles), ``"wide"``
    (brush strokes up to about a sixth of the short side), ``"boxes"``, ``"blobs"`` (object-shaped regions),
    ``"thin"`` (scratches), or ``"mixed"``: each mask is drawn by one family chosen at random with
    ``weights`` (default :data:`MIXED_WEIGHTS`). Each mask paints a random number of units of the family
    (in ``[min_units, max_units]``; ``None`` takes the family's default from :data:`FAMILY_UNIT_COUNTS`).
    Unit sizes scale with the image and with ``unit_scale`` (see the module docs for the exact ranges).

    With ``hole_ratio=(lo, hi)`` every returned mask has a hole ratio (fraction of hole pixels) in
    ``[lo, hi]``: the generator draws a target ratio uniformly in ``[lo, hi]`` and adds units until the
    target is reached (and at least ``min_units`` were drawn); a unit that would push the ratio above ``hi``
    is redrawn (up to ``redraws`` times), and a mask that cannot be finished within ``max_units`` units is
    started again. After ``max_attempts`` failed masks it raises :class:`~pconv_kit.errors.InputValueError`
    saying which setting to change; ranges that are impossible on their face (e.g. ``lo > 0`` with
    ``max_units=0``, or no pixel count between ``lo * H * W`` and ``hi * H * W``) fail at construction.
    When ``max_units`` is too small for the top of the range, masks that run out of units are still returned
    if they are inside ``[lo, hi]``, but their ratios pile up at the low end; if that happens to more than
    half of the masks (checked from the 50th on) a ``UserWarning`` is issued once.

    Reproducibility: ``seed`` seeds the generator's own :func:`numpy.random.default_rng`; the same seed gives
    the same sequence of masks. Calls that pass ``rng`` use that generator instead and leave the own one
    untouched (give every data-loader worker its own ``rng``, otherwise forked workers repeat each other's
    masks).

    Args:
        height: mask height in pixels (> 0).
        width: mask width in pixels (> 0).
        min_units: fewest units per mask (>= 0); ``None``: the family's default.
        max_units: most units per mask (>= ``min_units``); ``None``: the family's default (larger when
            ``hole_ratio`` is given, so that ratios up to 0.6 are reached).
        hole_ratio: ``None`` or ``(lo, hi)`` with ``0 <= lo <= hi <= 1``.
        seed: seed of the own random generator (``None``: fresh entropy).
        shapes: kinds of unit the ``units`` family draws, a non-empty subset of :data:`SHAPES`.
        unit_scale: multiplies every unit size and thickness (> 0); larger units give larger holes.
        max_attempts: masks tried per call before ``hole_ratio`` is declared infeasible.
        redraws: how often one unit that overshoots ``hi`` is redrawn before the mask is started again.
        kind: one of :data:`MASK_KINDS`.
        weights: ``kind="mixed"`` only: the families' weights, a mapping ``{family: weight}`` (families left
            out weigh 0) or a sequence in the order of :data:`FAMILIES`; non-negative, not all zero.

    Attributes:
        last_units: the units of the mask returned by the latest ``__call__`` (a tuple of :class:`Unit`).
        last_family: the family that drew that mask (``kind`` itself unless ``kind="mixed"``).

    Example:
        >>> gen = MaskGenerator(256, 384, min_units=5, max_units=12, hole_ratio=(0.1, 0.2), seed=0)
        >>> mask = gen()
        >>> mask.shape, mask.dtype
        ((256, 384), dtype('float32'))
        >>> 0.1 <= 1 - mask.mean() <= 0.2 and 5 <= len(gen.last_units) <= 12
        True
        >>> gen.sample(4).shape
        (4, 256, 384)
        >>> blobs = MaskGenerator(256, 256, kind="blobs", hole_ratio=(0.3, 0.4), seed=0)
        >>> bool(0.3 <= 1 - blobs().mean() <= 0.4), {u.kind for u in blobs.last_units}
        (True, {'polygon'})
        >>> mixed = MaskGenerator(256, 256, kind="mixed", weights={"wide": 1, "boxes": 1}, seed=0)
        >>> families = set()
        >>> for _ in range(20):
        ...     _ = mixed()
        ...     families.add(mixed.last_family)
        >>> sorted(families)
        ['boxes', 'wide']
    """

    def __init__(
        self,
        height: int = 512,
        width: int = 512,
        min_units: int | None = None,
        max_units: int | None = None,
        hole_ratio: tuple[float, float] | None = None,
        seed: int | None = None,
        shapes: Sequence[str] = SHAPES,
        unit_scale: float = 1.0,
        max_attempts: int = 100,
        redraws: int = 20,
        kind: str = "units",
        weights: Mapping[str, float] | Sequence[float] | None = None,
    ) -> None:
        for name, value in (("height", height), ("width", width)):
            if not _is_int(value) or value <= 0:
                raise InputValueError(f"{name} must be a positive integer; got {value!r}", param=name)
        min_units, max_units = _unit_counts(kind, weights, min_units, max_units, hole_ratio)
        for name, value in (("max_attempts", max_attempts), ("redraws", redraws)):
            if not _is_int(value) or value < 1:
                raise InputValueError(f"{name} must be a positive integer; got {value!r}", param=name)
        if isinstance(unit_scale, bool) or not isinstance(unit_scale, numbers.Real) or not (
            math.isfinite(unit_scale) and unit_scale > 0
        ):
            raise InputValueError(f"unit_scale must be a positive finite number; got {unit_scale!r}", param="unit_scale")
        shapes = _check_shapes(shapes)
        self.height = int(height)
        self.width = int(width)
        self.kind = kind
        self.min_units = int(min_units)
        self.max_units = int(max_units)
        self.shapes = shapes
        self.unit_scale = float(unit_scale)
        self.max_attempts = int(max_attempts)
        self.redraws = int(redraws)
        self.hole_ratio = self._check_hole_ratio(hole_ratio)
        self.seed = seed
        self._rng = seeded_rng(seed)
        self.last_units: tuple[Unit, ...] = ()
        self.last_family = kind
        # statistics of hole_ratio draws, to warn once when max_units cuts off the top of the range:
        # attempts made, attempts stopped by max_units below their target ratio, masks returned
        self._masks_made = self._short_attempts = self._attempts = 0
        self._best_short = 0
        self._warned = False
        if kind == "mixed":
            self.weights = check_weights(MIXED_WEIGHTS if weights is None else weights)
            self._families = {
                family: MaskGenerator(
                    self.height, self.width, hole_ratio=self.hole_ratio, shapes=shapes, unit_scale=self.unit_scale,
                    max_attempts=self.max_attempts, redraws=self.redraws, kind=family,
                )
                for family, w in self.weights.items()
                if w > 0
            }
            self._cumulative = np.cumsum([self.weights[f] for f in self._families])
        else:
            self.weights = {kind: 1.0}
            self._sampler = FAMILY_SAMPLERS[kind](self.height, self.width, self.unit_scale, shapes)

    # ------------------------------------------------------------------------------------- validation
    def _check_hole_ratio(self, hole_ratio: tuple[float, float] | None) -> tuple[float, float] | None:
        if hole_ratio is None:
            self._lo_px = self._hi_px = 0
            return None
        try:
            lo, hi = (float(v) for v in hole_ratio)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise InputValueError(
                f"hole_ratio must be None or a pair (lo, hi) of numbers; got {hole_ratio!r}"
            ) from None
        if not (0.0 <= lo <= 1.0 and 0.0 <= hi <= 1.0):
            raise InputValueError(f"hole_ratio values must lie in [0, 1]; got ({lo:g}, {hi:g})")
        if lo > hi:
            raise InputValueError(f"hole_ratio lower bound ({lo:g}) must be <= upper bound ({hi:g})")
        total = self.height * self.width
        lo_px = math.ceil(lo * total - 1e-9)
        hi_px = math.floor(hi * total + 1e-9)
        if lo_px > hi_px:
            raise InputValueError(
                f"hole_ratio ({lo:g}, {hi:g}) is infeasible for a {self.height}x{self.width} mask: no whole number "
                f"of hole pixels lies between {lo * total:g} and {hi * total:g}; widen the range"
            )
        if self.kind == "mixed":  # each family checks its own unit counts
            self._lo_px, self._hi_px = lo_px, hi_px
            return (lo, hi)
        if hi_px == 0 and self.min_units > 0:
            raise InputValueError(
                f"hole_ratio ({lo:g}, {hi:g}) allows no hole pixels but min_units is {self.min_units} "
                "(every unit paints holes); set min_units to 0 or raise the upper bound"
            )
        if lo_px > 0 and self.max_units == 0:
            raise InputValueError(
                f"hole_ratio ({lo:g}, {hi:g}) needs holes but max_units is 0; raise max_units"
            )
        self._lo_px, self._hi_px = lo_px, hi_px
        return (lo, hi)

    def __repr__(self) -> str:
        extra = f", weights={self.weights}" if self.kind == "mixed" else ""
        return (
            f"MaskGenerator(height={self.height}, width={self.width}, kind={self.kind!r}, min_units={self.min_units}, "
            f"max_units={self.max_units}, hole_ratio={self.hole_ratio}, seed={self.seed}, shapes={self.shapes}, "
            f"unit_scale={self.unit_scale:g}{extra})"
        )

    # ----------------------------------------------------------------------------------------- units
    def random_unit(self, rng: np.random.Generator | None = None) -> Unit:
        """Draw the geometry of one random unit of the family (``units``: kind chosen uniformly from ``shapes``)."""
        if self.kind == "mixed":
            raise InputValueError("kind='mixed' draws whole masks from its families; call random_unit on a family")
        return self._sampler(self._rng if rng is None else rng)

    # ----------------------------------------------------------------------------------------- masks
    def generate(self, rng: np.random.Generator | None = None) -> tuple[np.ndarray, tuple[Unit, ...]]:
        """Draw one mask and return it with the units it is made of.

        Args:
            rng: random generator to use; ``None`` uses the generator's own seeded one.

        Returns:
            ``(mask, units)``: ``mask`` is ``(H, W)`` float32 with 1 = valid, 0 = hole; ``units`` the tuple of
            :class:`Unit` painted (``min_units <= len(units) <= max_units``).

        Raises:
            InputValueError: ``hole_ratio`` could not be met in ``max_attempts`` masks, or (without
                ``hole_ratio``) every mask of ``max_attempts`` was all hole, as at tiny sizes.
        """
        rng = self._rng if rng is None else rng
        if self.kind == "mixed":
            family = list(self._families)[int(np.searchsorted(self._cumulative, rng.random() * self._cumulative[-1], "right"))]
            self.last_family = family
            return self._families[family].generate(rng)
        if self.hole_ratio is None:
            canvas, units = self._generate_free(rng)
        else:
            canvas, units = self._generate_in_range(rng)
        mask = np.subtract(1.0, canvas, dtype=np.float32)
        return mask, units

    def _generate_free(self, rng: np.random.Generator) -> tuple[np.ndarray, tuple[Unit, ...]]:
        """Without ``hole_ratio``: any number of units, but never a mask that is all hole (nothing to fill from)."""
        canvas = np.zeros((self.height, self.width), np.uint8)
        for _ in range(self.max_attempts):
            canvas.fill(0)
            count = int(rng.integers(self.min_units, self.max_units + 1))
            units = tuple(self.random_unit(rng) for _ in range(count))
            for unit in units:
                unit.draw(canvas)
            if not canvas.all():
                return canvas, units
        raise InputValueError(
            f"every {self.kind!r} mask drawn at {self.height}x{self.width} was all hole ({self.max_attempts} tries); "
            "a mask needs known pixels: use a larger size, fewer units (max_units) or smaller ones (unit_scale), or "
            "give a hole_ratio range"
        )

    def _generate_in_range(self, rng: np.random.Generator) -> tuple[np.ndarray, tuple[Unit, ...]]:
        canvas = np.zeros((self.height, self.width), np.uint8)
        backup = np.empty_like(canvas)
        lo_px, hi_px = self._lo_px, self._hi_px
        short = overshoot = 0  # why attempts failed: out of units below lo / every redraw went above hi
        best_short = 0  # most hole pixels reached by a mask that ran out of units
        for _ in range(self.max_attempts):
            canvas.fill(0)
            units: list[Unit] = []
            holes = 0
            target = lo_px + rng.random() * (hi_px - lo_px)
            failed = False
            while len(units) < self.min_units or holes < target:
                if len(units) >= self.max_units:
                    break
                for _redraw in range(self.redraws):
                    np.copyto(backup, canvas)
                    unit = self.random_unit(rng)
                    unit.draw(canvas)
                    count = cv2.countNonZero(canvas)
                    if count <= hi_px:
                        units.append(unit)
                        holes = count
                        break
                    np.copyto(canvas, backup)
                else:
                    failed = True
                    break
            self._attempts += 1
            if not failed and holes < target:  # stopped by max_units before the target ratio
                self._short_attempts += 1
                self._best_short = max(self._best_short, holes)
            if failed:
                overshoot += 1
            elif lo_px <= holes and len(units) >= self.min_units:
                self._masks_made += 1
                self._check_bias()
                return canvas, tuple(units)
            else:
                short += 1
                best_short = max(best_short, holes)
        lo, hi = self.hole_ratio  # type: ignore[misc]
        if short >= overshoot:
            reason = (
                f"{short} masks ran out of units below {lo:g} (best reached: "
                f"{best_short / (self.height * self.width):.3f}); raise max_units or unit_scale, or lower the range"
            )
        else:
            reason = (
                f"in {overshoot} masks every unit tried pushed the hole ratio above {hi:g}; lower min_units or "
                "unit_scale, or widen the range"
            )
        raise InputValueError(
            f"could not generate a {self.height}x{self.width} {self.kind!r} mask with hole_ratio in [{lo:g}, {hi:g}] using "
            f"{self.min_units}-{self.max_units} units (unit_scale={self.unit_scale:g}) in {self.max_attempts} "
            f"attempts: {reason}"
        )

    def _check_bias(self) -> None:
        """Warn once if most masks run out of units before their target ratio (the top of the range is cut off)."""
        if self._warned or self._masks_made < 50 or self._short_attempts * 2 < self._attempts:
            return
        self._warned = True
        lo, hi = self.hole_ratio  # type: ignore[misc]
        warnings.warn(
            f"MaskGenerator: {100 * self._short_attempts / self._attempts:.0f}% of the masks drawn for hole_ratio "
            f"[{lo:g}, {hi:g}] ran out of units (max_units={self.max_units}) before reaching their target ratio, "
            f"so the masks are biased towards low ratios (largest reached: "
            f"{self._best_short / (self.height * self.width):.3f}); raise max_units or unit_scale",
            UserWarning,
            stacklevel=5,
        )

    def __call__(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Return one random mask ``(H, W)`` float32, 1 = valid, 0 = hole; its units go to :attr:`last_units`."""
        mask, self.last_units = self.generate(rng)
        return mask

    def sample(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Return ``n`` masks stacked as ``(n, H, W)`` float32 (1 = valid, 0 = hole).

        Example:
            >>> MaskGenerator(32, 48, seed=1).sample(3).shape
            (3, 32, 48)
        """
        if not _is_int(n) or n < 0:
            raise InputValueError(f"n must be a non-negative integer; got {n!r}")
        out = np.empty((int(n), self.height, self.width), np.float32)
        for i in range(int(n)):
            out[i] = self(rng)
        return out
