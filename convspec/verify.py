"""Proving an ONNX file right against its spec: the file's own checks (`onnx_checks.py`), then onnxruntime = PyTorch.

`export_onnx` runs these checks on the file it is about to write; `verify_onnx`
(`convspec verify`) runs them on a file that already exists, whether convspec
wrote it or another tool changed it since (simplified, quantized, edited by
hand), against the spec and the weights it should compute with.

The parity criterion is relative to the size of each output, so it tells a
right graph from a wrong one whatever the scale of the outputs: an output
passes when

    max |onnxruntime - PyTorch|  <=  atol + rtol * max |PyTorch|

over all its values (the maximum norm of the difference against the maximum
norm of the reference; NumPy's `allclose` puts `|PyTorch|` element by element
instead, which lets an absolute `atol` swallow small outputs whole). With the
defaults an output that is zeroed, negated or computed from swapped inputs
fails at any scale above `atol`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from .edge_shapes import layer_problem
from .errors import ExportError, InputError, Problem, first_line
from .example_inputs import EXPORT_BATCH, VERIFY_BATCHES, example_shape, spatial_variants
from .finite_weights import non_finite_reference, non_finite_tensors, refuse_non_finite_weights
from .layer_parity import LayerProbe, barely_depend, input_spread, layer_failure, layer_probe
from .onnx_checks import check_file, check_summary, dims_of, opset_of
from .report import Report
from .schema import Spec
from .trace import check_spec, checked_report, report_for_input

# max|diff| <= ATOL + RTOL * max|reference|, per output. float32 with BatchNorm folded into
# convs and onnxruntime's own kernels differs from eager PyTorch by about 1e-6 of the largest
# value (`python -m convspec verify` on the example specs prints it); RTOL leaves a wide margin
# and still fails any output that is wrong as a whole (zeroed: 1, negated: 2 of the scale).
RTOL = 1e-3
ATOL = 1e-9  # only for outputs that are (almost) all zeros, where no relative size exists
ORT_QUIET = 4  # onnxruntime's log severity: fatal only; its errors reach the user as exceptions


@dataclass
class Step:
    """One step of an export or a verification, as printed: `name`, wall time in seconds, what it found."""

    name: str
    seconds: float
    detail: str


class StepLog:
    """The steps of one run in order, each handed to `on_step` (when given) as soon as it is done."""

    def __init__(self, on_step: Callable[[Step], None] | None = None):
        self.steps: list[Step] = []
        self.on_step = on_step

    def add(self, step: Step) -> None:
        self.steps.append(step)
        if self.on_step:
            self.on_step(step)

    def done(self, name: str, started: float, detail: str) -> None:
        """Record the step `name` begun at `started` (`time.perf_counter()`, seconds)."""
        self.add(Step(name, time.perf_counter() - started, detail))


@dataclass
class OutputCheck:
    """One output at one input shape, onnxruntime against PyTorch.

    `worst_abs` is max |onnxruntime - PyTorch|, `scale` max |PyTorch| and `worst_rel` their ratio;
    `detail` says why a check failed other than by a difference (shapes, non-finite values).
    """

    name: str
    input_shape: tuple[int, ...]
    worst_abs: float
    worst_rel: float
    ok: bool
    scale: float = 0.0
    detail: str = ""
    # max|sample_i - sample_0| of PyTorch's output over the input's samples, as a fraction of max|PyTorch|
    # (None at batch 1): at or below the tolerance, the output barely depends on the input and the
    # comparison cannot tell the graph from one that ignores its input
    input_spread: float | None = None
    # where the output barely depends on the input: how many layers' outputs were compared on their own, and the worst
    layers_compared: int = 0
    layers_expected: int = 0
    layers_worst_rel: float = 0.0
    layers_vouch: bool = False  # every layer compared, equal, and some follow the input: the graph is vouched for


@dataclass
class VerifyResult:
    """What `verify_onnx` checked: the file, its opset, each step and each output comparison."""

    path: Path
    opset: int
    steps: list[Step] = field(default_factory=list)
    checks: list[OutputCheck] = field(default_factory=list)
    rtol: float = RTOL
    atol: float = ATOL
    weights: str = ""  # where the reference weights came from: "seed 0", a file name, "the given module"


# ---------------------------------------------------------------- the criterion


def criterion(rtol: float, atol: float) -> str:
    """The parity rule as printed on the `verify` line."""
    return f"max|diff| <= {atol:g} + {rtol:g} x max|PyTorch|, per output"


def compare_output(name: str, shape: tuple, expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> OutputCheck:
    """Compare one output: max|actual - expected| <= atol + rtol * max|expected| (see the module docstring).

    `expected` must be finite (a non-finite reference is reported before, by `run_parity`).
    """
    if expected.shape != actual.shape:
        detail = f"onnxruntime gives shape {list(actual.shape)}, PyTorch {list(expected.shape)}"
        return OutputCheck(name, shape, float("inf"), float("inf"), False, detail=detail)
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    scale = float(np.abs(e).max()) if e.size else 0.0
    finite = np.isfinite(a)
    if not finite.all():
        kind = "NaN" if np.isnan(a).any() else "inf"
        detail = f"onnxruntime gives {kind} in {int((~finite).sum())} of {a.size} values where PyTorch's are finite"
        return OutputCheck(name, shape, float("inf"), float("inf"), False, scale, detail)
    worst = float(np.abs(e - a).max()) if e.size else 0.0
    relative = worst / scale if scale > 0 else (0.0 if worst == 0 else float("inf"))
    return OutputCheck(name, shape, worst, relative, worst <= atol + rtol * scale, scale)


def describe_failure(check: OutputCheck, rtol: float, atol: float) -> str:
    """A failed check as a person reads it: which output, at which input, by how much."""
    where = f"onnxruntime differs from PyTorch on output {check.name!r} at input {list(check.input_shape)}: "
    if check.detail:
        return where + check.detail
    return where + (
        f"max|diff| {check.worst_abs:.3g} is {check.worst_rel:.3g} x max|PyTorch| {check.scale:.3g} "
        f"(allowed: {atol:g} + {rtol:g} x max|PyTorch|)"
    )


def summarize(checks: Sequence[OutputCheck], rtol: float, atol: float) -> str:
    """The `verify` line: the input shapes run, the rule and the worst relative difference found."""
    shapes = sorted({"x".join(map(str, c.input_shape)) for c in checks}, key=lambda s: [int(v) for v in s.split("x")])
    worst = max(checks, key=lambda c: c.worst_rel)
    line = f"onnxruntime = PyTorch at {', '.join(shapes)} ({criterion(rtol, atol)}; worst {worst.worst_rel:.2e} x max|PyTorch|)"
    weak = [c for c in checks if _barely_depends(c, rtol)]
    if not weak:
        return line
    names = sorted({c.name for c in weak})
    flat = (
        f"{barely_depend(names)} (samples differ by at most {max(c.input_spread for c in weak):.1e} x max|PyTorch|"
    )
    if all(c.layers_vouch for c in weak):
        return line + (
            f"; {flat}), so every layer's output was compared as well: {max(c.layers_compared for c in weak)} layers equal, "
            f"worst {max(c.layers_worst_rel for c in weak):.2e} x max|values so far|"
        )
    partly = max(weak, key=lambda c: c.layers_compared)
    found = (
        f"; {partly.layers_compared} of the {partly.layers_expected} layers could be compared one by one, all equal "
        "(the others' tensors are not in the file by the names it records or its nodes give)"
        if partly.layers_compared and partly.layers_compared < partly.layers_expected else ""
    )
    return line + (
        f"; warning: {flat}, within the tolerance){found}, so this comparison cannot tell the graph "
        "from one that ignores its input; verify with trained weights (--weights)"
    )
    return line


# ---------------------------------------------------------------- onnxruntime


def session_options():
    """onnxruntime session options as convspec uses them: all graph optimisations, its own log silenced."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = ORT_QUIET  # its C++ warnings (shape merges, ...) would reach the terminal
    return options


