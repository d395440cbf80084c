"""Tests of VGG16Features: layout, torchvision key compatibility, weights resolution and error messages.

No real weights are used: the files are synthetic state dicts with torchvision's key names and shapes.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

import pconv_kit.losses.vgg as vgg_mod
from pconv_kit.errors import InputValueError, ShapeError, WeightsNotFoundError
from pconv_kit.losses import InpaintingLoss, VGG16Features, load_vgg16_state_dict, resolve_vgg16_weights

# torchvision's vgg16().features up to the third max-pool: (index, out, in) of each 3x3 conv, pools at 4, 9, 16.
TORCHVISION_CONVS = [(0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256), (14, 256, 256)]
TORCHVISION_POOLS = [4, 9, 16]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def synthetic_state_dict(seed: int = 0, extra: bool = True) -> dict[str, torch.Tensor]:
    """Random tensors under torchvision's keys (plus deeper layers and classifier keys like the real file)."""
    g = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for i, cout, cin in TORCHVISION_CONVS:
        sd[f"features.{i}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
        sd[f"features.{i}.bias"] = torch.randn(cout, generator=g) * 0.01
    if extra:
        sd["features.17.weight"] = torch.randn(512, 256, 3, 3, generator=g)
        sd["features.17.bias"] = torch.randn(512, generator=g)
        sd["classifier.6.weight"] = torch.randn(10, 16, generator=g)
    return sd


def reference_forward(x: torch.Tensor, sd: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """pool1..pool3 written out with torch.nn.functional and the file's tensors."""
    h = (x - MEAN) / STD
    out = []
    for i, _, _ in TORCHVISION_CONVS:
        h = F.relu(F.conv2d(h, sd[f"features.{i}.weight"], sd[f"features.{i}.bias"], padding=1))
        if i + 2 in TORCHVISION_POOLS:
            h = F.max_pool2d(h, 2)
            out.append(h)
    return out


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Empty cache folder, no env override, and never any network access."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("PCONV_KIT_CACHE", str(cache))
    monkeypatch.setenv("PCONV_KIT_OFFLINE", "1")
    monkeypatch.delenv("PCONV_KIT_VGG16_WEIGHTS", raising=False)
    return cache


@pytest.fixture
def pth_file(tmp_path: Path) -> Path:
    path = tmp_path / "vgg16-synthetic.pth"
    torch.save(synthetic_state_dict(), path)
    return path


def test_layout_matches_torchvision_and_stops_at_pool3():
    vgg = VGG16Features(pretrained=False)
    expected = {}
    for i, cout, cin in TORCHVISION_CONVS:
        expected[f"features.{i}.weight"] = (cout, cin, 3, 3)
        expected[f"features.{i}.bias"] = (cout,)
    assert {k: tuple(v.shape) for k, v in vgg.state_dict().items()} == expected
    assert len(vgg.features) == 17  # nothing built past the third pool
    for i in TORCHVISION_POOLS:
        assert isinstance(vgg.features[i], nn.MaxPool2d)
    assert sum(p.numel() for p in vgg.parameters()) == 1_735_488


@pytest.mark.parametrize(("h", "w"), [(32, 48), (35, 41), (8, 8)])
def test_output_shapes(h, w):
    feats = VGG16Features(pretrained=False)(torch.rand(2, 3, h, w))
    assert [tuple(f.shape) for f in feats] == [(2, 64, h // 2, w // 2), (2, 128, h // 4, w // 4), (2, 256, h // 8, w // 8)]


def test_frozen_eval_and_gradient_reaches_input():
    vgg = VGG16Features(pretrained=False)
    assert not vgg.training and all(not p.requires_grad for p in vgg.parameters())
    parent = nn.Sequential(vgg)
    parent.train()
    assert parent.training and not vgg.training
    vgg.train(True)
    assert not vgg.training
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    sum(f.sum() for f in vgg(x)).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_loads_torch_save_file_by_torchvision_keys(pth_file: Path, zip_format: bool):
    if not zip_format:  # torchvision's 2017 files predate the zip format
        torch.save(synthetic_state_dict(), pth_file, _use_new_zipfile_serialization=False)
    vgg = VGG16Features(weights=pth_file)
    assert vgg.weights_path == pth_file
    sd = synthetic_state_dict()
    for k, v in vgg.state_dict().items():
        torch.testing.assert_close(v, sd[k], rtol=0, atol=0)
    x = torch.rand(2, 3, 24, 16, generator=torch.Generator().manual_seed(1))
    for got, ref in zip(vgg(x), reference_forward(x, sd)):
        torch.testing.assert_close(got, ref)


def test_loads_safetensors(tmp_path: Path):
    sd = synthetic_state_dict(seed=2)
    path = tmp_path / "vgg16.safetensors"
    save_file(sd, str(path))
    vgg = VGG16Features(weights=str(path))
    for k, v in vgg.state_dict().items():
        torch.testing.assert_close(v, sd[k], rtol=0, atol=0)


def test_loads_bare_features_keys_and_converts_dtype(tmp_path: Path):
    sd = {k.removeprefix("features."): v.half() for k, v in synthetic_state_dict(seed=3, extra=False).items()}
    path = tmp_path / "features_only.pth"
    torch.save(sd, path)
    loaded = load_vgg16_state_dict(path)
    assert loaded["features.14.bias"].dtype == torch.float32
    torch.testing.assert_close(loaded["features.0.weight"], sd["0.weight"].float())


def test_missing_and_mismatched_keys(tmp_path: Path):
    sd = synthetic_state_dict()
    del sd["features.12.weight"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(InputValueError, match=r"missing 1 of 14 needed keys \(features\.12\.weight\)"):
        VGG16Features(weights=tmp_path / "missing.pth")
    sd = synthetic_state_dict()
    sd["features.5.weight"] = torch.zeros(128, 32, 3, 3)
    save_file(sd, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(ShapeError, match=r"features\.5\.weight: expected \(128, 64, 3, 3\), got \(128, 32, 3, 3\)"):
        VGG16Features(weights=tmp_path / "wrong.safetensors")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(InputValueError, match="found keys: conv1.weight"):
        load_vgg16_state_dict(tmp_path / "other.pth")


def test_unreadable_or_pickled_files_are_rejected(tmp_path: Path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(InputValueError, match="does not hold a state dict"):
        load_vgg16_state_dict(tmp_path / "tensor.pth")
    torch.save({"model": nn.Linear(2, 2)}, tmp_path / "pickled.pth")  # needs arbitrary unpickling
    with pytest.raises(InputValueError, match="weights_only=True"):
        load_vgg16_state_dict(tmp_path / "pickled.pth")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputValueError, match="safetensors"):
        load_vgg16_state_dict(tmp_path / "junk.safetensors")


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path, pth_file: Path):
    env_file = tmp_path / "env.pth"
    torch.save(synthetic_state_dict(seed=5), env_file)
    cached = _isolated / "vgg16-397923af.pth"
    cached.parent.mkdir(parents=True)
    torch.save(synthetic_state_dict(seed=6), cached)
    monkeypatch.setattr(vgg_mod, "VGG16_SHA256", hashlib.sha256(cached.read_bytes()).hexdigest())
    monkeypatch.setenv("PCONV_KIT_VGG16_WEIGHTS", str(env_file))
    assert resolve_vgg16_weights(pth_file) == pth_file  # 1. explicit argument
    assert resolve_vgg16_weights() == env_file  # 2. environment variable
    vgg = VGG16Features()
    torch.testing.assert_close(vgg.features[0].weight, synthetic_state_dict(seed=5)["features.0.weight"])
    monkeypatch.delenv("PCONV_KIT_VGG16_WEIGHTS")
    assert resolve_vgg16_weights() == cached  # 3. the cache (hash checked, offline is fine)
    torch.testing.assert_close(VGG16Features().features[0].weight, synthetic_state_dict(seed=6)["features.0.weight"])


def test_download_into_cache_then_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path):
    """Step 4 with a file:// URL standing in for download.pytorch.org."""
    src = tmp_path / "served" / "vgg16.pth"
    src.parent.mkdir()
    torch.save(synthetic_state_dict(seed=7), src)
    monkeypatch.setattr(vgg_mod, "VGG16_URL", src.as_uri())
    monkeypatch.setattr(vgg_mod, "VGG16_SHA256", hashlib.sha256(src.read_bytes()).hexdigest())
    vgg = VGG16Features()
    assert vgg.weights_path == _isolated / "vgg16-397923af.pth"
    assert vgg.weights_path.read_bytes() == src.read_bytes()
    src.unlink()  # the cached copy is used from now on
    assert VGG16Features().weights_path == _isolated / "vgg16-397923af.pth"


def test_download_with_wrong_hash_keeps_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _isolated: Path):
    from pconv_kit.errors import ChecksumError

    src = tmp_path / "vgg16.pth"
    torch.save(synthetic_state_dict(), src)
    monkeypatch.setattr(vgg_mod, "VGG16_URL", src.as_uri())  # the real digest will not match
    with pytest.raises(ChecksumError, match=f"expected {vgg_mod.VGG16_SHA256}"):
        VGG16Features()
    assert not any(_isolated.iterdir())


def test_offline_error_says_how_to_provide_the_file(_isolated: Path):
    with pytest.raises(WeightsNotFoundError) as info:
        VGG16Features()
    msg = str(info.value)
    assert "VGG16Features(weights=" in msg
    assert "PCONV_KIT_VGG16_WEIGHTS" in msg
    assert str(_isolated / "vgg16-397923af.pth") in msg
    assert "PCONV_KIT_CACHE" in msg
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in msg
    assert "offline" in msg
    assert vgg_mod.VGG16_SHA256 in msg  # the full digest, to check a file fetched by hand
    assert "InpaintingLoss() without a feature extractor" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_the_vgg16_digest_is_a_full_sha256_of_the_named_file():
    # torchvision names the file after the first 8 hex digits of its SHA-256
    assert re.fullmatch(r"[0-9a-f]{64}", vgg_mod.VGG16_SHA256)
    assert vgg_mod.VGG16_FILENAME == f"vgg16-{vgg_mod.VGG16_SHA256[:8]}.pth"
    assert vgg_mod.VGG16_URL.endswith(vgg_mod.VGG16_FILENAME)


def test_network_failure_gives_the_same_guidance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PCONV_KIT_OFFLINE")
    monkeypatch.setattr(vgg_mod, "VGG16_URL", (tmp_path / "nowhere" / "vgg16.pth").as_uri())
    with pytest.raises(WeightsNotFoundError, match="PCONV_KIT_VGG16_WEIGHTS") as info:
        VGG16Features()
    assert "download failed" in str(info.value)


def test_bad_explicit_or_env_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(WeightsNotFoundError, match="the weights argument"):
        VGG16Features(weights=tmp_path / "absent.pth")
    monkeypatch.setenv("PCONV_KIT_VGG16_WEIGHTS", str(tmp_path / "absent.safetensors"))
    with pytest.raises(WeightsNotFoundError, match="environment variable PCONV_KIT_VGG16_WEIGHTS"):
        VGG16Features()
    with pytest.raises(InputValueError, match="pretrained=False"):
        VGG16Features(weights=tmp_path / "x.pth", pretrained=False)


def test_resolve_without_download(_isolated: Path):
    with pytest.raises(WeightsNotFoundError, match="downloading is disabled"):
        resolve_vgg16_weights(download=False)


def test_input_checks_and_grayscale():
    vgg = VGG16Features(pretrained=False)
    with pytest.raises(ShapeError, match=r"3 \(RGB\) or 1 channel"):
        vgg(torch.rand(1, 2, 16, 16))
    with pytest.raises(ShapeError, match="at least 8x8"):
        vgg(torch.rand(1, 3, 4, 16))
    with pytest.raises(ShapeError, match="4 dimensions"):
        vgg(torch.rand(3, 16, 16))
    gray = torch.rand(2, 1, 16, 16)
    for a, b in zip(vgg(gray), vgg(gray.expand(-1, 3, -1, -1))):
        torch.testing.assert_close(a, b)


def test_with_inpainting_loss_on_synthetic_weights(pth_file: Path):
    loss = InpaintingLoss(VGG16Features(weights=pth_file))
    gt = torch.rand(2, 3, 32, 32)
    mask = torch.ones(2, 1, 32, 32)
    mask[:, :, 8:20, 10:24] = 0
    out = gt.clone().requires_grad_(True)
    terms = loss(out, gt, mask)
    assert float(terms["perceptual"].detach()) == 0 and float(terms["style_out"].detach()) == 0
    noisy = (gt + 0.2 * torch.randn_like(gt)).requires_grad_(True)
    terms = loss(noisy, gt, mask)
    assert float(terms["perceptual"].detach()) > 0 and float(terms["style_comp"].detach()) > 0
    terms["total"].backward()
    assert noisy.grad is not None and torch.isfinite(noisy.grad).all()
