"""The memory budget: estimated by arithmetic, enforced before anything is allocated."""

from __future__ import annotations


import pytest
import torch
from click.testing import CliRunner

import convspec
from convspec.budget import estimate_memory, parse_size
from convspec.cli import cli
from support import watchdog  # tests/ is on sys.path (conftest.py)

HUGE = """input: {channels: 3, size: [224, 224]}
layers:
  - {type: conv, name: wide1, out_channels: 1000000, kernel_size: 3, padding: 1}
  - {type: conv, name: wide2, out_channels: 1000000, kernel_size: 3, padding: 1}
"""


@pytest.mark.parametrize("path", ["specs/resnet_small.yaml", "specs/gaussian_named.yaml", "specs/nine_kinds.yaml"])
def test_weight_estimate_equals_the_built_module(path):
    report = convspec.check(path)
    model = convspec.build(path)
    persistent = set(model.state_dict())  # derived copies (a separable filter's 1-D passes) are not counted
    real = sum(p.numel() for p in model.parameters()) + sum(
        b.numel() for name, b in model.named_buffers() if name in persistent and not name.endswith("num_batches_tracked")
    )
    assert estimate_memory(report).weight_bytes == 4 * real


def test_two_million_channel_convs_end_in_seconds_with_a_clear_error(tmp_path):
    spec = tmp_path / "huge.yaml"
    spec.write_text(HUGE)
    with watchdog(120, "build of two million-channel convs"):  # refused before any weight is allocated
        result = CliRunner().invoke(cli, ["build", str(spec)])
    assert result.exit_code == 1, result.output
    assert "over the budget" in result.output and "wide2" in result.output and "wide1" in result.output
    assert "huge.yaml:4:5: layers[1] 'wide2' (conv)" in result.output


def test_max_memory_is_enforced_and_parsed():
    with pytest.raises(convspec.BudgetError, match="over the budget of 1.0 KB"):
        convspec.build("specs/small_cnn.yaml", max_memory=1000)
    assert isinstance(convspec.build("specs/small_cnn.yaml", max_memory=parse_size("1GB")), torch.nn.Module)
    assert parse_size("512MiB") == 512 * 2**20 and parse_size("2e9") == 2_000_000_000 and parse_size("1.5 kb") == 1500
    with pytest.raises(ValueError):
        parse_size("lots")
    result = CliRunner().invoke(cli, ["build", "specs/small_cnn.yaml", "--max-memory", "1KB"])
    assert result.exit_code == 1 and "budget" in result.output
    result = CliRunner().invoke(cli, ["build", "specs/small_cnn.yaml", "--max-memory", "lots"])
    assert result.exit_code == 2


@pytest.mark.parametrize("name", ["nine_kinds", "mobilenet_v1", "resnet_small", "edge_kernel"])
def test_weight_estimate_equals_the_built_tensors(name):
    """Parameters plus buffers (BatchNorm statistics, frozen kernels), separable's depthwise norm included."""
    report = convspec.check(f"specs/{name}.yaml")
    model = convspec.build(report.spec)
    real = sum(p.numel() for p in model.parameters())
    real += sum(b.numel() for n, b in model.named_buffers() if not n.endswith("num_batches_tracked") and n in model.state_dict())
    assert estimate_memory(report).weight_bytes == 4 * real


def test_build_budgets_the_weights_and_running_commands_the_activations_too(tmp_path):
    """A large batch makes large activations but no more weights: build allocates only the weights."""
    big_batch = ["--input", "512x3x224x224", "--max-memory", "2GB"]
    report = convspec.check("specs/resnet34.yaml", "512x3x224x224")
    estimate = estimate_memory(report)
    assert estimate.weight_bytes < parse_size("2GB") < estimate.total
    built = CliRunner().invoke(cli, ["build", "specs/resnet34.yaml", *big_batch])
    assert built.exit_code == 0, built.output
    # export runs batches 1 to 3, never --input's 512: those count, over the 87.3 MB of weights
    exported = CliRunner().invoke(
        cli, ["export", "specs/resnet34.yaml", "-o", str(tmp_path / "r.onnx"), *big_batch[:2], "--max-memory", "100MB"]
    )
    assert exported.exit_code == 1 and not (tmp_path / "r.onnx").exists()
    assert "building and running this network needs about" in exported.output
    assert "activations at batch 3)" in exported.output
    refused = CliRunner().invoke(cli, ["build", "specs/resnet34.yaml", *big_batch[:2], "--max-memory", "10MB"])
    assert refused.exit_code == 1
    assert "building this network allocates about 87.3 MB of weights, over the budget of 10.0 MB" in refused.output
    assert "activations" not in refused.output
