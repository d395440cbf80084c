"""Shared fixtures and the hypothesis profiles.

The ``ci`` profile (default when ``CI`` is set) is derandomised so a CI run is reproducible; ``dev`` explores
more examples. Select one with ``HYPOTHESIS_PROFILE=dev``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "photos"
EXAMPLE_IMAGES = REPO_ROOT / "examples" / "images"

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> torch.device:
    """Every available device: always the CPU, CUDA too when present."""
    return torch.device(request.param)


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """Every floating point dtype the layers support."""
    return request.param


def tolerance(dtype: torch.dtype) -> dict[str, float]:
    """``torch.testing.assert_close`` tolerances suited to ``dtype``."""
    return {
        torch.float16: {"atol": 2e-2, "rtol": 2e-2},
        torch.bfloat16: {"atol": 1e-1, "rtol": 5e-2},
        torch.float32: {"atol": 1e-4, "rtol": 1e-4},
        torch.float64: {"atol": 1e-10, "rtol": 1e-10},
    }[dtype]


@pytest.fixture(scope="session")
def photo_paths() -> list[Path]:
    """A few natural photos: the bundled examples, else ``../shared/data/photos``; skip if neither exists."""
    for folder in (EXAMPLE_IMAGES, SHARED_PHOTOS):
        if folder.is_dir():
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
            if paths:
                return paths
    pytest.skip("no example photos found")


def copy_photos(paths: list[Path], dest: Path) -> Path:
    """Copy ``paths`` into the folder ``dest`` (created) and return it: a training folder of real photos."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in paths:
        shutil.copy(p, dest / p.name)
    return dest
