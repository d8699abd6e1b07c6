"""Ceil-mode pools and Resize nodes rewritten so that the ONNX graph samples and sizes as PyTorch does."""

from __future__ import annotations

import onnx

from .geometry import interpolation_scale, onnx_ceil_pool, onnx_resize_output_size
from .onnx_edit import Constants, Editor, node_attributes, replace_node, set_attribute


def pools_as_pytorch(proto: onnx.ModelProto, opset: int, known: dict[str, list[int | None]]) -> None:
    """Write ceil-mode pools so that every opset means PyTorch's windows (`geometry.onnx_ceil_pool`).

    PyTorch drops a ceil-mode window that would start inside the right padding; MaxPool and
    AveragePool before opset 22 keep it (onnx/onnx#5711). At a fixed size, per pool: where
    ceil mode adds no window PyTorch keeps, floor mode is the same pool; where it drops none,
    ceil mode means the same in every opset; where it adds one in some dims and PyTorch drops
    one in others, the pool is written in floor mode with the end padding grown just enough
    for the added windows (a max ignores padding; an average gets its declared padding from a
    Pad node and counts only that, as PyTorch's count_include_pad does). Sizes come from the
    exporter's value_info (PyTorch's shapes). A dynamic size keeps ceil_mode (refused below
    opset 22 where a window can be dropped, `kinds.py`).
    """
    if opset >= 22:
        return
    edit = Editor(proto)
    for node in list(proto.graph.node):
        attributes = node_attributes(node)
        if node.op_type not in ("MaxPool", "AveragePool") or not attributes.get("ceil_mode"):
            continue
        spatial = known.get(node.input[0], [None, None])[2:]
        kernel = list(attributes["kernel_shape"])
        n = len(kernel)
        strides = list(attributes.get("strides", [1] * n))
        pads = list(attributes.get("pads", [0] * (2 * n)))
        dilations = list(attributes.get("dilations", [1] * n))
        if len(spatial) != n or None in spatial or pads[:n] != pads[n:]:
            continue
        effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
        way = onnx_ceil_pool(spatial, effective, strides, pads[:n])
        if way is None:
            continue  # refused before the export (the pool kind's export limit)
        ceil_mode, grow = way
        set_attribute(node, "ceil_mode", int(ceil_mode))
        if not any(grow):
            continue
        if node.op_type == "MaxPool" or not attributes.get("count_include_pad"):
            set_attribute(node, "pads", pads[:n] + [p + g for p, g in zip(pads[n:], grow)])
            continue
        padded = edit.tensor(f"{node.input[0]}_padded")
        amounts = edit.int64("pool_pads", [0, 0, *pads[:n], 0, 0, *pads[n:]])
        pad = edit.node(node, "Pad", [node.input[0], amounts], [padded], mode="constant")
        node.input[0] = padded
        set_attribute(node, "pads", [0] * n + list(grow))
        set_attribute(node, "count_include_pad", 0)
        replace_node(proto.graph, node, [pad, node])


def resizes_as_pytorch(proto: onnx.ModelProto, opset: int, known: dict[str, list[int | None]]) -> None:
    """Write each Resize at a fixed size so that it samples where PyTorch does and makes PyTorch's sizes.

    Its scales become the ones PyTorch samples with (`interpolation_scale`: 1 for an axis
    whose size a 2-D nearest or a linear upsampling keeps, 2 for one a 2-D nearest doubles).
    PyTorch makes floor(in * scale) with the scale in double; ONNX floors in * scale with
    the scale in float32 (1.3 is 1.29999995: 12 of 10, not 13). The axes where the two
    differ are resized by a second Resize to PyTorch's sizes; ONNX then uses the scale
    out / in there, equal to the spec's within float32 (in * scale is within float32's
    rounding of the integer out). The other axes keep their scale, so their sample
    positions stay PyTorch's (sizes would make a scale of 10 / 8 of 1.3 on 8); an axis a
    Resize leaves at scale 1 is copied exactly, and interpolation is separable, so the two
    nodes compute what one would. From opset 18 on the sizes are given per axis (`axes`);
    before, the batch and channels are read from the input's shape.
    """
    constants = Constants(proto)
    edit = Editor(proto)
    for node in list(proto.graph.node):
        spatial = _resize_axes(node, constants, known)
        if spatial is None:
            continue
        if any(scale != given for (_, scale, _), given in zip(spatial, _given_scales(node, constants))):
            node.input[2] = edit.float32("resize_scales", [1.0, 1.0, *(scale for _, scale, _ in spatial)])
        agree = [onnx_resize_output_size(size, scale) == out for size, scale, out in spatial]
        if all(agree):
            continue
        new, source = [], node.input[0]
        if any(ok and scale != 1.0 for ok, (_, scale, _) in zip(agree, spatial)):
            scaled = _resize_agreeing_axes(edit, node, spatial, agree)
            new.append(scaled)
            source = scaled.output[0]
        sizes, size_nodes = _pytorch_sizes(edit, node, source, known[node.output[0]], agree, opset)
        new += size_nodes
        node.input[:] = [source, node.input[1], "", sizes]
        replace_node(proto.graph, node, [*new, node])


