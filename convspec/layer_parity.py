"""Layer by layer: each spec layer's output in onnxruntime against PyTorch's, on one input.

The output comparison of verification cannot tell a right graph from a wrong one when the
network's outputs barely depend on its input (deep nets at their initial weights: two
random inputs give outputs equal to 1e-9), and when it fails it says only which output
differs. Comparing every layer's output closes both gaps: the early layers depend on the
input whatever the weights, and the first layer that differs is where the graph goes wrong.

A layer's tensor in the file is found by node names (`edge_shapes.layer_outputs`): export
names every node after the spec layer it came from, so this works on files convspec wrote
and on files other tools changed without renaming nodes. The file's model is run again with
those tensors added as graph outputs (onnxruntime may then fuse less, but computes the same
values); PyTorch's come from forward hooks on the modules at the same paths. Each layer's
output is held to the export's criterion on its own scale: max|diff| <= atol + rtol * max|PyTorch|.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from .edge_shapes import infer_shapes, layer_outputs, layer_problem
from .errors import Problem, listing

LAYER_OUTPUTS = "convspec.layer_outputs"  # the metadata key of the {module path: tensor} map export records

_FLOAT = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


@dataclass(frozen=True)
class LayerCheck:
    """One spec layer's output: its module path, the file's tensor holding it, and the comparison (an OutputCheck)."""

    path: str
    tensor: str
    check: Any
    input_spread: float | None = None  # `input_spread` of PyTorch's output of the layer (None at batch 1)
    operand_scale: float = 0.0  # the largest value computed up to the layer (max|input| so far): a floor of its scale
    place: Problem | None = None  # where the layer stands in the spec (a Problem's location and layer label)


def module_paths(report: Any) -> list[tuple[str, Any]]:
    """(module path, LayerReport) of every spec layer of a Report, containers before their layers: "stem", "stage.0.conv_0", ..."""
    found: list[tuple[str, Any]] = []

    def walk(layers, prefix: str) -> None:
        for layer in layers:
            found.append((prefix + layer.name, layer))
            walk(layer.children, prefix + layer.name + ".")

    walk(report.layers, "")
    return found


def layer_tensors(proto: onnx.ModelProto, layers: Sequence[tuple[str, Any]]) -> dict[str, str]:
    """{module path: the file's tensor holding that layer's output}, in graph order, for the layers it can tell.

    `layers` pairs each spec layer's module path with its LayerReport. A layer's tensor is the
    one float tensor of the layer's rank that its nodes hand outside it (the file's
    `value_info` gives types and ranks). Layers without nodes of their own (`identity`,
    `dropout` at inference), with several outputs (`split`) or whose nodes other tools
    renamed are left out.
    """
    infos = {info.name: info for info in (*proto.graph.value_info, *proto.graph.output)}
    # a split hands on parts: which tensor is which part is not known here, and its module returns them together
    shapes = {path: report.output_shape for path, report in layers if report.output_shape is not None and report.type != "split"}
    found: dict[str, str] = {}
    for path, leaving in layer_outputs(proto.graph, [path for path, _ in layers]).items():
        fitting = [
            name for name in leaving
            if name in infos and infos[name].type.tensor_type.elem_type in _FLOAT and path in shapes
            and _fits(infos[name].type.tensor_type.shape.dim, shapes[path])
        ]
        if len(fitting) == 1:  # several: parts of one output, none of which is the layer's output alone
            found[path] = fitting[0]
    return in_graph_order(proto, found)


def _fits(dims: Any, shape: tuple) -> bool:
    """Whether a tensor's recorded dims can be a layer's output of `shape` (NCHW): its rank, and no fixed size past the
    batch that differs (a tensor in another layout, left where a rewrite cancelled a Transpose pair, is not it)."""
    if len(dims) != len(shape):
        return False
    return not any(
        axis > 0 and d.HasField("dim_value") and isinstance(want, int) and d.dim_value != want for axis, (d, want) in enumerate(zip(dims, shape))
    )


def in_graph_order(proto: onnx.ModelProto, tensors: dict[str, str]) -> dict[str, str]:
    """`tensors` ({path: tensor}) ordered by the node making each tensor: a container's output after its layers'."""
    made_at = {name: index for index, node in enumerate(proto.graph.node) for name in node.output}
    return dict(sorted(tensors.items(), key=lambda item: made_at.get(item[1], len(made_at))))


def record_layer_outputs(proto: onnx.ModelProto, layers: Sequence[tuple[str, Any]]) -> None:
    """Write `layer_tensors` into the file's metadata (LAYER_OUTPUTS, JSON), so that a verification finds each layer's
    tensor by its name even after a tool renamed the nodes, and knows how many layers the file should show."""
    prop = proto.metadata_props.add()
    prop.key, prop.value = LAYER_OUTPUTS, json.dumps(layer_tensors(proto, layers))


def recorded_layer_outputs(proto: onnx.ModelProto) -> dict[str, str] | None:
    """The {module path: tensor} map export recorded (LAYER_OUTPUTS), or None where the file has none readable."""
    text = next((p.value for p in proto.metadata_props if p.key == LAYER_OUTPUTS), None)
    try:
        recorded = json.loads(text) if text is not None else None
    except ValueError:
        return None
    if not isinstance(recorded, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()):
        return None
    return recorded


def has_external_data(proto: onnx.ModelProto) -> bool:
    """Whether any initializer's data lives in another file (the model cannot then be run from memory)."""
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


