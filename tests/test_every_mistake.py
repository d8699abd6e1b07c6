"""One run of `check` reports every mistake: a failed layer does not hide the checks after it, nor adds false ones."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec

ROOT = Path(__file__).resolve().parent.parent
# specs written without templates, so a layer's dict can be edited in place
PLAIN_SPECS = ["resnet_small.yaml", "unet_small.yaml", "small_cnn.yaml", "nine_kinds.yaml", "multi_output.yaml", "conv3d_video.yaml"]

SIX_MISTAKES = """\
input: {channels: 1, size: [16, 16]}
layers:
  - {type: conv, out: 8, kernel_size: 3, in_channels: 3}
  - {type: conv, out: 12, kernel_size: 3, groups: 5}
  - {type: conv, out: 16, kernel_size: 3, actt: relu}
  - {type: conv, out: 16, kernel_size: 3, act: rleu}
  - {type: group, out: 32, kernel_size: 3, groups: 3}
  - {type: conv, out: 32, kernel_size: 20}
  - {type: linear, out: 10}
"""


def problems(spec) -> list[str]:
    try:
        report = convspec.check(spec)
    except convspec.SpecError as err:
        return [str(p) for p in err.problems]
    return [str(p) for p in report.errors]


def test_six_mistakes_in_one_run():
    found = problems(SIX_MISTAKES)
    lines = [p.split(":")[1] for p in found]
    assert lines == ["3", "4", "5", "6", "7", "8", "9"], found  # one message per mistake, on its own line
    assert "in_channels=3 but the input has 1" in found[0]
    assert "groups=5 does not divide in_channels=8" in found[1] and "out_channels=12" in found[1]
    assert "unknown key 'actt'" in found[2] and "'rleu' is not a known activation" in found[3]
    assert "groups=3 does not divide in_channels=16" in found[4]  # conv_3's 16 channels, though its act is wrong
    assert "kernel 20 is larger than the padded input 6 in H and W" in found[5]  # sizes after conv_1 and the group conv
    assert "needs flat input" in found[6]


@pytest.mark.parametrize(
    "layer, expected",
    [
        # the mistaken key does not decide the shape: the layers after are traced exactly
        ({"type": "conv", "out": 8, "kernel_size": 3, "act": "rleu"}, "exact"),
        ({"type": "conv", "out": 8, "kernel_size": 3, "norm": "bacth"}, "exact"),
        ({"type": "conv", "out": 8, "kernel_size": 3, "actt": "relu"}, "exact"),
        # it decides the sizes (or its intent is unknown): channels known, sizes not
        ({"type": "conv", "out": 8, "kernel_size": 3, "strid": 2}, "sizes"),
        ({"type": "conv", "out": 8, "kernel_size": 3, "paddin": 1}, "sizes"),
        ({"type": "conv", "out": 8, "kernel_size": 3, "stride": -1}, "sizes"),
        ({"type": "conv", "out": 8, "kernel_size": 3, "comment": "x"}, "sizes"),
        # it decides the channels: nothing after can be assumed
        ({"type": "conv", "out": -8, "kernel_size": 3}, "none"),
        ({"type": "conv", "out_chanels": 8, "kernel_size": 3}, "none"),
    ],
)
def test_what_is_assumed_after_a_layer_the_schema_rejects(layer, expected):
    # the layer after it has a mistake of its own in each case: groups=3 on 8 -> 12 channels, and a
    # kernel that fits an 8x8 map (the exact case) but not a 6x6 one
    spec = {
        "input": {"channels": 1, "size": [8, 8]},
        "layers": [layer, {"type": "conv", "out": 12, "kernel_size": 3, "groups": 3}, {"type": "conv", "out": 4, "kernel_size": 7}],
    }
    found = problems(spec)
    later = [p for p in found if "layers[1]" in p or "layers[2]" in p]
    if expected == "exact":
        assert len(found) == 3 and "groups=3 does not divide in_channels=8" in later[0] and "kernel 7" in later[1], found
    elif expected == "sizes":
        assert [("groups=3" in p) for p in later] == [True], found  # channels checked; no size guessed
    else:
        assert later == [], found


def test_a_failed_layer_inside_a_residual_still_lets_the_next_blocks_be_checked():
    spec = """\
input: {channels: 8, size: [16, 16]}
layers:
  - type: residual
    layers:
      - {type: conv, out: 8, kernel_size: 3, padding: 1, groups: 3}
  - {type: conv, out: 12, kernel_size: 3, groups: 5}
