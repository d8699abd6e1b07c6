"""The `convspec` commands beside a spec's check, build, export and verify: bench, resolve, weights, import, schema, draw, filters, lsp."""

from __future__ import annotations

import json
from typing import Any

import click

from .cli_support import CLI_FORCE, as_usage_error, handles_errors, input_shape_option, print_problems, seed_option, spec_options
from .errors import ConvspecError, InputError

# ---------------------------------------------------------------- bench


def _batches(value: str) -> tuple[int, ...]:
    from .limits import batches_argument

    return as_usage_error(batches_argument, value, "--batch")


@click.command(name="bench")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--batch", "batch_text", default="1,8", show_default=True, help="Comma-separated batch sizes.")
@click.option("--threads", type=click.IntRange(1, 256), help="Threads for both engines (default: torch's).")
@click.option("--rounds", type=click.IntRange(1, 100), default=7, show_default=True, help="Timed rounds per engine (at most); medians are reported.")
@click.option(
    "--seconds", type=click.FloatRange(0, 3600, min_open=True), default=5.0, show_default=True,
    help="Time budget of the timing, all batches and engines together (export and verification come on top).",
)
@click.option("--per-layer", is_flag=True, help="Also time each top-level layer (PyTorch hooks, onnxruntime's profiler).")
@click.option("--input", "input_text", metavar="BxCxHxW", help="Input shape (when the spec has no input.size).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@spec_options
@click.option("--weights", type=click.Path(dir_okay=False), help="Time with these weights (a state_dict, .safetensors or checkpoint).")
@handles_errors
def bench_command(
    spec: str, batch_text: str, threads: int | None, rounds: int, seconds: float, per_layer: bool, input_text: str | None,
    fmt: str, scale: str | None, overrides: tuple[str, ...], weights: str | None,
) -> None:
    """Latency of SPEC's model in PyTorch eager (NCHW, channels_last) and in onnxruntime, side by side."""
    from rich.console import Console

    from .trace import load_and_check

    batches, input_shape = _batches(batch_text), input_shape_option(input_text)
    if weights:
        from .fileio import check_readable

        check_readable(weights)
    report = load_and_check(spec, input_shape, require_size=False, scale=scale, overrides=list(overrides))
    report.raise_for_errors()  # fail fast, before torch loads
    with Console(stderr=True).status("benchmarking...", spinner="dots"):
        from .bench import bench

        result = bench(
            spec, batches=batches, threads=threads, rounds=rounds, seconds=seconds, input_shape=input_shape, report=report,
            per_layer=per_layer, weights=weights,
        )  # fmt: skip
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    from .bench_view import print_bench

    print_bench(result)


# ---------------------------------------------------------------- resolve


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@spec_options
@handles_errors
def resolve(spec: str, scale: str | None, overrides: tuple[str, ...]) -> None:
    """Print SPEC fully resolved (extends merged, --set applied, blocks expanded, --scale applied) as YAML."""
    from .resolved import resolve as resolved_text

    click.echo(resolved_text(spec, scale=scale, overrides=list(overrides)), nl=False)


# ---------------------------------------------------------------- weights


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--from", "source", required=True, type=click.Path(dir_okay=False), metavar="SOURCE",
              help="The state_dict to map: .pt / .pth (a state_dict or a checkpoint holding one) or .safetensors.")  # fmt: skip
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Where to write the mapped weights: .safetensors, or a convspec checkpoint (.pt).")  # fmt: skip
@click.option("--partial", is_flag=True, help="Write what maps; spec tensors without a source keep their initial weights (--seed).")
@click.option("--adapt-input-conv", is_flag=True, help="Fit the first conv to the spec's input channels (timm's rule: sum for 1, repeat and scale for more).")
@click.option("--reset-classifier", is_flag=True, help="Keep the spec's initial classifier when its class count differs from the source's.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the initial weights kept by --partial / --reset-classifier.")
@click.option("--input", "input_text", metavar="BxCxHxW", help="Input shape (when the spec has no input.size).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--quiet", is_flag=True, help="Print the summary only, not the table.")
@spec_options
@handles_errors
def weights(
    spec: str, source: str, output: str, partial: bool, adapt_input_conv: bool, reset_classifier: bool, seed: int,
    input_text: str | None, force: bool, quiet: bool, scale: str | None, overrides: tuple[str, ...],
) -> None:
    """Map a foreign state_dict (torchvision, timm, ...) onto SPEC's model by order and shapes, and write it.

    Exit status 0 mapped, 1 tensors unmatched or ambiguous (without --partial), 2 usage or I/O.
    """
    from .fileio import check_readable, check_writable
    from .trace import load_and_check

    input_shape, seed = input_shape_option(input_text), seed_option(seed)
    check_writable(output, force, protect=spec, force_hint=CLI_FORCE)
    check_readable(source)
    report = load_and_check(spec, input_shape, require_size=False, scale=scale, overrides=list(overrides))
    report.raise_for_errors()
    from .weights import map_weights, read_source, save_weights

    state = read_source(source)
    mapped, table = map_weights(
        report.spec, state, partial=partial, adapt_input_conv=adapt_input_conv, reset_classifier=reset_classifier,
        seed=seed, report=report, origin=source, registration_order=not source.lower().endswith(".safetensors"),
    )
    path = save_weights(mapped, report, output, force=force, metadata={"spec": report.spec.name or "", "source": source})
    if not quiet:
        for line in table.lines():
            click.echo(line)
    if not table.complete:
        print_problems(table.problems(source))
    click.echo(f"mapped {table.mapped}/{len(table.rows)} tensors from {source}; wrote {path} ({report.total_params:,} parameters)")


