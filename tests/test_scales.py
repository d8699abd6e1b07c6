"""Scaling presets (`scales:`, `--scale`): Ultralytics' rule, the check table's notes, and the mistakes it can cause."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.cli import cli
from convspec.scaling import Factors, make_divisible

ROOT = Path(__file__).resolve().parent.parent
YOLO = ROOT / "specs" / "yolo_backbone.yaml"
# Ultralytics' yolov5u.yaml presets: (depth, width, max_channels), written here apart from the spec
PRESETS = {
    "n": (0.33, 0.25, 1024),
    "s": (0.33, 0.50, 1024),
    "m": (0.67, 0.75, 1024),
    "l": (1.00, 1.00, 1024),
    "x": (1.33, 1.25, 1024),
}
CONV_TYPES = {"conv", "pointwise"}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ultralytics_channels(c: int, width: float, max_channels: int) -> int:
    """parse_model in ultralytics/nn/tasks.py: make_divisible(min(c2, max_channels) * width, 8), ceil to a multiple."""
    return math.ceil(min(c, max_channels) * width / 8) * 8


def ultralytics_repeats(n: int, depth: float) -> int:
    return max(round(n * depth), 1) if n > 1 else n


def _by_path(report) -> dict[tuple, object]:
    """Every layer report by its chain of names (repeat copies included)."""
    found = {}

    def walk(layers, prefix):
        for layer in layers:
            key = prefix + (layer.name,)
            found[key] = layer
            walk(layer.children, key)

    walk(report.layers, ())
    return found


@pytest.mark.parametrize("scale", list(PRESETS))
def test_yolo_rounding_table_is_ultralytics(scale):
    depth, width, cap = PRESETS[scale]
    written = _by_path(convspec.check(YOLO))
    scaled_report = convspec.check(YOLO, scale=scale)
    assert scaled_report.valid, scaled_report.errors
    scaled = _by_path(scaled_report)
    convs = 0
    for key, layer in scaled.items():
        if key not in written:  # a copy beyond the written spec's: its layers are copy 0's
            key = tuple("0" if part.isdigit() else part for part in key)
        if layer.type == "repeat":
            asked = written[key].layer.times
            copies = sum(c.role == "copy" for c in layer.children)
            assert copies == ultralytics_repeats(asked, depth), key
            assert (layer.requested or {}).get("times", copies) == asked
        if layer.type not in CONV_TYPES:
            continue
        convs += 1
        asked = written[key].output_shape[1]
        if key == ("head",):  # keep_width: Classify's 1280
            assert layer.output_shape[1] == asked == 1280 and layer.requested is None
            continue
        assert layer.output_shape[1] == ultralytics_channels(asked, width, cap), key
        if layer.output_shape[1] != asked:
            assert layer.requested == {"out_channels": asked}
    assert convs >= 34  # every conv of n, the smallest
    assert scaled["fc",].output_shape == (1, 1000)  # classes never scale


def test_l_is_the_spec_as_written():
    assert convspec.check(YOLO, scale="l").to_dict() | {"layers": None} == convspec.check(YOLO).to_dict() | {"layers": None}
    assert convspec.check(YOLO, scale="l").total_params == convspec.check(YOLO).total_params


def test_table_shows_requested_and_rounded():
    result = run("check", YOLO, "--scale", "n", "--depth", "1")
    assert result.exit_code == 0, result.output
    assert "1x16x64x64 (out 64 -> 16)" in result.output  # the stem
    assert "(times 9 -> 3)" in result.output  # stage3's bottlenecks
    head = next(line for line in result.output.splitlines() if line.startswith("head "))
    assert "->" not in head


def test_json_carries_requested():
    import json

    result = run("check", YOLO, "--scale", "s", "--format", "json")
    assert result.exit_code == 0
    stem = json.loads(result.output)["layers"][0]
    assert stem["requested"] == {"out_channels": 64} and stem["output_shape"][1] == 32


@settings(max_examples=200, deadline=None)
@given(
    c=st.integers(1, 5000), width=st.floats(0.01, 4.0), cap=st.one_of(st.none(), st.integers(1, 4096)),
    divisor=st.sampled_from([1, 2, 4, 8, 16, 32]),
)
def test_channels_are_the_smallest_multiple_at_or_above_the_request(c, width, cap, divisor):
    got = Factors("p", width, 1.0, cap, divisor).channels(c)
    target = (c if cap is None else min(c, cap)) * width
    assert got % divisor == 0 and got >= target and got - divisor < target
    assert got == make_divisible(target, divisor)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 1000), depth=st.floats(0.01, 4.0))
def test_times(n, depth):
    got = Factors("p", 1.0, depth).times(n)
    assert got == ultralytics_repeats(n, depth) and got >= 1
    assert (got == 1) if n == 1 else abs(got - n * depth) <= 0.5 or got == 1


SMALL = """\
input: {channels: 3, size: [16, 16]}
scales:
  tiny: {width: 0.25}
  wide: {width: 2.0, depth: 2.0}
