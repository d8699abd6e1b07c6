"""Every layer compared, where comparing the outputs cannot tell: outputs that barely depend on the input, and
outputs that fail (the first layer that differs is named)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

import convspec
import convspec.cli as cli_module
from convspec.export import export_onnx
from convspec.layer_parity import layer_tensors, module_paths

# the head's zero weights make the output its bias whatever the input; the stem still follows the input
CONSTANT_HEAD = """
name: constant_head
input: {channels: 3, size: [12, 12]}
layers:
  - {name: stem, type: conv, out: 8, kernel: 3, padding: same, norm: batch, act: relu}
  - {name: mid, type: depthwise, kernel: 3, padding: same, act: relu}
  - {name: head, type: conv, out: 4, kernel: 1, init: {weight: zeros, bias: ones}}
"""

PLAIN = """
name: plain
input: {channels: 3, size: [12, 12]}
layers:
  - {name: stem, type: conv, out: 8, kernel: 3, padding: same, norm: batch, act: relu}
  - {name: mid, type: depthwise, kernel: 3, padding: same, act: relu}
  - {name: head, type: conv, out: 4, kernel: 1}
"""


def _verify_line(result) -> str:
    return next(step.detail for step in result.steps if step.name == "verify")


def _tampered(source, target, layer: str, change) -> None:
    """A copy of the file with `change` applied to the weight of the node named after `layer`."""
    model = onnx.load(source)
    node = next(n for n in model.graph.node if n.name.startswith(layer + "/") and n.op_type == "Conv")
    weight = next(t for t in model.graph.initializer if t.name == node.input[1])
    weight.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(weight)), weight.name))
    onnx.save(model, target)


@pytest.fixture(scope="module")
def constant_head(tmp_path_factory):
    path = tmp_path_factory.mktemp("constant") / "c.onnx"
    return path, export_onnx(None, CONSTANT_HEAD, path, seed=0)


def test_layer_tensors_are_each_layers_output(constant_head):
    path, _ = constant_head
    proto = onnx.load(path)
    report = convspec.check(CONSTANT_HEAD)
    tensors = layer_tensors(proto, module_paths(report))
    assert list(tensors) == ["stem", "mid", "head"]
    assert tensors["head"] == proto.graph.output[0].name
    producers = {out: node.name for node in proto.graph.node for out in node.output}
    assert all(producers[tensor].startswith(path + "/") for path, tensor in tensors.items())


def test_an_output_that_ignores_the_input_is_backed_by_every_layer(constant_head):
    _, result = constant_head
    line = _verify_line(result)
    assert "output head barely depends on the input" in line
    assert "every layer's output was compared as well: 3 layers equal" in line
    assert "warning" not in line


@pytest.mark.parametrize("change", [np.negative, np.zeros_like, lambda w: w[::-1].copy()], ids=["negated", "zeroed", "reversed"])
def test_a_wrong_body_under_a_constant_output_fails(constant_head, tmp_path, change):
    path, _ = constant_head
    wrong = tmp_path / "wrong.onnx"
    _tampered(path, wrong, "stem", change)
    with pytest.raises(convspec.ExportError) as caught:
        convspec.verify_onnx(wrong, CONSTANT_HEAD)
    text = str(caught.value)
    assert "barely depends on the input, so every layer's output was compared as well" in text
    assert "the first layer whose output differs is 'stem'" in text


def test_the_first_differing_layer_is_named_when_an_output_fails(tmp_path):
    path = tmp_path / "p.onnx"
    export_onnx(None, PLAIN, path, seed=0)
    _tampered(path, tmp_path / "wrong.onnx", "mid", np.negative)
    (tmp_path / "plain.yaml").write_text(PLAIN)
    result = CliRunner().invoke(cli_module.cli, ["verify", str(tmp_path / "wrong.onnx"), str(tmp_path / "plain.yaml")])
    assert result.exit_code == 1, result.output
    assert "onnxruntime differs from PyTorch on output 'head'" in result.output
    assert "plain.yaml:6:5: layers[1] 'mid' (depthwise): the first layer whose output differs is 'mid'" in result.output
    assert "'stem'" not in result.output  # the layer before it agrees


def _renamed_nodes(source, target, start: str | None = None) -> None:
    """A copy whose nodes (from the first one named after `start` on, or all) carry names no layer gives."""
    model = onnx.load(source)
    renaming = start is None
    for index, node in enumerate(model.graph.node):
        renaming = renaming or node.name.startswith(start + "/")
        if renaming:
            node.name = f"n{index}"
    onnx.save(model, target)


def _renamed_tensors(source, target, start: str) -> None:
    """A copy whose tensors made from the first node named after `start` on have other names (outputs kept)."""
    model = onnx.load(source)
    kept = {output.name for output in model.graph.output}
    names: dict[str, str] = {}
    renaming = False
    for node in model.graph.node:
        renaming = renaming or node.name.startswith(start + "/")
        node.input[:] = [names.get(name, name) for name in node.input]
        if renaming:
            for index, name in enumerate(node.output):
                if name not in kept:
                    names[name] = node.output[index] = f"t{len(names)}"
    for info in model.graph.value_info:
        info.name = names.get(info.name, info.name)
    onnx.save(model, target)


def test_layers_are_found_by_the_tensors_export_recorded_whatever_the_node_names(constant_head, tmp_path):
    path, _ = constant_head
    _renamed_nodes(path, tmp_path / "renamed.onnx")
    assert "3 layers equal" in _verify_line(convspec.verify_onnx(tmp_path / "renamed.onnx", CONSTANT_HEAD))
    _tampered(path, tmp_path / "wrong.onnx", "mid", np.negative)
    _renamed_nodes(tmp_path / "wrong.onnx", tmp_path / "wrong_renamed.onnx", start="mid")
    with pytest.raises(convspec.ExportError, match="the first layer whose output differs is 'mid'"):
        convspec.verify_onnx(tmp_path / "wrong_renamed.onnx", CONSTANT_HEAD)


def test_misleading_node_names_do_not_fail_a_right_file(constant_head, tmp_path):
    path, _ = constant_head
    model = onnx.load(path)
    for node in model.graph.node:  # the stem's nodes named after mid and the other way round
        owner, _, op = node.name.partition("/")
        node.name = {"stem": "mid", "mid": "stem"}.get(owner, owner) + "/" + op
    onnx.save(model, tmp_path / "swapped.onnx")
    assert "3 layers equal" in _verify_line(convspec.verify_onnx(tmp_path / "swapped.onnx", CONSTANT_HEAD))


def test_layers_that_cannot_be_found_leave_the_warning_with_how_many_were_compared(constant_head, tmp_path):
    path, _ = constant_head
    _tampered(path, tmp_path / "wrong.onnx", "mid", np.negative)
    _renamed_tensors(tmp_path / "wrong.onnx", tmp_path / "hidden.onnx", start="mid")
    line = _verify_line(convspec.verify_onnx(tmp_path / "hidden.onnx", CONSTANT_HEAD))
    assert "warning: output head barely depends on the input" in line
    assert "2 of the 3 layers could be compared one by one" in line  # stem and the output; mid is hidden


def test_a_layer_record_cut_short_does_not_lower_what_the_file_should_show(constant_head, tmp_path):
    path, _ = constant_head
    _tampered(path, tmp_path / "wrong.onnx", "mid", np.negative)
    model = onnx.load(tmp_path / "wrong.onnx")
    record = next(p for p in model.metadata_props if p.key == "convspec.layer_outputs")
    record.value = '{"stem": "relu", "head": "head"}'  # mid left out of the record
    onnx.save(model, tmp_path / "cut.onnx")
    line = _verify_line(convspec.verify_onnx(tmp_path / "cut.onnx", CONSTANT_HEAD))
    assert "warning: output head barely depends on the input" in line
    assert "2 of the 3 layers could be compared one by one" in line


def test_a_layer_whose_output_cancels_to_noise_is_judged_on_what_went_in(tmp_path):
    # instance norm over one channel, then its mean: zero up to float32's rounding, and what follows it too
    spec = {"input": {"channels": 1, "size": [12]}, "layers": [
        {"type": "norm", "kind": "instance"}, {"type": "global_pool", "op": "avg"}, {"type": "flatten"}, {"type": "linear", "out": 1},
    ]}  # fmt: skip
    line = _verify_line(export_onnx(None, spec, tmp_path / "n.onnx", seed=0))
    assert "4 layers equal" in line


def test_a_layer_left_in_another_layout_by_a_rewrite_is_not_compared(tmp_path):
    # two channel layer norms in a row: the exporter's rewrite cancels the first one's closing Transpose with
    # the second one's opening one, so no tensor holds the first one's output (NCL) and export does not fail on it
    spec = {"input": {"channels": 1, "size": [12]}, "layers": [
        {"type": "dropout", "p": 0.3}, {"type": "norm", "kind": "layer"}, {"type": "norm", "kind": "layer"},
    ]}  # fmt: skip
    result = export_onnx(None, spec, tmp_path / "n.onnx", seed=0)
    tensors = layer_tensors(onnx.load(tmp_path / "n.onnx"), module_paths(convspec.check(spec)))
    assert "norm_1" not in tensors and "norm_2" in tensors
    assert "1 of the 2 layers could be compared one by one" in _verify_line(result)


def test_a_file_without_layer_records_or_layer_names_keeps_the_warning(constant_head, tmp_path):
    path, _ = constant_head
    _renamed_nodes(path, tmp_path / "renamed.onnx")
    model = onnx.load(tmp_path / "renamed.onnx")
    kept = [p for p in model.metadata_props if p.key != "convspec.layer_outputs"]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    onnx.save(model, tmp_path / "bare.onnx")
    line = _verify_line(convspec.verify_onnx(tmp_path / "bare.onnx", CONSTANT_HEAD))
    assert "warning: output head barely depends on the input" in line


NESTED = """
name: nested
input: {channels: 3, size: [10, 10]}
layers:
  - {name: stem, type: conv, out: 4, kernel: 3, padding: same, act: relu}
  - name: res
    type: residual
    layers:
      - {name: a, type: conv, out: 4, kernel: 3, padding: same, act: relu}
      - {name: b, type: conv, out: 4, kernel: 3, padding: same}
  - {name: head, type: conv, out: 2, kernel: 1}
