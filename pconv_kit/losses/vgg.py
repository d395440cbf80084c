"""Frozen VGG16 feature extractor (pool1, pool2, pool3) for the perceptual and style losses.

The layers are built in plain PyTorch with the same indices as ``torchvision.models.vgg16().features`` (cut
after the third max-pool), so torchvision's published ImageNet file ``vgg16-397923af.pth`` loads by its
``features.*`` keys without torchvision installed. Only the first seven convolutions (~1.7 M parameters)
are built; the other keys of the file are ignored.

Weights are found in this order (first hit wins):

1. the ``weights`` argument: a ``.pth`` state dict (read with ``torch.load(..., weights_only=True)``) or a
   ``.safetensors`` file;
2. the file named by the environment variable ``PCONV_KIT_VGG16_WEIGHTS``;
3. ``<cache_dir()>/vgg16-397923af.pth`` (see :func:`pconv_kit.utils.download.cache_dir`);
4. a download from :data:`VGG16_URL`, verified against its full SHA-256 :data:`VGG16_SHA256` and kept in the
   cache.

With no file and no network, :class:`~pconv_kit.errors.WeightsNotFoundError` explains each of these options.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from pconv_kit.core.check import check_shape
from pconv_kit.errors import InputValueError, ShapeError, WeightsNotFoundError
from pconv_kit.utils import download as _download

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VGG16_FILENAME",
    "VGG16_SHA256",
    "VGG16_URL",
    "WEIGHTS_ENV",
    "VGG16Features",
    "load_vgg16_state_dict",
    "resolve_vgg16_weights",
    "vgg16_expected_shapes",
]

VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
"""torchvision's ImageNet VGG16 weights (about 528 MB)."""

VGG16_SHA256 = "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"
"""Full SHA-256 of :data:`VGG16_URL`'s file (torchvision publishes only its first 8 hex digits, in the file name;
the full digest is the one Hugging Face lists for a copy of ``vgg16-397923af.pth``, 553 MB)."""

VGG16_FILENAME = "vgg16-397923af.pth"
"""Name of the weights file in the cache folder."""

WEIGHTS_ENV = "PCONV_KIT_VGG16_WEIGHTS"
"""Environment variable naming a local VGG16 weights file."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's VGG16 ("D") configuration up to and including the third max-pool: every conv is 3x3,
# padding 1, followed by an in-place ReLU; "M" is a 2x2 max-pool with stride 2.
_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M")


def _conv_indices_and_shapes() -> tuple[list[int], dict[str, tuple[int, ...]], list[int]]:
    index, in_ch = 0, 3
    convs: list[int] = []
    pools: list[int] = []
    shapes: dict[str, tuple[int, ...]] = {}
    for v in _CFG:
        if v == "M":
            pools.append(index)
            index += 1
        else:
            out_ch = int(v)
            convs.append(index)
            shapes[f"features.{index}.weight"] = (out_ch, in_ch, 3, 3)
            shapes[f"features.{index}.bias"] = (out_ch,)
            in_ch = out_ch
            index += 2  # conv, relu
    return convs, shapes, pools


_CONV_INDICES, _EXPECTED_SHAPES, _POOL_INDICES = _conv_indices_and_shapes()


def vgg16_expected_shapes() -> dict[str, tuple[int, ...]]:
    """The state-dict keys (torchvision names) and shapes that :class:`VGG16Features` needs.

    Example:
        >>> vgg16_expected_shapes()["features.0.weight"]
        (64, 3, 3, 3)
        >>> len(vgg16_expected_shapes())
        14
    """
    return dict(_EXPECTED_SHAPES)


def _not_found_message(reason: str) -> str:
    cached = _download.cache_dir() / VGG16_FILENAME
    return (
        "VGG16 ImageNet weights are needed for the perceptual and style losses but no weights file was found"
        f" ({reason}). Provide the file in one of these ways:\n"
        "  1. pass its path: VGG16Features(weights='/path/to/vgg16-397923af.pth')"
        " (a .pth state dict or a .safetensors file with torchvision's 'features.N.weight/bias' keys);\n"
        f"  2. set the environment variable {WEIGHTS_ENV}=/path/to/vgg16-397923af.pth;\n"
        f"  3. put it in the cache as {cached} (the cache folder is set by {_download.CACHE_ENV}).\n"
        f"Fetch it by hand (about 528 MB, SHA-256 {VGG16_SHA256}) from {VGG16_URL}, e.g.\n"
        f"  mkdir -p '{cached.parent}' && curl -L -o '{cached}' {VGG16_URL}\n"
        "For pixel-only training, use InpaintingLoss() without a feature extractor."
    )


def resolve_vgg16_weights(
    weights: str | os.PathLike[str] | None = None,
    *,
    download: bool = True,
    progress: bool | None = None,
) -> Path:
    """Find the VGG16 weights file: ``weights`` -> ``$PCONV_KIT_VGG16_WEIGHTS`` -> cache -> download.

    Args:
        weights: explicit path to a ``.pth`` or ``.safetensors`` file.
        download: allow downloading :data:`VGG16_URL` into the cache when no local file is found.
        progress: show a download progress bar (``None``: only when stderr is a terminal).

    Returns:
        Path of an existing weights file.

    Raises:
        WeightsNotFoundError: the explicit or environment path does not exist, or no cached file and the
            download is disabled or failed; the message lists every way to provide the file.
        ChecksumError: a downloaded file does not match the expected hash.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "vgg16.safetensors"
        >>> _ = p.write_bytes(b"")
        >>> resolve_vgg16_weights(p) == p
        True
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"VGG16 weights file {str(path)!r} (the weights argument) does not exist")
        return path
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(
                f"VGG16 weights file {str(path)!r} named by the environment variable {WEIGHTS_ENV} does not exist"
            )
        return path
    cached = _download.cache_dir() / VGG16_FILENAME
    if not download:
        if cached.is_file():
            return cached
        raise WeightsNotFoundError(_not_found_message(f"no file at {cached} and downloading is disabled"))
    try:
        return _download.cached_download(
            VGG16_URL, sha256=VGG16_SHA256, filename=VGG16_FILENAME, progress=progress
        )
    except _download.DownloadError as exc:
        reason = exc.reason or str(exc)
        if cached.is_file():
            reason = f"{cached} has the wrong SHA-256 and a fresh download failed: {reason}"
        raise _download.DownloadError(
            _not_found_message(f"download failed: {reason}"), url=exc.url, reason=exc.reason
        ) from exc


