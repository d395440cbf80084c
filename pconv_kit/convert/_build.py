"""Assemble a :class:`~pconv_kit.models.PConvUNet` from layers already expressed in pconv-kit's formula.

Every source converter turns its checkpoint into a list of :class:`SourceLayer` (weights rescaled to
``out = W^T (X * M) * sum(1) / sum(M) + b``, input channels in pconv-kit's concatenation order) and hands
them to :func:`assemble`, which checks the shapes against the architecture, folds what can be folded
(a convolution bias before BatchNorm, a different BatchNorm epsilon) and loads the state dict.

The PyTorch sources (naoto0804, mmagic) differ only in their key names, so one skeleton,
:func:`convert_unet`, reads both: each converter gives it a :class:`KeyLayout` table and, where its data
differ, its default normalisation and a preparation step (mmagic's BGR-to-RGB reorder).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch

from pconv_kit.convert._torchfile import strip_prefix
from pconv_kit.errors import InputValueError
from pconv_kit.models import PConvUNet

__all__ = ["SourceLayer", "KeyLayout", "assemble", "convert_unet", "read_layer", "reorder_image_channels", "BN_EPS"]

BN_EPS = 1e-5
"""Epsilon of pconv-kit's BatchNorm layers (PyTorch's default)."""

_BN_KEYS = ("weight", "bias", "running_mean", "running_var")


@dataclass
class SourceLayer:
    """One partial convolution of a source network, translated to pconv-kit's formula.

    Attributes:
        name: the layer's name in the source (used in error messages), e.g. ``"enc_3"``.
        weight: ``(C_out, C_in, kH, kW)`` such that the source layer equals
            ``weight^T (X * M) * sum(1) / sum(M) + bias`` on valid windows.
        bias: ``(C_out,)`` or ``None``.
        bn: BatchNorm tensors ``weight``, ``bias``, ``running_mean``, ``running_var`` (and optionally
            ``num_batches_tracked``) of the BatchNorm that follows the convolution, or ``None``.
        bn_eps: the source BatchNorm's epsilon.
    """

    name: str
    weight: torch.Tensor
    bias: torch.Tensor | None = None
    bn: dict[str, torch.Tensor] | None = None
    bn_eps: float = BN_EPS


def _f64(t: torch.Tensor) -> torch.Tensor:
    return t.detach().to("cpu", torch.float64)


def _conv_entries(layer: SourceLayer, prefix: str, has_bn: bool, has_bias: bool) -> dict[str, torch.Tensor]:
    """State-dict entries of pconv-kit's block ``prefix`` (``encoder.1``, ``decoder.0``, ``head``)."""
    conv = f"{prefix}.conv" if prefix != "head" else "head"
    out: dict[str, torch.Tensor] = {f"{conv}.weight": _f64(layer.weight)}
    bias = None if layer.bias is None else _f64(layer.bias)
    if has_bn:
        if layer.bn is None:
            raise InputValueError(
                f"layer {layer.name} has no BatchNorm, but the PConvUNet layer it maps to ({prefix}) has one"
            )
        missing = [k for k in _BN_KEYS if k not in layer.bn]
        if missing:
            raise InputValueError(f"BatchNorm of layer {layer.name} lacks {missing}")
        mean = _f64(layer.bn["running_mean"])
        var = _f64(layer.bn["running_var"])
        if bias is not None:
            # BN(y + b) with running mean mu == BN(y) with running mean mu - b (eval mode, every pixel)
            mean = mean - bias
        if layer.bn_eps != BN_EPS:
            # sqrt(var + eps_src) == sqrt((var + eps_src - eps) + eps)
            var = var + (layer.bn_eps - BN_EPS)
            if bool((var < 0).any()):
                raise InputValueError(
                    f"BatchNorm of layer {layer.name} has epsilon {layer.bn_eps} < {BN_EPS} and running variances "
                    "too small to fold it; cannot convert exactly"
                )
        out[f"{prefix}.bn.weight"] = _f64(layer.bn["weight"])
        out[f"{prefix}.bn.bias"] = _f64(layer.bn["bias"])
        out[f"{prefix}.bn.running_mean"] = mean
        out[f"{prefix}.bn.running_var"] = var
        tracked = layer.bn.get("num_batches_tracked")
        out[f"{prefix}.bn.num_batches_tracked"] = (
            torch.tensor(0, dtype=torch.long) if tracked is None else tracked.detach().to("cpu", torch.long).reshape(())
        )
    else:
        if layer.bn is not None:
            raise InputValueError(
                f"layer {layer.name} has a BatchNorm, but the PConvUNet layer it maps to ({prefix}) has none"
            )
        if has_bias:
            out[f"{conv}.bias"] = bias if bias is not None else torch.zeros(layer.weight.shape[0], dtype=torch.float64)
        elif bias is not None:  # pragma: no cover - every PConvUNet layer without BatchNorm has a bias
            raise InputValueError(f"layer {layer.name} has a bias that {prefix} cannot hold")
    return out


