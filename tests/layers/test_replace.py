"""Tests of partial-convolution-based padding: partial_padding_conv2d, PartialPaddingConv2d, replace_conv2d."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tests.conftest import tolerance
from pconv_kit import PartialConv2d, partial_conv2d, replace_conv2d
from pconv_kit.errors import InputValueError
from pconv_kit.layers import PartialPaddingConv2d, partial_padding_conv2d

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),
    pytest.mark.filterwarnings("ignore:.*torch.jit.*is deprecated:DeprecationWarning"),
]

configs = st.fixed_dictionaries(
    {
        "batch": st.integers(1, 2),
        "groups": st.sampled_from([1, 2]),
        "cin_per_group": st.integers(1, 3),
        "cout_per_group": st.integers(1, 3),
        "kernel": st.tuples(st.integers(1, 5), st.integers(1, 5)),
        "stride": st.tuples(st.integers(1, 3), st.integers(1, 3)),
        "padding": st.tuples(st.integers(0, 3), st.integers(0, 3)),
        "dilation": st.tuples(st.integers(1, 2), st.integers(1, 2)),
        "size": st.tuples(st.integers(1, 9), st.integers(1, 9)),
        "bias": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
).filter(
    lambda c: all(
        d * (k - 1) + 1 <= n + 2 * p for k, n, p, d in zip(c["kernel"], c["size"], c["padding"], c["dilation"])
    )
)


def make_case(cfg, requires_grad=True):
    g = torch.Generator().manual_seed(cfg["seed"])
    cin, cout = cfg["cin_per_group"] * cfg["groups"], cfg["cout_per_group"] * cfg["groups"]
    x = torch.randn(cfg["batch"], cin, *cfg["size"], generator=g, dtype=torch.float64)
    w = torch.randn(cout, cfg["cin_per_group"], *cfg["kernel"], generator=g, dtype=torch.float64)
    b = torch.randn(cout, generator=g, dtype=torch.float64) if cfg["bias"] else None
    for t in (x, w, b):
        if t is not None:
            t.requires_grad_(requires_grad)
    kw = {"stride": cfg["stride"], "padding": cfg["padding"], "dilation": cfg["dilation"], "groups": cfg["groups"]}
    return x, w, b, kw


def reference(x, w, b, kw):
    """The definition: a partial convolution whose mask is all ones."""
    ones = torch.ones(x.shape[0], 1, *x.shape[2:], dtype=x.dtype)
    return partial_conv2d(x, ones, w, b, **kw)[0]


@given(configs)
def test_equals_partial_conv_with_all_ones_mask(cfg):
    x, w, b, kw = make_case(cfg)
    out = partial_padding_conv2d(x, w, b, **kw)
    ref = reference(x, w, b, kw)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=1e-10)
    # gradients of the in-place border rescaling (custom autograd function) against autograd of the reference
    grad = torch.randn_like(ref)
    inputs = [t for t in (x, w, b) if t is not None]
    for got, want in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


@given(configs)
def test_no_grad_path_equals_reference(cfg):
    x, w, b, kw = make_case(cfg, requires_grad=False)
    with torch.inference_mode():
        out = partial_padding_conv2d(x, w, b, **kw)
    torch.testing.assert_close(out, reference(x, w, b, kw), atol=1e-10, rtol=1e-10)


def test_gradcheck():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, b: partial_padding_conv2d(x, w, b, 2, 1), (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: partial_padding_conv2d(x, w, b, 1, 2), (x, w, b))


def test_interior_equals_conv2d_and_border_differs():
    torch.manual_seed(0)
    x, w, b = torch.randn(1, 3, 12, 10), torch.randn(5, 3, 5, 5), torch.randn(5)
    out = partial_padding_conv2d(x, w, b, padding=2)
    ref = F.conv2d(x, w, b, padding=2)
    torch.testing.assert_close(out[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2])
    assert not torch.allclose(out[..., 0, :], ref[..., 0, :])
    # no padding: nothing to re-weight, exactly F.conv2d
    torch.testing.assert_close(partial_padding_conv2d(x, w, b), F.conv2d(x, w, b), atol=0, rtol=0)


def test_box_filter_keeps_a_constant_image_constant_up_to_the_border():
    """Zero padding darkens the border of a blurred constant image; partial padding does not."""
    x = torch.full((1, 1, 9, 9), 0.7)
    box = torch.full((1, 1, 3, 3), 1 / 9)
    out = partial_padding_conv2d(x, box, padding=1)
    torch.testing.assert_close(out, torch.full_like(out, 0.7))
    assert float(F.conv2d(x, box, padding=1)[0, 0, 0, 0]) < 0.7 * 0.5


def test_windows_entirely_in_the_padding_are_zero():
    x, w, b = torch.rand(1, 2, 4, 4), torch.rand(3, 2, 1, 1), torch.rand(3)
    out = partial_padding_conv2d(x, w, b, padding=1)  # 1x1 kernel: the padded ring sees no pixel
    assert torch.count_nonzero(out[..., 0, :]) == 0 and torch.count_nonzero(out[..., :, -1]) == 0
    torch.testing.assert_close(out[..., 1:-1, 1:-1], F.conv2d(x, w, b))


def test_module_dtypes_and_devices(dtype, device):
    torch.manual_seed(0)
    layer = PartialPaddingConv2d(4, 6, 3, padding=1).double()
    x = torch.rand(2, 4, 11, 9, dtype=torch.float64)
    ref = layer(x)
    layer = layer.to(device=device, dtype=dtype)
    out = layer(x.to(device, dtype))
    assert out.dtype == dtype and out.device.type == device.type
    torch.testing.assert_close(out.double().cpu(), ref, **tolerance(dtype))


def test_channels_last():
    torch.manual_seed(0)
    layer = PartialPaddingConv2d(4, 8, 3, padding=1)
    x = torch.rand(2, 4, 10, 10)
    ref = layer(x)
    out = layer.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref)


def test_module_constructor_and_state_dict():
    conv = nn.Conv2d(3, 8, 3, padding="same", bias=True)
    layer = PartialPaddingConv2d(3, 8, 3, padding="same")
    assert layer.padding == (1, 1)
    assert layer.state_dict().keys() == conv.state_dict().keys()
    assert "partial_padding=True" in repr(layer)
    with pytest.raises(InputValueError, match="padding_mode='reflect'"):
        PartialPaddingConv2d(3, 8, 3, padding=1, padding_mode="reflect")
    with pytest.raises(InputValueError, match="asymmetrically"):
        PartialPaddingConv2d(3, 8, 4, padding="same")


def test_compile_and_trace_match_eager():
    torch.manual_seed(0)
    layer = PartialPaddingConv2d(3, 4, 3, stride=2, padding=1)
    x = torch.rand(2, 3, 9, 8)
    ref = layer(x)
    compiled = torch.compile(layer, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), ref)
    traced = torch.jit.trace(layer, (x,))
    torch.testing.assert_close(traced(x), ref)


# ---------------------------------------------------------------------------------------------- replace_conv2d
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


def tiny_resnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 7, 2, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
        BasicBlock(8, 8, 1),
        BasicBlock(8, 16, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    )


def reference_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run a plain-conv ``model`` with every convolution evaluated as a partial convolution of an all-ones mask."""
    patched = []
    for m in model.modules():
        if type(m) is nn.Conv2d:

            def forward(inp: torch.Tensor, m: nn.Conv2d = m) -> torch.Tensor:
                ones = torch.ones(inp.shape[0], 1, *inp.shape[2:], dtype=inp.dtype)
                return partial_conv2d(inp, ones, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)[0]

            m.forward = forward
            patched.append(m)
    try:
        return model(x)
    finally:
        for m in patched:
            del m.forward


