"""Training data: file split, image kinds, crops, deterministic samples, the step sampler, mask sources."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pconv_kit.errors import ImageReadError, InputValueError
from pconv_kit.io import write_image, write_mask
from pconv_kit.train.data import (
    ImageFolderDataset,
    StepSampler,
    center_crop,
    collate,
    load_rgb,
    make_mask_source,
    random_crop,
    scan_images,
    split_files,
    worker_init,
)


def _ones(size: int):
    return lambda rng: np.ones((size, size), np.float32)


def test_split_is_by_file_and_stable_when_files_are_added() -> None:
    root = Path("data")
    files = [root / f"img_{i:03d}.jpg" for i in range(300)]
    split = split_files(root, files, 0.1)
    assert set(split.train).isdisjoint(split.val) and len(split.train) + len(split.val) == 300
    assert 10 <= len(split.val) <= 55  # about 10 %
    more = files + [root / "new" / f"x_{i}.png" for i in range(100)]
    split2 = split_files(root, more, 0.1)
    assert set(split.val) == set(split2.val) & set(files)  # no old file moved between the splits
    assert split_files(root, list(reversed(files)), 0.1).val == split.val  # order-independent
    # a relative path decides, not the root it hangs from
    moved = split_files(Path("elsewhere"), [Path("elsewhere") / p.name for p in files], 0.1)
    assert [p.name for p in moved.val] == [p.name for p in split.val]


def test_split_small_folders() -> None:
    root = Path("d")
    assert split_files(root, [root / "a.png"], 0.02).val == []
    two = split_files(root, [root / "a.png", root / "b.png"], 0.02)
    assert len(two.val) == 1 and len(two.train) == 1
    assert split_files(root, [root / f"{i}.png" for i in range(5)], 0.0).val == []


def test_scan_images_recursive_and_empty(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    write_image(tmp_path / "a.png", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "sub" / "deeper" / "b.jpg", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in scan_images(tmp_path)] == ["a.png", "b.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputValueError, match="no image files in"):
        scan_images(tmp_path / "empty")
    with pytest.raises(InputValueError, match="does not exist"):
        scan_images(tmp_path / "missing")


@pytest.mark.parametrize(
    ("name", "array", "expected"),
    [
        ("gray.png", np.full((20, 30), 51, np.uint8), 0.2),
        ("rgba.png", np.dstack([np.full((20, 30, 3), 102, np.uint8), np.zeros((20, 30), np.uint8)]), 0.4),
        ("rgb16.png", np.full((20, 30, 3), 32768, np.uint16), 32768 / 65535),
        ("gray16.tif", np.full((20, 30), 65535, np.uint16), 1.0),
        ("rgb.bmp", np.full((20, 30, 3), 255, np.uint8), 1.0),
        ("rgb.webp", np.full((20, 30, 3), 0, np.uint8), 0.0),
    ],
)
def test_image_kinds_become_float_rgb(tmp_path: Path, name: str, array: np.ndarray, expected: float) -> None:
    path = tmp_path / name
    write_image(path, array)
    rgb = load_rgb(path)
    assert rgb.shape == (20, 30, 3)
    crop = center_crop(rgb, 16)
    assert crop.shape == (16, 16, 3) and crop.dtype == np.float32
    np.testing.assert_allclose(crop, expected, atol=2e-3)
    item = ImageFolderDataset([path], 16, _ones(16), seed=0)[3]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 16, 16)
    torch.testing.assert_close(item["image"], torch.full((3, 16, 16), float(expected)), atol=2e-3, rtol=0)


def test_load_rgb_rejects_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ImageReadError, match="bad.jpg"):
        load_rgb(bad)


def test_random_crop_scale_flip_and_range() -> None:
    rng = np.random.default_rng(0)
    ramp = np.tile(np.arange(200, dtype=np.uint8)[None, :, None], (100, 1, 3))  # brightness grows to the right
    sides = []
    for _ in range(50):
        out = random_crop(ramp, 32, rng, crop_scale=(0.5, 1.0), hflip=False)
        assert out.shape == (32, 32, 3) and 0 <= out.min() and out.max() <= 1
        assert out[:, 0].mean() <= out[:, -1].mean()  # never flipped
        sides.append(out[0, -1, 0] - out[0, 0, 0])
    # crops of 50-100 px of a ramp span 50-100 grey levels: the random scale shows up as different spans
    assert max(sides) - min(sides) > 20 / 255
    flipped = [random_crop(ramp, 32, np.random.default_rng(i), hflip=True) for i in range(40)]
    n_flipped = sum(int(f[:, 0].mean() > f[:, -1].mean()) for f in flipped)
    assert 8 <= n_flipped <= 32
    # an image smaller than the crop is magnified, never an error
    assert random_crop(np.zeros((5, 9, 3), np.uint8), 32, rng).shape == (32, 32, 3)
    # a large image is not magnified: the crop side is at least the output size
    big = np.random.default_rng(1).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    out = random_crop(big, 64, np.random.default_rng(2), crop_scale=(0.01, 0.01))
    assert out.std() > 0.2  # native-resolution noise, not a blown-up blur of a 4-pixel region


def _photos(tmp_path: Path, n: int = 4, size: tuple[int, int] = (40, 56)) -> list[Path]:
    paths = []
    for i in range(n):
        path = tmp_path / f"p{i}.png"
        write_image(path, np.random.default_rng(i).integers(0, 255, (*size, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def test_dataset_is_a_function_of_the_sample_index(tmp_path: Path) -> None:
    files = _photos(tmp_path)
    masks = make_mask_source(32, hole_ratio=(0.1, 0.3))
    a = ImageFolderDataset(files, 32, masks, seed=5)
    b = ImageFolderDataset(files, 32, make_mask_source(32, hole_ratio=(0.1, 0.3)), seed=5)
    for g in (0, 1, 17, 5, 0):
        ia, ib = a[g], b[g]
        assert torch.equal(ia["image"], ib["image"]) and torch.equal(ia["mask"], ib["mask"])
        hole = 1 - ia["mask"].mean().item()
        assert 0.1 <= hole <= 0.3
    assert not torch.equal(a[0]["image"], a[1]["image"])
    c = ImageFolderDataset(files, 32, masks, seed=6)
    assert not torch.equal(a[3]["mask"], c[3]["mask"])
    # every epoch visits every file once
    for epoch in range(3):
        visited = sorted(a.file_index(epoch * 4 + k) for k in range(4))
        assert visited == [0, 1, 2, 3]
    orders = {tuple(a.file_index(e * 4 + k) for k in range(4)) for e in range(6)}
    assert len(orders) > 1  # epochs are shuffled differently


def test_dataset_skips_unreadable_files_once(tmp_path: Path) -> None:
    files = _photos(tmp_path, 2)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG broken")
    ds = ImageFolderDataset(files + [bad], 16, _ones(16), seed=0)
    reports = []
    for g in range(30):
        item = ds[g]
        reports += item["skipped"]
        assert item["image"].shape == (3, 16, 16)
    assert len(reports) == 1 and str(bad) in reports[0]
    # a file known to be bad from the start is never tried
    ds2 = ImageFolderDataset(files + [bad], 16, _ones(16), seed=0, known_bad=[bad])
    assert all(not ds2[g]["skipped"] for g in range(30))
    ds3 = ImageFolderDataset([bad], 16, _ones(16), seed=0)
    with pytest.raises(InputValueError, match="none of the 1 training images"):
        ds3[0]


def test_step_sampler_shards_each_global_batch() -> None:
    single = list(StepSampler(2, 5, global_batch=6))
    assert single == list(range(12, 30))
    parts = [list(StepSampler(2, 5, global_batch=6, rank=r, world_size=3)) for r in range(3)]
    for t in range(3):  # per step, the ranks' slices together are the single-process batch
        step = sorted(i for p in parts for i in p[2 * t : 2 * t + 2])
        assert step == single[6 * t : 6 * t + 6]
    assert len(StepSampler(2, 5, 6, rank=1, world_size=3)) == 6
    with pytest.raises(InputValueError, match="divisible"):
        StepSampler(0, 1, global_batch=5, world_size=2)


def test_worker_count_does_not_change_batches(tmp_path: Path) -> None:
    ds = ImageFolderDataset(_photos(tmp_path), 32, make_mask_source(32), seed=1)

    def batches(workers: int) -> list[dict]:
        loader = DataLoader(
            ds, batch_size=3, sampler=StepSampler(1, 4, 3), num_workers=workers, collate_fn=collate,
            worker_init_fn=worker_init if workers else None,
        )
        return list(loader)

    zero, two = batches(0), batches(2)
    assert len(zero) == len(two) == 3
    for a, b in zip(zero, two):
        assert torch.equal(a["index"], b["index"])
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert zero[0]["index"].tolist() == [3, 4, 5]


def test_mask_folder_source(tmp_path: Path) -> None:
    folder = tmp_path / "masks"
    folder.mkdir()
    valid = np.ones((64, 64), np.float32)
    valid[10:40, 10:40] = 0
    write_mask(folder / "m0.png", valid, mask_convention="valid-white")
    source = make_mask_source(32, masks=folder, mask_convention="valid-white", augment=False)
    m = source(np.random.default_rng(0))
    assert m.shape == (32, 32) and m.dtype == np.float32
    assert 0.1 < 1 - m.mean() < 0.5  # the hole survived, with the right polarity
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(InputValueError):
        make_mask_source(32, masks=empty)


def test_workers_start_after_opencv_used_its_thread_pool() -> None:
    """Regression: a worker that reconfigured OpenCV's threads after the fork could hang forever once the parent
    had run parallel OpenCV code (as the trainer does when it prepares validation crops). The hang is a race,
    so the fork is repeated; each round must finish."""
    import subprocess
    import sys

    script = """
