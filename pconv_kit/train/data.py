"""Training data: an image-folder dataset with random crops, a file-level validation split, mask sources.

Reproducibility is by construction: every random choice of a training sample (which file, crop, scale,
flips, mask) is drawn from a generator seeded with ``(seed, stream, global sample index)``, where the global
sample index of slot ``j`` of step ``t`` is ``t * global_batch + j``. Nothing depends on worker processes,
on how many there are, or on state that a resume would have to restore: step ``t`` always sees the same
batch, whether the run was resumed, how many data-loader workers there are, and how many ``torchrun``
processes share the batch.

Files are visited in epochs: epoch ``e`` is a permutation of the training files seeded by ``(seed, e)``.
A file that cannot be read is skipped (the next file of the permutation takes its place) and reported once.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from pconv_kit.errors import ImageReadError, InputValueError
from pconv_kit.io import list_images, read_image, to_float

__all__ = [
    "DataSplit",
    "split_files",
    "scan_images",
    "readable_split",
    "load_rgb",
    "random_crop",
    "center_crop",
    "MaskSource",
    "make_mask_source",
    "ImageFolderDataset",
    "StepSampler",
    "collate",
    "worker_init",
    "sample_rng",
    "VAL_SEED",
]

# Streams of the per-sample seeds (seed, stream, index).
_ORDER, _IMAGE, _MASK = 0, 1, 2
VAL_SEED = 20180420
"""Seed of the validation masks: fixed, so runs with different seeds are validated on the same masks."""

MaskSource = Callable[[np.random.Generator], np.ndarray]
"""A callable ``rng -> (H, W) float32`` mask with 1 = valid, 0 = hole."""


def sample_rng(seed: int, stream: int, index: int) -> np.random.Generator:
    """The generator of ``stream`` for sample ``index`` of a run seeded with ``seed``.

    Example:
        >>> a, b = sample_rng(0, 1, 5).random(), sample_rng(0, 1, 5).random()
        >>> a == b, a != sample_rng(0, 1, 6).random()
        (True, True)
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(stream), int(index)]))


# ------------------------------------------------------------------------------------------ file split
@dataclass
class DataSplit:
    """Training and validation files of an image folder.

    Attributes:
        root: the folder.
        train: training files, sorted.
        val: held-out files, in the order they are evaluated (by path hash).
    """

    root: Path
    train: list[Path]
    val: list[Path]


