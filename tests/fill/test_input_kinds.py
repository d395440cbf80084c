"""Every kind of input listed in docs/fill.md ("Every kind of input, and what happens to it") gets the outcome
the table promises: one builder per row makes such a file, fill_folder runs on it, and the report is checked.
The table and the builders must list the same kinds, so a new row without a test (or the reverse) fails."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from pconv_kit.fill import fill_folder
from pconv_kit.io import read_image, write_image, write_mask
from pconv_kit.models import PConvUNet

DOC = Path(__file__).resolve().parents[2] / "docs" / "fill.md"
H, W = 24, 32
RNG = np.random.default_rng(0)


def documented() -> dict[str, str]:
    """``{kind: outcome}`` from the table in docs/fill.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Every kind of input, and what happens to it", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (filled|warned|refused|skipped|ignored) \|", section, re.M)
    assert rows, "the table of input kinds is missing from docs/fill.md"
    return dict(rows)


def rgb(dtype: type = np.uint8) -> np.ndarray:
    if dtype is np.float32:
        return RNG.random((H, W, 3), dtype=np.float32)
    top = np.iinfo(dtype).max
    return RNG.integers(0, top + 1, (H, W, 3), dtype=np.int64).astype(dtype)


def with_profile(path: Path, array: np.ndarray, **extra: object) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(array).save(path, icc_profile=icc, **extra)


def frames(path: Path) -> None:
    pages = [Image.fromarray(rgb()) for _ in range(3)]
    pages[0].save(path, save_all=True, append_images=pages[1:])


