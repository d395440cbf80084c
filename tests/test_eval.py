"""Tests of pconv_kit.evaluate and ``pconv-kit eval``: binning, metrics against independent numpy code, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pconv_kit.errors import InputValueError
from pconv_kit.evaluate import (
    HOLE_BINS,
    PSNR_CAP,
    bin_label,
    evaluate_folder,
    opencv_inpaint,
    pair_files,
    psnr_ssim,
    score,
)
from pconv_kit.inpaint import inpaint
from pconv_kit.io import read_image, write_image, write_mask
from pconv_kit.models import PConvUNet, save_model
from pconv_kit_cli.main import cli

H, W = 32, 48
RATIOS = {"a": 0.05, "b": 0.15, "c": 0.16, "d": 0.35, "e": 0.55, "f": 0.75}  # f falls outside every bin


def numpy_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(1.0 / mse)


def numpy_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM with an 11-tap Gaussian window (sigma 1.5) and reflect-101 borders, per channel, averaged."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    blur = lambda x: cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT_101)  # noqa: E731
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for ch in range(a.shape[2]):
        x, y = a[..., ch], b[..., ch]
        mx, my = blur(x), blur(y)
        sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        ssim = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2) + 1e-12)
        values.append(ssim.mean())
    return float(np.mean(values))


def valid_with_ratio(ratio: float, seed: int) -> np.ndarray:
    """(H, W) bool with exactly round(ratio * H * W) holes in a compact blob."""
    rng = np.random.default_rng(seed)
    n = round(ratio * H * W)
    cy, cx = rng.integers(8, H - 8), rng.integers(10, W - 10)
    yy, xx = np.mgrid[0:H, 0:W]
    order = np.argsort(((yy - cy) ** 2 + (xx - cx) ** 2).ravel(), kind="stable")
    valid = np.ones(H * W, bool)
    valid[order[:n]] = False
    return valid.reshape(H, W)


def photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    planes = [np.sin(yy / (3 + c + seed) + xx / (5 + c)) * 90 + 128 for c in range(3)]
    return np.clip(np.stack(planes, axis=2) + rng.normal(0, 6, (H, W, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def pairs(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for i, (name, ratio) in enumerate(RATIOS.items()):
        write_image(tmp_path / "images" / f"{name}.png", photo(i))
        write_mask(tmp_path / "masks" / f"{name}.png", valid_with_ratio(ratio, i).astype(np.float32))
    torch.manual_seed(0)
    save_model(PConvUNet(layer_size=3, base_channels=8), tmp_path / "model.safetensors")
    return tmp_path


def test_bins() -> None:
    assert [bin_label(r) for r in (0.0, 0.0099, 0.01, 0.0999, 0.1, 0.35, 0.5, 0.6, 0.6001)] == [
        None, None, "0.01-0.1", "0.01-0.1", "0.1-0.2", "0.3-0.4", "0.5-0.6", "0.5-0.6", None,
    ]
    assert len(HOLE_BINS) == 6


def test_score_against_numpy() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((20, 24, 3)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    s = score(b, a)
    assert s["l1"] == pytest.approx(np.abs(a - b).mean() * 100, rel=1e-5)
    assert s["psnr"] == pytest.approx(numpy_psnr(b, a), rel=1e-5)
    assert s["ssim"] == pytest.approx(numpy_ssim(b, a), abs=1e-4)
    same = score(a, a)
    assert same == {"l1": 0.0, "psnr": PSNR_CAP, "ssim": pytest.approx(1.0, abs=1e-6)}


def test_psnr_ssim_per_image_is_what_score_and_the_trainer_report() -> None:
    """One PSNR/SSIM: ``score`` (eval) and the trainer's validation both go through ``psnr_ssim``."""
    from pconv_kit.train import evaluate as validate

    rng = np.random.default_rng(1)
    truth = rng.random((3, 24, 20, 3)).astype(np.float32)
    result = np.clip(truth + rng.normal(0, 0.05, truth.shape), 0, 1).astype(np.float32)
    result[1] = truth[1]  # identical: infinite PSNR, reported as the cap
    psnr, ssim = psnr_ssim(torch.from_numpy(result).permute(0, 3, 1, 2), torch.from_numpy(truth).permute(0, 3, 1, 2))
    assert psnr.shape == ssim.shape == (3,)
    for i in range(3):
        s = score(result[i], truth[i])
        assert float(psnr[i]) == pytest.approx(s["psnr"], rel=1e-6) and float(ssim[i]) == pytest.approx(s["ssim"], abs=1e-6)
    assert float(psnr[1]) == PSNR_CAP and float(psnr[0]) == pytest.approx(numpy_psnr(result[0], truth[0]), rel=1e-5)

    class Echo(torch.nn.Module):  # "inpaints" with the result, so the composite is the result
        def forward(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return torch.from_numpy(result).permute(0, 3, 1, 2)[: len(x)], m

    metrics, _ = validate(Echo(), torch.from_numpy(truth).permute(0, 3, 1, 2), torch.zeros(3, 1, 24, 20), batch_size=3)
    assert metrics["psnr"] == pytest.approx(float(psnr.double().mean()), rel=1e-6)
    assert metrics["ssim"] == pytest.approx(float(ssim.mean()), abs=1e-6)


def test_opencv_baseline_composite() -> None:
    image = photo(0)
    valid = valid_with_ratio(0.1, 0)
    out = opencv_inpaint(image, valid, "telea", radius=3)
    direct = cv2.inpaint(image, (~valid).astype(np.uint8) * 255, 3, cv2.INPAINT_TELEA)
    assert np.array_equal(out[valid], image[valid] / np.float32(255))
    np.testing.assert_allclose(out[~valid], direct[~valid] / 255.0, atol=1e-6)
    sixteen = image.astype(np.uint16) * 257
    out16 = opencv_inpaint(sixteen, valid, "ns")
    assert np.array_equal(out16[valid], sixteen[valid] / np.float32(65535))
    with pytest.raises(InputValueError, match="baseline"):
        opencv_inpaint(image, valid, "lama")


def test_evaluate_table_and_metrics(pairs: Path) -> None:
    model_path = pairs / "model.safetensors"
    report = evaluate_folder(pairs / "images", pairs / "masks", model_path, device="cpu", radius=5)
    assert report.methods == ["pconv", "telea", "ns"] and report.pairing == "stem" and not report.failures
    rows = {row["bin"]: row for row in report.table()}
    assert [rows[k]["count"] for k in ("0.01-0.1", "0.1-0.2", "0.2-0.3", "0.3-0.4", "0.4-0.5", "0.5-0.6")] == [
        1, 2, 0, 1, 0, 1,
    ]
    assert rows["other"]["count"] == 1 and rows["all"]["count"] == 6
    assert rows["0.2-0.3"]["pconv"] is None
    # every score checked against an independent computation
    for pair in report.pairs:
        i = list(RATIOS).index(Path(pair.image).stem)
        image = read_image(pairs / "images" / pair.image)
        valid = valid_with_ratio(RATIOS[Path(pair.image).stem], i)
        assert pair.hole_ratio == pytest.approx(RATIOS[Path(pair.image).stem], abs=1 / (H * W))
        truth = image / 255.0
        filled = inpaint(image, valid, model_path) / 255.0
        telea = np.where(valid[..., None], image, cv2.inpaint(image, (~valid).astype(np.uint8) * 255, 5, cv2.INPAINT_TELEA)) / 255.0
        for method, result in (("pconv", filled), ("telea", telea)):
            got = pair.metrics[method]
            assert got["l1"] == pytest.approx(np.abs(result - truth).mean() * 100, rel=1e-4), (pair.image, method)
            assert got["psnr"] == pytest.approx(numpy_psnr(result, truth), rel=1e-4), (pair.image, method)
            assert got["ssim"] == pytest.approx(numpy_ssim(result, truth), abs=1e-4), (pair.image, method)
    # bin means are the means of the pair scores
    b = [p for p in report.pairs if p.bin == "0.1-0.2"]
    assert rows["0.1-0.2"]["ns"]["psnr"] == pytest.approx(np.mean([p.metrics["ns"]["psnr"] for p in b]))
    # a larger hole hurts the OpenCV baselines
    assert rows["0.01-0.1"]["telea"]["psnr"] > rows["0.5-0.6"]["telea"]["psnr"]


def test_pairing_and_failures(pairs: Path, tmp_path: Path) -> None:
    images = [Path(f"{n}.png") for n in "abc"]
    masks = [Path("m1.png"), Path("m0.png")]
    assert pair_files(images, masks)[0] == [(images[0], masks[1]), (images[1], masks[0]), (images[2], masks[1])]
    assert pair_files(images, [Path("b_mask.png")]) == ([(images[1], Path("b_mask.png"))], [images[0], images[2]], "stem")
    write_mask(pairs / "masks" / "a.png", np.ones((H, W), np.float32))  # no hole: a failure row
    write_image(pairs / "images" / "z.png", photo(9))  # no mask with this stem
    report = evaluate_folder(pairs / "images", pairs / "masks", pairs / "model.safetensors", baselines=(), device="cpu")
    reasons = {f["image"]: f["reason"] for f in report.failures}
    assert reasons == {"z.png": "no mask with this stem", "a.png": "the mask has no hole"}
    assert report.methods == ["pconv"] and len(report.pairs) == 5
    with pytest.raises(InputValueError, match="baseline"):
        evaluate_folder(pairs / "images", pairs / "masks", pairs / "model.safetensors", baselines=("x",))


def test_eval_cli(pairs: Path) -> None:
    runner = CliRunner()
    args = ["eval", str(pairs / "images"), str(pairs / "masks"), "--model", str(pairs / "model.safetensors"),
            "--device", "cpu", "--json", str(pairs / "eval.json")]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for text in ("0.01-0.1", "0.5-0.6", "pconv", "telea", "ns", "PSNR", "SSIM", "6 pair(s) scored"):
        assert text in result.output
    data = json.loads((pairs / "eval.json").read_text())
    assert data["methods"] == ["pconv", "telea", "ns"] and len(data["pairs"]) == 6
    assert data["settings"]["tta"] == 1
    assert {row["bin"] for row in data["table"]} >= {"0.01-0.1", "0.5-0.6", "all", "other"}
    only = runner.invoke(cli, args[:-2] + ["--baselines", "none", "--limit", "2"], catch_exceptions=False)
    assert only.exit_code == 0 and "telea" not in only.output and "2 pair(s) scored" in only.output
    tta = runner.invoke(cli, args + ["--baselines", "none", "--tta", "2"], catch_exceptions=False)
    assert tta.exit_code == 0 and json.loads((pairs / "eval.json").read_text())["settings"]["tta"] == 2
    bad = runner.invoke(cli, args + ["--baselines", "telea,lama"], catch_exceptions=False)
    assert bad.exit_code == 2 and "lama" in bad.output
    no_model = runner.invoke(cli, ["eval", str(pairs / "images"), str(pairs / "masks")], catch_exceptions=False)
    assert no_model.exit_code == 0 and "pconv" in no_model.output  # the built-in model
    write_mask(pairs / "masks" / "b.png", np.ones((H, W), np.float32))
    partial = runner.invoke(cli, args, catch_exceptions=False)
    assert partial.exit_code == 1 and "b.png" in partial.output


def test_masks_in_family_folders_get_a_table_per_family(pairs: Path) -> None:
    """A mask's first sub-folder names its family (read with --recursive); each family gets its own table."""
    families = {"a": "wide", "b": "wide", "c": "blobs", "d": "blobs", "e": "blobs"}
    for stem, family in families.items():
        (pairs / "masks" / family).mkdir(exist_ok=True)
        (pairs / "masks" / f"{stem}.png").rename(pairs / "masks" / family / f"{stem}.png")
    report = evaluate_folder(pairs / "images", pairs / "masks", pairs / "model.safetensors", device="cpu",
                             recursive=True, baselines=("telea",))
    assert report.families() == ["blobs", "wide"]
    by_image = {Path(p.image).stem: p for p in report.pairs}
    assert by_image["a"].family == "wide" and by_image["a"].mask == "wide/a.png" and by_image["f"].family is None
    for family in ("wide", "blobs"):
        members = [p for p in report.pairs if p.family == family]
        rows = {row["bin"]: row for row in report.table(family)}
        assert rows["all"]["count"] == len(members) == sum(1 for f in families.values() if f == family)
        assert rows["all"]["pconv"]["psnr"] == pytest.approx(np.mean([p.metrics["pconv"]["psnr"] for p in members]))
    assert {row["bin"]: row["count"] for row in report.table("blobs")}["0.1-0.2"] == 1  # c only
    assert report.table()[-1]["count"] == 6  # all pairs, families or not
    data = report.to_dict()
    assert set(data["families"]) == {"blobs", "wide"} and data["families"]["wide"] == report.table("wide")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["eval", str(pairs / "images"), str(pairs / "masks"), "-r", "--model", str(pairs / "model.safetensors"),
              "--device", "cpu", "--baselines", "none"], catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    for title in ("wide masks", "blobs masks", "all masks"):
        assert title in result.output
    # without sub-folders there are no families and one table
    flat = evaluate_folder(pairs / "images", pairs / "masks" / "blobs", pairs / "model.safetensors", device="cpu",
                           baselines=())
    assert flat.families() == [] and flat.to_dict()["families"] == {}


def test_patchmatch_baseline_is_skipped_with_one_line_when_missing(
    pairs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pconv_kit.baselines as baselines

    monkeypatch.setattr(baselines, "patchmatch_available", lambda: False)
    args = ["eval", str(pairs / "images"), str(pairs / "masks"), "--model", str(pairs / "model.safetensors"),
            "--device", "cpu", "--baselines", "telea,patchmatch", "--json", str(pairs / "eval.json")]
    result = CliRunner().invoke(cli, args, catch_exceptions=False, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert result.output.count("patchmatch skipped") == 1  # one line, not one per pair
    assert 'baseline patchmatch skipped: pypatchmatch is not installed (pip install "pconv-kit[patchmatch]")' in (
        result.output
    )
    data = json.loads((pairs / "eval.json").read_text())
    assert data["methods"] == ["pconv", "telea"] and "patchmatch" in data["settings"]["skipped_baselines"]
    # the time per image of each method, beside the scores
    assert set(data["seconds_per_image"]) == {"pconv", "telea"} and all(t > 0 for t in data["seconds_per_image"].values())
    assert "time per image: pconv " in result.output and all(set(p["seconds"]) == {"pconv", "telea"} for p in data["pairs"])
    with pytest.raises(InputValueError, match="pypatchmatch is not installed"):
        baselines.patchmatch_inpaint(photo(0), valid_with_ratio(0.2, 0))
    bad = CliRunner().invoke(cli, args + ["--patch-size", "4"], catch_exceptions=False)
    assert bad.exit_code == 2 and "patch_size must be an odd integer" in bad.output


def test_patchmatch_baseline_scores_and_keeps_known_pixels(pairs: Path) -> None:
    pytest.importorskip("patchmatch")
    from pconv_kit.evaluate import patchmatch_available, patchmatch_inpaint

    if not patchmatch_available():
        pytest.skip("pypatchmatch is installed but its library is not available here")
    image, valid = photo(0), valid_with_ratio(0.2, 0)
    composite = patchmatch_inpaint(image, valid)
    assert composite.dtype == np.float32 and composite.shape == image.shape
    np.testing.assert_array_equal(composite[valid], image[valid].astype(np.float32) / 255)
    assert not np.allclose(composite[~valid], 0)
    grey = patchmatch_inpaint(image[..., :1], valid)
    assert grey.shape == (H, W, 1)
    report = evaluate_folder(pairs / "images", pairs / "masks", pairs / "model.safetensors", device="cpu",
                             baselines=("telea", "patchmatch"))
    assert report.methods == ["pconv", "telea", "patchmatch"] and report.seconds_per_image()["patchmatch"] > 0
