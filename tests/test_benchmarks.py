"""The benchmark script's own pieces: its generated specs are what they claim, its flags are checked."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import convspec

ROOT = Path(__file__).resolve().parent.parent


def _load_script():
    spec = importlib.util.spec_from_file_location("benchmark_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _convs(layers) -> int:
    return sum(
        _convs(layer.children) if layer.children else layer.type == "conv"
        for layer in layers
    )


def test_generated_1000_layer_specs():
    run = _load_script()
    plain = convspec.check(run._plain_stack())
    assert _convs(plain.layers) == 1000
    resnet = convspec.check(run._resnet_1001())
    # 1 stem + 333 bottlenecks of 3 convs on the main path, 3 projection shortcuts, then a linear
    assert _convs(resnet.layers) == 1 + 333 * 3 + 3
    assert resnet.layers[-1].type == "linear" and resnet.layers[-1].output_shape == (1, 10)
    assert 10_000_000 < resnet.total_params < 10_500_000  # the paper's ResNet-1001: 10.2M


def test_unknown_section_is_refused():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "checkr"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown section(s) checkr" in proc.stderr


def test_scaling_specs_have_the_layers_they_claim():
    run = _load_script()
    for layers in (30, 300):
        assert sum(1 for _ in convspec.check(run._plain_stack(layers)).walk()) == layers
        residual = convspec.check(run._residual_stack(layers))
        assert sum(1 for _ in residual.walk()) == layers // 3 * 3  # a residual and its two convs
        assert all(layer.type == "residual" for layer in residual.layers)


def test_scaling_section_reports_a_ratio_per_spec():
    run = _load_script()
    rows = run.section_scaling(quick=True, sizes=(30, 300), rounds=1)  # small sizes: the section's workings, not figures
    assert [row["spec"] for row in rows] == [
        "3x3 conv stack, dict", "3x3 conv stack, YAML text", "residual blocks, dict", "residual blocks, YAML text",
    ]
    for row in rows:
        assert row["30_layers_ms"] > 0 and row["300_layers_ms"] > 0
        assert row["ratio"] == pytest.approx(row["us_per_layer_300"] / row["us_per_layer_30"], rel=0.05, abs=0.02)
        assert row["goal"] == f"<= {run.SCALING_GOAL}"
