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

import contextlib
import hashlib
import io
import logging
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import nn

from ._version import __version__
from .checkpoint import load_weights_file, spec_text
from .edge_shapes import record_edge_shapes
from .errors import ExportError, InputError
from .example_inputs import EXPORT_BATCH, VERIFY_BATCHES, example_shape, spatial_variants
from .fileio import check_free_space, check_writable, publish, staging
from .finite_weights import refuse_non_finite_weights
from .kinds import ExportTarget, export_limit_problems
from .layer_parity import layer_probe, module_paths, record_layer_outputs
from .limits import exact_int, flag_argument, number_argument, path_argument, seed_argument, whole_argument
from .node_names import locate_problem, name_nodes, name_unnamed
from .onnx_checks import check_file, check_summary
from .onnx_checks import opset_of as _opset_of
from .onnx_edit import known_shapes
from .opset_convert import TORCH_OPSET, to_opset
from .opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .pytorch_sizes import pools_as_pytorch, resizes_as_pytorch
from .report import Report
from .schema import Spec
from .source import looks_like_yaml_text
from .trace import check_spec, load_and_check, parse_input_shape
from .verify import (
    ATOL, RTOL, OutputCheck, Step, StepLog, compare_output, load_session, run_parity, session_options,
    summarize,
)  # fmt: skip

TWO_GB = 2**31  # protobuf's limit for one serialized message
# Weights from this size on go to a data file beside the model (ONNX external data): the rest of
# the graph must fit in protobuf's 2 GB too, so the line is drawn 64 MiB short of it.
EXTERNAL_DATA_THRESHOLD = TWO_GB - 2**26
_INLINE_TENSOR_BYTES = 1024  # smaller tensors (shapes, scales, pads) stay in the model file, where edits read them
_compare = compare_output  # the parity comparison, looked up at each export (tests replace it)


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
def quiet_exporter(verbose: bool) -> Iterator[io.StringIO]:
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


def model_to_export(model: nn.Module | None, report: Report, seed: int | None) -> tuple[nn.Module, int | None]:
    """`model`, or, when None, the spec's model with its initial weights from `seed` (default 0); and the seed of its weights."""
    if model is not None:
        return model, seed
    from .builder import build_from_report

    seed = 0 if seed is None else seed
    return build_from_report(report, seed=seed), seed


def _refuse_export_limits(report: Report, target: ExportTarget) -> None:
    """Layers whose kind says they cannot be exported this way (e.g. uneven adaptive pooling at a dynamic size)."""
    problems = export_limit_problems(report, target)
    if problems:
        raise ExportError(problems)


# ---------------------------------------------------------------- the graph made ready


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
    known = known_shapes(proto) if known is None else known
    layers = module_paths(report)
    name_nodes(proto, {path for path, _ in layers})  # first: the version converters drop the scopes it reads
    named = [(node.name, node.op_type) for node in proto.graph.node]
    try:
        proto = to_opset(proto, opset)
        pools_as_pytorch(proto, opset, known)
        resizes_as_pytorch(proto, opset, known)
    except ExportError as err:
        raise ExportError([locate_problem(problem, named, layers, report.spec) for problem in err.problems]) from None
    name_unnamed(proto)
    _record_output_shapes(proto, example_report, dynamic_spatial)
    record_edge_shapes(proto, module_paths(example_report), report.spec, dynamic_spatial)  # for viewers (Netron)
    return proto


def _node_counts(proto: onnx.ModelProto) -> dict[str, int]:
    """How many nodes of each op the main graph holds, the commonest first."""
    return dict(Counter(node.op_type for node in proto.graph.node).most_common())


def _add_metadata(proto: onnx.ModelProto, spec: Spec, opset: int, seed: int | None) -> None:
    """Provenance: the spec's text and SHA-256, the opset, the versions and (when the weights are its initial ones) the seed."""
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


def _check_arguments(model, opset, verify, force, dynamic_size, rtol, atol, verbose, threshold, on_step, running, report) -> None:
    """export_onnx's arguments, each of its type and range (InputError), before any work."""
    newest = min(MAX_OPSET, onnx.defs.onnx_opset_version())
    if exact_int(opset) is None or not MIN_OPSET <= opset <= newest:
        raise InputError(f"--opset {opset!r} is out of range; use {MIN_OPSET} to {newest}")
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


def _external_data_name(model: nn.Module, destination: Path, threshold: int, force: bool) -> str | None:
    """The data file's name beside `destination` when the weights weigh `threshold` bytes or more, else None.

    Raises InputError when that file exists without `force`, or when the disk has no room for the weights.
    """
    weight_bytes = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    data_name = destination.name + ".data" if weight_bytes >= threshold else None
    if data_name is not None and os.path.lexists(destination.parent / data_name) and not force:
        raise InputError(f"{destination.parent / data_name}: already exists; pass force=True (--force) to replace it")
    check_free_space(destination.parent, weight_bytes + 2**20, "the ONNX file")
    return data_name


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
    with quiet_exporter(verbose):
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
    _check_arguments(model, opset, verify, force, dynamic_size, rtol, atol, verbose, external_data_threshold, on_step, running, report)
    seed = seed_argument(seed)
    destination, input_shape, report = destination_and_report(spec, path, force, input_shape, report)
    dynamic_spatial = report.spec.input.size is None if dynamic_size is None else dynamic_size
    _refuse_export_limits(report, ExportTarget(opset, dynamic_spatial))
    model, seed = model_to_export(model, report, seed)
    refuse_non_finite_weights(model)
    example, example_report = _example(report, input_shape)
    job = _Export(
        model, report, example, example_report, destination, _external_data_name(model, destination, external_data_threshold, force),
        opset, dynamic_spatial, seed, rtol, atol, verbose, force, StepLog(on_step), running or (lambda name: contextlib.nullcontext()),
    )  # fmt: skip
    was_training = model.training
    model.eval()
    try:
        with staging(destination) as folder:
            result = job.run(folder, verify)
    except OSError as err:  # a full disk, a file system gone read-only: the destination is untouched
        raise InputError(f"{destination}: cannot write: {err.strerror or err}") from None
    finally:
        model.train(was_training)
    result.steps = job.log.steps
    return result


