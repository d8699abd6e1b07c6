"""The bookkeeping of one pass over an ONNX graph: what each tensor is to the spec, constants, shapes, layer names, weights taken."""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from .edge_shapes import infer_shapes
from .errors import ConvspecError, Location, Problem
from .layer_names import layer_name_problem
from .onnx_edit import known_shapes


class UnsupportedModelError(ConvspecError):
    """The graph holds an operator (or a use of one) that no spec layer expresses (exit status 1)."""

    exit_code = 1


@dataclass
class TensorSource:
    """What a tensor of the graph is to the spec: the layer that makes it (`input` for the graph's input)."""

    layer: str
    spec_layer: dict | None = None


def attribute_values(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes by name, float ones as the shortest decimal of their float32."""
    # float attributes are float32: the shortest decimal that is the same float32 (0.2, not 0.20000000298023224)
    return {a.name: _short_float(onnx.helper.get_attribute_value(a)) if a.type == onnx.AttributeProto.FLOAT else onnx.helper.get_attribute_value(a)
            for a in node.attribute}  # fmt: skip


def _short_float(value: float) -> float:
    return float(str(np.float32(value)))


def one_or_list(values: list[int]) -> int | list[int]:
    """One value where every dim has the same, else the list (as a spec writes `kernel_size`)."""
    return values[0] if len(set(values)) == 1 else list(values)


def as_text(value: Any) -> str:
    """A string attribute (bytes in ONNX) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def module_path(node: onnx.NodeProto, weight_name: str | None) -> str | None:
    """The module path a node came from, as exporters leave it, or None."""
    if weight_name and not weight_name.startswith("onnx::") and "." in weight_name:
        return weight_name.rsplit(".", 1)[0]
    props = {p.key: p.value for p in node.metadata_props}
    scopes = props.get("pkg.torch.onnx.name_scopes")
    if scopes:
        try:
            names = [s for s in ast.literal_eval(scopes) if s]
        except (ValueError, SyntaxError):
            names = []
        try:
            hierarchy = ast.literal_eval(props.get("pkg.torch.onnx.class_hierarchy", "[]"))
        except (ValueError, SyntaxError):
            hierarchy = []
        modules, op = names[:-1], names[-1] if names else ""
        # the call of a torch.nn module (ReLU, MaxPool2d) is named after the module; a function inside one after both
        if modules and len(hierarchy) >= 2 and str(hierarchy[-2]).startswith("torch.nn.modules."):
            return modules[-1]
        if modules:
            return f"{modules[-1]}.{op}"
        if op:
            return op
    if node.name.startswith("/"):  # TorchScript: /layer2/downsample/downsample.0/Conv
        parts = [p for p in node.name.split("/") if p]
        path: list[str] = []
        previous = ""
        for part in parts[:-1]:
            path.append(part[len(previous) + 1:] if previous and part.startswith(previous + ".") else part)
            previous = part
        op = parts[-1] if parts else ""
        if not path:
            return op.lower() or None
        return ".".join(path) if op == node.op_type else ".".join([*path, op.lower()])
    return None


class GraphWalk:
    """One pass over the graph, building the layers, the wiring and the weights: the state and the moves every operator's reading shares."""

    def __init__(self, proto: onnx.ModelProto, origin: str):
        self.origin = origin
        self.graph = proto.graph
        self.shapes: dict[str, list[int | None]] = known_shapes(infer_shapes(proto))  # the graph's, without copying the weights
        self.constants: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        for node in self.graph.node:
            if node.op_type == "Constant":
                value = attribute_values(node)
                if "value" in value:
                    self.constants[node.output[0]] = numpy_helper.to_array(value["value"])
                elif "value_float" in value or "value_int" in value:
                    self.constants[node.output[0]] = np.array(value.get("value_float", value.get("value_int")))
        self.consumers = Counter(name for node in self.graph.node for name in node.input if name)
        self.consumers.update(o.name for o in self.graph.output)
        self.graph_outputs = {o.name for o in self.graph.output}
        inputs = [i for i in self.graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            raise UnsupportedModelError([Problem(f"a spec has one input; the graph has {len(inputs)} ({', '.join(i.name for i in inputs)})", Location(origin))])
        self.input = inputs[0].name
        self.values: dict[str, TensorSource] = {self.input: TensorSource("input")}
        self.layers: list[dict] = []
        self.weights: dict[str, np.ndarray] = {}
        self.file_params = 0
        self.names: set[str] = set()
        self.pads: dict[str, tuple[str, list[int]]] = {}  # a Pad's output -> (its input, pads)
        self.skip: set[str] = set()  # nodes folded into an earlier layer
        self.last_output = self.input

    def refuse(self, node: onnx.NodeProto, why: str) -> UnsupportedModelError:
        """The error naming `node`, its op and `why` no spec layer expresses it (to raise)."""
        label = node.name or node.output[0]
        return UnsupportedModelError([Problem(f"node {label!r} ({node.op_type}): {why}", Location(self.origin))])

    def const(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray | None:
        """The constant value of `node`'s input `index` (None when absent); refused when it is computed."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.constants:
            raise self.refuse(node, f"its {what} ({name}) must be a constant (an initializer) for a spec layer")
        return self.constants[name]

    def value(self, node: onnx.NodeProto, name: str) -> TensorSource:
        """What the tensor `name` that `node` reads is to the spec; refused when no layer makes it."""
        if name in self.pads:
            raise self.refuse(node, "reads a Pad's output; a Pad must feed a Conv or a pool, which takes its padding")
        if name not in self.values:
            raise self.refuse(node, f"reads {name!r}, which no supported node makes")
        return self.values[name]

    def name_for(self, node: onnx.NodeProto, kind: str, weight: str | None = None) -> str:
        """A valid, unused layer name: the node's module path made a name, else `<kind>_<index>`."""
        path = module_path(node, weight)
        candidate = re.sub(r"\W", "_", path.replace(".", "_")) if path else ""
        if candidate and candidate[0].isdigit():
            candidate = f"{kind}_{candidate}"
        if not candidate or layer_name_problem(candidate) is not None or candidate in self.names:
            base = candidate if candidate and layer_name_problem(candidate) is None else f"{kind}_{len(self.layers)}"
            candidate, n = base, 2
            while candidate in self.names or layer_name_problem(candidate) is not None:
                candidate, n = f"{base}_{n}", n + 1
        self.names.add(candidate)
        return candidate

    def add_layer(self, node: onnx.NodeProto, layer: dict, sources: list[str], output: str) -> dict:
        """Append `layer`, wired from the graph tensors `sources`; its output tensor is `output`."""
        froms = [self.values[s].layer for s in sources]
        if len(froms) > 1:
            layer["from"] = froms
        elif froms and sources[0] != self.last_output:
            layer["from"] = froms[0]
        self.layers.append(layer)
        self.values[output] = TensorSource(layer["name"], layer)
        self.last_output = output
        return layer

    def fusable(self, name: str, types: tuple[str, ...], free: tuple[str, ...]) -> dict | None:
        """The layer making `name`, if the next node may join it: read by that node alone, and the layer's `free` keys unset."""
        out = self.values.get(name)
        if out is None or out.spec_layer is None or out.spec_layer["type"] not in types:
            return None
        if self.consumers[name] != 1 or name in self.graph_outputs or name != self.last_output:
            return None
        if any(key in out.spec_layer for key in free):
            return None
        return out.spec_layer

    def alias(self, output: str, source: str) -> None:
        """The tensor `output` is `source` to the spec (a node joined its layer, or copies it)."""
        self.values[output] = self.values[source]
        if self.last_output == source:
            self.last_output = output

    def channels(self, name: str) -> int | None:
        """The channels (dim 1) of tensor `name`, when shape inference knows them."""
        shape = self.shapes.get(name)
        return shape[1] if shape and len(shape) > 1 else None

    def weight(self, key: str, array: np.ndarray, parameter: bool = True) -> None:
        """Keep `array` as the spec's tensor `key`; a parameter (not a buffer) counts towards the file's parameters."""
        self.weights[key] = np.array(array, order="C")  # a copy, C-ordered; 0-d stays 0-d (ascontiguousarray makes it 1-d)
        if parameter:
            self.file_params += int(array.size)