def _read_state_dict(path: Path) -> Mapping[str, object]:
    """Read a state dict without pickles; only the needed tensors are read from safetensors files."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as fh:
                keys = set(fh.keys())
                prefixed = any(k.startswith("features.") for k in keys)
                wanted = [
                    k for k in keys if k in _EXPECTED_SHAPES or (not prefixed and f"features.{k}" in _EXPECTED_SHAPES)
                ]
                out: dict[str, object] = {k: fh.get_tensor(k) for k in wanted}
                out.update({k: None for k in keys - set(wanted)})  # names only, for error messages
                return out
        except (SafetensorError, OSError, ValueError) as exc:
            raise InputValueError(f"cannot read VGG16 weights from {path} as safetensors: {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # noqa: BLE001 (unpickling errors come in many types)
        raise InputValueError(
            f"cannot read VGG16 weights from {path} with torch.load(weights_only=True): {exc}. "
            "Expected a state dict of tensors (torchvision's vgg16-397923af.pth) or a .safetensors file"
        ) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InputValueError(
            f"{path} does not hold a state dict (a mapping of names to tensors); got {type(obj).__name__}"
        )
    return obj


def load_vgg16_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read and validate the VGG16 ``features`` weights that :class:`VGG16Features` needs.

    Keys use torchvision's names (``features.0.weight`` ... ``features.14.bias``); a file saved from a bare
    ``features`` module (keys ``0.weight`` ...) is accepted too. Other keys (deeper layers, classifier) are
    ignored.

    Args:
        path: ``.pth`` (loaded with ``torch.load(weights_only=True)``) or ``.safetensors`` file.

    Returns:
        The 14 needed tensors, float32, keyed by torchvision's names.

    Raises:
        InputValueError: unreadable file, not a state dict, or missing keys (all listed).
        ShapeError: a tensor has the wrong shape (expected and actual listed).

    Example:
        >>> import tempfile, torch
        >>> sd = {k: torch.zeros(s) for k, s in vgg16_expected_shapes().items()}
        >>> p = tempfile.mkdtemp() + "/vgg.pth"
        >>> torch.save(sd, p)
        >>> sorted(load_vgg16_state_dict(p))[:2]
        ['features.0.bias', 'features.0.weight']
    """
    path = Path(path)
    raw = _read_state_dict(path)
    prefixed = any(isinstance(k, str) and k.startswith("features.") for k in raw)
    out: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    wrong: list[str] = []
    for key, shape in _EXPECTED_SHAPES.items():
        src = key if prefixed else key.removeprefix("features.")
        value = raw.get(src)
        if not isinstance(value, torch.Tensor):
            missing.append(key)
            continue
        if tuple(value.shape) != shape:
            wrong.append(f"{src}: expected {tuple(shape)}, got {tuple(value.shape)}")
            continue
        out[key] = value.detach().to(torch.float32)
    if missing:
        found = sorted(str(k) for k in raw)
        shown = ", ".join(found[:8]) + (f", ... ({len(found)} keys)" if len(found) > 8 else "")
        raise InputValueError(
            f"{path} is not a VGG16 state dict with torchvision's key names: missing {len(missing)} of "
            f"{len(_EXPECTED_SHAPES)} needed keys ({', '.join(missing)}); found keys: {shown or 'none'}"
        )
    if wrong:
        raise ShapeError(f"{path} has VGG16 weights of the wrong shape: " + "; ".join(wrong))
    return out