"""
    found = problems(spec)
    assert [p.split(":")[1] for p in found] == ["5", "6"], found


def test_an_unknown_size_after_a_failure_is_not_called_dynamic():
    spec = """\
input: {channels: 1, size: [8, 8]}
layers:
  - {type: conv, out: 4, kernel_size: 20}
  - {type: flatten}
  - {type: linear, out: 10}
"""
    found = problems(spec)
    assert len(found) == 1 and "kernel 20" in found[0], found


def _conv_layers(node, path=()):
    """Paths of the conv layer dicts in spec data (inside containers too)."""
    if isinstance(node, dict):
        if node.get("type") == "conv":
            yield path
        for key, value in node.items():
            yield from _conv_layers(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _conv_layers(value, path + (index,))


def _at(data, path):
    for part in path:
        data = data[part]
    return data


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(PLAIN_SPECS), pick=st.integers(0, 10_000), key=st.sampled_from(["act", "norm", "actt", "init"]))
def test_one_mistake_in_a_key_that_leaves_shapes_alone_gives_exactly_one_problem(name, pick, key):
    data = yaml.safe_load((ROOT / "specs" / name).read_text())
    paths = list(_conv_layers(data["layers"], ("layers",)))
    if not paths:
        return
    layer = _at(data, paths[pick % len(paths)])
    bad = copy.deepcopy(data)
    _at(bad, paths[pick % len(paths)])[key] = {"act": "rleu", "norm": "bacth", "actt": "relu", "init": {"weight": "kaimin"}}[key]
    found = problems(bad)
    assert len(found) == 1, (layer, found)  # the mistake itself, and no echo of it further on


# ---------------------------------------------------------------- hints that point the right way


def one_layer(layer: dict) -> list[str]:
    return problems({"input": {"channels": 4, "size": [8, 8]}, "layers": [layer]})


@pytest.mark.parametrize(
    "layer, hint",
    [
        ({"type": "depthwise", "kernel_size": 3, "groups": 32}, "set `multiplier`"),
        ({"type": "conv", "out": 4, "kernel_size": 3, "act": "ReLU"}, "did you mean 'relu'?"),
        ({"type": "act", "fn": "LeakyReLU"}, "did you mean 'leaky_relu'?"),
        ({"type": "act", "fn": "ReLU6"}, "did you mean 'relu6'?"),
        ({"type": "conv", "out": 4, "kernel_size": 3, "padding_mode": "Reflect"}, "did you mean 'reflect'?"),
        ({"type": "upsample", "scale_factor": 2}, "convspec calls it `scale`"),
        ({"type": "norm", "kind": "batch", "num_features": 4}, "convspec infers it"),
        ({"type": "conv", "out": 4, "kernel_size": 3, "in_features": 4}, "convspec infers it"),
        ({"type": "dropout", "rate": 0.5}, "convspec calls it `p`"),
        ({"type": "conv", "out": 4, "kernel_size": 3, "strides": 2}, "convspec calls it `stride`"),
        ({"type": "conv", "out": 4, "kernel_size": 3, "use_bias": False}, "convspec calls it `bias`"),
        ({"type": "norm", "kind": "group", "num_groups": 2}, "convspec calls it `groups`"),
        ({"type": "conv", "out": 4, "kernel_size": 3, "norm": "group", "num_groups": 2}, "convspec calls it `norm_groups`"),
        ({"type": "conv", "out": 4, "kernel_size": 3, "padding": "SAME"}, "TensorFlow's SAME is 'same_upper'"),
        ({"type": "act", "fn": "swish"}, "convspec calls it 'silu'"),
        ({"type": "act", "fn": "lrelu"}, "convspec calls it 'leaky_relu'"),
        ({"type": "separable", "out": 4, "kernel_size": 3, "groups": 2}, "use `type: group`"),
        ({"type": "transposed", "out": 4, "kernel": 2, "stride": 1, "padding": "same"}, "`padding: same_lower`"),
        ({"type": "use", "block": ["a"]}, "not ['a']"),
    ],
)
def test_hints_name_what_to_write(layer, hint):
    found = one_layer(layer)
    assert len(found) == 1 and hint in found[0], found


def test_a_foreign_name_for_a_required_key_is_one_problem():
    found = one_layer({"type": "conv", "filters": 4, "kernel_size": 3})
    assert found == ["<dict>: layers[0] 'conv_0' (conv): unknown key 'filters' (convspec calls it `out_channels`)"]


def test_reading_inside_a_block_explains_that_inner_layers_are_not_visible():
    spec = """\
