"""How a check report reads: a table for people, JSON for machines."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConvspecError, SpecError
from .geometry import FLOPS_PER_MAC
from .geometry import format_shape as _shape
from .plans import ConvPlan, DynamicPlan, FixedPlan, PoolPlan, SeparablePlan
from .report import LayerReport, Report

if TYPE_CHECKING:  # input_sizes imports trace; the table only reads what it found
    from rich.table import Table

    from .input_sizes import InputSizes


def report_json(report: Report, flops: bool = False) -> dict:
    """The report as `check --format json` prints it; a layer of a kind from outside convspec says which
    `package` declared it; with `flops`, each layer's `flops` and `total_flops` too."""
    data = report.to_dict()  # a layer of a kind from outside convspec names its `package` there
    if flops:

        def add(layers: list[dict]) -> None:
            for layer in layers:
                layer["flops"] = FLOPS_PER_MAC * layer["macs"]
                add(layer["children"])

        add(data["layers"])
        data["total_flops"] = FLOPS_PER_MAC * data["total_macs"]
    return data


def failed_json(spec: str, error: SpecError) -> dict:
    """The JSON of a spec that could not be traced: a report's keys, no layers, every problem.

    `name` is the spec's `name` where the file gives one as text, else the file's stem (the
    format's default), so scripts can tell which network failed.
    """
    return {
        "spec": spec, "name": _declared_name(spec), "valid": False, "input_shape": None, "layers": [], "outputs": {},
        "total_params": 0, "trainable_params": 0, "total_macs": 0,
        "errors": [p.to_dict() for p in error.problems],
    }  # fmt: skip


def _declared_name(spec: str) -> str:
    from .source import read_spec_file

    try:
        data, _ = read_spec_file(spec)
    except ConvspecError:
        data = None  # unreadable YAML: its problems are listed; the default name still says which file
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else Path(spec).stem


def _figures(values: tuple) -> str:
    parts = []
    for v in values:
        if v is None:
            parts.append("?")
        elif v.denominator == 1:
            parts.append(str(v.numerator))
        else:
            parts.append(f"{float(v):.3g}")
    return "x".join(parts) if len(set(parts)) > 1 else (parts[0] if parts else "")


def _ints(values: tuple[int, ...] | None) -> str:
    """(3, 3) -> '3x3': every entry shown, as torchinfo's kernel column does; '' for none."""
    return "x".join(map(str, values)) if values else ""


def kernel_and_stride(layer: LayerReport) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """A layer's own kernel_size and stride (per spatial dim) as its module has them; None for a layer without.

    A separable layer shows its depthwise stage's (the pointwise stage is 1x1, stride 1).
    """
    plan = layer.plan
    if isinstance(plan, SeparablePlan):
        plan = plan.depthwise
    if isinstance(plan, (ConvPlan, DynamicPlan, FixedPlan)):
        return plan.geometry.kernel_size, plan.geometry.stride
    if isinstance(plan, PoolPlan):
        return plan.kernel_size, plan.stride
    return None, None


format_figures = _figures  # receptive fields and strides read the same in the editor's hovers

FOLD_FROM = 60  # a longer table shows the top level and one level of nesting, unless a depth is asked for


def _rows(layers: list[LayerReport], depth: int = 0, limit: int | None = None):
    for layer in layers:
        yield depth, layer
        if limit is None or depth < limit:
            yield from _rows(layer.children, depth + 1, limit)


def _count(layers: list[LayerReport]) -> int:
    return sum(1 + _count(layer.children) for layer in layers)


def _deepest(layers: list[LayerReport], depth: int = 0) -> int:
    return max((max(depth, _deepest(layer.children, depth + 1)) for layer in layers), default=depth - 1)


def table_depth(report: Report, depth: int | None = None) -> int | None:
    """The deepest nesting the table shows (0: top level only), or None for every row."""
    if depth is not None:
        return None if depth >= _deepest(report.layers) else depth
    return None if _count(report.layers) <= FOLD_FROM else 1


def _params(layer: LayerReport) -> str:
    frozen = layer.params - layer.trainable_params
    text = f"{layer.params:,}"
    if frozen:
        text += " (frozen)" if frozen == layer.params else f" ({frozen:,} frozen)"
    return text


def _requested(layer: LayerReport) -> str:
    """' (out 64 -> 16)' where a `--scale` preset changed what the spec asked for; else ''."""
    if not layer.requested:
        return ""
    notes = []
    if "out_channels" in layer.requested and layer.output_shape is not None:
        notes.append(f"out {layer.requested['out_channels']} -> {layer.output_shape[1]}")
    if "times" in layer.requested:
        notes.append(f"times {layer.requested['times']} -> {sum(c.role == 'copy' for c in layer.children)}")
    return f" ({', '.join(notes)})" if notes else ""


def render_table(
    report: Report, file=None, depth: int | None = None, *, flops: bool = False, train: str | None = None,
    sizes: InputSizes | None = None,
) -> None:
    """Print the per-layer table with totals: rich's styling on a terminal, `table_text` otherwise."""
    out = file or sys.stdout
    if out.isatty():
        from rich.console import Console

        console = Console(file=out)
        for item in _renderables(report, depth, flops, train, sizes):
            console.print(item)
    else:
        out.write(table_text(report, depth, flops=flops, train=train, sizes=sizes))


