"""Smoke tests of the benchmark suite (``python -m benchmarks.run``) and its helpers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # the benchmarks package lives at the repository root, outside the wheel
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_layers import unet_layer_shapes  # noqa: E402
from benchmarks.common import compare  # noqa: E402
from benchmarks.plain_unet import PlainUNet, conv_flops  # noqa: E402
from pconv_kit import PConvUNet  # noqa: E402


def test_compare_reports_ratios_to_the_first_candidate(monkeypatch: pytest.MonkeyPatch) -> None:
    # a fake clock that only the candidates advance: the ratio is exact, whatever else the machine is doing
    now = [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1
        now[0] += 0.004

    def b():
        calls["b"] += 1
        now[0] += 0.012

    res = compare({"a": a, "b": b}, repeats=5, warmup=1)
    assert calls == {"a": 6, "b": 6}
    assert res["a"]["rounds"] == res["b"]["rounds"] == 5 and "ratio" not in res["a"]
    assert res["b"]["ratio"] == pytest.approx(3.0)
    lo, hi = res["b"]["ratio_iqr"]
    assert lo <= res["b"]["ratio"] <= hi
    with pytest.raises(ValueError, match="clock"):
        compare({"a": a}, repeats=1, clock="gpu")


def test_layer_shapes_are_those_of_the_paper_network():
    shapes = unet_layer_shapes(512)
    assert len(shapes) == 16
    enc = [(s.in_channels, s.out_channels, s.kernel, s.stride, s.size) for s in shapes if s.name.startswith("enc")]
    assert enc[:4] == [(3, 64, 7, 2, 512), (64, 128, 5, 2, 256), (128, 256, 5, 2, 128), (256, 512, 3, 2, 64)]
    model = PConvUNet()
    dec = [s for s in shapes if s.name.startswith("dec")]
    assert [s.in_channels for s in dec] == [b.conv.in_channels for b in model.decoder]
    assert shapes[-1].in_channels == model.head.in_channels and shapes[-1].size == 512


def test_plain_unet_mirrors_pconvunet():
    model = PConvUNet(layer_size=3, base_channels=4)
    plain = PlainUNet.from_pconv(model)
    assert plain.state_dict().keys() == model.state_dict().keys()
    for (name, p), q in zip(model.named_parameters(), plain.parameters()):
        assert torch.equal(p, q), name
    assert plain(torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16)).shape == (2, 3, 16, 16)


def test_conv_flops_counts_every_main_convolution():
    model = PConvUNet(layer_size=2, base_channels=4)
    # enc1 3->4 7x7 @8x8, enc2 4->8 5x5 @4x4, dec 12->4 3x3 @8x8, head 7->3 3x3 @16x16
    expected = 2 * (64 * 4 * 3 * 49 + 16 * 8 * 4 * 25 + 64 * 4 * 12 * 9 + 256 * 3 * 7 * 9)
    assert conv_flops(model, 16, 16) == expected
    assert conv_flops(model, 16, 16, batch=3) == 3 * expected


@pytest.mark.slow
def test_quick_suite_runs_and_writes_json(tmp_path):
    out, md = tmp_path / "bench.json", tmp_path / "bench.md"
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--json", str(out), "--markdown", str(md)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.perf_counter() - started < 240  # about 15 s on an idle 2-core machine; generous for loaded ones
    results = json.loads(out.read_text())
    assert set(results["sections"]) == {"layers", "unet", "fill", "masks", "memory", "replace"}
    env = results["environment"]
    assert env["torch"] == torch.__version__ and env["torch_threads"] == 2 and env["device"] == "cpu"
    layers = results["sections"]["layers"]
    assert {r["mode"] for r in layers["rows"]} == {"broadcast", "per-channel", "count"}
    ratios = [r["ratio"] for r in layers["rows"]]
    ratios += [r["ratio"] for r in results["sections"]["unet"]["rows"]]
    ratios += [r["ratio"] for r in results["sections"]["memory"]["rows"]]
    ratios += [r["ratio"] for r in results["sections"]["replace"]["rows"]]
    assert all(isinstance(r, float) and math.isfinite(r) and r > 0 for r in ratios), ratios
    unet = results["sections"]["unet"]
    assert unet["peak"]["peak_gflops"] > 0
    assert all(0 < r["pconv_peak_fraction"] for r in unet["rows"] if r["what"] == "inference")
    fill = results["sections"]["fill"]
    assert fill["fill_images_per_s"] > 0 and fill["fill_fraction"] > 0 and math.isfinite(fill["fill_fraction"])
    assert results["sections"]["masks"]["dilation"]["same_result"] is True
    assert {t["target"].split(" ")[0] for t in results["targets"]} >= {"PartialConv2d", "PConvUNet", "fill"}
    text = md.read_text()
    assert "PartialConv2d forward+backward / nn.Conv2d" in text and "| **median** |" in text
    assert "results written to" in proc.stdout