@dataclass
class _Export:
    """One export_onnx run, its arguments checked: the steps it takes inside its staging folder."""

    model: nn.Module
    report: Report
    example: tuple[int, ...]  # the traced input's shape (NCHW)
    example_report: Report  # the report at `example`
    destination: Path
    data_name: str | None  # the external data file's name beside `destination`, when the weights go there
    opset: int
    dynamic_spatial: bool
    seed: int | None
    rtol: float
    atol: float
    verbose: bool
    force: bool
    log: StepLog
    running: Callable[[str], contextlib.AbstractContextManager]

    def run(self, folder: Path, verify: bool) -> ExportResult:
        """Export, check, verify, then publish (the data file first)."""
        proto, staged = self.export(folder)
        result = ExportResult(
            None, self.opset, _node_counts(proto), [], rtol=self.rtol, atol=self.atol, dynamic_spatial=self.dynamic_spatial, seed=self.seed
        )
        if verify:
            self.check(staged, proto)
            result.checks = self.compare(staged, proto)
        result.path = self.publish(folder, staged)
        return result

    def export(self, folder: Path) -> tuple[onnx.ModelProto, Path]:
        """torch's exporter, the graph finished and given its provenance, written unverified in `folder`."""
        started = time.perf_counter()
        with self.running("export"):
            proto = trace_model(self.model, self.example, list(self.example_report.outputs), self.dynamic_spatial, self.verbose,
                                external_data=folder / self.data_name if self.data_name else None)  # fmt: skip
        with quiet_exporter(self.verbose):  # onnxscript's version converter reports its fallback on stdout
            proto = finish_model(proto, self.opset, self.report, self.example_report, self.dynamic_spatial)
        _add_metadata(proto, self.report.spec, self.opset, self.seed)
        record_layer_outputs(proto, module_paths(self.example_report))  # so a verification finds them whatever tools rename
        counts = _node_counts(proto)
        summary = ", ".join(f"{op} {n}" for op, n in counts.items())
        self.log.done("export", started, f"opset {_opset_of(proto)}, {sum(counts.values())} nodes ({summary})")
        staged = folder / "model.unverified"  # named like no result: a killed run leaves nothing to mistake for one
        with self.running("write"):
            staged.write_bytes(proto.SerializeToString())
        return proto, staged

    def check(self, staged: Path, proto: onnx.ModelProto) -> None:
        """The ONNX checker, the opset's schemas and shape inference agree with convspec's arithmetic."""
        started = time.perf_counter()
        with self.running("check"):
            check_file(staged, proto, dict(self.example_report.outputs), self.dynamic_spatial)
        self.log.done("check", started, check_summary(self.opset))

    def compare(self, staged: Path, proto: onnx.ModelProto) -> list[OutputCheck]:
        """onnxruntime against PyTorch eager at batches VERIFY_BATCHES (and other sizes when dynamic), layer by layer where needed."""
        started = time.perf_counter()
        with self.running("verify"):
            session = load_session(staged, "the exported model")
            shapes = [(b, *self.example[1:]) for b in VERIFY_BATCHES]
            if self.dynamic_spatial:
                shapes += spatial_variants(self.report.spec, self.example)
            pairs = [(name, name) for name in self.example_report.outputs]
            probe = layer_probe(proto, self.example_report, "input", precision="fp32", session_options=session_options())
            checks = run_parity(session, self.model, shapes, "input", pairs, self.rtol, self.atol, compare=_compare, probe=probe)
            del session  # let go of the files before they move
        self.log.done("verify", started, summarize(checks, self.rtol, self.atol))
        return checks

    def publish(self, folder: Path, staged: Path) -> Path:
        """Move the data file, then the model, into place, so the model never points at a missing file."""
        started = time.perf_counter()
        destination, data_name = self.destination, self.data_name
        staged_data = folder / data_name if data_name else None
        if staged_data is not None and not staged_data.exists():
            staged_data = None  # every tensor was small enough to stay in the model file
        if staged_data is not None:
            publish(staged_data, destination.parent / data_name, self.force)
        try:
            publish(staged, destination, self.force)
        except InputError:
            if staged_data is not None and not self.force:
                (destination.parent / data_name).unlink()  # ours, linked a moment ago: a model file another run won
            raise
        size = destination.stat().st_size + ((destination.parent / data_name).stat().st_size if staged_data else 0)
        self.log.done("write", started, f"{destination} ({size / 1e6:.2f} MB{', external data in ' + data_name if staged_data else ''})")
        return destination


__all__ = ["export_onnx", "ExportResult", "OutputCheck", "Step", "finish_model", "trace_model", "load_weights_file", "DEFAULT_OPSET"]
