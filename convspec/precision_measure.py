"""A reduced-precision model measured against PyTorch float32 on calibration inputs, and the int8 layers that lose most, located."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from .calibration import Calibration
from .edge_shapes import layer_outputs, layer_problem
from .errors import ExportError, Problem, first_line
from .layer_parity import barely_depend, module_paths
from .precision_convert import CalibrationReader

if TYPE_CHECKING:
    from .precision import Tolerance

WORST_LAYERS = 3  # layers named when int8 loses accuracy


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
    # max|PyTorch(input_i) - PyTorch(input_0)| over max|PyTorch|: at or below the tolerance, a model ignoring its input would pass
    input_spread: float | None = None



def measure(session: Any, model: Any, calibration: Calibration, output_names: list[str], tolerance: Tolerance, rtol: float) -> list[OutputFigures]:
    """The reduced model (`session`) against PyTorch float32 (`model`, eval mode) on every calibration input, per output."""
    import torch

    worst = {name: 0.0 for name in output_names}
    scale = {name: 0.0 for name in output_names}
    agree = {name: 0 for name in output_names}
    close = {name: 0 for name in output_names}
    first: dict[str, np.ndarray] = {}  # PyTorch's output on the first input, what the others are compared with
    spread = {name: 0.0 for name in output_names}
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
            reference = first.setdefault(name, e[:1])
            spread[name] = max(spread[name], float(np.abs(e - reference).max()) if e.size else 0.0)
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
        follows = spread[name] / scale[name] if scale[name] > 0 else 0.0
        figures.append(OutputFigures(
            name, worst[name], relative, scale[name], top1, ok, close_calls=close[name], input_spread=follows if seen > 1 else None,
        ))
    return figures


def _ranks(model: Any, calibration: Calibration) -> list[int]:
    """The rank of each of the model's outputs (2 for a classifier's (N, classes))."""
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
    line = f"{precision} against PyTorch float32 on {calibration.count} inputs: {'; '.join(parts)} ({rule})"
    # fp16 only: int8's allowance (0.15) is wider than many trained networks' spread over inputs, where
    # the warning would say nothing; there top-1 agreement and the worst layers speak instead
    flat = sorted(f.name for f in figures if f.input_spread is not None and f.input_spread <= rtol) if precision == "fp16" else []
    if flat:
        line += (
            f"; warning: {barely_depend(flat)} (the inputs' outputs differ by at most {max(f.input_spread for f in figures if f.name in flat):.1e} x max|PyTorch|, "
            "within the allowed difference), so these figures cannot tell the model from one that ignores its input; "
            "`convspec verify` of the file compares every layer"
        )
    return line


def worst_layers(float_path: Path, int8_path: Path, calibration: Calibration, report: Any, staging: Path, count: int = WORST_LAYERS) -> list[Problem]:
    """The spec layers whose int8 outputs differ most from float32 (lowest signal-to-quantization-noise ratio, dB), located.

    onnxruntime's QDQ loss debugger runs both models keeping every activation and compares
    each layer's int8 output with the float model's (10 log10 of signal power over noise power).
    """
    from onnxruntime.quantization import qdq_loss_debug as debug

    float_augmented, int8_augmented = staging / "float_debug.onnx", staging / "int8_debug.onnx"
    debug.modify_model_output_intermediate_tensors(str(float_path), str(float_augmented))
    debug.modify_model_output_intermediate_tensors(str(int8_path), str(int8_augmented))
    float_acts = debug.collect_activations(str(float_augmented), CalibrationReader("input", calibration))
    int8_acts = debug.collect_activations(str(int8_augmented), CalibrationReader("input", calibration))
    errors = debug.compute_activation_error(debug.create_activation_matching(int8_acts, float_acts))
    paths = dict(module_paths(report))
    tensor_layer = {tensors[-1]: layer for layer, tensors in layer_outputs(onnx.load(str(float_path)).graph, list(paths)).items()}
    # against the float model (`xmodel_err`): a fused activation makes `qdq_err` compare a conv's output before and after it
    ranked = sorted(
        (float(e["xmodel_err"]), tensor_layer[t]) for t, e in errors.items() if t in tensor_layer and e.get("xmodel_err") is not None
    )
    problems, named = [], set()
    for sqnr, path in ranked:
        if path in named:
            continue
        named.add(path)
        layer = paths[path]
        problems.append(layer_problem(report.spec, layer, f"int8 output differs from float32 here: signal-to-quantization-noise {sqnr:.1f} dB"))
        if len(problems) == count:
            break
    return problems