@dataclass
class LayerProbe:
    """The file's model with each spec layer's tensor known: runs it and PyTorch's model, and compares layer by layer.

    `tensors` maps module paths to the file's tensors, in graph order; `expected` is how many
    layers the file should show (the layers export recorded, or the spec's layers that make
    nodes of their own): fewer found means the comparison cannot vouch for the rest. `places`
    gives each layer's place in the spec (`edge_shapes.layer_problem`), for messages.
    """

    proto: onnx.ModelProto
    tensors: dict[str, str]
    expected: int
    input_name: str
    session_options: Any
    places: dict[str, Problem] = field(default_factory=dict)

    def __call__(self, model: nn.Module, x: torch.Tensor, compare: Callable[[str, np.ndarray, np.ndarray, float], Any]) -> list[LayerCheck]:
        """Run `model` (eval mode) and the file with the layers' tensors as extra outputs on `x` (NCHW float32).

        `compare(path, expected, actual, operand_scale)` is verification's criterion (an
        OutputCheck with `ok`), judged on the larger of max|expected| and `operand_scale`, the
        largest value the network computed up to the layer (its input and every earlier
        layer's inputs): float32's absolute errors follow the largest operands, so a layer whose
        output cancels to near zero (a mean over a normalised map), and what follows it, is
        judged against the values that went in. Returns a LayerCheck per layer whose module returned one tensor, in graph order.
        Raises what onnxruntime raises when the changed model does not load or run.
        """
        import onnxruntime as ort

        captured, operands = _layer_outputs_in_pytorch(model, x, list(self.tensors))
        names = [name for path, name in self.tensors.items() if path in captured]
        session = ort.InferenceSession(_with_outputs(self.proto, names).SerializeToString(), self.session_options, providers=["CPUExecutionProvider"])
        values = dict(zip(names, session.run(names, {self.input_name: x.numpy()})))
        checks, floor = [], float(x.abs().max())
        for path, name in self.tensors.items():
            if path not in captured:
                continue
            floor = max(floor, operands[path])  # the largest value computed so far: float32's errors follow it
            checks.append(LayerCheck(
                path, name, compare(path, captured[path].numpy(), np.asarray(values[name], dtype=np.float32), floor),
                input_spread=input_spread(captured[path]) if x.shape[0] > 1 else None, place=self.places.get(path), operand_scale=floor,
            ))
        return checks


def _layer_outputs_in_pytorch(model: nn.Module, x: torch.Tensor, paths: list[str]) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """({path: the output of the module at `path`}, {path: max|input| of it}) on `x`, for the modules that return one tensor."""
    captured: dict[str, torch.Tensor] = {}
    operands: dict[str, float] = {}
    hooks = []
    for path in paths:
        def keep(_module, inputs, output, path=path) -> None:
            if isinstance(output, torch.Tensor):
                captured[path] = output.detach().clone()  # a later in-place op must not change what was seen
                operands[path] = max((float(t.abs().max()) for t in inputs if isinstance(t, torch.Tensor) and t.numel()), default=0.0)
        hooks.append(model.get_submodule(path).register_forward_hook(keep))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return captured, operands


