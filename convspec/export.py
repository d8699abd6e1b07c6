"""ONNX export that proves itself: torch's exporter, then the ONNX checker, shape inference and onnxruntime parity.

The file is written only after verification passes, atomically, with the spec's
text and hash in its metadata, so a `.onnx` from convspec is either absent or
right. torch's exporter is run quietly: its logs and warnings reach the user
only with `verbose=True`.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from ._version import __version__
from .checkpoint import load_weights_file, spec_text
from .errors import ExportError, InputError, Problem, first_line
from .fileio import check_writable
from .geometry import onnx_ceil_pool
from .kinds import ExportTarget, registry
from .limits import exact_int, flag_argument, number_argument, path_argument, whole_argument
from .opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .schema import Spec
from .shapes import Report
from .trace import check_spec, load_and_check, parse_input_shape
from .source import layer_label, looks_like_yaml_text

TWO_GB = 2**31  # protobuf's limit for one serialized message
RTOL, ATOL = 1e-3, 1e-4  # float32 with BatchNorm folded into convs: rounding differs a little
EXPORT_BATCH = 2  # verification runs at other batch sizes, so a baked-in batch is caught
VERIFY_BATCHES = (1, 3)
SPATIAL_CANDIDATES = (64, 96, 128, 224, 48, 32, 256, 16)


@dataclass
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class OutputCheck:
    name: str
    input_shape: tuple[int, ...]
    worst_abs: float
    worst_rel: float
    ok: bool


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


def _example_shape(spec: Spec, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """An input shape the spec accepts: given, from input.size, or the first candidate size the checker accepts."""
    if input_shape is not None:
        return input_shape
    if spec.input.size is not None:
        return (EXPORT_BATCH, spec.input.channels, *spec.input.size)
    for size in SPATIAL_CANDIDATES:
        shape = (EXPORT_BATCH, spec.input.channels, *(size,) * spec.dims)
        if check_spec(spec, shape).valid:
            return shape
    raise ExportError(
        [Problem("no example input size works for this spec; give input.size or --input", spec.source.locate(("input",)))]
    )


def _example(report: Report, input_shape: tuple[int, ...] | None) -> tuple[tuple[int, ...], Report]:
    """The traced input's shape (batch EXPORT_BATCH) and a report at that size: `report` itself where its sizes are known.

    Only the batch differs then, and nothing compares the batch of the example's report.
    """
    spatial = report.input_shape[2:]
    if all(s is not None for s in spatial):
        return (EXPORT_BATCH, *report.input_shape[1:]), report
    example = _example_shape(report.spec, input_shape if input_shape is None else (EXPORT_BATCH, *input_shape[1:]))
    example_report = check_spec(report.spec, example)
    example_report.raise_for_errors()
    return example, example_report


def _spatial_variants(spec: Spec, base: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Other valid spatial sizes to verify a dynamic-size export at (odd sizes catch rounding mistakes)."""
    variants = []
    for delta in (1, 7, -5, 32):
        shape = (1, base[1], *(max(1, s + delta) for s in base[2:]))
        if shape not in variants and check_spec(spec, shape).valid:
            variants.append(shape)
        if len(variants) == 2:
            break
    return variants


def _refuse_export_limits(report: Report, target: ExportTarget) -> None:
    """Layers whose kind says they cannot be exported this way (e.g. uneven adaptive pooling at a dynamic size)."""
    problems = []
    source = report.spec.source
    for layer in report.walk():
        kind = registry.get(layer.type)
        limit = kind.export_limit(layer, target) if kind is not None and kind.export_limit and layer.plan else None
        if limit is not None:
            key, reason = limit
            label = layer_label(source.data, layer.path)[1] if source.data is not None else layer.name
            problems.append(Problem(reason, source.locate(layer.path + (key,)), label))
    if problems:
        raise ExportError(problems)


_AXES_BECAME_AN_INPUT_IN_18 = {
    "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
    "ReduceLogSumExp", "ReduceSumSquare",
}  # fmt: skip


