"""Mixtures of mask families (``kind="mixed"``): the default weights and the ``"wide=0.3,blobs=0.3"`` text form.

Each mask of a mixture is drawn by one family, chosen with these weights (:class:`~pconv_kit.masks.MaskGenerator`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

from pconv_kit.errors import InputValueError
from pconv_kit.masks.shapes import FAMILIES

__all__ = ["MIXED_WEIGHTS", "check_weights", "format_weights", "parse_weights"]

#: Default weights of ``kind="mixed"`` (normalised to sum to 1).
MIXED_WEIGHTS: dict[str, float] = {"units": 0.15, "wide": 0.25, "boxes": 0.15, "blobs": 0.30, "thin": 0.15}


def parse_weights(text: str) -> dict[str, float]:
    """Parse ``"wide=0.3,blobs=0.3,boxes=0.2"`` into normalised mixture weights over every family.

    Families left out weigh 0. Used by ``pconv-kit masks --weights`` and the trainer's ``mask_weights``.

    Example:
        >>> parse_weights("wide=1, blobs=3")
        {'units': 0.0, 'wide': 0.25, 'boxes': 0.0, 'blobs': 0.75, 'thin': 0.0}
    """
    weights: dict[str, float] = {}
    for item in str(text).split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            number = float(value)
        except ValueError:
            number = None  # type: ignore[assignment]
        if not sep or number is None:
            raise InputValueError(f"mask weights must look like 'wide=0.3,blobs=0.3'; got {item.strip()!r} in {text!r}")
        if name in weights:
            raise InputValueError(f"mask weights name {name!r} twice in {text!r}")
        weights[name] = number
    if not weights:
        raise InputValueError(f"mask weights must name at least one family ({', '.join(FAMILIES)}); got {text!r}")
    return check_weights(weights)


def format_weights(weights: Mapping[str, float]) -> str:
    """The text form of mixture weights that :func:`parse_weights` reads (families of weight 0 left out).

    Example:
        >>> format_weights({"units": 0.0, "wide": 0.25, "blobs": 0.75})
        'wide=0.25,blobs=0.75'
    """
    return ",".join(f"{family}={weights[family]:g}" for family in FAMILIES if weights.get(family, 0.0) > 0)


def check_weights(weights: Mapping[str, float] | Sequence[float]) -> dict[str, float]:
    """Mixture weights as ``{family: weight}`` over every family, normalised to sum to 1.

    Example:
        >>> check_weights({"wide": 1, "blobs": 1})["blobs"]
        0.5
    """
    if isinstance(weights, Mapping):
        unknown = [k for k in weights if k not in FAMILIES]
        if unknown:
            raise InputValueError(f"unknown mask families in weights: {unknown}; expected some of {', '.join(FAMILIES)}")
        items = {f: weights.get(f, 0.0) for f in FAMILIES}
    else:
        values = list(weights)
        if len(values) != len(FAMILIES):
            raise InputValueError(
                f"weights must have one value per family ({', '.join(FAMILIES)}); got {len(values)} values"
            )
        items = dict(zip(FAMILIES, values))
    for family, w in items.items():
        if isinstance(w, bool) or not isinstance(w, numbers.Real) or not math.isfinite(w) or w < 0:
            raise InputValueError(f"the weight of {family!r} must be a non-negative finite number; got {w!r}")
    total = float(sum(items.values()))
    if total <= 0:
        raise InputValueError("at least one family weight must be positive")
    return {f: float(w) / total for f, w in items.items()}
