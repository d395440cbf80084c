r"""The loss of Liu et al. 2018 (arXiv:1804.07723, section 3.3): functional core and :class:`InpaintingLoss`.

Notation: ``M`` is the mask (1 = valid, 0 = hole), ``I_out`` the network output, ``I_gt`` the ground truth,
``I_comp = M * I_gt + (1 - M) * I_out`` the composite, ``Psi_p`` the feature map of layer ``p`` (VGG16
pool1..pool3) with ``C_p x H_p x W_p`` elements, ``N = C * H * W`` the number of elements of an image.
Every term is computed per image and averaged over the batch::

    L_valid      = |M * (I_out - I_gt)|_1 / N
    L_hole       = |(1 - M) * (I_out - I_gt)|_1 / N
    L_perceptual = sum_p |Psi_p(I_out) - Psi_p(I_gt)|_1 / N_p + sum_p |Psi_p(I_comp) - Psi_p(I_gt)|_1 / N_p
    L_style_out  = sum_p |G_p(I_out) - G_p(I_gt)|_1 / C_p^2,   G_p(I) = Psi_p(I) Psi_p(I)^T / (C_p H_p W_p)
    L_style_comp = sum_p |G_p(I_comp) - G_p(I_gt)|_1 / C_p^2
    L_tv         = sum over horizontal and vertical neighbour pairs with both pixels in P of |I_comp difference|_1 / N
    L_total      = 1 L_valid + 6 L_hole + 0.05 L_perceptual + 120 (L_style_out + L_style_comp) + 0.1 L_tv

where ``P`` is the hole region dilated by one pixel (3x3 square structuring element, with
:func:`kornia.morphology.dilation`).

Two optional terms are not in the paper (weight 0 by default, so the paper's total is unchanged)::

    L_ssim       = 1 - mean SSIM(I_comp, I_gt)   (kornia.metrics.ssim, Gaussian window 11, sigma 1.5)
    L_hole_mse   = |(1 - M) * (I_out - I_gt)|_2^2 / N

``L_ssim`` is the structural-similarity score that ``pconv-kit eval`` reports, made a loss: it rewards fills whose
local mean, contrast and correlation with the ground truth match, which L1 weighs only indirectly.
``L_hole_mse`` is the squared error in the holes: where L1 pulls an uncertain fill towards the median of what the
hole may hide, it pulls towards the mean, the fill with the highest PSNR.
"""

from __future__ import annotations


import torch
from torch import nn

from pconv_kit.errors import InputValueError, ShapeError
from pconv_kit.losses.terms import (
    SSIM_WINDOW,
    _check_triplet,
    composite,
    dilated_hole_region,
    gram_matrix,
    hole_loss,
    hole_mse_loss,
    perceptual_loss,
    ssim_loss,
    style_loss,
    total_variation_loss,
    valid_loss,
)
from pconv_kit.losses.weights import DEFAULT_WEIGHTS

__all__ = [
    "DEFAULT_WEIGHTS",
    "SSIM_WINDOW",
    "InpaintingLoss",
    "composite",
    "dilated_hole_region",
    "gram_matrix",
    "hole_loss",
    "hole_mse_loss",
    "inpainting_loss",
    "perceptual_loss",
    "ssim_loss",
    "style_loss",
    "total_variation_loss",
    "valid_loss",
]

