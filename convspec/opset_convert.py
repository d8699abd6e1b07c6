"""The opset-18 model torch's exporter writes, rewritten in the opset asked for (`to_opset`)."""

from __future__ import annotations

import onnx

from .errors import ExportError, first_line
from .onnx_checks import opset_of, standard_nodes
from .onnx_edit import Constants, Editor, known_shapes, node_attributes, replace_node

TORCH_OPSET = 18  # the opset torch's exporter translates to (it converts to others afterwards)


_AXES_BECAME_AN_INPUT_IN_18 = {
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare",
}  # fmt: skip


def _lower_reductions(proto: onnx.ModelProto, opset: int) -> None:
    """Rewrite opset-18 style reductions (axes as an input) to the attribute form of opsets below 18."""
    if opset >= 18:
        return
    constants = Constants(proto)
    for node in proto.graph.node:
        if node.op_type not in _AXES_BECAME_AN_INPUT_IN_18:
            continue
        attributes = {a.name: a for a in node.attribute}
        noop = attributes.get("noop_with_empty_axes")
        if len(node.input) > 1 and node.input[1]:
            if node.input[1] not in constants:
                raise ExportError(f"{node.name}: {node.op_type} with computed axes has no form in opset {opset}; use --opset 18")
            axes = [int(a) for a in constants[node.input[1]].reshape(-1)]
            del node.input[1:]
            node.attribute.append(onnx.helper.make_attribute("axes", axes))
        elif noop is not None and noop.i:
            raise ExportError(f"{node.name}: {node.op_type} with noop_with_empty_axes has no form in opset {opset}; use --opset 18")
        if noop is not None:
            node.attribute.remove(noop)


def _lower_wrap_pads(proto: onnx.ModelProto) -> None:
    """Rewrite Pad(mode="wrap") (circular padding, Pad-19 on) as Slice + Concat per axis, which every opset has.

    Wrapping `lo` before and `hi` after along an axis is concat(x[-lo:], x, x[:hi]); PyTorch's
    circular padding is the same (it requires lo, hi <= the size, so one copy suffices).
    """
    constants = Constants(proto)
    known = known_shapes(proto)
    edit = Editor(proto)
    for node in list(proto.graph.node):
        if node.op_type != "Pad" or node_attributes(node).get("mode") != b"wrap":
            continue
        if node.input[1] not in constants:
            raise ExportError(f"{node.name}: circular padding of a computed size has no form before opset 19; use --opset 19")
        pads = [int(v) for v in constants[node.input[1]].reshape(-1)]
        n = len(pads) // 2
        rank = len(known.get(node.input[0], [])) or n
        axes = list(range(n))
        if len(node.input) > 3 and node.input[3]:
            axes = [int(a) % rank for a in constants[node.input[3]].reshape(-1)]
        if any(p < 0 for p in pads):
            raise ExportError(f"{node.name}: circular cropping has no form before opset 19; use --opset 19")
        new, current = [], node.input[0]
        steps = [(axis, lo, hi) for axis, lo, hi in zip(axes, pads[:n], pads[n:]) if lo or hi]
        for index, (axis, lo, hi) in enumerate(steps):
            parts = []
            if lo:
                before = edit.tensor(f"{node.output[0]}_wrap{axis}_before")
                starts, ends, on = edit.int64("wrap_start", [-lo]), edit.int64("wrap_end", [2**63 - 1]), edit.int64("wrap_axis", [axis])
                new.append(edit.node(node, "Slice", [current, starts, ends, on], [before]))
                parts.append(before)
            parts.append(current)
            if hi:
                after = edit.tensor(f"{node.output[0]}_wrap{axis}_after")
                starts, ends, on = edit.int64("wrap_start", [0]), edit.int64("wrap_end", [hi]), edit.int64("wrap_axis", [axis])
                new.append(edit.node(node, "Slice", [current, starts, ends, on], [after]))
                parts.append(after)
            joined = node.output[0] if index == len(steps) - 1 else edit.tensor(f"{node.output[0]}_wrap{axis}")
            new.append(edit.node(node, "Concat", parts, [joined], axis=axis))
            current = joined
        if not steps:
            new.append(edit.node(node, "Identity", [node.input[0]], [node.output[0]]))
        replace_node(proto.graph, node, new)


def _lower_mish(proto: onnx.ModelProto) -> None:
    """Rewrite Mish (opset 18 on, which torch's optimizer fuses) as x * tanh(softplus(x)), its definition."""
    edit = Editor(proto)
    for node in list(proto.graph.node):
        if node.op_type != "Mish":
            continue
        soft, tanh = edit.tensor(f"{node.output[0]}_softplus"), edit.tensor(f"{node.output[0]}_tanh")
        replace_node(proto.graph, node, [
            edit.node(node, "Softplus", [node.input[0]], [soft]),
            edit.node(node, "Tanh", [soft], [tanh]),
            edit.node(node, "Mul", [node.input[0], tanh], [node.output[0]]),
        ])  # fmt: skip


