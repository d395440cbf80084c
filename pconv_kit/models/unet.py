"""The paper's partial-convolution U-Net (Liu et al. 2018, section 3.4 and Table 3 of the supplement).

Encoder: ``layer_size`` stride-2 partial convolutions with kernels 7, 5, 5, 3, 3, ... and channels
64, 128, 256, 512, 512, ... (scaled by ``base_channels / 64``), ReLU, BatchNorm on all but the first layer.
Decoder: nearest-neighbour 2x upsampling of features **and masks**, concatenation with the encoder's skip
features **and masks**, 3x3 partial convolution, BatchNorm and LeakyReLU(0.2). The last layer (the head)
sees the input image and its mask and has neither BatchNorm nor activation.

Optional refinement (``refine_channels > 0``, not in the paper): three plain 3x3 convolutions at full
resolution read the composite (known pixels, and the head's output in the holes) with its hole mask and add a
correction to the holes. The paper's network reaches full resolution only through its head, one linear
partial convolution, so pixels along a hole's border (and whole holes of a few pixels, such as scratches) are
filled by a fixed linear filter; the refinement gives them a small non-linear network that sees their
neighbourhood. Its last convolution starts at zero, so adding it to trained weights changes nothing until it
is trained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pconv_kit.core.check import check_image_mask
from pconv_kit.core.tracing import capturing_graph
from pconv_kit.errors import InputValueError, ShapeError
from pconv_kit.layers.partial_conv import PartialConv2d

__all__ = ["PConvUNet", "PConvBlock"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _count(mask: torch.Tensor, channels: int) -> torch.Tensor:
    """Number of valid channels per pixel for ``channels`` feature channels under ``mask`` (B, 1|C, H, W)."""
    if mask.shape[1] == 1:
        return mask * channels
    return mask.sum(dim=1, keepdim=True)


class PConvBlock(nn.Module):
    """Partial convolution, optional BatchNorm, optional activation.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size; padding is ``kernel_size // 2``.
        stride: 2 in the encoder, 1 in the decoder.
        batch_norm: add ``BatchNorm2d`` after the convolution (the convolution then has no bias).
        activation: ``"relu"``, ``"leaky"`` (slope 0.2) or ``None``.

    Example:
        >>> block = PConvBlock(3, 8, 7, stride=2, batch_norm=False, activation="relu")
        >>> x, m = torch.rand(1, 3, 16, 16), torch.ones(1, 1, 16, 16)
        >>> h, new_m = block.forward_count(x * m, m, 1)
        >>> h.shape, new_m.shape
        (torch.Size([1, 8, 8, 8]), torch.Size([1, 1, 8, 8]))
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        batch_norm: bool = True,
        activation: str | None = "relu",
    ) -> None:
        super().__init__()
        self.conv = PartialConv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=not batch_norm
        )
        self.bn = nn.BatchNorm2d(out_channels) if batch_norm else None
        if activation == "relu":
            self.act: nn.Module | None = nn.ReLU(inplace=True)
        elif activation == "leaky":
            self.act = nn.LeakyReLU(0.2, inplace=True)
        elif activation is None:
            self.act = None
        else:
            raise InputValueError(f"activation must be 'relu', 'leaky' or None; got {activation!r}")
        nonlinearity = "leaky_relu" if activation == "leaky" else "relu"
        nn.init.kaiming_normal_(self.conv.weight, a=0.2 if activation == "leaky" else 0.0, nonlinearity=nonlinearity)
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward_count(
        self, masked_input: torch.Tensor, count: torch.Tensor, mask_channels: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Apply the block to ``X * M`` given the mask's channel count (see ``partial_conv2d_from_count``)."""
        h, new_mask = self.conv.forward_count(masked_input, count, mask_channels)
        if self.bn is not None:
            h = self.bn(h)
        if self.act is not None:
            h = self.act(h)
        return h, new_mask

    def forward_masked(
        self, masked_input: torch.Tensor, count: torch.Tensor, mask_channels: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`forward_count`, but the features come back multiplied by the new mask.

        That product is what the next partial convolution (and a U-Net skip connection) consumes. It is
        computed without an extra tensor: with BatchNorm the new mask multiplies the BatchNorm output in
        place *before* the activation (ReLU and LeakyReLU satisfy ``act(z) * m == act(z * m)`` for
        ``m >= 0``); without BatchNorm nothing is needed, since the partial convolution is already 0 wherever
        the new mask is 0 and ``act(0) == 0``.

        Returns:
            ``(act(bn(pconv(X * M))) * new_mask, new_mask)``.
        """
        h, new_mask = self.conv.forward_count(masked_input, count, mask_channels)
        if self.bn is not None:
            h = self.bn(h).mul_(new_mask)  # BatchNorm's backward needs its input, not its output
        if self.act is not None:
            h = self.act(h)
        return h, new_mask

    def forward(self, input: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(features, new_mask)`` for ``input`` (B, C, H, W) with ``mask`` (B, 1|C, H, W)."""
        return self.forward_count(input * mask, _count(mask, input.shape[1]), input.shape[1])


class PConvUNet(nn.Module):
    r"""Partial-convolution U-Net for image inpainting (Liu et al. 2018).

    ``layer_size=8`` and ``base_channels=64`` give the paper's network for 512x512 images (about 32.8 M
    parameters). Fewer layers or a smaller ``base_channels`` give small models that train on a CPU.

    The network takes images in ``[0, 1]``; it normalises them internally with ``mean``/``std`` (ImageNet
    statistics by default for 3 channels, so holes, which become 0 after masking, read as the mean colour)
    and maps its output back to the image range. The raw output is not clamped (the losses see it as is);
    :meth:`predict` returns the clamped composite.

    Args:
        in_channels: image channels.
        out_channels: output channels (the head also sees the ``in_channels`` input image and mask).
        layer_size: number of encoder (and decoder) layers; inputs need sides divisible by
            ``2 ** layer_size``.
        base_channels: width of the first layer; channels are ``base_channels * (1, 2, 4, 8, 8, ...)``.
        freeze_encoder_bn: fine-tuning mode of the paper: encoder BatchNorm layers use their running
            statistics (eval mode) and their affine parameters get no gradient.
        refine_channels: width of the optional full-resolution refinement (see the module docs); 0 (the
            default, the paper's network) leaves it out. Needs ``out_channels == in_channels``.
        mean, std: per-channel normalisation of the input (and de-normalisation of the output). ``None``
            picks ImageNet statistics for 3 channels and 0.5/0.5 otherwise. Requires
            ``out_channels == in_channels`` unless both are given as identity (0s and 1s).

    Shape:
        - image: :math:`(B, C_{in}, H, W)`, mask: :math:`(B, 1, H, W)` or :math:`(B, C_{in}, H, W)`,
          1 = valid, 0 = hole. :math:`H, W` multiples of ``2 ** layer_size``.
        - output: :math:`(B, C_{out}, H, W)`, output mask: :math:`(B, 1, H, W)`.

    Example:
        >>> model = PConvUNet(layer_size=4, base_channels=8)
        >>> image, mask = torch.rand(2, 3, 64, 64), torch.ones(2, 1, 64, 64)
        >>> mask[:, :, 16:40, 20:44] = 0
        >>> output, output_mask = model(image, mask)
        >>> output.shape, bool(output_mask.all())
        (torch.Size([2, 3, 64, 64]), True)
        >>> filled = model.predict(image, mask)  # composite, clamped to [0, 1]
        >>> bool(torch.equal(filled * mask, image * mask))
        True
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        layer_size: int = 8,
        base_channels: int = 64,
        freeze_encoder_bn: bool = False,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        refine_channels: int = 0,
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("layer_size", layer_size, 1),
            ("base_channels", base_channels, 1),
            ("refine_channels", refine_channels, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise InputValueError(f"{name} must be an integer >= {low}; got {value!r}")
        mean, std = self._normalisation(in_channels, out_channels, mean, std)
        if refine_channels and out_channels != in_channels:
            raise InputValueError(
                f"refine_channels needs out_channels == in_channels (it refines the composite); got "
                f"{out_channels} and {in_channels}"
            )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.layer_size, self.base_channels = layer_size, base_channels
        self.refine_channels = refine_channels

        channels = [in_channels] + [base_channels * min(2**i, 8) for i in range(layer_size)]
        kernels = [7, 5, 5] + [3] * max(0, layer_size - 3)
        self.encoder = nn.ModuleList(
            PConvBlock(channels[i], channels[i + 1], kernels[i], stride=2, batch_norm=i > 0, activation="relu")
            for i in range(layer_size)
        )
        # decoder[j] works at depth k = layer_size - j: up(level k) ++ skip(level k-1) -> channels[k-1]
        self.decoder = nn.ModuleList(
            PConvBlock(channels[k] + channels[k - 1], channels[k - 1], 3, stride=1, batch_norm=True, activation="leaky")
            for k in range(layer_size, 1, -1)
        )
        self.head = PartialConv2d(channels[1] + in_channels, out_channels, 3, padding=1, bias=True)
        nn.init.kaiming_normal_(self.head.weight, nonlinearity="linear")
        nn.init.zeros_(self.head.bias)  # type: ignore[arg-type]
        self.refine: nn.Sequential | None = None
        if refine_channels:
            c = refine_channels
            self.refine = nn.Sequential(
                nn.Conv2d(in_channels + 1, c, 3, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(c, c, 3, padding=1),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(c, out_channels, 3, padding=1),
            )
            nn.init.zeros_(self.refine[-1].weight)  # starts as the identity: trained weights keep their output
            nn.init.zeros_(self.refine[-1].bias)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self._mean_list, self._std_list = list(mean), list(std)
        self._freeze_encoder_bn = False
        self.freeze_encoder_bn = freeze_encoder_bn

    @staticmethod
    def _normalisation(
        in_channels: int, out_channels: int, mean: Sequence[float] | None, std: Sequence[float] | None
    ) -> tuple[list[float], list[float]]:
        default_mean, default_std = (IMAGENET_MEAN, IMAGENET_STD) if in_channels == 3 else ((0.5,) * in_channels, (0.5,) * in_channels)
        mean_l = [float(v) for v in (default_mean if mean is None else mean)]
        std_l = [float(v) for v in (default_std if std is None else std)]
        if len(mean_l) != in_channels or len(std_l) != in_channels:
            raise InputValueError(
                f"mean and std need {in_channels} values (one per input channel); got {len(mean_l)} and {len(std_l)}"
            )
        if any(not math.isfinite(s) or s <= 0 for s in std_l):
            raise InputValueError(f"std values must be positive; got {std_l}")
        identity = all(m == 0 for m in mean_l) and all(s == 1 for s in std_l)
        if out_channels != in_channels and not identity:
            raise InputValueError(
                f"out_channels ({out_channels}) != in_channels ({in_channels}): the output cannot be "
                "de-normalised with the input statistics; pass mean=[0]*C and std=[1]*C"
            )
        return mean_l, std_l

    # ------------------------------------------------------------------ configuration
    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable constructor arguments that rebuild this architecture (see :meth:`from_config`)."""
        config: dict[str, Any] = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "layer_size": self.layer_size,
            "base_channels": self.base_channels,
            "mean": list(self._mean_list),
            "std": list(self._std_list),
        }
        if self.refine_channels:  # left out otherwise, so files of the paper's network read as before
            config["refine_channels"] = self.refine_channels
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PConvUNet:
        """Build a model from :attr:`config` (unknown keys are an error).

        Example:
            >>> model = PConvUNet(layer_size=3, base_channels=4)
            >>> PConvUNet.from_config(model.config).config == model.config
            True
        """
        allowed = {
            "in_channels", "out_channels", "layer_size", "base_channels", "mean", "std", "freeze_encoder_bn",
            "refine_channels",
        }
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise InputValueError(f"unknown PConvUNet config key(s) {unknown}; expected a subset of {sorted(allowed)}")
        return cls(**config)

    @property
    def required_multiple(self) -> int:
        """Input height and width must be multiples of this number (``2 ** layer_size``)."""
        return 2**self.layer_size

    # ------------------------------------------------------------------ fine-tuning mode
    @property
    def freeze_encoder_bn(self) -> bool:
        """Whether encoder BatchNorm layers are frozen (the paper's fine-tuning stage)."""
        return self._freeze_encoder_bn

    @freeze_encoder_bn.setter
    def freeze_encoder_bn(self, value: bool) -> None:
        self._freeze_encoder_bn = bool(value)
        for block in self.encoder:
            if block.bn is not None:
                block.bn.requires_grad_(not self._freeze_encoder_bn)
                block.bn.train(self.training and not self._freeze_encoder_bn)

    def train(self, mode: bool = True) -> PConvUNet:
        """Set training mode; encoder BatchNorm stays in eval mode while :attr:`freeze_encoder_bn` is set."""
        super().train(mode)
        if self._freeze_encoder_bn:
            for block in self.encoder:
                if block.bn is not None:
                    block.bn.eval()
        return self

    # ------------------------------------------------------------------ forward
    def check_input_size(self, height: int, width: int) -> None:
        """Raise :class:`~pconv_kit.errors.ShapeError` unless both sides are multiples of :attr:`required_multiple`."""
        m = self.required_multiple
        if height % m or width % m or height == 0 or width == 0:
            padded = (max(m, -(-height // m) * m), max(m, -(-width // m) * m))
            raise ShapeError(
                f"PConvUNet(layer_size={self.layer_size}) needs height and width divisible by {m}; got "
                f"{height}x{width}. Pad the image and mask to {padded[0]}x{padded[1]} (e.g. reflect padding, "
                "then crop the output back), or use pconv_kit.inpaint, which pads for you."
            )

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inpaint ``image`` where ``mask`` is 0.

        Args:
            image: :math:`(B, C_{in}, H, W)` in ``[0, 1]``.
            mask: :math:`(B, 1, H, W)` or :math:`(B, C_{in}, H, W)`, 1 = valid, 0 = hole.

        Returns:
            ``(output, output_mask)``: the raw network output :math:`(B, C_{out}, H, W)` (not clamped, not
            composited) and the final mask :math:`(B, 1, H, W)` (all ones once the receptive field covers
            every hole).
        """
        if capturing_graph():
            # Graph capture: shapes only. Reading the mask's values (range check) would be data-dependent
            # and break the graph (torch.compile) or fail (torch.export, ONNX export).
            matching = image.dim() == 4 and mask.dim() == 4 and mask.shape[0] == image.shape[0]
            if not matching or mask.shape[2:] != image.shape[2:]:
                raise ShapeError(
                    f"image (B, C, H, W) and mask (B, 1|C, H, W) must match; got {tuple(image.shape)} and "
                    f"{tuple(mask.shape)}"
                )
        else:
            check_image_mask(image, mask)
        if image.shape[1] != self.in_channels:
            raise ShapeError(
                f"image must have {self.in_channels} channels for this model; got shape {tuple(image.shape)}"
            )
        self.check_input_size(image.shape[-2], image.shape[-1])
        mask = mask.to(image.dtype)
        mean, std = self.mean.to(image.dtype), self.std.to(image.dtype)
        x = (image - mean) / std
        x = x.masked_fill(mask == 0, 0.0)  # hole values are ignored, NaN and infinity included (NaN * 0 is NaN)

        # Per level: masked features X * M (the input of the next encoder layer and the decoder's skip),
        # the mask's per-pixel channel count and the number of channels it covers. Only the deepest mask is
        # needed afterwards (the decoder upsamples it); the skips carry their masks in their counts.
        masked = [x * mask]
        counts = [_count(mask, self.in_channels)]
        widths = [self.in_channels]
        for block in self.encoder:  # layer_size >= 1, so m is always bound
            h, m = block.forward_masked(masked[-1], counts[-1], widths[-1])
            masked.append(h)
            counts.append(m * h.shape[1])
            widths.append(h.shape[1])

        # Decoder: upsample (features * mask, mask) from level k, concatenate with the skip of level k-1.
        # Each level's skip and the previous concatenation are released as soon as they are consumed, so
        # inference holds no more large tensors at a time than a plain-convolution U-Net.
        up_masked, up_mask = masked.pop(), m
        layers = list(self.decoder) + [self.head]
        for j, layer in enumerate(layers):
            k = self.layer_size - j
            up_channels = up_masked.shape[1]
            up_mask = F.interpolate(up_mask, scale_factor=2.0, mode="nearest")
            count = up_mask * up_channels + counts[k - 1]
            cat = torch.cat([F.interpolate(up_masked, scale_factor=2.0, mode="nearest"), masked.pop()], dim=1)
            del up_masked
            if layer is self.head:
                h, m = layer.forward_count(cat, count, up_channels + widths[k - 1])
            else:
                up_masked, up_mask = layer.forward_masked(cat, count, up_channels + widths[k - 1])
            del cat
        if self.refine is not None:
            hole = 1 - (mask if mask.shape[1] == 1 else mask.amin(dim=1, keepdim=True))
            composite = x * mask + h * (1 - mask)
            h = h + self.refine(torch.cat([composite, hole], dim=1)) * hole
        output = h * self.std.to(h.dtype) + self.mean.to(h.dtype) if self.out_channels == self.in_channels else h
        return output, m

    @torch.inference_mode()
    def predict(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Fill the holes of ``image`` in eval mode and return the composite, clamped to ``[0, 1]``.

        Known pixels are copied from ``image``; only holes come from the network. The module's training
        flag is restored afterwards. On the CPU the network runs on a channels_last copy of the image
        (oneDNN's convolutions are faster in that layout, results equal within float tolerance); the result
        has the usual contiguous layout.

        Args:
            image: :math:`(B, C, H, W)` in ``[0, 1]``, ``C == out_channels == in_channels``.
            mask: :math:`(B, 1, H, W)` or :math:`(B, C, H, W)`, 1 = valid, 0 = hole.

        Returns:
            :math:`(B, C, H, W)` composite ``mask * image + (1 - mask) * output``.
        """
        was_training = self.training
        self.eval()
        net_input = image
        if image.device.type == "cpu" and image.dim() == 4:
            net_input = image.contiguous(memory_format=torch.channels_last)
        try:
            output, _ = self(net_input, mask)
        finally:
            self.train(was_training)
        mask = mask.to(image.dtype)
        known = image.masked_fill(mask == 0, 0.0)  # whatever the holes held (NaN too) does not reach the result
        return (mask * known + (1 - mask) * output).clamp_(0, 1).contiguous()

    def extra_repr(self) -> str:
        refine = f", refine_channels={self.refine_channels}" if self.refine_channels else ""
        return (
            f"layer_size={self.layer_size}, base_channels={self.base_channels}{refine}, "
            f"freeze_encoder_bn={self.freeze_encoder_bn}"
        )