def reorder_image_channels(first: SourceLayer, head: SourceLayer, order: Sequence[int]) -> None:
    """Make a network trained on images with channels ``order`` of ours (e.g. ``[2, 1, 0]`` for BGR) take ours.

    Permutes the input channels of the first layer, the output channels of the head and the head's input
    channels that carry the image (the last ``C_in``). In place.
    """
    idx = torch.as_tensor(list(order))
    c = len(idx)
    first.weight = first.weight[:, idx]
    w = head.weight[idx]
    head.weight = torch.cat([w[:, :-c], w[:, -c:][:, idx]], dim=1)
    if head.bias is not None:
        head.bias = head.bias[idx]


def assemble(
    encoder: Sequence[SourceLayer],
    decoder: Sequence[SourceLayer],
    head: SourceLayer,
    *,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    dtype: torch.dtype = torch.float32,
) -> PConvUNet:
    """Build the PConvUNet that holds ``encoder``, ``decoder`` (ordered deepest first) and ``head``.

    The architecture (``layer_size``, ``base_channels``, channels) is read from the weight shapes, then every
    shape is checked against ``PConvUNet``'s. The model is returned in eval mode and ``dtype``.

    Raises:
        InputValueError: a layer does not fit the architecture (the message names the layer, the expected
            and the found shape).
    """
    layer_size = len(encoder)
    if layer_size < 1 or len(decoder) != layer_size - 1:
        raise InputValueError(
            f"a PConvUNet needs N encoder layers, N-1 decoder layers and a head; got {len(encoder)} encoder and "
            f"{len(decoder)} decoder layers"
        )
    first = encoder[0].weight
    in_channels, base_channels = int(first.shape[1]), int(first.shape[0])
    out_channels = int(head.weight.shape[0])
    try:
        model = PConvUNet(
            in_channels=in_channels,
            out_channels=out_channels,
            layer_size=layer_size,
            base_channels=base_channels,
            mean=mean,
            std=std,
        )
    except InputValueError as exc:
        raise InputValueError(f"the checkpoint's architecture does not fit PConvUNet: {exc}") from None
    entries: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(encoder):
        entries.update(_conv_entries(layer, f"encoder.{i}", has_bn=i > 0, has_bias=i == 0))
    for j, layer in enumerate(decoder):
        entries.update(_conv_entries(layer, f"decoder.{j}", has_bn=True, has_bias=False))
    entries.update(_conv_entries(head, "head", has_bn=False, has_bias=True))

    expected = model.state_dict()
    arch = f"PConvUNet(in_channels={in_channels}, layer_size={layer_size}, base_channels={base_channels})"
    names = {f"encoder.{i}": layer.name for i, layer in enumerate(encoder)}
    names.update({f"decoder.{j}": layer.name for j, layer in enumerate(decoder)})
    names["head"] = head.name
    for key, target in expected.items():
        if key not in entries:  # pragma: no cover - _conv_entries writes every key of a block
            raise InputValueError(f"no source weight for {key}")
        if tuple(entries[key].shape) != tuple(target.shape):
            block = key.split(".conv")[0].split(".bn")[0] if not key.startswith("head") else "head"
            raise InputValueError(
                f"layer {names.get(block, block)} has {key.rsplit('.', 1)[-1]} of shape {tuple(entries[key].shape)}, "
                f"but {arch} needs {tuple(target.shape)} for {key}"
            )
    model = model.to(dtype)
    model.load_state_dict({k: v.to(expected[k].dtype if not v.is_floating_point() else dtype) for k, v in entries.items()})
    return model.eval()


@dataclass(frozen=True)
class KeyLayout:
    """How a PyTorch source names its U-Net's layers: the table that :func:`convert_unet` reads it with.

    Attributes:
        source: the source's network, for messages, e.g. ``"a naoto0804 PConvUNet"``.
        prefixes: key prefixes that select the network, removed in turn (see
            :func:`~pconv_kit.convert._torchfile.strip_prefix`), e.g. ``("module.", "generator.")``.
        encoder: encoder layer names with ``{}`` for the 1-based index, e.g. ``"enc_{}"``.
        decoder: decoder layer names likewise; decoder 1 is the head.
        convs: ``(conv, mask)`` key stems tried in order under ``<layer>.``: the module holding the convolution's
            ``weight`` and ``bias``, and the key of its all-ones mask weights. A mask key ending in ``.weight``
            may come with a ``.bias``, which must be zero.
        mask_error: the message for a mask weight that is not all ones of the weights' shape, with the fields
            ``{key}``, ``{found}`` (its shape) and ``{shape}`` (the weights').
        per_window: whether the source divides by ``sum(M)`` alone; pconv-kit's formula scales by
            ``sum(1) / sum(M)``, so the weights are divided by ``C_in * kH * kW``.
    """

    source: str
    prefixes: tuple[str, ...]
    encoder: str
    decoder: str
    convs: tuple[tuple[str, str], ...]
    mask_error: str
    per_window: bool = False


