"""An ONNX file's own checks: the ONNX checker, every node against its opset's schemas, shape inference against convspec's shapes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import onnx

from .edge_shapes import infer_shapes
from .errors import ExportError, Problem, first_line


def check_summary(opset: int) -> str:
    """The `check` line of a file that passed `check_file`."""
    return f"onnx.checker (full), opset {opset} schemas, shape inference matches the checker's output shapes"


def opset_of(proto: onnx.ModelProto) -> int:
    """The version of the default ONNX domain the model imports."""
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _enumerated(description: str, default: str) -> bool:
    """Whether a string attribute's schema lists its values: its description names the default."""
    return bool(default) and re.search(rf"(?<![\w-]){re.escape(default)}(?![\w-])", description) is not None


def standard_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """The nodes of the default ONNX domain in `graph`, each subgraph's (If, Loop, Scan) before its owner."""
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from standard_nodes(attribute.g)
        if node.domain in ("", "ai.onnx"):
            yield node


def opset_problems(proto: onnx.ModelProto) -> list[str]:
    """Each node of the default domain whose op, attributes or attribute values do not exist in the model's opset.

    Read from `onnx.defs.get_schema(op, opset)`: the op must exist, each attribute must be one
    of the schema's with its type, and a string attribute whose schema names its values
    (its description names the default, as Pad's `mode` or Resize's `coordinate_transformation_mode`)
    must hold one of those named there: `Pad(mode="wrap")` exists only from Pad-19. The ONNX
    checker and onnxruntime accept some of these, so they are checked here. Subgraphs included.
    """
    opset = opset_of(proto)
    problems: list[str] = []
    for node in standard_nodes(proto.graph):
        label = f"{node.name or node.op_type} ({node.op_type})"
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
        except onnx.defs.SchemaError:
            problems.append(f"{label}: {node.op_type} does not exist in opset {opset}")
            continue
        for attribute in node.attribute:
            declared = schema.attributes.get(attribute.name)
            if declared is None:
                problems.append(f"{label}: attribute {attribute.name!r} does not exist in {node.op_type}-{schema.since_version} (opset {opset})")
            elif declared.type != attribute.type:
                problems.append(f"{label}: attribute {attribute.name!r} has the wrong type for {node.op_type}-{schema.since_version}")
            elif attribute.type == onnx.AttributeProto.STRING and declared.default_value.HasField("s"):
                value = attribute.s.decode("utf-8", "replace")
                default = declared.default_value.s.decode("utf-8", "replace")
                if _enumerated(declared.description, default) and not _enumerated(declared.description, value):
                    problems.append(f"{label}: {attribute.name}={value!r} is not a value of {node.op_type}-{schema.since_version} (opset {opset})")
        for name, declared in schema.attributes.items():
            if declared.required and name not in {a.name for a in node.attribute}:
                problems.append(f"{label}: required attribute {name!r} of {node.op_type}-{schema.since_version} is missing")
    return problems


def dims_of(info: onnx.ValueInfoProto) -> list[int | None]:
    """A value's recorded dims, None where a dim is symbolic or unknown."""
    return [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]


def check_file(
    path: Path, proto: onnx.ModelProto, expected: dict[str, tuple], dynamic_spatial: bool, dynamic_batch: bool = True
) -> None:
    """The ONNX checker (full), the opset's schemas and shape inference against the checker's output shapes.

    `expected` maps each of the file's output names to the checker's shape (NCHW, batch first)
    for it; the batch must be dynamic, or equal the expected one where `dynamic_batch` is false.
    Raises ExportError naming what disagrees.
    """
    try:
        # the checker without its own shape inference: the strict inference below is the same one, run once
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the ONNX checker rejects the model: {first_line(err)}") from None
    except onnx.shape_inference.InferenceError as err:
        raise ExportError(f"ONNX shape inference rejects the model: {first_line(err, 300)}") from None
    wrong = opset_problems(proto)
    if wrong:
        raise ExportError([Problem(f"not valid in its opset: {p}") for p in wrong])
    try:
        inferred = infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as err:
        raise ExportError(f"ONNX shape inference rejects the model: {first_line(err, 300)}") from None
    problems = []
    for output in inferred.graph.output:
        want = expected.get(output.name)
        got = dims_of(output)
        if want is None or len(got) != len(want):
            problems.append(f"output {output.name!r}: ONNX infers rank {len(got)}, convspec {len(want or ())}")
            continue
        for axis, (g, e) in enumerate(zip(got, want)):
            if axis == 0:
                if dynamic_batch and g is not None:
                    problems.append(f"output {output.name!r}: ONNX infers a fixed batch of {g}, not a dynamic one")
                elif not dynamic_batch and g != e:
                    problems.append(f"output {output.name!r}: ONNX infers a batch of {g}, the file's input has {e}")
            elif dynamic_spatial and axis >= 2:
                continue  # a dynamic size: ONNX keeps it symbolic
            elif g is not None and g != e:
                problems.append(f"output {output.name!r} dim {axis}: ONNX infers {g}, convspec {e}")
            elif g is None and not dynamic_spatial:
                problems.append(f"output {output.name!r} dim {axis}: ONNX infers a dynamic size, convspec {e}")
    if problems:
        raise ExportError([Problem(f"shape inference disagrees with the checker: {p}") for p in problems])

