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
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .calibration import Calibration, drawn_calibration, load_calibration
from .edge_shapes import layer_outputs, record_edge_shapes
from .errors import ExportError, InputError, Problem, first_line
from .layer_parity import module_paths
from .source import layer_label
from .verify import ATOL, RTOL

PRECISIONS = ("fp32", "fp16", "int8", "int8-dynamic")
WORST_LAYERS = 3  # layers named when int8 loses accuracy


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
class OutputFigures:
    """One output of the reduced model against PyTorch float32 over every calibration input.

    `worst_rel` is max|reduced - PyTorch| / max|PyTorch| over all inputs; `top1` the fraction
    of inputs whose largest class agrees (None where the output is not (N, classes)).
    """

    name: str
    worst_abs: float
    worst_rel: float
    scale: float
    top1: float | None
    ok: bool
    detail: str = ""
    close_calls: int = 0  # inputs whose float32 top-two classes are closer than the reduced model's difference there


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


# ---------------------------------------------------------------- conversions


def simplify_model(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxslim's simplification (constant folding, dead and duplicate nodes removed, fusions); ExportError if it fails."""
    try:
        import onnxslim
    except ImportError:
        raise InputError("--simplify needs onnxslim (pip install 'convspec[deploy]')") from None
    try:
        return onnxslim.slim(proto)
    except Exception as err:
        raise ExportError(f"onnxslim could not simplify the model: {first_line(err, 300)}") from None


FP16_RETRIES = 16  # nodes kept in float32 one by one, at most, before giving up
_NAMED_NODE = re.compile(r"node name: ([^)\s]+)\)|of node \(([^)\s]+)\)")


def to_fp16(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """Weights and compute in float16, input and outputs kept float32; and the nodes kept in float32 to get there.

    onnxconverter-common's `convert_float_to_float16` with `keep_io_types`, then two repairs
    for what it gets wrong: a graph output that other nodes also read hands those nodes the
    float32 copy (they are given the float16 value); and a node whose types ONNX shape
    inference or onnxruntime then reject (a ConstantOfShape feeding a Scan's float32 state,
    ...) is kept in float32 (`node_block_list`) and the conversion run again.
    """
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise InputError("--precision fp16 needs onnxconverter-common (pip install 'convspec[deploy]')") from None
    import onnxruntime as ort

    from .verify import session_options

    kept: list[str] = []
    for _ in range(FP16_RETRIES):
        try:
            converted = float16.convert_float_to_float16(proto, keep_io_types=True, node_block_list=kept or None)
        except Exception as err:
            raise ExportError(f"onnxconverter-common could not convert the model to float16: {first_line(err, 300)}") from None
        _read_float16_outputs(converted)
        try:
            onnx.shape_inference.infer_shapes(converted, check_type=True, strict_mode=True)
            ort.InferenceSession(converted.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
            return converted, kept
        except Exception as err:
            found = _NAMED_NODE.search(str(err))
            node = next((g for g in found.groups() if g), None) if found else None
            if node is None or node in kept:
                raise ExportError(f"the float16 model is not valid: {first_line(err, 300)}") from None
            kept.append(node)
    raise ExportError(f"the float16 model is still not valid with {FP16_RETRIES} nodes kept in float32 ({', '.join(kept[:5])}, ...)")


def _read_float16_outputs(proto: onnx.ModelProto) -> None:
    """Nodes that read a graph output the converter cast back to float32 read the float16 value before the cast instead."""
    returned = {output.name for output in proto.graph.output}
    casts = {node.output[0]: node.input[0] for node in proto.graph.node
             if node.op_type == "Cast" and node.output[0] in returned
             and any(a.name == "to" and a.i == onnx.TensorProto.FLOAT for a in node.attribute)}
    for node in proto.graph.node:
        if node.op_type == "Cast" and node.output and node.output[0] in casts:
            continue
        for index, name in enumerate(node.input):
            if name in casts:
                node.input[index] = casts[name]


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over calibration samples, one per call."""

    def __init__(self, input_name: str, calibration: Calibration):
        self.input_name, self.samples = input_name, iter(calibration.samples)

    def __iter__(self):  # the QDQ loss debugger iterates where the quantizer calls get_next
        return iter({self.input_name: sample} for sample in self.samples)

    def get_next(self) -> dict | None:
        sample = next(self.samples, None)
        return None if sample is None else {self.input_name: sample}


def to_int8(source: Path, target: Path, calibration: Calibration | None, staging: Path) -> None:
    """Quantize the float model at `source` into `target`: static QDQ (U8S8, per channel) on `calibration`, or dynamic without it."""
    from onnxruntime.quantization import QuantFormat, QuantType, quant_pre_process, quantize_dynamic, quantize_static

    prepared = staging / "prepared.onnx"
    try:
        try:
            quant_pre_process(str(source), str(prepared))
        except Exception:  # its symbolic shape inference fails on some graphs (a Mul of broadcast shapes): ONNX's alone then
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        if calibration is None:
            quantize_dynamic(str(prepared), str(target), per_channel=True, weight_type=QuantType.QInt8)
        else:
            quantize_static(
                str(prepared), str(target), _Reader("input", calibration), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )
    except ExportError:
        raise
    except Exception as err:
        raise ExportError(f"onnxruntime's quantization failed: {type(err).__name__}: {first_line(err, 300)}") from None


# ---------------------------------------------------------------- measuring


def measure(session: Any, model: Any, calibration: Calibration, output_names: list[str], tolerance: Tolerance, rtol: float) -> list[OutputFigures]:
    """The reduced model (`session`) against PyTorch float32 (`model`, eval mode) on every calibration input, per output."""
    import torch

    worst = {name: 0.0 for name in output_names}
    scale = {name: 0.0 for name in output_names}
    agree = {name: 0 for name in output_names}
    close = {name: 0 for name in output_names}
    seen = 0
    broken: dict[str, str] = {}
    for batch in calibration.batches():
        with torch.no_grad():
            expected = model(torch.from_numpy(batch))
        expected = expected if isinstance(expected, tuple) else (expected,)
        try:
            actual = session.run(output_names, {"input": batch})
        except Exception as err:
            raise ExportError(f"onnxruntime cannot run the model at input {list(batch.shape)}: {first_line(err, 300)}") from None
        for name, e, a in zip(output_names, expected, actual):
            e, a = e.numpy().astype(np.float64), np.asarray(a, dtype=np.float64)
            if e.shape != a.shape:
                broken[name] = f"onnxruntime gives shape {list(a.shape)}, PyTorch {list(e.shape)}"
                continue
            if not np.isfinite(a).all():
                broken[name] = f"onnxruntime gives NaN or inf at input {list(batch.shape)}"
                continue
            worst[name] = max(worst[name], float(np.abs(e - a).max()) if e.size else 0.0)
            scale[name] = max(scale[name], float(np.abs(e).max()) if e.size else 0.0)
            if e.ndim == 2:
                agree[name] += int((e.argmax(1) == a.argmax(1)).sum())
                if e.shape[1] > 1:
                    top_two = np.sort(e, axis=1)[:, -2:]
                    close[name] += int((top_two[:, 1] - top_two[:, 0] < np.abs(e - a).max(axis=1)).sum())
        seen += batch.shape[0]
    figures = []
    for name, e_rank in zip(output_names, _ranks(model, calibration)):
        top1 = agree[name] / seen if e_rank == 2 and seen else None
        if name in broken:
            figures.append(OutputFigures(name, float("inf"), float("inf"), scale[name], top1, False, broken[name]))
            continue
        relative = worst[name] / scale[name] if scale[name] > 0 else (0.0 if worst[name] == 0 else float("inf"))
        ok = worst[name] <= tolerance.atol + rtol * scale[name] and (top1 is None or top1 >= tolerance.min_top1)
        figures.append(OutputFigures(name, worst[name], relative, scale[name], top1, ok, close_calls=close[name]))
    return figures


def _ranks(model: Any, calibration: Calibration) -> list[int]:
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(calibration.samples[0]))
    return [t.dim() for t in (out if isinstance(out, tuple) else (out,))]


def describe(figures: list[OutputFigures], precision: str, rtol: float, tolerance: Tolerance, calibration: Calibration) -> str:
    """The `accuracy` line: per output, its largest relative difference and, for classifiers, top-1 agreement."""
    parts = []
    for f in figures:
        text = f"{f.name}: max|diff| {f.worst_rel:.2e} x max|PyTorch|"
        if f.top1 is not None:
            text += f", top-1 agrees on {f.top1:.1%}"
        parts.append(text)
    rule = f"allowed {rtol:g} x max|PyTorch|" + (f", top-1 >= {tolerance.min_top1:.0%}" if any(f.top1 is not None for f in figures) else "")
    return f"{precision} against PyTorch float32 on {calibration.count} inputs: {'; '.join(parts)} ({rule})"


def worst_layers(float_path: Path, int8_path: Path, calibration: Calibration, report: Any, staging: Path, count: int = WORST_LAYERS) -> list[Problem]:
    """The spec layers whose int8 outputs differ most from float32 (lowest signal-to-quantization-noise ratio, dB), located.

    onnxruntime's QDQ loss debugger runs both models keeping every activation and compares
    each layer's int8 output with the float model's (10 log10 of signal power over noise power).
    """
    from onnxruntime.quantization import qdq_loss_debug as debug

    float_augmented, int8_augmented = staging / "float_debug.onnx", staging / "int8_debug.onnx"
    debug.modify_model_output_intermediate_tensors(str(float_path), str(float_augmented))
    debug.modify_model_output_intermediate_tensors(str(int8_path), str(int8_augmented))
    float_acts = debug.collect_activations(str(float_augmented), _Reader("input", calibration))
    int8_acts = debug.collect_activations(str(int8_augmented), _Reader("input", calibration))
    errors = debug.compute_activation_error(debug.create_activation_matching(int8_acts, float_acts))
    paths = _layer_paths(report)
    tensor_layer = {tensors[-1]: layer for layer, tensors in layer_outputs(onnx.load(str(float_path)).graph, list(paths)).items()}
    # against the float model (`xmodel_err`): a fused activation makes `qdq_err` compare a conv's output before and after it
    ranked = sorted(
        (float(e["xmodel_err"]), tensor_layer[t]) for t, e in errors.items() if t in tensor_layer and e.get("xmodel_err") is not None
    )
    problems, named = [], set()
    source = report.spec.source
    for sqnr, path in ranked:
        if path in named:
            continue
        named.add(path)
        layer = paths[path]
        label = layer_label(source.data, layer.path)[1] if source.data is not None else layer.name
        problems.append(Problem(f"int8 output differs from float32 here: signal-to-quantization-noise {sqnr:.1f} dB",
                                source.locate(layer.path), label))
        if len(problems) == count:
            break
    return problems


def _layer_paths(report: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def walk(layers, prefix: str) -> None:
        for layer in layers:
            found[prefix + layer.name] = layer
            walk(layer.children, prefix + layer.name + ".")

    walk(report.layers, "")
    return found


# ---------------------------------------------------------------- the export


def _metadata(proto: onnx.ModelProto, entries: dict[str, str]) -> None:
    kept = [p for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value


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
    import warnings

    from .export import _example, _example_shape, _quiet, destination_and_report, export_onnx
    from .fileio import publish
    from .fileio import staging as staging_folder
    from .limits import flag_argument, number_argument, path_argument
    from .verify import check_file, opset_of, ort_session, verify_onnx

    tolerance = tolerance_for(precision)
    rtol = tolerance.rtol if rtol is None else number_argument("rtol", rtol, 0)
    if min_top1 is not None:
        tolerance = Tolerance(tolerance.rtol, tolerance.atol, number_argument("min_top1", min_top1, 0, 1))
    flag_argument("simplify", simplify)
    if "verify" in export_options:
        raise InputError("export_precision always verifies; it takes no `verify` argument")
    destination, input_shape, report = destination_and_report(spec, path, force, input_shape, report)
    parsed = report.spec
    sample_shape = (1, *_example_shape(parsed, input_shape)[1:])
    if calibration is not None:
        calib = load_calibration(path_argument("calibration", calibration), sample_shape)
    else:
        calib = drawn_calibration(sample_shape)
        if precision in ("int8", "int8-dynamic"):
            what = "int8 is calibrated, and its accuracy measured," if precision == "int8" else "int8-dynamic's accuracy is measured"
            (on_warning or (lambda text: warnings.warn(text, stacklevel=3)))(
                f"no --calibration: {what} on {calib.source}; "
                "the figures then say little about real inputs (give a folder of real ones)"
            )
    if model is None:
        from .builder import build_from_report

        seed = 0 if seed is None else seed
        model = build_from_report(report, seed=seed)
    running = running or (lambda name: contextlib.nullcontext())
    steps: list = []

    def step(name: str, started: float, detail: str) -> None:
        from .verify import Step

        steps.append(Step(name, time.perf_counter() - started, detail))
        if on_step:
            on_step(steps[-1])

    verbose = export_options.get("verbose", False)
    was_training = model.training
    model.eval()
    try:
        with staging_folder(destination) as staging:
            fp32_path = staging / "fp32.onnx"

            def fp32_step(done) -> None:  # the staged fp32 file is not the one the user asked for: its write is not shown
                if done.name != "write":
                    steps.append(done)
                    if on_step:
                        on_step(done)

            exported = export_onnx(model, parsed, fp32_path, report=report, input_shape=input_shape, seed=seed, on_step=fp32_step,
                                   running=running, **export_options)
            float_path, layers = fp32_path, module_paths(report)
            proto = onnx.load(str(fp32_path))
            provenance = {p.key: p.value for p in proto.metadata_props}  # the spec, its hash, the seed: `convspec verify` reads them
            if simplify:
                started = time.perf_counter()
                before = len(proto.graph.node)
                with running("simplify"), _quiet(verbose):
                    proto = simplify_model(proto)
                    record_edge_shapes(proto, layers, parsed, exported.dynamic_spatial)
                float_path = staging / "simplified.onnx"
                onnx.save(proto, str(float_path))
                try:
                    with running("simplify"):
                        verify_onnx(float_path, parsed, model=model, report=report, input_shape=input_shape)
                except ExportError as err:
                    raise ExportError([*err.problems, Problem("the simplified model does not verify, so it is not written; export without --simplify")]) from None
                step("slim", started, f"onnxslim: {before} -> {len(proto.graph.node)} nodes, verified again (onnxruntime = PyTorch)")
            started = time.perf_counter()
            reduced_path = staging / "reduced.unverified"  # named like no result: a killed run leaves nothing to mistake for one
            kept_float: list[str] = []
            with running("convert"), _quiet(verbose):
                if precision == "fp16":
                    proto, kept_float = to_fp16(proto)
                elif precision.startswith("int8"):
                    to_int8(float_path, reduced_path, calib if precision == "int8" else None, staging)
                    proto = onnx.load(str(reduced_path))
                record_edge_shapes(proto, layers, parsed, exported.dynamic_spatial)
            onnx.save(proto, str(reduced_path))
            how = {"fp32": "float32", "fp16": "onnxconverter-common float16, float32 input and outputs",
                   "int8": "onnxruntime static QDQ, int8 weights per channel, uint8 activations, MinMax",
                   "int8-dynamic": "onnxruntime dynamic, int8 weights per channel"}[precision]
            if precision == "fp16" and kept_float:
                how += f"; kept in float32: {', '.join(kept_float)}"
            if precision != "fp32":
                step("convert", started, f"{precision} ({how}), {reduced_path.stat().st_size / 1e6:.2f} MB")

            started = time.perf_counter()
            with running("check"):
                expected = dict(_example(report, input_shape)[1].outputs)
                check_file(reduced_path, proto, expected, exported.dynamic_spatial)
            step("check", started, f"the {precision} file: onnx.checker (full), opset {opset_of(proto)} schemas, shape inference matches the checker's output shapes")
            started = time.perf_counter()
            with running("accuracy"):
                try:
                    session = ort_session(reduced_path)
                except Exception as err:
                    raise ExportError(f"onnxruntime cannot load the {precision} model: {first_line(err, 300)}") from None
                names = [o.name for o in proto.graph.output]
                figures = measure(session, model, calib, names, tolerance, rtol)
            summary = describe(figures, precision, rtol, tolerance, calib)
            failed = [f for f in figures if not f.ok]
            if failed:
                problems = [Problem(f"the {precision} model is not accurate enough: {summary}")]
                problems += [Problem(f"output {f.name!r}: {f.detail}") for f in failed if f.detail]
                problems += [
                    Problem(f"output {f.name!r}: on {f.close_calls} of {calib.count} inputs float32's top two classes are closer than "
                            f"the {precision} model's difference, so top-1 there is a coin toss (untrained weights, or inputs unlike the training data)")
                    for f in failed if f.top1 is not None and f.top1 < tolerance.min_top1 and f.close_calls
                ]  # fmt: skip
                if precision == "int8":
                    with running("locate"), _quiet(verbose):
                        problems += worst_layers(float_path, reduced_path, calib, report, staging)
                problems.append(Problem("not written; pass --rtol / --min-top1 to accept it, or calibrate on real inputs with --calibration DIR"))
                error = ExportError(problems)
                error.figures = figures
                raise error
            step("verify", started, summary)

            started = time.perf_counter()
            _metadata(proto, {
                **provenance,
                "convspec.precision": precision,
                "convspec.calibration": calib.source if calibration is None else f"{Path(calibration).name}: {calib.count} samples",
                "convspec.calibration_sha256": calib.sha256,
                "convspec.accuracy": json.dumps({
                    "reference": "PyTorch float32", "inputs": calib.count, "rtol": rtol, "min_top1": tolerance.min_top1,
                    "outputs": {f.name: {"max_rel_diff": f.worst_rel, "top1_agreement": f.top1} for f in figures},
                }),
                **({"convspec.simplified": "onnxslim"} if simplify else {}),
            })  # fmt: skip
            onnx.save(proto, str(reduced_path))
            del session  # let go of the file before it moves
            publish(reduced_path, destination, force)
            size = destination.stat().st_size
            step("write", started, f"{destination} ({size / 1e6:.2f} MB, {precision})")
    except OSError as err:  # a full disk, a file system gone read-only: the destination is untouched
        raise InputError(f"{destination}: cannot write: {err.strerror or err}") from None
    finally:
        model.train(was_training)
    return PrecisionResult(destination, precision, Tolerance(rtol, tolerance.atol, tolerance.min_top1), calib, figures, steps, simplify, size)


__all__ = ["PRECISIONS", "TOLERANCES", "OutputFigures", "PrecisionResult", "Tolerance", "export_precision", "tolerance_for"]
