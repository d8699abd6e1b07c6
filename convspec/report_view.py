"""How a check report reads: a table for people, JSON for machines."""

from __future__ import annotations

import sys

from .geometry import format_shape as _shape
from .shapes import LayerReport, Report


def report_json(report: Report) -> dict:
    """The report as `check --format json` prints it; a layer of a kind from outside convspec says which `package` declared it."""
    data = report.to_dict()
    _add_packages(report.layers, data["layers"])
    return data


def _add_packages(layers: list[LayerReport], entries: list[dict]) -> None:
    from .plugins import kind_package

    for layer, entry in zip(layers, entries):
        package = kind_package(layer.type)
        if package is not None:
            entry["package"] = package
        _add_packages(layer.children, entry["children"])


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


def render_table(report: Report, file=None, depth: int | None = None) -> None:
    """Print the per-layer table with totals (rich when the output is a terminal, plain otherwise).

    `depth` limits the nested rows shown (0: top level only); by default a table of more
    than FOLD_FROM rows shows the top level and one level of nesting. A folded layer
    reads `name (+N)`, N being the rows folded under it, and a note counts them all.
    """
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file or sys.stdout, width=140 if not (file or sys.stdout).isatty() else None)
    spec = report.spec
    title = f"{spec.name or spec.source.file}: input {_shape(report.input_shape)}"
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, box=None, header_style="bold")
    for heading, justify in (
        ("layer", "left"), ("type", "left"), ("output", "left"), ("params", "right"),
        ("MACs", "right"), ("RF", "right"), ("stride", "right"),
    ):  # fmt: skip
        table.add_column(heading, justify=justify, no_wrap=True)
    limit = table_depth(report, depth)
    folded = 0
    for level, layer in _rows(report.layers, limit=limit):
        hidden = _count(layer.children) if limit is not None and level == limit else 0
        folded += hidden
        table.add_row(
            "  " * level + layer.name + (f" (+{hidden})" if hidden else ""),
            layer.type,
            _shape(layer.output_shape) + _requested(layer),
            _params(layer),
            f"{layer.macs:,}",
            _figures(layer.receptive_field),
            _figures(layer.stride),
        )
    console.print(table)
    if folded:
        console.print(
            f"{folded:,} nested rows folded (+N: rows under a layer; showing depth {limit}); "
            f"--depth {_deepest(report.layers)} shows every row",
            highlight=False,
        )
    frozen = report.total_params - report.trainable_params
    outputs = ", ".join(f"{name} {_shape(shape)}" for name, shape in report.outputs.items())
    from .budget import estimate_memory, human

    memory = estimate_memory(report)
    console.print(
        f"total: {report.total_params:,} parameters ({report.trainable_params:,} trainable"
        f"{f', {frozen:,} frozen' if frozen else ''}), {report.total_macs:,} MACs; outputs: {outputs}",
        highlight=False,
    )
    console.print(
        f"memory: about {human(memory.weight_bytes)} of weights and {human(memory.activation_bytes)} of activations "
        f"(float32, every output kept, batch {report.input_shape[0]})",
        highlight=False,
    )
