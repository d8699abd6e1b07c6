"""ONNX export that proves itself: torch's exporter, then the ONNX checker, shape inference and onnxruntime parity.

The file is written only after verification passes (`verify.py`), atomically, with
the spec's text and hash in its metadata, so a `.onnx` from convspec is either absent
or right. Between the exporter and the checks, the graph is made to mean, in the
requested opset, what PyTorch computes: reductions, circular padding and attributes
newer than the opset are rewritten, ceil-mode pools and Resize nodes get the output
sizes PyTorch gives, and every node is named after its spec layer. torch's exporter
is run quietly: its logs and warnings reach the user only with `verbose=True`.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import logging
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from ._version import __version__
from .checkpoint import load_weights_file, spec_text
from .edge_shapes import layer_problem, record_edge_shapes
from .errors import ExportError, InputError, Problem, first_line
from .fileio import check_free_space, check_writable, publish, staging
from .geometry import interpolation_scale, onnx_ceil_pool, onnx_resize_output_size
from .kinds import ExportTarget, export_limit_problems
from .layer_parity import module_paths, record_layer_outputs
from .limits import exact_int, flag_argument, number_argument, path_argument, seed_argument, whole_argument
from .opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .report import Report
from .schema import Spec
from .source import looks_like_yaml_text
from .trace import check_spec, load_and_check, parse_input_shape
from .verify import (
    ATOL, EXPORT_BATCH, RTOL, VERIFY_BATCHES, OutputCheck, Step, check_file, compare_output,
    dims_of, example_shape, layer_probe, ort_session, refuse_non_finite_weights, run_parity, spatial_variants, standard_nodes, summarize,
)  # fmt: skip
from .verify import opset_of as _opset_of

TWO_GB = 2**31  # protobuf's limit for one serialized message
# Weights from this size on go to a data file beside the model (ONNX external data): the rest of
# the graph must fit in protobuf's 2 GB too, so the line is drawn 64 MiB short of it.
EXTERNAL_DATA_THRESHOLD = TWO_GB - 2**26
_INLINE_TENSOR_BYTES = 1024  # smaller tensors (shapes, scales, pads) stay in the model file, where edits read them
TORCH_OPSET = 18  # the opset torch's exporter translates to (it converts to others afterwards)
_compare = compare_output  # the parity comparison, looked up at each export (tests replace it)
_example_shape = example_shape  # `bench` picks its input the way export does


@dataclass
class ExportResult:
    """What `export_onnx` did and measured."""

    path: Path | None
    opset: int
    node_counts: dict[str, int]
    steps: list[Step] = field(default_factory=list)
    checks: list[OutputCheck] = field(default_factory=list)
    rtol: float = RTOL
    atol: float = ATOL
    dynamic_spatial: bool = False
    seed: int | None = None  # the seed of the spec's initial weights exported, when they are those

    @property
    def node_count(self) -> int:
        return sum(self.node_counts.values())


# ---------------------------------------------------------------- quiet exporter


_EXPORTER_LOGGERS = ("torch", "onnx", "onnxscript", "onnx_ir", "onnxruntime")


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[io.StringIO]:
    """Capture torch's exporter chatter (prints, warnings, log records) unless verbose."""
    captured = io.StringIO()
    if verbose:
        yield captured
        return
    # the exporter's own loggers only, not the whole process (the caller's logging stays as it was).
    # Loggers created during the export (modules imported lazily) propagate to a logger that exists
    # now; the handlers on those are swapped for a NullHandler meanwhile, and they are all disabled.
    tops = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    children = [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict) if name.startswith(tuple(f"{n}." for n in _EXPORTER_LOGGERS))
    ]
    saved = [(logger, logger.disabled, logger.propagate, list(logger.handlers)) for logger in (*tops, *children)]
    for logger in (*tops, *children):
        logger.disabled = True
        if logger in tops or logger.handlers:  # records from loggers made meanwhile pass through these
            logger.handlers = [logging.NullHandler()]
            logger.propagate = False
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield captured
    finally:
        for logger, disabled, propagate, handlers in saved:
            logger.disabled, logger.propagate, logger.handlers = disabled, propagate, handlers


# ---------------------------------------------------------------- helpers