def _lower_reductions(proto: onnx.ModelProto, opset: int) -> None:
    """Rewrite opset-18 style reductions (axes as an input) to the attribute form of opsets below 18.

    torch's exporter labels the model with the requested opset but still emits these in the
    opset-18 form, which the ONNX checker and runtimes reject.
    """
    if opset >= 18:
        return
    constants = {init.name: onnx.numpy_helper.to_array(init) for init in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = onnx.numpy_helper.to_array(node.attribute[0].t)
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


def _honour_opset(proto: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """Make the model really opset `opset`, or fail saying why.

    torch's exporter falls back to opset 18 when a graph holds an op it cannot write in a
    lower opset (reductions, mostly), and even at a lower label it writes reductions in the
    opset-18 form. Reductions are rewritten here; anything else that differs is caught by
    the checker and the parity run that follow.
    """
    produced = _opset_of(proto)
    if produced == opset:
        _lower_reductions(proto, opset)
        return proto
    if produced != 18 or opset > 18:
        raise ExportError(f"opset {opset} was requested but torch's exporter produced opset {produced}; use --opset {produced}")
    _lower_reductions(proto, opset)
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = 17  # reductions are the ops whose form changed from 17 to 18 in these graphs
    if opset < 17:
        try:
            proto = onnx.version_converter.convert_version(proto, opset)
        except Exception as err:
            detail = first_line(err, 200) if str(err) else type(err).__name__
            raise ExportError(f"cannot convert the model to opset {opset} ({detail}); use --opset 17 or higher") from None
    return proto


def _pools_as_pytorch_computes(proto: onnx.ModelProto, opset: int) -> None:
    """Rewrite ceil_mode pools so that opsets before 22 mean PyTorch's windows (`geometry.onnx_ceil_pool`).

    Floor mode where ceil mode adds no window PyTorch keeps; floor mode with the needed windows
    padded in at the end of a max pool where one dim drops the window and another needs it. Sizes
    come from the exporter's value_info (PyTorch's shapes); pools the rewrite cannot express were
    refused before the export (the pool kind's export limit).
    """
    if opset >= 22:
        return
    known = {}
    for info in (*proto.graph.input, *proto.graph.value_info, *proto.graph.output):
        dims = info.type.tensor_type.shape.dim
        known[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for node in proto.graph.node:
        attributes = {a.name: a for a in node.attribute}
        if node.op_type not in ("MaxPool", "AveragePool") or "ceil_mode" not in attributes or not attributes["ceil_mode"].i:
            continue
        spatial = known.get(node.input[0], [None, None])[2:]
        kernel = list(attributes["kernel_shape"].ints)
        n = len(kernel)
        strides = list(attributes["strides"].ints) if "strides" in attributes else [1] * n
        pads = list(attributes["pads"].ints) if "pads" in attributes else [0] * (2 * n)
        dilations = list(attributes["dilations"].ints) if "dilations" in attributes else [1] * n
        if len(spatial) != n or None in spatial or pads[:n] != pads[n:]:
            continue  # a dynamic size keeps ceil_mode (refused below opset 22 where a window can be dropped)
        effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
        way = onnx_ceil_pool(spatial, effective, strides, pads[:n])
        if way is None or (any(way[1]) and node.op_type != "MaxPool"):
            continue
        ceil_mode, extra = way
        attributes["ceil_mode"].i = int(ceil_mode)
        if any(extra):
            new_pads = pads[:n] + [p + e for p, e in zip(pads[n:], extra)]
            if "pads" in attributes:
                del attributes["pads"].ints[:]
                attributes["pads"].ints.extend(new_pads)
            else:
                node.attribute.append(onnx.helper.make_attribute("pads", new_pads))


def _layer_paths(report: Report) -> set[str]:
    """Module paths of every spec layer: "stem", "stage.0.conv_0", ..."""
    paths: set[str] = set()

    def walk(layers, prefix: str) -> None:
        for layer in layers:
            paths.add(prefix + layer.name)
            walk(layer.children, prefix + layer.name + ".")

    walk(report.layers, "")
    return paths


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


def _opset_of(proto: onnx.ModelProto) -> int:
    return next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def _add_metadata(proto: onnx.ModelProto, spec: Spec, opset: int) -> None:
    text = spec_text(spec)
    entries = {
        "convspec.version": __version__,
        "convspec.spec_name": spec.name or "",
        "convspec.spec": text,
        "convspec.spec_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "convspec.opset": str(opset),
        "torch.version": torch.__version__,
    }
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name, proto.producer_version = "convspec", __version__
    proto.doc_string = f"{spec.name or 'network'}: exported by convspec {__version__} from its YAML spec"


def _ort_session(proto: onnx.ModelProto, model_path: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    source = str(model_path) if model_path is not None else proto.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _compare(name: str, shape: tuple, expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> OutputCheck:
    if expected.shape != actual.shape:
        return OutputCheck(name, shape, float("inf"), float("inf"), False)
    diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
    worst_abs = float(diff.max()) if diff.size else 0.0
    worst_rel = float((diff / (np.abs(expected) + atol)).max()) if diff.size else 0.0
    ok = bool(np.all(diff <= atol + rtol * np.abs(expected)))
    return OutputCheck(name, shape, worst_abs, worst_rel, ok)


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
    rtol: float = RTOL,
    atol: float = ATOL,
    verbose: bool = False,
    external_data_threshold: int = TWO_GB,
    on_step: Callable[[Step], None] | None = None,
    running: Callable[[str], contextlib.AbstractContextManager] | None = None,
    report: Report | None = None,
) -> ExportResult:
    """Export `model` (built from `spec`; built here when None) to ONNX at `path`, verified.

    Batch is a dynamic axis; spatial sizes are dynamic when the spec gives no
    `input.size` or `dynamic_size` is true. With `verify`, the ONNX checker (full),
    shape inference and onnxruntime-vs-PyTorch parity at batches 1 and 3 (and other
    spatial sizes when dynamic) must pass before anything is written. Raises
    ExportError on any failure; the destination is then untouched. An argument of the
    wrong type or range (`input_shape` (1, 3, 8.5, 8), `force="no"`, ...) raises
    InputError before any work.

    `report` is the spec's checked report when the caller has one (the CLI, `bench`): the
    spec is then not loaded or traced again.
    """
    newest = min(MAX_OPSET, onnx.defs.onnx_opset_version())
    if exact_int(opset) is None or not MIN_OPSET <= opset <= newest:
        raise InputError(f"--opset {opset!r} is out of range; use {MIN_OPSET} to {newest}")
    _check_arguments(model, verify, force, dynamic_size, rtol, atol, verbose, external_data_threshold, on_step, running, report)
    spec_file = spec if isinstance(spec, Path) or (isinstance(spec, str) and not looks_like_yaml_text(spec)) else None
    destination = check_writable(path_argument("path", path), flag_argument("force", force), protect=spec_file)
    if input_shape is not None:
        input_shape = parse_input_shape(input_shape)
    if report is None:
        report = load_and_check(spec, input_shape, require_size=False)
    parsed = report.spec
    report.raise_for_errors()
    if model is None:
        from .builder import build_from_report

        model = build_from_report(report)
    dynamic_spatial = parsed.input.size is None if dynamic_size is None else dynamic_size
    _refuse_export_limits(report, ExportTarget(opset, dynamic_spatial))
    example, example_report = _example(report, input_shape)
    output_names = list(example_report.outputs)
    steps: list[Step] = []
    running = running or (lambda name: contextlib.nullcontext())

    def step(name: str, started: float, detail: str) -> None:
        steps.append(Step(name, time.perf_counter() - started, detail))
        if on_step:
            on_step(steps[-1])

    was_training = model.training
    model.eval()
    try:
        # --- export
        started = time.perf_counter()
        batch = torch.export.Dim("batch", min=1)
        axes: dict[int, Any] = {0: batch}
        if dynamic_spatial:
            for axis in range(2, len(example)):
                axes[axis] = torch.export.Dim(f"size{axis - 2}", min=1)
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(example, generator=generator)
        with running("export"), _quiet(verbose) as log:
            try:
                program = torch.onnx.export(
                    model, (x,), None, input_names=["input"], output_names=output_names, opset_version=opset,
                    dynamic_shapes=(axes,), optimize=True, dynamo=True,
                )
            except Exception as err:
                plain = re.sub(r"\x1b\[[0-9;]*m", "", str(err))  # the exporter colours its messages
                lines = [line for line in plain.splitlines() if line.strip()]
                raise ExportError(f"torch's ONNX exporter failed: {type(err).__name__}: {lines[0] if lines else ''}"
                                  f"{' (rerun with --verbose for its log, --debug for the traceback)' if not verbose else ''}") from err
        proto = program.model_proto
        proto = _honour_opset(proto, opset)
        _pools_as_pytorch_computes(proto, opset)
        _name_nodes(proto, _layer_paths(report))
        _add_metadata(proto, parsed, opset)
        counts = _node_counts(proto)
        summary = ", ".join(f"{op} {n}" for op, n in counts.items())
        step("export", started, f"opset {opset}, {sum(counts.values())} nodes ({summary})")
        result = ExportResult(None, opset, counts, steps, rtol=rtol, atol=atol, dynamic_spatial=dynamic_spatial)

        with tempfile.TemporaryDirectory(dir=destination.parent, prefix=f".{destination.name}.") as staging:
            staged = Path(staging) / destination.name
            external = proto.ByteSize() >= external_data_threshold
            data_name = destination.name + ".data"
            with running("write"):
                if external:
                    onnx.save_model(proto, staged, save_as_external_data=True, all_tensors_to_one_file=True, location=data_name)
                else:
                    staged.write_bytes(proto.SerializeToString())

            if verify:
                # --- check: the ONNX checker and shape inference agree with convspec's arithmetic
                started = time.perf_counter()
                with running("check"):
                    _check_model(staged, proto, example_report, dynamic_spatial)
                step("check", started, "onnx.checker (full), shape inference matches the checker's output shapes")
                # --- verify: onnxruntime against PyTorch eager
                started = time.perf_counter()
                with running("verify"):
                    result.checks = _verify_parity(staged, model, parsed, example, output_names, dynamic_spatial, rtol, atol)
                shapes = sorted({"x".join(map(str, c.input_shape)) for c in result.checks})
                worst = max(c.worst_abs for c in result.checks)
                step(
                    "verify", started,
                    f"onnxruntime = PyTorch at {', '.join(shapes)} (rtol {rtol:g}, atol {atol:g}; largest |diff| {worst:.2e})",
                )
            # --- write: move into place (data file first, so the model never points at a missing file)
            started = time.perf_counter()
            if external and (destination.parent / data_name).exists() and not force:
                raise InputError(f"{destination.parent / data_name}: already exists; pass --force to replace it")
            if external:
                os.replace(Path(staging) / data_name, destination.parent / data_name)
            os.replace(staged, destination)
            size = destination.stat().st_size + ((destination.parent / data_name).stat().st_size if external else 0)
            step("write", started, f"{destination} ({size / 1e6:.2f} MB{', external data in ' + data_name if external else ''})")
        result.path = destination
        return result
    finally:
        model.train(was_training)


def _check_model(path: Path, proto: onnx.ModelProto, report: Report, dynamic_spatial: bool) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ExportError(f"the ONNX checker rejects the exported model: {first_line(err, 300)}") from None
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as err:
        hint = ""
        if "Pool" in str(err) and _opset_of(proto) < 22:
            hint = " (a ceil_mode pool whose last window PyTorch drops in one dim but not another; use --opset 22)"
        raise ExportError(f"ONNX shape inference rejects the exported model: {first_line(err, 300)}{hint}") from None
    problems = []
    for output in inferred.graph.output:
        expected = report.outputs.get(output.name)
        dims = output.type.tensor_type.shape.dim
        got = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if expected is None or len(got) != len(expected):
            problems.append(f"output {output.name!r}: ONNX infers rank {len(got)}, convspec {len(expected or ())}")
            continue
        for axis, (g, e) in enumerate(zip(got, expected)):
            if axis == 0:
                if g is not None:
                    problems.append(f"output {output.name!r}: ONNX infers a fixed batch of {g}, not a dynamic one")
            elif dynamic_spatial and axis >= 2:
                continue  # a dynamic size: ONNX keeps it symbolic
            elif g != e:
                problems.append(f"output {output.name!r} dim {axis}: ONNX infers {g if g is not None else 'a dynamic size'}, convspec {e}")
    if problems:
        raise ExportError([Problem(f"shape inference disagrees with the checker: {p}") for p in problems])


def _verify_parity(
    path: Path, model: nn.Module, spec: Spec, example: tuple[int, ...], output_names: Sequence[str],
    dynamic_spatial: bool, rtol: float, atol: float,
) -> list[OutputCheck]:
    try:
        session = _ort_session(onnx.ModelProto(), path)
    except Exception as err:
        raise ExportError(f"onnxruntime cannot load the exported model: {first_line(err, 300)}") from err
    shapes = [(b, *example[1:]) for b in VERIFY_BATCHES]
    if dynamic_spatial:
        shapes += _spatial_variants(spec, example)
    generator = torch.Generator().manual_seed(1)
    checks: list[OutputCheck] = []
    for shape in shapes:
        x = torch.randn(shape, generator=generator)
        with torch.no_grad():
            expected = model(x)
        expected = expected if isinstance(expected, tuple) else (expected,)
        try:
            actual = session.run(list(output_names), {"input": x.numpy()})
        except Exception as err:
            raise ExportError(f"onnxruntime cannot run the model at input {list(shape)}: {first_line(err, 300)}") from None
        for name, e, a in zip(output_names, expected, actual):
            checks.append(_compare(name, shape, e.numpy(), a, rtol, atol))
    failed = [c for c in checks if not c.ok]
    if failed:
        raise ExportError(
            [
                Problem(
                    f"onnxruntime differs from PyTorch on output {c.name!r} at input {list(c.input_shape)}: "
                    + ("shapes differ" if c.worst_abs == float("inf") else f"worst |diff| {c.worst_abs:.3g} (rtol {rtol:g}, atol {atol:g})")
                )
                for c in failed
            ]
        )
    return checks


__all__ = ["export_onnx", "ExportResult", "load_weights_file", "DEFAULT_OPSET"]
