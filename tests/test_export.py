"""Deployment: ONNX export (checked in onnxruntime), ``pconv-kit export``, torch.compile and TorchScript."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from click.testing import CliRunner

from pconv_kit import PartialConv2d, PConvUNet
from pconv_kit.errors import InputValueError
from pconv_kit.export import ExportWrapper, MissingDependencyError, export_onnx, verify_onnx
from pconv_kit.models import save_model
from pconv_kit_cli.main import cli

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:.*torch.jit.*is deprecated:DeprecationWarning"),
]

HAVE_ONNX = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(
    not HAVE_ONNX, reason='onnx, onnxscript and onnxruntime are optional: pip install "pconv-kit[onnx]"'
)


def holes(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(shape)
    b, _, h, w = shape
    for i in range(b):
        top, left = torch.randint(0, h // 2, (2,), generator=g).tolist()
        mask[i, :, top : top + h // 3, left : left + w // 3] = 0
    return mask


@pytest.fixture(scope="module")
def small_model() -> PConvUNet:
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4)
    # non-trivial BatchNorm statistics so that eval mode matters
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, 32, 32), holes((4, 1, 32, 32)))
    return model.eval()


@pytest.fixture(scope="module")
def onnx_file(small_model, tmp_path_factory):
    if not HAVE_ONNX:
        pytest.skip('onnx, onnxscript and onnxruntime are optional: pip install "pconv-kit[onnx]"')
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    result = export_onnx(small_model, path)
    return path, result


@needs_onnx
def test_onnx_matches_pytorch_for_other_batch_sizes_and_sizes(small_model, onnx_file):
    import onnxruntime as ort

    path, result = onnx_file
    assert result.dynamic and result.output_names == ["output", "output_mask"]
    assert result.max_abs_error is not None and result.max_abs_error < 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "mask"]
    for batch, height, width in [(1, 8, 8), (2, 24, 40), (3, 64, 16)]:
        image, mask = torch.rand(batch, 3, height, width), holes((batch, 1, height, width), seed=batch)
        output, output_mask = session.run(None, {"image": image.numpy(), "mask": mask.numpy()})
        with torch.inference_mode():
            ref, ref_mask = small_model(image, mask)
        torch.testing.assert_close(torch.from_numpy(output), ref, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(torch.from_numpy(output_mask), ref_mask)


@needs_onnx
def test_composite_output_matches_predict(small_model, tmp_path):
    import onnxruntime as ort

    path = tmp_path / "composite.onnx"
    result = export_onnx(small_model, path, output="composite", verify=False)
    assert result.output_names == ["composite"] and result.max_abs_error is None
    image, mask = torch.rand(2, 3, 16, 24), holes((2, 1, 16, 24))
    (composite,) = ort.InferenceSession(str(path)).run(None, {"image": image.numpy(), "mask": mask.numpy()})
    torch.testing.assert_close(torch.from_numpy(composite), small_model.predict(image, mask), atol=1e-4, rtol=1e-4)
    assert verify_onnx(path, small_model, output="composite", shapes=[(1, 8, 16)]) < 1e-4


@needs_onnx
def test_static_export_accepts_only_its_size(small_model, tmp_path):
    import onnxruntime as ort

    path = tmp_path / "static.onnx"
    result = export_onnx(small_model, path, dynamic=False, height=16, width=24)
    assert not result.dynamic and result.verified_shapes == [(1, 3, 16, 24)]
    session = ort.InferenceSession(str(path))
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        session.run(None, {"image": torch.rand(1, 3, 32, 24).numpy(), "mask": torch.ones(1, 1, 32, 24).numpy()})


def test_export_argument_errors(small_model, tmp_path):
    if not HAVE_ONNX:
        pytest.skip("argument checks run after the dependency check")
    with pytest.raises(InputValueError, match="multiples of 8"):
        export_onnx(small_model, tmp_path / "m.onnx", height=12)
    with pytest.raises(InputValueError, match="output must be one of"):
        export_onnx(small_model, tmp_path / "m.onnx", output="mask")
    assert not (tmp_path / "m.onnx").exists()


def test_missing_onnx_packages_give_an_install_hint(small_model, tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r'pip install "pconv-kit\[onnx\]"'):
        export_onnx(small_model, tmp_path / "m.onnx")


def test_export_wrapper_outputs(small_model):
    image, mask = torch.rand(1, 3, 8, 8), holes((1, 1, 8, 8))
    raw = ExportWrapper(small_model, "raw")(image, mask)
    torch.testing.assert_close(raw, small_model(image, mask))
    composite = ExportWrapper(small_model, "composite")(image, mask)
    torch.testing.assert_close(composite, small_model.predict(image, mask))


# ---------------------------------------------------------------------------------------------- CLI
@needs_onnx
def test_cli_export(small_model, tmp_path):
    weights = tmp_path / "model.safetensors"
    save_model(small_model, weights)
    out = tmp_path / "out.onnx"
    result = CliRunner().invoke(cli, ["export", "--model", str(weights), "--onnx", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "onnxruntime matches PyTorch" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "model.safetensors.json", "out.onnx"]


def test_cli_export_errors(small_model, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "--model", str(tmp_path / "nope.safetensors"), "--onnx", "x.onnx"])
    assert result.exit_code == 2 and "not found" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["export", "--model", "m.safetensors"])
    assert result.exit_code == 2 and "--onnx" in result.output
    if HAVE_ONNX:
        weights = tmp_path / "model.safetensors"
        save_model(small_model, weights)
        result = runner.invoke(
            cli, ["export", "--model", str(weights), "--onnx", str(tmp_path / "a.onnx"), "--size", "12", "16"]
        )
        assert result.exit_code == 2 and "multiples of 8" in result.output
        assert not (tmp_path / "a.onnx").exists()


# ---------------------------------------------------------------------------------------------- compile / TorchScript
def test_torchscript_trace_of_pconvunet_generalises_to_other_sizes(small_model):
    image, mask = torch.rand(2, 3, 16, 24), holes((2, 1, 16, 24))
    traced = torch.jit.trace(small_model, (image, mask))
    for shape in [(2, 3, 16, 24), (1, 3, 32, 8)]:
        x, m = torch.rand(shape), holes((shape[0], 1, *shape[2:]), seed=3)
        with torch.inference_mode():
            got, want = traced(x, m), small_model(x, m)
        torch.testing.assert_close(got, want)


def test_torchscript_trace_of_partial_conv():
    torch.manual_seed(0)
    layer = PartialConv2d(3, 4, 3, stride=2, padding=1)
    x, m = torch.rand(1, 3, 9, 9), holes((1, 1, 9, 9))
    traced = torch.jit.trace(layer, (x, m))
    x2, m2 = torch.rand(2, 3, 12, 7), holes((2, 1, 12, 7), seed=1)
    torch.testing.assert_close(traced(x2, m2), layer(x2, m2))


def test_torch_compile_of_pconvunet_full_graph_forward_and_backward():
    """The whole model is one graph (no data-dependent break), and compiled gradients equal eager ones."""
    torch.manual_seed(0)
    eager = PConvUNet(layer_size=3, base_channels=4)
    twin = PConvUNet(layer_size=3, base_channels=4)
    twin.load_state_dict(eager.state_dict())
    compiled = torch.compile(twin, backend="aot_eager", fullgraph=True)
    image, mask = torch.rand(2, 3, 16, 16), holes((2, 1, 16, 16))
    out_e, mask_e = eager(image, mask)
    out_c, mask_c = compiled(image, mask)
    torch.testing.assert_close(out_c, out_e)
    torch.testing.assert_close(mask_c, mask_e)
    out_e.square().mean().backward()
    out_c.square().mean().backward()
    for (name, p), q in zip(eager.named_parameters(), twin.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)


# ---------------------------------------------------------------------------------------------- precision
AUTOCAST = [("cpu", torch.bfloat16)] + (
    [("cuda", torch.float16), ("cuda", torch.bfloat16)] if torch.cuda.is_available() else []
)


@pytest.mark.parametrize(("device", "dtype"), AUTOCAST, ids=lambda v: str(v).removeprefix("torch."))
def test_autocast_inference_close_to_float32_with_an_exact_mask(device, dtype):
    """Under autocast the convolutions run in half precision; the mask path stays float32, so the output
    mask is exact and the output is within half-precision tolerance."""
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=8).to(device).eval()
    image, mask = torch.rand(2, 3, 32, 32, device=device), holes((2, 1, 32, 32)).to(device)
    with torch.inference_mode():
        ref, ref_mask = model(image, mask)
        with torch.autocast(device, dtype=dtype):
            out, out_mask = model(image, mask)
    assert out.dtype == dtype and out_mask.dtype == torch.float32
    torch.testing.assert_close(out_mask, ref_mask, atol=0, rtol=0)
    torch.testing.assert_close(out.float(), ref, atol=0.15, rtol=0.1)
    # the training path too: gradients flow and are finite
    model.train()
    with torch.autocast(device, dtype=dtype):
        out, _ = model(image, mask)
    out.float().square().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.slow
def test_inductor_compiled_pconvunet_matches_eager():
    """``torch.compile`` with the default backend (what ``benchmarks.run --compile`` uses)."""
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4).eval()
    compiled = torch.compile(model)
    image, mask = torch.rand(1, 3, 16, 16), holes((1, 1, 16, 16))
    with torch.inference_mode():
        torch.testing.assert_close(compiled(image, mask), model(image, mask), atol=1e-5, rtol=1e-5)


def test_mask_path_stays_float32_under_autocast():
    """Window sums of a per-channel mask reach C * kH * kW (73500 here), beyond float16's range (65504): the
    mask path must not follow autocast, or the ratio (and the output) would be wrong."""
    torch.manual_seed(0)
    layer = PartialConv2d(1500, 2, 7, padding=3, bias=False)
    x, mask = torch.rand(1, 1500, 10, 10), torch.ones(1, 1500, 10, 10)
    ref, ref_mask = layer(x, mask)
    with torch.autocast("cpu", dtype=torch.float16):
        out, new_mask = layer(x, mask)
    assert out.dtype == torch.float16 and new_mask.dtype == torch.float32
    torch.testing.assert_close(new_mask, ref_mask, atol=0, rtol=0)
    torch.testing.assert_close(out.float(), ref, atol=5e-3, rtol=5e-3)


@needs_onnx
def test_refinement_exports_and_matches(tmp_path):
    torch.manual_seed(0)
    model = PConvUNet(layer_size=3, base_channels=4, refine_channels=4).eval()
    torch.nn.init.normal_(model.refine[-1].weight, std=0.1)
    result = export_onnx(model, tmp_path / "refined.onnx", output="composite")
    assert result.max_abs_error is not None and result.max_abs_error < 1e-4