def _example(report: Report, input_shape: tuple[int, ...] | None) -> tuple[tuple[int, ...], Report]:
    """The traced input's shape (batch EXPORT_BATCH) and a report at that size: `report` itself where its sizes are known.

    Only the batch differs then, and nothing compares the batch of the example's report.
    """
    spatial = report.input_shape[2:]
    if all(s is not None for s in spatial):
        return (EXPORT_BATCH, *report.input_shape[1:]), report
    example = example_shape(report.spec, input_shape if input_shape is None else (EXPORT_BATCH, *input_shape[1:]))
    example_report = check_spec(report.spec, example)
    example_report.raise_for_errors()
    return example, example_report


def destination_and_report(
    spec: Any, path: Any, force: Any, input_shape: Any, report: Report | None
) -> tuple[Path, tuple[int, ...] | None, Report]:
    """What every export checks before any work: the destination writable (never the spec file
    itself), `input_shape` parsed, and the spec's valid report (`report` when the caller has one).

    Raises InputError for a destination or argument that will not do, SpecError for an invalid spec.
    """
    spec_file = spec if isinstance(spec, Path) or (isinstance(spec, str) and not looks_like_yaml_text(spec)) else None
    destination = check_writable(path_argument("path", path), flag_argument("force", force), protect=spec_file)
    if input_shape is not None:
        input_shape = parse_input_shape(input_shape)
    if report is None:
        report = load_and_check(spec, input_shape, require_size=False)
    report.raise_for_errors()
    return destination, input_shape, report


def running_report(report: Report, input_shape: tuple[int, ...] | None) -> Report:
    """The report at the largest input export runs (the traced batch and the verified ones, at the
    example's spatial size): what its memory budget counts. A batch given with `--input` is not run.
    """
    example, example_report = _example(report, input_shape)
    batch = max(EXPORT_BATCH, *VERIFY_BATCHES)
    if example_report.input_shape[0] == batch:
        return example_report
    return check_spec(report.spec, (batch, *example[1:]))


def _refuse_export_limits(report: Report, target: ExportTarget) -> None:
    """Layers whose kind says they cannot be exported this way (e.g. uneven adaptive pooling at a dynamic size)."""
    problems = export_limit_problems(report, target)
    if problems:
        raise ExportError(problems)


# ---------------------------------------------------------------- graph editing


class _Constants(Mapping):
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


def _constants(proto: onnx.ModelProto) -> Mapping[str, np.ndarray]:
    """The values of initializers and Constant nodes, by tensor name (read lazily)."""
    return _Constants(proto)