def ort_session(path: Path):
    """An onnxruntime CPU session for the file at `path` (external data read beside it)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])


def load_session(path: Path, what: str):
    """An onnxruntime session for the file at `path` (`ort_session`), or ExportError saying it cannot load `what`."""
    try:
        return ort_session(path)
    except Exception as err:
        raise ExportError(f"onnxruntime cannot load {what}: {first_line(err, 300)}") from None


def run_parity(
    session: Any, model: nn.Module, shapes: Sequence[tuple[int, ...]], input_name: str, outputs: Sequence[tuple[str, str]],
    rtol: float, atol: float, compare: Callable[..., OutputCheck] = compare_output, probe: LayerProbe | None = None,
) -> list[OutputCheck]:
    """Run the model (eval mode, no grad) and the session on the same random inputs (NCHW float32) and compare.

    `outputs` pairs each spec output with the file's output computing it. Raises ExportError
    listing every failing output and input shape (the checks are on the error, as `checks`),
    or naming the non-finite weights when PyTorch's own output is not finite. `probe`
    (`layer_parity.compare_layers` bound to the file) compares every layer's output where
    the outputs fail, to name the first layer that differs, and where they barely depend
    on the input, so that a graph ignoring its input cannot pass (see `_layers_where_needed`).
    """
    generator = torch.Generator().manual_seed(1)
    checks: list[OutputCheck] = []
    # PyTorch runs once per spatial shape, at the largest batch asked for it; a smaller batch is
    # checked on the first samples of that input (eval mode: samples do not interact). The
    # reference forward is most of verification's time, so this saves a run per shape.
    largest: dict[tuple[int, ...], int] = {}
    for shape in shapes:
        largest[tuple(shape[1:])] = max(largest.get(tuple(shape[1:]), 0), shape[0])
    probed: torch.Tensor | None = None  # the first input: the one every layer is compared on, where needed
    for rest, batch in largest.items():
        x = torch.randn((batch, *rest), generator=generator)
        probed = x if probed is None else probed
        with torch.inference_mode():
            expected = model(x)
        expected = expected if isinstance(expected, tuple) else (expected,)
        for (name, _), value in zip(outputs, expected):
            if not torch.isfinite(value).all():
                raise non_finite_reference(model, name, (batch, *rest), value)
        for shape in [s for s in shapes if tuple(s[1:]) == rest]:
            part = x[: shape[0]]
            try:
                actual = session.run([file_name for _, file_name in outputs], {input_name: part.numpy()})
            except Exception as err:
                raise ExportError(f"onnxruntime cannot run the model at input {list(shape)}: {first_line(err, 300)}") from None
            for (name, _), e, a in zip(outputs, expected, actual):
                check = compare(name, tuple(shape), e[: shape[0]].numpy(), np.asarray(a), rtol, atol)
                if shape[0] > 1:
                    check.input_spread = input_spread(e[: shape[0]])
                checks.append(check)
    failed = [c for c in checks if not c.ok]
    layers = _layers_where_needed(probe, model, probed, checks, rtol, atol, compare)
    differing = next((layer for layer in layers or () if not layer.check.ok), None)
    if failed or differing is not None:
        problems = [Problem(describe_failure(c, rtol, atol)) for c in failed]
        if not failed:
            flat = sorted({c.name for c in checks if _barely_depends(c, rtol)})
            problems.append(Problem(
                f"{barely_depend(flat)}, "
                "so every layer's output was compared as well"
            ))
        if differing is not None:
            problems.append(layer_failure(differing, rtol, atol))
        error = ExportError(problems)
        error.checks = checks
        raise error
    return checks


def _judged_rel(layer: Any) -> float:
    scale = max(layer.check.scale, layer.operand_scale)
    return layer.check.worst_abs / scale if scale > 0 else (0.0 if layer.check.worst_abs == 0 else float("inf"))


def _barely_depends(check: OutputCheck, rtol: float) -> bool:
    return check.input_spread is not None and check.input_spread <= rtol


def _layers_where_needed(
    probe: LayerProbe | None, model: nn.Module, x: torch.Tensor | None, checks: list[OutputCheck],
    rtol: float, atol: float, compare: Callable[..., OutputCheck],
) -> list | None:
    """Every layer compared on `x` when an output failed or barely depends on the input; else None (not needed).

    None too when the file's layers cannot be run one by one (no probe, or onnxruntime
    refuses the changed model): the output comparison then stands alone, with its warning.
    The checks of outputs that barely depend on the input get the layers' figures where some
    layer's output does depend on it (else no comparison can tell, and the warning stays).
    """
    weak = [c for c in checks if _barely_depends(c, rtol)]
    if probe is None or x is None or not (weak or any(not c.ok for c in checks)):
        return None
    try:
        def judged(path: str, e: np.ndarray, a: np.ndarray, operand: float) -> OutputCheck:
            scale = float(np.abs(e).max()) if e.size else 0.0  # judged on max(scale, operand): see LayerProbe
            return compare(path, tuple(x.shape), e, a, rtol, atol + rtol * max(0.0, operand - scale))

        layers = probe(model, x, compare=judged)
    except Exception:  # a tool's change the per-layer run cannot take: the outputs' verdict stands
        return None
    follows = any(layer.input_spread is not None and layer.input_spread > rtol for layer in layers)
    for check in weak:
        check.layers_compared, check.layers_expected = len(layers), probe.expected
        # each layer's difference over the scale it was judged on: its own, or the largest value computed up to it
        check.layers_worst_rel = max((_judged_rel(layer) for layer in layers), default=0.0)
        # some layer follows the input, and every layer is compared: a graph ignoring its input would differ there
        check.layers_vouch = follows and len(layers) >= probe.expected
    return layers


# ---------------------------------------------------------------- verify a file


def _read_model(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return onnx.load(str(path))
    except Exception as err:  # protobuf raises DecodeError, onnx its own, a missing data file OSError
        raise InputError(f"{path}: not a readable ONNX model ({type(err).__name__}: {first_line(err, 200)})") from None


def _reference_model(
    report: Report, model: nn.Module | None, weights: Any, seed: int | None, proto: onnx.ModelProto, max_memory: int | None
) -> tuple[nn.Module, str]:
    """The PyTorch model to compare with, and where its weights come from."""
    if model is not None:
        return model, "the given module"
    from .budget import enforce_budget
    from .builder import build_from_report

    if weights is None and seed is None:
        meta = {p.key: p.value for p in proto.metadata_props}
        if "convspec.seed" not in meta:
            raise InputError(
                "the file does not say which weights it was exported with; give --weights FILE (the checkpoint or "
                "state_dict it was exported from) or --seed N (the seed given to `convspec export`)"
            )
        try:
            seed = int(meta["convspec.seed"])
        except ValueError:
            raise InputError(f"the file's convspec.seed is not a seed ({meta['convspec.seed'][:40]!r}); give --weights or --seed") from None
    enforce_budget(report, max_memory)  # the model runs: its activations count, not only its weights
    built = build_from_report(report, seed=seed if weights is None else 0, max_memory=max_memory)
    if weights is None:
        return built, f"the spec's initial weights, seed {seed}"
    from .checkpoint import load_weights

    if isinstance(weights, dict):
        load_weights(built, weights, "weights")
        return built, "the given state_dict"
    from .checkpoint import load_weights_file

    load_weights_file(built, weights)
    return built, str(weights)


def _match_outputs(proto: onnx.ModelProto, spec_outputs: Sequence[str]) -> list[tuple[str, str]]:
    """(spec output, file output) pairs: by name, or by position when a tool renamed them all."""
    names = [o.name for o in proto.graph.output]
    if sorted(names) == sorted(spec_outputs):
        return [(name, name) for name in spec_outputs]
    if len(names) == len(spec_outputs):
        return list(zip(spec_outputs, names))
    raise ExportError(
        f"the file has {len(names)} output{'' if len(names) == 1 else 's'} ({', '.join(names)}), "
        f"the spec {len(spec_outputs)} ({', '.join(spec_outputs)}): not the spec's network"
    )


def _tolerance(proto: onnx.ModelProto, rtol: float | None, atol: float | None) -> tuple[float, float]:
    """The (rtol, atol) to verify with: the caller's, else those of the precision the file's metadata records."""
    from .precision import TOLERANCES

    tolerance = TOLERANCES.get(_precision_of(proto), TOLERANCES["fp32"])
    return (tolerance.rtol if rtol is None else rtol), (tolerance.atol if atol is None else atol)


def _precision_of(proto: onnx.ModelProto) -> str:
    """The precision a file's metadata records (`convspec.precision`), fp32 when it records none."""
    return next((p.value for p in proto.metadata_props if p.key == "convspec.precision"), "fp32")