# ---------------------------------------------------------------- import


@click.command(name="import")
@click.argument("model_file", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The spec to write (YAML).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Also write the weights: .safetensors, or a convspec checkpoint (.pt).")
@click.option("--from-graph", is_flag=True, help="Import the graph even when the file embeds a convspec spec.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
@handles_errors
def import_command(model_file: str, output: str, weights: str | None, from_graph: bool, force: bool) -> None:
    """Turn MODEL.onnx into a spec (and its weights), proved against onnxruntime on the file.

    Exit status 0 imported, 1 an operator no spec layer expresses (or outputs that differ), 2 usage or I/O.
    """
    from rich.console import Console

    from .fileio import check_readable, check_writable

    check_writable(output, force, protect=model_file, force_hint=CLI_FORCE)
    if weights:
        check_writable(weights, force, protect=model_file, force_hint=CLI_FORCE)
        if weights == output:
            raise click.UsageError("-o and --weights must be different files")
    check_readable(model_file)
    with Console(stderr=True).status("importing...", spinner="dots"):
        from .importer import import_onnx, save_import

        result = import_onnx(model_file, from_graph=from_graph)
        written = save_import(result, output, weights, force=force)
    from .verify import ATOL, RTOL, summarize

    layers = sum(1 for line in result.spec_text.splitlines() if line.startswith("  - "))
    origin = "its embedded spec" if result.embedded else f"{layers} layers"
    click.echo(f"read {model_file}: {origin}, {result.params:,} parameters")
    for note in result.notes:
        click.echo(note)
    click.echo(f"verify {summarize(result.checks, RTOL, ATOL)}")
    click.echo(f"wrote {', '.join(map(str, written))}")


# ---------------------------------------------------------------- schema


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@handles_errors
def schema(output: str | None, force: bool) -> None:
    """Print the JSON Schema of the spec format (for editors: yaml-language-server)."""
    from .fileio import atomic_write_text
    from .schema_json import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        atomic_write_text(output, text, force=force, force_hint=CLI_FORCE)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


# ---------------------------------------------------------------- draw

MERMAID_SUFFIXES = (".mmd", ".mermaid")


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True), help="The file to write (- for stdout).")
@click.option(
    "--format", "fmt", type=click.Choice(["svg", "mermaid"]),
    help="svg (default) or mermaid (a Mermaid flowchart); default mermaid for a .mmd or .mermaid file.",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--collapse/--no-collapse", default=None, help="Draw identical repeat copies once with a ×N badge (default: beyond 40 boxes).")
@click.option("--input", "input_text", metavar="BxCxHxW", help="Input shape for the shapes shown (when the spec has no input.size, sizes are ?).")
@click.option(
    "--direction", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB", show_default=True,
    help="TB: top to bottom, a long chain wrapped into columns; LR: the top level left to right.",
)
@spec_options
@handles_errors
def draw(
    spec: str, output: str, fmt: str | None, force: bool, collapse: bool | None, input_text: str | None, direction: str,
    scale: str | None, overrides: tuple[str, ...],
) -> None:
    """Draw SPEC's network: every layer with its shape, the wiring, groups and frozen layers (SVG or Mermaid).

    An invalid spec is drawn too, its wrong layers in red and its problems listed; the exit status is then 1.
    """
    from pathlib import Path

    from .draw import diagram, to_mermaid, to_svg
    from .errors import SpecError
    from .fileio import atomic_write_text, check_writable
    from .trace import load_for_drawing

    to_stdout = output == "-"
    if not to_stdout:
        check_writable(output, force, protect=spec, force_hint=CLI_FORCE)
    if fmt is None:
        fmt = "mermaid" if Path(output).suffix.lower() in MERMAID_SUFFIXES else "svg"
    report = load_for_drawing(spec, input_shape_option(input_text), scale=scale, overrides=list(overrides))
    picture = diagram(report, collapse, direction.upper())
    text = to_svg(picture) if fmt == "svg" else to_mermaid(picture)
    if to_stdout:
        click.echo(text, nl=False)
    else:
        atomic_write_text(output, text, force=force, force_hint=CLI_FORCE)
        folded = "; identical repeat copies drawn once" if picture.collapsed else ""
        marked = f"; {len(report.errors)} problem{'s' if len(report.errors) != 1 else ''} marked" if report.errors else ""
        click.echo(f"wrote {output} ({fmt}: {len(picture.layers())} layers, {len(picture.edges())} edges{folded}{marked})")
    if report.errors:  # the picture is written, the spec is still invalid
        raise SpecError(report.errors)


# ---------------------------------------------------------------- filters


@click.command()
@click.argument("name", required=False)
@click.option("--kernel-size", type=int, help="Kernel size, for filters that take one.")
@click.option("--sigma", type=float, help="Sigma, for gaussian.")
@click.option("--dims", type=click.IntRange(1, 3), default=2, show_default=True, help="Spatial dims.")
@handles_errors
def filters(name: str | None, kernel_size: int | None, sigma: float | None, dims: int) -> None:
    """List the named filters, or print one filter's values."""
    from . import kernels

    if name is None:
        width = max(len(n) for n in kernels.NAMED_FILTERS)
        for info in kernels.NAMED_FILTERS.values():
            takes = [k for k, flag in (("kernel_size", info.takes_kernel_size), ("sigma", info.takes_sigma)) if flag]
            extra = f"  [{', '.join(takes)}]" if takes else ""
            dims_text = "/".join(f"{d}D" for d in info.dims)
            click.echo(f"{info.name:<{width}}  {dims_text:<8}  {info.description}{extra}")
        return
    try:
        values = kernels.make_filter(name, dims, kernel_size, sigma)
    except kernels.FilterError as err:
        raise ConvspecError(str(err)) from None  # a wrong name or value: exit 1, as for a spec
    click.echo(_format_kernel(values))


@click.command("lsp")
@click.option("--debounce", type=click.FloatRange(0, 10_000), default=10, show_default=True, help="Milliseconds of quiet after a change before checking.")
@handles_errors
def lsp_command(debounce: float) -> None:
    """Run the language server over stdio (editors start it; see docs/editor.md)."""
    try:
        from .lsp import serve
    except ImportError as err:
        raise InputError(f"convspec lsp needs pygls and lsprotocol ({err.name or 'pygls'} is missing): pip install 'convspec[lsp]'") from None
    serve(debounce / 1000)


def _format_kernel(values: Any, indent: int = 0) -> str:
    if values and isinstance(values[0], list) and values[0] and isinstance(values[0][0], list):
        return "\n\n".join(_format_kernel(plane) for plane in values)
    rows = values if values and isinstance(values[0], list) else [values]
    cells = [[f"{v:.6g}" for v in row] for row in rows]
    width = max(len(c) for row in cells for c in row)
    return "\n".join("  ".join(c.rjust(width) for c in row) for row in cells)


# registered on the `convspec` group by `cli`
TOOL_COMMANDS = (bench_command, resolve, weights, import_command, schema, draw, filters, lsp_command)
