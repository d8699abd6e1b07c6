"""Block templates (`blocks:` and `{type: use}`) and `repeat.first`.

A `use` layer becomes a copy of its template with the `with:` values in
place of the `$params`, before validation. The checks here: the copy is
exactly the layer written out by hand; its names, state_dict keys and
figures follow the instance; and every mistake is reported at the right
file:line:col, a bad `with:` value at the `with:` entry, a mistake in the
template at the template's line, both under the instance's layer path.
"""

from __future__ import annotations

import jsonschema
import pytest
import torch

import convspec
from convspec import builder, shapes
from convspec.schema import LAYER_MODELS
from convspec.schema_json import json_schema
from support import assert_report_matches_model, printed_problems

HEAD = "input:\n  channels: 8\n  size: [16, 16]\n"  # lines 1-3

BASIC = """\
blocks:
  basic:
    params: {out: required, stride: 1, shortcut: null}
    type: residual
    act: relu
    layers:
      - {name: conv1, type: conv, out: $out, kernel: 3, stride: $stride, padding: 1, norm: batch, act: relu}
      - {name: conv2, type: conv, out: $out, kernel: 3, padding: 1, norm: batch}
    shortcut: $shortcut
"""  # lines 4-12

USES = """\
layers:
  - {name: b1, type: use, block: basic, with: {out: 8}}
  - {name: b2, type: use, block: basic, with: {out: 16, stride: 2, shortcut: [{name: proj, type: pointwise, out: 16, stride: 2, norm: batch}]}}
"""  # lines 13-15

BY_HAND = """\
layers:
  - name: b1
    type: residual
    act: relu
    layers:
      - {name: conv1, type: conv, out: 8, kernel: 3, stride: 1, padding: 1, norm: batch, act: relu}
      - {name: conv2, type: conv, out: 8, kernel: 3, padding: 1, norm: batch}
    shortcut: null
  - name: b2
    type: residual
    act: relu
    layers:
      - {name: conv1, type: conv, out: 16, kernel: 3, stride: 2, padding: 1, norm: batch, act: relu}
      - {name: conv2, type: conv, out: 16, kernel: 3, padding: 1, norm: batch}
    shortcut: [{name: proj, type: pointwise, out: 16, stride: 2, norm: batch}]
"""


def _figures(report) -> dict:
    data = report.to_dict()
    data.pop("spec")
    return data


# ---------------------------------------------------------------- what an instance is


def test_an_instance_is_its_template_written_out():
    templated = convspec.check(HEAD + BASIC + USES)
    by_hand = convspec.check(HEAD + BY_HAND)
    assert templated.valid, templated.errors
    assert _figures(templated) == _figures(by_hand)
    assert [(layer.name, layer.type) for layer in templated.layers] == [("b1", "residual"), ("b2", "residual")]
    assert templated.outputs == {"b2": (1, 16, 8, 8)}


def test_the_module_and_state_dict_follow_the_instance_names():
    text = HEAD + BASIC + USES
    model = convspec.build(text, seed=0).eval()
    keys = set(model.state_dict())
    assert {"b1.conv1.conv.weight", "b2.conv2.norm.running_mean", "b2.shortcut.proj.conv.weight"} <= keys
    assert model.b1.shortcut is None  # the default `shortcut: null`: identity
    assert model.b2.conv1.conv.stride == (2, 2)
    by_hand = convspec.build(HEAD + BY_HAND, seed=0).eval()
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in by_hand.state_dict().items()}
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(x), by_hand(x))  # same seed, same layers: same numbers
    assert_report_matches_model(convspec.check(text), model)


def test_braced_placeholders_in_block_style_and_default_names():
    text = HEAD + """\
blocks:
  pair:
    params: {width: required}
    type: block
    layers:
      - type: conv
        out: ${width}
        kernel: [1, $width]
      - {type: act, fn: relu}
layers:
  - {type: use, block: pair, with: {width: 3}}
  - {type: use, block: pair, with: {width: 2}}
"""
    report = convspec.check(text)
    assert report.valid, report.errors
    # the instance is the template's layer, so its default name is `<that type>_<index>`
    assert [layer.name for layer in report.layers] == ["block_0", "block_1"]
    assert report.layers[0].children[0].output_shape == (1, 3, 16, 14)
    assert report.outputs == {"block_1": (1, 2, 16, 13)}