def _file_input(proto: onnx.ModelProto, spec: Spec) -> tuple[str, list[int | None]]:
    """The name and dims (None where dynamic) of the file's one input, or ExportError where it is not the spec's."""
    initializers = {init.name for init in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ExportError(f"the file has {len(inputs)} inputs; a convspec network has one")
    file_input = dims_of(inputs[0])
    if len(file_input) != 2 + spec.dims or (file_input[1] is not None and file_input[1] != spec.input.channels):
        raise ExportError(
            f"the file's input {inputs[0].name!r} has shape {['?' if d is None else d for d in file_input]}, "
            f"the spec's input is {spec.input.channels} channels of {spec.dims}-D"
        )
    return inputs[0].name, file_input


def _shapes_to_run(spec: Spec, file_input: list[int | None], input_shape: tuple[int, ...] | None) -> tuple[list[tuple[int, ...]], tuple[int, ...]]:
    """The input shapes (NCHW) to compare at, and the one whose output shapes the file must have.

    `input_shape` alone when given (InputError where it does not fit the file's input); else
    batches VERIFY_BATCHES where the file's batch is dynamic, and other spatial sizes where its sizes are.
    """
    dynamic_batch = file_input[0] is None
    dynamic_spatial = any(d is None for d in file_input[2:])
    if input_shape is not None:
        if len(input_shape) != len(file_input) or any(f is not None and f != s for f, s in zip(file_input, input_shape)):
            raise InputError(f"--input {'x'.join(map(str, input_shape))} does not fit the file's input {['?' if d is None else d for d in file_input]}")
        return [tuple(input_shape)], tuple(input_shape)
    spatial = tuple(file_input[2:]) if not dynamic_spatial else example_shape(spec, None)[2:]
    base = (EXPORT_BATCH if dynamic_batch else file_input[0], spec.input.channels, *spatial)
    shapes = [(b, *base[1:]) for b in VERIFY_BATCHES] if dynamic_batch else [base]
    if dynamic_spatial:
        shapes += [(s if dynamic_batch else (file_input[0], *s[1:])) for s in spatial_variants(spec, base)]
    return shapes, base


def _outputs_at(proto: onnx.ModelProto, spec: Spec, base: tuple[int, ...]) -> tuple[list[tuple[str, str]], dict[str, tuple], Report]:
    """(spec output, file output) pairs, the checker's shape of each file output at input `base`, and the report there."""
    base_report = check_spec(spec, base)
    if not base_report.valid:
        raise InputError([Problem(f"input {list(base)} does not fit the spec: {p.message}", p.location, p.layer) for p in base_report.errors])
    pairs = _match_outputs(proto, list(base_report.outputs))
    return pairs, {file_name: base_report.outputs[name] for name, file_name in pairs}, base_report


def _spec_text_note(proto: onnx.ModelProto, spec: Spec) -> str:
    """A note for the `check` line when the file's recorded spec hash is not this spec's text."""
    from .checkpoint import spec_text

    recorded = next((p.value for p in proto.metadata_props if p.key == "convspec.spec_sha256"), None)
    if recorded is not None and recorded != hashlib.sha256(spec_text(spec).encode("utf-8")).hexdigest():
        return "; the file was exported from another spec text"
    return ""


def _compare_with_reference(
    path: Path, proto: onnx.ModelProto, reference: nn.Module, shapes: list[tuple[int, ...]], input_name: str,
    pairs: list[tuple[str, str]], rtol: float, atol: float, origin: str, probe: LayerProbe | None, seed: int | None,
) -> list[OutputCheck]:
    """onnxruntime on the file against `reference` (eval mode, then its mode restored) at each of `shapes`; `probe` for `run_parity`."""
    was_training = reference.training
    reference.eval()
    try:
        refuse_non_finite_weights(reference)
        session = load_session(path, "the model")
        try:
            return run_parity(session, reference, shapes, input_name, pairs, rtol, atol, probe=probe)
        except ExportError as err:
            raise _not_verified(err, proto, path, origin, seed) from None
    finally:
        reference.train(was_training)


def _not_verified(err: ExportError, proto: onnx.ModelProto, path: Path, origin: str, seed: int | None) -> ExportError:
    """The parity failure `err` with what explains it: the file's own non-finite weights, an int8 file's calibration,
    a `seed` other than the one the file records."""
    problems = list(err.problems)
    bad = non_finite_tensors((init.name, onnx.numpy_helper.to_array(init)) for init in proto.graph.initializer)
    if bad:
        problems.append(Problem(f"the file's own weights are not finite: {', '.join(bad[:5])}"))
    precision = _precision_of(proto)
    if precision.startswith("int8"):  # quantized ranges fit the calibration inputs, not standard-normal ones
        problems.append(Problem(
            f"the file is {precision}: its ranges were calibrated on the inputs its metadata names "
            "(convspec.calibration), while verify draws standard-normal inputs; the export's own figures on "
            "its calibration inputs are in the metadata (convspec.accuracy)"
        ))
    recorded_seed = next((p.value for p in proto.metadata_props if p.key == "convspec.seed"), None)
    if seed is not None and recorded_seed is not None and str(seed) != recorded_seed:
        problems.append(Problem(
            f"the file records seed {recorded_seed} (convspec.seed), and seed {seed} builds other weights: "
            "verify without --seed to use the file's"
        ))
    problems.append(Problem(f"not verified: {path} against the spec with {origin}"))
    failed = ExportError(problems)
    failed.checks = getattr(err, "checks", [])
    return failed


def _check_verify_arguments(seed: Any, rtol: Any, atol: Any, model: Any) -> int | None:
    """verify_onnx's arguments of the wrong type or range (InputError); the seed, checked."""
    from .limits import number_argument, seed_argument

    seed = seed_argument(seed)
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None:
            number_argument(name, value, 0)
    if model is not None and not isinstance(model, nn.Module):
        raise InputError(f"model must be the torch.nn.Module built from the spec, or None to build it, not {type(model).__name__}")
    return seed


def verify_onnx(
    onnx_path: str | Path,
    spec: Any,
    *,
    weights: str | Path | dict | None = None,
    seed: int | None = None,
    model: nn.Module | None = None,
    input_shape: tuple[int, ...] | str | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    report: Report | None = None,
    on_step: Callable[[Step], None] | None = None,
    max_memory: int | None = None,
) -> VerifyResult:
    """Verify an existing ONNX file against `spec` (a path, YAML text, dict or Spec) and the weights it should have.

    The reference is `model` if given, else the spec's model with `weights` (a
    `convspec build -o` checkpoint, a state_dict file or a state_dict) or the spec's initial
    weights from `seed` (default: the seed the file's metadata records, `convspec.seed`).
    Checks, in order: the ONNX checker (full), every node valid in the file's opset, shape
    inference against the checker's output shapes, and onnxruntime against PyTorch on random
    inputs (NCHW float32): at batches 1 and 3 when the file's batch is dynamic, and at two
    more spatial sizes when its sizes are dynamic; or at `input_shape` alone. An output
    passes when max|diff| <= atol + rtol * max|PyTorch| (see the module docstring); `rtol` and
    `atol` default to RTOL and ATOL, or, for a file whose metadata records a reduced
    `convspec.precision` (fp16, int8), to that precision's (`precision.TOLERANCES`).

    The model is built under the memory budget (`max_memory` bytes, default half of what is
    available). Raises InputError (the file or the weights cannot be read, `input_shape` does not fit)
    and ExportError (the file is not verified: which check or output failed and by how much;
    the comparisons are on the error as `checks`). Returns the VerifyResult when verified.
    """
    from .limits import path_argument

    seed = _check_verify_arguments(seed, rtol, atol, model)
    path = path_argument("onnx_path", onnx_path)
    proto = _read_model(path)
    rtol, atol = _tolerance(proto, rtol, atol)
    if report is None:
        report = report_for_input(spec, input_shape)
    report, input_shape = checked_report(spec, input_shape, report)
    log = StepLog(on_step)
    started = time.perf_counter()
    input_name, file_input = _file_input(proto, report.spec)
    shapes, base = _shapes_to_run(report.spec, file_input, input_shape)
    pairs, expected_shapes, base_report = _outputs_at(proto, report.spec, base)
    note = _spec_text_note(proto, report.spec)
    reference, origin = _reference_model(report, model, weights, seed, proto, max_memory)  # weights that cannot be read: status 2 first
    dynamic_spatial = any(d is None for d in file_input[2:])
    check_file(path, proto, expected_shapes, dynamic_spatial, dynamic_batch=file_input[0] is None)
    log.done("check", started, check_summary(opset_of(proto)) + note)

    started = time.perf_counter()
    probe = layer_probe(proto, base_report, input_name, precision=_precision_of(proto), session_options=session_options())
    checks = _compare_with_reference(path, proto, reference, shapes, input_name, pairs, rtol, atol, origin, probe, seed)
    log.done("verify", started, summarize(checks, rtol, atol) + f"; weights: {origin}")
    return VerifyResult(path, opset_of(proto), log.steps, checks, rtol, atol, origin)


__all__ = [
    "ATOL", "RTOL", "OutputCheck", "Step", "StepLog", "VerifyResult", "compare_output", "criterion", "load_session",
    "run_parity", "session_options", "verify_onnx",
]  # fmt: skip