def _path_hash(root: Path, path: Path) -> float:
    rel = path.relative_to(root).as_posix()
    digest = hashlib.blake2b(rel.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def split_files(root: str | os.PathLike[str], files: Sequence[Path], val_fraction: float) -> DataSplit:
    """Hold out the files whose relative-path hash (in ``[0, 1)``) is below ``val_fraction``.

    The choice depends only on each file's own path, so adding files never moves an existing file between
    the splits. With two or more files and ``val_fraction > 0``, at least one file (the one with the
    smallest hash) is held out.

    Example:
        >>> names = [Path("d") / f"{i}.png" for i in range(100)]
        >>> s = split_files("d", names, 0.1)
        >>> len(s.train) + len(s.val), 3 <= len(s.val) <= 20, set(s.val).isdisjoint(s.train)
        (100, True, True)
    """
    root = Path(root)
    hashed = sorted(((_path_hash(root, p), p) for p in files), key=lambda hp: (hp[0], str(hp[1])))
    val = [p for h, p in hashed if h < val_fraction]
    if not val and val_fraction > 0 and len(hashed) >= 2:
        val = [hashed[0][1]]
    val_set = set(val)
    train = sorted(p for p in files if p not in val_set)
    return DataSplit(root=root, train=train, val=val)


def scan_images(root: str | os.PathLike[str]) -> list[Path]:
    """All image files under ``root`` (recursively), sorted.

    Raises:
        InputValueError: ``root`` is missing, not a folder, or holds no image file.
    """
    root = Path(root)
    files = list_images(root, recursive=True)
    if not files:
        raise InputValueError(
            f"no image files in {root} (searched recursively for .png, .jpg, .jpeg, .webp, .tif, .tiff, .bmp)"
        )
    return files


# ------------------------------------------------------------------------------------------ images
def readable_split(
    root: str | os.PathLike[str],
    val_fraction: float,
    val_images: int,
    known_bad: Container[str],
    skip: Callable[[list[str]], None],
    warn: Callable[[str], None],
) -> tuple[DataSplit, list[np.ndarray]]:
    """Split the images under ``root`` and check that training can start: one training image must be readable.

    Reads the held-out files until ``val_images`` are readable. When no training file is readable but held-out
    ones are, ``warn``-s and trains on all files without validation.

    Args:
        root: the image folder.
        val_fraction: share of files held out (see :func:`split_files`).
        val_images: at most this many validation images.
        known_bad: paths (as ``str``) known to be unreadable; left out of the retry on all files.
        skip: called with ``["PATH: reason"]`` for each unreadable file.
        warn: called with a warning.

    Returns:
        ``(split, val_arrays)``: the split, and the readable validation images as ``(H, W, 3)`` arrays.

    Raises:
        InputValueError: no image under ``root`` can be read.
    """
    root = Path(root)
    files = scan_images(root)
    split = split_files(root, files, val_fraction)
    first_error = ""

    def probe(paths: list[Path], limit: int | None = None) -> list[np.ndarray]:
        nonlocal first_error
        ok: list[np.ndarray] = []
        for p in paths:
            try:
                ok.append(load_rgb(p))
            except Exception as exc:  # corrupt or unreadable: skip with one warning
                first_error = first_error or f"{p}: {exc}"
                skip([f"{p}: {exc}"])
                continue
            if limit is not None and len(ok) >= limit:
                break
        return ok

    train_ok = probe(split.train, limit=1)
    val_ok = probe(split.val, limit=val_images)
    if not train_ok and val_ok:
        warn(
            f"no readable training image is left once {len(split.val)} file(s) are held out for validation; "
            "training on all files without validation (set val_fraction = 0 to silence this)"
        )
        split.train, split.val, val_ok = sorted(split.train + split.val), [], []
        train_ok = probe([p for p in split.train if str(p) not in known_bad], limit=1)
    if not train_ok:
        raise InputValueError(f"none of the {len(files)} image file(s) in {root} can be read (first error: {first_error})")
    return split, val_ok


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an image as ``(H, W, 3)`` RGB in its native dtype (gray is repeated, alpha dropped).

    Raises:
        ImageReadError: unreadable, corrupt or empty file.
    """
    arr = read_image(path)
    return _to_rgb(arr, str(path))


def _to_rgb(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageReadError(f"cannot use image {name}: shape {arr.shape}")
    c = arr.shape[2]
    if c >= 3:
        return arr[..., :3]
    return np.repeat(arr[..., :1], 3, axis=2)


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    h, w = arr.shape[:2]
    if (h, w) == (size, size):
        return np.ascontiguousarray(arr)
    interp = cv2.INTER_AREA if min(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(arr), (size, size), interpolation=interp)


def random_crop(
    arr: np.ndarray,
    size: int,
    rng: np.random.Generator,
    crop_scale: tuple[float, float] = (0.5, 1.0),
    hflip: bool = True,
    vflip: bool = False,
) -> np.ndarray:
    """A random square crop of ``arr`` resized to ``size`` x ``size``, randomly flipped; float32 in [0, 1].

    The crop side is a fraction drawn uniformly from ``crop_scale`` of the shorter image side, but at least
    ``size`` when the image is that large (so a crop is never magnified past the native resolution).

    Args:
        arr: ``(H, W, 3)`` uint8, uint16 or float image.
        size: output side.
        rng: the sample's generator (the same number of values is drawn whatever the image).
        crop_scale: ``(lo, hi)`` fraction of the shorter side.
        hflip, vflip: allow horizontal / vertical flips (each with probability 1/2).

    Returns:
        ``(size, size, 3)`` float32 in ``[0, 1]``.

    Example:
        >>> out = random_crop(np.zeros((40, 60, 3), np.uint8), 32, np.random.default_rng(0))
        >>> out.shape, out.dtype
        ((32, 32, 3), dtype('float32'))
    """
    h, w = arr.shape[:2]
    short = min(h, w)
    u_scale, u_y, u_x, u_h, u_v = rng.random(5)
    side = int(round(short * (crop_scale[0] + u_scale * (crop_scale[1] - crop_scale[0]))))
    side = min(short, max(side, min(size, short), 1))
    y = int(u_y * (h - side + 1))
    x = int(u_x * (w - side + 1))
    crop = arr[y : y + side, x : x + side]
    if hflip and u_h < 0.5:
        crop = crop[:, ::-1]
    if vflip and u_v < 0.5:
        crop = crop[::-1]
    return to_float(_resize(crop, size))


def center_crop(arr: np.ndarray, size: int) -> np.ndarray:
    """The central square of ``arr`` (side = shorter side) resized to ``size``; float32 in [0, 1]."""
    h, w = arr.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return to_float(_resize(arr[y : y + side, x : x + side], size))


# ------------------------------------------------------------------------------------------ masks
class _GeneratedMasks:
    """Picklable mask source around :class:`~pconv_kit.masks.MaskGenerator`."""

    def __init__(
        self, size: int, hole_ratio: tuple[float, float], kind: str = "mixed", weights: str | None = None
    ) -> None:
        from pconv_kit.masks import MaskGenerator, parse_weights

        # the families' default unit counts reach hole ratios up to 0.6 (the generator stops at its target)
        self.generator = MaskGenerator(
            height=size, width=size, hole_ratio=tuple(hole_ratio), kind=kind,
            weights=None if weights is None else parse_weights(weights),
        )

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        return self.generator(rng)


class _FolderMasks:
    """Picklable mask source around :class:`~pconv_kit.masks.MaskFolder`."""

    def __init__(self, root: str, size: int, mask_convention: str, augment: bool) -> None:
        from pconv_kit.masks import MaskFolder

        self.folder = MaskFolder(root, size, size, mask_convention=mask_convention, augment=augment)
        if len(self.folder) == 0:
            raise InputValueError(f"no mask files in {root}")

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        return self.folder(rng)


def make_mask_source(
    size: int,
    masks: str | os.PathLike[str] | None = None,
    hole_ratio: tuple[float, float] = (0.05, 0.5),
    mask_convention: str = "hole-white",
    augment: bool = True,
    kind: str = "mixed",
    weights: str | None = None,
) -> MaskSource:
    """Masks generated on the fly (``masks=None``) or drawn from a folder of mask files.

    Args:
        size: mask side.
        masks: folder of mask files, or ``None`` to generate masks.
        hole_ratio: hole-ratio range of generated masks.
        mask_convention: how the mask files encode holes.
        augment: augment mask files (see :class:`~pconv_kit.masks.MaskFolder`).
        kind: family of generated masks (see :class:`~pconv_kit.masks.MaskGenerator`).
        weights: family weights of ``kind="mixed"`` as text (see :func:`~pconv_kit.masks.parse_weights`).

    Returns:
        A picklable callable ``rng -> (size, size) float32`` mask, 1 = valid, 0 = hole.
    """
    if masks is None:
        return _GeneratedMasks(size, hole_ratio, kind, weights)
    return _FolderMasks(os.fspath(masks), size, mask_convention, augment)


# ------------------------------------------------------------------------------------------ dataset
class ImageFolderDataset(Dataset):
    """Training samples indexed by **global sample index** (see the module docs), not by file.

    ``dataset[g]`` returns ``{"image": (3, S, S) float32, "mask": (1, S, S) float32 (1 = valid),
    "index": g, "skipped": [paths of unreadable files met while loading]}``.

    Args:
        files: training image files.
        size: crop side.
        mask_source: see :func:`make_mask_source`.
        seed: run seed.
        crop_scale, hflip, vflip: augmentation (see :func:`random_crop`).
        known_bad: files already known to be unreadable (skipped without trying).

    Example:
        >>> import tempfile
        >>> from pconv_kit.io import write_image
        >>> d = Path(tempfile.mkdtemp())
        >>> write_image(d / "a.png", np.full((40, 50, 3), 200, np.uint8))
        >>> ds = ImageFolderDataset([d / "a.png"], 32, lambda rng: np.ones((32, 32), np.float32), seed=0)
        >>> item = ds[7]
        >>> item["image"].shape, item["mask"].shape, item["index"]
        (torch.Size([3, 32, 32]), torch.Size([1, 32, 32]), 7)
    """

    def __init__(
        self,
        files: Sequence[Path],
        size: int,
        mask_source: MaskSource,
        seed: int,
        crop_scale: tuple[float, float] = (0.5, 1.0),
        hflip: bool = True,
        vflip: bool = False,
        known_bad: Sequence[Path] = (),
    ) -> None:
        if not files:
            raise InputValueError("ImageFolderDataset needs at least one file")
        self.files = [Path(f) for f in files]
        self.size = int(size)
        self.mask_source = mask_source
        self.seed = int(seed)
        self.crop_scale = (float(crop_scale[0]), float(crop_scale[1]))
        self.hflip, self.vflip = bool(hflip), bool(vflip)
        self._bad = {Path(p) for p in known_bad}
        self._epoch = -1
        self._order: np.ndarray = np.arange(len(self.files))

    def __len__(self) -> int:
        return len(self.files)

    def order(self, epoch: int) -> np.ndarray:
        """File permutation of ``epoch`` (cached for the current epoch)."""
        if epoch != self._epoch:
            self._order = sample_rng(self.seed, _ORDER, epoch).permutation(len(self.files))
            self._epoch = epoch
        return self._order

    def file_index(self, g: int) -> int:
        """Index into :attr:`files` of global sample ``g`` (before skipping unreadable files)."""
        epoch, pos = divmod(int(g), len(self.files))
        return int(self.order(epoch)[pos])

    def _load(self, g: int) -> tuple[np.ndarray, list[str]]:
        epoch, pos = divmod(int(g), len(self.files))
        order = self.order(epoch)
        skipped: list[str] = []
        for k in range(len(self.files)):
            path = self.files[int(order[(pos + k) % len(self.files)])]
            if path in self._bad:
                continue
            try:
                return load_rgb(path), skipped
            except Exception as exc:  # any decoding failure: skip the file, never crash the run
                self._bad.add(path)
                skipped.append(f"{path}: {exc}")
        raise InputValueError(f"none of the {len(self.files)} training images can be read any more")

    def __getitem__(self, g: int) -> dict[str, Any]:
        arr, skipped = self._load(g)
        image = random_crop(arr, self.size, sample_rng(self.seed, _IMAGE, g), self.crop_scale, self.hflip, self.vflip)
        mask = np.asarray(self.mask_source(sample_rng(self.seed, _MASK, g)), dtype=np.float32)
        if mask.shape != (self.size, self.size):
            raise InputValueError(f"the mask source returned shape {mask.shape}; expected ({self.size}, {self.size})")
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            "mask": torch.from_numpy(np.ascontiguousarray(mask))[None],
            "index": int(g),
            "skipped": skipped,
        }


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack dataset items into a batch (``skipped`` lists are concatenated)."""
    return {
        "image": torch.stack([it["image"] for it in items]),
        "mask": torch.stack([it["mask"] for it in items]),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.int64),
        "skipped": [s for it in items for s in it["skipped"]],
    }


