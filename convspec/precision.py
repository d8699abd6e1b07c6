"""Reduced-precision export (fp16, int8, int8-dynamic), verified the way fp32 is, and `--simplify`.

The fp32 model is exported and verified first (`export.export_onnx`), in a staging
folder beside the destination; then, when asked, simplified with onnxslim and verified
again; then converted:

- `fp16`: onnxconverter-common's `convert_float_to_float16` with `keep_io_types`
  (weights and compute in float16, the input and outputs float32; ops it keeps in
  float32, such as Resize, get casts around them);
- `int8`: onnxruntime's `quant_pre_process`, then `quantize_static` in QDQ format with
  per-channel int8 weights and uint8 activations (U8S8, the form onnxruntime's x86
  kernels run fastest with VNNI; MinMax calibration) on the calibration inputs;
- `int8-dynamic`: onnxruntime's `quantize_dynamic` (int8 weights, per channel;
  activations quantized at run time), which needs no calibration.

The converted file goes through the same checks as an fp32 one (the ONNX checker,
the opset's schemas, shape inference against the checker's output shapes), and then
onnxruntime runs it against PyTorch (float32) on the calibration inputs, in batches of
1, 3 and 8: each output within `atol + rtol * max|PyTorch|` with the precision's
tolerance (`TOLERANCES`), and for a classifier (an output of shape (N, classes)) the
top-1 class agreeing with float32's on at least `min_top1` of the inputs. When an int8
model fails, onnxruntime's QDQ loss debugger (`onnxruntime.quantization.qdq_loss_debug`)
measures each layer's quantization noise, and the layers that lose most are named at
their `file:line`. The figures, the precision and the calibration set's hash go into the
file's metadata; only a model that passes is moved into place.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from .calibration import Calibration, drawn_calibration, load_calibration
from .edge_shapes import record_edge_shapes
from .errors import ExportError, InputError, Problem
from .example_inputs import example_shape
from .layer_parity import module_paths
from .onnx_checks import check_file, check_summary, opset_of
from .precision_convert import simplify_model, to_fp16, to_int8
from .precision_measure import OutputFigures, describe, measure, worst_layers
from .verify import ATOL, RTOL, StepLog, load_session

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
# how each precision is converted, as the `convert` line says it
CONVERSIONS = {
    "fp32": "float32",
    "fp16": "onnxconverter-common float16, float32 input and outputs",
    "int8": "onnxruntime static QDQ, int8 weights per channel, uint8 activations, MinMax",
    "int8-dynamic": "onnxruntime dynamic, int8 weights per channel",
}


@dataclass(frozen=True)
class Tolerance:
    """What a precision must meet: max|diff| <= atol + rtol * max|PyTorch| per output, and top-1 agreement >= min_top1.

    fp16 keeps about 3 significant digits (a 10-bit mantissa: relative rounding 4.9e-4 per
    operation), so 1e-2 of the output's scale leaves room for a deep network's accumulated
    rounding; int8 with 256 levels per tensor loses about 1/256 per quantized tensor, and a
    few percent across a network; 0.15 still fails an output that is wrong as a whole
    (zeroed: 1, negated: 2). The top-1 floors are defaults to set per deployment; 0.95 for int8
    still fails the 15-point losses static quantization can cause.
    """

    rtol: float
    atol: float
    min_top1: float


TOLERANCES = {
    "fp32": Tolerance(RTOL, ATOL, 1.0),  # export's own
    "fp16": Tolerance(1e-2, 1e-6, 0.99),
    "int8": Tolerance(0.15, 1e-6, 0.95),
    "int8-dynamic": Tolerance(0.15, 1e-6, 0.95),
}


def tolerance_for(precision: str) -> Tolerance:
    """The tolerance of a precision named in `PRECISIONS`, else InputError with a hint."""
    if precision not in TOLERANCES:
        from .errors import did_you_mean

        raise InputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}{did_you_mean(str(precision), PRECISIONS)}")
    return TOLERANCES[precision]



@dataclass
class PrecisionResult:
    """What `export_precision` wrote and measured."""

    path: Path
    precision: str
    tolerance: Tolerance
    calibration: Calibration
    outputs: list[OutputFigures] = field(default_factory=list)
    steps: list = field(default_factory=list)
    simplified: bool = False
    size_bytes: int = 0

    @property
    def top1(self) -> float | None:
        figures = [o.top1 for o in self.outputs if o.top1 is not None]
        return min(figures) if figures else None



# ---------------------------------------------------------------- the export


def _metadata(proto: onnx.ModelProto, entries: dict[str, str]) -> None:
    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value


def _tolerance_asked(precision: str, rtol: Any, min_top1: Any) -> tuple[Tolerance, float]:
    """The precision's tolerance with `min_top1` set when given, and the rtol to measure with (InputError when out of range)."""
    from .limits import number_argument

    tolerance = tolerance_for(precision)
    rtol = tolerance.rtol if rtol is None else number_argument("rtol", rtol, 0)
    if min_top1 is not None:
        tolerance = Tolerance(tolerance.rtol, tolerance.atol, number_argument("min_top1", min_top1, 0, 1))
    return tolerance, rtol


