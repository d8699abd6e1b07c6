"""`--set KEY=VALUE` and `overrides=`: values set by layer name, validated like the file, located at the command line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import convspec
from convspec.cli import cli

SPEC = """\
input: {channels: 3, size: [16, 16]}
scales: {n: {width: 0.25}}
layers:
  - {name: stem, type: conv, out: 16, kernel: 3, padding: 1}
  - name: stage
    type: block
    layers:
      - {name: conv1, type: conv, out: 16, kernel: 3, padding: 1}
      - {type: act, fn: relu}
  - {type: global_pool, op: avg}
"""


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(SPEC)
    return path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_set_by_layer_name_and_nested_name(spec_file):
    result = run("check", spec_file, "--set", "stem.out_channels=48", "--set", "stage.conv1.stride=2", "--format", "json")
    assert result.exit_code == 0, result.output
    import json

    layers = json.loads(result.output)["layers"]
    assert layers[0]["output_shape"] == [1, 48, 16, 16]
    assert layers[1]["output_shape"] == [1, 16, 8, 8]


def test_default_names_top_level_keys_and_yaml_values():
    spec = convspec.load(SPEC, overrides=["stage.act_1.fn=silu", "input.size=[32, 32]", "global_pool_2.op=max"])
    assert spec.input.size == [32, 32]
    assert spec.layers[1].layers[1].fn == "silu" and spec.layers[2].op == "max"
    assert convspec.load(SPEC, overrides={"stem.out": 24}).layers[0].out_channels == 24


def test_overrides_apply_before_the_scale():
    report = convspec.check(SPEC, scale="n", overrides=["stem.out=64"])
    assert report.layers[0].output_shape[1] == 16 and report.layers[0].requested == {"out_channels": 64}


def test_unknown_layer_is_usage_error_with_did_you_mean(spec_file):
    result = run("build", spec_file, "--set", "stme.out_channels=48")
    assert result.exit_code == 2
    assert "'stme' is neither a layer's name nor a top-level key (did you mean 'stem'?)" in result.output


def test_unknown_key_is_usage_error_with_did_you_mean(spec_file):
    result = run("check", spec_file, "--set", "stem.out_chanels=48")
    assert result.exit_code == 2
    assert "has no key 'out_chanels' (did you mean 'out_channels'?)" in result.output
    result = run("check", spec_file, "--set", "stage.conv2.stride=2")
    assert result.exit_code == 2 and "did you mean 'conv1'?" in result.output


def test_malformed_override_is_usage_error(spec_file):
    for bad in ("stem.out_channels", "=3", "stem..out=3", "stem.out=[1,"):
        result = run("check", spec_file, "--set", bad)
        assert result.exit_code == 2, (bad, result.output)
        assert "Traceback" not in result.output


def test_wrong_type_is_located_at_the_command_line(spec_file):
    result = run("check", spec_file, "--set", "stem.out_channels=abc")
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[0]
    assert line.startswith("command line --set stem.out_channels=abc: layers[0] 'stem' (conv):"), line
    assert "out_channels" in line


def test_the_file_is_untouched(spec_file):
    before = spec_file.read_text()
    run("check", spec_file, "--set", "stem.out_channels=48")
    assert spec_file.read_text() == before


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(out=st.integers(1, 64), stride=st.integers(1, 3))
def test_a_set_value_is_what_the_checker_sees(out, stride):
    report = convspec.check(SPEC, overrides=[f"stem.out_channels={out}", f"stage.conv1.stride={stride}"])
    stem, stage = report.layers[0], report.layers[1]
    assert stem.output_shape == (1, out, 16, 16)
    assert stage.children[0].input_shapes == [(1, out, 16, 16)]
    size = (16 + 2 - 3) // stride + 1
    assert stage.output_shape == (1, 16, size, size)
    assert stage.children[0].params == out * 16 * 9 + 16


def test_an_empty_value_is_null():
    spec = convspec.load(SPEC.replace("padding: 1}\n  - name: stage", "padding: 1, act: relu}\n  - name: stage"), overrides=["stem.act="])
    assert spec.layers[0].act is None


def test_extends_cannot_be_set():
    with pytest.raises(convspec.InputError, match="`extends` cannot be set; it is read before --set applies"):
        convspec.load("specs/small_cnn.yaml", overrides=["extends=nothere.yaml"])
