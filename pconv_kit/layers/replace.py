"""Partial-convolution-based padding for any model (Liu et al. 2018b, "Partial Convolution based Padding").

Zero padding makes a convolution see zeros past the image border, which biases the outputs near the border.
Partial-convolution-based padding treats the padded border as a hole: every output is re-weighted by
``(window size) / (number of window entries inside the image)``, exactly a partial convolution whose input
mask is all ones. :func:`replace_conv2d` swaps every ``nn.Conv2d`` of a model (a ResNet, a U-Net, ...) for
:class:`PartialPaddingConv2d`, keeping the weights.

Cost: with an all-ones mask the ratio depends only on the output position relative to the border and is
separable, ``kh / rows(i) * kw / cols(j)``, and it is 1 away from the border. The layer therefore computes
the ordinary convolution (bias fused) and rescales only the border rows and columns in place: no mask, no
mask convolution and no full-size elementwise pass in the forward pass; training adds one pass over the
output gradient (the same one a plain multiply would have). The border factors are a pure function of the
sizes and are cached per geometry. Under ``torch.compile``, TorchScript tracing and ONNX export a traceable
equivalent (a full ratio map) is used instead.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.utils import _pair

from pconv_kit.core.check import check_shape
from pconv_kit.core.tracing import capturing_graph
from pconv_kit.errors import InputValueError
from pconv_kit.layers.partial_conv import partial_conv2d_from_count

__all__ = ["partial_padding_conv2d", "PartialPaddingConv2d", "replace_conv2d"]

_IntOrPair = int | tuple[int, int]


def _axis_border(
    size: int, out_size: int, kernel: int, stride: int, padding: int, dilation: int
) -> tuple[list[float], list[float], bool]:
    """Scale factors ``kernel / valid(i)`` of the leading and trailing output indices whose window crosses the
    border along one axis, and whether some window lies entirely in the padding (``valid(i) == 0``).

    Indices between the two lists see the whole kernel inside the input (factor 1). When the two ranges
    meet (tiny inputs), every index is listed as leading and the trailing list is empty.
    """

    def factor(i: int) -> float:
        start = i * stride - padding
        valid = sum(1 for a in range(kernel) if 0 <= start + a * dilation < size)
        return kernel / valid if valid else 0.0

    extent = (kernel - 1) * dilation
    lo = min(out_size, -(-padding // stride))  # first index whose window starts inside the input
    hi = max(0, min(out_size, (size - 1 + padding - extent) // stride + 1))  # first one ending outside it
    if hi < lo:
        lead, trail = [factor(i) for i in range(out_size)], []
    else:
        lead, trail = [factor(i) for i in range(lo)], [factor(i) for i in range(hi, out_size)]
    return lead, trail, any(f == 0.0 for f in lead + trail)


@functools.lru_cache(maxsize=1024)
def _border_plan(
    in_hw: tuple[int, int],
    out_hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
) -> tuple[tuple[tuple[int, int, tuple[float, ...]], ...], bool, tuple[int, int]]:
    """``(strips, has_empty_window, row_strip_heights)`` for one geometry; a pure function of the sizes
    (cached, so repeated calls with the same input size cost no Python arithmetic)."""
    strips: list[tuple[int, int, tuple[float, ...]]] = []
    empty_any = False
    rows = (0, 0)
    for axis, dim in ((0, -2), (1, -1)):
        lead, trail, empty = _axis_border(
            in_hw[axis], out_hw[axis], kernel[axis], stride[axis], padding[axis], dilation[axis]
        )
        empty_any |= empty
        if axis == 0:
            rows = (len(lead), len(trail))
        for start, factors in ((0, lead), (out_hw[axis] - len(trail), trail)):
            if factors:
                strips.append((dim, start, tuple(factors)))
    return tuple(strips), empty_any, rows


@functools.lru_cache(maxsize=1024)
def _factor_tensor(factors: tuple[float, ...], dim: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The factors of one strip as a tensor shaped to broadcast along it (read-only, shared)."""
    with torch.inference_mode(False):  # a normal tensor, usable later inside and outside inference mode
        f = torch.tensor(factors, dtype=dtype, device=device)
    return f.view(-1, 1) if dim == -2 else f


