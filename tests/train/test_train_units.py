"""Unit tests of the trainer's parts: the training state on disk, one optimisation step, the metric window."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from pconv_kit.errors import InputValueError
from pconv_kit.train.build import grad_scaler
from pconv_kit.train.checkpoint import (
    STATE_FORMAT,
    TrainingState,
    capture_rng_state,
    load_training_state,
    save_training_state,
)
from pconv_kit.train.step import MetricWindow, TrainingParts, train_step

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


class _Net(nn.Module):
    """A one-weight "inpainting network": output = image * w."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x * self.w, m


class _Loss(nn.Module):
    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, out: torch.Tensor, image: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        l1 = (out - image).abs().mean()
        return {"l1": l1, "total": l1 * self.scale}


def _parts(scale: float) -> TrainingParts:
    net = _Net()
    return TrainingParts(net, net, _Loss(scale), torch.optim.SGD(net.parameters(), lr=0.1),
                         grad_scaler(torch.device("cpu"), enabled=False), None, "cpu", list(net.parameters()))


@pytest.mark.parametrize("grad_clip", [0.0, 1.0], ids=["no-clip", "clip"])
def test_train_step_updates_on_a_finite_loss_and_skips_a_non_finite_one(grad_clip: float) -> None:
    image, mask = torch.ones(2, 3, 4, 4), torch.ones(2, 1, 4, 4)
    parts = _parts(1.0)
    result = train_step(parts, image, mask, grad_clip)
    assert not result.skipped and parts.model.w.item() != 0.5
    assert (result.grad_norm is not None) == (grad_clip > 0)
    for scale in (math.nan, math.inf):
        parts = _parts(scale)
        result = train_step(parts, image, mask, grad_clip)
        assert result.skipped and parts.model.w.item() == 0.5, scale
        assert not math.isfinite(float(result.terms["total"].detach()))


def test_metric_window_averages_the_steps_and_times_them_without_excluded_time() -> None:
    now = [100.0]
    w = MetricWindow(clock=lambda: now[0])
    w.add({"total": torch.tensor(1.0), "hole": torch.tensor(0.5)}, grad_norm=torch.tensor(2.0))
    w.add({"total": torch.tensor(3.0), "hole": torch.tensor(1.5)})  # every mean is over all the steps of the window
    assert w.means() == {"grad_norm": 1.0, "hole": 1.0, "total": 2.0}
    assert w.means(lambda t: t * 10)["total"] == 20.0  # e.g. the mean over processes
    w.exclude(3.0)  # validation inside the window
    assert w.rate(105.0) == pytest.approx(2 / 2.0)
    w.reset(105.0)
    assert w.steps == 0 and w.sums == {} and w.excluded_s == 0.0
    w.add({"total": torch.tensor(4.0, dtype=torch.bfloat16)})
    assert w.means() == {"total": 4.0} and w.sums["total"].dtype == torch.float32
    assert w.rate(105.0) == pytest.approx(1 / 1e-9)


def test_the_console_line_shows_every_term_the_loss_can_return() -> None:
    from pconv_kit.losses import inpainting_loss
    from pconv_kit.losses.weights import TERM_NAMES, WEIGHT_NAMES
    from pconv_kit.train.display import format_terms

    torch.manual_seed(0)
    out, gt = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    mask = (torch.rand(1, 1, 16, 16) > 0.5).float()
    weights = {name: 1.0 for name in WEIGHT_NAMES}  # every term on
    terms = inpainting_loss(out, gt, mask, lambda x: [x], **weights)
    record = {"step": 1, "lr": 1e-4, "grad_norm": 2.0, **{k: float(v) for k, v in terms.items()}}
    line = format_terms(record)
    shown = {field for i, field in enumerate(line.split()) if i % 2 == 0}
    assert shown == set(terms) == set(TERM_NAMES)
    assert line.startswith("total ")