input: {channels: 3, size: [16, 16]}
layers:
  - name: encoder
    type: block
    layers:
      - {name: e1, type: conv, out: 8, kernel_size: 3, padding: 1}
  - {type: concat, from: [encoder, encoder.e1]}
"""
    (found,) = problems(spec)
    assert found.startswith("<string>:7:") and "the layers inside 'encoder' are not visible outside it" in found


# ---------------------------------------------------------------- layers that fail without a shape of their own


AFTER = "  - {name: later, type: conv, out: 8, kernel: 3, groups: 3}\n"  # a mistake that needs only the channels


@pytest.mark.parametrize(
    "failing",
    [
        "  - {type: conv, out: 8, kernel: 3, stride: [2, 2, 2]}\n",  # a per-dim list of the wrong length
        "  - {type: shuffle, groups: 3}\n",
        "  - {type: upsample, scale: 2, mode: linear}\n",  # linear is for 1-D
        "  - {type: transposed, out: 8, kernel: 2, stride: 1, padding: same}\n",
        "  - {type: fixed, filter: nope}\n",
        "  - {type: pool, op: max, kernel: 2, padding: 2}\n",
        "  - {name: a, type: conv, out: 8, kernel: 3, padding: 1}\n  - {name: b, type: conv, out: 8, kernel: 3, from: input}\n"
        "  - {type: add, from: [a, b]}\n",
        "  - {name: a, type: conv, out: 4, kernel: 3, padding: 1}\n  - {name: b, type: conv, out: 4, kernel: 3, from: input}\n"
        "  - {type: concat, from: [a, b]}\n",
        "  - type: residual\n    layers: [{type: conv, out: 16, kernel: 3, padding: 1}]\n",
    ],
)
def test_a_layer_after_a_failed_one_is_still_checked(failing):
    found = problems("input: {channels: 8, size: [16, 16]}\nlayers:\n" + failing + AFTER)
    later = [p for p in found if "'later'" in p]
    assert len(later) == 1 and "groups=3 does not divide" in later[0], found
    assert len(found) == 2, found  # the failing layer's one mistake, and the later one


def test_a_refused_name_is_not_reported_again_where_it_is_read():
    spec = """\
input: {channels: 3, size: [8, 8]}
layers:
  - {name: class, type: conv, out: 4, kernel: 3}
  - {name: def, type: conv, out: 4, kernel: 3, from: input}
  - {name: total, type: add, from: [class, def]}
outputs: [total, class]
"""
    found = problems(spec)
    assert [p.split(":")[1] for p in found] == ["3", "4"], found


def test_a_template_mistake_used_three_times_is_one_line():
    spec = """\
input: {channels: 8, size: [8, 8]}
blocks:
  unit:
    params: {out: 8}
    type: conv
    out: $out
    kernel: 3
    padding: 1
    act: Relu
layers:
  - {name: u1, type: use, block: unit}
  - {name: u2, type: use, block: unit}
  - {name: u3, type: use, block: unit}
"""
    (found,) = problems(spec)
    assert "did you mean 'relu'?" in found and found.endswith("(and 2 more layers from the same line)")




def test_a_typo_of_an_aliased_required_key_is_one_problem():
    found = one_layer({"type": "conv", "outt": 4, "kernel": 3})
    assert len(found) == 1 and "did you mean 'out'?" in found[0], found


def test_numbers_with_an_exponent_and_no_dot_are_numbers():
    # YAML 1.1 (PyYAML) reads 1e-3 as text; YAML 1.2 and JSON as a number: people write it
    report = convspec.check(
        "input: {channels: 3, size: [8, 8]}\nbatch_norm: {eps: 1e-3, momentum: 1E-2}\n"
        "layers:\n  - {type: conv, out: 4, kernel: 3, norm: batch, eps: 1e-5}\n  - {type: dropout, p: 5e-1}\n"
        "  - {type: act, fn: relu, name: 'e5'}\n"
    )
    assert report.valid and report.spec.layers[0].eps == 1e-5 and report.spec.layers[1].p == 0.5
    assert report.spec.batch_norm.eps == 1e-3