class _Geometry:
    """Border strips of one output size and their scale factors.

    ``strips`` holds ``(dim, start, length, factor)``: rows (``dim=-2``) span every column; column strips
    (``dim=-1``) span every row, so the corners are scaled twice, by the row and the column factor, whose
    product is the corner's ratio (the all-ones ratio is separable).
    """

    def __init__(
        self,
        y: torch.Tensor,
        in_hw: tuple[int, int],
        kernel: tuple[int, int],
        stride: tuple[int, int],
        padding: tuple[int, int],
        dilation: tuple[int, int],
    ) -> None:
        self.out_hw = (int(y.shape[-2]), int(y.shape[-1]))
        plan, self.has_empty_window, self.rows = _border_plan(
            (int(in_hw[0]), int(in_hw[1])), self.out_hw, kernel, stride, padding, dilation
        )
        self.strips: list[tuple[int, int, int, torch.Tensor]] = [
            (dim, start, len(factors), _factor_tensor(factors, dim, y.dtype, y.device))
            for dim, start, factors in plan
        ]

    @property
    def trivial(self) -> bool:
        """No output window crosses the border."""
        return not self.strips

    def scale_(self, y: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """In place on every strip: ``y = (y - b) * f + b`` (``y *= f`` without bias)."""
        b = None if bias is None else bias.view(1, -1, 1, 1).to(y.dtype)
        for dim, start, length, f in self.strips:
            strip = y.narrow(dim, start, length)
            if b is None:
                strip.mul_(f)
            else:
                strip.sub_(b).mul_(f).add_(b)
        return y

    def border_diff_sum(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-channel sum of ``a - b`` over the border cells (each cell once); touches only the strips."""
        total = a.new_zeros(a.shape[1])
        top, bottom = self.rows
        mid_rows = max(0, self.out_hw[0] - top - bottom)
        for dim, start, length, _ in self.strips:
            if dim == -2:
                pa, pb = a.narrow(-2, start, length), b.narrow(-2, start, length)
            else:
                pa = a.narrow(-2, top, mid_rows).narrow(-1, start, length)
                pb = b.narrow(-2, top, mid_rows).narrow(-1, start, length)
            total = total + (pa - pb).sum(dim=(0, 2, 3))
        return total


class _BorderScale(torch.autograd.Function):
    """Autograd form of :meth:`_Geometry.scale_`: in place in forward, one pass over the gradient in backward."""

    @staticmethod
    def forward(ctx: Any, y: torch.Tensor, bias: torch.Tensor | None, geometry: _Geometry) -> torch.Tensor:
        geometry.scale_(y, bias)
        ctx.mark_dirty(y)
        ctx.geometry = geometry
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, None]:
        geometry: _Geometry = ctx.geometry
        grad_y = geometry.scale_(grad.clone(), None)  # d out / d y = f on the strips
        grad_bias = None
        if ctx.needs_input_grad[1]:
            # out = (y - b) * f + b on the strips, and y = conv + b: d out / d b = f + (1 - f) = 1. The
            # convolution's backward supplies the f part from grad_y; the (1 - f) part is added here.
            grad_bias = geometry.border_diff_sum(grad, grad_y)
        return grad_y, grad_bias, None


def partial_padding_conv2d(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: _IntOrPair = 1,
    padding: _IntOrPair = 0,
    dilation: _IntOrPair = 1,
    groups: int = 1,
) -> torch.Tensor:
    r"""Convolution with partial-convolution-based padding: :func:`partial_conv2d` with an all-ones mask.

    .. math::

        y = W^T X \cdot \frac{\mathrm{sum}(\mathbf{1})}{\mathrm{sum}(M_{\text{pad}})} + b

    where :math:`M_{\text{pad}}` is 1 inside the image and 0 in the zero padding, so only outputs whose
    window overlaps the padding differ from ``F.conv2d``. No mask is built: the border rows and columns of
    the ordinary convolution are rescaled in place.

    Args:
        input: :math:`(B, C_{in}, H, W)`.
        weight, bias, stride, padding, dilation, groups: as in :func:`torch.nn.functional.conv2d` (integer
            padding only).

    Returns:
        :math:`(B, C_{out}, H', W')`. Outputs whose window lies entirely in the padding are 0.

    Example:
        >>> from pconv_kit.layers import partial_conv2d
        >>> x, w = torch.rand(1, 2, 6, 6), torch.randn(3, 2, 3, 3)
        >>> y = partial_padding_conv2d(x, w, padding=1)
        >>> torch.allclose(y, partial_conv2d(x, torch.ones(1, 1, 6, 6), w, padding=1)[0])
        True
        >>> torch.allclose(y[..., 1:-1, 1:-1], F.conv2d(x, w, padding=1)[..., 1:-1, 1:-1])
        True
    """
    check_shape(input, "B C H W", "input")
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    if padding == (0, 0):  # every window lies inside the input: the ratio is 1
        return F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    kernel = (int(weight.shape[-2]), int(weight.shape[-1]))
    if capturing_graph():
        return _ratio_map_conv(input, weight, bias, stride, padding, dilation, groups)
    y = F.conv2d(input, weight, bias, stride, padding, dilation, groups)
    geometry = _Geometry(y, (input.shape[-2], input.shape[-1]), kernel, stride, padding, dilation)
    if geometry.trivial:
        return y
    if geometry.has_empty_window:  # some window sees only padding: output 0 there, bias included
        return _ratio_map_conv(input, weight, bias, stride, padding, dilation, groups)
    grad_needed = torch.is_grad_enabled() and (
        y.requires_grad or (bias is not None and bias.requires_grad)
    )
    if grad_needed:
        return _BorderScale.apply(y, bias, geometry)
    return geometry.scale_(y, bias)


def _ratio_map_conv(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> torch.Tensor:
    """Traceable reference form: a ``(1, 1, H, W)`` all-ones count through the partial convolution."""
    ones = torch.ones_like(input[:1, :1])
    out, _ = partial_conv2d_from_count(input, ones, 1, weight, bias, stride, padding, dilation, groups)
    return out


class PartialPaddingConv2d(nn.Conv2d):
    r"""``nn.Conv2d`` with partial-convolution-based padding (Liu et al. 2018b).

    A drop-in replacement for ``nn.Conv2d`` (same constructor, parameters, ``state_dict`` and
    ``forward(input)``); see :func:`partial_padding_conv2d`. ``padding_mode`` must be ``"zeros"``;
    ``padding="same"`` is accepted when it is symmetric (odd dilated kernel extent).

    Example:
        >>> conv = PartialPaddingConv2d(3, 8, 3, padding=1)
        >>> conv(torch.rand(2, 3, 16, 16)).shape
        torch.Size([2, 8, 16, 16])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: _IntOrPair,
        stride: _IntOrPair = 1,
        padding: _IntOrPair | str = 0,
        dilation: _IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if padding_mode != "zeros":
            raise InputValueError(
                f"PartialPaddingConv2d replaces zero padding; got padding_mode={padding_mode!r}"
            )
        padding = _explicit_padding(padding, _pair(kernel_size), _pair(dilation))
        super().__init__(
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, "zeros", device, dtype
        )

    @classmethod
    def from_conv2d(cls, conv: nn.Conv2d) -> PartialPaddingConv2d:
        """A PartialPaddingConv2d sharing ``conv``'s parameters (the same ``Parameter`` objects, so an optimiser
        built on the old model keeps working) and training mode."""
        new = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,  # type: ignore[arg-type]
            conv.stride,  # type: ignore[arg-type]
            conv.padding,  # type: ignore[arg-type]
            conv.dilation,  # type: ignore[arg-type]
            conv.groups,
            conv.bias is not None,
            device="meta",
        )
        new.weight = conv.weight
        new.bias = conv.bias
        new.train(conv.training)
        return new

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        padding: tuple[int, int] = self.padding  # type: ignore[assignment]
        return partial_padding_conv2d(input, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", partial_padding=True"


def _explicit_padding(
    padding: _IntOrPair | str, kernel: tuple[int, int], dilation: tuple[int, int]
) -> tuple[int, int]:
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        if any(t % 2 for t in totals):
            raise InputValueError(
                f"padding='same' with kernel {kernel} and dilation {dilation} pads asymmetrically, which "
                "partial-convolution padding does not support; use an odd kernel or explicit padding"
            )
        return (totals[0] // 2, totals[1] // 2)
    if isinstance(padding, str):
        raise InputValueError(f"padding must be an int, a pair, 'same' or 'valid'; got {padding!r}")
    return _pair(padding)  # type: ignore[return-value]


def _replaceable(conv: nn.Module) -> str | None:
    """Why ``conv`` cannot be replaced, or ``None`` when it can."""
    if conv.padding_mode != "zeros":
        return f"padding_mode={conv.padding_mode!r} is not zero padding"
    if conv.padding == "same":
        try:
            _explicit_padding("same", conv.kernel_size, conv.dilation)
        except InputValueError:
            return "padding='same' is asymmetric for this kernel"
    return None


def replace_conv2d(
    model: nn.Module, filter: Callable[[str, nn.Conv2d], bool] | None = None
) -> nn.Module:
    """Swap every ``nn.Conv2d`` of ``model`` for a :class:`PartialPaddingConv2d` with the same weights.

    The model is modified in place (and returned); the new layers share the old layers' ``Parameter``
    objects, so an optimiser created before the swap keeps working and ``state_dict`` keys do not change.
    Only modules whose type is exactly ``nn.Conv2d`` are swapped (subclasses may override ``forward``).
    Convolutions that do not zero-pad (``padding_mode`` reflect/replicate/circular) are left alone, as are
    ``padding="same"`` layers that pad asymmetrically (with a warning).

    Args:
        model: any module (e.g. a ResNet); if it is itself an ``nn.Conv2d`` the replacement is returned.
        filter: optional ``filter(qualified_name, conv) -> bool``; only convolutions for which it returns
            ``True`` are swapped.

    Returns:
        ``model`` (or the new layer when ``model`` is an ``nn.Conv2d``).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 1))
        >>> net = replace_conv2d(net)
        >>> [type(m).__name__ for m in net]
        ['PartialPaddingConv2d', 'ReLU', 'PartialPaddingConv2d']
    """

    def swap(name: str, module: nn.Module) -> nn.Module | None:
        if type(module) is not nn.Conv2d:
            return None
        reason = _replaceable(module)
        if reason is not None:
            if module.padding_mode == "zeros":
                warnings.warn(f"replace_conv2d: left {name or 'model'} unchanged: {reason}", stacklevel=3)
            return None
        if filter is not None and not filter(name, module):
            return None
        return PartialPaddingConv2d.from_conv2d(module)

    root = swap("", model)
    if root is not None:
        return root
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            new = swap(f"{name}.{child_name}" if name else child_name, child)
            if new is not None:
                setattr(module, child_name, new)
    return model
