"""Helpers shared by the tests: the checker's reports against the built module's real outputs."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from convspec.report import LayerReport, Report


def qualified(reports: list[LayerReport], prefix: str = "") -> Iterator[tuple[str, LayerReport]]:
    """(module path, report) for every layer, nested ones included: 'stage.0.conv_0'."""
    for report in reports:
        path = f"{prefix}{report.name}"
        yield path, report
        yield from qualified(report.children, path + ".")


def real_outputs(model: torch.nn.Module, x: torch.Tensor, paths: list[str]) -> dict[str, torch.Tensor]:
    """What the submodule at each path returns when the model runs on x."""
    seen: dict[str, torch.Tensor] = {}
    hooks = [
        model.get_submodule(path).register_forward_hook(lambda m, i, out, path=path: seen.__setitem__(path, out))
        for path in paths
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def assert_report_matches_model(report: Report, model: torch.nn.Module) -> None:
    """Every layer's output shape and parameter counts equal the built module's, at every depth."""
    layers = dict(qualified(report.layers))
    outputs = real_outputs(model, torch.randn(report.input_shape), list(layers))
    for path, layer in layers.items():
        module = model.get_submodule(path)
        if layer.type == "part" and path not in outputs:
            continue  # a split's part that no layer reads is never cut out
        assert path in outputs, f"{path} never ran"
        assert tuple(outputs[path].shape) == layer.output_shape, (path, layer.type)
        assert sum(p.numel() for p in module.parameters()) == layer.params, (path, layer.type)
        assert sum(p.numel() for p in module.parameters() if p.requires_grad) == layer.trainable_params, path


class Hang(BaseException):
    """The watchdog's exception: a BaseException, so neither convspec nor CliRunner swallows it."""


@contextlib.contextmanager
def watchdog(seconds: float, what: str):
    """Turn a hang into a failure after `seconds` (SIGALRM: the main thread only)."""

    def fire(signum, frame):
        raise Hang(f"{what}: still running after {seconds:.0f} s (a hang)")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def printed_problems(path) -> list[str]:
    """Every problem `convspec.check` finds in the file at `path`, as printed, with the path shown as bad.yaml."""
    import convspec

    try:
        found = convspec.check(path).errors
    except convspec.SpecError as err:
        found = err.problems
    return [str(p).replace(str(path), "bad.yaml") for p in found]


class CountMultiplies(TorchDispatchMode):
    """Counts element-wise multiplications (aten.mul), one per output value: a measurement of `mul`'s MACs."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.ops.aten.mul.Tensor, torch.ops.aten.mul_.Tensor):
            self.count += out.numel()
        return out


def ort_run(path: Path, x: np.ndarray) -> list[np.ndarray]:
    """The ONNX file at `path` run by onnxruntime (CPU) on `x` as its input named "input"."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})


# the fewest keys each built-in layer type needs: a layer of every kind
MINIMAL = {
    "conv": {"out_channels": 4, "kernel_size": 3},
    "pointwise": {"out_channels": 4},
    "asymmetric": {"out_channels": 4, "kernel_size": [3, 1]},
    "dilated": {"out_channels": 4, "kernel_size": 3, "dilation": 2},
    "depthwise": {"kernel_size": 3},
    "group": {"out_channels": 4, "kernel_size": 3, "groups": 2},
    "separable": {"out_channels": 4, "kernel_size": 3},
    "transposed": {"out_channels": 4, "kernel_size": 2},
    "dynamic": {"out_channels": 4, "kernel_size": 3},
    "fixed": {"filter": "box", "kernel_size": 3},
    "norm": {"kind": "batch"},
    "act": {"fn": "relu"},
    "pool": {"kernel_size": 2},
    "adaptive_pool": {"size": 1},
    "global_pool": {},
    "upsample": {"scale": 2},
    "shuffle": {"groups": 2},
    "split": {"parts": 2},
    "dropout": {},
    "flatten": {},
    "linear": {"out_features": 10},
    "identity": {},
    "add": {"from": ["input", "input"]},
    "concat": {"from": ["input", "input"]},
    "mul": {"from": ["input", "input"]},
    "residual": {"layers": [{"type": "identity"}]},
    "repeat": {"times": 2, "layers": [{"type": "identity"}]},
    "block": {"layers": [{"type": "identity"}]},
}