def _known_shapes(proto: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Tensor shapes as torch's exporter recorded them (PyTorch's shapes), by tensor name."""
    return {info.name: dims_of(info) for info in (*proto.graph.input, *proto.graph.value_info, *proto.graph.output)}


class _Editor:
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

    def node(self, owner: onnx.NodeProto, op: str, inputs: list[str], outputs: list[str], **attributes: Any) -> onnx.NodeProto:
        layer = owner.name.rsplit("/", 1)[0] + "/" if "/" in owner.name else ""
        return onnx.helper.make_node(op, inputs, outputs, name=self._fresh(self.nodes, f"{layer}{op}"), **attributes)


def _replace(graph: onnx.GraphProto, node: onnx.NodeProto, new: list[onnx.NodeProto]) -> None:
    """Put `new` where `node` is (the graph stays in topological order)."""
    index = list(graph.node).index(node)
    del graph.node[index]
    for offset, item in enumerate(new):
        graph.node.insert(index + offset, item)


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _set_attribute(node: onnx.NodeProto, name: str, value: Any) -> None:
    for attribute in list(node.attribute):
        if attribute.name == name:
            node.attribute.remove(attribute)
    node.attribute.append(onnx.helper.make_attribute(name, value))


# ---------------------------------------------------------------- the opset


_AXES_BECAME_AN_INPUT_IN_18 = {
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare",
}  # fmt: skip


def _lower_reductions(proto: onnx.ModelProto, opset: int) -> None:
    """Rewrite opset-18 style reductions (axes as an input) to the attribute form of opsets below 18."""
    if opset >= 18:
        return
    constants = _constants(proto)
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
    constants = _constants(proto)
    known = _known_shapes(proto)
    edit = _Editor(proto)
    for node in list(proto.graph.node):
        if node.op_type != "Pad" or _attributes(node).get("mode") != b"wrap":
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
        _replace(proto.graph, node, new)


def _lower_mish(proto: onnx.ModelProto) -> None:
    """Rewrite Mish (opset 18 on, which torch's optimizer fuses) as x * tanh(softplus(x)), its definition."""
    edit = _Editor(proto)
    for node in list(proto.graph.node):
        if node.op_type != "Mish":
            continue
        soft, tanh = edit.tensor(f"{node.output[0]}_softplus"), edit.tensor(f"{node.output[0]}_tanh")
        _replace(proto.graph, node, [
            edit.node(node, "Softplus", [node.input[0]], [soft]),
            edit.node(node, "Tanh", [soft], [tanh]),
            edit.node(node, "Mul", [node.input[0], tanh], [node.output[0]]),
        ])  # fmt: skip


def _lower_shape_ranges(proto: onnx.ModelProto) -> None:
    """Rewrite Shape with `start` / `end` (Shape-15) as Shape + Slice, which opsets before 15 have."""
    edit = _Editor(proto)
    for node in list(proto.graph.node):
        attributes = _attributes(node)
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
        _replace(proto.graph, node, [node, sliced])


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
    names = {node.name for node in hidden}
    for node in proto.graph.node:
        if node.domain == _HIDDEN_DOMAIN and node.name in names:
            node.domain = ""
    kept = [entry for entry in proto.opset_import if entry.domain != _HIDDEN_DOMAIN]
    del proto.opset_import[:]
    proto.opset_import.extend(kept)


def _to_opset(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """The opset-18 model from torch's exporter, written in `opset`, or ExportError saying why it cannot be.

    Up from 18 with onnxscript's version converter (what torch's exporter itself does).
    Down: circular padding (below 19), reductions, Mish and ranged Shape (below 15) are
    rewritten, attributes newer than the opset dropped where they hold their defaults, and
    onnx's version converter steps below 17, passing over the ops it has no adapter for
    whose older form means the same. The checker, the opset's schemas and the parity run
    that follow catch anything else.
    """
    produced = _opset_of(proto)
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
    if _opset_of(proto) != opset:
        raise ExportError(f"cannot write the model in opset {opset} (it stays opset {_opset_of(proto)}); use --opset {_opset_of(proto)}")
    _drop_attributes_newer_than(proto, opset)
    return proto


# ---------------------------------------------------------------- PyTorch's sizes


def _pools_as_pytorch(proto: onnx.ModelProto, opset: int, known: dict[str, list[int | None]]) -> None:
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
    edit = _Editor(proto)
    for node in list(proto.graph.node):
        attributes = _attributes(node)
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
        _set_attribute(node, "ceil_mode", int(ceil_mode))
        if not any(grow):
            continue
        if node.op_type == "MaxPool" or not attributes.get("count_include_pad"):
            _set_attribute(node, "pads", pads[:n] + [p + g for p, g in zip(pads[n:], grow)])
            continue
        padded = edit.tensor(f"{node.input[0]}_padded")
        amounts = edit.int64("pool_pads", [0, 0, *pads[:n], 0, 0, *pads[n:]])
        pad = edit.node(node, "Pad", [node.input[0], amounts], [padded], mode="constant")
        node.input[0] = padded
        _set_attribute(node, "pads", [0] * n + list(grow))
        _set_attribute(node, "count_include_pad", 0)
        _replace(proto.graph, node, [pad, node])


def _resizes_as_pytorch(proto: onnx.ModelProto, opset: int, known: dict[str, list[int | None]]) -> None:
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
    constants = _constants(proto)
    edit = _Editor(proto)
    for node in list(proto.graph.node):
        if node.op_type != "Resize" or len(node.input) < 3 or not node.input[2] or (len(node.input) > 3 and node.input[3]):
            continue
        scales = constants.get(node.input[2])
        before, after = known.get(node.input[0]), known.get(node.output[0])
        if scales is None or before is None or after is None or None in before[2:] or None in after[2:]:
            continue
        onnx_mode = _attributes(node).get("mode", b"nearest").decode()
        mode = "bicubic" if onnx_mode == "cubic" else onnx_mode  # "linear" stands for PyTorch's linear family
        dims = len(before) - 2
        spatial = [
            (size, interpolation_scale(mode, dims, size, out, scale), out)
            for size, scale, out in zip(before[2:], [float(s) for s in scales.reshape(-1)[2:]], after[2:])
        ]
        if any(scale != float(given) for (_, scale, _), given in zip(spatial, scales.reshape(-1)[2:])):
            sampled = edit.tensor("resize_scales")
            proto.graph.initializer.append(
                onnx.numpy_helper.from_array(np.asarray([1.0, 1.0, *(scale for _, scale, _ in spatial)], dtype=np.float32), sampled)
            )
            node.input[2] = sampled
        agree = [onnx_resize_output_size(size, scale) == out for size, scale, out in spatial]
        if all(agree):
            continue
        new, source = [], node.input[0]
        if any(ok and scale != 1.0 for ok, (_, scale, _) in zip(agree, spatial)):
            scaled = onnx.NodeProto()
            scaled.CopyFrom(node)
            kept = [1.0, 1.0, *(scale if ok else 1.0 for ok, (_, scale, _) in zip(agree, spatial))]
            name = edit.tensor("resize_scales")
            proto.graph.initializer.append(onnx.numpy_helper.from_array(np.asarray(kept, dtype=np.float32), name))
            source = edit.tensor(f"{node.output[0]}_scaled")
            scaled.input[:] = [node.input[0], node.input[1], name]
            scaled.output[:] = [source]
            scaled.name = edit.node(node, "Resize", [], []).name
            new.append(scaled)
        if opset >= 18:
            fixed = [2 + axis for axis, ok in enumerate(agree) if not ok]
            sizes = edit.int64("resize_sizes", [after[axis] for axis in fixed])
            _set_attribute(node, "axes", fixed)
        else:
            shape, batch_channels, sizes = (edit.tensor(f"{node.output[0]}_{part}") for part in ("shape", "nc", "sizes"))
            slice_ = [edit.int64("resize_start", [0]), edit.int64("resize_end", [2]), edit.int64("resize_axis", [0])]
            new += [
                edit.node(node, "Shape", [source], [shape]),
                edit.node(node, "Slice", [shape, *slice_], [batch_channels]),
                edit.node(node, "Concat", [batch_channels, edit.int64("resize_sizes", list(after[2:]))], [sizes], axis=0),
            ]
        node.input[:] = [source, node.input[1], "", sizes]
        _replace(proto.graph, node, [*new, node])


def _record_output_shapes(proto: onnx.ModelProto, report: Report, dynamic_spatial: bool) -> None:
    """Write the checker's output shapes on the graph's outputs: batch symbolic, the rest as convspec computed them."""
    for output in proto.graph.output:
        shape = report.outputs.get(output.name)
        dims = output.type.tensor_type.shape.dim
        if shape is None or len(dims) != len(shape):
            continue
        for axis, (dim, size) in enumerate(zip(dims, shape)):
            if axis == 0:
                dim.dim_param = "batch"
            elif (dynamic_spatial and axis >= 2) or size is None:
                continue
            else:
                dim.dim_value = size


def finish_model(
    proto: onnx.ModelProto, opset: int, report: Report, example_report: Report, dynamic_spatial: bool, known: dict | None = None
) -> onnx.ModelProto:
    """The model torch's exporter wrote (opset 18), made ready to write: names, opset, PyTorch's sizes, the checker's shapes.

    `report` is the spec's checked report (its layer names name the nodes); `example_report`
    the report at the traced input shape (its output shapes are recorded). Raises ExportError
    when the model cannot be written in `opset`.
    """
    known = _known_shapes(proto) if known is None else known
    _name_nodes(proto, _layer_paths(report))  # first: the version converters drop the scopes it reads
    named = [(node.name, node.op_type) for node in proto.graph.node]
    try:
        proto = _to_opset(proto, opset)
        _pools_as_pytorch(proto, opset, known)
        _resizes_as_pytorch(proto, opset, known)
    except ExportError as err:
        raise ExportError([_locate(problem, named, report) for problem in err.problems]) from None
    _name_unnamed(proto)
    _record_output_shapes(proto, example_report, dynamic_spatial)
    record_edge_shapes(proto, module_paths(example_report), report.spec, dynamic_spatial)  # for viewers (Netron)
    return proto


def _locate(problem: Problem, nodes: list[tuple[str, str]], report: Report) -> Problem:
    """Place a problem about a node at the spec layer the node came from: the node it names, else the first of its op."""
    if problem.location.line is not None:
        return problem
    words = set(re.findall(r"[\w.]+(?:/\w+)?", problem.message))
    node = next((name for name, _ in nodes if name in words), None)
    node = node or next((name for name, op in nodes if op in words and "/" in name), None)
    layers = {path: layer for path, layer in module_paths(report)}
    layer = layers.get(node.rsplit("/", 1)[0]) if node else None
    if layer is None:
        return problem
    return layer_problem(report.spec, layer, problem.message)


def _layer_paths(report: Report) -> set[str]:
    """Module paths of every spec layer: "stem", "stage.0.conv_0", ..."""
    return {path for path, _ in module_paths(report)}


def _name_nodes(proto: onnx.ModelProto, layer_paths: set[str]) -> None:
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
        modules = [scope for scope in scopes[:-1] if scope in layer_paths]  # the last scope is the traced op itself
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
    kept = [p for p in node.metadata_props if p.key not in ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")]
    del node.metadata_props[:]
    node.metadata_props.extend(kept)


def _node_counts(proto: onnx.ModelProto) -> dict[str, int]:
    return dict(Counter(node.op_type for node in proto.graph.node).most_common())


def _name_unnamed(proto: onnx.ModelProto) -> None:
    """Name nodes a version converter added without a name by their op type ("Cast", "Cast_1")."""
    taken = {node.name for node in proto.graph.node}
    for node in proto.graph.node:
        if not node.name:
            base, n = node.op_type, 0
            while (name := base if n == 0 else f"{base}_{n}") in taken:
                n += 1
            node.name = name
            taken.add(name)


def _add_metadata(proto: onnx.ModelProto, spec: Spec, opset: int, seed: int | None) -> None:
    text = spec_text(spec)
    entries = {
        "convspec.version": __version__,
        "convspec.spec_name": spec.name or "",
        "convspec.spec": text,
        "convspec.spec_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "convspec.opset": str(opset),
        "torch.version": torch.__version__,
    }
    if seed is not None:  # the weights are the spec's initial ones from this seed: `convspec verify` rebuilds them
        entries["convspec.seed"] = str(seed)
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name, proto.producer_version = "convspec", __version__
    proto.doc_string = f"{spec.name or 'network'}: exported by convspec {__version__} from its YAML spec"


# ---------------------------------------------------------------- the export


def _check_arguments(model, verify, force, dynamic_size, rtol, atol, verbose, threshold, on_step, running, report) -> None:
    """export_onnx's arguments, each of its type and range (InputError), before any work."""
    if model is not None and not isinstance(model, nn.Module):
        raise InputError(f"model must be the torch.nn.Module built from the spec, or None to build it, not {type(model).__name__}")
    for name, value in (("verify", verify), ("force", force), ("verbose", verbose)):
        flag_argument(name, value)
    if dynamic_size is not None:
        flag_argument("dynamic_size", dynamic_size)
    number_argument("rtol", rtol, 0)
    number_argument("atol", atol, 0)
    whole_argument("external_data_threshold", threshold, 0, 2**63 - 1)
    for name, value in (("on_step", on_step), ("running", running)):
        if value is not None and not callable(value):
            raise InputError(f"{name} must be a function or None, not {type(value).__name__}")
    if report is not None and not isinstance(report, Report):
        raise InputError(f"report must be the Report of convspec.check, not {type(report).__name__}")


def _stop_request(err: BaseException) -> BaseException | None:
    """A SystemExit or KeyboardInterrupt that torch's exporter wrapped in its own error, if one is in `err`'s chain."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, (SystemExit, KeyboardInterrupt)):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


def trace_model(
    model: nn.Module, example: tuple[int, ...], output_names: list[str], dynamic_spatial: bool, verbose: bool = False,
    external_data: Path | None = None,
) -> onnx.ModelProto:
    """torch's dynamo exporter on `model` (eval mode) at a random input of shape `example` (NCHW): an opset-18 model.

    The batch is a dynamic axis named `batch`; the spatial sizes `size0`, `size1`, ... when
    `dynamic_spatial`. With `external_data` (a path), the weights are written there (ONNX
    external data, located by the file's name) and the returned model refers to them, so a
    model past protobuf's 2 GB is never one message; tensors under 1 KiB stay inline. Raises
    ExportError with the exporter's first line when it fails.
    """
    axes: dict[int, Any] = {0: torch.export.Dim("batch", min=1)}
    if dynamic_spatial:
        for axis in range(2, len(example)):
            axes[axis] = torch.export.Dim(f"size{axis - 2}", min=1)
    x = torch.randn(example, generator=torch.Generator().manual_seed(0))
    with _quiet(verbose):
        try:
            program = torch.onnx.export(
                model, (x,), None, input_names=["input"], output_names=output_names, opset_version=TORCH_OPSET,
                dynamic_shapes=(axes,), optimize=True, dynamo=True,
            )
        except Exception as err:
            stop = _stop_request(err)
            if stop is not None:  # SIGTERM or Ctrl-C while torch exported: its wrapper is not the exporter's fault
                raise stop from None
            plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the exporter colours its messages
            lines = [line for line in plain.splitlines() if line.strip()]
            raise ExportError(f"torch's ONNX exporter failed: {type(err).__name__}: {lines[0] if lines else ''}"
                              f"{' (rerun with --verbose for its log, --debug for the traceback)' if not verbose else ''}") from err
    if external_data is None:
        return program.model_proto
    import onnx_ir

    skeleton = external_data.parent / "traced.unverified"
    onnx_ir.save(program.model, skeleton, external_data=external_data.name, size_threshold_bytes=_INLINE_TENSOR_BYTES)
    proto = onnx.load(str(skeleton), load_external_data=False)
    skeleton.unlink()
    if external_data.exists() and external_data.stat().st_size == 0:
        external_data.unlink()  # every tensor stayed inline; onnx_ir leaves an empty file all the same
    return proto


def export_onnx(
    model: nn.Module | None,
    spec: Any,
    path: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    force: bool = False,
    dynamic_size: bool | None = None,
    input_shape: tuple[int, ...] | str | None = None,
    seed: int | None = None,
    rtol: float = RTOL,
    atol: float = ATOL,
    verbose: bool = False,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
    on_step: Callable[[Step], None] | None = None,
    running: Callable[[str], contextlib.AbstractContextManager] | None = None,
    report: Report | None = None,
) -> ExportResult:
    """Export `model` (built from `spec` when None) to ONNX at `path`, verified.

    Batch is a dynamic axis; spatial sizes are dynamic when the spec gives no
    `input.size` or `dynamic_size` is true. With `verify`, the ONNX checker (full), every
    node valid in `opset`, shape inference against the checker's output shapes, and
    onnxruntime against PyTorch at batches 1 and 3 (and other spatial sizes when dynamic),
    each output within max|diff| <= atol + rtol * max|PyTorch| (`verify.py`), must pass
    before anything is written. An argument of the wrong type or range (`input_shape`
    (1, 3, 8.5, 8), `force="no"`, ...) raises InputError before any work.

    Without `model`, the spec's initial weights from `seed` (default 0) are exported; with
    one, `seed` says that its weights are those (both are recorded as `convspec.seed`, so
    `verify_onnx` can rebuild them). `report` is the spec's checked report when the caller
    has one (the CLI, `bench`): the spec is then not loaded or traced again.

    Raises InputError (`opset` out of range, the output exists without `force`), SpecError
    (an invalid spec) and ExportError (a layer the target cannot express, located; weights
    that are not finite; the exporter or a check failed). The destination is then untouched.
    """
    newest = min(MAX_OPSET, onnx.defs.onnx_opset_version())
    if exact_int(opset) is None or not MIN_OPSET <= opset <= newest:
        raise InputError(f"--opset {opset!r} is out of range; use {MIN_OPSET} to {newest}")
    _check_arguments(model, verify, force, dynamic_size, rtol, atol, verbose, external_data_threshold, on_step, running, report)
    seed = seed_argument(seed)
    destination, input_shape, report = destination_and_report(spec, path, force, input_shape, report)
    parsed = report.spec
    dynamic_spatial = parsed.input.size is None if dynamic_size is None else dynamic_size
    _refuse_export_limits(report, ExportTarget(opset, dynamic_spatial))
    if model is None:
        from .builder import build_from_report

        seed = 0 if seed is None else seed
        model = build_from_report(report, seed=seed)
    refuse_non_finite_weights(model)
    example, example_report = _example(report, input_shape)
    weight_bytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    external = weight_bytes >= external_data_threshold
    data_name = destination.name + ".data"
    if external and os.path.lexists(destination.parent / data_name) and not force:
        raise InputError(f"{destination.parent / data_name}: already exists; pass force=True (--force) to replace it")
    check_free_space(destination.parent, weight_bytes + 2**20, "the ONNX file")
    steps: list[Step] = []
    running = running or (lambda name: contextlib.nullcontext())

    def step(name: str, started: float, detail: str) -> None:
        steps.append(Step(name, time.perf_counter() - started, detail))
        if on_step:
            on_step(steps[-1])

    was_training = model.training
    model.eval()
    try:
        with staging(destination) as folder:
            result = _export_staged(
                model, report, example, example_report, folder, destination, data_name if external else None,
                opset, verify, force, dynamic_spatial, seed, rtol, atol, verbose, step, running,
            )
    except OSError as err:  # a full disk, a file system gone read-only: the destination is untouched
        raise InputError(f"{destination}: cannot write: {err.strerror or err}") from None
    finally:
        model.train(was_training)
    result.steps = steps
    return result


def _export_staged(
    model, report, example, example_report, folder: Path, destination: Path, data_name: str | None,
    opset, verify, force, dynamic_spatial, seed, rtol, atol, verbose, step, running,
) -> ExportResult:
    """export_onnx's work inside its staging folder: export, check, verify, then publish (data file first)."""
    parsed = report.spec
    output_names = list(example_report.outputs)
    # --- export
    started = time.perf_counter()
    with running("export"):
        proto = trace_model(model, example, output_names, dynamic_spatial, verbose,
                            external_data=folder / data_name if data_name else None)
    with _quiet(verbose):  # onnxscript's version converter reports its fallback on stdout
        proto = finish_model(proto, opset, report, example_report, dynamic_spatial)
    _add_metadata(proto, parsed, opset, seed)
    record_layer_outputs(proto, module_paths(example_report))  # so a verification finds them whatever tools rename
    counts = _node_counts(proto)
    summary = ", ".join(f"{op} {n}" for op, n in counts.items())
    step("export", started, f"opset {opset}, {sum(counts.values())} nodes ({summary})")
    result = ExportResult(None, opset, counts, [], rtol=rtol, atol=atol, dynamic_spatial=dynamic_spatial, seed=seed)
    staged = folder / "model.unverified"  # named like no result: a killed run leaves nothing to mistake for one
    with running("write"):
        staged.write_bytes(proto.SerializeToString())

    if verify:
        # --- check: the ONNX checker, the opset's schemas and shape inference agree with convspec's arithmetic
        started = time.perf_counter()
        with running("check"):
            check_file(staged, proto, dict(example_report.outputs), dynamic_spatial)
        step("check", started, f"onnx.checker (full), opset {opset} schemas, shape inference matches the checker's output shapes")
        # --- verify: onnxruntime against PyTorch eager
        started = time.perf_counter()
        with running("verify"):
            try:
                session = ort_session(staged)
            except Exception as err:
                raise ExportError(f"onnxruntime cannot load the exported model: {first_line(err, 300)}") from None
            shapes = [(b, *example[1:]) for b in VERIFY_BATCHES]
            if dynamic_spatial:
                shapes += spatial_variants(parsed, example)
            pairs = [(name, name) for name in output_names]
            probe = layer_probe(proto, example_report, "input")
            result.checks = run_parity(session, model, shapes, "input", pairs, rtol, atol, compare=_compare, probe=probe)
            del session  # let go of the files before they move
        step("verify", started, summarize(result.checks, rtol, atol))
    # --- write: publish the data file first, so the model never points at a missing file
    started = time.perf_counter()
    staged_data = folder / data_name if data_name else None
    if staged_data is not None and not staged_data.exists():
        staged_data = None  # every tensor was small enough to stay in the model file
    if staged_data is not None:
        publish(staged_data, destination.parent / data_name, force)
    try:
        publish(staged, destination, force)
    except InputError:
        if staged_data is not None and not force:
            (destination.parent / data_name).unlink()  # ours, linked a moment ago: a model file another run won
        raise
    size = destination.stat().st_size + ((destination.parent / data_name).stat().st_size if staged_data else 0)
    step("write", started, f"{destination} ({size / 1e6:.2f} MB{', external data in ' + data_name if staged_data else ''})")
    result.path = destination
    return result


__all__ = ["export_onnx", "ExportResult", "OutputCheck", "Step", "finish_model", "trace_model", "load_weights_file", "DEFAULT_OPSET"]
