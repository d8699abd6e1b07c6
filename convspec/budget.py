"""Memory estimates from the checker's arithmetic, and a budget checked before anything is allocated.

A spec with a typo such as `out_channels: 1000000` must end in a clear error, not in
a MemoryError or the kernel's OOM killer. The estimate is deliberately simple and
conservative: float32 parameters and buffers, plus every layer's output kept at once
(as in a training forward pass).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from .errors import BudgetError, InputError, Problem
from .kinds import registry
from .report import LayerReport, Report
from .source import layer_label

BYTES_PER_VALUE = 4  # float32
BUDGET_SHARE_OF_AVAILABLE = 0.5  # leave room for the framework, a second copy (export), the OS


@dataclass(frozen=True)
class LayerMemory:
    report: LayerReport
    label: str  # "stage.0.conv_0"
    weight_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.weight_bytes + self.activation_bytes


@dataclass(frozen=True)
class MemoryEstimate:
    weight_bytes: int
    activation_bytes: int
    layers: tuple[LayerMemory, ...]

    @property
    def total(self) -> int:
        return self.weight_bytes + self.activation_bytes


def _weight_values(layer: LayerReport) -> int:
    """Parameters plus the buffers its kind says the module holds (fixed kernels, BatchNorm statistics)."""
    kind = registry.get(layer.type)
    return layer.params + (kind.buffers(layer) if kind is not None and layer.plan is not None else 0)


def estimate_memory(report: Report) -> MemoryEstimate:
    """Bytes of weights and of activations (every output at the report's batch; 0 where a size is dynamic)."""
    leaves: list[LayerMemory] = []

    def walk(layers: list[LayerReport], prefix: str) -> None:
        for layer in layers:
            label = prefix + layer.name
            if layer.children:
                walk(layer.children, label + ".")
                continue
            shape = layer.output_shape
            activations = math.prod(shape) if shape is not None and all(s is not None for s in shape) else 0
            leaves.append(LayerMemory(layer, label, _weight_values(layer) * BYTES_PER_VALUE, activations * BYTES_PER_VALUE))

    walk(report.layers, "")
    return MemoryEstimate(sum(m.weight_bytes for m in leaves), sum(m.activation_bytes for m in leaves), tuple(leaves))


# Values an optimizer keeps per trainable parameter, as torch.optim does: SGD with momentum one
# (`momentum_buffer`), Adam two (`exp_avg`, `exp_avg_sq`).
OPTIMIZER_STATES = {"sgd": 1, "adam": 2}


@dataclass(frozen=True)
class TrainingMemory:
    """Bytes one training step holds at the report's batch, float32 throughout.

    The convention of ZeRO (Rajbhandari et al., 2020, section 3): model states are the
    weights (parameters and buffers), one gradient per trainable parameter and the
    optimizer's state (`OPTIMIZER_STATES` values per trainable parameter); the residual
    states counted here are the activations kept for backward, every layer's output
    (as `estimate_memory` counts them; in-place activations and recomputation would
    keep fewer, the framework's workspace more).
    """

    optimizer: str
    weight_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    activation_bytes: int

    @property
    def total(self) -> int:
        return self.weight_bytes + self.gradient_bytes + self.optimizer_bytes + self.activation_bytes


def estimate_training_memory(report: Report, optimizer: str = "adam") -> TrainingMemory:
    """The memory of one training step (`TrainingMemory`), `optimizer` "sgd" (with momentum) or "adam".

    Raises InputError for another optimizer.
    """
    if optimizer not in OPTIMIZER_STATES:
        raise InputError(f"optimizer must be one of {', '.join(OPTIMIZER_STATES)}, not {optimizer!r}")
    inference = estimate_memory(report)
    trainable_bytes = report.trainable_params * BYTES_PER_VALUE
    return TrainingMemory(
        optimizer, inference.weight_bytes, trainable_bytes, OPTIMIZER_STATES[optimizer] * trainable_bytes,
        inference.activation_bytes,
    )


def available_memory() -> int | None:
    """Bytes the system can still give (MemAvailable on Linux), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def default_budget() -> int | None:
    available = available_memory()
    return int(available * BUDGET_SHARE_OF_AVAILABLE) if available else None


def parse_size(text: str) -> int:
    """'8GB', '512 MiB', '2e9' -> bytes (KB, MB, GB, TB: powers of 1000; KiB ... TiB: of 1024).

    Raises ValueError for anything else, including sizes beyond a float (`1e400`).
    """
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+]?[0-9]+)?)\s*([kmgt]i?b?|b)?\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a size like 8GB, 512MiB or 2e9")
    number, unit = float(match.group(1)), (match.group(2) or "b")
    powers = {"b": 0, "k": 1, "m": 2, "g": 3, "t": 4}
    size = number * (1024 if "i" in unit else 1000) ** powers[unit[0]]
    if not math.isfinite(size):  # "1e400" is inf as a float
        raise ValueError(f"{text!r} is too large to be a size; give one like 8GB, 512MiB or 2e9")
    return int(size)


def memory_budget(value: int | float | str | None) -> int | None:
    """The `max_memory` argument of the API and `--max-memory` of the CLI, in bytes (None: the default budget).

    Takes bytes as an int (or a whole-valued float such as 2e9) or a size string
    (`parse_size`: "8GB", "512MiB", "2e9"). Raises InputError for anything else.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return parse_size(value)
        except ValueError as err:
            raise InputError(str(err)) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2e9 written as a float; inf and nan are not integers
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"max_memory must be a number of bytes >= 0 or a size like '8GB', '512MiB' or '2e9', not {value!r}")
    return value


