"""Two ``torchrun`` processes on the CPU (Gloo, loopback) train one model with DistributedDataParallel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from pconv_kit.models import PConvUNet, load_model
from pconv_kit.train.checkpoint import load_training_state, state_dict_digest
from tests.conftest import copy_photos

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with Gloo"),
]


def test_two_processes_agree_and_write_one_checkpoint(tmp_path: Path, photo_paths: list[Path]) -> None:
    photos = copy_photos(photo_paths[:4], tmp_path / "photos")
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1", PYTHONUNBUFFERED="1", MASTER_ADDR="127.0.0.1")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
        "-m", "pconv_kit_cli", "train", "--images", str(photos), "--out", str(out), "--steps", "6",
        "--size", "32", "--layer-size", "3", "--base-channels", "8", "--batch-size", "4", "--workers", "0",
        "--no-perceptual", "--seed", "2", "--device", "cpu", "--log-every", "2", "--val-every", "3",
        "--checkpoint-every", "3",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log

    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["final_step"] == 6
    # every rank hashed its own final weights; they agree with each other and with the one checkpoint
    digests = summary["rank_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert state_dict_digest(load_model(out / "last.safetensors").state_dict()) == digests[0]
    state = load_training_state(out / "training_state.pt")
    assert state["world_size"] == 2 and state["step"] == 6
    assert state_dict_digest(state["model"]) == digests[0]
    # rank 0 alone logs and writes: one line per logged step, one set of files
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == [2, 4, 6]
    assert [x["step"] for x in lines if x["split"] == "val"] == [3, 6]
    assert log.count("step 6/6") == 1 and log.count("done: step 6 of 6") == 1
    assert "2 process(es)" in log
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["best.safetensors", "best.safetensors.json", "config.toml", "last.safetensors", "last.safetensors.json",
         "metrics.jsonl", "samples", "summary.json", "training_state.pt"]
    )


def test_matches_a_single_process_when_there_is_no_batchnorm(tmp_path: Path, photo_paths: list[Path]) -> None:
    """``layer_size=1`` has no BatchNorm, so 2 processes x 2 samples is the maths of 1 process x 4 samples."""
    import torch

    from pconv_kit.train import TrainConfig, train

    photos = copy_photos(photo_paths[:4], tmp_path / "photos")
    flags = ["--size", "32", "--layer-size", "1", "--base-channels", "8", "--batch-size", "4", "--workers", "0",
             "--no-perceptual", "--seed", "9", "--device", "cpu", "--steps", "5", "--val-fraction", "0"]
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "pconv_kit_cli",
           "train", "--images", str(photos), "--out", str(tmp_path / "ddp"), *flags]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    single = TrainConfig(
        images=str(photos), out=str(tmp_path / "single"), size=32, layer_size=1, base_channels=8, batch_size=4,
        workers=0, perceptual=False, seed=9, device="cpu", steps=5, val_fraction=0.0,
    )
    train(single, reporter="none")
    a = load_model(tmp_path / "ddp" / "last.safetensors").state_dict()
    b = load_model(tmp_path / "single" / "last.safetensors").state_dict()
    start = load_training_state(tmp_path / "ddp" / "training_state.pt")
    assert start["step"] == 5
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-4)
    # and training did move the weights (the comparison is not between two untouched initialisations)
    torch.manual_seed(9)
    init = PConvUNet(layer_size=1, base_channels=8).state_dict()
    assert not torch.allclose(init["head.weight"], a["head.weight"], atol=1e-4)
    moved = json.loads((tmp_path / "ddp" / "summary.json").read_text())["train_metrics"]
    assert moved["step"] == 5 and moved["grad_norm"] > 0


_LEAVES_NO_THREADS = """
import json, os, sys
from pathlib import Path
from pconv_kit.train import TrainConfig, train

cfg = TrainConfig(images=sys.argv[1], out=sys.argv[2], size=32, layer_size=1, base_channels=8, batch_size=4,
                  workers=0, perceptual=False, seed=3, device="cpu", steps=2, val_fraction=0.0)
train(cfg, reporter="none")
threads = sorted(p.read_text().strip() for p in Path("/proc/self/task").glob("*/comm"))
Path(sys.argv[3], f"threads_{os.environ['RANK']}.json").write_text(json.dumps(threads))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through /proc (Linux)")
def test_the_process_group_is_gone_when_train_returns(tmp_path: Path, photo_paths: list[Path]) -> None:
    """After ``train`` no Gloo thread is left running: one left until exit could abort the process there."""
    photos = copy_photos(photo_paths[:4], tmp_path / "photos")
    script = tmp_path / "leaves_no_threads.py"
    script.write_text(_LEAVES_NO_THREADS, encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", CI="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(script),
           str(photos), str(tmp_path / "run"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    for rank in (0, 1):  # each rank lists its threads in its own file (the ranks share one stdout)
        threads = json.loads((tmp_path / f"threads_{rank}.json").read_text())
        assert threads and not [t for t in threads if "gloo" in t], (rank, threads)
