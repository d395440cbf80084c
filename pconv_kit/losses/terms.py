"""The terms of the inpainting loss, each a public function: pixel terms and VGG feature terms.

:func:`pconv_kit.losses.inpainting.inpainting_loss` (its module documents the formulas) weighs and adds them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from pconv_kit.core.check import check_image_mask, check_shape, check_tensor
from pconv_kit.errors import InputValueError, ShapeError

__all__ = [
    "SSIM_WINDOW",
    "composite",
    "dilated_hole_region",
    "gram_matrix",
    "hole_loss",
    "hole_mse_loss",
    "perceptual_loss",
    "ssim_loss",
    "style_loss",
    "total_variation_loss",
    "valid_loss",
]

SSIM_WINDOW = 11
"""Gaussian window (sigma 1.5) of :func:`ssim_loss`, the same as ``pconv-kit eval``'s SSIM."""


def _check_triplet(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> None:
    check_image_mask(output, mask, "output", "mask")
    check_tensor(target, "target")
    if target.shape != output.shape:
        raise ShapeError(
            f"target must have the same shape as output {tuple(output.shape)}; got {tuple(target.shape)}"
        )
    if target.device != output.device:
        raise InputValueError(f"target is on {target.device} but output is on {output.device}")
    if not target.is_floating_point():
        raise InputValueError(f"target must be a floating point tensor; got dtype {target.dtype}")


def composite(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``I_comp = M * I_gt + (1 - M) * I_out``: the output inside the holes, the ground truth elsewhere.

    Args:
        output: ``(B, C, H, W)`` network output.
        target: ``(B, C, H, W)`` ground truth.
        mask: ``(B, 1, H, W)`` or ``(B, C, H, W)``, 1 = valid, 0 = hole.

    Returns:
        ``(B, C, H, W)`` composite.

    Example:
        >>> m = torch.tensor([[[[1.0, 0.0]]]])
        >>> composite(torch.full((1, 1, 1, 2), 5.0), torch.zeros(1, 1, 1, 2), m)
        tensor([[[[0., 5.]]]])
    """
    _check_triplet(output, target, mask)
    return mask * target + (1 - mask) * output


def valid_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_valid``: L1 error over the valid pixels, divided by ``C*H*W`` and averaged over the batch.

    Args:
        output: ``(B, C, H, W)``.
        target: ``(B, C, H, W)``.
        mask: ``(B, 1|C, H, W)``, 1 = valid, 0 = hole.

    Returns:
        Scalar tensor.

    Example:
        >>> m = torch.tensor([[[[1.0, 0.0]]]])
        >>> valid_loss(torch.tensor([[[[1.0, 1.0]]]]), torch.zeros(1, 1, 1, 2), m)
        tensor(0.5000)
    """
    _check_triplet(output, target, mask)
    return (mask * (output - target)).abs().mean()


def hole_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_hole``: L1 error over the hole pixels, divided by ``C*H*W`` and averaged over the batch.

    Args:
        output: ``(B, C, H, W)``.
        target: ``(B, C, H, W)``.
        mask: ``(B, 1|C, H, W)``, 1 = valid, 0 = hole.

    Returns:
        Scalar tensor.

    Example:
        >>> m = torch.tensor([[[[1.0, 0.0]]]])
        >>> hole_loss(torch.tensor([[[[1.0, 3.0]]]]), torch.zeros(1, 1, 1, 2), m)
        tensor(1.5000)
    """
    _check_triplet(output, target, mask)
    return ((1 - mask) * (output - target)).abs().mean()


def hole_mse_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_hole_mse``: squared error over the hole pixels, divided by ``C*H*W`` and averaged over the batch.

    Not in the paper. Where the L1 of :func:`hole_loss` pulls a fill towards the median of what a hole may hide,
    the squared error pulls it towards the mean, the fill with the highest PSNR.

    Args:
        output: ``(B, C, H, W)``.
        target: ``(B, C, H, W)``.
        mask: ``(B, 1|C, H, W)``, 1 = valid, 0 = hole.

    Returns:
        Scalar tensor.

    Example:
        >>> m = torch.tensor([[[[1.0, 0.0]]]])
        >>> hole_mse_loss(torch.tensor([[[[1.0, 3.0]]]]), torch.zeros(1, 1, 1, 2), m)
        tensor(4.5000)
    """
    _check_triplet(output, target, mask)
    return ((1 - mask) * (output - target)).square().mean()


def dilated_hole_region(mask: torch.Tensor) -> torch.Tensor:
    """The region ``P`` of the TV loss: the holes (``1 - mask``) dilated by one pixel (3x3 square).

    Pixels outside the image are ignored (kornia's geodesic border). A soft mask gives a soft region
    (the 3x3 maximum of ``1 - mask``).

    Args:
        mask: ``(B, C, H, W)`` (``C`` may be 1), 1 = valid, 0 = hole.

    Returns:
        ``(B, C, H, W)`` with 1 on holes and on the pixels next to them (also diagonally), 0 elsewhere.

    Example:
        >>> m = torch.ones(1, 1, 3, 4)
        >>> m[0, 0, 1, 0] = 0
        >>> dilated_hole_region(m)[0, 0]
        tensor([[1., 1., 0., 0.],
                [1., 1., 0., 0.],
                [1., 1., 0., 0.]])
    """
    from kornia.morphology import dilation  # imported here: kornia adds ~0.3 s to `import pconv_kit`

    check_shape(mask, "B C H W", "mask")
    kernel = torch.ones(3, 3, dtype=mask.dtype, device=mask.device)
    return dilation(1 - mask, kernel)


def total_variation_loss(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``L_tv``: L1 differences of horizontal and vertical neighbours that both lie in the region ``P``.

    ``P`` is :func:`dilated_hole_region` of ``mask``. The sum over pairs is divided by ``C*H*W`` and averaged
    over the batch. In the paper the image is ``I_comp``.

    Args:
        image: ``(B, C, H, W)``.
        mask: ``(B, 1|C, H, W)``, 1 = valid, 0 = hole.

    Returns:
        Scalar tensor (0 when there is no hole).

    Example:
        >>> img = torch.tensor([[[[0.0, 1.0, 1.0, 1.0]]]])
        >>> m = torch.tensor([[[[0.0, 1.0, 1.0, 1.0]]]])
        >>> total_variation_loss(img, m)  # one pair (0, 1) inside P, |0 - 1| / 4
        tensor(0.2500)
    """
    check_image_mask(image, mask, "image", "mask")
    image = _upcast(image)  # the sums below can exceed the float16 range
    region = dilated_hole_region(mask).to(image.dtype)
    pairs_x = region[..., :, 1:] * region[..., :, :-1]
    pairs_y = region[..., 1:, :] * region[..., :-1, :]
    tv_x = (pairs_x * (image[..., :, 1:] - image[..., :, :-1]).abs()).sum()
    tv_y = (pairs_y * (image[..., 1:, :] - image[..., :-1, :]).abs()).sum()
    return (tv_x + tv_y) / image.numel()


def ssim_loss(image: torch.Tensor, target: torch.Tensor, window_size: int = SSIM_WINDOW) -> torch.Tensor:
    """``L_ssim = 1 - mean SSIM(image, target)``, per image and averaged over the batch (not in the paper).

    SSIM is :func:`kornia.metrics.ssim` with a Gaussian window (sigma 1.5) and ``max_val=1``, computed in
    at least float32, the score ``pconv-kit eval`` reports. Use it with the composite ``I_comp``: pixels far
    from the holes then score 1 and pass no gradient.

    Args:
        image: ``(B, C, H, W)`` in ``[0, 1]``.
        target: ``(B, C, H, W)`` in ``[0, 1]``.
        window_size: odd window side; ``H`` and ``W`` must exceed ``window_size // 2``.

    Returns:
        Scalar tensor in ``[0, 2]`` (0 for identical images).

    Example:
        >>> x = torch.rand(1, 3, 16, 16)
        >>> float(ssim_loss(x, x)) < 1e-6, float(ssim_loss(x, 1 - x)) > 1
        (True, True)
    """
    import kornia  # imported here: kornia adds ~0.3 s to `import pconv_kit`

    dims = check_shape(image, "B C H W", "image")
    check_tensor(target, "target")
    if target.shape != image.shape:
        raise ShapeError(f"target must have the same shape as image {tuple(image.shape)}; got {tuple(target.shape)}")
    if window_size < 1 or window_size % 2 == 0:
        raise InputValueError(f"window_size must be a positive odd number; got {window_size}")
    if min(dims["H"], dims["W"]) <= window_size // 2:
        raise ShapeError(
            f"ssim_loss with window {window_size} needs H and W larger than {window_size // 2}; "
            f"got {tuple(image.shape)}"
        )
    with _autocast_off(image.device.type):
        score = kornia.metrics.ssim(_upcast(image), _upcast(target), window_size=window_size, max_val=1.0)
    return 1 - score.mean()


def _upcast(x: torch.Tensor) -> torch.Tensor:
    """Half/bfloat16 -> float32; other dtypes unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager[object]:
    try:
        return torch.autocast(device_type=device_type, enabled=False)
    except RuntimeError:  # device type without autocast support
        return contextlib.nullcontext()


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``F F^T / (C*H*W)`` of a feature map, per image.

    Computed in at least float32 (outside autocast) so large feature maps do not overflow in half precision;
    half/bfloat16 inputs therefore give a float32 result.

    Args:
        features: ``(B, C, H, W)``.

    Returns:
        ``(B, C, C)``.

    Example:
        >>> f = torch.ones(1, 2, 2, 2)
        >>> gram_matrix(f)
        tensor([[[0.5000, 0.5000],
                 [0.5000, 0.5000]]])
    """
    dims = check_shape(features, "B C H W", "features")
    b, c, h, w = dims["B"], dims["C"], dims["H"], dims["W"]
    f = _upcast(features.reshape(b, c, h * w))
    with _autocast_off(f.device.type):
        return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def _check_feature_lists(name: str, feats: Sequence[torch.Tensor], ref: Sequence[torch.Tensor]) -> None:
    if len(feats) != len(ref):
        raise InputValueError(f"{name} has {len(feats)} feature maps but the target has {len(ref)}")
    for i, (f, r) in enumerate(zip(feats, ref)):
        check_tensor(f, f"{name}[{i}]")
        if f.shape != r.shape:
            raise ShapeError(f"{name}[{i}] must have shape {tuple(r.shape)} like the target's; got {tuple(f.shape)}")


def perceptual_loss(
    features_out: Sequence[torch.Tensor],
    features_comp: Sequence[torch.Tensor],
    features_gt: Sequence[torch.Tensor],
) -> torch.Tensor:
    """``L_perceptual``: mean L1 distance of each feature map of ``I_out`` and of ``I_comp`` to ``I_gt``'s.

    Each layer's L1 norm is divided by the number of elements ``C_p*H_p*W_p``; the layers and both images
    are summed; the batch is averaged.

    Args:
        features_out: list of ``(B, C_p, H_p, W_p)`` feature maps of the output.
        features_comp: same for the composite.
        features_gt: same for the ground truth.

    Returns:
        Scalar tensor.

    Example:
        >>> f = [torch.zeros(1, 2, 4, 4)]
        >>> perceptual_loss([torch.ones(1, 2, 4, 4)], f, f)
        tensor(1.)
    """
    _check_feature_lists("features_out", features_out, features_gt)
    _check_feature_lists("features_comp", features_comp, features_gt)
    if not features_gt:
        raise InputValueError("perceptual_loss needs at least one feature map per image")
    total = _upcast(features_gt[0].new_zeros(()))
    for out, comp, gt in zip(features_out, features_comp, features_gt):
        total = total + _upcast((out - gt).abs().mean()) + _upcast((comp - gt).abs().mean())
    return total


def style_loss(features: Sequence[torch.Tensor], features_gt: Sequence[torch.Tensor]) -> torch.Tensor:
    """``L_style``: L1 distance between Gram matrices, divided by ``C_p^2``, summed over layers.

    Use it with the features of ``I_out`` (``L_style_out``) and of ``I_comp`` (``L_style_comp``).

    Args:
        features: list of ``(B, C_p, H_p, W_p)`` feature maps of the output (or composite).
        features_gt: same for the ground truth.

    Returns:
        Scalar tensor (float32 at least, see :func:`gram_matrix`).

    Example:
        >>> style_loss([torch.ones(1, 2, 2, 2)], [torch.zeros(1, 2, 2, 2)])
        tensor(0.5000)
    """
    _check_feature_lists("features", features, features_gt)
    if not features_gt:
        raise InputValueError("style_loss needs at least one feature map per image")
    total: torch.Tensor | None = None
    for f, g in zip(features, features_gt):
        term = (gram_matrix(f) - gram_matrix(g)).abs().mean()
        total = term if total is None else total + term
    assert total is not None  # features_gt is not empty
    return total
