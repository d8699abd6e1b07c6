"""`convspec bench`: the engines, the ratios' baseline and the output forms (no timing assertions)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from convspec.bench import bench
from convspec.cli import cli


def test_bench_times_every_engine_per_batch():
    result = bench("specs/small_cnn.yaml", batches=(1, 2), rounds=1, block_seconds=0.001)
    engines = [(t.batch, t.engine) for t in result.timings]
    assert engines == [(b, e) for b in (1, 2) for e in ("eager", "eager channels_last", "onnxruntime")]
    assert all(t.ratio == 1.0 for t in result.timings if t.engine == "eager")
    assert all(t.median_ms > 0 and t.gmacs_per_s > 0 for t in result.timings)
    assert result.macs_per_sample == 737_480


def test_bench_1d_has_no_channels_last():
    result = bench("specs/conv1d_audio.yaml", batches=(1,), rounds=1, block_seconds=0.001)
    assert [t.engine for t in result.timings] == ["eager", "onnxruntime"]


def test_bench_command_json_and_table():
    runner = CliRunner()
    out = runner.invoke(cli, ["bench", "specs/small_cnn.yaml", "--batch", "1", "--rounds", "1", "--format", "json", "--threads", "1"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)  # a load warning, if any, goes to stderr
    assert data["threads"] == 1 and {t["engine"] for t in data["timings"]} == {"eager", "eager channels_last", "onnxruntime"}
    table = runner.invoke(cli, ["bench", "specs/small_cnn.yaml", "--batch", "1", "--rounds", "1"])
    assert table.exit_code == 0 and "onnxruntime" in table.output and "vs eager" in table.output
    bad = runner.invoke(cli, ["bench", "specs/small_cnn.yaml", "--batch", "1,x"])
    assert bad.exit_code == 2 and "batch sizes" in bad.output


# ---------------------------------------------------------------- the time budget, the spread, the load, per layer

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convspec.bench import MAX_CALLS, EngineTiming, Load, load_warnings, plan_rounds
from convspec.bench_layers import UNATTRIBUTED, layer_of, spec_node
from convspec.errors import InputError

TINY_NET = {
    "input": {"channels": 3, "size": [16, 16]},
    "layers": [
        {"type": "conv", "out": 4, "kernel": 3, "norm": "batch", "act": "relu"},
        {"type": "dropout", "p": 0.5},
        {"type": "flatten"},
        {"type": "linear", "out": 3},
    ],
}


@settings(max_examples=200, deadline=None)
@given(
    once=st.floats(1e-7, 30.0),
    share=st.floats(1e-3, 600.0),
    rounds=st.integers(1, 100),
    block=st.floats(1e-3, 60.0),
)
def test_planned_calls_fit_the_share(once, share, rounds, block):
    planned_rounds, calls = plan_rounds(once, share, rounds, block)
    assert 1 <= planned_rounds <= rounds and 1 <= calls <= MAX_CALLS
    if (planned_rounds, calls) != (1, 1):  # one call is always made, however slow
        assert planned_rounds * calls * once <= share * (1 + 1e-9)
    if calls > 1:
        assert calls * once <= block * (1 + 1e-9)
    if once * rounds * 2 <= share and once * 2 <= block:  # a cheap call: every round is kept
        assert planned_rounds == rounds


def test_bench_keeps_to_its_time_budget_and_reports_spread_and_load():
    seconds = 0.6
    result = bench(TINY_NET, batches=(1, 2), rounds=5, seconds=seconds, threads=1)
    share = seconds / (2 * 3)  # two batches, three engines
    for t in result.timings:
        assert 1 <= t.rounds <= 5
        # the timed calls, at the calibrated time per call, fit the pair's share of the budget
        assert t.rounds * t.calls_per_round * t.calibration_ms / 1e3 <= share
        assert t.min_ms <= t.q1_ms <= t.median_ms <= t.q3_ms <= t.max_ms
        assert t.spread >= 0
    data = result.to_dict()
    assert data["seconds"] == seconds
    assert set(data["load"]) == {"before", "after", "cores"} and data["load"]["cores"] >= 1
    assert {"q1_ms", "q3_ms", "min_ms", "max_ms", "spread", "calibration_ms"} <= set(data["timings"][0])
    assert isinstance(data["warnings"], list) and data["layers"] == []


def test_per_layer_rows_cover_every_layer_in_both_engines():
    result = bench(TINY_NET, batches=(1, 2), rounds=2, seconds=0.3, threads=1, per_layer=True)
    names = ["conv_0", "dropout_1", "flatten_2", "linear_3"]
    for engine in ("eager", "onnxruntime"):
        for batch in (1, 2):
            rows = [t for t in result.layers if t.engine == engine and t.batch == batch]
            assert [t.layer for t in rows if t.layer != UNATTRIBUTED] == names
            assert sum(t.share for t in rows) == pytest.approx(1.0)
            assert all(t.median_ms >= 0 for t in rows)
    eager = [t for t in result.layers if t.engine == "eager"]
    assert all(t.median_ms > 0 for t in eager)  # every layer runs in eager
    onnx_rows = {t.layer: t for t in result.layers if t.engine == "onnxruntime" and t.batch == 1}
    assert onnx_rows["conv_0"].median_ms > 0 and onnx_rows["linear_3"].median_ms > 0
    # dropout is nothing at inference: no node, said so
    assert onnx_rows["dropout_1"].median_ms == 0 and "no node of its own" in onnx_rows["dropout_1"].note
    data = result.to_dict()
    assert {"engine", "batch", "layer", "type", "median_ms", "share", "note"} == set(data["layers"][0])


def test_profiled_names_map_back_to_spec_layers():
    nodes = {"stem/Conv", "stem/Relu", "layer1.0.residual_0.conv2/Conv", "fc/Gemm"}
    producers = {"relu": "stem/Relu", "relu_1": "layer1.0.residual_0.conv2/Conv", "getitem_6": "layer1.0.residual_0.conv2/Conv"}
    assert spec_node("fc/Gemm", nodes, producers) == "fc/Gemm"
    assert spec_node("relu_nchwc", nodes, producers) == "stem/Relu"  # a fused node named after its output
    assert spec_node("relu_1_nchwc", nodes, producers) == "layer1.0.residual_0.conv2/Conv"  # the longest name first
    assert spec_node("getitem_6_nchwc", nodes, producers) == "layer1.0.residual_0.conv2/Conv"
    assert spec_node("ReorderOutput", nodes, producers) is None
    top = {"stem", "layer1", "fc"}
    assert layer_of("layer1.0.residual_0.conv2/Conv", top) == "layer1"
    assert layer_of("stem/Relu", top) == "stem"
    assert layer_of("Conv", top) is None and layer_of("other/Conv", top) is None


def _timing(q1: float, median: float, q3: float) -> EngineTiming:
    return EngineTiming("eager", 1, median, 1.0, 1.0, 5, 10, median, q1, q3, q1, q3)


def test_load_and_spread_warnings():
    steady = [_timing(0.95, 1.0, 1.05)]
    assert load_warnings(Load(0.1, 1.2, 2), 1, steady) == []
    busy = load_warnings(Load(1.9, 2.5, 2), 2, steady)
    assert len(busy) == 1 and "load average 1.90" in busy[0] and "2 threads" in busy[0]
    started_during = load_warnings(Load(0.2, 3.0, 2), 1, steady)
    assert len(started_during) == 1 and "after the run" in started_during[0]
    noisy = load_warnings(Load(None, None, 2), 1, [_timing(0.5, 1.0, 1.5)])
    assert len(noisy) == 1 and "eager at batch 1 (100%)" in noisy[0]


@pytest.mark.parametrize("seconds", [0, -1, float("inf"), float("nan"), 3601])
def test_bench_refuses_a_bad_budget(seconds):
    with pytest.raises(InputError, match="seconds"):
        bench(TINY_NET, seconds=seconds)


def test_bench_command_budget_per_layer_and_warnings(tmp_path):
    runner = CliRunner()  # .stdout holds the tables, .stderr the warnings
    args = ["bench", "specs/small_cnn.yaml", "--batch", "1", "--rounds", "2", "--seconds", "0.3", "--threads", "1"]
    out = runner.invoke(cli, [*args, "--per-layer"])
    assert out.exit_code == 0, out.output
    assert "timing budget 0.3 s" in out.stdout and "load average" in out.stdout and "middle half" in out.stdout
    assert "per layer" in out.stdout and "conv1" in out.stdout and "fc" in out.stdout
    data = json.loads(runner.invoke(cli, [*args, "--format", "json", "--per-layer"]).stdout)
    assert data["seconds"] == 0.3 and "before" in data["load"] and data["layers"]
    for bad in ("0", "-2", "x"):
        refused = runner.invoke(cli, ["bench", "specs/small_cnn.yaml", "--seconds", bad])
        assert refused.exit_code == 2 and "--seconds" in refused.output


def test_rounds_stop_at_the_deadline_when_calls_slow_down(monkeypatch):
    import convspec.bench as bench_module

    clock = [0.0]
    monkeypatch.setattr(bench_module.time, "perf_counter", lambda: clock[0])
    cost = {"eager": 0.001, "onnxruntime": 0.001}

    def engine(name):
        def call():
            clock[0] += cost[name]
            if name == "eager":
                cost["eager"] *= 10  # the machine gets busy: each eager call ten times slower than the last
        return call

    engines = {name: engine(name) for name in cost}
    plans = {"eager": (7, 2), "onnxruntime": (7, 2)}
    samples, done = bench_module.timed_rounds(engines, plans, limit=1.0)
    assert 1 <= done < 7 and all(len(times) == done for times in samples.values())
    steady = {"eager": lambda: clock.__setitem__(0, clock[0] + 0.001)}
    samples, done = bench_module.timed_rounds(steady, {"eager": (5, 3)}, limit=1.0)
    assert done == 5 and len(samples["eager"]) == 5
