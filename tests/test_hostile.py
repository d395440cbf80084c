"""Hostile inputs (issue 12): folders and arguments built to make a run lose or overwrite data.

Each case drives the real command (Click's runner) on a folder made by the ``hostile`` fixture, and checks the
promise: nothing that was read is replaced unless it is the output of that same input, the run says why a file
failed, and the exit code says it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

import pconv_kit.fill as pconv_kit_fill
import pconv_kit.fill.steps as fill_steps
import pconv_kit_cli.commands.fill as fill_command
from pconv_kit.errors import InputValueError
from pconv_kit.inpaint import Inpainter, inpaint
from pconv_kit.io import image_header, read_image, read_mask, write_image, write_mask
from pconv_kit.masks import MASK_KINDS, MaskGenerator
from pconv_kit.models import PConvUNet, save_model
from pconv_kit.models import load_model
from pconv_kit.models.serialization import CONFIG_KEY
from pconv_kit_cli.errors import EXIT_PARTIAL_FAILURE, EXIT_USAGE
from pconv_kit_cli.main import cli


def digests(folder: Path) -> dict[str, str]:
    """Content hash of every file under ``folder``, by relative path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """``in/`` holds ``a.jpg`` and ``a.png`` (one stem, two formats) and ``b.png``; ``masks/`` one mask per
    stem; ``model.safetensors`` a tiny untrained model."""
    torch.manual_seed(0)
    save_model(PConvUNet(layer_size=3, base_channels=8), tmp_path / "model.safetensors")
    rng = np.random.default_rng(0)
    src, masks = tmp_path / "in", tmp_path / "masks"
    src.mkdir()
    masks.mkdir()
    for name in ("a.jpg", "a.png", "b.png"):
        write_image(src / name, rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    valid = np.ones((24, 32), np.float32)
    valid[5:15, 8:20] = 0
    for stem in ("a", "b"):
        write_mask(masks / f"{stem}.png", valid)
    return tmp_path


def fill(*args: str | Path) -> object:
    return CliRunner().invoke(cli, ["fill", *map(str, args)], catch_exceptions=False)


def test_in_place_fill_never_replaces_another_input(hostile: Path) -> None:
    src = hostile / "in"
    before = digests(src)
    result = fill(src, src, "--overwrite", "--format", "png", "--masks", hostile / "masks",
                  "--model", hostile / "model.safetensors")
    assert result.exit_code == EXIT_PARTIAL_FAILURE, result.output
    # a.jpg would have become a.png, the other input: refused before anything was written, and said so
    flat = " ".join(result.output.split())
    assert "a.jpg: output a.png would replace the input a.png" in flat
    after = digests(src)
    assert after["a.jpg"] == before["a.jpg"]
    # a.png and b.png were filled in place (their own outputs), the only files that changed
    assert after["a.png"] != before["a.png"] and after["b.png"] != before["b.png"]
    assert sorted(after) == sorted(before)


def test_a_shared_mask_file_inside_the_folder_is_neither_filled_nor_replaced(hostile: Path) -> None:
    src = hostile / "in"
    valid = np.ones((24, 32), np.float32)
    valid[8:12, 8:12] = 0
    write_mask(src / "hole.png", valid)
    before = digests(src)
    result = fill(src, src, "--overwrite", "--mask", src / "hole.png", "--format", "keep",
                  "--model", hostile / "model.safetensors")
    assert result.exit_code == 0, result.output
    assert digests(src)["hole.png"] == before["hole.png"]
    assert "hole.png" not in " ".join(result.output.split()).replace(str(src / "hole.png"), "")


@pytest.mark.parametrize("where", ["masks", "parent of masks", "parent of input"])
def test_an_output_folder_that_is_or_holds_an_input_folder_is_refused(hostile: Path, where: str) -> None:
    src, masks = hostile / "in", hostile / "masks"
    out = {"masks": masks, "parent of masks": hostile, "parent of input": hostile}[where]
    if where == "parent of input":  # masks elsewhere, so only the input folder is inside the output
        masks = hostile.parent / f"{hostile.name}_masks"
        masks.mkdir()
        write_mask(masks / "b.png", np.ones((24, 32), np.float32))
    before = digests(hostile)
    for extra in ((), ("--overwrite",)):
        result = fill(src, out, "--masks", masks, "--model", hostile / "model.safetensors", *extra)
        assert result.exit_code == EXIT_USAGE, result.output
        assert "Traceback" not in result.output
        message = " ".join(result.output.split())
        assert ("holds the input folder" if where == "parent of input" else "the masks folder") in message
    assert digests(hostile) == before


# ---------------------------------------------------------------------------------------------- model files


def crafted(path: Path, config: object, tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """A small safetensors file whose metadata says ``config`` (a string is stored as it is)."""
    text = config if isinstance(config, str) else json.dumps(config)
    save_file(tensors or {"x": torch.zeros(4)}, str(path), metadata={CONFIG_KEY: text})
    return path


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"layer_size": 7, "base_channels": 100000}, "base_channels=100000 is out of range"),
        ({"layer_size": 10**6, "base_channels": 8}, "layer_size=1000000 is out of range"),
        ({"layer_size": "7", "base_channels": 8}, "layer_size='7' is out of range"),
        ({"layer_size": 7, "base_channels": 2048}, "do not match the stored architecture"),
        ('{"layer_size": 7, "base_', "is not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_crafted_model_files_are_refused_before_anything_is_allocated(
    hostile: Path, config: object, message: str
) -> None:
    weights = crafted(hostile / "crafted.safetensors", config)
    started = time.perf_counter()
    with pytest.raises(InputValueError, match=re.escape(message)):
        load_model(weights)
    assert time.perf_counter() - started < 20  # no gigabytes built: base_channels=2048 alone is 6e10 weights
    out = hostile / "out"
    result = fill(hostile / "in", out, "--masks", hostile / "masks", "--model", weights)
    assert result.exit_code == EXIT_USAGE and "Traceback" not in result.output, result.output
    assert message.split("=")[0].split(" (")[0] in " ".join(result.output.split())
    assert not out.exists() or not any(out.iterdir())


