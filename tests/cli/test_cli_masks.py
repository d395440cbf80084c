"""`pconv-kit masks` through click.testing.CliRunner: files, conventions, pairing with images, errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from pconv_kit.io import read_image, read_mask, write_image
from pconv_kit_cli.main import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, ["masks", *args])


def one_line_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_writes_numbered_binary_png_masks(tmp_path: Path) -> None:
    out = tmp_path / "masks"
    result = run("--num", "3", "--min-units", "2", "--max-units", "4", "--size", "40", "64", "--out", str(out),
                 "--seed", "0")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["mask_00000.png", "mask_00001.png", "mask_00002.png"]
    for path in out.iterdir():
        with Image.open(path) as im:
            assert im.mode == "L" and im.size == (64, 40)
            assert set(np.unique(np.asarray(im)).tolist()) <= {0, 255}
        ratio = 1 - read_mask(path).mean()
        assert 0 < ratio < 1
    assert "Wrote 3 mask(s)" in result.stdout and "white = hole" in result.stdout


def test_conventions_are_honoured(tmp_path: Path) -> None:
    args = ["--num", "2", "--size", "32", "32", "--seed", "5"]
    assert run(*args, "--out", str(tmp_path / "hw")).exit_code == 0
    assert run(*args, "--out", str(tmp_path / "vw"), "--mask-convention", "valid-white").exit_code == 0
    for name in ("mask_00000.png", "mask_00001.png"):
        hw = read_image(tmp_path / "hw" / name)
        vw = read_image(tmp_path / "vw" / name)
        np.testing.assert_array_equal(vw, 255 - hw)  # same masks, inverted pixels
        np.testing.assert_array_equal(
            read_mask(tmp_path / "hw" / name, "hole-white"), read_mask(tmp_path / "vw" / name, "valid-white")
        )
        # hole-white: the holes (valid == 0) are the white pixels
        valid = read_mask(tmp_path / "hw" / name)
        assert (hw[..., 0][valid == 0] == 255).all() and (hw[..., 0][valid == 1] == 0).all()


def test_hole_ratio_and_seed(tmp_path: Path) -> None:
    args = ["--num", "4", "--size", "48", "48", "--hole-ratio", "0.2", "0.3", "--max-units", "40", "--seed", "1"]
    assert run(*args, "--out", str(tmp_path / "a")).exit_code == 0
    assert run(*args, "--out", str(tmp_path / "b")).exit_code == 0
    for path in sorted((tmp_path / "a").iterdir()):
        assert 0.2 <= 1 - read_mask(path).mean() <= 0.3
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()
    assert run(*args[:-1], "2", "--out", str(tmp_path / "c")).exit_code == 0
    assert (tmp_path / "c" / "mask_00000.png").read_bytes() != (tmp_path / "a" / "mask_00000.png").read_bytes()


def make_images(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = {
        "a.png": rng.integers(0, 200, (64, 96, 3), dtype=np.uint8),
        "b.png": rng.integers(0, 60000, (96, 32, 4), dtype=np.uint16),
        "c.png": rng.integers(0, 200, (32, 32, 1), dtype=np.uint8),
    }
    for name, img in images.items():
        write_image(folder / name, img)
    return images


def test_one_mask_per_image_at_its_size_named_after_it(tmp_path: Path) -> None:
    images = make_images(tmp_path / "photos")
    result = run("--seed", "3", "--out", str(tmp_path / "m"), "--kind", "wide", "--hole-ratio", "0.1", "0.4",
                 "--images", str(tmp_path / "photos"), "--masked-out", str(tmp_path / "masked"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["a.png", "b.png", "c.png"]
    assert sorted(p.name for p in (tmp_path / "masked").iterdir()) == ["a.png", "b.png", "c.png"]
    for name, img in images.items():
        valid = read_mask(tmp_path / "m" / name)
        assert valid.shape == img.shape[:2] and 0.1 <= 1 - valid.mean() <= 0.4
        masked = read_image(tmp_path / "masked" / name)
        assert masked.shape == img.shape and masked.dtype == img.dtype
        colour = 3 if img.shape[2] == 4 else img.shape[2]
        assert (masked[valid == 0][:, :colour] == np.iinfo(img.dtype).max).all(), "holes are painted white"
        np.testing.assert_array_equal(masked[valid == 1], img[valid == 1])  # the rest is unchanged
        if img.shape[2] == 4:
            np.testing.assert_array_equal(masked[..., 3], img[..., 3])  # alpha kept
    assert "Wrote 3 mask(s) to" in result.stdout and "one per image" in result.stdout
    assert "Wrote 3 masked image(s)" in result.stdout
    # reproducible with the seed
    again = run("--seed", "3", "--out", str(tmp_path / "m2"), "--kind", "wide", "--hole-ratio", "0.1", "0.4",
                "--images", str(tmp_path / "photos"))
    assert again.exit_code == 0
    assert all((tmp_path / "m" / n).read_bytes() == (tmp_path / "m2" / n).read_bytes() for n in images)


def test_masks_then_fill_then_eval_on_photos_of_any_size(tmp_path: Path) -> None:
    """The natural path: masks --images, then fill --masks and eval, with photos of several sizes and aspect
    ratios (a JPEG among them): every photo is filled and scored, none is refused."""
    import torch

    from pconv_kit.models import PConvUNet, save_model

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for name, (h, w) in {"wide.png": (48, 160), "tall.jpg": (150, 60), "square.png": (100, 100)}.items():
        write_image(photos / name, rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    torch.manual_seed(0)
    save_model(PConvUNet(layer_size=3, base_channels=4), tmp_path / "model.safetensors")
    assert run("--images", str(photos), "--out", str(tmp_path / "masks"), "--kind", "blobs", "--seed", "0",
               "--hole-ratio", "0.05", "0.3").exit_code == 0
    filled = CliRunner().invoke(cli, ["fill", str(photos), str(tmp_path / "out"), "--masks", str(tmp_path / "masks"),
                                      "--model", str(tmp_path / "model.safetensors"), "--device", "cpu"])
    assert filled.exit_code == 0, filled.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["square.png", "tall.jpg", "wide.png"]
    assert "warning" not in filled.output  # masks are at each photo's size: nothing resized
    scored = CliRunner().invoke(cli, ["eval", str(photos), str(tmp_path / "masks"), "--model",
                                      str(tmp_path / "model.safetensors"), "--device", "cpu", "--baselines", "none"])
    assert scored.exit_code == 0 and "3 pair(s) scored, 0 failed" in scored.output


def test_an_unreadable_image_gives_exit_code_1_and_the_others_are_written(tmp_path: Path) -> None:
    make_images(tmp_path / "photos")
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"not a jpeg")
    result = run("--out", str(tmp_path / "m"), "--images", str(tmp_path / "photos"), "--masked-out",
                 str(tmp_path / "masked"))
    assert result.exit_code == 1, result.output
    assert "broken.jpg" in result.stderr and "Traceback" not in result.output
    assert len(list((tmp_path / "masked").iterdir())) == 3 and len(list((tmp_path / "m").iterdir())) == 3


def test_images_sharing_a_stem_are_refused_before_writing(tmp_path: Path) -> None:
    make_images(tmp_path / "photos")
    write_image(tmp_path / "photos" / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    error = one_line_error(run("--out", str(tmp_path / "m"), "--images", str(tmp_path / "photos")))
    assert "a.jpg and a.png would both get the mask a.png" in error
    assert not (tmp_path / "m").exists()


def test_existing_files_are_kept_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert run("--num", "2", "--size", "16", "16", "--out", str(out), "--seed", "0").exit_code == 0
    before = (out / "mask_00000.png").read_bytes()
    error = one_line_error(run("--num", "2", "--size", "16", "16", "--out", str(out), "--seed", "1"))
    assert "already exist" in error and "--overwrite" in error
    assert (out / "mask_00000.png").read_bytes() == before
    result = run("--num", "2", "--size", "16", "16", "--out", str(out), "--seed", "1", "--overwrite")
    assert result.exit_code == 0
    assert (out / "mask_00000.png").read_bytes() != before


@pytest.mark.parametrize(
    "args,message",
    [
        (["--num", "-1"], "num must be >= 0; got -1 (--num / -n)"),
        (["--num", "2", "--min-units", "-3"], "min_units must be >= 0; got -3 (--min-units)"),
        (["--num", "2", "--min-units", "8", "--max-units", "3"], "min_units (8) must be <= max_units (3) (--min-units)"),
        (["--num", "2", "--size", "0", "16"], "size (H, W) must be at least 16 16"),
        (["--num", "2", "--hole-ratio", "0.5", "0.2"], "hole_ratio (LO, HI) must satisfy 0 <= LO <= HI <= 1; got 0.5 0.2 (--hole-ratio)"),
        (["--num", "2", "--unit-scale", "0"], "unit_scale must be a positive finite number"),
        (["--num", "2", "--images", "."], "images gives one mask per image, named after it; leave num unset (--num / -n)"),
        (["--size", "32", "32", "--images", "."], "images makes each mask the size of its image; leave size unset (--size)"),
        (["--num", "2", "--masked-out", "x"], "masked_out needs images (the images to paint the masks on) (--masked-out)"),
        ([], "give num (how many masks to write), or images (a folder: one mask per image) (--num / -n)"),
    ],
)
def test_bad_arguments_give_a_one_line_error_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    error = one_line_error(run(*args, "--out", str(tmp_path / "m")))
    assert message in error
    assert not (tmp_path / "m").exists(), "nothing is written"


def test_infeasible_hole_ratio_fails_before_writing(tmp_path: Path) -> None:
    error = one_line_error(
        run("--num", "3", "--size", "32", "32", "--min-units", "1", "--max-units", "2", "--hole-ratio", "0.9", "1.0",
            "--out", str(tmp_path / "m"))
    )
    assert "raise max_units" in error
    assert not (tmp_path / "m").exists()


def test_output_path_problems(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert "exists and is not a folder" in one_line_error(run("--num", "1", "--out", str(tmp_path / "file")))
    assert "cannot create the out folder" in one_line_error(run("--num", "1", "--out", str(tmp_path / "file" / "sub")))
    missing_images = one_line_error(
        run("--out", str(tmp_path / "m"), "--images", str(tmp_path / "nope"), "--masked-out", str(tmp_path / "mo"))
    )
    assert "does not exist" in missing_images
    (tmp_path / "empty").mkdir()
    assert "no images found" in one_line_error(
        run("--out", str(tmp_path / "m"), "--images", str(tmp_path / "empty"), "--masked-out", str(tmp_path / "mo"))
    )
    make_images(tmp_path / "photos")
    for args in (["--masked-out", str(tmp_path / "photos")], ["--out", str(tmp_path / "photos")],
                 ["--masked-out", str(tmp_path / "m")]):
        assert "different folder" in one_line_error(
            run("--out", str(tmp_path / "m"), "--images", str(tmp_path / "photos"), *args)
        )


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions and a non-root user")
def test_unwritable_output_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "not writable" in one_line_error(run("--num", "1", "--out", str(locked)))
        assert "cannot create" in one_line_error(run("--num", "1", "--out", str(locked / "sub")))
    finally:
        locked.chmod(0o700)


def test_help_states_the_convention_and_has_examples() -> None:
    result = CliRunner().invoke(cli, ["masks", "--help"])
    assert result.exit_code == 0
    assert "WHITE = HOLE" in result.output and "--mask-convention" in result.output
    assert "pconv-kit masks --num" in result.output


def test_kind_and_weights_draw_the_libraries_masks(tmp_path: Path) -> None:
    from pconv_kit.masks import MaskGenerator, parse_weights

    out = tmp_path / "blobs"
    result = run("--num", "3", "--kind", "blobs", "--size", "64", "80", "--hole-ratio", "0.2", "0.3", "--seed", "4",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    expected = MaskGenerator(64, 80, kind="blobs", hole_ratio=(0.2, 0.3), seed=4).sample(3)
    for i in range(3):
        np.testing.assert_array_equal(read_mask(out / f"mask_{i:05d}.png"), expected[i])
    mixed = tmp_path / "mixed"
    result = run("--num", "4", "--kind", "mixed", "--weights", "wide=1,thin=1", "--size", "48", "48", "--seed", "1",
                 "--out", str(mixed))
    assert result.exit_code == 0, result.output
    gen = MaskGenerator(48, 48, kind="mixed", weights=parse_weights("wide=1,thin=1"), seed=1)
    for i in range(4):
        np.testing.assert_array_equal(read_mask(mixed / f"mask_{i:05d}.png"), gen())
    # the help says which families there are, and how mask files encode holes
    help_text = run("--help").output
    for word in ("blobs", "wide", "mixed", "--weights", "WHITE = HOLE"):
        assert word in help_text


@pytest.mark.parametrize(
    "args,message",
    [
        (["--kind", "stars"], "Invalid value for '--kind'"),
        (["--kind", "mixed", "--weights", "blob=1"], "unknown mask families in weights: ['blob']"),
        (["--weights", "wide=1"], "weights apply to kind 'mixed' only; got kind 'units' (--weights)"),
        (["--kind", "mixed", "--max-units", "3"], "kind 'mixed' uses each family's own unit counts; leave min_units and max_units unset (--kind)"),
    ],
)
def test_bad_family_options_exit_2_before_writing(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "masks"
    result = run("--num", "2", "--size", "32", "32", "--out", str(out), *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()


def test_the_original_tools_command_runs_as_typed_in_an_empty_folder(tmp_path: Path) -> None:
    """`pconv-kit masks --num 6 --min-units 5 --max-units 12`, exactly: masks/ in the current folder."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "pconv_kit_cli", "masks", "--num", "6", "--min-units", "5", "--max-units", "12"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [f"mask_{i:05d}.png" for i in range(6)]
    assert "Wrote 6 mask(s) to masks (hole-white: white = hole)." in result.stdout
    assert read_mask(tmp_path / "masks" / "mask_00000.png").shape == (512, 512)