"""


def test_the_innermost_layer_that_differs_is_named(tmp_path):
    export_onnx(None, NESTED, tmp_path / "n.onnx", seed=0)
    inner = next(path for path, _ in module_paths(convspec.check(NESTED)) if path.endswith(".b"))
    _tampered(tmp_path / "n.onnx", tmp_path / "wrong.onnx", inner, np.negative)
    with pytest.raises(convspec.ExportError, match=f"the first layer whose output differs is '{inner}'"):
        convspec.verify_onnx(tmp_path / "wrong.onnx", NESTED)


def test_plain_outputs_need_no_layer_comparison(tmp_path):
    result = export_onnx(None, PLAIN, tmp_path / "p.onnx", seed=0)
    line = _verify_line(result)
    assert "barely" not in line and "layer" not in line


SPLIT = """
name: split_then_join
input: {channels: 3, size: [8, 8]}
layers:
  - {name: stem, type: conv, out: 8, kernel: 3, padding: same, act: relu}
  - {name: halves, type: split, parts: 2}
  - {name: right, type: conv, out: 4, kernel: 1, from: halves.1}
  - {name: cat, type: concat, from: [halves.0, right]}
  - {name: head, type: conv, out: 2, kernel: 1, init: {weight: zeros, bias: ones}}
"""


def test_a_split_is_left_out_and_the_rest_compared(tmp_path):
    # a split's parts are several tensors and its module returns them together: no one tensor is its output
    result = export_onnx(None, SPLIT, tmp_path / "s.onnx", seed=0)
    tensors = layer_tensors(onnx.load(tmp_path / "s.onnx"), module_paths(convspec.check(SPLIT)))
    assert "halves" not in tensors
    assert {"stem", "right", "cat", "head"} <= set(tensors)
    assert f"every layer's output was compared as well: {len(tensors)} layers equal" in _verify_line(result)


def test_an_fp16_file_is_compared_layer_by_layer_at_its_own_tolerance(tmp_path):
    (tmp_path / "c.yaml").write_text(CONSTANT_HEAD)
    made = CliRunner().invoke(cli_module.cli, ["export", str(tmp_path / "c.yaml"), "-o", str(tmp_path / "c16.onnx"), "--precision", "fp16"])
    assert made.exit_code == 0, made.output
    assert "warning: output head barely depends on the input" in made.output  # the export's own figures cannot tell
    assert "`convspec verify` of the file compares every layer" in made.output
    line = _verify_line(convspec.verify_onnx(tmp_path / "c16.onnx", CONSTANT_HEAD))
    assert "0.01 x max|PyTorch|" in line and "3 layers equal" in line
    _tampered(tmp_path / "c16.onnx", tmp_path / "wrong16.onnx", "mid", np.negative)
    with pytest.raises(convspec.ExportError, match="the first layer whose output differs is 'mid'"):
        convspec.verify_onnx(tmp_path / "wrong16.onnx", CONSTANT_HEAD)
