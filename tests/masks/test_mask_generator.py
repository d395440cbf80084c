"""MaskGenerator: binary float masks, unit counts, hole-ratio ranges, seeding and argument checks."""

from __future__ import annotations

import contextlib
import doctest
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pconv_kit.errors import InputValueError
from pconv_kit.io import write_image, write_mask
from pconv_kit.masks import SHAPES, MaskGenerator, Unit, draw_units


def hole_ratio(mask: np.ndarray) -> float:
    return float((mask == 0).mean())


@pytest.mark.parametrize("size", [(64, 64), (37, 91), (120, 16), (16, 16)])
def test_mask_is_binary_float32_with_requested_shape(size: tuple[int, int]) -> None:
    gen = MaskGenerator(*size, seed=0)
    for _ in range(5):
        mask = gen()
        assert mask.shape == size
        assert mask.dtype == np.float32
        assert set(np.unique(mask).tolist()) <= {0.0, 1.0}


def test_default_masks_have_holes_and_valid_pixels() -> None:
    masks = MaskGenerator(128, 128, seed=1).sample(20)
    ratios = [hole_ratio(m) for m in masks]
    assert all(0.0 < r < 1.0 for r in ratios)
    assert len(set(ratios)) > 1, "masks differ from each other"


@given(
    seed=st.integers(0, 2**32 - 1),
    min_units=st.integers(0, 6),
    extra=st.integers(0, 6),
)
def test_unit_count_stays_within_bounds(seed: int, min_units: int, extra: int) -> None:
    gen = MaskGenerator(48, 80, min_units=min_units, max_units=min_units + extra, seed=seed)
    for _ in range(4):
        mask, units = gen.generate()
        assert min_units <= len(units) <= min_units + extra
        assert all(isinstance(u, Unit) and u.kind in SHAPES for u in units)
        # the units really are what was painted: replaying them gives the same mask
        np.testing.assert_array_equal(draw_units(units, 48, 80), mask)


def test_call_records_last_units() -> None:
    gen = MaskGenerator(64, 64, min_units=3, max_units=3, seed=2)
    mask = gen()
    assert len(gen.last_units) == 3
    np.testing.assert_array_equal(draw_units(gen.last_units, 64, 64), mask)


def test_unit_count_is_drawn_from_the_whole_inclusive_range() -> None:
    gen = MaskGenerator(16, 16, min_units=2, max_units=4, seed=3)
    counts = {len(gen.generate()[1]) for _ in range(60)}
    assert counts == {2, 3, 4}


def test_zero_units_give_an_all_valid_mask() -> None:
    mask = MaskGenerator(20, 30, min_units=0, max_units=0, seed=0)()
    assert (mask == 1).all()


@pytest.mark.parametrize("shape", SHAPES)
def test_shapes_restricts_unit_kinds(shape: str) -> None:
    gen = MaskGenerator(64, 64, min_units=4, max_units=4, shapes=(shape,), seed=0)
    _, units = gen.generate()
    assert {u.kind for u in units} == {shape}


@given(
    seed=st.integers(0, 2**32 - 1),
    lo=st.floats(0.0, 0.4),
    width=st.floats(0.02, 0.2),
    size=st.sampled_from([(64, 80), (96, 48), (64, 64)]),
)
def test_every_mask_lies_in_the_hole_ratio_range(
    seed: int, lo: float, width: float, size: tuple[int, int]
) -> None:
    hi = min(1.0, lo + width)
    gen = MaskGenerator(*size, min_units=1, max_units=200, hole_ratio=(lo, hi), seed=seed)
    for _ in range(3):
        mask, units = gen.generate()
        assert lo <= hole_ratio(mask) <= hi
        assert 1 <= len(units) <= 200
        np.testing.assert_array_equal(draw_units(units, *size), mask)


def test_hole_ratio_respects_min_units_and_spreads_over_the_range() -> None:
    gen = MaskGenerator(128, 128, min_units=5, max_units=40, hole_ratio=(0.1, 0.3), seed=4)
    ratios = []
    for _ in range(40):
        mask, units = gen.generate()
        assert 5 <= len(units) <= 40
        ratios.append(hole_ratio(mask))
    assert min(ratios) >= 0.1 and max(ratios) <= 0.3
    assert min(ratios) < 0.15 and max(ratios) > 0.25, "the target ratio is drawn over the whole range"