def _batch_norm(state: Mapping[str, torch.Tensor], name: str) -> dict[str, torch.Tensor] | None:
    if f"{name}.bn.weight" not in state:
        return None
    return {k: state[f"{name}.bn.{k}"] for k in (*_BN_KEYS, "num_batches_tracked") if f"{name}.bn.{k}" in state}


def read_layer(state: Mapping[str, torch.Tensor], name: str, layout: KeyLayout) -> SourceLayer:
    """The partial convolution ``name`` (and its BatchNorm) of a state dict laid out as ``layout`` says.

    Raises:
        InputValueError: the layer is missing, its weight is not 4-D, or its mask weights are not all ones.
    """
    for conv, mask in layout.convs:
        key = f"{name}.{conv}.weight"
        if key in state:
            break
    else:
        raise InputValueError(f"layer {name} is missing: no {name}.{layout.convs[0][0]}.weight in the checkpoint")
    weight = state[key].detach().to(torch.float64)
    if weight.dim() != 4:
        raise InputValueError(f"{key} must be a 4-D convolution weight; got shape {tuple(weight.shape)}")
    mask_w = state.get(f"{name}.{mask}")
    if mask_w is not None and (tuple(mask_w.shape) != tuple(weight.shape) or not bool((mask_w == 1).all())):
        raise InputValueError(
            layout.mask_error.format(key=f"{name}.{mask}", found=tuple(mask_w.shape), shape=tuple(weight.shape))
        )
    mask_bias = state.get(f"{name}.{mask.removesuffix('.weight')}.bias") if mask.endswith(".weight") else None
    if mask_bias is not None and bool((mask_bias != 0).any()):
        raise InputValueError(f"{name}.{mask.removesuffix('.weight')}.bias should be zero")
    if layout.per_window:
        weight = weight / float(weight.shape[1] * weight.shape[2] * weight.shape[3])
    bias = state.get(f"{name}.{conv}.bias")
    return SourceLayer(
        name=name,
        weight=weight,
        bias=None if bias is None else bias.detach().to(torch.float64),
        bn=_batch_norm(state, name),
    )


def _select(state: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]) -> tuple[dict[str, torch.Tensor], str]:
    """:func:`strip_prefix` of ``state``, and the prefix that was removed from the keys it kept."""
    removed = ""
    for prefix in prefixes:
        if any(k.startswith(removed + prefix) for k in state):
            removed += prefix
    return strip_prefix(state, prefixes), removed


def convert_unet(
    state: Mapping[str, torch.Tensor],
    layout: KeyLayout,
    *,
    layer_size: int | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    default_normalisation: Callable[[int], tuple[Sequence[float], Sequence[float]]],
    prepare: Callable[[list[SourceLayer], SourceLayer], None] | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[PConvUNet, list[str], list[str]]:
    """The shared skeleton of the PyTorch converters: read the layers ``layout`` names, then :func:`assemble`.

    Args:
        state: the source state dict.
        layout: the source's key table.
        layer_size: number of encoder layers; default: the highest index found.
        mean, std: input normalisation (both or neither).
        default_normalisation: ``in_channels -> (mean, std)`` when neither is given; may raise
            :class:`~pconv_kit.errors.InputValueError`.
        prepare: called with the encoder layers and the head before assembling (e.g. a channel reorder).
        dtype: dtype of the returned model.

    Returns:
        ``(model, differences, ignored_keys)``: the model in eval mode, what differs from the source (empty:
        these layouts convert exactly), and the keys of ``state`` that were not used.

    Raises:
        InputValueError: keys or shapes do not fit.
    """
    selected, removed = _select(state, layout.prefixes)
    pattern = re.compile("^" + re.escape(layout.encoder).replace(r"\{\}", r"(\d+)") + r"\.")
    found = sorted({int(m.group(1)) for k in selected if (m := pattern.match(k))})
    if not found:
        raise InputValueError(f"no {layout.encoder.format('N')} layers found; not {layout.source} state dict")
    n = layer_size if layer_size is not None else found[-1]
    if not isinstance(n, int) or n < 1 or n > found[-1]:
        raise InputValueError(f"layer_size must be between 1 and {found[-1]} for this checkpoint; got {layer_size!r}")
    encoder = [read_layer(selected, layout.encoder.format(i), layout) for i in range(1, n + 1)]
    decoder = [read_layer(selected, layout.decoder.format(i), layout) for i in range(n, 1, -1)]
    head = read_layer(selected, layout.decoder.format(1), layout)
    if (mean is None) != (std is None):
        raise InputValueError("give both mean and std, or neither")
    if mean is None:
        mean, std = default_normalisation(int(encoder[0].weight.shape[1]))
    if prepare is not None:
        prepare(encoder, head)
    model = assemble(encoder, decoder, head, mean=mean, std=std, dtype=dtype)
    used = tuple(f"{layer.name}." for layer in (*encoder, *decoder, head))
    ignored = sorted(k for k in state if not (k.startswith(removed) and k[len(removed) :].startswith(used)))
    return model, [], ignored