def test_replace_conv2d_on_a_resnet():
    torch.manual_seed(0)
    model = tiny_resnet().double().eval()
    x = torch.rand(2, 3, 40, 36, dtype=torch.float64)
    before = model(x)
    params = {name: p for name, p in model.named_parameters()}
    keys = model.state_dict().keys()
    n_convs = sum(type(m) is nn.Conv2d for m in model.modules())
    assert replace_conv2d(model) is model
    assert sum(type(m) is nn.Conv2d for m in model.modules()) == 0
    assert sum(isinstance(m, PartialPaddingConv2d) for m in model.modules()) == n_convs == 6
    assert model.state_dict().keys() == keys
    assert all(p is params[name] for name, p in model.named_parameters()), "parameters must be shared"
    after = model(x)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(after, reference_forward(tiny_resnet_copy(model), x))


def tiny_resnet_copy(model: nn.Module) -> nn.Module:
    """A plain-conv twin of ``model`` (same weights) for the reference forward."""
    twin = tiny_resnet().double().eval()
    twin.load_state_dict(model.state_dict())
    return twin


def test_replaced_model_trains_with_an_existing_optimizer():
    torch.manual_seed(0)
    model = tiny_resnet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    replace_conv2d(model)
    stem = model[0].weight.detach().clone()
    loss = model(torch.rand(2, 3, 32, 32)).square().mean()
    loss.backward()
    opt.step()
    assert model[0].weight.grad is not None
    assert not torch.equal(model[0].weight.detach(), stem)
    assert model.training and model[0].training


def test_replace_keeps_training_flag_and_filter():
    model = tiny_resnet().eval()
    replace_conv2d(model, filter=lambda name, conv: conv.kernel_size == (3, 3))
    assert type(model[0]) is nn.Conv2d  # 7x7 stem filtered out
    assert isinstance(model[4].conv1, PartialPaddingConv2d) and not model[4].conv1.training
    assert type(model[5].down[0]) is nn.Conv2d  # 1x1


def test_replace_skips_other_padding_modes_subclasses_and_warns_on_asymmetric_same():
    model = nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1, padding_mode="reflect"),
        PartialConv2d(3, 3, 3, padding=1),
        nn.Conv2d(3, 3, 4, padding="same"),
        nn.Conv2d(3, 3, 3, padding="same"),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replace_conv2d(model)
    assert type(model[0]) is nn.Conv2d and type(model[1]) is PartialConv2d and type(model[2]) is nn.Conv2d
    assert isinstance(model[3], PartialPaddingConv2d) and model[3].padding == (1, 1)
    assert any("asymmetric" in str(w.message) for w in caught)


def test_replace_a_bare_conv_returns_the_new_layer():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    new = replace_conv2d(conv)
    assert isinstance(new, PartialPaddingConv2d) and new.weight is conv.weight and new.bias is conv.bias


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_onnx_export_of_a_replaced_model_matches():
    pytest.importorskip("onnxscript", reason='optional: pip install "pconv-kit[onnx]"')
    ort = pytest.importorskip("onnxruntime", reason='optional: pip install "pconv-kit[onnx]"')
    torch.manual_seed(0)
    model = replace_conv2d(tiny_resnet()).eval()
    x = torch.rand(1, 3, 32, 32)
    program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
    session = ort.InferenceSession(program.model_proto.SerializeToString())
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.inference_mode():
        torch.testing.assert_close(torch.from_numpy(got), model(x), atol=1e-4, rtol=1e-4)
