"""Which input sizes a spec takes: the summary agrees with the checker for every size."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.cli import cli
from convspec.input_sizes import input_sizes
from convspec.trace import check_spec

ROOT = Path(__file__).resolve().parent.parent


def checks(spec, sizes: tuple[int, ...]) -> bool:
    return not check_spec(spec, (1, spec.input.channels, *sizes)).errors


@pytest.mark.parametrize(
    "name, text",
    [
        ("unet_small", "H and W: multiples of 8"),
        ("small_cnn", "H and W: at least 4"),
        ("conv1d_audio", "L: at least 80"),
        ("squeezenet1_1", "H and W: at least 17"),
        ("resnet34", "H and W: any size"),
    ],
)
def test_the_example_specs_take_these_sizes(name, text):
    assert input_sizes(convspec.load(ROOT / "specs" / f"{name}.yaml")).describe() == text


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 300), axis=st.integers(0, 1))
def test_the_unet_summary_is_the_checker_s_answer(size, axis):
    spec = convspec.load(ROOT / "specs" / "unet_small.yaml")
    summary = input_sizes(spec)
    sizes = [64, 64]
    sizes[axis] = size
    assert summary.allows(tuple(sizes)) == checks(spec, tuple(sizes))


def _encoder_decoder(levels: int, pool: int, padding: int, kernel: int) -> dict:
    """A U-Net-like spec: `levels` conv+pool steps down, transposed convs back up, each joined to its encoder."""
    layers: list[dict] = []
    for level in range(levels):
        layers.append({"name": f"enc{level}", "type": "conv", "out": 4, "kernel": kernel, "padding": padding})
        layers.append({"name": f"down{level}", "type": "pool", "kernel": pool})
    layers.append({"name": "mid", "type": "conv", "out": 4, "kernel": kernel, "padding": padding})
    for level in reversed(range(levels)):
        layers.append({"name": f"up{level}", "type": "transposed", "out": 4, "kernel": pool, "stride": pool})
        layers.append({"name": f"cat{level}", "type": "concat", "from": [f"up{level}", f"enc{level}"]})
    return {"input": {"channels": 1, "size": [96, 97]}, "layers": layers}


@settings(max_examples=25, deadline=None)
@given(
    levels=st.integers(1, 3), pool=st.integers(2, 3), padding=st.integers(0, 1), kernel=st.sampled_from([1, 3]),
    probes=st.lists(st.tuples(st.integers(1, 400), st.integers(0, 1)), min_size=1, max_size=8),
)
def test_sizes_the_summary_calls_valid_check_and_others_fail(levels, pool, padding, kernel, probes):
    spec = convspec.load(_encoder_decoder(levels, pool, padding, kernel))
    summary = input_sizes(spec)
    if summary is None:  # no size near the reference checks: then none of the probes may check either
        assert not any(checks(spec, (s, s)) for s, _ in probes)
        return
    reference = [None, None]
    for index, axis in enumerate(summary.axes):  # a size the summary allows on each axis, to hold the other at
        reference[index] = axis.smallest + axis.step * 5
    for size, axis in probes:
        sizes = list(reference)
        sizes[axis] = size
        assert summary.axes[axis].allows(size) == checks(spec, tuple(sizes)), (summary.describe(), sizes)


def test_a_size_that_does_not_check_is_answered_with_the_sizes_that_do():
    result = CliRunner().invoke(cli, ["check", str(ROOT / "specs" / "unet_small.yaml"), "--input", "1x1x60x60"])
    assert result.exit_code == 1
    assert result.output.splitlines()[-1] == "input sizes that check: H and W: multiples of 8"
    other = CliRunner().invoke(cli, ["check", str(ROOT / "specs" / "small_cnn.yaml"), "--sizes"])
    assert other.exit_code == 0 and other.stdout.splitlines()[-1] == "input sizes: H and W: at least 4"


def test_a_fault_no_size_mends_gets_no_size_hint(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("input: {channels: 6, size: [8, 8]}\nlayers:\n  - {type: group, out: 8, kernel: 3, groups: 4}\n")
    result = CliRunner().invoke(cli, ["check", str(spec)])
    assert result.exit_code == 1 and "input sizes" not in result.output


def test_the_json_says_the_sizes_when_asked():
    import json

    result = CliRunner().invoke(cli, ["check", str(ROOT / "specs" / "unet_small.yaml"), "--format", "json", "--sizes"])
    data = json.loads(result.stdout)
    assert data["input_sizes"]["text"] == "H and W: multiples of 8"
    assert [(a["axis"], a["smallest"], a["step"], a["fixed"]) for a in data["input_sizes"]["axes"]] == [("H", 8, 8, False), ("W", 8, 8, False)]
    plain = json.loads(CliRunner().invoke(cli, ["check", str(ROOT / "specs" / "unet_small.yaml"), "--format", "json"]).stdout)
    assert "input_sizes" not in plain


def test_a_linear_after_flatten_fixes_the_size():
    spec = convspec.load({"input": {"channels": 1, "size": [6, 6]}, "layers": [{"type": "flatten"}, {"type": "linear", "out": 2, "in_features": 36}]})
    sizes = input_sizes(spec)
    assert sizes.describe() == "H and W: only 6" and sizes.allows((6, 6)) and not sizes.allows((6, 7))
