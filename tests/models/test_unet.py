"""Tests of PConvUNet and its (de)serialisation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import save_file

from pconv_kit import PConvUNet, partial_conv2d
from pconv_kit.errors import InputValueError, ShapeError, WeightsNotFoundError
from pconv_kit.models import load_model, read_model_config, save_model


def holes(shape, seed=0, p=0.3):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) >= p).float()


def reference_forward(model: PConvUNet, image, mask):
    """The straightforward formulation (as in the reference PyTorch code): per-channel masks, expanded and
    concatenated explicitly, every layer through the public ``partial_conv2d``."""

    def block(b, h, m):
        h, m = partial_conv2d(h, m, b.conv.weight, b.conv.bias, b.conv.stride, b.conv.padding)
        if b.bn is not None:
            h = b.bn(h)
        if b.act is not None:
            h = b.act(h)
        return h, m.expand(-1, h.shape[1], -1, -1)

    h = (image - model.mean) / model.std
    m = mask.expand_as(h)
    feats, masks = [h], [m]
    for b in model.encoder:
        h, m = block(b, h, m)
        feats.append(h)
        masks.append(m)
    for j, layer in enumerate(list(model.decoder) + [model.head]):
        k = model.layer_size - j
        h = torch.cat([F.interpolate(h, scale_factor=2.0), feats[k - 1]], 1)
        m = torch.cat([F.interpolate(m, scale_factor=2.0), masks[k - 1]], 1)
        if layer is model.head:
            h, m = partial_conv2d(h, m, layer.weight, layer.bias, 1, 1)
        else:
            h, m = block(layer, h, m)
    return h * model.std + model.mean, m[:, :1]


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("layer_size", [1, 3, 5])
def test_matches_explicit_per_channel_formulation(layer_size, per_channel):
    torch.manual_seed(0)
    model = PConvUNet(layer_size=layer_size, base_channels=4).double().eval()
    side = 2**layer_size * 2
    image = torch.rand(2, 3, side, side, dtype=torch.float64)
    mask = holes((2, 3 if per_channel else 1, side, side)).double()
    out, out_mask = model(image, mask)
    ref, ref_mask = reference_forward(model, image, mask)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out_mask, ref_mask)


def test_output_shapes_and_channels():
    model = PConvUNet(in_channels=4, out_channels=4, layer_size=3, base_channels=8)
    out, out_mask = model(torch.rand(2, 4, 16, 24), torch.ones(2, 1, 16, 24))
    assert out.shape == (2, 4, 16, 24) and out_mask.shape == (2, 1, 16, 24)
    model = PConvUNet(in_channels=3, out_channels=1, layer_size=2, base_channels=4, mean=[0] * 3, std=[1] * 3)
    out, _ = model(torch.rand(1, 3, 8, 8), torch.ones(1, 3, 8, 8))
    assert out.shape == (1, 1, 8, 8)


def test_mask_becomes_all_ones_for_a_deep_net_but_not_a_shallow_one():
    mask = torch.ones(1, 1, 64, 64)
    mask[..., 8:56, 8:56] = 0  # a 48-pixel hole
    deep = PConvUNet(layer_size=6, base_channels=4).eval()
    shallow = PConvUNet(layer_size=1, base_channels=4).eval()
    assert bool(deep(torch.rand(1, 3, 64, 64), mask)[1].all())
    assert not bool(shallow(torch.rand(1, 3, 64, 64), mask)[1].all())


def expected_parameter_count(layer_size, base, cin=3, cout=3):
    ch = [cin] + [base * min(2**i, 8) for i in range(layer_size)]
    k = [7, 5, 5] + [3] * layer_size
    n = 0
    for i in range(layer_size):  # encoder: conv (bias only without BN) + BN affine
        n += ch[i] * ch[i + 1] * k[i] ** 2 + (ch[i + 1] if i == 0 else 2 * ch[i + 1])
    for d in range(layer_size, 1, -1):  # decoder: conv without bias + BN
        n += (ch[d] + ch[d - 1]) * ch[d - 1] * 9 + 2 * ch[d - 1]
    return n + (ch[1] + cin) * cout * 9 + cout  # head with bias


def test_paper_model_has_about_32_8_million_parameters():
    model = PConvUNet()
    n = sum(p.numel() for p in model.parameters())
    assert n == expected_parameter_count(8, 64)
    assert 32.7e6 < n < 33.0e6
    small = PConvUNet(layer_size=5, base_channels=16)
    assert sum(p.numel() for p in small.parameters()) == expected_parameter_count(5, 16)


def test_paper_architecture_details():
    model = PConvUNet()
    assert [b.conv.kernel_size[0] for b in model.encoder] == [7, 5, 5, 3, 3, 3, 3, 3]
    assert [b.conv.out_channels for b in model.encoder] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert all(b.conv.stride == (2, 2) for b in model.encoder)
    assert model.encoder[0].bn is None and all(b.bn is not None for b in model.encoder[1:])
    assert isinstance(model.encoder[1].act, torch.nn.ReLU)
    assert all(isinstance(b.act, torch.nn.LeakyReLU) and b.act.negative_slope == 0.2 for b in model.decoder)
    assert [b.conv.in_channels for b in model.decoder] == [1024] * 4 + [768, 384, 192]
    assert model.head.in_channels == 64 + 3 and model.head.bias is not None


def test_freeze_encoder_bn():
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4, freeze_encoder_bn=True).train()
    enc_bn = model.encoder[1].bn
    dec_bn = model.decoder[0].bn
    assert not enc_bn.training and dec_bn.training
    assert not any(p.requires_grad for p in enc_bn.parameters())
    before_enc, before_dec = enc_bn.running_mean.clone(), dec_bn.running_mean.clone()
    out, _ = model(torch.rand(2, 3, 16, 16), holes((2, 1, 16, 16)))
    out.mean().backward()
    assert torch.equal(enc_bn.running_mean, before_enc)
    assert not torch.equal(dec_bn.running_mean, before_dec)
    assert enc_bn.weight.grad is None and model.encoder[1].conv.weight.grad is not None
    model.freeze_encoder_bn = False
    model.train()
    assert enc_bn.training and all(p.requires_grad for p in enc_bn.parameters())


def test_size_error_suggests_padded_size():
    model = PConvUNet(layer_size=8)
    with pytest.raises(ShapeError, match=r"divisible by 256; got 300x400\. Pad the image and mask to 512x512"):
        model(torch.rand(1, 3, 300, 400), torch.ones(1, 1, 300, 400))


@pytest.mark.parametrize(
    ("image", "mask", "error", "match"),
    [
        ((1, 1, 16, 16), (1, 1, 16, 16), ShapeError, "image must have 3 channels"),
        ((1, 3, 16, 16), (1, 2, 16, 16), ShapeError, "mask must have shape"),
        ((2, 3, 16, 16), (1, 1, 16, 16), ShapeError, "got \\(1, 1, 16, 16\\)"),
    ],
)
def test_input_errors(image, mask, error, match):
    with pytest.raises(error, match=match):
        PConvUNet(layer_size=2, base_channels=4)(torch.rand(image), torch.ones(mask))


def test_constructor_errors():
    with pytest.raises(InputValueError, match="layer_size must be an integer >= 1"):
        PConvUNet(layer_size=0)
    with pytest.raises(InputValueError, match="mean and std need 3 values"):
        PConvUNet(mean=[0.5, 0.5])
    with pytest.raises(InputValueError, match="out_channels"):
        PConvUNet(out_channels=1)
    with pytest.raises(InputValueError, match="unknown PConvUNet config"):
        PConvUNet.from_config({"layer_size": 3, "depth": 2})


def test_predict_keeps_known_pixels_and_restores_mode():
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4).train()
    image, mask = torch.rand(2, 3, 16, 16), holes((2, 1, 16, 16))
    filled = model.predict(image, mask)
    assert model.training
    assert not filled.requires_grad
    assert torch.equal(filled * mask, image * mask)
    assert float(filled.min()) >= 0 and float(filled.max()) <= 1
    out, _ = model.eval()(image, mask)
    torch.testing.assert_close(filled, (mask * image + (1 - mask) * out).clamp(0, 1))


def test_batch_equals_per_item_in_eval_mode():
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4).eval()
    image, mask = torch.rand(3, 3, 16, 16), holes((3, 1, 16, 16))
    out, _ = model(image, mask)
    for i in range(3):
        torch.testing.assert_close(out[i : i + 1], model(image[i : i + 1], mask[i : i + 1])[0], atol=1e-5, rtol=1e-5)


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4)
    out, _ = model(torch.rand(2, 3, 16, 16), holes((2, 1, 16, 16)))
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@given(st.integers(0, 2**16), st.sampled_from([1, 2, 3]))
def test_output_finite_and_hole_values_ignored(seed, layer_size):
    g = torch.Generator().manual_seed(seed)
    model = PConvUNet(layer_size=layer_size, base_channels=4).eval()
    side = 2**layer_size * 2
    image = torch.rand(1, 3, side, side, generator=g)
    mask = (torch.rand(1, 1, side, side, generator=g) > 0.5).float()
    noisy = image + (1 - mask) * torch.rand(image.shape, generator=g)
    a, _ = model(image, mask)
    b, _ = model(noisy, mask)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a, b)


def test_channels_last_matches_contiguous():
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=8).eval()
    image, mask = torch.rand(2, 3, 32, 32), holes((2, 1, 32, 32))
    ref, _ = model(image, mask)
    model = model.to(memory_format=torch.channels_last)
    out, _ = model(image.contiguous(memory_format=torch.channels_last), mask)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_half_precision_close_to_float32():
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=8).eval()
    image, mask = torch.rand(1, 3, 32, 32), holes((1, 1, 32, 32))
    ref, _ = model(image, mask)
    out, _ = model.to(torch.bfloat16)(image.bfloat16(), mask.bfloat16())
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.15, rtol=0.1)


# ---------------------------------------------------------------------------------------------- save / load
def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4, mean=[0.5] * 3, std=[0.25] * 3).eval()
    path = tmp_path / "model.safetensors"
    save_model(model, path, metadata={"step": 7})
    config, meta = read_model_config(path)
    assert config == model.config and meta["step"] == "7"
    assert json.loads((tmp_path / "model.safetensors.json").read_text())["config"] == model.config
    loaded = load_model(path)
    assert not loaded.training
    image, mask = torch.rand(1, 3, 16, 16), holes((1, 1, 16, 16))
    torch.testing.assert_close(loaded(image, mask)[0], model(image, mask)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "model.safetensors.json"]


def test_load_from_run_dir_prefers_best(tmp_path):
    save_model(PConvUNet(layer_size=2, base_channels=4), tmp_path / "last.safetensors")
    assert load_model(tmp_path).layer_size == 2
    save_model(PConvUNet(layer_size=3, base_channels=4), tmp_path / "best.safetensors")
    assert load_model(tmp_path).layer_size == 3


def test_load_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(WeightsNotFoundError, match="best.safetensors or last.safetensors"):
        load_model(tmp_path)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputValueError, match="not a readable safetensors file"):
        load_model(tmp_path / "junk.safetensors")
    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(InputValueError, match="no 'pconv_kit.config' metadata"):
        load_model(tmp_path / "plain.safetensors")
    model = PConvUNet(layer_size=2, base_channels=4)
    save_model(model, tmp_path / "m.safetensors")
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("head")}
    save_file(state, str(tmp_path / "m.safetensors"), metadata={"pconv_kit.config": json.dumps(model.config)})
    with pytest.raises(InputValueError, match="do not match the stored architecture"):
        load_model(tmp_path / "m.safetensors")


# ---------------------------------------------------------------------------------------------- refinement
def reference_refined(model: PConvUNet, image, mask):
    """The refinement written out: the base network's output, plus plain convolutions of the composite (in the
    network's normalised space) and the hole mask, added in the holes."""
    base = PConvUNet.from_config({**model.config, "refine_channels": 0}).double().eval()
    base.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("refine.")})
    out, out_mask = base(image, mask)
    x = (image - model.mean) / model.std
    h = (out - model.mean) / model.std
    hole = 1 - mask.amin(dim=1, keepdim=True)
    r = torch.cat([x * mask + h * (1 - mask), hole], 1)
    convs = [model.refine[0], model.refine[2], model.refine[4]]
    for i, conv in enumerate(convs):
        r = F.conv2d(r, conv.weight, conv.bias, padding=1)
        if i < 2:
            r = F.leaky_relu(r, 0.2)
    return (h + r * hole) * model.std + model.mean, out_mask