layers:
  - {name: stem, type: conv, out: 16, kernel: 3, padding: 1}
  - {name: dw, type: depthwise, kernel: 3, padding: 1}
  - {name: stage, type: repeat, times: 2, keep_depth: true, layers: [{type: conv, out: 16, kernel: 1}]}
  - {name: twice, type: repeat, times: 2, layers: [{type: conv, out: 16, kernel: 1}]}
  - {name: kept, type: block, keep_width: true, layers: [{type: pointwise, out: 12}]}
  - {name: pool, type: global_pool, op: avg}
  - {name: flat, type: flatten}
  - {name: fc, type: linear, out: 10}
"""


def test_what_a_preset_leaves_alone():
    report = convspec.check(SMALL, scale="wide")
    layers = {layer.name: layer for layer in report.layers}
    assert layers["stem"].output_shape[1] == 32
    assert layers["dw"].output_shape[1] == 32  # depthwise follows its input
    assert sum(c.role == "copy" for c in layers["stage"].children) == 2  # keep_depth
    assert sum(c.role == "copy" for c in layers["twice"].children) == 4
    assert layers["kept"].output_shape[1] == 12  # keep_width on a container
    assert layers["fc"].output_shape == (1, 10)


def test_build_and_load_take_scale():
    model = convspec.build(SMALL, scale="tiny", seed=0)
    assert model.stem.conv.out_channels == 8
    assert convspec.load(SMALL, scale="tiny").layers[0].out_channels == 8
    assert convspec.load(SMALL).layers[0].out_channels == 16


def test_unknown_scale_is_usage_error_with_did_you_mean():
    result = run("check", YOLO, "--scale", "mm")
    assert result.exit_code == 2
    assert "scale 'mm' is not one of the scales of" in result.output and "did you mean 'm'?" in result.output
    with pytest.raises(convspec.InputError, match="did you mean 'wide'"):
        convspec.check(SMALL, scale="wid")


def test_scale_without_scales_is_usage_error(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("input: {channels: 3, size: [8, 8]}\nlayers:\n  - {type: conv, out: 8, kernel: 3}\n")
    result = run("build", path, "--scale", "n")
    assert result.exit_code == 2
    assert "has no `scales:`" in result.output


def test_rounding_that_breaks_an_add_is_located(tmp_path):
    path = tmp_path / "join.yaml"
    path.write_text(
        "input: {channels: 3, size: [8, 8]}\n"
        "scales: {n: {width: 0.25}}\n"
        "layers:\n"
        "  - {name: stem, type: conv, out: 3, kernel: 3, padding: 1}\n"
        "  - {name: sum, type: add, from: [stem, input]}\n"
    )
    assert convspec.check(path).valid  # as written, 3 + 3 channels
    result = run("build", path, "--scale", "n")
    assert result.exit_code == 1
    assert f"{path}:5:" in result.output
    assert "'sum' (add)" in result.output and "stem 3 -> 8" in result.output and "keep_width" in result.output
    assert "Sequential" not in result.output  # nothing was built


def test_rounding_that_breaks_a_residual_is_located():
    text = """\
input: {channels: 4, size: [8, 8]}
scales: {n: {width: 0.5}}
layers:
  - {name: stem, type: conv, out: 4, kernel: 1, keep_width: true}
  - {name: res, type: residual, layers: [{type: conv, out: 4, kernel: 3, padding: 1}]}
"""
    with pytest.raises(convspec.SpecError) as refused:
        convspec.check(text, scale="n")
    (problem,) = refused.value.problems
    assert problem.location.line == 5 and "conv_0 4 -> 8" in problem.message


def test_bad_preset_values_are_located():
    text = SMALL.replace("tiny: {width: 0.25}", "tiny: {width: -1, dpth: 2}")
    with pytest.raises(convspec.SpecError) as err:
        convspec.check(text, scale="tiny")
    lines = {(p.location.line, p.message.split(" (")[0]) for p in err.value.problems}
    assert all(line == 3 for line, _ in lines) and len(lines) == 2


def test_draw_export_and_verify_take_the_scale(tmp_path):
    child = ROOT / "specs" / "yolo_backbone_10.yaml"
    drawn = run("draw", child, "--scale", "n", "-o", "-", "--format", "mermaid")
    assert drawn.exit_code == 0 and "16x32x32" in drawn.output  # the stem at 64x64, scaled (C×H×W, batch said once)
    onnx_file = tmp_path / "n.onnx"
    exported = run("export", child, "--scale", "n", "-o", onnx_file)
    assert exported.exit_code == 0, exported.output
    assert run("verify", onnx_file, child, "--scale", "n").exit_code == 0
    assert run("verify", onnx_file, child).exit_code == 1  # the file is the n size, not the written one


def test_a_rounding_that_breaks_groups_says_so():
    text = """\
input: {channels: 6, size: [8, 8]}
scales: {n: {width: 0.25}}
layers:
  - {type: group, out: 48, groups: 3, kernel: 1}
"""
    assert convspec.check(text).valid
    with pytest.raises(convspec.SpecError) as refused:
        convspec.check(text, scale="n")
    (problem,) = refused.value.problems
    assert problem.location.line == 4 and "groups=3" in problem.message
    assert problem.message.endswith("under scale 'n' its out_channels 48 became 16")


def test_a_bad_scale_name_is_located():
    text = "input: {channels: 3, size: [8, 8]}\nscales: {'bad name': {width: 1}}\nlayers: [{type: conv, out: 8, kernel: 1}]\n"
    with pytest.raises(convspec.SpecError, match="'bad name' is not a valid scale name"):
        convspec.load(text)