def worker_init(worker_id: int) -> None:
    """Data-loader worker set-up: one torch thread (the main process does the maths), and SIGINT/SIGTERM ignored.

    Ctrl-C in a terminal, ``kill -- -PGID`` and batch schedulers such as Slurm signal the whole process group,
    workers included. A worker that died of it would make the main process fail with a traceback instead of
    finishing its step and writing a checkpoint; ignoring the signals leaves the stop to the main process,
    which shuts the workers down itself (and they exit with it if it is killed outright).

    OpenCV's thread count is deliberately left alone: changing it in a forked worker whose parent already
    started OpenCV's thread pool deadlocks (the pool's threads do not exist in the child).
    """
    torch.set_num_threads(1)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


class StepSampler(Sampler[int]):
    """Global sample indices of steps ``[start_step, steps)`` that belong to one rank.

    Step ``t`` owns the global indices ``t * global_batch ... (t + 1) * global_batch - 1``; rank ``r`` of
    ``world_size`` takes the contiguous slice ``r * b ... (r + 1) * b - 1`` with ``b = global_batch /
    world_size``. This is the distributed sampler of the trainer: unlike
    :class:`torch.utils.data.DistributedSampler` it is step-based, so a resumed run restarts mid-epoch at
    exactly the right sample and the union of the ranks' batches equals the single-process batch.

    Example:
        >>> list(StepSampler(1, 3, global_batch=4, rank=1, world_size=2))
        [6, 7, 10, 11]
    """

    def __init__(self, start_step: int, steps: int, global_batch: int, rank: int = 0, world_size: int = 1) -> None:
        if global_batch % world_size:
            raise InputValueError(
                f"the global batch size ({global_batch}) must be divisible by the number of processes ({world_size})"
            )
        self.start_step, self.steps = int(start_step), int(steps)
        self.global_batch, self.rank, self.world_size = int(global_batch), int(rank), int(world_size)
        self.local_batch = self.global_batch // self.world_size

    def __iter__(self) -> Iterator[int]:
        for t in range(self.start_step, self.steps):
            base = t * self.global_batch + self.rank * self.local_batch
            yield from range(base, base + self.local_batch)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.local_batch