def test_a_pickle_given_as_model_is_named_and_sent_to_convert(hostile: Path) -> None:
    torch.save(PConvUNet(layer_size=3, base_channels=8).state_dict(), hostile / "old.pth")
    with pytest.raises(InputValueError, match=r"PyTorch pickle checkpoint .* `pconv-kit convert`"):
        load_model(hostile / "old.pth")
    result = fill(hostile / "in", hostile / "out", "--masks", hostile / "masks", "--model", hostile / "old.pth")
    assert result.exit_code == EXIT_USAGE and "pconv-kit convert" in " ".join(result.output.split())


def test_a_model_with_nan_weights_is_refused(hostile: Path) -> None:
    model = PConvUNet(layer_size=3, base_channels=8)
    with torch.no_grad():
        model.decoder[-1].conv.weight[0, 0, 0, 0] = float("nan")
    save_model(model, hostile / "nan.safetensors")
    with pytest.raises(InputValueError, match="NaN or infinite"):
        load_model(hostile / "nan.safetensors")
    result = fill(hostile / "in", hostile / "out", "--masks", hostile / "masks", "--model", hostile / "nan.safetensors")
    assert result.exit_code == EXIT_USAGE, result.output


# ---------------------------------------------------------------------------------------------- non-finite values


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_hole_values_are_ignored_by_the_tensor_api(bad: float) -> None:
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=8).eval()
    image = torch.rand(2, 3, 32, 32)
    valid = torch.ones(2, 1, 32, 32)
    valid[:, :, 8:20, 4:30] = 0
    clean = image.masked_fill(valid == 0, 0.0)
    dirty = image.masked_fill(valid == 0, bad)
    # the model and its predict: what the holes held does not matter, NaN and infinity included
    with torch.no_grad():
        assert torch.equal(model(dirty, valid)[0], model(clean, valid)[0])
    assert torch.equal(model.predict(dirty, valid), model.predict(clean, valid))
    # inpaint: the holes are filled with finite values, known pixels kept as they are
    filled = inpaint(dirty, valid, model)
    assert torch.isfinite(filled).all()
    assert torch.equal(filled[valid.expand_as(filled) == 1], image[valid.expand_as(image) == 1])
    assert torch.equal(filled, inpaint(clean, valid, model))