def _given_scales(node: onnx.NodeProto, constants: Constants) -> list[float]:
    """A Resize's spatial scales as the graph gives them."""
    return [float(s) for s in constants[node.input[2]].reshape(-1)[2:]]


def _resize_axes(node: onnx.NodeProto, constants: Constants, known: dict[str, list[int | None]]) -> list[tuple[int, float, int]] | None:
    """(input size, PyTorch's sampling scale, PyTorch's output size) per spatial axis of a Resize by constant
    scales at a fixed size; None for any other node."""
    if node.op_type != "Resize" or len(node.input) < 3 or not node.input[2] or (len(node.input) > 3 and node.input[3]):
        return None
    before, after = known.get(node.input[0]), known.get(node.output[0])
    if node.input[2] not in constants or before is None or after is None or None in before[2:] or None in after[2:]:
        return None
    onnx_mode = node_attributes(node).get("mode", b"nearest").decode()
    mode = "bicubic" if onnx_mode == "cubic" else onnx_mode  # "linear" stands for PyTorch's linear family
    dims = len(before) - 2
    return [
        (size, interpolation_scale(mode, dims, size, out, scale), out)
        for size, scale, out in zip(before[2:], _given_scales(node, constants), after[2:])
    ]


def _resize_agreeing_axes(edit: Editor, node: onnx.NodeProto, spatial: list[tuple[int, float, int]], agree: list[bool]) -> onnx.NodeProto:
    """A first Resize, copied from `node`, that scales only the axes where ONNX's size is PyTorch's (the others at 1)."""
    scaled = onnx.NodeProto()
    scaled.CopyFrom(node)
    kept = edit.float32("resize_scales", [1.0, 1.0, *(scale if ok else 1.0 for ok, (_, scale, _) in zip(agree, spatial))])
    output = edit.tensor(f"{node.output[0]}_scaled")
    scaled.input[:] = [node.input[0], node.input[1], kept]
    scaled.output[:] = [output]
    scaled.name = edit.node(node, "Resize", [], []).name
    return scaled


def _pytorch_sizes(
    edit: Editor, node: onnx.NodeProto, source: str, after: list[int], agree: list[bool], opset: int
) -> tuple[str, list[onnx.NodeProto]]:
    """The `sizes` input that resizes the axes where ONNX's size is not PyTorch's, and the nodes computing it.

    From opset 18 on, a constant for those axes alone (`axes` set on `node`); before, the
    batch and channels of `source`'s shape joined to PyTorch's spatial sizes.
    """
    if opset >= 18:
        fixed = [2 + axis for axis, ok in enumerate(agree) if not ok]
        sizes = edit.int64("resize_sizes", [after[axis] for axis in fixed])
        set_attribute(node, "axes", fixed)
        return sizes, []
    shape, batch_channels, sizes = (edit.tensor(f"{node.output[0]}_{part}") for part in ("shape", "nc", "sizes"))
    slice_ = [edit.int64("resize_start", [0]), edit.int64("resize_end", [2]), edit.int64("resize_axis", [0])]
    return sizes, [
        edit.node(node, "Shape", [source], [shape]),
        edit.node(node, "Slice", [shape, *slice_], [batch_channels]),
        edit.node(node, "Concat", [batch_channels, edit.int64("resize_sizes", list(after[2:]))], [sizes], axis=0),
    ]