def rotated_jpeg(path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees: stored W x H, read H x W
    Image.fromarray(rgb().transpose(1, 0, 2).copy()).save(path, exif=exif.tobytes(), quality=95)


def edited_png(path: Path, edit: Callable[[bytes], bytes]) -> None:
    """A PNG whose bytes ``edit`` changed (cut short, or bytes of the last IDAT chunk overwritten)."""
    write_image(path, rgb())
    path.write_bytes(edit(path.read_bytes()))


def symlinked_folder(folder: Path) -> None:
    target = folder.parent / "elsewhere"
    target.mkdir()
    write_image(target / "c.png", rgb())
    (folder / "linked").symlink_to(target, target_is_directory=True)


# kind -> (make the input in the folder; the input's name in the report (None: none); fill_folder options;
# the mask: "holes" (a box), "none" (no mask file), "full" (no hole), "empty" (all hole), "aspect" (2:1))
Builder = tuple[Callable[[Path], None], "str | None", dict, str]
BUILDERS: dict[str, Builder] = {
    "rgb-png": (lambda d: write_image(d / "x.png", rgb()), "x.png", {}, "holes"),
    "jpeg": (lambda d: write_image(d / "x.jpg", rgb()), "x.jpg", {}, "holes"),
    "webp": (lambda d: write_image(d / "x.webp", rgb()), "x.webp", {}, "holes"),
    "bmp": (lambda d: write_image(d / "x.bmp", rgb()), "x.bmp", {}, "holes"),
    "grey": (lambda d: write_image(d / "x.png", rgb()[..., :1]), "x.png", {}, "holes"),
    "rgba": (lambda d: write_image(d / "x.png", np.concatenate([rgb(), np.full((H, W, 1), 255, np.uint8)], 2)),
             "x.png", {}, "holes"),
    "grey-alpha": (lambda d: Image.fromarray(np.stack([rgb()[..., 0], np.full((H, W), 255, np.uint8)], 2)).save(
        d / "x.png"), "x.png", {}, "holes"),
    "png-16": (lambda d: write_image(d / "x.png", rgb(np.uint16)), "x.png", {}, "holes"),
    "tiff-16": (lambda d: write_image(d / "x.tif", rgb(np.uint16)), "x.tif", {}, "holes"),
    "tiff-float": (lambda d: write_image(d / "x.tif", rgb(np.float32)), "x.tif", {}, "holes"),
    "exif-rotated": (lambda d: rotated_jpeg(d / "x.jpg"), "x.jpg", {}, "holes"),
    "icc-exif": (lambda d: with_profile(d / "x.png", rgb()), "x.png", {}, "holes"),
    "no-holes": (lambda d: write_image(d / "x.png", rgb()), "x.png", {}, "full"),
    "png-16-to-jpeg": (lambda d: write_image(d / "x.png", rgb(np.uint16)), "x.png", {"fmt": "jpg"}, "holes"),
    "rgba-to-jpeg": (lambda d: write_image(d / "x.png", np.concatenate([rgb(), np.full((H, W, 1), 9, np.uint8)], 2)),
                     "x.png", {"fmt": "jpg"}, "holes"),
    "icc-to-rgba-tiff": (lambda d: with_profile(d / "x.png", np.concatenate([rgb(), np.full((H, W, 1), 255, np.uint8)], 2)),
                         "x.png", {"fmt": "tif"}, "holes"),
    "phone-mpo": (lambda d: Image.fromarray(rgb()).save(d / "x.jpg", format="MPO", save_all=True,
                                                       append_images=[Image.new("RGB", (8, 6))]), "x.jpg", {}, "holes"),
    "multi-page-tiff": (lambda d: frames(d / "x.tif"), "x.tif", {}, "holes"),
    "animated-png": (lambda d: frames(d / "x.png"), "x.png", {}, "holes"),
    "gif": (lambda d: Image.fromarray(rgb()).save(d / "x.gif"), "x.gif", {}, "holes"),
    "truncated": (lambda d: edited_png(d / "x.png", lambda b: b[: len(b) // 2]), "x.png", {}, "holes"),
    "damaged-png": (lambda d: edited_png(d / "x.png", lambda b: b[:-20] + b"xxxx" + b[-16:]), "x.png", {}, "holes"),
    "empty": (lambda d: (d / "x.png").write_bytes(b""), "x.png", {}, "holes"),
    "too-large": (lambda d: write_image(d / "x.png", rgb()), "x.png", {"max_pixels": H * W - 1}, "holes"),
    "no-mask": (lambda d: write_image(d / "x.png", rgb()), "x.png", {}, "none"),
    "mask-other-aspect": (lambda d: write_image(d / "x.png", rgb()), "x.png", {}, "aspect"),
    "all-hole": (lambda d: write_image(d / "x.png", rgb()), "x.png", {}, "empty"),
    "linked-folder": (symlinked_folder, "linked/", {"recursive": True}, "none"),
    "hidden": (lambda d: write_image(d / ".x.png", rgb()), None, {}, "holes"),
    "other-file": (lambda d: (d / "notes.txt").write_text("not an image"), None, {}, "holes"),
}


def test_the_table_and_the_tests_list_the_same_kinds() -> None:
    assert sorted(documented()) == sorted(BUILDERS)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_each_kind_of_input_gets_its_documented_outcome(tmp_path: Path, kind: str) -> None:
    make, name, options, mask = BUILDERS[kind]
    outcome = documented()[kind]
    src, masks, out = tmp_path / "in", tmp_path / "masks", tmp_path / "out"
    src.mkdir()
    masks.mkdir()
    make(src)
    valid = {"holes": np.pad(np.zeros((8, 12), np.float32), ((6, 10), (10, 10)), constant_values=1.0),
             "full": np.ones((H, W), np.float32), "empty": np.zeros((H, W), np.float32),
             "aspect": np.ones((H, 2 * W), np.float32)}.get(mask)
    if valid is not None:
        write_mask(masks / "x.png", valid)
    torch.manual_seed(0)
    report = fill_folder(src, out, PConvUNet(layer_size=3, base_channels=8), masks_dir=masks, device="cpu",
                         workers=1, **options)
    rows = {r.file: r for r in report.results}
    if outcome == "ignored":
        assert name is None and not rows, rows
        return
    assert name in rows, rows
    row = rows[name]
    expected_status = {"filled": "done", "warned": "done", "refused": "failed", "skipped": "skipped"}[outcome]
    assert row.status == expected_status, row
    if outcome == "filled":
        assert not row.warnings, row
    if outcome == "warned":
        assert row.warnings, row
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    if outcome in ("filled", "warned"):
        assert written == [row.output]
        assert read_image(out / row.output).shape[:2] == (H, W)  # upright, the input's displayed size
    else:
        assert written == [], written
