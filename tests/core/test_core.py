"""Tests of the shared input checks and atomic file writes."""

from __future__ import annotations

import os
import subprocess
import sys
import stat

import pytest
import torch

from pconv_kit.core.check import check_binary, check_image_mask, check_mask, check_shape
from pconv_kit.errors import InputValueError, PConvKitError, ShapeError
from pconv_kit.utils import atomic_write, atomic_write_bytes


def test_check_shape_binds_and_matches():
    assert check_shape(torch.zeros(2, 3, 4, 5), "B C H W") == {"B": 2, "C": 3, "H": 4, "W": 5}
    assert check_shape(torch.zeros(2, 1, 4, 4), "B 1 H H") == {"B": 2, "H": 4}
    assert check_shape(torch.zeros(2, 1, 4), "B 1|C N") == {"B": 2, "N": 4}
    with pytest.raises(ShapeError, match=r"must have 4 dimensions \(B, C, H, W\); got 3 with shape \(1, 2, 3\)"):
        check_shape(torch.zeros(1, 2, 3), "B C H W", "input")
    with pytest.raises(ShapeError, match=r"got \(2, 1, 4, 5\)"):
        check_shape(torch.zeros(2, 1, 4, 5), "B 1 H H")
    with pytest.raises(InputValueError, match="must be a torch.Tensor; got list"):
        check_shape([1, 2], "N")  # type: ignore[arg-type]


def test_errors_are_library_and_builtin_errors():
    with pytest.raises(ValueError):
        check_shape(torch.zeros(1), "A B")
    assert issubclass(ShapeError, PConvKitError)


def test_check_mask_values_and_binary():
    check_mask(torch.rand(1, 1, 4, 4))
    with pytest.raises(InputValueError, match=r"values must lie in \[0, 1\].*max 2"):
        check_mask(torch.full((1, 1, 2, 2), 2.0))
    with pytest.raises(InputValueError, match="floating point"):
        check_mask(torch.ones(1, 1, 2, 2, dtype=torch.uint8))
    with pytest.raises(InputValueError, match=r"must be binary .* e\.g\. 0\.5"):
        check_binary(torch.tensor([0.0, 0.5, 1.0]))
    check_mask(torch.ones(1, 1, 2, 2), binary=True)


def test_check_image_mask_names_both_shapes():
    image = torch.rand(2, 3, 8, 8)
    check_image_mask(image, torch.ones(2, 1, 8, 8))
    check_image_mask(image, torch.ones(2, 3, 8, 8))
    with pytest.raises(ShapeError, match=r"\(2, 1, 8, 8\) or \(2, 3, 8, 8\); got \(2, 2, 8, 8\)"):
        check_image_mask(image, torch.ones(2, 2, 8, 8))
    with pytest.raises(InputValueError, match="floating point"):
        check_image_mask(image.to(torch.uint8), torch.ones(2, 1, 8, 8))


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_bytes(target, b"first")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("writer crashed")
    assert target.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


def test_atomic_write_keeps_suffix_and_normal_permissions(tmp_path):
    with atomic_write(tmp_path / "img.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "img.png").stat().st_mode) == 0o666 & ~umask


def test_atomic_write_normal_permissions_when_writer_replaces_the_file(tmp_path):
    from safetensors.torch import save_file  # writes a new file (mode 0600) instead of filling the temp file

    with atomic_write(tmp_path / "w.safetensors") as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "w.safetensors").stat().st_mode) == 0o666 & ~umask


def test_atomic_write_no_overwrite(tmp_path):
    atomic_write_bytes(tmp_path / "a", b"1")
    with pytest.raises(FileExistsError):
        atomic_write_bytes(tmp_path / "a", b"2", overwrite=False)
    assert (tmp_path / "a").read_bytes() == b"1"


def test_atomic_write_never_touches_the_process_umask(tmp_path):
    # os.umask changes a process-wide setting: another thread creating a file meanwhile would get mode 0666.
    # Neither importing the module nor writing may call it (checked in a fresh process, before the import).
    code = (
        "import os, stat, sys\n"
        "umask = os.umask(0o022); os.umask(umask)\n"
        "def forbidden(mask): raise AssertionError('os.umask called')\n"
        "os.umask = forbidden\n"
        "from pconv_kit.utils.files import atomic_write_bytes\n"
        f"atomic_write_bytes({str(tmp_path / 'a.bin')!r}, b'x')\n"
        f"assert stat.S_IMODE(os.stat({str(tmp_path / 'a.bin')!r}).st_mode) == 0o666 & ~umask\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_atomic_write_no_overwrite_is_atomic_against_a_file_appearing_meanwhile(tmp_path):
    # another process creates the file while this one writes: its file stays, this write fails cleanly
    target = tmp_path / "a.txt"
    with pytest.raises(FileExistsError):
        with atomic_write(target, overwrite=False) as tmp:
            tmp.write_text("mine")
            target.write_text("theirs")
    assert target.read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace: deprecated, still a graph capture
def test_capturing_graph_is_false_in_eager_mode_and_true_while_tracing():
    from pconv_kit.core.tracing import capturing_graph

    seen = []

    def probe(x: torch.Tensor) -> torch.Tensor:
        seen.append(capturing_graph())
        return x * 2

    probe(torch.ones(2))
    torch.jit.trace(probe, torch.ones(2), check_trace=False)
    assert seen == [False, True]