def test_templates_use_templates_and_pass_their_parameters_on():
    text = HEAD + BASIC + """\
  stage:
    params: {out: required, blocks: required, stride: 2}
    type: repeat
    times: $blocks
    first:
      - name: block
        type: use
        block: basic
        with: {out: $out, stride: $stride, shortcut: [{name: proj, type: pointwise, out: $out, stride: $stride, norm: batch}]}
    layers:
      - {name: block, type: use, block: basic, with: {out: $out}}
layers:
  - {name: layer1, type: use, block: stage, with: {out: 16, blocks: 3}}
  - {name: layer2, type: use, block: stage, with: {out: 32, blocks: 2, stride: 1}}
"""
    report = convspec.check(text)
    assert report.valid, report.errors
    layer1 = report.layers[0]
    assert layer1.type == "repeat" and [copy.name for copy in layer1.children] == ["0", "1", "2"]
    assert [copy.output_shape for copy in layer1.children] == [(1, 16, 8, 8)] * 3
    assert report.outputs == {"layer2": (1, 32, 8, 8)}
    model = convspec.build(text)
    assert model.get_submodule("layer1.0.block.shortcut.proj").conv.stride == (2, 2)
    assert model.get_submodule("layer1.1.block").shortcut is None
    assert model.get_submodule("layer2.0.block.shortcut.proj").conv.stride == (1, 1)
    assert_report_matches_model(report, model)


def test_values_are_substituted_whole_and_never_evaluated():
    text = HEAD + """\
blocks:
  b:
    params: {n: required}
    type: conv
    out: $n
    kernel: 1
layers:
  - {type: use, block: b, with: {n: "__import__('os').getpid()"}}
"""
    with pytest.raises(convspec.SpecError) as info:
        convspec.load(text)
    assert "must be a positive integer, not \"__import__('os').getpid()\"" in str(info.value)


def test_a_checkpoint_of_a_templated_spec_loads_back(tmp_path):
    from convspec.checkpoint import load_checkpoint, save_checkpoint

    text = HEAD + BASIC + USES
    model = convspec.build(text, seed=3)
    path = save_checkpoint(model, text, tmp_path / "net.pt")
    again = load_checkpoint(path)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key


def test_spec_without_templates_is_left_alone():
    from convspec.templates import has_templates

    assert not has_templates({"input": {"channels": 1}, "layers": [{"type": "conv", "out": 1, "kernel": 1}]})
    assert has_templates({"input": {"channels": 1}, "layers": [{"type": "use", "block": "x"}]})
    assert has_templates({"blocks": {}, "layers": []})


def test_use_is_expanded_at_load_and_not_a_layer_kind():
    from convspec.kinds import registry

    assert "use" not in LAYER_MODELS and "use" not in registry
    assert set(LAYER_MODELS) == set(registry)


# ---------------------------------------------------------------- repeat: first


def test_repeat_first_is_copy_zero():
    text = HEAD + """\
layers:
  - name: stage
    type: repeat
    times: 3
    first: [{name: down, type: conv, out: 16, kernel: 3, stride: 2, padding: 1}]
    layers: [{name: same, type: conv, out: 16, kernel: 3, padding: 1}]
"""
    report = convspec.check(text)
    assert report.valid, report.errors
    copies = report.layers[0].children
    assert [[c.name for c in copy.children] for copy in copies] == [["down"], ["same"], ["same"]]
    assert [copy.output_shape for copy in copies] == [(1, 16, 8, 8)] * 3
    model = convspec.build(text)
    assert set(model.state_dict()) == {"stage.0.down.conv.weight", "stage.0.down.conv.bias", "stage.1.same.conv.weight", "stage.1.same.conv.bias",
                                       "stage.2.same.conv.weight", "stage.2.same.conv.bias"}  # fmt: skip
    assert_report_matches_model(report, model)