def _check_weights(weights: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, value in weights.items():
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise InputValueError(f"loss weight {name!r} must be a number; got {value!r}") from exc
        if not v >= 0 or v == float("inf"):
            raise InputValueError(f"loss weight {name!r} must be finite and >= 0; got {value!r}")
        out[name] = v
    return out


def _extract(feature_extractor: nn.Module, image: torch.Tensor) -> list[torch.Tensor]:
    feats = feature_extractor(image)
    if isinstance(feats, torch.Tensor) or not isinstance(feats, (list, tuple)) or not feats:
        raise InputValueError(
            f"feature_extractor must return a non-empty list of (B, C, H, W) tensors; got {type(feats).__name__}"
        )
    return list(feats)


def _features(
    feature_extractor: nn.Module, output: torch.Tensor, comp: torch.Tensor, target: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Feature maps of ``I_out``, ``I_comp`` and ``I_gt``, batched as :func:`inpainting_loss` describes."""
    b = output.shape[0]
    if torch.is_grad_enabled() and not target.requires_grad:
        with torch.no_grad():
            feats_gt = _extract(feature_extractor, target)
        feats = _extract(feature_extractor, torch.cat([output, comp], dim=0))
    else:
        feats = _extract(feature_extractor, torch.cat([output, comp, target], dim=0))
        feats_gt = [f[2 * b :] for f in feats]
        feats = [f[: 2 * b] for f in feats]
    for i, (f, g) in enumerate(zip(feats, feats_gt)):
        if f.dim() != 4 or f.shape[0] != 2 * b or f.shape[1:] != g.shape[1:]:
            raise ShapeError(f"feature map {i} has shape {tuple(f.shape)}; expected (N, C, H, W) per image")
    return [f[:b] for f in feats], [f[b:] for f in feats], feats_gt


def inpainting_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    feature_extractor: nn.Module | None = None,
    *,
    valid: float = DEFAULT_WEIGHTS["valid"],
    hole: float = DEFAULT_WEIGHTS["hole"],
    perceptual: float = DEFAULT_WEIGHTS["perceptual"],
    style: float = DEFAULT_WEIGHTS["style"],
    tv: float = DEFAULT_WEIGHTS["tv"],
    ssim: float = DEFAULT_WEIGHTS["ssim"],
    hole_mse: float = DEFAULT_WEIGHTS["hole_mse"],
) -> dict[str, torch.Tensor]:
    """All terms of the paper's loss and their weighted sum.

    With a ``feature_extractor`` (e.g. :class:`~pconv_kit.losses.VGG16Features`), the features of
    ``I_out`` and ``I_comp`` are computed in one batched call; those of ``I_gt`` in a second call without
    autograd bookkeeping when ``target`` needs no gradient (the usual case), else all three in one call.

    Args:
        output: ``(B, C, H, W)`` network output ``I_out`` (raw, not clamped).
        target: ``(B, C, H, W)`` ground truth ``I_gt`` in ``[0, 1]``.
        mask: ``(B, 1, H, W)`` or ``(B, C, H, W)``, 1 = valid, 0 = hole.
        feature_extractor: module mapping ``(N, C, H, W)`` images to a list of feature maps, or ``None``
            for pixel-only training (no ``perceptual``/``style_*`` terms).
        valid, hole, perceptual, style, tv: term weights (``style`` applies to ``style_out`` and
            ``style_comp``); the defaults are the paper's, :data:`~pconv_kit.losses.weights.DEFAULT_WEIGHTS`.
        ssim: weight of :func:`ssim_loss` of the composite (not in the paper; 0 leaves it out).
        hole_mse: weight of :func:`hole_mse_loss` (not in the paper; 0 leaves it out).

    Each term is the public function of that name (:func:`valid_loss`, :func:`hole_loss`,
    :func:`perceptual_loss`, :func:`style_loss` for ``style_out`` and ``style_comp``,
    :func:`total_variation_loss` and :func:`ssim_loss` of :func:`composite`, :func:`hole_mse_loss`), so ``total``
    is their weighted sum.

    Returns:
        Dict of scalar tensors: ``valid``, ``hole``, ``tv``; with a feature extractor ``perceptual``,
        ``style_out``, ``style_comp``; with ``ssim > 0`` ``ssim``; with ``hole_mse > 0`` ``hole_mse`` (all
        unweighted); and ``total`` (the weighted sum).

    Raises:
        ShapeError / InputValueError: mismatched shapes, devices or dtypes, mask values outside ``[0, 1]``,
            negative weights.

    Example:
        >>> gt, m = torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16)
        >>> m[:, :, 4:8, 4:8] = 0
        >>> terms = inpainting_loss(gt, gt, m)  # TV still measures I_comp = I_gt around the hole
        >>> sorted(terms), float(terms["hole"]), bool(terms["tv"] > 0)
        (['hole', 'total', 'tv', 'valid'], 0.0, True)
    """
    _check_triplet(output, target, mask)
    w = _check_weights(
        {"valid": valid, "hole": hole, "perceptual": perceptual, "style": style, "tv": tv, "ssim": ssim,
         "hole_mse": hole_mse}
    )
    comp = composite(output, target, mask)
    terms: dict[str, torch.Tensor] = {
        "valid": valid_loss(output, target, mask),
        "hole": hole_loss(output, target, mask),
    }
    if feature_extractor is not None:
        feats_out, feats_comp, feats_gt = _features(feature_extractor, output, comp, target)
        terms["perceptual"] = perceptual_loss(feats_out, feats_comp, feats_gt)
        terms["style_out"] = style_loss(feats_out, feats_gt)
        terms["style_comp"] = style_loss(feats_comp, feats_gt)
    terms["tv"] = total_variation_loss(comp, mask)
    total = w["valid"] * terms["valid"] + w["hole"] * terms["hole"] + w["tv"] * terms["tv"]
    if w["ssim"] > 0:
        terms["ssim"] = ssim_loss(comp, target)
        total = total + w["ssim"] * terms["ssim"]
    if w["hole_mse"] > 0:
        terms["hole_mse"] = hole_mse_loss(output, target, mask)
        total = total + w["hole_mse"] * terms["hole_mse"]
    if feature_extractor is not None:
        total = (
            total
            + w["perceptual"] * terms["perceptual"]
            + w["style"] * (terms["style_out"] + terms["style_comp"])
        )
    terms["total"] = total
    return terms


class InpaintingLoss(nn.Module):
    """The paper's loss as a module (see :func:`inpainting_loss`).

    Args:
        feature_extractor: e.g. ``VGG16Features()``; ``None`` for pixel-only training (valid, hole and TV
            terms only). It becomes a submodule, so ``loss.to(device)`` moves it.
        valid: weight of ``L_valid`` (paper: 1).
        hole: weight of ``L_hole`` (paper: 6).
        perceptual: weight of ``L_perceptual`` (paper: 0.05).
        style: weight of ``L_style_out`` and of ``L_style_comp`` (paper: 120).
        tv: weight of ``L_tv`` (paper: 0.1).
        ssim: weight of ``L_ssim`` of the composite (not in the paper: 0, left out).
        hole_mse: weight of ``L_hole_mse``, the squared error in the holes (not in the paper: 0, left out).

    The defaults come from :data:`~pconv_kit.losses.weights.DEFAULT_WEIGHTS`.

    Shape:
        - output, target: ``(B, C, H, W)``; mask: ``(B, 1, H, W)`` or ``(B, C, H, W)`` (1 = valid).
        - Returns: dict of scalar tensors, keys ``valid``, ``hole``, ``tv`` (+ ``perceptual``,
          ``style_out``, ``style_comp`` with a feature extractor, + ``ssim`` and ``hole_mse`` when their
          weights are > 0) and ``total``.

    Example:
        >>> from pconv_kit.losses import VGG16Features
        >>> loss = InpaintingLoss(VGG16Features(pretrained=False))
        >>> out = torch.rand(1, 3, 32, 32, requires_grad=True)
        >>> mask = torch.ones(1, 1, 32, 32)
        >>> mask[..., 8:20, 8:20] = 0
        >>> terms = loss(out, torch.rand(1, 3, 32, 32), mask)
        >>> terms["total"].backward()
        >>> list(terms)
        ['valid', 'hole', 'perceptual', 'style_out', 'style_comp', 'tv', 'total']
    """

    def __init__(
        self,
        feature_extractor: nn.Module | None = None,
        valid: float = DEFAULT_WEIGHTS["valid"],
        hole: float = DEFAULT_WEIGHTS["hole"],
        perceptual: float = DEFAULT_WEIGHTS["perceptual"],
        style: float = DEFAULT_WEIGHTS["style"],
        tv: float = DEFAULT_WEIGHTS["tv"],
        ssim: float = DEFAULT_WEIGHTS["ssim"],
        hole_mse: float = DEFAULT_WEIGHTS["hole_mse"],
    ) -> None:
        super().__init__()
        if feature_extractor is not None and not isinstance(feature_extractor, nn.Module):
            raise InputValueError(
                f"feature_extractor must be an nn.Module or None; got {type(feature_extractor).__name__}"
            )
        self.feature_extractor = feature_extractor
        self.weights = _check_weights(
            {"valid": valid, "hole": hole, "perceptual": perceptual, "style": style, "tv": tv, "ssim": ssim,
             "hole_mse": hole_mse}
        )

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in self.weights.items())

    def forward(self, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Compute every term and ``total``; see :func:`inpainting_loss`."""
        return inpainting_loss(output, target, mask, self.feature_extractor, **self.weights)
