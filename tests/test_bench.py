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
    data = json.loads(out.output)
    assert data["threads"] == 1 and {t["engine"] for t in data["timings"]} == {"eager", "eager channels_last", "onnxruntime"}
    table = runner.invoke(cli, ["bench", "specs/small_cnn.yaml", "--batch", "1", "--rounds", "1"])
    assert table.exit_code == 0 and "onnxruntime" in table.output and "vs eager" in table.output
    bad = runner.invoke(cli, ["bench", "specs/small_cnn.yaml", "--batch", "1,x"])
    assert bad.exit_code == 2 and "batch sizes" in bad.output
