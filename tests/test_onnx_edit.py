"""The graph-editing tools export's rewrites share: fresh names, constants, node replacement (no torch)."""

import subprocess
import sys

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from convspec.onnx_edit import Constants, Editor, known_shapes, node_attributes, replace_node, set_attribute

NAMES = st.sampled_from(["x", "y", "pads", "pads_1", "Relu", "stem/Relu", "wrap_start"])


def _model(initializers=(), nodes=None):
    nodes = nodes if nodes is not None else [
        helper.make_node("Relu", ["x"], ["r"], name="stem/Relu"),
        helper.make_node("Neg", ["r"], ["y"], name="stem/Neg"),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3, 8, 8])],
        list(initializers),
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@settings(max_examples=60, deadline=None)
@given(st.lists(NAMES, max_size=12))
def test_fresh_names_are_new_and_distinct(bases):
    proto = _model([numpy_helper.from_array(np.zeros(2, np.int64), "pads")])
    taken = {"x", "r", "y", "pads"}
    edit = Editor(proto)
    made = [edit.tensor(base) for base in bases]
    assert len(set(made)) == len(made)
    assert not set(made) & taken
    assert all(name == base or name.startswith(base + "_") for name, base in zip(made, bases))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=6))
def test_int64_constants_read_back(values):
    proto = _model()
    name = Editor(proto).int64("axes", values)
    constants = Constants(proto)
    assert name in constants
    assert constants[name].tolist() == values


def test_nodes_are_named_after_their_owners_layer():
    proto = _model()
    edit = Editor(proto)
    owner = proto.graph.node[0]
    first = edit.node(owner, "Relu", ["x"], ["a"])
    second = edit.node(owner, "Relu", ["a"], ["b"])
    assert (first.name, second.name) == ("stem/Relu_1", "stem/Relu_2")  # "stem/Relu" is the owner's own
    unowned = edit.node(helper.make_node("Neg", ["x"], ["c"], name="Neg"), "Neg", ["x"], ["c"])
    assert unowned.name == "Neg"


def test_replace_node_keeps_the_order_around_it():
    proto = _model()
    relu = proto.graph.node[0]
    edit = Editor(proto)
    mid = edit.tensor("r_half")
    new = [edit.node(relu, "Relu", ["x"], [mid]), edit.node(relu, "Relu", [mid], ["r"])]
    replace_node(proto.graph, relu, new)
    assert [n.output[0] for n in proto.graph.node] == [mid, "r", "y"]
    onnx.checker.check_model(proto)


def test_constants_cover_initializers_and_constant_nodes_not_other_tensors():
    constant = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array([1.5], np.float32)))
    proto = _model([numpy_helper.from_array(np.arange(4, dtype=np.int64), "w")], [constant, *_model().graph.node])
    constants = Constants(proto)
    assert set(constants) == {"w", "k"} and len(constants) == 2
    assert constants["k"].tolist() == [1.5]
    assert "r" not in constants and constants.get("r") is None


def test_attributes_set_replace_and_read():
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], ceil_mode=1)
    set_attribute(node, "ceil_mode", 0)
    set_attribute(node, "pads", [0, 0, 1, 1])
    assert node_attributes(node) == {"kernel_shape": [2, 2], "ceil_mode": 0, "pads": [0, 0, 1, 1]}
    assert [a.name for a in node.attribute].count("ceil_mode") == 1


def test_known_shapes_keep_symbolic_dims_unknown():
    assert known_shapes(_model()) == {"x": [None, 3, 8, 8], "y": [None, 3, 8, 8]}


def test_the_graph_tools_do_not_import_torch():
    code = (
        "import sys, convspec.onnx_edit, convspec.onnx_checks, convspec.opset_convert, convspec.pytorch_sizes, "
        "convspec.node_names, convspec.onnx_walk, convspec.onnx_import, convspec.example_inputs; assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