def test_fill_fails_a_file_whose_output_is_not_finite(hostile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # weights are checked when loaded; an overflow at run time (e.g. in float16) must still not be written
    def poisoned(self: Inpainter, jobs: list) -> list:
        return [None if not job.has_holes else np.full((*job.size, 3), np.nan, np.float32) for job in jobs]

    monkeypatch.setattr(Inpainter, "predict_batch", poisoned)
    out = hostile / "out"
    result = fill(hostile / "in", out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    assert result.exit_code == EXIT_PARTIAL_FAILURE, result.output
    assert "the model's output is not finite" in " ".join(result.output.split())
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


# ---------------------------------------------------------------------------------------------- masks


def test_masks_at_a_tiny_size_are_refused_and_never_all_hole(tmp_path: Path) -> None:
    # 'masks --size 2 2' wrote an all-hole mask: now the size is refused before any folder or file is made
    out = tmp_path / "masks"
    result = CliRunner().invoke(cli, ["masks", "--size", "2", "2", "--num", "3", "--out", str(out)])
    assert result.exit_code == EXIT_USAGE and "at least 16 16" in " ".join(result.output.split()), result.output
    assert not out.exists()
    # the generator itself takes any size but never returns an all-hole mask: it redraws, then says why
    with pytest.raises(InputValueError, match="was all hole"):
        MaskGenerator(1, 1, seed=0).generate()
    two = MaskGenerator(2, 2, seed=0)
    for _ in range(20):
        try:
            assert two().any()
        except InputValueError as exc:
            assert "was all hole" in str(exc)


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_small_masks_always_keep_known_pixels(kind: str) -> None:
    gen = MaskGenerator(12, 12, kind=kind, seed=0)
    for _ in range(30):
        assert gen().any(), kind  # 1 = valid: at least one known pixel


# ---------------------------------------------------------------------------------------------- reruns


def test_a_rerun_with_concat_makes_the_strips_from_the_outputs_without_the_model(
    hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out = hostile / "in", hostile / "out"
    args = (src, out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    assert fill(*args).exit_code == 0
    outputs = digests(out)
    assert not (out / "concat").exists()

    def no_model(self: Inpainter, jobs: list) -> list:
        raise AssertionError("the model ran again for outputs that exist")

    monkeypatch.setattr(Inpainter, "predict_batch", no_model)
    result = fill(*args, "--concat")
    assert result.exit_code == 0, result.output
    after = digests(out)
    assert {k: v for k, v in after.items() if not k.startswith("concat/")} == outputs  # outputs untouched
    strips = sorted(k for k in after if k.startswith("concat/"))
    assert strips == ["concat/a.jpg", "concat/a.png", "concat/b.png"]
    strip = read_image(out / "concat" / "b.png")
    output = read_image(out / "b.png")
    assert strip.shape == (24, 96, 3) and np.array_equal(strip[:, 64:], output)
    # and once the strips exist, a third run skips everything
    third = fill(*args, "--concat")
    assert third.exit_code == 0 and re.search(r"skipped\s*│\s*3\s*│", third.output), third.output
    assert digests(out) == after


# ---------------------------------------------------------------------------------------------- what is not read


def test_unsupported_images_fail_loudly_and_their_masks_stay_masks(hostile: Path) -> None:
    src, out = hostile / "in", hostile / "out"
    (src / "anim.gif").write_bytes(b"GIF89a" + bytes(20))
    write_mask(src / "anim_mask.png", np.ones((24, 32), np.float32))  # the GIF's sibling mask
    result = fill(src, out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    assert result.exit_code == EXIT_PARTIAL_FAILURE, result.output
    flat = " ".join(result.output.split())
    assert "anim.gif: GIF files are not supported" in flat
    assert not (out / "anim_mask.png").exists() and "anim_mask" not in flat  # not filled as an image
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "a.png", "b.png"]


def test_symlinked_folders_are_reported_not_skipped_in_silence(hostile: Path) -> None:
    src, out = hostile / "in", hostile / "out"
    elsewhere = hostile / "elsewhere"
    elsewhere.mkdir()
    write_image(elsewhere / "c.png", np.zeros((24, 32, 3), np.uint8))
    (src / "linked").symlink_to(elsewhere, target_is_directory=True)
    result = fill(src, out, "--recursive", "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    assert result.exit_code == 0, result.output
    assert "linked/: a symbolic link to a folder, not followed" in " ".join(result.output.split())
    assert not (out / "linked").exists()


def test_temp_files_of_a_killed_run_are_cleaned_up_by_the_next(hostile: Path) -> None:
    out = hostile / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / ".a.k3j9x_2q.tmp.png", out / "sub" / ".b.abcdefgh.tmp.jpg"]
    fresh = out / ".b.zzzzzzzz.tmp.png"  # another fill writing right now: left alone
    keep = [out / ".notes.txt", out / "sub" / ".a.tmp.png"]  # not atomic_write's pattern
    for path in [*stale, fresh, *keep]:
        path.write_bytes(b"cut short")
    old = time.time() - 3600
    for path in [*stale, *keep]:
        os.utime(path, (old, old))
    result = fill(hostile / "in", out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    assert result.exit_code == 0, result.output
    assert not any(p.exists() for p in stale)
    assert fresh.exists() and all(p.exists() for p in keep)


# ---------------------------------------------------------------------------------------------- one line, exit 2


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (OSError(errno.EROFS, "Read-only file system", "out"), "Read-only file system: out"),
        (OSError(errno.ENOSPC, "No space left on device", "report.json"), "No space left on device: report.json"),
        (MemoryError(), "out of memory; a smaller --batch-size"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1e12 bytes"),
         "out of memory: DefaultCPUAllocator"),
    ],
)
def test_system_errors_become_one_line_and_exit_2(
    hostile: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, message: str
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise error

    # where fill meets the file system and memory: making the output folder, or writing the report
    monkeypatch.setattr(fill_command, "fill_folder", broken)
    result = CliRunner().invoke(cli, ["fill", str(hostile / "in"), str(hostile / "out"), "--masks",
                                      str(hostile / "masks"), "--report", str(hostile / "report.json")])
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Traceback" not in result.output and f"Error: {message}" in " ".join(result.output.split())


def test_other_runtime_errors_are_not_disguised(monkeypatch: pytest.MonkeyPatch, hostile: Path) -> None:
    def bug(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a programming error")

    monkeypatch.setattr(fill_command, "fill_folder", bug)
    result = CliRunner().invoke(cli, ["fill", str(hostile / "in"), str(hostile / "out")])
    assert isinstance(result.exception, RuntimeError)


# ---------------------------------------------------------------------------------------------- huge images


def test_an_image_over_the_pixel_limit_fails_before_it_is_decoded(
    hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, out = hostile / "in", hostile / "out"
    # a small file holding 4000x3000 pixels (compresses to a few kB), and a limit below it
    write_image(src / "huge.png", np.zeros((3000, 4000, 3), np.uint8))
    assert (src / "huge.png").stat().st_size < 200_000
    write_mask(hostile / "masks" / "huge.png", np.ones((3000, 4000), np.float32))
    decoded: list[str] = []
    real_read = fill_steps.read_image

    def spy(path: Path) -> np.ndarray:
        decoded.append(Path(path).name)
        return real_read(path)

    monkeypatch.setattr(fill_steps, "read_image", spy)
    args = (src, out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    result = fill(*args, "--max-pixels", "10000000")
    assert result.exit_code == EXIT_PARTIAL_FAILURE, result.output
    assert "huge.png: 4000x3000 pixels is more than the limit of 10,000,000" in " ".join(result.output.split())
    assert "huge.png" not in decoded and sorted(decoded) == ["a.jpg", "a.png", "b.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "a.png", "b.png"]
    # the default limit (100 Mpx) lets it through
    assert pconv_kit_fill.DEFAULT_MAX_PIXELS == 100_000_000
    assert image_header(src / "huge.png")[:2] == (3000, 4000)


@pytest.mark.parametrize("name", ["pages.tif", "animated.png", "animated.webp"])
def test_multi_page_and_animated_files_are_refused_not_cut_to_one_page(hostile: Path, name: str) -> None:
    from PIL import Image

    src, out = hostile / "in", hostile / "out"
    frames = [Image.fromarray(np.full((24, 32, 3), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(src / name, save_all=True, append_images=frames[1:])
    write_mask(hostile / "masks" / f"{Path(name).stem}.png", np.ones((24, 32), np.float32))
    assert image_header(src / name)[:3] == (24, 32, 3)
    result = fill(src, out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    assert result.exit_code == EXIT_PARTIAL_FAILURE, result.output
    assert f"{name}: the file holds 3 pages or frames" in " ".join(result.output.split())
    assert not (out / name).exists() and (out / "b.png").exists()


# ---------------------------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif"])
def test_colour_profile_and_exif_are_kept_with_orientation_normalised(hostile: Path, suffix: str) -> None:
    from PIL import Image, ImageCms

    src, out = hostile / "in", hostile / "out"
    for p in src.iterdir():
        p.unlink()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "CameraMaker", "Model 7", 6  # make, model, orientation: 90 deg
    stored = np.random.default_rng(0).integers(0, 256, (32, 24, 3), dtype=np.uint8)  # shown as 24 x 32
    Image.fromarray(stored).save(src / f"photo{suffix}", icc_profile=icc, exif=exif.tobytes(), quality=95)
    upright = read_image(src / f"photo{suffix}")
    assert upright.shape == (24, 32, 3)  # the orientation was applied on reading
    valid = np.ones((24, 32), np.float32)
    valid[4:12, 6:20] = 0
    write_mask(hostile / "masks" / "photo.png", valid)
    result = fill(src, out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    assert result.exit_code == 0, result.output
    with Image.open(out / f"photo{suffix}") as im:
        assert im.info.get("icc_profile") == icc
        kept = im.getexif()
        assert (kept[0x010F], kept[0x0110], kept[0x0112]) == ("CameraMaker", "Model 7", 1)
        assert im.size == (32, 24)  # stored upright, so orientation 1 is right
    filled = read_image(out / f"photo{suffix}")
    assert filled.shape == upright.shape
    if suffix in (".png", ".tif"):
        assert np.array_equal(filled[valid > 0], upright[valid > 0])


def test_formats_that_cannot_hold_the_profile_say_so(hostile: Path) -> None:
    from PIL import Image, ImageCms

    src, out = hostile / "in", hostile / "out"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    (src / "a.jpg").unlink()  # a.jpg and a.png would both become a.tif
    rgba = np.concatenate([np.zeros((24, 32, 3), np.uint8), np.full((24, 32, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba).save(src / "b.png", icc_profile=icc)  # an RGBA TIFF out: Pillow cannot write it back
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(src / "a.png", icc_profile=icc)  # an RGB one can
    result = fill(src, out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors", "--format", "tif")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "b.png: the input's ICC colour profile is not kept in .tif (16-bit, float or RGBA) outputs" in text
    assert "a.png: the input's" not in text
    with Image.open(out / "a.tif") as im:
        assert im.info.get("icc_profile") == icc


def test_a_damaged_png_gives_one_line_and_no_libpng_chatter(hostile: Path) -> None:
    import subprocess
    import sys

    src = hostile / "in"
    data = bytearray((src / "b.png").read_bytes())
    data[-20:-16] = b"xxxx"  # inside the last IDAT chunk: its CRC no longer matches
    (src / "b.png").write_bytes(bytes(data))
    with pytest.raises(Exception, match=r"the PNG file is corrupt \(CRC error in its IDAT chunk\)"):
        read_image(src / "b.png")
    command = [sys.executable, "-m", "pconv_kit_cli", "fill", str(src), str(hostile / "out"), "--masks",
               str(hostile / "masks"), "--model", str(hostile / "model.safetensors")]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == EXIT_PARTIAL_FAILURE, result.stdout + result.stderr
    assert "libpng" not in result.stderr + result.stdout  # libpng prints to the process's stderr itself
    assert "failed b.png: cannot read image" in result.stderr and "CRC error in its IDAT chunk" in result.stderr


def test_grey_with_alpha_stays_grey_with_alpha(hostile: Path) -> None:
    from PIL import Image

    src, out = hostile / "in", hostile / "out"
    rng = np.random.default_rng(1)
    la = np.stack([rng.integers(0, 256, (24, 32), dtype=np.uint8), np.full((24, 32), 255, np.uint8)], axis=2)
    la[:3, :3, 1] = 40  # some translucent pixels, kept as they are
    Image.fromarray(la).save(src / "b.png")
    assert image_header(src / "b.png").mode == "LA"
    result = fill(src, out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors", "--concat")
    assert result.exit_code == 0, result.output
    assert "grey + alpha" not in result.output
    with Image.open(out / "b.png") as im:
        assert im.mode == "LA"
        filled = np.asarray(im)
    valid = read_mask(hostile / "masks" / "b.png") > 0.5
    assert np.array_equal(filled[valid], la[valid])  # known grey values and alpha bit-exact
    assert not np.array_equal(filled[~valid, 0], la[~valid, 0]) and (filled[~valid, 1] == 255).all()
    assert read_image(out / "concat" / "b.png").shape == (24, 96, 4)
    # a format without grey + alpha says what it stores instead
    again = fill(src, hostile / "out_webp", "--masks", hostile / "masks", "--model", hostile / "model.safetensors",
                 "--format", "webp")
    assert "b.png: grey + alpha stored as RGBA (.webp output)" in " ".join(again.output.split())


# ---------------------------------------------------------------------------------------------- what is caught


def test_out_of_memory_in_a_batch_is_retried_per_file_and_bugs_are_not_hidden(
    hostile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = hostile / "in"
    for p in src.iterdir():
        p.unlink()
    for name in ("a.png", "b.png"):
        write_image(src / name, np.zeros((24, 32, 3), np.uint8))
    model = PConvUNet(layer_size=3, base_channels=8)
    real = Inpainter.predict_batch
    calls: list[int] = []

    def oom_for_pairs(self: Inpainter, jobs: list) -> list:
        calls.append(len(jobs))
        if len(jobs) > 1 or jobs[0].name == "b.png":
            raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1e12 bytes")
        return real(self, jobs)

    monkeypatch.setattr(Inpainter, "predict_batch", oom_for_pairs)
    report = pconv_kit_fill.fill_folder(src, hostile / "out", model, masks_dir=hostile / "masks", batch_size=2,
                                        workers=1, device="cpu")
    assert calls == [2, 1, 1]  # the batch, then each file on its own
    rows = {r.file: r for r in report.results}
    assert rows["a.png"].status == "done" and rows["b.png"].status == "failed"
    assert "model failed: RuntimeError: DefaultCPUAllocator" in rows["b.png"].reason

    def bug(self: Inpainter, jobs: list) -> list:
        raise TypeError("a programming error")

    monkeypatch.setattr(Inpainter, "predict_batch", bug)
    with pytest.raises(TypeError, match="a programming error"):  # not disguised as a failed file
        pconv_kit_fill.fill_folder(src, hostile / "out2", model, masks_dir=hostile / "masks", workers=1, device="cpu")


def test_a_phone_jpeg_with_a_second_picture_is_filled_with_its_exif(hostile: Path) -> None:
    # MPO: many phones store a depth map or preview after the photo; the photo is what is filled and kept
    from PIL import Image

    src, out = hostile / "in", hostile / "out"
    (src / "a.jpg").unlink()
    photo = Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    photo.save(src / "p.jpg", format="MPO", save_all=True, append_images=[Image.new("RGB", (16, 12))],
               exif=exif.tobytes())
    assert image_header(src / "p.jpg").frames == 1
    valid = np.ones((24, 32), np.float32)
    valid[8:16, 8:20] = 0
    write_mask(hostile / "masks" / "p.png", valid)
    result = fill(src, out, "--masks", hostile / "masks", "--model", hostile / "model.safetensors")
    assert result.exit_code == 0, result.output
    with Image.open(out / "p.jpg") as im:
        assert im.size == (32, 24) and im.getexif().get(0x010F) == "PhoneMaker"


def test_a_safetensors_file_whose_header_length_looks_like_a_pickle_still_loads(tmp_path: Path) -> None:
    # the first bytes of a safetensors file are its header length: 640 is b"\x80\x02...", a pickle's opening
    from pconv_kit.models.serialization import read_model_config

    path = tmp_path / "m.safetensors"
    for pad in range(0, 1500):
        save_file({"x": torch.zeros(1)}, str(path),
                  metadata={CONFIG_KEY: json.dumps({"layer_size": 3, "base_channels": 4}), "pad": "a" * pad})
        if path.read_bytes()[:2] == b"\x80\x02":
            break
    else:
        pytest.fail("no padding gave a header length that starts like a pickle")
    assert read_model_config(path)[0] == {"layer_size": 3, "base_channels": 4}  # read, not refused as a pickle