import numpy as np, cv2
from torch.utils.data import DataLoader
from pconv_kit.train.data import ImageFolderDataset, StepSampler, collate, worker_init
big = np.random.default_rng(0).integers(0, 255, (2000, 2000, 3), dtype=np.uint8)
class Big(ImageFolderDataset):
    def _load(self, g):
        return big, []
ds = Big(["x"], 64, lambda rng: np.ones((64, 64), np.float32), seed=0)
n = 0
for _ in range(10):
    for _ in range(3):
        cv2.resize(big, (500, 500), interpolation=cv2.INTER_AREA)  # OpenCV's thread pool is busy
    loader = DataLoader(ds, batch_size=2, sampler=StepSampler(0, 2, 2), num_workers=2, collate_fn=collate,
                        worker_init_fn=worker_init)
    n += sum(1 for _ in loader)
print(n)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "20"


def test_generated_mask_source_uses_the_family_and_weights() -> None:
    from pconv_kit.masks import MaskGenerator

    source = make_mask_source(64, hole_ratio=(0.2, 0.3), kind="blobs")
    mask = source(np.random.default_rng(0))
    expected = MaskGenerator(64, 64, hole_ratio=(0.2, 0.3), kind="blobs")(np.random.default_rng(0))
    np.testing.assert_array_equal(mask, expected)
    mixed = make_mask_source(64, hole_ratio=(0.2, 0.3), kind="mixed", weights="thin=1")
    generator = mixed.generator  # type: ignore[attr-defined]
    for i in range(5):
        m = mixed(np.random.default_rng(i))
        assert 0.2 <= 1 - m.mean() <= 0.3 and generator.last_family == "thin"
