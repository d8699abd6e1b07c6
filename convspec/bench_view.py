"""`convspec bench`'s tables: the engines side by side, and with `--per-layer` each layer's time (rich)."""

from __future__ import annotations

import io

import click
from rich.console import Console
from rich.table import Table

from .bench import BenchResult


def _table(*headings: str) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for heading in headings:
        table.add_column(heading, justify="left" if heading in ("engine", "layer", "type", "note") else "right")
    return table


def _print(table: Table) -> None:
    """The table on stdout, without the blanks rich pads its last column with."""
    buffer = io.StringIO()
    Console(file=buffer, width=120).print(table)
    click.echo("\n".join(line.rstrip() for line in buffer.getvalue().splitlines()))


def _load_text(result: BenchResult) -> str:
    load = result.load
    if load is None or load.before is None:
        return "load average unknown"
    return f"load average {load.before:.2f} before, {load.after:.2f} after, {load.cores} cores"


def print_bench(result: BenchResult) -> None:
    """The timings table (median, middle half of the rounds, ratio, GMAC/s), then the per-layer table if any."""
    shape = "x".join(map(str, result.input_shape))
    threads = f"{result.threads} thread{'s' if result.threads != 1 else ''}"
    click.echo(f"{result.spec}: input Bx{shape}, {threads}, timing budget {result.seconds:g} s; {_load_text(result)}")
    table = _table("batch", "engine", "latency", "middle half", "rounds", "vs eager", "GMAC/s")
    for t in result.timings:
        table.add_row(
            str(t.batch), t.engine, f"{t.median_ms:.3f} ms", f"{t.q1_ms:.3f}-{t.q3_ms:.3f}", f"{t.rounds}x{t.calls_per_round}",
            f"{t.ratio:.2f}x", f"{t.gmacs_per_s:.1f}",
        )  # fmt: skip
    _print(table)
    if not result.layers:
        return
    click.echo("")
    click.echo("per layer (top-level layers, median ms per call; share of the engine's layer total):")
    layers = _table("batch", "layer", "type", "eager", "share", "onnxruntime", "share", "note")
    eager = {(t.batch, t.layer): t for t in result.layers if t.engine == "eager"}
    for row in (t for t in result.layers if t.engine == "onnxruntime"):
        mine = eager.get((row.batch, row.layer))
        layers.add_row(
            str(row.batch), row.layer, row.type, f"{mine.median_ms:.3f}" if mine else "-", f"{mine.share:.0%}" if mine else "-",
            f"{row.median_ms:.3f}", f"{row.share:.0%}", row.note,
        )  # fmt: skip
    _print(layers)
