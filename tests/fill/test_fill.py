"""Tests of pconv_kit.fill: formats, bit depths, mask discovery, resume, atomic writes, failures, sharding."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pconv_kit.errors import InputValueError
from pconv_kit.fill import (
    FileResult,
    ResultKind,
    fill_folder,
    parse_shard,
    plan_tasks,
    shard_from_env,
)
from pconv_kit.inpaint import Inpainter, inpaint
from pconv_kit.io import decode_image, encode_image, read_image, write_image, write_mask
from pconv_kit.models import PConvUNet, save_model


@pytest.fixture(scope="module")
def model() -> PConvUNet:
    torch.manual_seed(0)
    return PConvUNet(layer_size=3, base_channels=8).eval()


@pytest.fixture
def model_path(model: PConvUNet, tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    return path


def image_of(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def valid_of(h: int, w: int, box: tuple[int, int, int, int] = (4, 6, 14, 20)) -> np.ndarray:
    valid = np.ones((h, w), np.float32)
    t, l, b, r = box
    valid[t:b, l:r] = 0
    return valid


def run(in_dir: Path, out_dir: Path, model: PConvUNet | Path, **kw: object):
    kw.setdefault("device", "cpu")
    kw.setdefault("workers", 1)
    return fill_folder(in_dir, out_dir, model, **kw)  # type: ignore[arg-type]


def by_file(report) -> dict[str, FileResult]:  # noqa: ANN001
    return {r.file: r for r in report.results}


# ---------------------------------------------------------------------------------------------- formats

LOSSLESS = [
    ("rgb8.png", (20, 28, 3), np.uint8),
    ("rgb16.png", (20, 28, 3), np.uint16),
    ("gray8.png", (20, 28, 1), np.uint8),
    ("gray16.png", (20, 28, 1), np.uint16),
    ("rgba8.png", (20, 28, 4), np.uint8),
    ("rgba16.png", (20, 28, 4), np.uint16),
    ("rgb8.tif", (20, 28, 3), np.uint8),
    ("rgb16.tif", (20, 28, 3), np.uint16),
    ("float.tif", (20, 28, 3), np.float32),
    ("rgb8.bmp", (20, 28, 3), np.uint8),
]
LOSSY = [("photo.jpg", (20, 28, 3), np.uint8), ("gray.jpg", (20, 28, 1), np.uint8), ("photo.webp", (20, 28, 3), np.uint8)]


def test_round_trip_every_format_and_bit_depth(tmp_path: Path, model: PConvUNet) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    originals = {}
    for i, (name, shape, dtype) in enumerate(LOSSLESS + LOSSY):
        if (name, shape, dtype) in LOSSY:  # a smooth picture: JPEG/WebP noise stays small
            yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
            planes = [(yy * 5 + xx * 3 + 40 * c) % 200 + 20 for c in range(shape[2])]
            write_image(src / name, np.stack(planes, axis=2).astype(np.uint8))
        else:
            write_image(src / name, image_of(shape, dtype, i))
        originals[name] = read_image(src / name)  # what a reader sees (lossy formats: decoded pixels)
        write_mask(src / (Path(name).stem + "_mask.png"), valid_of(*shape[:2]))
    report = run(src, out, model, batch_size=1)  # one image per model call: exactly what inpaint() computes
    assert report.counts == {"done": len(originals), "skipped": 0, "failed": 0}, report.failed
    valid = valid_of(20, 28) > 0.5
    for name, shape, dtype in LOSSLESS + LOSSY:
        result = read_image(out / name)  # same name: same format
        original = originals[name]
        assert result.shape == original.shape and result.dtype == original.dtype, name
        expected = inpaint(original, valid, model)
        if (name, shape, dtype) in LOSSLESS:
            assert np.array_equal(result[valid], original[valid]), name  # known pixels bit-exact
            assert np.array_equal(result, expected), name
            assert not np.array_equal(result[~valid], original[~valid]), name
        else:  # re-encoded once, at the default quality 95
            assert np.array_equal(result, decode_image(encode_image(expected, Path(name).suffix, 95))), name
    assert sorted(p.name for p in out.iterdir()) == sorted(originals)  # masks are not outputs


def test_format_conversion_and_collisions(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.tif", image_of((16, 16, 4), np.uint16))
    write_image(src / "b.jpg", image_of((16, 16, 3)))
    write_image(src / "b.png", image_of((16, 16, 3), seed=1))
    mask = tmp_path / "mask.png"
    write_mask(mask, valid_of(16, 16, (2, 2, 9, 9)))
    report = run(src, tmp_path / "out", model, mask=mask, fmt="jpg", quality=90)
    rows = by_file(report)
    assert rows["a.tif"].status == "done" and rows["a.tif"].output == "a.jpg"
    assert any("8-bit" in w for w in rows["a.tif"].warnings) and any("alpha" in w for w in rows["a.tif"].warnings)
    a = read_image(tmp_path / "out" / "a.jpg")
    assert a.shape == (16, 16, 3) and a.dtype == np.uint8
    assert rows["b.jpg"].status == "done"
    assert rows["b.png"].status == "failed" and "b.jpg" in rows["b.png"].reason
    with pytest.raises(InputValueError, match="format"):
        run(src, tmp_path / "out2", model, mask=mask, fmt="gif")


def test_exif_orientation_is_honoured(tmp_path: Path, model: PConvUNet) -> None:
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    stored = image_of((20, 32, 3))  # stored landscape, displayed portrait (orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(src / "rot.jpg", quality=95, exif=exif)
    upright = read_image(src / "rot.jpg")
    assert upright.shape == (32, 20, 3)
    write_mask(src / "rot_mask.png", valid_of(32, 20))
    report = run(src, tmp_path / "out", model)
    assert report.counts["done"] == 1, report.results
    assert read_image(tmp_path / "out" / "rot.jpg").shape == (32, 20, 3)


def test_images_without_holes_are_copied_byte_for_byte(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.jpg", image_of((16, 16, 3)), quality=70)
    write_mask(src / "a_mask.png", np.ones((16, 16), np.float32))
    report = run(src, tmp_path / "out", model)
    assert by_file(report)["a.jpg"].reason == "no holes; copied"
    assert (tmp_path / "out" / "a.jpg").read_bytes() == (src / "a.jpg").read_bytes()


# ---------------------------------------------------------------------------------------------- masks


def test_mask_discovery_rules_and_priority(tmp_path: Path, model: PConvUNet) -> None:
    src, masks = tmp_path / "in", tmp_path / "masks"
    (src / "sub").mkdir(parents=True)
    masks.mkdir()
    (masks / "sub").mkdir()
    for name in ("dir.png", "under.png", "dot.png", "alpha.png", "none.png", "sub/deep.png"):
        write_image(src / name, image_of((16, 16, 3), seed=len(name)))
    rgba = image_of((16, 16, 4))
    rgba[..., 3] = 255
    rgba[3:8, 3:8, 3] = 0  # transparent = hole
    rgba[10, 10, 3] = 200  # semi-opaque: known, alpha kept
    write_image(src / "alpha.png", rgba)
    write_mask(masks / "dir.png", valid_of(16, 16, (1, 1, 4, 4)))
    write_mask(masks / "sub" / "deep_mask.png", valid_of(16, 16, (2, 2, 5, 5)))
    write_mask(src / "dir_mask.png", valid_of(16, 16, (9, 9, 12, 12)))  # loses against --masks
    write_mask(src / "under_mask.png", valid_of(16, 16, (5, 5, 9, 9)))
    write_mask(src / "dot.mask.png", valid_of(16, 16, (6, 6, 10, 10)))
    report = run(src, tmp_path / "out", model, masks_dir=masks, recursive=True)
    rows = by_file(report)
    assert rows["dir.png"].mask == "masks/dir.png"
    assert rows["sub/deep.png"].mask == "masks/sub/deep_mask.png"
    assert rows["under.png"].mask == "sibling under_mask.png"
    assert rows["dot.png"].mask == "sibling dot.mask.png"
    assert rows["alpha.png"].mask == "alpha"
    assert rows["none.png"].status == "failed" and "no mask found" in rows["none.png"].reason
    assert set(rows) == {"dir.png", "under.png", "dot.png", "alpha.png", "none.png", "sub/deep.png"}
    out_dir = read_image(tmp_path / "out" / "dir.png")
    original = read_image(src / "dir.png")
    changed = np.any(out_dir != original, axis=2)
    assert changed[1:4, 1:4].any() and not changed[4:, :].any() and not changed[:, 4:].any()
    out_alpha = read_image(tmp_path / "out" / "alpha.png")
    assert (out_alpha[3:8, 3:8, 3] == 255).all()  # filled pixels are opaque
    assert out_alpha[10, 10, 3] == 200 and np.array_equal(out_alpha[10, 10], rgba[10, 10])
    assert (tmp_path / "out" / "sub" / "deep.png").is_file()

    # --mask FILE wins over everything
    shared = tmp_path / "shared.png"
    write_mask(shared, valid_of(16, 16, (12, 12, 15, 15)))
    report = run(src, tmp_path / "out2", model, mask=shared)
    assert all(r.mask == "--mask shared.png" for r in report.results if r.status == "done")
    assert by_file(report)["none.png"].status == "done"

    # without --recursive the masks folder is matched by stem only
    report = run(src, tmp_path / "out3", model, masks_dir=masks)
    assert "sub/deep.png" not in by_file(report)


def test_valid_white_and_non_binary_masks(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    src.mkdir()
    image = image_of((16, 16, 3))
    write_image(src / "a.png", image)
    soft = np.full((16, 16), 230, np.uint8)  # valid-white, anti-aliased: > 50% = valid
    soft[4:10, 4:10] = 20
    soft[0, 0] = 140
    write_image(src / "a_mask.png", soft)
    run(src, tmp_path / "out", model, mask_convention="valid-white")
    out = read_image(tmp_path / "out" / "a.png")
    valid = soft > 127
    assert np.array_equal(out[valid], image[valid]) and not np.array_equal(out[~valid], image[~valid])


def test_mask_size_mismatch(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "same_aspect.png", image_of((20, 30, 3)))
    write_mask(src / "same_aspect_mask.png", valid_of(40, 60, (10, 10, 20, 30)))
    write_image(src / "other_aspect.png", image_of((20, 30, 3)))
    write_mask(src / "other_aspect_mask.png", valid_of(30, 30))
    report = run(src, tmp_path / "out", model)
    rows = by_file(report)
    assert rows["same_aspect.png"].status == "done"
    assert any("resized from 60x40 to 30x20" in w for w in rows["same_aspect.png"].warnings)
    assert rows["other_aspect.png"].status == "failed" and "size mismatch" in rows["other_aspect.png"].reason
    assert rows["other_aspect.png"].kind is ResultKind.SIZE_MISMATCH
    out = read_image(tmp_path / "out" / "same_aspect.png")
    original = read_image(src / "same_aspect.png")
    changed = np.any(out != original, axis=2)
    assert not changed[:5].any() and not changed[10:].any()


# ---------------------------------------------------------------------------------------------- failures


def test_failures_are_rows_and_the_rest_is_processed(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "good.png", image_of((16, 16, 3)))
    write_mask(src / "good_mask.png", valid_of(16, 16))
    (src / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    write_mask(src / "corrupt_mask.png", valid_of(16, 16))
    write_image(src / "allhole.png", image_of((16, 16, 3)))
    write_mask(src / "allhole_mask.png", np.zeros((16, 16), np.float32))
    write_image(src / "nomask.png", image_of((16, 16, 3)))
    report = run(src, tmp_path / "out", model)
    rows = by_file(report)
    assert rows["good.png"].status == "done"
    assert rows["corrupt.png"].status == "failed" and "corrupt.png" in rows["corrupt.png"].reason
    assert rows["allhole.png"].status == "failed" and "allhole.png" in rows["allhole.png"].reason
    assert "nothing to inpaint" in rows["allhole.png"].reason
    assert rows["nomask.png"].status == "failed" and "no mask" in rows["nomask.png"].reason
    kinds = {name: row.kind for name, row in rows.items()}
    assert kinds == {
        "good.png": ResultKind.FILLED,
        "corrupt.png": ResultKind.UNREADABLE,
        "allhole.png": ResultKind.ALL_HOLE,
        "nomask.png": ResultKind.MISSING_MASK,
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
    report.write_json(tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["counts"] == {"done": 1, "skipped": 0, "failed": 3}
    assert {f["file"]: f["status"] for f in data["files"]}["corrupt.png"] == "failed"
    assert {f["file"]: f["kind"] for f in data["files"]}["allhole.png"] == "all hole"


def test_bad_arguments(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    src.mkdir()
    with pytest.raises(InputValueError, match="set overwrite"):
        run(src, src, model)
    with pytest.raises(InputValueError, match="not both"):
        run(src, tmp_path / "o", model, mask=tmp_path / "m.png", masks_dir=tmp_path)
    with pytest.raises(InputValueError, match="does not exist"):
        run(tmp_path / "missing", tmp_path / "o", model)
    with pytest.raises(InputValueError, match="I/N"):
        parse_shard("3")
    with pytest.raises(InputValueError, match="0 <= I < N"):
        parse_shard("4/4")


def test_in_place_with_overwrite(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    src.mkdir()
    image = image_of((16, 16, 3))
    write_image(src / "a.png", image)
    write_mask(src / "a_mask.png", valid_of(16, 16))
    report = run(src, src, model, overwrite=True)
    assert report.counts["done"] == 1
    assert not np.array_equal(read_image(src / "a.png"), image)
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "a_mask.png"]


# ---------------------------------------------------------------------------------------------- resume, atomic


def test_resume_skips_done_files(tmp_path: Path, model: PConvUNet) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(3):
        write_image(src / f"{i}.png", image_of((16, 16, 3), seed=i))
    mask = tmp_path / "m.png"
    write_mask(mask, valid_of(16, 16))
    first = run(src, out, model, mask=mask)
    assert first.counts == {"done": 3, "skipped": 0, "failed": 0}
    os.utime(out / "1.png", ns=(1, 1))
    (out / "2.png").unlink()  # as if the first run had been interrupted before writing it
    second = run(src, out, model, mask=mask)
    assert second.counts == {"done": 1, "skipped": 2, "failed": 0}
    assert by_file(second)["2.png"].status == "done" and by_file(second)["0.png"].reason == "output exists"
    assert os.stat(out / "1.png").st_mtime_ns == 1  # untouched
    third = run(src, out, model, mask=mask, overwrite=True)
    assert third.counts == {"done": 3, "skipped": 0, "failed": 0}
    assert os.stat(out / "1.png").st_mtime_ns != 1


def test_atomic_writes_leave_no_partial_file(tmp_path: Path, model: PConvUNet, monkeypatch: pytest.MonkeyPatch) -> None:
    import pconv_kit.utils.files as files

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for name in ("a", "b"):
        write_image(src / f"{name}.png", image_of((16, 16, 3)))
        write_mask(src / f"{name}_mask.png", valid_of(16, 16))
    real_fsync = files.os.fsync

    def failing_fsync(fd: int) -> None:  # the disk "fails" after b.png's bytes were written to its temp file
        if Path(os.readlink(f"/proc/self/fd/{fd}")).name.startswith(".b."):
            raise OSError(5, "simulated I/O error")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    report = run(src, out, model)
    rows = by_file(report)
    assert rows["a.png"].status == "done"
    assert rows["b.png"].status == "failed" and "simulated I/O error" in rows["b.png"].reason
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # no b.png, no temporary file
    monkeypatch.setattr(files.os, "fsync", real_fsync)
    again = run(src, out, model)
    assert by_file(again)["b.png"].status == "done" and by_file(again)["a.png"].status == "skipped"


# ---------------------------------------------------------------------------------------------- batching, pipeline


def test_same_size_images_are_batched(tmp_path: Path, model: PConvUNet, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i in range(5):
        write_image(src / f"big{i}.png", image_of((24, 32, 3), seed=i))
    for i in range(2):
        write_image(src / f"small{i}.png", image_of((16, 16, 3), seed=10 + i))
    mask = tmp_path / "m.png"
    write_mask(mask, valid_of(32, 32, (4, 4, 12, 12)))  # square: resized for 16x16; 24x32 fails the aspect check
    inpainter = Inpainter(model, device="cpu")
    calls: list[int] = []
    original = inpainter.predict_batch

    def spy(jobs):  # noqa: ANN001, ANN202
        calls.append(len(jobs))
        return original(jobs)

    monkeypatch.setattr(inpainter, "predict_batch", spy)
    report = run(src, tmp_path / "out", inpainter, mask=mask, batch_size=4, workers=2)
    assert report.counts == {"done": 2, "skipped": 0, "failed": 5}
    assert calls == [2]
    square = tmp_path / "sq.png"
    write_mask(square, valid_of(24, 32, (4, 4, 12, 12)))
    calls.clear()
    report = run(src, tmp_path / "out2", inpainter, mask=square, batch_size=4, workers=2)
    assert report.counts["done"] == 5 and sorted(calls) == [1, 4]
    # batched and one-by-one give the same files
    single = run(src, tmp_path / "out3", model, mask=square, batch_size=1)
    for i in range(5):
        a = read_image(tmp_path / "out2" / f"big{i}.png").astype(int)
        b = read_image(tmp_path / "out3" / f"big{i}.png").astype(int)
        assert np.abs(a - b).max() <= 1
    assert single.counts["done"] == 5


def test_concat_strips(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    write_image(src / "sub" / "a.png", image_of((16, 20, 3)))
    write_mask(src / "sub" / "a_mask.png", valid_of(16, 20))
    report = run(src, tmp_path / "out", model, recursive=True, concat=True)
    assert report.counts["done"] == 1
    strip = read_image(tmp_path / "out" / "concat" / "sub" / "a.png")
    result = read_image(tmp_path / "out" / "sub" / "a.png")
    assert strip.shape == (16, 60, 3)
    assert np.array_equal(strip[:, :20], read_image(src / "sub" / "a.png"))
    assert np.array_equal(strip[:, 20:40, 0] == 255, valid_of(16, 20) == 0)
    assert np.array_equal(strip[:, 40:], result)


# ---------------------------------------------------------------------------------------------- sharding


@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_shards_cover_every_file_exactly_once(tmp_path: Path, count: int) -> None:
    src = tmp_path / "in"
    (src / "x").mkdir(parents=True)
    names = [f"{i:02d}.png" for i in range(11)] + [f"x/{i}.jpg" for i in range(4)]
    for name in names:
        (src / name).write_bytes(b"")
    (src / "00_mask.png").write_bytes(b"")  # a sibling mask is not an image to fill
    seen: list[str] = []
    for index in range(count):
        tasks, failures = plan_tasks(src, tmp_path / "out", recursive=True, shard=(index, count))
        assert not failures
        seen += [t.name for t in tasks]
    assert sorted(seen) == sorted(names)


def test_sharded_runs_fill_every_file_once(tmp_path: Path, model: PConvUNet) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    for i in range(7):
        write_image(src / f"{i}.png", image_of((16, 16, 3), seed=i))
    mask = tmp_path / "m.png"
    write_mask(mask, valid_of(16, 16))
    done: list[str] = []
    for index in range(3):
        report = run(src, out, model, mask=mask, shard=(index, 3))
        assert report.shard == (index, 3)
        done += [r.file for r in report.results if r.status == "done"]
    assert sorted(done) == sorted(f"{i}.png" for i in range(7))
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{i}.png" for i in range(7))


def test_shard_from_torchrun_env(tmp_path: Path, model: PConvUNet, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shard_from_env({"RANK": "2", "WORLD_SIZE": "4"}) == (2, 4)
    assert shard_from_env({"WORLD_SIZE": "1"}) is None
    assert shard_from_env({}) is None
    src = tmp_path / "in"
    src.mkdir()
    for i in range(4):
        write_image(src / f"{i}.png", image_of((8, 8, 3), seed=i))
    mask = tmp_path / "m.png"
    write_mask(mask, valid_of(8, 8, (1, 1, 4, 4)))
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    report = run(src, tmp_path / "out", model, mask=mask)
    assert report.shard == (1, 2) and [r.file for r in report.results] == ["1.png", "3.png"]


def test_output_folder_inside_input_is_not_read(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", image_of((8, 8, 3)))
    write_mask(src / "a_mask.png", valid_of(8, 8, (1, 1, 4, 4)))
    run(src, src / "filled", model, recursive=True)
    report = run(src, src / "filled", model, recursive=True)
    assert [r.file for r in report.results] == ["a.png"] and report.counts["skipped"] == 1


def test_masks_folder_inside_input_is_not_filled(tmp_path: Path, model: PConvUNet) -> None:
    src = tmp_path / "in"
    (src / "masks").mkdir(parents=True)
    write_image(src / "a.png", image_of((8, 8, 3)))
    write_mask(src / "masks" / "a.png", valid_of(8, 8, (1, 1, 4, 4)))
    report = run(src, tmp_path / "out", model, masks_dir=src / "masks", recursive=True)
    assert [(r.file, r.status, r.mask) for r in report.results] == [("a.png", "done", "masks/a.png")]


# ---------------------------------------------------------------------------------------------- the pipeline


def test_pipeline_batches_by_key_retries_one_by_one_and_fails_only_the_bad_item() -> None:
    from pconv_kit.fill.pipeline import Finished, Pipeline

    calls: list[list[int]] = []

    def predict(items: list[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise RuntimeError("out of memory")
        return [n * 10 for n in items]

    done: list[str] = []
    Pipeline(
        read=lambda n: Finished(f"{n}: skipped") if n < 0 else n,
        predict=predict,
        write=lambda n, p: f"{n}: {p}",
        record=done.append,
        batch_key=lambda n: None if n == 0 else n % 2,
        predict_failed=lambda n, exc: f"{n}: {exc}",
        batch_size=2,
        workers=1,
    ).run([1, 13, 2, 4, 0, -5])
    assert sorted(done) == sorted(["1: 10", "13: out of memory", "2: 20", "4: 40", "0: None", "-5: skipped"])
    assert [1, 13] in calls and [1] in calls and [13] in calls  # the failing batch was retried item by item
    assert all(len(c) <= 2 for c in calls) and all(len({n % 2 for n in c}) == 1 for c in calls)


def test_pipeline_lets_programming_errors_through() -> None:
    from pconv_kit.fill.pipeline import Pipeline

    def predict(items: list[int]) -> list[int]:
        raise TypeError("a bug")

    pipe = Pipeline(read=lambda n: n, predict=predict, write=lambda n, p: n, record=lambda r: None,
                    batch_key=lambda n: 0, predict_failed=lambda n, exc: n, batch_size=1, workers=1)
    with pytest.raises(TypeError, match="a bug"):
        pipe.run([1, 2])