def _calibration_for(precision: str, calibration: Any, sample_shape: tuple[int, ...], on_warning: Callable[[str], None] | None) -> Calibration:
    """The calibration inputs (NCHW samples of `sample_shape`): the folder given, else drawn, with a warning for int8."""
    import warnings

    from .limits import path_argument

    if calibration is not None:
        return load_calibration(path_argument("calibration", calibration), sample_shape)
    calib = drawn_calibration(sample_shape)
    if precision in ("int8", "int8-dynamic"):
        what = "int8 is calibrated, and its accuracy measured," if precision == "int8" else "int8-dynamic's accuracy is measured"
        (on_warning or (lambda text: warnings.warn(text, stacklevel=4)))(
            f"no --calibration: {what} on {calib.source}; "
            "the figures then say little about real inputs (give a folder of real ones)"
        )
    return calib


def export_precision(
    model: Any,
    spec: Any,
    path: str | Path,
    *,
    precision: str = "fp16",
    calibration: str | Path | None = None,
    simplify: bool = False,
    rtol: float | None = None,
    min_top1: float | None = None,
    force: bool = False,
    input_shape: tuple[int, ...] | str | None = None,
    seed: int | None = None,
    report: Any = None,
    on_step: Callable | None = None,
    on_warning: Callable[[str], None] | None = None,
    running: Callable[[str], contextlib.AbstractContextManager] | None = None,
    **export_options: Any,
) -> PrecisionResult:
    """Export `spec`'s model at `precision` ("fp32", "fp16", "int8", "int8-dynamic") to `path`, verified; optionally simplified.

    `calibration` is a folder of `.npy` or image files (`calibration.py`) for int8's ranges
    and for the accuracy figures; without it, DRAWN_SAMPLES inputs are drawn at the spec's
    shape and `on_warning` (default: `warnings.warn`) is told the figures say little.
    `rtol` and `min_top1` override the precision's `TOLERANCES`. Other keyword arguments
    (`opset`, `dynamic_size`, `verbose`, ...) go to `export_onnx` for the fp32 model.

    Raises InputError (bad arguments, an unreadable calibration folder, the output exists
    without `force`), SpecError, and ExportError (the fp32, simplified or reduced model
    does not verify: which output and by how much, and for int8 the layers losing most).
    The destination is then untouched.
    """
    from .export import destination_and_report, model_to_export
    from .fileio import staging as staging_folder
    from .limits import flag_argument

    tolerance, rtol = _tolerance_asked(precision, rtol, min_top1)
    flag_argument("simplify", simplify)
    if "verify" in export_options:
        raise InputError("export_precision always verifies; it takes no `verify` argument")
    destination, input_shape, report = destination_and_report(spec, path, force, input_shape, report)
    calib = _calibration_for(precision, calibration, (1, *example_shape(report.spec, input_shape)[1:]), on_warning)
    model, seed = model_to_export(model, report, seed)
    job = _PrecisionExport(
        model, report, input_shape, seed, precision, tolerance, rtol, calib, simplify, export_options,
        StepLog(on_step), running or (lambda name: contextlib.nullcontext()),
    )  # fmt: skip
    was_training = model.training
    model.eval()
    try:
        with staging_folder(destination) as staging:
            figures = job.run(staging, destination, force, calibration)
    except OSError as err:  # a full disk, a file system gone read-only: the destination is untouched
        raise InputError(f"{destination}: cannot write: {err.strerror or err}") from None
    finally:
        model.train(was_training)
    size = destination.stat().st_size
    return PrecisionResult(destination, precision, Tolerance(rtol, tolerance.atol, tolerance.min_top1), calib, figures, job.log.steps, simplify, size)