def human(size: float) -> str:
    size = float(size)  # sizes may be ints far beyond a float's exact range; only their magnitude matters here
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(size) < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def enforce_budget(report: Report, max_memory: int | None = None, *, forward: bool = True) -> MemoryEstimate:
    """Raise BudgetError, naming the biggest layers, when what the command allocates exceeds the budget.

    A command that runs the model (export, verify, bench) needs the weights plus every layer's
    output at the report's batch (`forward=True`); building alone allocates the weights
    (parameters and buffers) only, so `build_from_report` passes `forward=False`. The message
    says which was budgeted. `max_memory` is bytes or a size string (`memory_budget`); None means `default_budget()`.
    InputError for a `max_memory` of another kind.
    """
    budget, origin = memory_budget(max_memory), "as given"
    estimate = estimate_memory(report)
    needed = estimate.total if forward else estimate.weight_bytes
    if budget is None:
        budget, origin = default_budget(), "half the memory available now; raise it with --max-memory"
    if budget is None or needed <= budget:
        return estimate
    if forward:
        what = (
            f"building and running this network needs about {human(estimate.total)} ({human(estimate.weight_bytes)} "
            f"weights, {human(estimate.activation_bytes)} activations at batch {report.input_shape[0]})"
        )
    else:
        what = f"building this network allocates about {human(estimate.weight_bytes)} of weights"
    biggest = sorted(estimate.layers, key=lambda m: m.total if forward else m.weight_bytes, reverse=True)[:3]
    named = ", ".join(
        f"{m.label} ({m.report.type}: {human(m.weight_bytes)} weights"
        + (f", {human(m.activation_bytes)} output)" if forward else ")")
        for m in biggest
    )
    message = f"{what}, over the budget of {human(budget)} ({origin}); biggest layers: {named}"
    source = report.spec.source
    if not biggest:
        raise BudgetError([Problem(message, source.locate(()))])
    _, label = layer_label(source.data, biggest[0].report.path) if source.data is not None else ((), None)
    raise BudgetError([Problem(message, source.locate(biggest[0].report.path), label)])


__all__ = ["estimate_memory", "estimate_training_memory", "TrainingMemory", "OPTIMIZER_STATES", "enforce_budget", "default_budget", "memory_budget", "parse_size", "MemoryEstimate"]
