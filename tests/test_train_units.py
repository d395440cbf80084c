"""Unit tests of the trainer's parts: the training state on disk."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from pconv_kit.errors import InputValueError
from pconv_kit.train.checkpoint import (
    STATE_FORMAT,
    TrainingState,
    capture_rng_state,
    load_training_state,
    save_training_state,
)

# the keys of training_state.pt as written since format 1 (without "format", which save_training_state adds)
STATE_KEYS = {
    "step", "steps", "model", "optimizer", "scaler", "best_psnr", "best_step", "rng", "data", "seed", "config",
    "world_size", "elapsed_s", "skipped_files", "torch_version",
}


def _state() -> TrainingState:
    net = nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return TrainingState(
        step=12, model=dict(net.state_dict()), optimizer=opt.state_dict(), rng=capture_rng_state(), steps=40,
        best_psnr=21.5, best_step=10, train_files=7, global_batch=4, next_sample=48, seed=3, config="steps = 40\n",
        world_size=2, elapsed_s=9.25, skipped_files=["a.png"], torch_version="2.x",
    )


def test_training_state_round_trip_through_the_file(tmp_path: Path) -> None:
    state = _state()
    d = state.to_dict()
    assert set(d) == STATE_KEYS
    assert d["data"] == {"train_files": 7, "global_batch": 4, "next_sample": 48}
    save_training_state(tmp_path / "s.pt", d)
    raw = load_training_state(tmp_path / "s.pt")
    assert raw["format"] == STATE_FORMAT
    back = TrainingState.from_dict(raw)
    assert (back.step, back.steps, back.best_psnr, back.best_step, back.train_files, back.next_sample) == (12, 40, 21.5, 10, 7, 48)
    assert (back.seed, back.config, back.world_size, back.elapsed_s, back.skipped_files) == (3, "steps = 40\n", 2, 9.25, ["a.png"])
    assert all(torch.equal(back.model[k], v) for k, v in state.model.items())
    assert back.optimizer["state"][0]["exp_avg"].equal(state.optimizer["state"][0]["exp_avg"])
    assert back.to_dict().keys() == d.keys()


def test_training_state_reads_an_older_dict_without_the_optional_keys() -> None:
    old = {"step": 5, "model": {}, "optimizer": {"state": {}, "param_groups": []}, "rng": {}, "scaler": None,
           "format": STATE_FORMAT, "unknown_later_key": 1}
    state = TrainingState.from_dict(old)
    assert state.step == 5 and state.scaler == {} and state.best_psnr is None and state.best_step is None
    assert state.train_files is None and state.elapsed_s == 0.0 and state.skipped_files == [] and state.world_size == 1
    with pytest.raises(InputValueError, match="optimizer, rng"):
        TrainingState.from_dict({"step": 1, "model": {}})
