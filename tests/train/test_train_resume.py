"""Killing ``pconv-kit train`` at any moment never corrupts a checkpoint, and resuming gives the same weights.

Each run is a real process (``python -m pconv_kit_cli train``) with one thread, so the runs are bitwise
comparable: an uninterrupted reference, a run killed with SIGKILL while it writes checkpoints every step, and
a run stopped with SIGINT (Ctrl-C), each resumed to the end; and a run with a data-loader worker whose whole
process group is signalled, as a terminal's Ctrl-C or a batch scheduler does.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pconv_kit.models import load_model
from pconv_kit.train.checkpoint import load_training_state, state_dict_digest
from tests.conftest import copy_photos

pytestmark = pytest.mark.slow

STEPS = 14


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "CI": "1", "PYTHONUNBUFFERED": "1"})
    return env


def _args(photos: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "pconv_kit_cli", "train", "--images", str(photos), "--out", str(out),
        "--steps", str(STEPS), "--size", "32", "--layer-size", "3", "--base-channels", "8", "--batch-size", "2",
        "--workers", "0", "--no-perceptual", "--seed", "4", "--device", "cpu", "--log-every", "1",
        "--val-every", "3", "--checkpoint-every", "1",
    ]


def _resume(out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pconv_kit_cli", "train", "--resume", str(out)],
        env=_env(), capture_output=True, text=True, timeout=120,
    )


def _digest(run: Path, name: str = "last.safetensors") -> str:
    return state_dict_digest(load_model(run / name).state_dict())


def _wait_for_checkpoint(proc: subprocess.Popen[str], out: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (out / "training_state.pt").exists() or not (out / "metrics.jsonl").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def photos(photo_paths: list[Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_photos(photo_paths[:4], tmp_path_factory.mktemp("photos"))


@pytest.fixture(scope="module")
def reference(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    done = subprocess.run(_args(photos, out), env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


def test_sigkill_at_any_moment_then_resume(photos: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(_args(photos, out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_checkpoint(proc, out)
        deadline = time.monotonic() + 60
        while (out / "metrics.jsonl").read_text().count("\n") < 4:  # mid-run, checkpoints written every step
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.005)
        proc.kill()
    finally:
        proc.communicate(timeout=30)
    state = load_training_state(out / "training_state.pt")  # never a torn file
    assert 1 <= state["step"] < STEPS
    load_model(out / "last.safetensors")
    done = _resume(out)
    assert done.returncode == 0, done.stderr
    assert _digest(out) == _digest(reference)
    assert _digest(out, "best.safetensors") == _digest(reference, "best.safetensors")
    assert not [p for p in out.iterdir() if ".tmp" in p.name]  # leftovers of the killed write are gone
    steps = [int(line.split('"step": ')[1].split(",")[0]) for line in (out / "metrics.jsonl").read_text().splitlines()
             if '"split": "train"' in line]
    assert steps == list(range(1, STEPS + 1))  # no duplicated or missing lines after the resume


def _signal_mid_run(args: list[str], out: Path, send, attempts: int = 3, **popen) -> tuple[int, str]:  # noqa: ANN001
    """Start a run, wait for its first metrics line, call ``send(proc)``; ``(returncode, stderr)``.

    A run that finishes before the signal arrives has lost the race, not shown a bug: it is run again (from an
    empty folder), and the test fails only if every attempt loses.
    """
    for _ in range(attempts):
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.Popen(args, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
        try:
            deadline = time.monotonic() + 60
            while not (out / "metrics.jsonl").exists() or "\n" not in (out / "metrics.jsonl").read_text():
                if proc.poll() is not None:
                    break
                assert time.monotonic() < deadline, "no metrics line appeared"
                time.sleep(0.02)
            if proc.poll() is None:
                send(proc)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:  # the whole group when it has one (its data-loader workers too)
                os.killpg(proc.pid, signal.SIGKILL) if popen.get("start_new_session") else proc.kill()
        if proc.returncode != 0:
            return proc.returncode, stderr
    pytest.fail(f"training finished before the signal arrived in all {attempts} attempts")


def test_ctrl_c_writes_a_checkpoint_and_exits_130(photos: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = _args(photos, out)
    args[args.index("--checkpoint-every") + 1] = "100"  # only the stop writes a checkpoint
    returncode, stderr = _signal_mid_run(args, out, lambda proc: proc.send_signal(signal.SIGINT))
    assert returncode == 130, stderr
    assert stderr.count("checkpoint written") == 1 and "--resume" in stderr and "Traceback" not in stderr
    state = load_training_state(out / "training_state.pt")
    assert 1 <= state["step"] < STEPS
    done = _resume(out)
    assert done.returncode == 0, done.stderr
    assert _digest(out) == _digest(reference)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_to_the_process_group_with_workers(photos: Path, reference: Path, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "run"
    args = _args(photos, out)
    args[args.index("--workers") + 1] = "1"
    args[args.index("--checkpoint-every") + 1] = "100"  # only the stop writes a checkpoint
    # a process group of its own, signalled as a whole: the main process and its data-loader worker
    returncode, stderr = _signal_mid_run(args, out, lambda proc: os.killpg(proc.pid, sig), start_new_session=True)
    assert returncode == 130, stderr
    assert "checkpoint written" in stderr and "Traceback" not in stderr
    state = load_training_state(out / "training_state.pt")
    assert 1 <= state["step"] < STEPS
    done = _resume(out)
    assert done.returncode == 0, done.stderr
    assert _digest(out) == _digest(reference)  # the worker count does not change the samples