def _lower_shape_ranges(proto: onnx.ModelProto) -> None:
    """Rewrite Shape with `start` / `end` (Shape-15) as Shape + Slice, which opsets before 15 have."""
    edit = Editor(proto)
    for node in list(proto.graph.node):
        attributes = node_attributes(node)
        if node.op_type != "Shape" or not ({"start", "end"} & set(attributes)):
            continue
        whole = edit.tensor(f"{node.output[0]}_whole")
        start, end = attributes.get("start", 0), attributes.get("end", 2**63 - 1)
        bounds = [edit.int64("shape_start", [start]), edit.int64("shape_end", [end]), edit.int64("shape_axis", [0])]
        sliced = edit.node(node, "Slice", [whole, *bounds], [node.output[0]])
        kept = [a for a in node.attribute if a.name not in ("start", "end")]  # Shape-13 has neither
        del node.attribute[:]
        node.attribute.extend(kept)
        node.output[0] = whole
        replace_node(proto.graph, node, [node, sliced])


def _drop_attributes_newer_than(proto: onnx.ModelProto, opset: int) -> None:
    """Remove attributes an op gained after `opset` where they hold their default, or fail naming the node.

    torch's exporter writes Resize with opset 18's `antialias` and `keep_aspect_ratio_policy` even
    in a model it labels lower, and onnx's version converter keeps them.
    """
    for node in standard_nodes(proto.graph):
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
        except onnx.defs.SchemaError:
            raise ExportError(f"{node.name}: {node.op_type} does not exist in opset {opset}; use a newer --opset") from None
        newest = onnx.defs.get_schema(node.op_type, onnx.defs.onnx_opset_version(), node.domain)
        for attribute in list(node.attribute):
            if attribute.name in schema.attributes:
                continue
            declared = newest.attributes.get(attribute.name)
            default = declared.default_value if declared is not None else None
            if default is None or not default.name or onnx.helper.get_attribute_value(default) != onnx.helper.get_attribute_value(attribute):
                raise ExportError(
                    f"{node.name}: {node.op_type}'s attribute {attribute.name} has no form in opset {opset}; use a newer --opset"
                )
            node.attribute.remove(attribute)
        if len(node.input) > schema.max_input:
            if any(node.input[schema.max_input :]):
                raise ExportError(f"{node.name}: {node.op_type} takes {schema.max_input} inputs in opset {opset}; use a newer --opset")
            del node.input[schema.max_input :]


# Ops whose form onnx's converter has no adapter to step down, though the older form means the
# same for convspec's float32 graphs: BatchNormalization-15 and Identity-16 only widened their
# type constraints; Shape-15 only added `start` / `end` (rewritten first, `_lower_shape_ranges`).
_SAME_IN_OLDER_OPSETS = {"BatchNormalization", "Identity", "Shape"}
_HIDDEN_DOMAIN = "convspec.hidden"


def _hide_from_converter(proto: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Move the nodes of `_SAME_IN_OLDER_OPSETS` to a private domain, which the version converter leaves alone."""
    hidden = [node for node in proto.graph.node if node.op_type in _SAME_IN_OLDER_OPSETS and node.domain in ("", "ai.onnx")]
    for node in hidden:
        node.domain = _HIDDEN_DOMAIN
    if hidden:
        proto.opset_import.append(onnx.helper.make_opsetid(_HIDDEN_DOMAIN, 1))
    return hidden


def _unhide(proto: onnx.ModelProto, hidden: list[onnx.NodeProto]) -> None:
    """Put the nodes `_hide_from_converter` moved back in the default domain."""
    names = {node.name for node in hidden}
    for node in proto.graph.node:
        if node.domain == _HIDDEN_DOMAIN and node.name in names:
            node.domain = ""
    kept = [entry for entry in proto.opset_import if entry.domain != _HIDDEN_DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)


def to_opset(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """The opset-18 model from torch's exporter, written in `opset`, or ExportError saying why it cannot be.

    Up from 18 with onnxscript's version converter (what torch's exporter itself does).
    Down: circular padding (below 19), reductions, Mish and ranged Shape (below 15) are
    rewritten, attributes newer than the opset dropped where they hold their defaults, and
    onnx's version converter steps below 17, passing over the ops it has no adapter for
    whose older form means the same. The checker, the opset's schemas and the parity run
    that follow catch anything else.
    """
    produced = opset_of(proto)
    if produced != TORCH_OPSET:
        raise ExportError(f"torch's exporter produced opset {produced}, not {TORCH_OPSET}")
    if opset < 19:
        _lower_wrap_pads(proto)
    if opset > TORCH_OPSET:
        import onnx_ir as ir
        from onnxscript.version_converter import convert_version

        model = ir.from_proto(proto)
        convert_version(model, opset, fallback=True)
        proto = ir.to_proto(model)
    elif opset < TORCH_OPSET:
        _lower_reductions(proto, opset)
        _lower_mish(proto)
        if opset < 15:
            _lower_shape_ranges(proto)
        for entry in proto.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = 17  # reductions and Resize's attributes are what changed from 17 to 18 in these graphs
        _drop_attributes_newer_than(proto, 17)
        if opset < 17:
            hidden = _hide_from_converter(proto)
            try:
                proto = onnx.version_converter.convert_version(proto, opset)
            except Exception as err:
                detail = first_line(err, 200) if str(err) else type(err).__name__
                raise ExportError(f"cannot convert the model to opset {opset} ({detail}); use --opset 17 or higher") from None
            _unhide(proto, hidden)
    if opset_of(proto) != opset:
        raise ExportError(f"cannot write the model in opset {opset} (it stays opset {opset_of(proto)}); use --opset {opset_of(proto)}")
    _drop_attributes_newer_than(proto, opset)
    return proto