def _with_outputs(proto: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of `proto` that also returns the tensors `names` (types from its value_info, else shape inference)."""
    known = {info.name: info for info in (*proto.graph.value_info, *proto.graph.output)}
    if any(name not in known for name in names):
        known = {**{info.name: info for info in infer_shapes(proto).graph.value_info}, **known}
    probed = onnx.ModelProto()
    probed.CopyFrom(proto)
    listed = {output.name for output in proto.graph.output}
    for name in names:
        if name not in listed:
            probed.graph.output.append(known.get(name) or onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
            listed.add(name)
    return probed


NO_TENSOR_OF_THEIR_OWN = ("identity", "dropout", "split")  # kinds whose output is no single tensor made by nodes of theirs
LAYER_PRECISIONS = ("fp32", "fp16")  # int8 files differ from float32 at every layer by design


def layer_probe(proto: onnx.ModelProto, report: Any, input_name: str, *, precision: str, session_options: Any) -> LayerProbe | None:
    """The file and the spec's layers (`report`, a Report) ready to be compared layer by layer (a LayerProbe).

    Each layer's tensor is the one export recorded in the file (LAYER_OUTPUTS), found by
    its name whatever tools did to the nodes; in a file that records none, the one its node
    names give. None where layers cannot be compared: an int8 file (its layers differ from
    float32 by design), one whose weights live in another file, or one where no layer is found.
    `precision` is the file's (its `convspec.precision`); `session_options` onnxruntime's.
    """
    if precision not in LAYER_PRECISIONS or has_external_data(proto):
        return None
    layers = module_paths(report)
    paths = {path for path, _ in layers}
    # what the spec says the file should show: a record cut short by a tool must not lower it
    expected = sum(1 for _, layer in layers if layer.type not in NO_TENSOR_OF_THEIR_OWN)
    recorded = recorded_layer_outputs(proto)
    if recorded is not None:
        made = {name for node in proto.graph.node for name in node.output}
        wanted = {path: tensor for path, tensor in recorded.items() if path in paths}
        tensors, expected = in_graph_order(proto, {p: t for p, t in wanted.items() if t in made}), max(expected, len(wanted))
    else:
        tensors = layer_tensors(proto, layers)
        expected = max(expected, len(tensors))
    if not tensors:
        return None
    places = {path: layer_problem(report.spec, layer, "") for path, layer in layers if path in tensors}
    return LayerProbe(proto, tensors, expected, input_name, session_options, places)


def barely_depend(names: Sequence[str]) -> str:
    """'output fc barely depends on the input' / 'outputs a and b barely depend on the input'."""
    one = len(names) == 1
    return f"output{'' if one else 's'} {listing(list(names))} barely depend{'s' if one else ''} on the input"


def input_spread(output: torch.Tensor) -> float:
    """max|output[i] - output[0]| over the samples (dim 0), as a fraction of max|output| (0 for an all-zero output).

    At or below the comparison's rtol, the output barely depends on the input, and a
    comparison of it cannot tell a graph from one that ignores its input.
    """
    scale = float(output.abs().max())
    return float((output - output[:1]).abs().max()) / scale if scale > 0 else 0.0


def layer_failure(layer: LayerCheck, rtol: float, atol: float) -> Problem:
    """A failed layer as a person reads it, placed at the layer in the spec: which layer, which tensor, by how much."""
    where = f"the first layer whose output differs is {layer.path!r} (tensor {layer.tensor!r}): "
    check = layer.check
    if check.detail:
        message = where + check.detail
    else:
        allowed = f"{atol:g} + {rtol:g} x max|PyTorch|" if layer.operand_scale <= check.scale else (
            f"{atol:g} + {rtol:g} x {layer.operand_scale:.3g}, the largest value computed up to this layer"
        )
        message = where + f"max|diff| {check.worst_abs:.3g} is {check.worst_rel:.3g} x max|PyTorch| {check.scale:.3g} (allowed: {allowed})"
    if layer.place is None:
        return Problem(message)
    return Problem(message, layer.place.location, layer.place.layer)


__all__ = ["LAYER_OUTPUTS", "LayerCheck", "LayerProbe", "barely_depend", "in_graph_order", "layer_failure", "layer_probe", "record_layer_outputs", "recorded_layer_outputs", "has_external_data", "input_spread", "layer_tensors", "module_paths"]