@dataclass
class _PrecisionExport:
    """One export_precision run, its arguments checked: the steps it takes inside its staging folder."""

    model: Any
    report: Any
    input_shape: tuple[int, ...] | None
    seed: int | None
    precision: str
    tolerance: Tolerance
    rtol: float
    calib: Calibration
    simplify: bool
    export_options: dict[str, Any]
    log: StepLog
    running: Callable[[str], contextlib.AbstractContextManager]
    dynamic_spatial: bool = False  # as the fp32 export decided

    @property
    def verbose(self) -> bool:
        """Whether the exporter's and converters' own output reaches the user (`verbose` of the fp32 export)."""
        return self.export_options.get("verbose", False)

    def run(self, staging: Path, destination: Path, force: bool, calibration_folder: Any) -> list[OutputFigures]:
        """fp32 export, simplified when asked, converted, checked, measured, then published at `destination`."""
        float_path, proto = self.export_fp32(staging)
        provenance = {p.key: p.value for p in proto.metadata_props}  # the spec, its hash, the seed: `convspec verify` reads them
        if self.simplify:
            float_path, proto = self.simplified(proto, staging)
        reduced_path = staging / "reduced.unverified"  # named like no result: a killed run leaves nothing to mistake for one
        proto = self.convert(proto, float_path, reduced_path, staging)
        self.check(reduced_path, proto)
        figures = self.accuracy(proto, float_path, reduced_path, staging)
        self.publish(proto, reduced_path, destination, force, {**provenance, **self.accuracy_metadata(figures, calibration_folder)})
        return figures

    def export_fp32(self, staging: Path) -> tuple[Path, onnx.ModelProto]:
        """The verified fp32 export, staged; its steps shown but its write (it is not the file asked for)."""
        from .export import export_onnx

        def fp32_step(done) -> None:
            if done.name != "write":
                self.log.add(done)

        fp32_path = staging / "fp32.onnx"
        exported = export_onnx(self.model, self.report.spec, fp32_path, report=self.report, input_shape=self.input_shape, seed=self.seed,
                               on_step=fp32_step, running=self.running, **self.export_options)  # fmt: skip
        self.dynamic_spatial = exported.dynamic_spatial
        return fp32_path, onnx.load(str(fp32_path))

    def simplified(self, proto: onnx.ModelProto, staging: Path) -> tuple[Path, onnx.ModelProto]:
        """onnxslim's model, written in `staging` and verified again against PyTorch."""
        from .export import quiet_exporter
        from .verify import verify_onnx

        started = time.perf_counter()
        before = len(proto.graph.node)
        with self.running("simplify"), quiet_exporter(self.verbose):
            proto = simplify_model(proto)
            record_edge_shapes(proto, module_paths(self.report), self.report.spec, self.dynamic_spatial)
        float_path = staging / "simplified.onnx"
        onnx.save(proto, str(float_path))
        try:
            with self.running("simplify"):
                verify_onnx(float_path, self.report.spec, model=self.model, report=self.report, input_shape=self.input_shape)
        except ExportError as err:
            raise ExportError([*err.problems, Problem("the simplified model does not verify, so it is not written; export without --simplify")]) from None
        self.log.done("slim", started, f"onnxslim: {before} -> {len(proto.graph.node)} nodes, verified again (onnxruntime = PyTorch)")
        return float_path, proto

    def convert(self, proto: onnx.ModelProto, float_path: Path, reduced_path: Path, staging: Path) -> onnx.ModelProto:
        """The model at the precision asked for, written at `reduced_path` (unverified)."""
        from .export import quiet_exporter

        started = time.perf_counter()
        kept_float: list[str] = []
        with self.running("convert"), quiet_exporter(self.verbose):
            if self.precision == "fp16":
                proto, kept_float = to_fp16(proto)
            elif self.precision.startswith("int8"):
                to_int8(float_path, reduced_path, self.calib if self.precision == "int8" else None, staging)
                proto = onnx.load(str(reduced_path))
            record_edge_shapes(proto, module_paths(self.report), self.report.spec, self.dynamic_spatial)
        onnx.save(proto, str(reduced_path))
        how = CONVERSIONS[self.precision] + (f"; kept in float32: {', '.join(kept_float)}" if kept_float else "")
        if self.precision != "fp32":
            self.log.done("convert", started, f"{self.precision} ({how}), {reduced_path.stat().st_size / 1e6:.2f} MB")
        return proto

    def check(self, reduced_path: Path, proto: onnx.ModelProto) -> None:
        """The converted file through the same checks as an fp32 one."""
        from .export import _example

        started = time.perf_counter()
        with self.running("check"):
            expected = dict(_example(self.report, self.input_shape)[1].outputs)
            check_file(reduced_path, proto, expected, self.dynamic_spatial)
        self.log.done("check", started, f"the {self.precision} file: {check_summary(opset_of(proto))}")

    def accuracy(self, proto: onnx.ModelProto, float_path: Path, reduced_path: Path, staging: Path) -> list[OutputFigures]:
        """The converted model against PyTorch float32 on the calibration inputs; ExportError when it misses the tolerance."""
        started = time.perf_counter()
        with self.running("accuracy"):
            session = load_session(reduced_path, f"the {self.precision} model")
            names = [o.name for o in proto.graph.output]
            figures = measure(session, self.model, self.calib, names, self.tolerance, self.rtol)
            del session  # let go of the file before it moves
        summary = describe(figures, self.precision, self.rtol, self.tolerance, self.calib)
        if any(not f.ok for f in figures):
            raise self.inaccurate(figures, summary, float_path, reduced_path, staging)
        self.log.done("verify", started, summary)
        return figures

    def inaccurate(self, figures: list[OutputFigures], summary: str, float_path: Path, reduced_path: Path, staging: Path) -> ExportError:
        """The error for figures that miss the tolerance: which outputs, why, and for int8 the layers losing most."""
        from .export import quiet_exporter

        failed = [f for f in figures if not f.ok]
        problems = [Problem(f"the {self.precision} model is not accurate enough: {summary}")]
        problems += [Problem(f"output {f.name!r}: {f.detail}") for f in failed if f.detail]
        problems += [
            Problem(f"output {f.name!r}: on {f.close_calls} of {self.calib.count} inputs float32's top two classes are closer than "
                    f"the {self.precision} model's difference, so top-1 there is a coin toss (untrained weights, or inputs unlike the training data)")
            for f in failed if f.top1 is not None and f.top1 < self.tolerance.min_top1 and f.close_calls
        ]  # fmt: skip
        if self.precision == "int8":
            with self.running("locate"), quiet_exporter(self.verbose):
                problems += worst_layers(float_path, reduced_path, self.calib, self.report, staging)
        problems.append(Problem("not written; pass --rtol / --min-top1 to accept it, or calibrate on real inputs with --calibration DIR"))
        error = ExportError(problems)
        error.figures = figures
        return error

    def accuracy_metadata(self, figures: list[OutputFigures], calibration_folder: Any) -> dict[str, str]:
        """The precision, the calibration set (the folder given, or how its inputs were drawn) and the figures, as metadata."""
        calib = self.calib
        return {
            "convspec.precision": self.precision,
            "convspec.calibration": calib.source if calibration_folder is None else f"{Path(calibration_folder).name}: {calib.count} samples",
            "convspec.calibration_sha256": calib.sha256,
            "convspec.accuracy": json.dumps({
                "reference": "PyTorch float32", "inputs": calib.count, "rtol": self.rtol, "min_top1": self.tolerance.min_top1,
                "outputs": {f.name: {"max_rel_diff": f.worst_rel, "top1_agreement": f.top1} for f in figures},
            }),
            **({"convspec.simplified": "onnxslim"} if self.simplify else {}),
        }  # fmt: skip

    def publish(self, proto: onnx.ModelProto, reduced_path: Path, destination: Path, force: bool, metadata: dict[str, str]) -> None:
        """The verified file given its metadata and moved into place."""
        from .fileio import publish

        started = time.perf_counter()
        _metadata(proto, metadata)
        onnx.save(proto, str(reduced_path))
        publish(reduced_path, destination, force)
        size = destination.stat().st_size
        self.log.done("write", started, f"{destination} ({size / 1e6:.2f} MB, {self.precision})")


__all__ = ["PRECISIONS", "TOLERANCES", "OutputFigures", "PrecisionResult", "Tolerance", "export_precision", "tolerance_for"]