def table_text(
    report: Report, depth: int | None = None, *, flops: bool = False, train: str | None = None,
    sizes: InputSizes | None = None,
) -> str:
    """The table as plain text (what `convspec check` prints to a file or pipe), no trailing spaces.

    `depth` limits the nested rows shown (0: top level only); by default a table of more
    than FOLD_FROM rows shows the top level and one level of nesting. A folded layer
    reads `name (+N)`, N being the rows folded under it, and a note says so. `flops` adds
    a FLOPs column (`FLOPS_PER_MAC` x MACs); `train` ("sgd" or "adam") adds the memory of a
    training step with that optimizer (`budget.estimate_training_memory`); `sizes` (an
    `input_sizes.InputSizes`) the input sizes the spec takes.
    """
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=1000, no_color=True, highlight=False)  # wide: rows never wrap in a file
    for item in _renderables(report, depth, flops, train, sizes):
        console.print(item)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _layer_table(report: Report, depth: int | None, flops: bool) -> tuple[Table, int, int | None]:
    """The per-layer rich Table, the number of nested rows folded away, and the depth shown (None: all)."""
    from rich.table import Table

    spec = report.spec
    title = f"{spec.name or spec.source.file}: input {_shape(report.input_shape)}"
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, box=None, header_style="bold")
    columns = [
        ("layer", "left"), ("type", "left"), ("output", "left"), ("kernel", "right"), ("stride", "right"),
        ("params", "right"), ("MACs", "right"), ("FLOPs", "right"), ("RF", "right"), ("RF stride", "right"),
    ]  # fmt: skip
    if not flops:
        columns.remove(("FLOPs", "right"))
    for heading, justify in columns:
        table.add_column(heading, justify=justify, no_wrap=True)
    limit = table_depth(report, depth)
    folded = 0
    for level, layer in _rows(report.layers, limit=limit):
        hidden = _count(layer.children) if limit is not None and level == limit else 0
        folded += hidden
        kernel, stride = kernel_and_stride(layer)
        cells = [
            "  " * level + layer.name + (f" (+{hidden})" if hidden else ""), layer.type, _shape(layer.output_shape) + _requested(layer),
            _ints(kernel), _ints(stride), _params(layer), f"{layer.macs:,}",
        ]  # fmt: skip
        if flops:
            cells.append(f"{FLOPS_PER_MAC * layer.macs:,}")
        table.add_row(*cells, _figures(layer.receptive_field), _figures(layer.stride))
    return table, folded, limit


def _memory_notes(report: Report, train: str | None) -> list[str]:
    """The memory lines under the table: inference (weights, activations), and a training step with `train`."""
    from .budget import estimate_memory, estimate_training_memory, human

    memory = estimate_memory(report)
    notes = [
        f"memory: about {human(memory.weight_bytes)} of weights and {human(memory.activation_bytes)} of activations "
        f"(float32, every output kept, batch {report.input_shape[0]})"
    ]
    if train is not None:
        step = estimate_training_memory(report, train)
        notes.append(
            f"training ({train}): about {human(step.total)}: {human(step.weight_bytes)} weights, "
            f"{human(step.gradient_bytes)} gradients, {human(step.optimizer_bytes)} optimizer state, "
            f"{human(step.activation_bytes)} activations kept for backward (float32, batch {report.input_shape[0]})"
        )
    return notes


def _renderables(report: Report, depth: int | None, flops: bool, train: str | None, sizes: InputSizes | None = None) -> list:
    """The table and the lines under it (folded rows, column notes, totals, memory, input sizes) as rich renderables."""
    from rich.text import Text

    table, folded, limit = _layer_table(report, depth, flops)
    notes = []
    if folded:
        notes.append(
            f"{folded:,} nested rows folded (NAME (+N): N rows under that layer; showing depth {limit}); "
            f"--depth {_deepest(report.layers)} shows every row"
        )
    notes.append("kernel, stride: the layer's own; RF, RF stride: receptive field and effective stride in input pixels")
    frozen = report.total_params - report.trainable_params
    outputs = ", ".join(f"{name} {_shape(shape)}" for name, shape in report.outputs.items())
    flops_text = f", {FLOPS_PER_MAC * report.total_macs:,} FLOPs ({FLOPS_PER_MAC} per MAC)" if flops else ""
    notes.append(
        f"total: {report.total_params:,} parameters ({report.trainable_params:,} trainable"
        f"{f', {frozen:,} frozen' if frozen else ''}), {report.total_macs:,} MACs{flops_text}; outputs: {outputs}"
    )
    notes.extend(_memory_notes(report, train))
    if sizes is not None:
        notes.append(f"input sizes: {sizes.describe()}")
    return [table, *(Text(note) for note in notes)]


def sizes_json(sizes: InputSizes | None) -> dict | None:
    """An `input_sizes.InputSizes` as JSON: each axis's smallest size and step (null where none was found)."""
    if sizes is None:
        return None
    return {
        "text": sizes.describe(),
        "axes": [
            {"axis": a.axis, "smallest": a.smallest, "step": a.step, "fixed": a.fixed, "searched_up_to": a.searched, "irregular": list(a.irregular) or None}
            for a in sizes.axes
        ],
    }


def to_json_text(report: Report, flops: bool = False) -> str:
    """`report_json` as indented JSON text."""
    return json.dumps(report_json(report, flops), indent=2)