@pytest.mark.parametrize("per_channel", [False, True])
def test_refinement_matches_its_written_out_formula(per_channel):
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4, refine_channels=5).double().eval()
    for conv in (model.refine[4],):  # trained weights are not zero
        torch.nn.init.normal_(conv.weight, std=0.1)
        torch.nn.init.normal_(conv.bias, std=0.1)
    image = torch.rand(2, 3, 16, 24, dtype=torch.float64)
    mask = holes((2, 3 if per_channel else 1, 16, 24)).double()
    out, out_mask = model(image, mask)
    ref, ref_mask = reference_refined(model, image, mask)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(out_mask, ref_mask)
    # the refinement only changes holes: at pixels known in every channel the raw output is the base network's
    base = PConvUNet.from_config({**model.config, "refine_channels": 0}).double().eval()
    base.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("refine.")})
    base_out, _ = base(image, mask)
    known = mask.amin(dim=1, keepdim=True).bool().expand_as(out)
    assert torch.equal(out[known], base_out[known]) and not torch.equal(out, base_out)


def test_refinement_starts_as_the_identity_and_trains():
    torch.manual_seed(0)
    base = PConvUNet(layer_size=3, base_channels=4).eval()
    grown = PConvUNet.from_config({**base.config, "refine_channels": 8}).eval()
    missing, unexpected = grown.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("refine.") for k in missing)
    image, mask = torch.rand(2, 3, 16, 16), holes((2, 1, 16, 16))
    assert torch.equal(grown(image, mask)[0], base(image, mask)[0])
    grown.train()
    out, _ = grown(image, mask)
    out.square().mean().backward()
    for name, p in grown.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert grown.refine[-1].weight.grad.abs().sum() > 0