class VGG16Features(nn.Module):
    """Frozen VGG16 features at pool1, pool2 and pool3, with ImageNet normalisation inside.

    The layers follow ``torchvision.models.vgg16().features[:17]`` (same indices and key names), so its
    parameters are ``features.0.weight`` ... ``features.14.bias``. All parameters have
    ``requires_grad=False`` and the module stays in eval mode even when a parent calls ``.train()``;
    gradients still flow to the input.

    Args:
        weights: path to a ``.pth`` or ``.safetensors`` weights file. ``None``: resolve it from
            ``$PCONV_KIT_VGG16_WEIGHTS``, the cache, or a checked download (see the module docstring).
        pretrained: load ImageNet weights. ``False`` keeps PyTorch's random initialisation (for tests);
            ``weights`` must then be ``None``.

    Shape:
        - Input: ``(B, 3, H, W)`` (or ``(B, 1, H, W)``, repeated to RGB) in ``[0, 1]``; ``H, W >= 8``.
        - Output: list of ``(B, 64, H/2, W/2)``, ``(B, 128, H/4, W/4)``, ``(B, 256, H/8, W/8)``
          (sizes rounded down at each pool).

    Raises:
        WeightsNotFoundError: ``pretrained=True`` and no weights file can be found or downloaded.
        InputValueError / ShapeError: the weights file is invalid (see :func:`load_vgg16_state_dict`).

    Example:
        >>> vgg = VGG16Features(pretrained=False)
        >>> [tuple(f.shape) for f in vgg(torch.rand(2, 3, 32, 48))]
        [(2, 64, 16, 24), (2, 128, 8, 12), (2, 256, 4, 6)]
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, weights: str | os.PathLike[str] | None = None, pretrained: bool = True) -> None:
        super().__init__()
        if weights is not None and not pretrained:
            raise InputValueError("VGG16Features: weights was given but pretrained=False; drop one of them")
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(in_ch, int(v), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_path: Path | None = None
        if pretrained:
            self.weights_path = resolve_vgg16_weights(weights)
            self.load_state_dict(load_vgg16_state_dict(self.weights_path), strict=True)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> VGG16Features:
        """Ignore ``mode``: the extractor is frozen and always stays in eval mode."""
        return super().train(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Return ``[pool1, pool2, pool3]`` features of ``image`` (``(B, 3|1, H, W)`` in ``[0, 1]``)."""
        dims = check_shape(image, "B C H W", "image")
        if dims["C"] not in (1, 3):
            raise ShapeError(
                f"image must have 3 (RGB) or 1 channel(s) for VGG16Features; got shape {tuple(image.shape)}"
            )
        if dims["H"] < 8 or dims["W"] < 8:
            raise ShapeError(f"image must be at least 8x8 for three VGG16 poolings; got shape {tuple(image.shape)}")
        if not image.is_floating_point():
            raise InputValueError(f"image must be a floating point tensor in [0, 1]; got dtype {image.dtype}")
        x = (image - self.mean.to(image.dtype)) / self.std.to(image.dtype)  # broadcasts a 1-channel image to RGB
        out: list[torch.Tensor] = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in _POOL_INDICES:
                out.append(x)
        return out
