"""Tests of the paper's loss terms (pconv_kit.losses.inpainting) against plain-loop NumPy references."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from pconv_kit.errors import InputValueError, ShapeError
from pconv_kit.losses import (
    DEFAULT_WEIGHTS,
    InpaintingLoss,
    VGG16Features,
    composite,
    dilated_hole_region,
    gram_matrix,
    hole_loss,
    hole_mse_loss,
    inpainting_loss,
    perceptual_loss,
    ssim_loss,
    style_loss,
    total_variation_loss,
    valid_loss,
)

# ----------------------------------------------------------------------------------------------------------
# Independent references: explicit loops over plain NumPy arrays, written from the paper's equations.
# ----------------------------------------------------------------------------------------------------------


def _expand(mask: np.ndarray, c: int) -> np.ndarray:
    return np.repeat(mask, c, axis=1) if mask.shape[1] == 1 else mask


def ref_pixel(out: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """L_valid, L_hole and L_hole_mse, pixel by pixel."""
    b, c, h, w = out.shape
    m = _expand(mask, c)
    valid, hole, hole_mse = [], [], []
    for n in range(b):
        sv = sh = sq = 0.0
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    d = abs(out[n, k, i, j] - gt[n, k, i, j])
                    sv += m[n, k, i, j] * d
                    sh += (1 - m[n, k, i, j]) * d
                    sq += ((1 - m[n, k, i, j]) * d) ** 2
        valid.append(sv / (c * h * w))
        hole.append(sh / (c * h * w))
        hole_mse.append(sq / (c * h * w))
    return float(np.mean(valid)), float(np.mean(hole)), float(np.mean(hole_mse))


def ref_region(mask: np.ndarray) -> np.ndarray:
    """Holes dilated by one pixel: max of (1 - M) over the 3x3 neighbourhood inside the image."""
    b, c, h, w = mask.shape
    out = np.zeros_like(mask)
    for n in range(b):
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    best = 0.0
                    for di in (-1, 0, 1):
                        for dj in (-1, 0, 1):
                            ii, jj = i + di, j + dj
                            if 0 <= ii < h and 0 <= jj < w:
                                best = max(best, 1 - mask[n, k, ii, jj])
                    out[n, k, i, j] = best
    return out


def ref_comp(out: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = _expand(mask, out.shape[1])
    return m * gt + (1 - m) * out


def ref_tv(img: np.ndarray, mask: np.ndarray) -> float:
    b, c, h, w = img.shape
    region = _expand(ref_region(mask), c)
    per_image = []
    for n in range(b):
        s = 0.0
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    if j + 1 < w:
                        s += region[n, k, i, j] * region[n, k, i, j + 1] * abs(img[n, k, i, j + 1] - img[n, k, i, j])
                    if i + 1 < h:
                        s += region[n, k, i, j] * region[n, k, i + 1, j] * abs(img[n, k, i + 1, j] - img[n, k, i, j])
        per_image.append(s / (c * h * w))
    return float(np.mean(per_image))


def ref_gram(f: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (C, C) Gram matrix divided by C*H*W, by explicit sums."""
    c, h, w = f.shape
    g = np.zeros((c, c))
    for a in range(c):
        for bb in range(c):
            g[a, bb] = sum(f[a, i, j] * f[bb, i, j] for i in range(h) for j in range(w)) / (c * h * w)
    return g


def ref_perceptual(fo: list[np.ndarray], fc: list[np.ndarray], fg: list[np.ndarray]) -> float:
    b = fg[0].shape[0]
    per_image = []
    for n in range(b):
        s = 0.0
        for o, cc, g in zip(fo, fc, fg):
            s += np.abs(o[n] - g[n]).sum() / g[n].size + np.abs(cc[n] - g[n]).sum() / g[n].size
        per_image.append(s)
    return float(np.mean(per_image))


def ref_style(f: list[np.ndarray], fg: list[np.ndarray]) -> float:
    b = fg[0].shape[0]
    per_image = []
    for n in range(b):
        s = 0.0
        for x, g in zip(f, fg):
            cp = g.shape[1]
            s += np.abs(ref_gram(x[n]) - ref_gram(g[n])).sum() / (cp * cp)
        per_image.append(s)
    return float(np.mean(per_image))