def test_refinement_gradcheck_float64():
    torch.manual_seed(0)
    model = PConvUNet(layer_size=2, base_channels=2, refine_channels=3).double().eval()
    torch.nn.init.normal_(model.refine[-1].weight, std=0.1)
    image = torch.rand(1, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    mask = holes((1, 1, 8, 8)).double()
    assert torch.autograd.gradcheck(lambda x: model(x, mask)[0], (image,))


def test_refinement_config_save_load_and_errors(tmp_path):
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4, refine_channels=6).eval()
    torch.nn.init.normal_(model.refine[-1].weight, std=0.1)
    assert model.config["refine_channels"] == 6 and "refine_channels=6" in repr(model)
    assert "refine_channels" not in PConvUNet(layer_size=3, base_channels=4).config  # the paper's files unchanged
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(tmp_path / "m.safetensors")
    image, mask = torch.rand(1, 3, 16, 16), holes((1, 1, 16, 16))
    torch.testing.assert_close(loaded(image, mask)[0], model(image, mask)[0])
    filled = loaded.predict(image, mask)
    assert torch.equal(filled * mask, image * mask)
    with pytest.raises(InputValueError, match="refine_channels must be an integer >= 0"):
        PConvUNet(refine_channels=-1)
    with pytest.raises(InputValueError, match="refine_channels needs out_channels == in_channels"):
        PConvUNet(in_channels=3, out_channels=1, mean=[0] * 3, std=[1] * 3, refine_channels=4)
