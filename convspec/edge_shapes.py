"""Shapes for viewers: every edge of an exported graph carries its shape in the graph's `value_info`.

Netron and other viewers show a tensor's shape only when the file records it. Each
spec layer's output is given the checker's shape (batch symbolic, `batch`; channels
and, at a fixed size, spatial sizes as `convspec check` computed them), after checking
it against ONNX shape inference; the edges inside a layer (a conv's padding, a
flatten's shape tensor, quantize / dequantize pairs) get the shapes ONNX shape
inference gives (https://onnx.ai/onnx/repo-docs/ShapeInference.html).

A layer's output is found by node names: export names every node after the spec
layer it came from (`layer1.0.block.conv1/Conv`), so a layer's nodes are those named
after it or after a layer inside it, and its output is the last tensor they make that
a node outside the layer reads (or that the graph returns). A layer with no node of
its own (`identity`, `dropout` at inference) has no edge of its own. Nodes added by
later tools (quantize / dequantize pairs, casts) carry no layer name and count as outside.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import onnx

from .errors import ExportError, Problem
from .source import layer_label

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


#: initializers up to this many elements stay in the copy shape inference reads: shape
#: inference reads the values of small constants (a Reshape's shape, a Resize's scales)
SMALL_CONSTANT = 64


def infer_shapes(proto: onnx.ModelProto, **options: Any) -> onnx.ModelProto:
    """ONNX shape inference (`onnx.shape_inference.infer_shapes`, `options` passed on) on `proto`'s structure.

    Inference reads an initializer's type and dims, and the values of small ones only, so it
    runs on a copy whose initializers of more than SMALL_CONSTANT elements are graph inputs
    of the same type and shape: the weights are neither copied nor serialized (a 90 MB model
    costs what its graph does, and external data is never loaded). The result carries the
    inferred `value_info` and outputs; it is not a complete model. Raises what
    `infer_shapes` raises (`onnx.shape_inference.InferenceError` in strict mode).
    """
    graph = proto.graph
    skeleton = onnx.ModelProto(
        ir_version=proto.ir_version, opset_import=proto.opset_import, functions=proto.functions, domain=proto.domain
    )
    skeleton.graph.name = graph.name
    skeleton.graph.node.extend(graph.node)
    skeleton.graph.input.extend(graph.input)
    skeleton.graph.output.extend(graph.output)
    skeleton.graph.value_info.extend(graph.value_info)
    skeleton.graph.sparse_initializer.extend(graph.sparse_initializer)
    listed = {info.name for info in graph.input}  # files of IR version 3 list initializers as inputs too
    for tensor in graph.initializer:
        if math.prod(tensor.dims) <= SMALL_CONSTANT:
            skeleton.graph.initializer.append(tensor)
        elif tensor.name not in listed:
            skeleton.graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return onnx.shape_inference.infer_shapes(skeleton, **options)


def _owner(node: onnx.NodeProto) -> str | None:
    """The layer path a node is named after ("layer1.0.block.conv1"), or None for a node no layer made."""
    return node.name.rsplit("/", 1)[0] if "/" in node.name else None


def _inside(owner: str | None, layer: str) -> bool:
    return owner is not None and (owner == layer or owner.startswith(layer + "."))


def layer_outputs(graph: onnx.GraphProto, layer_paths: Sequence[str]) -> dict[str, list[str]]:
    """{layer path: the tensors its nodes hand outside it, in graph order} for each layer with nodes in `graph`.

    One tensor for most layers (the last is the layer's output); a layer whose nodes also
    hand on a shape tensor, or a split's parts, give several.
    """
    owners = [(_owner(node), node) for node in graph.node]
    readers: dict[str, list[str | None]] = {}
    for owner, node in owners:
        for name in node.input:
            readers.setdefault(name, []).append(owner)
    returned = {output.name for output in graph.output}
    found: dict[str, list[str]] = {}
    for layer in layer_paths:
        made = [name for owner, node in owners if _inside(owner, layer) for name in node.output if name]
        leaving = [name for name in made if name in returned or any(not _inside(r, layer) for r in readers.get(name, []))]
        if leaving:
            found[layer] = leaving
    return found


def _dims(info: onnx.ValueInfoProto) -> list[int | str | None]:
    """A tensor's dims: an int, a symbol's name, or None where unknown."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in info.type.tensor_type.shape.dim]


def _set_dims(info: onnx.ValueInfoProto, dims: Sequence[int | str | None]) -> None:
    shape = info.type.tensor_type.shape
    shape.ClearField("dim")
    for value in dims:
        dim = shape.dim.add()
        if isinstance(value, int):
            dim.dim_value = value
        elif value:
            dim.dim_param = value


def record_edge_shapes(proto: onnx.ModelProto, layers: Sequence[tuple[str, Any]], spec: Any, dynamic_spatial: bool) -> int:
    """Write the shape of every edge of `proto`'s main graph into its `value_info`; return how many edges it holds.

    `layers` pairs each spec layer's module path with its LayerReport (at the traced
    input size); a layer output's shape (NCHW, batch first) is the checker's, written
    with the batch as the symbol `batch` and, when `dynamic_spatial`, the spatial sizes
    as ONNX shape inference leaves them. Raises ExportError, located at the layer, where
    shape inference gives a size that is not the checker's (sizes that are the checker's in
    another order are a layout a rewrite left, not an error: that edge is not written over).
    """
    try:
        inferred = infer_shapes(proto, data_prop=True)
    except Exception:  # inference failing is reported by the checks; the layer outputs still get the checker's shapes
        inferred = proto
    known = {info.name: info for info in (*proto.graph.value_info, *inferred.graph.value_info)}
    boundary = {i.name for i in proto.graph.input} | {o.name for o in proto.graph.output} | {i.name for i in proto.graph.initializer}
    by_path = dict(layers)
    outputs = layer_outputs(proto.graph, list(by_path))
    problems: list[Problem] = []
    edges: dict[str, onnx.ValueInfoProto] = {}
    made = {out for node in proto.graph.node for out in node.output if out}
    for name, info in known.items():
        if name in made and name not in boundary and info.type.HasField("tensor_type"):
            edges[name] = info
    for path, leaving in outputs.items():
        layer = by_path[path]
        if layer.output_shape is None or None in layer.output_shape[1:2]:
            continue
        checker: list[int | str | None] = ["batch", *layer.output_shape[1:]]
        if dynamic_spatial:
            checker[2:] = [None] * (len(checker) - 2)
        # the layer's data: a float tensor of its rank (not a shape tensor); several only where the layer hands on parts
        candidates = [
            t for t in leaving
            if t not in boundary and t in edges and edges[t].type.tensor_type.elem_type in _FLOAT_TYPES
            and len(_dims(edges[t])) in (0, len(checker))
        ]
        if not candidates:
            continue
        agreeing = [t for t in candidates if not _disagree(checker, _dims(edges[t]))]
        if len(candidates) == 1 and not agreeing and not _permuted(checker, _dims(edges[candidates[0]])):
            got = _dims(edges[candidates[0]])
            problems.append(layer_problem(spec, layer, f"shape inference disagrees with the checker: ONNX shape inference gives {candidates[0]!r} {got}, the checker {list(layer.output_shape)}"))
            continue
        if not agreeing:
            # a split's parts (which is which is not known here), or the layer's output in another layout: a
            # rewrite cancelled its closing Transpose with the next layer's opening one, so no tensor holds it
            continue
        tensor = agreeing[-1]
        info, got = edges[tensor], _dims(edges[tensor])
        merged = [mine if mine is not None else theirs for mine, theirs in zip(checker, got or [None] * len(checker))]
        fresh = onnx.ValueInfoProto()
        fresh.CopyFrom(info)
        _set_dims(fresh, merged)
        edges[tensor] = fresh
    if problems:
        raise ExportError(problems)
    order = {name: index for index, name in enumerate(out for node in proto.graph.node for out in node.output)}
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(sorted(edges.values(), key=lambda info: order.get(info.name, len(order))))
    return len(edges)


def _permuted(checker: Sequence[int | str | None], inferred: Sequence[int | str | None]) -> bool:
    """Whether the inferred sizes past the batch are the checker's in another order (a transposed layout)."""
    mine, theirs = list(checker[1:]), list(inferred[1:])
    return None not in mine and None not in theirs and all(isinstance(v, int) for v in mine + theirs) and sorted(mine) == sorted(theirs)


def _disagree(checker: Sequence[int | str | None], inferred: Sequence[int | str | None]) -> bool:
    """Whether shape inference gives a fixed size, past the batch, that is not the checker's."""
    return any(axis > 0 and isinstance(a, int) and isinstance(b, int) and a != b for axis, (a, b) in enumerate(zip(checker, inferred)))


def layer_problem(spec: Any, layer: Any, message: str) -> Problem:
    """A Problem about a spec layer (a LayerReport of `spec`'s report), placed at the layer in the spec's text."""
    source = spec.source
    label = layer_label(source.data, layer.path)[1] if source.data is not None else layer.name
    return Problem(message, source.locate(layer.path), label)


__all__ = ["infer_shapes", "layer_outputs", "layer_problem", "record_edge_shapes"]