class TinyFeatures(nn.Module):
    """A small fixed feature extractor (two conv+pool stages) standing in for VGG16 in fast tests."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(4, in_channels, 3, 3, generator=g) * 0.5, requires_grad=False)
        self.w2 = nn.Parameter(torch.randn(5, 4, 3, 3, generator=g) * 0.5, requires_grad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        f1 = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(x, self.w1.to(x.dtype), padding=1)), 2)
        f2 = torch.nn.functional.max_pool2d(torch.relu(torch.nn.functional.conv2d(f1, self.w2.to(x.dtype), padding=1)), 2)
        return [f1, f2]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _sample(b: int = 2, c: int = 3, h: int = 8, w: int = 8, mask_c: int = 1, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    out = torch.rand(b, c, h, w, generator=g, dtype=dtype)
    gt = torch.rand(b, c, h, w, generator=g, dtype=dtype)
    mask = (torch.rand(b, mask_c, h, w, generator=g) > 0.4).to(dtype)
    return out, gt, mask


# ----------------------------------------------------------------------------------------------------------
# Each term against its reference
# ----------------------------------------------------------------------------------------------------------


@given(
    b=st.integers(1, 2),
    c=st.sampled_from([1, 3]),
    h=st.integers(2, 6),
    w=st.integers(2, 6),
    per_channel=st.booleans(),
    soft=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_pixel_terms_match_reference(b, c, h, w, per_channel, soft, seed):
    out, gt, mask = _sample(b, c, h, w, c if per_channel else 1, seed)
    if soft:  # non-binary masks in [0, 1] are allowed
        mask = torch.rand(mask.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    ref_valid, ref_hole, ref_mse = ref_pixel(_np(out), _np(gt), _np(mask))
    assert float(valid_loss(out, gt, mask)) == pytest.approx(ref_valid, rel=1e-12, abs=1e-14)
    assert float(hole_loss(out, gt, mask)) == pytest.approx(ref_hole, rel=1e-12, abs=1e-14)
    assert float(hole_mse_loss(out, gt, mask)) == pytest.approx(ref_mse, rel=1e-12, abs=1e-14)
    np.testing.assert_allclose(_np(composite(out, gt, mask)), ref_comp(_np(out), _np(gt), _np(mask)), atol=1e-14)
    np.testing.assert_allclose(_np(dilated_hole_region(mask)), ref_region(_np(mask)), atol=1e-14)
    comp = composite(out, gt, mask)
    assert float(total_variation_loss(comp, mask)) == pytest.approx(
        ref_tv(ref_comp(_np(out), _np(gt), _np(mask)), _np(mask)), rel=1e-12, abs=1e-14
    )
    terms = inpainting_loss(out, gt, mask)
    assert float(terms["valid"]) == pytest.approx(ref_valid, rel=1e-12, abs=1e-14)
    assert float(terms["hole"]) == pytest.approx(ref_hole, rel=1e-12, abs=1e-14)
    assert "hole_mse" not in terms  # off by default: the paper's loss
    terms = inpainting_loss(out, gt, mask, hole_mse=1.0)
    assert float(terms["hole_mse"]) == pytest.approx(ref_mse, rel=1e-12, abs=1e-14)


def test_gram_matrix_matches_reference():
    f = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g = gram_matrix(f)
    assert g.shape == (2, 3, 3)
    for n in range(2):
        np.testing.assert_allclose(_np(g[n]), ref_gram(_np(f[n])), rtol=1e-12)
    torch.testing.assert_close(g, g.transpose(1, 2))


def test_gram_matrix_half_precision_does_not_overflow():
    # each product 300*300 = 9e4 exceeds float16's range (65504); the normalised Gram (4.5e4) does not
    f = torch.full((1, 2, 64, 64), 300.0, dtype=torch.float16)
    g = gram_matrix(f)
    assert g.dtype == torch.float32
    torch.testing.assert_close(g, torch.full((1, 2, 2), 300.0**2 / 2))


@pytest.mark.parametrize("mask_c", [1, 3])
def test_perceptual_and_style_match_reference(mask_c):
    out, gt, mask = _sample(2, 3, 8, 12, mask_c, seed=3)
    fe = TinyFeatures().double()
    terms = inpainting_loss(out, gt, mask, fe)
    comp = ref_comp(_np(out), _np(gt), _np(mask))
    # features computed image by image (checks that batching the three images changes nothing)
    feats = [
        [_np(torch.cat([fe(x[n : n + 1])[p] for n in range(2)])) for p in range(2)]
        for x in (out, torch.from_numpy(comp), gt)
    ]
    fo, fc, fg = feats
    assert float(terms["perceptual"]) == pytest.approx(ref_perceptual(fo, fc, fg), rel=1e-10)
    assert float(terms["style_out"]) == pytest.approx(ref_style(fo, fg), rel=1e-10)
    assert float(terms["style_comp"]) == pytest.approx(ref_style(fc, fg), rel=1e-10)
    assert float(terms["tv"]) == pytest.approx(ref_tv(comp, _np(mask)), rel=1e-12)
    # the standalone functions agree with the module's batched computation
    t_fo, t_fc, t_fg = fe(out), fe(composite(out, gt, mask)), fe(gt)
    torch.testing.assert_close(perceptual_loss(t_fo, t_fc, t_fg), terms["perceptual"])
    torch.testing.assert_close(style_loss(t_fo, t_fg), terms["style_out"])
    torch.testing.assert_close(style_loss(t_fc, t_fg), terms["style_comp"])


def test_batched_gt_branch_equals_separate_branch():
    """target.requires_grad / no_grad take the single 3B call; the values must not depend on the branch."""
    out, gt, mask = _sample(2, 3, 8, 8, 1, seed=4)
    fe = TinyFeatures().double()
    usual = inpainting_loss(out, gt, mask, fe)
    with torch.no_grad():
        no_grad = inpainting_loss(out, gt, mask, fe)
    one_call = inpainting_loss(out, gt.clone().requires_grad_(True), mask, fe)
    for k in usual:
        torch.testing.assert_close(no_grad[k], usual[k])
        torch.testing.assert_close(one_call[k].detach(), usual[k])


# ----------------------------------------------------------------------------------------------------------
# Behaviour
# ----------------------------------------------------------------------------------------------------------


def test_identical_output_and_target_give_zero_losses():
    gt, _, mask = _sample(2, 3, 16, 16, 1, seed=5)
    terms = InpaintingLoss(TinyFeatures().double())(gt.clone(), gt, mask)
    for k in ("valid", "hole", "perceptual", "style_out", "style_comp"):
        assert float(terms[k]) == 0.0, k
    # TV regularises I_comp (= I_gt here): zero only for an image that is flat around the holes
    assert float(terms["tv"]) == pytest.approx(ref_tv(_np(gt), _np(mask)))
    flat = torch.full_like(gt, 0.3)
    terms = InpaintingLoss(TinyFeatures().double())(flat.clone(), flat, mask)
    assert all(float(v) == 0.0 for v in terms.values())


def test_all_terms_finite_and_differentiable():
    out, gt, mask = _sample(2, 3, 16, 16, 1, seed=6, dtype=torch.float32)
    mask[:, :, 4:10, 4:10] = 0
    loss = InpaintingLoss(VGG16Features(pretrained=False))
    out.requires_grad_(True)
    terms = loss(out, gt, mask)
    assert set(terms) == {"valid", "hole", "perceptual", "style_out", "style_comp", "tv", "total"}
    holes = (mask == 0).expand_as(out)
    for k, v in terms.items():
        assert v.dim() == 0 and torch.isfinite(v), k
        (grad,) = torch.autograd.grad(v, out, retain_graph=True)
        assert torch.isfinite(grad).all(), k
        assert grad.abs().sum() > 0, f"no gradient from {k}"
        if k in ("hole", "tv", "style_comp"):  # these see the output only through the holes
            assert grad[~holes].abs().max() == 0, k
        if k == "valid":
            assert grad[holes].abs().max() == 0


def test_gradcheck_float64():
    out, gt, mask = _sample(1, 1, 8, 8, 1, seed=7)
    out.requires_grad_(True)
    fe = TinyFeatures(in_channels=1).double()
    # keep values away from the kinks of |x| so finite differences are valid
    gt = out.detach() + 0.1 + torch.rand_like(out)
    assert torch.autograd.gradcheck(lambda o: inpainting_loss(o, gt, mask, fe)["total"], (out,), eps=1e-7, atol=1e-6)
    f = torch.rand(1, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gram_matrix, (f,))


def test_tv_only_over_dilated_holes():
    gt = torch.rand(1, 3, 12, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    out = torch.rand_like(gt)
    mask = torch.ones(1, 1, 12, 12, dtype=torch.float64)
    mask[..., 4:7, 4:7] = 0  # holes rows/cols 4..6, ring rows/cols 3 and 7
    base = float(inpainting_loss(out, gt, mask)["tv"])
    # far from the holes (two pixels or more away): I_comp changes there, the TV term does not
    for i, j in [(0, 0), (2, 5), (5, 9), (11, 11), (8, 8)]:
        gt2 = gt.clone()
        gt2[..., i, j] += 0.5
        assert float(inpainting_loss(out, gt2, mask)["tv"]) == base, (i, j)
    # the output outside the holes does not enter I_comp at all
    out2 = out.clone()
    out2[..., 0:3, :] += 1
    assert float(inpainting_loss(out2, gt, mask)["tv"]) == base
    # on the one-pixel ring around the holes: it does
    for i, j in [(3, 5), (7, 4), (5, 3), (6, 7)]:
        gt2 = gt.clone()
        gt2[..., i, j] += 0.5
        assert float(inpainting_loss(out, gt2, mask)["tv"]) != base, (i, j)
    # and inside the holes the output matters
    out2 = out.clone()
    out2[..., 5, 5] += 0.5
    assert float(inpainting_loss(out2, gt, mask)["tv"]) != base


def test_no_hole_means_zero_hole_and_tv():
    out, gt, _ = _sample(2, 3, 8, 8, seed=9)
    terms = inpainting_loss(out, gt, torch.ones(2, 1, 8, 8, dtype=out.dtype))
    assert float(terms["hole"]) == 0.0 and float(terms["tv"]) == 0.0
    assert float(terms["valid"]) > 0


def test_default_weights_are_the_papers():
    assert DEFAULT_WEIGHTS == {"valid": 1.0, "hole": 6.0, "perceptual": 0.05, "style": 120.0, "tv": 0.1, "ssim": 0.0,
                               "hole_mse": 0.0}
    assert InpaintingLoss().weights == DEFAULT_WEIGHTS


@pytest.mark.parametrize(
    "weights",
    [
        {},
        {"valid": 2.0, "hole": 0.5, "perceptual": 3.0, "style": 7.0, "tv": 11.0},
        {"style": 0.0, "hole": 0.0},
        {"ssim": 2.5, "tv": 0.0},
        {"hole_mse": 40.0, "hole": 0.0},
    ],
)
def test_total_is_weighted_sum(weights):
    out, gt, mask = _sample(2, 3, 8, 8, seed=10)
    terms = InpaintingLoss(TinyFeatures().double(), **weights)(out, gt, mask)
    w = {**DEFAULT_WEIGHTS, **weights}
    assert ("ssim" in terms) == (w["ssim"] > 0)  # the SSIM term is only computed when it is used
    assert ("hole_mse" in terms) == (w["hole_mse"] > 0)
    expected = (
        w["valid"] * terms["valid"]
        + w["hole"] * terms["hole"]
        + w["perceptual"] * terms["perceptual"]
        + w["style"] * (terms["style_out"] + terms["style_comp"])
        + w["tv"] * terms["tv"]
        + w["ssim"] * terms.get("ssim", 0.0)
        + w["hole_mse"] * terms.get("hole_mse", 0.0)
    )
    torch.testing.assert_close(terms["total"], expected)



@pytest.mark.parametrize("with_features", [True, False])
@pytest.mark.parametrize("weights", [{}, {"valid": 2.0, "hole": 0.5, "perceptual": 3.0, "style": 7.0, "tv": 11.0, "ssim": 1.5,
                                                "hole_mse": 9.0}])
def test_total_is_the_weighted_sum_of_the_public_term_functions(with_features, weights):
    # each term computed on its own by the public function of that name, then weighted by hand
    out, gt, mask = _sample(2, 3, 12, 12, seed=21)
    features = TinyFeatures().double() if with_features else None
    terms = inpainting_loss(out, gt, mask, features, **weights)
    w = {**DEFAULT_WEIGHTS, **weights}
    comp = composite(out, gt, mask)
    expected = {
        "valid": valid_loss(out, gt, mask),
        "hole": hole_loss(out, gt, mask),
        "tv": total_variation_loss(comp, mask),
    }
    total = w["valid"] * expected["valid"] + w["hole"] * expected["hole"] + w["tv"] * expected["tv"]
    if w["ssim"] > 0:
        expected["ssim"] = ssim_loss(comp, gt)
        total = total + w["ssim"] * expected["ssim"]
    if w["hole_mse"] > 0:
        expected["hole_mse"] = hole_mse_loss(out, gt, mask)
        total = total + w["hole_mse"] * expected["hole_mse"]
    if features is not None:
        f_out, f_comp, f_gt = features(out), features(comp), features(gt)
        expected["perceptual"] = perceptual_loss(f_out, f_comp, f_gt)
        expected["style_out"] = style_loss(f_out, f_gt)
        expected["style_comp"] = style_loss(f_comp, f_gt)
        total = total + w["perceptual"] * expected["perceptual"]
        total = total + w["style"] * (expected["style_out"] + expected["style_comp"])
    expected["total"] = total
    assert set(terms) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(terms[name], value, rtol=1e-12, atol=0, msg=name)


def test_the_default_weights_have_one_source():
    import inspect

    from pconv_kit.losses.weights import DEFAULT_WEIGHTS as SOURCE
    from pconv_kit.train.config import PRESETS, TrainConfig

    assert DEFAULT_WEIGHTS is SOURCE
    for fn in (inpainting_loss, InpaintingLoss.__init__):
        defaults = {k: p.default for k, p in inspect.signature(fn).parameters.items() if k in SOURCE}
        assert defaults == dict(SOURCE), fn
    cfg = TrainConfig()
    assert {k: getattr(cfg, f"loss_{k}") for k in ("valid", "hole", "perceptual", "style", "hole_mse")} == {
        k: SOURCE[k] for k in ("valid", "hole", "perceptual", "style", "hole_mse")
    }
    assert (PRESETS["paper"]["loss_tv"], PRESETS["paper"]["loss_ssim"]) == (SOURCE["tv"], SOURCE["ssim"])
    with pytest.raises(TypeError):
        SOURCE["hole"] = 1.0  # type: ignore[index]  # read-only, so no caller can change everyone's defaults


def test_the_weights_table_in_the_docs_is_the_source():
    page = (Path(__file__).resolve().parents[2] / "docs" / "losses.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| [^|]+ \| `?[\w, `]+`? \| `(\w+)=`[^|]* \| ([\d.]+)", page, re.M)
    assert {name: float(value) for name, value in rows} == dict(DEFAULT_WEIGHTS)


def test_the_weights_and_the_training_config_import_without_torch():
    code = "import sys, pconv_kit.losses.weights, pconv_kit.train.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stdout + out.stderr


def test_pixel_only_training():
    out, gt, mask = _sample(2, 3, 8, 8, seed=11)
    loss = InpaintingLoss(perceptual=5.0, style=9.0)
    terms = loss(out, gt, mask)
    assert set(terms) == {"valid", "hole", "tv", "total"}
    torch.testing.assert_close(terms["total"], terms["valid"] + 6 * terms["hole"] + 0.1 * terms["tv"])
    assert list(loss.parameters()) == []


def test_single_channel_mask_equals_expanded_mask():
    out, gt, mask = _sample(2, 3, 10, 10, 1, seed=12)
    fe = TinyFeatures().double()
    a = inpainting_loss(out, gt, mask, fe)
    b = inpainting_loss(out, gt, mask.expand(-1, 3, -1, -1).contiguous(), fe)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-12, atol=1e-14)


def test_module_equals_function_and_batch_equals_mean_of_items():
    out, gt, mask = _sample(3, 3, 8, 8, 3, seed=13)
    fe = TinyFeatures().double()
    mod = InpaintingLoss(fe, hole=2.0)(out, gt, mask)
    fun = inpainting_loss(out, gt, mask, fe, hole=2.0)
    items = [inpainting_loss(out[n : n + 1], gt[n : n + 1], mask[n : n + 1], fe, hole=2.0) for n in range(3)]
    for k in mod:
        torch.testing.assert_close(mod[k], fun[k])
        torch.testing.assert_close(mod[k], torch.stack([it[k] for it in items]).mean())


def test_loss_module_keeps_extractor_frozen_and_moves_it():
    loss = InpaintingLoss(VGG16Features(pretrained=False))
    loss.train()
    assert loss.training and not loss.feature_extractor.training
    assert not any(p.requires_grad for p in loss.parameters())
    loss.to(torch.float64)
    out, gt, mask = _sample(1, 3, 16, 16, seed=14)
    assert loss(out, gt, mask)["total"].dtype == torch.float64
    assert "hole=6" in repr(loss)


def test_half_precision_tv_does_not_overflow():
    # 2 * 3 * 256 * 256 differences of 1.0 sum to ~3.9e5, beyond float16's range; the result is a mean
    img = torch.zeros(1, 3, 256, 256, dtype=torch.float16)
    img[..., ::2, :] = 1
    img[..., :, ::2] = 1 - img[..., :, ::2]
    mask = torch.zeros(1, 1, 256, 256, dtype=torch.float16)
    tv = total_variation_loss(img, mask)
    assert torch.isfinite(tv)
    assert float(tv) == pytest.approx(2 * 255 / 256, rel=1e-3)


# ----------------------------------------------------------------------------------------------------------
# The optional SSIM term, against a NumPy SSIM written from Wang et al. 2004
# ----------------------------------------------------------------------------------------------------------


def ref_ssim(a: np.ndarray, b: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM of two (B, C, H, W) arrays: Gaussian-weighted local statistics over a reflect-padded window
    (C1 = 0.01^2, C2 = 0.03^2, data range 1), one window position per pixel, plain loops."""
    r = window // 2
    g = np.exp(-((np.arange(window) - r) ** 2) / (2 * sigma**2))
    g = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    b_, c_, h, w = a.shape
    pad = ((0, 0), (0, 0), (r, r), (r, r))
    pa, pb = np.pad(a, pad, mode="reflect"), np.pad(b, pad, mode="reflect")
    scores = []
    for n in range(b_):
        for k in range(c_):
            for i in range(h):
                for j in range(w):
                    x, y = pa[n, k, i : i + window, j : j + window], pb[n, k, i : i + window, j : j + window]
                    mx, my = (g * x).sum(), (g * y).sum()
                    vx, vy = (g * x * x).sum() - mx**2, (g * y * y).sum() - my**2
                    cov = (g * x * y).sum() - mx * my
                    scores.append(((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(scores))


@pytest.mark.parametrize("shape", [(1, 1, 12, 12), (2, 3, 9, 14)])
def test_ssim_loss_matches_the_reference(shape):
    gen = torch.Generator().manual_seed(21)
    a = torch.rand(*shape, generator=gen, dtype=torch.float64)
    b = (a + 0.2 * torch.rand(*shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    got = ssim_loss(a, b)
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(1 - ref_ssim(a.numpy(), b.numpy()), abs=1e-9)
    assert float(ssim_loss(a, a)) == pytest.approx(0.0, abs=1e-9)
    assert 0 < float(ssim_loss(a, 1 - a)) <= 2


def test_ssim_term_is_the_composite_score_and_only_moves_hole_pixels():
    out, gt, mask = _sample(2, 3, 12, 12, seed=22)
    out.requires_grad_(True)
    terms = inpainting_loss(out, gt, mask, ssim=1.0, valid=0.0, hole=0.0, tv=0.0)
    torch.testing.assert_close(terms["ssim"], ssim_loss(composite(out, gt, mask), gt))
    torch.testing.assert_close(terms["total"], terms["ssim"])
    (grad,) = torch.autograd.grad(terms["total"], out)
    assert torch.all(grad[mask.expand_as(grad) == 1] == 0) and grad.abs().sum() > 0
    # the term is 0 when the holes are filled with the truth, and the mean over the batch
    assert float(inpainting_loss(gt, gt, mask, ssim=1.0)["ssim"]) == pytest.approx(0.0, abs=1e-9)
    items = [ssim_loss(composite(out[n : n + 1], gt[n : n + 1], mask[n : n + 1]), gt[n : n + 1]) for n in range(2)]
    torch.testing.assert_close(terms["ssim"], torch.stack(items).mean())


def test_ssim_loss_gradcheck_and_half_precision():
    gen = torch.Generator().manual_seed(23)
    a = torch.rand(1, 2, 8, 8, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.rand(1, 2, 8, 8, generator=gen, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: ssim_loss(x, b, window_size=5), (a,))
    half = ssim_loss(a.detach().half(), b.half())
    assert half.dtype == torch.float32
    assert float(half) == pytest.approx(float(ssim_loss(a.detach(), b)), abs=2e-3)


def test_ssim_loss_errors():
    x = torch.rand(1, 3, 5, 16)
    with pytest.raises(ShapeError, match=r"window 11 needs H and W larger than 5; got \(1, 3, 5, 16\)"):
        ssim_loss(x, x)
    with pytest.raises(ShapeError, match=r"same shape as image \(1, 3, 5, 16\); got \(1, 3, 5, 8\)"):
        ssim_loss(x, x[..., :8], window_size=3)
    with pytest.raises(InputValueError, match="odd"):
        ssim_loss(x, x, window_size=4)
    with pytest.raises(ShapeError, match="image"):
        ssim_loss(x[0], x[0])
    with pytest.raises(InputValueError, match="'ssim' must be finite and >= 0"):
        InpaintingLoss(ssim=-0.5)


# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------


def test_input_errors():
    out, gt, mask = _sample(2, 3, 8, 8, seed=15)
    with pytest.raises(ShapeError, match=r"target must have the same shape as output \(2, 3, 8, 8\); got \(2, 3, 8, 4\)"):
        inpainting_loss(out, gt[..., :4], mask)
    with pytest.raises(ShapeError, match="mask"):
        inpainting_loss(out, gt, mask[..., :4])
    with pytest.raises(ShapeError, match="mask"):
        inpainting_loss(out, gt, torch.ones(2, 2, 8, 8, dtype=out.dtype))
    with pytest.raises(ShapeError, match="output"):
        inpainting_loss(out[0], gt[0], mask[0])
    with pytest.raises(InputValueError, match=r"\[0, 1\]"):
        inpainting_loss(out, gt, mask * 2)
    with pytest.raises(InputValueError, match="floating point"):
        inpainting_loss(out, (gt * 255).to(torch.uint8), mask)
    with pytest.raises(InputValueError, match="must be a torch.Tensor"):
        inpainting_loss(out, gt.numpy(), mask)
    with pytest.raises(InputValueError, match="'hole' must be finite and >= 0; got -1"):
        InpaintingLoss(hole=-1)
    with pytest.raises(InputValueError, match="'tv' must be a number"):
        InpaintingLoss(tv="a lot")
    with pytest.raises(InputValueError, match="nn.Module"):
        InpaintingLoss(lambda x: [x])
    with pytest.raises(InputValueError, match="list"):
        inpainting_loss(out, gt, mask, nn.Identity())
    with pytest.raises(ShapeError, match=r"features\[0\]"):
        style_loss([torch.zeros(1, 2, 3, 3)], [torch.zeros(1, 2, 4, 4)])
    with pytest.raises(InputValueError, match="feature maps"):
        perceptual_loss([torch.zeros(1, 2, 3, 3)], [], [torch.zeros(1, 2, 3, 3)])


def test_hole_mse_loss_moves_only_hole_pixels_towards_the_mean():
    # gradcheck in float64; the gradient is zero on valid pixels and 2 (out - gt) / N in the holes
    out, gt, mask = _sample(2, 3, 6, 6, seed=5)
    out.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: hole_mse_loss(x, gt, mask), (out,))
    hole_mse_loss(out, gt, mask).backward()
    hole = (1 - mask).expand_as(out)
    torch.testing.assert_close(out.grad, 2 * hole**2 * (out - gt).detach() / (2 * 3 * 6 * 6))
    assert float(out.grad[hole == 0].abs().max()) == 0.0
    # a constant fill of a hole whose truth is {0, 1} in equal parts: L1 is flat between 0 and 1, the squared
    # error is lowest at the mean, 0.5 (the PSNR-optimal fill)
    target = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64).view(1, 1, 2, 2)
    holes = torch.zeros_like(target)
    fills = torch.linspace(0, 1, 11, dtype=torch.float64)
    mse = [float(hole_mse_loss(torch.full_like(target, v), target, holes)) for v in fills]
    l1 = [float(hole_loss(torch.full_like(target, v), target, holes)) for v in fills]
    assert fills[int(np.argmin(mse))] == 0.5 and max(l1) - min(l1) < 1e-12
    with pytest.raises(InputValueError, match="'hole_mse' must be finite and >= 0"):
        InpaintingLoss(hole_mse=-1.0)
    with pytest.raises(ShapeError):
        hole_mse_loss(out.detach(), gt[..., :4], mask)
