"""ONNX nodes named after the spec layers they came from, and a problem about a node placed at its layer."""

from __future__ import annotations

import ast
import re
from collections import Counter
from typing import Any

import onnx

from .edge_shapes import layer_problem
from .errors import Problem


def locate_problem(problem: Problem, nodes: list[tuple[str, str]], layers: list[tuple[str, Any]], spec: Any) -> Problem:
    """Place a problem about a node at the spec layer the node came from: the node it names, else the first of its op.

    `nodes` are the graph's (name, op) pairs; `layers` the (module path, LayerReport) of the spec's layers.
    """
    if problem.location.line is not None:
        return problem
    words = set(re.findall(r"[\w.]+(?:/\w+)?", problem.message))
    node = next((name for name, _ in nodes if name in words), None)
    node = node or next((name for name, op in nodes if op in words and "/" in name), None)
    layer = dict(layers).get(node.rsplit("/", 1)[0]) if node else None
    if layer is None:
        return problem
    return layer_problem(spec, layer, problem.message)


def name_nodes(proto: onnx.ModelProto, paths: set[str]) -> None:
    """Name each node after the spec layer it came from ("stage.0.conv_0/Conv"), so the graph reads like the spec.

    A conv with its BatchNorm folded in is named after the conv's layer, not its `norm` child.
    Also drops the exporter's per-node stack traces: they hold this machine's file paths.
    """
    used: Counter = Counter()
    for node in proto.graph.node:
        props = {p.key: p.value for p in node.metadata_props}
        try:
            scopes = ast.literal_eval(props.get("pkg.torch.onnx.name_scopes", "[]"))
        except (ValueError, SyntaxError):
            scopes = []
        modules = [scope for scope in scopes[:-1] if scope in paths]  # the last scope is the traced op itself
        base = f"{modules[-1]}/{node.op_type}" if modules else node.op_type
        used[base] += 1
        node.name = base if used[base] == 1 else f"{base}_{used[base] - 1}"
        _drop_traces(node)
        for graph in (a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH):
            _name_subgraph(graph, node.name)


def _name_subgraph(graph: onnx.GraphProto, owner: str) -> None:
    """Name a control-flow body's nodes under the node that owns it ("dynamic/Scan/Conv")."""
    used: Counter = Counter()
    for node in graph.node:
        base = f"{owner}/{node.op_type}"
        used[base] += 1
        node.name = base if used[base] == 1 else f"{base}_{used[base] - 1}"
        _drop_traces(node)
        for inner in (a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH):
            _name_subgraph(inner, node.name)


def _drop_traces(node: onnx.NodeProto) -> None:
    """Remove the exporter's stack trace and FX node from a node's metadata (they hold this machine's paths)."""
    kept = [p for p in node.metadata_props if p.key not in ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")]
    del node.metadata_props[:]
    node.metadata_props.extend(kept)


def name_unnamed(proto: onnx.ModelProto) -> None:
    """Name nodes a version converter added without a name by their op type ("Cast", "Cast_1")."""
    taken = {node.name for node in proto.graph.node}
    for node in proto.graph.node:
        if not node.name:
            base, n = node.op_type, 0
            while (name := base if n == 0 else f"{base}_{n}") in taken:
                n += 1
            node.name = name
            taken.add(name)