def test_repeat_first_with_one_copy_uses_only_first():
    report = convspec.check(HEAD + "layers:\n  - {type: repeat, times: 1, first: [{type: identity}], layers: [{type: flatten}]}\n")
    assert report.outputs == {"repeat_0": (1, 8, 16, 16)}


# ---------------------------------------------------------------- errors, at their lines


def located(tmp_path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return printed_problems(path)


def col(text: str, line: int, word: str, nth: int = 1) -> int:
    """1-based column of the `nth` occurrence of `word` on 1-based `line` of `text`."""
    row = text.splitlines()[line - 1]
    index = -1
    for _ in range(nth):
        index = row.index(word, index + 1)
    return index + 1


def test_a_bad_with_value_is_reported_at_the_with_entry(tmp_path):
    text = HEAD + BASIC + "layers:\n  - {name: b1, type: use, block: basic, with: {out: -8}}\n"
    c = col(text, 14, "out")
    # one mistake, one line: the value reaches two layers of the instance
    assert located(tmp_path, text) == [
        f"bad.yaml:14:{c}: layers[0].layers[0] 'conv1' (conv): `out` must be >= 1, not -8 (and 1 more layer from the same line)",
    ]


def test_a_with_value_that_does_not_fit_the_shapes_is_reported_at_the_with_entry(tmp_path):
    text = HEAD + BASIC + "layers:\n  - {name: b1, type: use, block: basic, with: {out: 8, stride: 2}}\n"
    # stride 2 without a shortcut: the sum does not fit. The problem is the residual's, located at the
    # template's `layers` (line 9), where its branch is written, under the instance's path.
    assert located(tmp_path, text) == [
        "bad.yaml:9:5: layers[0] 'b1' (residual): the residual branch gives [1, 8, 8, 8] but the shortcut gives "
        "[1, 8, 16, 16]; they must be equal; add a `shortcut` (e.g. a pointwise conv with the right out_channels and stride) to match"
    ]


def test_a_mistake_in_the_template_is_reported_at_the_template_with_the_instance_path(tmp_path):
    text = HEAD + BASIC.replace("kernel: 3, padding: 1, norm: batch}", "kernel: 3, paddin: 1, norm: batch}") + USES
    c = col(text, 11, "paddin")
    assert located(tmp_path, text) == [  # one typo in the template, used twice: one line
        f"bad.yaml:11:{c}: layers[0].layers[1] 'conv2' (conv): unknown key 'paddin' (did you mean 'padding'?) (and 1 more layer from the same line)",
    ]


def test_a_shape_mistake_in_the_template_is_reported_at_the_template(tmp_path):
    text = HEAD + BASIC.replace("kernel: 3, padding: 1, norm: batch}", "kernel: 3, padding: 1, groups: 3, norm: batch}") + USES
    c = col(text, 11, "groups")
    # b1's conv2 fails, but its output channels are its own, so b2 is still traced: each instance's
    # own figures, one message per mistake
    assert located(tmp_path, text) == [
        f"bad.yaml:11:{c}: layers[0].layers[1] 'conv2' (conv): groups=3 does not divide in_channels=8 (divisors: 1, 2, 4, 8) "
        "or out_channels=8 (divisors: 1, 2, 4, 8)",
        f"bad.yaml:11:{c}: layers[1].layers[1] 'conv2' (conv): groups=3 does not divide in_channels=16 (divisors: 1, 2, 4, 8, 16) "
        "or out_channels=16 (divisors: 1, 2, 4, 8, 16)",
    ]


@pytest.mark.parametrize(
    "use, word, message",
    [
        (
            "{name: b1, type: use, block: basic, with: {out: 8, strid: 2}}", "8",
            "layers[0] 'b1' (use): block 'basic' has no parameter 'strid' (did you mean 'stride'?); its parameters: out, stride, shortcut",
        ),
        (
            "{name: b1, type: use, block: basic, with: {stride: 2}}", "with",
            "layers[0] 'b1' (use): block 'basic' needs `out` (required parameter); give it in `with:`",
        ),
        (
            "{name: b1, type: use, block: basic}", "block",
            "layers[0] 'b1' (use): block 'basic' needs `out` (required parameter); give it in `with:`",
        ),
        (
            "{name: b1, type: use, block: basci, with: {out: 8}}", "block",
            "layers[0] 'b1' (use): no block named 'basci' (did you mean 'basic'?)",
        ),
        (
            "{name: b1, type: use, block: basic, wiht: {out: 8}}", "wiht",
            "layers[0] 'b1' (use): unknown key 'wiht' (did you mean 'with'?)",
        ),
        (
            "{name: b1, type: use, with: {out: 8}}", "{",
            "layers[0] 'b1' (use): missing required key `block` (the name of a template in `blocks:`)",
        ),
        (
            "{name: b1, type: use, block: basic, with: [8]}", "with",
            "layers[0] 'b1' (use): `with` must be a mapping of parameter values, e.g. {out: 64}",
        ),
    ],
    ids=["unknown_param", "missing_param", "missing_with", "unknown_block", "unknown_key", "no_block", "with_not_mapping"],
)  # fmt: skip
def test_use_mistakes(tmp_path, use, word, message):
    text = HEAD + BASIC + f"layers:\n  - {use}\n"
    where = {"8": "strid"}.get(word, word)
    assert located(tmp_path, text) == [f"bad.yaml:14:{col(text, 14, where)}: {message}"]


@pytest.mark.parametrize(
    "template, line, word, message",
    [
        ("    params: {out: required}\n    type: conv\n    out: $otu\n    kernel: 1\n", 8, "out",
         "$otu is not a parameter of block 'b' (did you mean 'out'?); declare it in `params` (declared: out)"),
        ("    params: {n: required}\n    type: conv\n    out: 4\n    kernel: 1\n    act: relu_$n\n", 10, "relu_$n",
         "'relu_$n': a placeholder is a whole value, a parameter's name after `$` such as $out, or a term of an expression "
         "($out * 2); it cannot be part of a string (at character 6)"),
        ("    params: {n: required}\n    type: $n\n", 7, "type", "a layer's `type` cannot be a placeholder ($n)"),
        ("    type: conv\n    out: 4\n    kernel: 1\n    from: input\n", 9, "from",
         "block 'b': a template has no `from`; give `from` on the `use` layer"),
        ("    params: {n: required, k: 1}\n    type: conv\n    out: $n\n    kernel: 1\n", 6, "k:",
         "parameter 'k' of block 'b' is never used (no $k in the template); drop it"),
        ("    params: {n: $x}\n    type: conv\n    out: $n\n    kernel: 1\n", 6, "n:",
         "the default of parameter 'n' cannot hold a placeholder ('$x'); give a plain value"),
        ("    params: [n]\n    type: conv\n    out: 4\n    kernel: 1\n", 6, "params",
         "`params` of block 'b' must be a mapping, e.g. {out: required, stride: 1}"),
        ("    params: {n: required}\n    out: $n\n", 5, "b",
         "block 'b' needs `type`: a template is one layer (use `type: block` for several)"),
    ],
    ids=["unknown_placeholder", "partial_placeholder", "placeholder_type", "template_from", "unused_param", "placeholder_default",
         "params_not_mapping", "no_type"],
)  # fmt: skip
def test_template_mistakes_are_reported_once_at_the_template(tmp_path, template, line, word, message):
    text = HEAD + "blocks:\n  b:\n" + template + "layers:\n  - {type: identity}\n"
    assert located(tmp_path, text) == [f"bad.yaml:{line}:{col(text, line, word)}: blocks.b: {message}"]


def test_a_block_that_uses_itself_is_an_error(tmp_path):
    text = HEAD + """\
blocks:
  a:
    type: block
    layers: [{type: use, block: b}]
  b:
    type: use
    block: a
layers:
  - {name: x, type: use, block: a}
"""
    assert located(tmp_path, text) == [f"bad.yaml:10:5: layers[0].layers[0] 'use_0' (use): block 'a' uses itself (a -> b -> a); a template cannot contain itself"]


def test_a_placeholder_outside_a_template_is_an_error(tmp_path):
    text = HEAD + "layers:\n  - {type: conv, out: $n, kernel: 3}\n  - {type: identity}\n"
    assert located(tmp_path, text) == [
        f"bad.yaml:5:{col(text, 5, 'out')}: layers[0] 'conv_0' (conv): '$n' looks like a placeholder, "
        "but placeholders only work inside a template in `blocks:`"
    ]


def test_no_blocks_section(tmp_path):
    text = HEAD + "layers:\n  - {type: use, block: basic}\n"
    assert located(tmp_path, text) == [
        f"bad.yaml:5:{col(text, 5, 'block')}: layers[0] 'use_0' (use): no block named 'basic': the spec has no `blocks:` section to define it in"
    ]


def test_every_mistake_at_once_and_the_rest_still_checked(tmp_path):
    text = HEAD + BASIC + """\
layers:
  - {name: b1, type: use, block: basic, with: {out: 8, strid: 2}}
  - {name: c, type: conv, out: 8, kernel: 3, groups: 3, from: input}
  - {name: b3, type: use, block: basic, with: {out: 0}}
"""
    found = located(tmp_path, text)
    assert [p.split(": ")[0] for p in found] == [f"bad.yaml:14:{col(text, 14, 'strid')}", f"bad.yaml:15:{col(text, 15, 'groups')}",
                                                 f"bad.yaml:16:{col(text, 16, 'out')}"]  # fmt: skip


def test_repeat_first_mistakes_are_located_under_first(tmp_path):
    text = HEAD + "layers:\n  - {type: repeat, times: 2, first: [{type: conv, out: 8, kernel_sise: 3}], layers: [{type: identity}]}\n"
    assert located(tmp_path, text) == [
        f"bad.yaml:5:{col(text, 5, 'kernel_sise')}: layers[0].first[0] 'conv_0' (conv): unknown key 'kernel_sise' (did you mean 'kernel_size'?)",
    ]


# ---------------------------------------------------------------- JSON Schema


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft202012Validator(json_schema())


def _doc(blocks: dict, layers: list) -> dict:
    return {"input": {"channels": 8, "size": [16, 16]}, "blocks": blocks, "layers": layers}


BLOCK = {"params": {"out": "required", "k": 3}, "type": "block", "layers": [{"type": "conv", "out": "$out", "kernel": [1, "${k}"]}]}


def test_json_schema_accepts_templates_and_uses(validator):
    assert validator.is_valid(_doc({"b": BLOCK}, [{"name": "x", "type": "use", "block": "b", "with": {"out": 4}}]))
    nested = {"type": "repeat", "times": "$n", "params": {"n": 2}, "first": [{"type": "use", "block": "b", "with": {"out": "$n"}}],
              "layers": [{"type": "identity"}]}  # fmt: skip
    assert validator.is_valid(_doc({"b": BLOCK, "stage": nested}, [{"type": "use", "block": "stage"}]))


@pytest.mark.parametrize(
    "blocks, layers",
    [
        ({"b": {**BLOCK, "layers": [{"type": "conv", "out": "$out", "kernl": 3}]}}, []),  # a typo inside a template
        ({"b": {**BLOCK, "layers": [{"type": "conv", "out": "$out", "kernel": 1, "params": {}}]}}, []),  # params only at the top
        ({"b": {**BLOCK, "name": "x"}}, []),  # an instance is named where it is used
        ({"b": {**BLOCK, "type": "$t"}}, []),  # the kind is never a placeholder
        ({"b": {**BLOCK, "layers": [{"type": "conv", "out": "$out", "kernel": "conv_$k"}]}}, []),  # whole values only
        ({"b": BLOCK}, [{"type": "use", "block": "b", "wiht": {}}]),  # unknown key on a use layer
        ({"b": BLOCK}, [{"type": "use", "with": {"out": 4}}]),  # no block
        ({"b": BLOCK}, [{"type": "conv", "out": "$out", "kernel": 1}]),  # placeholders only in templates
        ({"1b": BLOCK}, []),  # block names are identifiers
    ],
    ids=["typo", "nested_params", "root_name", "placeholder_type", "partial", "use_unknown_key", "use_no_block", "outside", "bad_name"],
)
def test_json_schema_rejects_what_the_loader_rejects(validator, blocks, layers):
    assert not validator.is_valid(_doc(blocks, layers or [{"type": "identity"}]))
