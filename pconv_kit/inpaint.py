"""Fill the holes of images of any size with a :class:`~pconv_kit.models.PConvUNet`.

:func:`inpaint` is the one-call API; :class:`Inpainter` keeps a loaded model and exposes the three steps
(:meth:`~Inpainter.prepare`, :meth:`~Inpainter.predict_batch`, :meth:`~Inpainter.finish`) that the folder
job (:mod:`pconv_kit.fill`) runs in different threads.

Guarantees:

- **Known pixels are bit-exact.** The model only ever supplies hole pixels: the result is
  ``where(valid, original, from_float(prediction))`` computed in the input's own dtype, so known pixels
  never go through floating point.
- **Any size and aspect.** Images are reflect-padded to the model's ``required_multiple`` and cropped back.
- **Large images** use one of three strategies: ``"full"`` (the whole image at once), ``"crop"`` (only
  boxes around each cluster of holes plus a context margin, at full resolution) or ``"resize"`` (fill a
  downscaled copy, upscale the prediction, use it for the holes only). ``"auto"`` (default) is ``"full"``
  up to ``max_full_pixels`` pixels and ``"crop"`` above.
- **Test-time augmentation** (``tta=2`` or ``4``) fills mirrored copies of each image too and averages the
  predictions: 2 or 4 times the compute for a slightly better fill (see :data:`TTA_CHOICES`).
- Grayscale images run through an RGB model and come back gray; RGBA images keep their alpha channel;
  16-bit images stay 16-bit.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

from pconv_kit.conventions import MASK_ARRAY_CONVENTIONS
from pconv_kit.core.check import check_binary, check_shape
from pconv_kit.core.device import resolve_device
from pconv_kit.core.pixels import (
    INT_DTYPES,
    as_model_input,
    colour_channels,
    fill_holes,
    np_valid,
    split_valid,
    to_float,
)
from pconv_kit.errors import InputValueError, ShapeError
from pconv_kit.geometry import hole_boxes, reflect_pad
from pconv_kit.models import PConvUNet

__all__ = [
    "inpaint",
    "Inpainter",
    "InpaintJob",
    "hole_boxes",
    "reflect_pad",
    "resolve_device",
    "STRATEGIES",
    "MASK_CONVENTIONS",
    "DEFAULT_MAX_FULL_PIXELS",
    "TTA_CHOICES",
]

STRATEGIES = ("auto", "full", "crop", "resize")
"""Accepted values of ``strategy``."""

MASK_CONVENTIONS = MASK_ARRAY_CONVENTIONS
"""Accepted values of ``mask_convention``: ``"valid"`` is the library's ``M`` (1/True = valid pixel,
0/False = hole, binary); ``"hole-white"`` and ``"valid-white"`` read the array like a mask *file*
(:func:`pconv_kit.io.decode_mask`: any dtype and channels, non-binary values thresholded at 50% of the range;
white = hole, resp. white = valid)."""

DEFAULT_MAX_FULL_PIXELS = 2048 * 1024
"""``strategy="auto"`` fills images up to this many pixels whole and switches to ``"crop"`` above."""

TTA_CHOICES = (1, 2, 4)
"""Accepted values of ``tta``: how many flipped copies of the input the model fills, their predictions
averaged. 1: the input only; 2: also its left-right mirror; 4: also upside down and both flips."""

_FLIPS: dict[int, tuple[tuple[int, ...], ...]] = {1: ((),), 2: ((), (-1,)), 4: ((), (-1,), (-2,), (-2, -1))}

T = TypeVar("T", np.ndarray, torch.Tensor)


def _check_convention(mask_convention: str) -> None:
    if mask_convention not in MASK_CONVENTIONS:
        raise InputValueError(
            f"mask_convention must be one of {MASK_CONVENTIONS}; got {mask_convention!r}", param="mask_convention"
        )


# ---------------------------------------------------------------------------------------------- the inpainter


@dataclass
class InpaintJob:
    """One image prepared for the model (the output of :meth:`Inpainter.prepare`).

    Attributes:
        image: the original array as ``(H, W, C)`` (a view; never modified).
        shape: the original shape (``(H, W)`` for 2-D input).
        color: number of colour channels (1 or 3; the alpha channel of RGBA is not one).
        valid: ``(H, W, 1|c)`` bool, True = valid, for the ``c`` colour channels (alpha excluded).
        valid_pixels: ``(H, W)`` bool, a pixel is sent to the model as valid only if all its channels are.
        model_input: ``(H, W, C_model)`` float32 in ``[0, 1]``, or ``None`` when there is no hole.
        name: used in error messages (a file name, or ``"image"``).
    """

    image: np.ndarray
    shape: tuple[int, ...]
    color: int
    valid: np.ndarray
    valid_pixels: np.ndarray
    model_input: np.ndarray | None
    name: str = "image"

    @property
    def has_holes(self) -> bool:
        """Whether the model has anything to fill."""
        return self.model_input is not None

    @property
    def hole_ratio(self) -> float:
        """Fraction of pixels that are (at least partly) holes."""
        return float(1.0 - self.valid_pixels.mean()) if self.valid_pixels.size else 0.0

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.image.shape[0]), int(self.image.shape[1])


class Inpainter:
    """A loaded model plus the padding, strategy and compositing logic of :func:`inpaint`.

    Args:
        model: a :class:`~pconv_kit.models.PConvUNet`, a path (``.safetensors`` or a ``pconv-kit train`` run
            directory), a registered name (:func:`pconv_kit.registry.list_models`), or ``None`` for the
            built-in default model.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, a ``torch.device``, or ``None`` (the given model's
            device, else ``"auto"``). A given model is moved there.
        strategy: ``"auto"``, ``"full"``, ``"crop"`` or ``"resize"`` (see the module docstring).
        max_full_pixels: ``"auto"`` uses ``"full"`` up to this many pixels, ``"crop"`` above; ``"resize"``
            downscales to at most this many pixels.
        crop_margin: context around hole clusters for ``"crop"``, in pixels (default
            ``max(64, required_multiple // 2)``).
        tta: test-time augmentation, one of :data:`TTA_CHOICES` (1: off; 2: also the left-right mirror;
            4: also the upside-down copies); the predictions are averaged.

    Example:
        >>> from pconv_kit.models import PConvUNet
        >>> inpainter = Inpainter(PConvUNet(layer_size=3, base_channels=4), device="cpu")
        >>> image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
        >>> valid = np.ones((20, 30), bool)
        >>> valid[5:9, 5:12] = False
        >>> out = inpainter(image, valid)
        >>> out.shape, out.dtype, bool((out[valid] == image[valid]).all())
        ((20, 30, 3), dtype('uint8'), True)
    """

    def __init__(
        self,
        model: PConvUNet | str | os.PathLike[str] | None = None,
        *,
        device: str | torch.device | None = None,
        strategy: str = "auto",
        max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
        crop_margin: int | None = None,
        tta: int = 1,
    ) -> None:
        if strategy not in STRATEGIES:
            raise InputValueError(f"strategy must be one of {STRATEGIES}; got {strategy!r}", param="strategy")
        if int(max_full_pixels) < 1:
            raise InputValueError(f"max_full_pixels must be >= 1; got {max_full_pixels}", param="max_full_pixels")
        if crop_margin is not None and crop_margin < 0:
            raise InputValueError(f"crop_margin must be >= 0; got {crop_margin}", param="crop_margin")
        if isinstance(tta, bool) or not isinstance(tta, (int, np.integer)) or int(tta) not in TTA_CHOICES:
            raise InputValueError(f"tta must be one of {TTA_CHOICES}; got {tta!r}", param="tta")
        if isinstance(model, PConvUNet):
            self.device = resolve_device(device, model)
            self.model = model.to(self.device)
        elif model is None or isinstance(model, (str, os.PathLike)):
            from pconv_kit.registry import load_model

            self.device = resolve_device(device)
            self.model = load_model(model, self.device)
        else:
            raise InputValueError(
                f"model must be a PConvUNet, a path, a registered name or None; got {type(model).__name__}"
            )
        if self.model.out_channels != self.model.in_channels:
            raise InputValueError(
                f"inpainting needs a model with out_channels == in_channels; got {self.model.in_channels} -> "
                f"{self.model.out_channels}"
            )
        self.strategy = strategy
        self.tta = int(tta)
        self.max_full_pixels = int(max_full_pixels)
        self.crop_margin = max(64, self.required_multiple // 2) if crop_margin is None else int(crop_margin)

    @property
    def required_multiple(self) -> int:
        """The model's ``required_multiple`` (images are padded to it)."""
        return int(self.model.required_multiple)

    @property
    def channels(self) -> int:
        """Number of colour channels the model takes (3 for RGB models)."""
        return int(self.model.in_channels)

    def choose_strategy(self, height: int, width: int) -> str:
        """The strategy used for an image of this size (``"auto"`` resolved)."""
        if self.strategy != "auto":
            return self.strategy
        return "full" if height * width <= self.max_full_pixels else "crop"

    # ------------------------------------------------------------------ tensor core
    def _run_padded(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        xp, (top, left, h, w) = reflect_pad(x, self.required_multiple)
        vp, _ = reflect_pad(valid, self.required_multiple)
        out = self._predict(xp, vp)
        return out[..., top : top + h, left : left + w]

    def _predict(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """The model's prediction, averaged over the flips of :attr:`tta` (one pass at a time: no extra memory)."""
        out = self.model.predict(x, valid)
        for dims in _FLIPS[self.tta][1:]:
            out.add_(self.model.predict(x.flip(dims), valid.flip(dims)).flip(dims))
        return out.div_(self.tta) if self.tta > 1 else out

    def _run_crop(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        valid_np = valid[:, 0].bool().cpu().numpy()
        for i in range(x.shape[0]):
            for top, left, bottom, right in hole_boxes(valid_np[i], self.required_multiple, self.crop_margin):
                out[i : i + 1, :, top:bottom, left:right] = self._run_padded(
                    x[i : i + 1, :, top:bottom, left:right], valid[i : i + 1, :, top:bottom, left:right]
                )
        return out

    def _run_resize(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if h * w <= self.max_full_pixels:
            return self._run_padded(x, valid)
        scale = math.sqrt(self.max_full_pixels / (h * w))
        size = (max(1, int(h * scale)), max(1, int(w * scale)))
        small = F.interpolate(x, size=size, mode="area")
        # a small pixel is valid only if every pixel under it is valid
        small_valid = (F.interpolate(valid, size=size, mode="area") >= 1.0 - 1e-6).to(x.dtype)
        if not bool(small_valid.flatten(1).any(dim=1).all()):
            raise InputValueError(
                "strategy='resize': no known pixel is left after downscaling to "
                f"{size[0]}x{size[1]}; use strategy='crop' or 'full'"
            )
        filled = self._run_padded(small, small_valid)
        return F.interpolate(filled, size=(h, w), mode="bicubic", align_corners=False).clamp_(0, 1)

    def predict_tensor(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Model prediction for every pixel of a batch (the caller keeps the known pixels).

        Args:
            x: ``(B, C_model, H, W)`` float in ``[0, 1]``, any size.
            valid: ``(B, 1, H, W)`` float, 1 = valid, 0 = hole; every image needs at least one valid pixel.

        Returns:
            ``(B, C_model, H, W)`` float32 in ``[0, 1]`` on :attr:`device`; only hole pixels are meaningful.
        """
        dims = check_shape(x, "B C H W", "x")
        check_shape(valid, f"{dims['B']} 1 {dims['H']} {dims['W']}", "valid")
        x = x.to(self.device, torch.float32)
        valid = valid.to(self.device, torch.float32)
        strategy = self.choose_strategy(dims["H"], dims["W"])
        with torch.inference_mode():
            if strategy == "full":
                return self._run_padded(x, valid)
            if strategy == "crop":
                return self._run_crop(x, valid)
            return self._run_resize(x, valid)

    # ------------------------------------------------------------------ numpy steps
    def prepare(self, image: np.ndarray, mask: Any, mask_convention: str = "valid", name: str = "image") -> InpaintJob:
        """Check one NumPy image and its mask and convert them for the model.

        Args:
            image: ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)``; uint8, uint16 or float in
                ``[0, 1]``.
            mask: ``(H, W)`` or ``(H, W, 1|C)`` array read with ``mask_convention``.
            mask_convention: see :data:`MASK_CONVENTIONS`.
            name: names the image in error messages (e.g. its file name).

        Raises:
            ShapeError, InputValueError: bad shapes or dtypes, non-binary ``"valid"`` masks, or a mask that
                is all hole.
        """
        _check_convention(mask_convention)
        if isinstance(image, torch.Tensor) or not isinstance(image, np.ndarray):
            raise InputValueError(f"image must be a numpy array; got {type(image).__name__}")
        shape = tuple(image.shape)
        arr = image[..., None] if image.ndim == 2 else image
        if arr.ndim != 3 or 0 in arr.shape[:2]:
            raise ShapeError(f"{name}: image must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {shape}")
        color = colour_channels(arr.shape[2], shape, "H, W, C")
        if not (arr.dtype in INT_DTYPES or np.issubdtype(arr.dtype, np.floating)):
            raise InputValueError(f"{name}: image dtype must be uint8, uint16 or float; got {arr.dtype}")
        self._check_channels(color, name)
        h, w, c = arr.shape
        valid, valid_pixels = split_valid(np_valid(mask, h, w, c, mask_convention)[None], c, color, [name])
        model_input = None
        if not valid.all():
            model_input = as_model_input(to_float(arr[..., :color]), self.channels)
        return InpaintJob(arr, shape, color, valid[0], valid_pixels[0], model_input, name)

    def _check_channels(self, color: int, name: str) -> None:
        if color != self.channels and not (color == 1 and self.channels == 3):
            raise ShapeError(
                f"{name}: the model takes {self.channels}-channel images; got {color} colour channel(s)"
            )

    def predict_batch(self, jobs: Sequence[InpaintJob]) -> list[np.ndarray | None]:
        """Run the model on jobs of one size (one batch); jobs without holes get ``None`` and cost nothing.

        Returns:
            One ``(H, W, C_model)`` float32 prediction (or ``None``) per job, for :meth:`finish`.
        """
        todo = [i for i, job in enumerate(jobs) if job.has_holes]
        results: list[np.ndarray | None] = [None] * len(jobs)
        if not todo:
            return results
        sizes = {jobs[i].size for i in todo}
        if len(sizes) > 1:
            raise ShapeError(f"predict_batch needs images of one size; got {sorted(sizes)}")
        # one image: a view with a batch axis, not a copy (np.stack copies, and a large photo is gigabytes)
        inputs = [jobs[i].model_input for i in todo]
        stacked = np.stack(inputs) if len(inputs) > 1 else inputs[0][None]  # type: ignore[index]
        x = torch.from_numpy(stacked).permute(0, 3, 1, 2)  # type: ignore[arg-type]
        valid = torch.from_numpy(np.stack([jobs[i].valid_pixels for i in todo]))[:, None].float()
        pred = self.predict_tensor(x, valid).permute(0, 2, 3, 1).float().cpu().numpy()
        for k, i in enumerate(todo):
            results[i] = pred[k]
        return results

    def finish(self, job: InpaintJob, prediction: np.ndarray | None) -> np.ndarray:
        """Composite a prediction into the original image, in its dtype and shape.

        Known pixels (and the alpha channel) are copied bit for bit; holes get ``prediction`` converted to
        the image's dtype (rounded for integer images). Gray images take the luma of an RGB prediction.
        """
        if prediction is None:
            return job.image.reshape(job.shape).copy()
        arr, color = job.image, job.color
        out = arr.copy()
        # only the box around the holes is converted and composited: a few holes in a large photo cost memory
        # in proportion to their box, not to the photo
        holes = ~job.valid_pixels
        rows, cols = np.flatnonzero(holes.any(axis=1)), np.flatnonzero(holes.any(axis=0))
        if rows.size == 0:
            return out.reshape(job.shape)
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        region = out[box]  # a view: writing it writes out
        region[..., :color] = fill_holes(arr[box][..., :color], job.valid[box], prediction[box])
        return out.reshape(job.shape)

    # ------------------------------------------------------------------ tensors
    def _inpaint_tensor(self, image: torch.Tensor, mask: Any, mask_convention: str) -> torch.Tensor:
        dims = check_shape(image, "B C H W", "image")
        b, c = dims["B"], dims["C"]
        color = colour_channels(c, tuple(image.shape), "B, C, H, W")
        if not (image.is_floating_point() or image.dtype == torch.uint8):
            raise InputValueError(f"image tensor must be floating point or uint8; got dtype {image.dtype}")
        self._check_channels(color, "image")
        valid, valid_pixels = split_valid(
            self._tensor_valid(image, mask, mask_convention).permute(0, 2, 3, 1), c, color,
            [f"image {i} of the batch" for i in range(b)],
        )
        out = image.clone()
        todo = torch.nonzero(~valid.flatten(1).all(1)).flatten()
        if todo.numel() == 0:
            return out
        colour = image[todo, :color].permute(0, 2, 3, 1)  # channels-last, as the NumPy path and the pixel rules
        x = as_model_input(to_float(colour), self.channels)
        pred = self.predict_tensor(x.permute(0, 3, 1, 2), valid_pixels[todo, None].float()).to(image.device)
        out[todo, :color] = fill_holes(colour, valid[todo], pred.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return out

    @staticmethod
    def _tensor_valid(image: torch.Tensor, mask: Any, mask_convention: str) -> torch.Tensor:
        """The mask of a tensor batch as bool ``(B, 1|C, H, W)``, True = valid."""
        b, c, h, w = image.shape
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(np.asarray(mask))
        if mask.dim() != 4 or mask.shape[0] != b or mask.shape[1] not in (1, c) or mask.shape[2:] != image.shape[2:]:
            raise ShapeError(
                f"mask must have shape ({b}, 1, {h}, {w}) or ({b}, {c}, {h}, {w}) to match image "
                f"{tuple(image.shape)}; got {tuple(mask.shape)}"
            )
        mask = mask.to(image.device)
        if mask_convention == "valid":
            if mask.dtype != torch.bool:
                check_binary(mask, "mask (mask_convention='valid')")
            return mask.bool()
        decoded = [torch.from_numpy(np_valid(m.permute(1, 2, 0), h, w, c, mask_convention)) for m in mask]
        return torch.stack(decoded).permute(0, 3, 1, 2).to(image.device)  # decoded like a mask file, per image

    # ------------------------------------------------------------------ public call
    def __call__(self, image: T, mask: Any, mask_convention: str = "valid") -> T:
        """Inpaint one NumPy image or a batch of tensors; see :func:`inpaint`."""
        _check_convention(mask_convention)
        if isinstance(image, torch.Tensor):
            return self._inpaint_tensor(image, mask, mask_convention)
        job = self.prepare(image, mask, mask_convention)
        return self.finish(job, self.predict_batch([job])[0])


def inpaint(
    image: T,
    mask: Any,
    model: PConvUNet | str | os.PathLike[str] | None = None,
    *,
    mask_convention: str = "valid",
    strategy: str = "auto",
    device: str | torch.device | None = None,
    max_full_pixels: int = DEFAULT_MAX_FULL_PIXELS,
    crop_margin: int | None = None,
    tta: int = 1,
) -> T:
    """Fill the holes of ``image`` and return the same kind of array: same type, dtype, shape and device.

    Known pixels are returned bit-exact; only holes change. Images are reflect-padded to the model's
    ``required_multiple`` and cropped back, so any size works. An image without holes is returned
    unchanged (a copy) without running the model.

    Args:
        image: a NumPy image ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` (RGB(A) order) in
            uint8, uint16 or float ``[0, 1]``; or a tensor ``(B, C, H, W)`` with ``C`` in 1, 3, 4 (float in
            ``[0, 1]`` or uint8). Gray runs through an RGB model and comes back gray; alpha is kept.
        mask: NumPy images take ``(H, W)`` or ``(H, W, 1|C)``; tensors ``(B, 1|C, H, W)``. Per-channel masks
            are allowed: a pixel is then a hole for the model if any channel is, and only hole channels are
            replaced.
        model: a :class:`~pconv_kit.models.PConvUNet`, a path to saved weights (a ``.safetensors`` file from
            ``pconv-kit train`` or its run directory), a registered name, or ``None`` for the built-in model
            (``pconv-photos-small``, shipped with the package).
            A file is read and checked once; each call gets its own copy of the model (a few ms). For
            many calls, an :class:`Inpainter` keeps one model.
        mask_convention: ``"valid"`` (default): binary, 1/True = valid, 0/False = hole (the paper's ``M``);
            ``"hole-white"``: a mask image whose white (>= 50% of the range) pixels are holes;
            ``"valid-white"``: white pixels are kept, black ones are holes.
        strategy: ``"auto"`` (``"full"`` up to ``max_full_pixels`` pixels, else ``"crop"``), ``"full"``,
            ``"crop"`` (boxes around hole clusters plus ``crop_margin`` of context) or ``"resize"``
            (downscale to ``max_full_pixels``, fill, upscale; holes only).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``None`` (the model's device, else auto).
        max_full_pixels: threshold of ``"auto"`` and target size of ``"resize"``.
        crop_margin: context in pixels around hole clusters for ``"crop"``.
        tta: test-time augmentation, one of :data:`TTA_CHOICES`: average the predictions for the image and
            its left-right mirror (2), and also its upside-down copies (4). ``tta`` times the compute.

    Returns:
        The inpainted image, same type, dtype and shape as ``image``.

    Raises:
        ShapeError: unsupported shapes, or mask and image sizes differ.
        InputValueError: unsupported dtype, non-binary ``"valid"`` mask, all-hole image, bad option.
        WeightsNotFoundError: ``model`` names nothing that exists.

    Example:
        >>> import numpy as np
        >>> from pconv_kit.models import PConvUNet
        >>> model = PConvUNet(layer_size=3, base_channels=4)
        >>> image = np.full((40, 56, 3), 200, np.uint8)
        >>> mask = np.ones((40, 56), np.float32)   # 1 = valid
        >>> mask[10:20, 10:30] = 0                  # a hole
        >>> out = inpaint(image, mask, model)
        >>> out.shape, out.dtype, bool((out[mask == 1] == 200).all())
        ((40, 56, 3), dtype('uint8'), True)
    """
    inpainter = Inpainter(
        model, device=device, strategy=strategy, max_full_pixels=max_full_pixels, crop_margin=crop_margin, tta=tta
    )
    return inpainter(image, mask, mask_convention=mask_convention)

