"""Mask families (units, wide, boxes, blobs, thin) and their mixture: ranges, seeds, replay, and shapes that
look like the family."""

from __future__ import annotations

import math
from collections import Counter

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pconv_kit.errors import InputValueError
from pconv_kit.masks import (
    FAMILIES,
    FAMILY_UNIT_COUNTS,
    MASK_KINDS,
    MIXED_WEIGHTS,
    MaskGenerator,
    draw_units,
    format_weights,
    parse_weights,
)

BINS = ((0.01, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.4), (0.4, 0.5), (0.5, 0.6))


def holes(mask: np.ndarray) -> np.ndarray:
    return (mask == 0).astype(np.uint8)


def hole_ratio(mask: np.ndarray) -> float:
    return float((mask == 0).mean())


def components(mask: np.ndarray) -> int:
    return cv2.connectedComponents(holes(mask), connectivity=8)[0] - 1


def max_half_width(mask: np.ndarray) -> float:
    """Largest distance from a hole pixel to the nearest valid pixel (half the widest stroke)."""
    return float(cv2.distanceTransform(holes(mask), cv2.DIST_L2, 5).max())


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("bin_", BINS, ids=[f"{lo:g}-{hi:g}" for lo, hi in BINS])
def test_every_family_reaches_every_bin_of_the_paper(kind: str, bin_: tuple[float, float]) -> None:
    gen = MaskGenerator(256, 256, kind=kind, hole_ratio=bin_, seed=0)
    for _ in range(4):
        mask, units = gen.generate()
        assert mask.dtype == np.float32 and mask.shape == (256, 256)
        assert set(np.unique(mask).tolist()) <= {0.0, 1.0}
        assert bin_[0] <= hole_ratio(mask) <= bin_[1]
        np.testing.assert_array_equal(draw_units(units, 256, 256), mask)


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(MASK_KINDS),
    seed=st.integers(0, 2**32 - 1),
    lo=st.floats(0.0, 0.5),
    width=st.floats(0.03, 0.2),
    size=st.sampled_from([(64, 96), (96, 64), (80, 80)]),
)
def test_hole_ratio_ranges_and_replay_hold_for_any_seed(
    kind: str, seed: int, lo: float, width: float, size: tuple[int, int]
) -> None:
    hi = min(1.0, lo + width)
    gen = MaskGenerator(*size, kind=kind, hole_ratio=(lo, hi), seed=seed)
    mask, units = gen.generate()
    assert lo <= hole_ratio(mask) <= hi
    np.testing.assert_array_equal(draw_units(units, *size), mask)
    if kind != "mixed":
        assert len(units) <= gen.max_units


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_same_seed_same_masks_other_seed_other_masks(kind: str) -> None:
    a = MaskGenerator(96, 128, kind=kind, seed=11).sample(5)
    b = MaskGenerator(96, 128, kind=kind, seed=11).sample(5)
    c = MaskGenerator(96, 128, kind=kind, seed=12).sample(5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # an explicit rng gives the same mask whatever the own seed, and leaves the own generator alone
    g1, g2 = MaskGenerator(96, 128, kind=kind, seed=1), MaskGenerator(96, 128, kind=kind, seed=2)
    np.testing.assert_array_equal(g1(np.random.default_rng(3)), g2(np.random.default_rng(3)))
    np.testing.assert_array_equal(g1.sample(5), MaskGenerator(96, 128, kind=kind, seed=1).sample(5))


@pytest.mark.parametrize("kind", FAMILIES)
def test_free_masks_use_the_family_unit_counts(kind: str) -> None:
    lo, hi, _ = FAMILY_UNIT_COUNTS[kind]
    gen = MaskGenerator(128, 128, kind=kind, seed=0)
    counts = {len(gen.generate()[1]) for _ in range(60)}
    assert min(counts) >= lo and max(counts) <= hi
    assert len(counts) > 1


def test_unit_kinds_per_family() -> None:
    expected = {"units": {"line", "circle", "ellipse", "rectangle"}, "wide": {"polyline"}, "boxes": {"rectangle"},
                "blobs": {"polygon"}, "thin": {"polyline"}}
    for family, kinds in expected.items():
        gen = MaskGenerator(128, 128, kind=family, hole_ratio=(0.3, 0.4), seed=0)
        seen = {u.kind for _ in range(10) for u in gen.generate()[1]}
        assert seen == kinds, family


# ------------------------------------------------------------------------------ shapes look like the family
def test_blobs_are_few_large_compact_regions() -> None:
    gen = MaskGenerator(256, 256, kind="blobs", hole_ratio=(0.1, 0.4), seed=0)
    for _ in range(20):
        mask, units = gen.generate()
        assert components(mask) <= len(units) <= FAMILY_UNIT_COUNTS["blobs"][2]
        contours, _ = cv2.findContours(holes(mask), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        largest = max(contours, key=cv2.contourArea)
        hull = cv2.contourArea(cv2.convexHull(largest))
        assert cv2.contourArea(largest) > 0.6 * hull, "a blob is a solid region, not a stroke"
        assert cv2.contourArea(largest) >= 0.02 * 256 * 256
    # units masks of the same ratio are many small pieces
    units = MaskGenerator(256, 256, hole_ratio=(0.1, 0.4), seed=0)
    assert np.mean([components(units()) for _ in range(20)]) > np.mean([components(gen()) for _ in range(20)]) + 1


def test_wide_strokes_are_wide_and_thin_scratches_are_thin() -> None:
    s = 512
    wide = MaskGenerator(s, s, kind="wide", hole_ratio=(0.2, 0.3), seed=0)
    thin = MaskGenerator(s, s, kind="thin", hole_ratio=(0.2, 0.3), seed=0)
    wide_masks = [wide.generate() for _ in range(5)]
    thin_masks = [thin.generate() for _ in range(5)]
    # brushes are 3-17 % of the short side wide, scratches 1-6 px (1.2 % of it)
    wide_brushes = [u.params["thickness"] for _, units in wide_masks for u in units]
    thin_brushes = [u.params["thickness"] for _, units in thin_masks for u in units]
    assert round(0.03 * s) <= min(wide_brushes) and max(wide_brushes) <= round(0.17 * s)
    assert np.median(wide_brushes) >= 0.07 * s
    assert 1 <= min(thin_brushes) and max(thin_brushes) <= round(0.012 * s)
    # and the painted holes say so: a hole pixel of a wide mask lies far deeper inside its hole
    depth = {
        name: np.mean([cv2.distanceTransform(holes(m), cv2.DIST_L2, 5)[m == 0].mean() for m, _ in masks])
        for name, masks in (("wide", wide_masks), ("thin", thin_masks))
    }
    assert depth["wide"] > 0.02 * s and depth["thin"] < 0.006 * s, depth


def test_boxes_have_sides_between_a_tenth_and_a_half_and_half_are_axis_aligned() -> None:
    h, w = 240, 320
    gen = MaskGenerator(h, w, kind="boxes", min_units=1, max_units=1, seed=0)
    aligned = 0
    for _ in range(200):
        (unit,) = gen.generate()[1]
        corners = np.asarray(unit.params["corners"], np.float64)
        side_a = np.linalg.norm(corners[1] - corners[0])
        side_b = np.linalg.norm(corners[3] - corners[0])
        edge = corners[1] - corners[0]
        if abs(edge[1]) <= 1:  # horizontal first side: axis-aligned
            aligned += 1
            assert 0.1 * w - 2 <= side_a <= 0.5 * w + 2 and 0.1 * h - 2 <= side_b <= 0.5 * h + 2
        assert 0.1 * min(h, w) - 2 <= min(side_a, side_b) and max(side_a, side_b) <= 0.5 * max(h, w) + 2
    assert 70 <= aligned <= 130


# ------------------------------------------------------------------------------ the mixture
def test_mixture_draws_each_family_with_its_weight() -> None:
    weights = {"wide": 0.5, "blobs": 0.3, "thin": 0.2}
    gen = MaskGenerator(64, 64, kind="mixed", weights=weights, hole_ratio=(0.1, 0.3), seed=0)
    drawn = Counter()
    for _ in range(600):
        gen()
        drawn[gen.last_family] += 1
    assert set(drawn) == set(weights), "families of weight 0 are never drawn"
    for family, w in weights.items():
        assert abs(drawn[family] / 600 - w) < 0.07, (family, drawn)
    # the units of the mask are those of the family that drew it
    kinds = {"wide": "polyline", "blobs": "polygon", "thin": "polyline"}
    gen()
    assert {u.kind for u in gen.last_units} == {kinds[gen.last_family]}


def test_default_mixture_weights() -> None:
    gen = MaskGenerator(64, 64, kind="mixed", seed=0)
    assert gen.weights == pytest.approx(MIXED_WEIGHTS)
    assert math.isclose(sum(MIXED_WEIGHTS.values()), 1.0)
    assert set(MIXED_WEIGHTS) == set(FAMILIES)
    assert "weights=" in repr(gen) and "kind='mixed'" in repr(gen)


def test_weights_as_a_sequence_in_family_order() -> None:
    gen = MaskGenerator(64, 64, kind="mixed", weights=[0, 0, 2, 0, 2], seed=0)
    assert gen.weights == {"units": 0.0, "wide": 0.0, "boxes": 0.5, "blobs": 0.0, "thin": 0.5}


def test_parse_and_format_weights_round_trip() -> None:
    w = parse_weights(" wide=2, blobs = 1,boxes=1 ")
    assert w == {"units": 0.0, "wide": 0.5, "boxes": 0.25, "blobs": 0.25, "thin": 0.0}
    assert format_weights(w) == "wide=0.5,boxes=0.25,blobs=0.25"
    assert parse_weights(format_weights(w)) == w


@pytest.mark.parametrize(
    "text,match",
    [
        ("wide", "must look like 'wide=0.3,blobs=0.3'"),
        ("wide=x", "must look like"),
        ("blob=1", r"unknown mask families in weights: \['blob'\]"),
        ("wide=1,wide=2", "name 'wide' twice"),
        ("wide=-1", "weight of 'wide' must be a non-negative finite number"),
        ("wide=nan", "non-negative finite"),
        ("wide=0,blobs=0", "at least one family weight must be positive"),
        ("", "at least one family"),
    ],
)
def test_bad_weight_texts(text: str, match: str) -> None:
    with pytest.raises(InputValueError, match=match):
        parse_weights(text)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"kind": "stars"}, r"kind must be one of units, wide, boxes, blobs, thin, mixed; got 'stars'"),
        ({"kind": "wide", "weights": {"wide": 1}}, "weights apply to kind='mixed' only"),
        ({"kind": "mixed", "max_units": 3}, "leave min_units and max_units unset"),
        ({"kind": "mixed", "weights": [1, 2]}, "one value per family"),
        ({"kind": "mixed", "weights": {"wide": True}}, "non-negative finite number"),
        ({"kind": "blobs", "min_units": 3, "max_units": 1}, r"min_units \(3\) must be <= max_units \(1\)"),
    ],
)
def test_invalid_family_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValueError, match=match):
        MaskGenerator(32, 32, **kwargs)


def test_mixed_has_no_single_unit() -> None:
    with pytest.raises(InputValueError, match="call random_unit on a family"):
        MaskGenerator(32, 32, kind="mixed").random_unit()


def test_unreachable_family_ratio_names_the_family() -> None:
    gen = MaskGenerator(64, 64, kind="boxes", max_units=1, hole_ratio=(0.9, 1.0), seed=0, max_attempts=3)
    with pytest.raises(InputValueError, match=r"'boxes' mask with hole_ratio in \[0.9, 1\]"):
        gen()


@pytest.mark.parametrize("kind", FAMILIES)
def test_tiny_and_thin_images(kind: str) -> None:
    for size in ((3, 200), (200, 3)):
        mask = MaskGenerator(*size, kind=kind, seed=0)()
        assert mask.shape == size and mask.dtype == np.float32 and mask.any()
    # one pixel can only be all hole, which no mask may be (nothing to fill from): a clear error
    with pytest.raises(InputValueError, match="was all hole"):
        MaskGenerator(1, 1, kind=kind, seed=0)()
