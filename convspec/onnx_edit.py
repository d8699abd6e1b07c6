"""Editing an ONNX graph in place: constant values and recorded shapes by tensor name, fresh names, node replacement."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import onnx

from .onnx_checks import dims_of


class Constants(Mapping):
    """The values of initializers and Constant nodes, by tensor name, read when asked for.

    Graph edits ask for a few small tensors (axes, pads, scales); reading every weight into
    numpy would cost more than the edits. Weights in an external data file are not values here.
    """

    def __init__(self, proto: onnx.ModelProto):
        self._tensors = {
            init.name: init for init in proto.graph.initializer if not onnx.external_data_helper.uses_external_data(init)
        }
        for node in proto.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self._tensors[node.output[0]] = node.attribute[0].t

    def __getitem__(self, name: str) -> np.ndarray:
        return onnx.numpy_helper.to_array(self._tensors[name])

    def __contains__(self, name: object) -> bool:
        return name in self._tensors  # without reading the value

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)


def known_shapes(proto: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Tensor shapes as torch's exporter recorded them (PyTorch's shapes), by tensor name."""
    return {info.name: dims_of(info) for info in (*proto.graph.input, *proto.graph.value_info, *proto.graph.output)}


class Editor:
    """Adds nodes and int64 constants to a graph under names nobody uses yet; nodes are named after a layer."""

    def __init__(self, proto: onnx.ModelProto):
        self.proto = proto
        graph = proto.graph
        self.tensors = {init.name for init in graph.initializer} | {i.name for i in graph.input}
        self.tensors |= {out for node in graph.node for out in node.output}
        self.nodes = {node.name for node in graph.node}

    def _fresh(self, taken: set[str], base: str) -> str:
        name, n = base, 0
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        return name

    def tensor(self, base: str) -> str:
        return self._fresh(self.tensors, base)

    def int64(self, base: str, values: list[int]) -> str:
        name = self.tensor(base)
        self.proto.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(values, dtype=np.int64), name))
        return name

    def float32(self, base: str, values: list[float]) -> str:
        name = self.tensor(base)
        self.proto.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(values, dtype=np.float32), name))
        return name

    def node(self, owner: onnx.NodeProto, op: str, inputs: list[str], outputs: list[str], **attributes: Any) -> onnx.NodeProto:
        layer = owner.name.rsplit("/", 1)[0] + "/" if "/" in owner.name else ""
        return onnx.helper.make_node(op, inputs, outputs, name=self._fresh(self.nodes, f"{layer}{op}"), **attributes)


def replace_node(graph: onnx.GraphProto, node: onnx.NodeProto, new: list[onnx.NodeProto]) -> None:
    """Put `new` where `node` is (the graph stays in topological order)."""
    index = list(graph.node).index(node)
    del graph.node[index]
    for offset, item in enumerate(new):
        graph.node.insert(index + offset, item)


def node_attributes(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as Python values, by name."""
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def set_attribute(node: onnx.NodeProto, name: str, value: Any) -> None:
    """Give `node` the attribute `name` = `value`, replacing any it had."""
    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    node.attribute.append(onnx.helper.make_attribute(name, value))