def test_same_seed_same_masks_and_different_seeds_differ() -> None:
    a = MaskGenerator(64, 96, seed=7).sample(4)
    b = MaskGenerator(64, 96, seed=7).sample(4)
    c = MaskGenerator(64, 96, seed=8).sample(4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    ha = MaskGenerator(64, 96, hole_ratio=(0.2, 0.3), seed=7).sample(3)
    hb = MaskGenerator(64, 96, hole_ratio=(0.2, 0.3), seed=7).sample(3)
    np.testing.assert_array_equal(ha, hb)


def test_rng_argument_is_used_instead_of_the_own_generator() -> None:
    gen = MaskGenerator(32, 32, seed=0)
    reference = MaskGenerator(32, 32, seed=0).sample(2)
    other = MaskGenerator(32, 32, seed=123)
    from_rng = gen(rng=np.random.default_rng(5))
    np.testing.assert_array_equal(from_rng, other(rng=np.random.default_rng(5)))
    # the own generator was not advanced by the call with an explicit rng
    np.testing.assert_array_equal(gen.sample(2), reference)


def test_sample_shapes() -> None:
    gen = MaskGenerator(24, 40, seed=0)
    assert gen.sample(3).shape == (3, 24, 40)
    assert gen.sample(0).shape == (0, 24, 40)
    with pytest.raises(InputValueError, match="n must be"):
        gen.sample(-1)


def test_units_scale_with_the_image_size() -> None:
    small = np.mean([hole_ratio(m) for m in MaskGenerator(128, 128, seed=0).sample(60)])
    large = np.mean([hole_ratio(m) for m in MaskGenerator(512, 512, seed=0).sample(60)])
    assert abs(small - large) < 0.04, (small, large)
    bigger = np.mean([hole_ratio(m) for m in MaskGenerator(128, 128, unit_scale=2.0, seed=0).sample(60)])
    assert bigger > small + 0.05


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"min_units": 8, "max_units": 3}, r"min_units \(8\) must be <= max_units \(3\)"),
        ({"min_units": -1}, r"min_units must be a non-negative integer; got -1"),
        ({"max_units": -2, "min_units": 0}, r"max_units must be a non-negative integer; got -2"),
        ({"height": 0}, r"height must be a positive integer; got 0"),
        ({"width": -5}, r"width must be a positive integer; got -5"),
        ({"height": 2.5}, r"height must be a positive integer; got 2.5"),
        ({"hole_ratio": (0.3, 0.1)}, r"lower bound \(0.3\) must be <= upper bound \(0.1\)"),
        ({"hole_ratio": (-0.1, 0.2)}, r"must lie in \[0, 1\]; got \(-0.1, 0.2\)"),
        ({"hole_ratio": (0.1, 1.5)}, r"must lie in \[0, 1\]; got \(0.1, 1.5\)"),
        ({"hole_ratio": 0.5}, r"hole_ratio must be None or a pair"),
        ({"shapes": ("line", "star")}, r"shapes must be a non-empty subset .* 'star'"),
        ({"shapes": ()}, r"shapes must be a non-empty subset"),
        ({"unit_scale": 0.0}, r"unit_scale must be a positive finite number; got 0.0"),
        ({"max_attempts": 0}, r"max_attempts must be a positive integer"),
        ({"seed": -1}, r"seed must be None or a non-negative integer; got -1"),
    ],
)
def test_invalid_arguments_raise_input_value_error(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValueError, match=match):
        MaskGenerator(**{"height": 32, "width": 32, **kwargs})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"hole_ratio": (0.2, 0.3), "min_units": 0, "max_units": 0}, "raise max_units"),
        ({"hole_ratio": (0.0, 0.0), "min_units": 1}, "set min_units to 0"),
        # 10x10 pixels: no whole number of hole pixels in [12.3, 12.7]
        ({"height": 10, "width": 10, "hole_ratio": (0.123, 0.127)}, "no whole number of hole pixels"),
    ],
)
def test_infeasible_ranges_fail_at_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(InputValueError, match=match):
        MaskGenerator(**{"height": 32, "width": 32, **kwargs})


def test_unreachable_ratio_raises_with_advice() -> None:
    gen = MaskGenerator(64, 64, min_units=1, max_units=3, hole_ratio=(0.9, 0.95), seed=0, max_attempts=5)
    with pytest.raises(InputValueError, match=r"hole_ratio in \[0.9, 0.95\].*raise max_units"):
        gen()
    tiny = MaskGenerator(64, 64, min_units=5, max_units=10, hole_ratio=(0.0, 0.001), seed=0, max_attempts=5)
    with pytest.raises(InputValueError, match=r"above 0.001; lower min_units"):
        tiny()


def test_zero_hole_ratio_with_zero_units_is_feasible() -> None:
    mask = MaskGenerator(16, 16, min_units=0, max_units=5, hole_ratio=(0.0, 0.0), seed=0)()
    assert (mask == 1).all()


def test_warns_once_when_max_units_cuts_off_the_top_of_the_range() -> None:
    gen = MaskGenerator(64, 64, hole_ratio=(0.05, 0.5), max_units=12, seed=0)
    with pytest.warns(UserWarning, match=r"ran out of units \(max_units=12\).*raise max_units"):
        gen.sample(60)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gen.sample(60)  # only once per generator
        MaskGenerator(64, 64, hole_ratio=(0.05, 0.5), max_units=200, seed=0).sample(60)


def test_docstring_examples_run() -> None:
    import pconv_kit.masks.augment
    import pconv_kit.masks.generator

    for module in (pconv_kit.masks.generator, pconv_kit.masks.augment):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_user_guide_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Python block of docs/masks.md runs, and the outputs its comments show are the real ones."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "masks.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 5
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "data" / "irregular_masks"  # the folder the MaskFolder example reads
    folder.mkdir(parents=True)
    for i, mask in enumerate(MaskGenerator(64, 64, seed=0).sample(3)):
        write_mask(folder / f"{i}.png", mask)
    (tmp_path / "photos").mkdir()  # the folder the write_mask_set example reads
    for name in ("a.png", "b.png"):
        write_image(tmp_path / "photos" / name, np.full((48, 64, 3), 120, np.uint8))
    for block in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "docs/masks.md", "exec"), {})
        printed = out.getvalue().splitlines()
        prints = [line for line in block.splitlines() if line.lstrip().startswith("print(")]
        assert len(printed) == len(prints), (prints, printed)
        for statement, line in zip(prints, printed):
            # a comment that starts with a value (`# 0.177: ...`, `# (256, 384) ...`, `# True`) is the output
            comment = statement.split("#", 1)[1].strip() if "#" in statement else ""
            if re.match(r"[\d(\[]|True|False", comment):
                assert line == comment.split(": ")[0], (statement, line)
