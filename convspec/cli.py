"""The `convspec` command: parse arguments, call the API, print, set the exit status.

Exit status: 0 success; 1 an invalid spec (or a failed verification); 2 a usage
or I/O error; 3 an internal error (a bug: rerun with --debug for the traceback).
Results go to stdout, problems to stderr. torch is imported only by commands
that build a model, so `convspec check` starts fast.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from .opsets import DEFAULT_OPSET  # torch-free, like everything the CLI imports at load
from ._version import __version__
from .errors import ConvspecError, InputError, Problem

EXIT_INTERNAL = 3
CLI_FORCE = "--force"  # how this command line asks to replace a file (fileio's messages name it)


class _State:
    def __init__(self, debug: bool):
        self.debug = debug


def _print_problems(problems: list[Problem]) -> None:
    state = click.get_current_context(silent=True)
    debug = state is not None and (found := state.find_object(_State)) is not None and found.debug
    for problem in problems:
        cause = getattr(problem, "cause", None)  # a plugin's exception (`plugins.PluginProblem`)
        if debug and cause is not None:
            traceback.print_exception(cause)
        click.echo(str(problem), err=True)
    if len(problems) > 1:
        click.echo(f"{len(problems)} problems", err=True)


def _handles_errors(command: Callable) -> Callable:
    """Turn every ConvspecError into its message and exit status; other errors into a short note."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_object(_State).debug
        try:
            return command(*args, **kwargs)
        except ConvspecError as err:
            if debug:
                traceback.print_exc()
            _print_problems(err.problems)
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other tools do
            sys.stderr.close()
            sys.exit(1)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as err:  # a bug in convspec: say so briefly, traceback only on request
            if debug:
                traceback.print_exc()
            else:
                click.echo(f"internal error: {type(err).__name__}: {err} (rerun with --debug for the traceback)", err=True)
            sys.exit(EXIT_INTERNAL)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convspec")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Define convolutional networks in YAML: check them, build them, export them to ONNX."""
    ctx.obj = _State(debug)


def _usage(parse: Callable[[Any], Any], value: Any, option: str) -> Any:
    """`parse(value)` (one of the API's own argument parsers), its InputError shown as a usage error of `option`."""
    try:
        return parse(value)
    except InputError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def _input_shape(value: str | None) -> tuple[int, ...] | None:
    from .trace import parse_input_shape

    return None if value is None else _usage(parse_input_shape, value, "--input")


def _max_memory(value: str | None) -> int | None:
    from .budget import memory_budget

    return _usage(memory_budget, value, "--max-memory")


def _seed(value: int | None) -> int | None:
    from .limits import seed_argument

    return _usage(seed_argument, value, "--seed")


_MAX_MEMORY_HELP = (
    "Refuse to go beyond this much memory (e.g. 8GB; build: the weights; commands that run the model: "
    "weights and activations); default: half of what is available."
)


def _spec_options(command: Callable) -> Callable:
    """`--scale NAME` and `--set KEY=VALUE` (repeatable), for every command that reads a spec."""
    command = click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Set a value by layer name (stem.out_channels=48) or top-level key (input.size=[320,320]); repeatable.",
    )(command)
    return click.option("--scale", metavar="NAME", help="Use the preset NAME of the spec's `scales:` (width, depth, max_channels).")(command)


# ---------------------------------------------------------------- check


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False, allow_dash=False))
@click.option("--input", "input_text", metavar="BxCxHxW", help="Input shape, e.g. 1x3x224x224 (needed when the spec has no input.size).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option(
    "--depth", type=click.IntRange(min=0), metavar="N",
    help="Show nested layers down to depth N (0: top level only); default: every row up to 60 rows, else depth 1.",
)
@click.option(
    "--target", type=click.Choice(["onnx"]),
    help="Also report what this target cannot express (ONNX export limits), located, as spec errors.",
)
@click.option("--opset", type=int, help=f"With --target onnx: the opset to check for (default {DEFAULT_OPSET}).")
@click.option("--dynamic-size", is_flag=True, help="With --target onnx: as exported with dynamic spatial sizes (always so without input.size).")
@click.option("--sizes", is_flag=True, help="Also say which input sizes the spec takes (searched with the checker, per axis).")
@click.option("--flops", is_flag=True, help="Add FLOPs (2 per multiply-accumulate, as torch's FlopCounterMode counts).")
@click.option("--train", is_flag=True, help="Add the memory of a training step: weights, gradients, optimizer state, activations.")
@click.option(
    "--optimizer", type=click.Choice(["sgd", "adam"]),
    help="With --train: the optimizer whose state is counted (sgd: with momentum) [default: adam].",
)
@_spec_options
@_handles_errors
def check(
    spec: str, input_text: str | None, fmt: str, depth: int | None, target: str | None, opset: int | None, dynamic_size: bool,
    sizes: bool, flops: bool, train: bool, optimizer: str | None, scale: str | None, overrides: tuple[str, ...],
) -> None:
    """Validate SPEC and print every layer's shape, parameters, MACs and receptive field."""
    from .input_sizes import input_sizes
    from .report_view import failed_json, render_table, report_json, sizes_json
    from .trace import checked_with_target as check_spec_with_target

    if target is None and (opset is not None or dynamic_size):
        raise click.UsageError("--opset and --dynamic-size go with --target onnx")
    if optimizer is not None and not train:
        raise click.UsageError("--optimizer goes with --train")

    def load_and_check(spec: str, input_shape: tuple[int, ...] | None):
        return check_spec_with_target(
            spec, input_shape, target=target, opset=DEFAULT_OPSET if opset is None else opset, dynamic_size=dynamic_size or None,
            scale=scale, overrides=list(overrides),
        )

    input_shape = _input_shape(input_text)
    if fmt == "json":
        try:
            report = load_and_check(spec, input_shape)
        except ConvspecError as err:
            if isinstance(err, InputError):
                raise
            click.echo(json.dumps(failed_json(spec, err), indent=2))  # a report's keys: scripts need no special case
            sys.exit(1)
        data = report_json(report, flops)
        if sizes:
            data["input_sizes"] = sizes_json(input_sizes(report.spec, report.input_shape))
        click.echo(json.dumps(data, indent=2))
        sys.exit(0 if report.valid else 1)
    report = load_and_check(spec, input_shape)
    if not report.valid:
        _print_problems(report.errors)
        found = input_sizes(report.spec, report.input_shape)
        if found is not None and not found.allows(report.input_shape[2:]):  # the size is at fault: say which would do
            click.echo(f"input sizes that check: {found.describe()}", err=True)
        sys.exit(1)
    render_table(
        report, depth=depth, flops=flops, train=(optimizer or "adam") if train else None,
        sizes=input_sizes(report.spec, report.input_shape) if sizes else None,
    )


# ---------------------------------------------------------------- build


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Save the spec and the state_dict together (a .pt checkpoint).")
@click.option("--seed", type=int, help="Seed the weight initialisation (reproducible weights).")
@click.option("--input", "input_text", metavar="BxCxHxW", help="Input shape for the summary.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--max-memory", "max_memory", metavar="SIZE", help=_MAX_MEMORY_HELP)
@click.option("--memory-format", type=click.Choice(["contiguous", "channels_last"]), help="Override the spec's memory_format.")
@_spec_options
@click.option("--weights", type=click.Path(dir_okay=False), help="Load these weights (a state_dict, .safetensors or checkpoint).")
@_handles_errors
def build(
    spec: str, output: str | None, seed: int | None, input_text: str | None, force: bool, max_memory: str | None,
    memory_format: str | None, scale: str | None, overrides: tuple[str, ...], weights: str | None,
) -> None:
    """Check SPEC, build its nn.Module, print it with the summary."""
    from .fileio import check_readable, check_writable
    from .report_view import render_table
    from .trace import load_and_check

    input_shape, budget, seed = _input_shape(input_text), _max_memory(max_memory), _seed(seed)
    if output:
        check_writable(output, force, protect=spec, force_hint=CLI_FORCE)  # before any work: a destination that cannot be written
    if weights:
        check_readable(weights)
    report = load_and_check(spec, input_shape, require_size=False, scale=scale, overrides=list(overrides))
    report.raise_for_errors()
    parsed = report.spec
    from .builder import build_from_report, count_parameters
    from .checkpoint import save_checkpoint

    model = build_from_report(report, seed=seed, max_memory=budget, memory_format=memory_format)
    if weights:
        from .checkpoint import load_weights_file

        load_weights_file(model, weights)
    path = None
    if output:  # saved before anything is printed, so a failed write prints only its error
        path = save_checkpoint(model, parsed, output, force=force, input_shape=input_shape)
    click.echo(model)
    total, trainable = count_parameters(model)
    render_table(report)
    if path is not None:
        click.echo(f"saved {path} (spec + state_dict, {total:,} parameters, {trainable:,} trainable)")


# ---------------------------------------------------------------- export



@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--weights", type=click.Path(dir_okay=False), help="A state_dict, a .safetensors file or a `convspec build -o` checkpoint to export with.")
@click.option("--opset", type=int, default=DEFAULT_OPSET, show_default=True, help="ONNX opset version.")
@click.option("--no-verify", is_flag=True, help="Skip the checker and onnxruntime parity (not recommended).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@click.option("--dynamic-size", is_flag=True, help="Make the spatial sizes dynamic too (always so without input.size).")
@click.option("--input", "input_text", metavar="BxCxHxW", help="Example input shape (needed when input.size is omitted and no default size fits).")
@click.option("--seed", type=int, help="Seed for the initial weights when no --weights are given [default: 0].")
@click.option("--verbose", is_flag=True, help="Show torch's exporter log and warnings.")
@click.option("--max-memory", "max_memory", metavar="SIZE", help=_MAX_MEMORY_HELP)
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8", "int8-dynamic"]), default="fp32", show_default=True,
              help="Weights and compute of the file; fp16 and int8 are verified against PyTorch float32 with their own tolerance.")
@click.option("--calibration", type=click.Path(exists=True, file_okay=False), metavar="DIR", help="A folder of .npy or image inputs: int8's calibration and the accuracy figures.")
@click.option("--simplify", is_flag=True, help="Simplify the graph with onnxslim, then verify it again.")
@click.option("--rtol", type=click.FloatRange(min=0), help="With --precision: allowed max|diff| as a fraction of max|PyTorch| [default: by precision].")
@click.option("--min-top1", "min_top1", type=click.FloatRange(0, 1), help="With --precision: least top-1 agreement with float32 for classifiers [default: by precision].")
@_spec_options
@_handles_errors
def export(
    spec: str, output: str, weights: str | None, opset: int, no_verify: bool, force: bool, dynamic_size: bool,
    input_text: str | None, seed: int | None, verbose: bool, max_memory: str | None, scale: str | None,
    overrides: tuple[str, ...],
    precision: str, calibration: str | None, simplify: bool, rtol: float | None, min_top1: float | None,
) -> None:
    """Export SPEC to ONNX, verify it (ONNX checker + onnxruntime parity) and write it atomically."""
    from rich.console import Console

    from .fileio import check_readable, check_writable
    from .trace import load_and_check

    input_shape, budget, seed = _input_shape(input_text), _max_memory(max_memory), _seed(seed)
    reduced = precision != "fp32" or simplify
    if no_verify and reduced:
        raise click.UsageError("--precision and --simplify always verify; drop --no-verify")
    if not reduced and (calibration or rtol is not None or min_top1 is not None):
        raise click.UsageError("--calibration, --rtol and --min-top1 go with --precision fp16, int8 or int8-dynamic (or --simplify)")
    check_writable(output, force, protect=spec, force_hint=CLI_FORCE)
    if weights:
        check_readable(weights)  # before the build, not after it
    report = load_and_check(spec, input_shape, require_size=False, scale=scale, overrides=list(overrides))
    report.raise_for_errors()
    status = Console(stderr=True)

    def running(name: str):
        return status.status(f"{name}...", spinner="dots")

    with running("build"):
        from .budget import enforce_budget
        from .builder import build_from_report
        from .checkpoint import load_weights_file
        from .export import export_onnx, running_report

        if seed is None and not weights:
            seed = 0  # reproducible weights by default: `convspec verify` rebuilds them from the seed the file records
        # export runs the model, at the batches it traces and verifies: their activations count, not only the weights
        enforce_budget(running_report(report, input_shape), budget)
        model = build_from_report(report, seed=seed, max_memory=budget)
        if weights:
            load_weights_file(model, weights)

    def show(step) -> None:
        click.echo(f"{step.name:<7}{step.seconds:7.2f} s  {step.detail}")

    if reduced:
        from .precision import export_precision

        export_precision(
            model, report.spec, output, precision=precision, calibration=calibration, simplify=simplify, rtol=rtol,
            min_top1=min_top1, force=force, input_shape=input_shape, seed=None if weights else seed, report=report,
            on_step=show, on_warning=lambda text: click.echo(f"warning: {text}", err=True), running=running,
            opset=opset, dynamic_size=dynamic_size or None, verbose=verbose,
        )
        return
    result = export_onnx(
        model, report.spec, output, opset=opset, verify=not no_verify, force=force,
        dynamic_size=dynamic_size or None, input_shape=input_shape, verbose=verbose, on_step=show, running=running,
        report=report, seed=None if weights else seed,
    )
    if not result.dynamic_spatial:  # the file takes one size; say which others the spec would take
        from .geometry import format_shape
        from .input_sizes import input_sizes

        found = input_sizes(report.spec, report.input_shape)
        fixed = format_shape(report.input_shape[2:])
        also = f"; the spec also takes {found.describe()} (--dynamic-size keeps them)" if found is not None else ""
        click.echo(f"{'sizes':<7}{'':9}  spatial size fixed at {fixed}{also}")  # aligned with the steps' details
    if no_verify:
        click.echo("verification skipped (--no-verify)")


# ---------------------------------------------------------------- verify


@cli.command()
@click.argument("model_file", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", type=click.Path(dir_okay=False), help="The checkpoint, state_dict or .safetensors file the file should compute with.")
@click.option("--seed", type=int, help="Or: the spec's initial weights from this seed (default: the seed the file records).")
@click.option("--input", "input_text", metavar="BxCxHxW", help="Verify at this input shape only.")
@click.option("--rtol", type=click.FloatRange(min=0), default=None, help="Allowed max|diff| as a fraction of max|PyTorch|, per output [default: 1e-3, or the file's precision's].")
@click.option("--atol", type=click.FloatRange(min=0), default=None, help="Allowed max|diff| besides, for outputs near zero [default: 1e-9].")
@click.option("--max-memory", "max_memory", metavar="SIZE", help=_MAX_MEMORY_HELP)
@_spec_options
@_handles_errors
def verify(
    model_file: str, spec: str, weights: str | None, seed: int | None, input_text: str | None, rtol: float | None,
    atol: float | None, max_memory: str | None, scale: str | None, overrides: tuple[str, ...],
) -> None:
    """Re-verify MODEL.onnx against SPEC and its weights: checker, opset, shapes, onnxruntime = PyTorch.

    Exit status 0 verified, 1 not verified (what differs, and by how much), 2 usage or I/O.
    """
    from rich.console import Console

    from .trace import load_and_check

    if weights is not None and seed is not None:
        raise click.UsageError("give --weights or --seed, not both")
    input_shape = _input_shape(input_text)
    report = load_and_check(spec, input_shape, require_size=False, scale=scale, overrides=list(overrides))
    report.raise_for_errors()
    _max_memory(max_memory)  # a malformed size is a usage error before torch loads
    with Console(stderr=True).status("verifying...", spinner="dots"):
        from .verify import verify_onnx

        def show(step) -> None:
            click.echo(f"{step.name:<7}{step.seconds:7.2f} s  {step.detail}")

        verify_onnx(
            model_file, report.spec, weights=weights, seed=seed, input_shape=input_shape, report=report,
            rtol=rtol, atol=atol, on_step=show,
            max_memory=_max_memory(max_memory),
        )
    click.echo(f"verified {model_file} against {spec}")


# ---------------------------------------------------------------- bench


def _batches(value: str) -> tuple[int, ...]:
    from .limits import batches_argument

    return _usage(batches_argument, value, "--batch")


@cli.command(name="bench")
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
@_spec_options
@click.option("--weights", type=click.Path(dir_okay=False), help="Time with these weights (a state_dict, .safetensors or checkpoint).")
@_handles_errors
def bench_command(
    spec: str, batch_text: str, threads: int | None, rounds: int, seconds: float, per_layer: bool, input_text: str | None,
    fmt: str, scale: str | None, overrides: tuple[str, ...], weights: str | None,
) -> None:
    """Latency of SPEC's model in PyTorch eager (NCHW, channels_last) and in onnxruntime, side by side."""
    from rich.console import Console

    from .trace import load_and_check

    batches, input_shape = _batches(batch_text), _input_shape(input_text)
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


@cli.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@_spec_options
@_handles_errors
def resolve(spec: str, scale: str | None, overrides: tuple[str, ...]) -> None:
    """Print SPEC fully resolved (extends merged, --set applied, blocks expanded, --scale applied) as YAML."""
    from .resolved import resolve as resolved_text

    click.echo(resolved_text(spec, scale=scale, overrides=list(overrides)), nl=False)


# ---------------------------------------------------------------- weights


@cli.command()
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
@_spec_options
@_handles_errors
def weights(
    spec: str, source: str, output: str, partial: bool, adapt_input_conv: bool, reset_classifier: bool, seed: int,
    input_text: str | None, force: bool, quiet: bool, scale: str | None, overrides: tuple[str, ...],
) -> None:
    """Map a foreign state_dict (torchvision, timm, ...) onto SPEC's model by order and shapes, and write it.

    Exit status 0 mapped, 1 tensors unmatched or ambiguous (without --partial), 2 usage or I/O.
    """
    from .fileio import check_readable, check_writable
    from .trace import load_and_check

    input_shape, seed = _input_shape(input_text), _seed(seed)
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
        _print_problems(table.problems(source))
    click.echo(f"mapped {table.mapped}/{len(table.rows)} tensors from {source}; wrote {path} ({report.total_params:,} parameters)")


# ---------------------------------------------------------------- import


@cli.command(name="import")
@click.argument("model_file", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The spec to write (YAML).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Also write the weights: .safetensors, or a convspec checkpoint (.pt).")
@click.option("--from-graph", is_flag=True, help="Import the graph even when the file embeds a convspec spec.")
@click.option("--force", is_flag=True, help="Replace existing output files.")
@_handles_errors
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


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE instead of stdout.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@_handles_errors
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


@cli.command()
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
@_spec_options
@_handles_errors
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
    report = load_for_drawing(spec, _input_shape(input_text), scale=scale, overrides=list(overrides))
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


@cli.command()
@click.argument("name", required=False)
@click.option("--kernel-size", type=int, help="Kernel size, for filters that take one.")
@click.option("--sigma", type=float, help="Sigma, for gaussian.")
@click.option("--dims", type=click.IntRange(1, 3), default=2, show_default=True, help="Spatial dims.")
@_handles_errors
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


@cli.command("lsp")
@click.option("--debounce", type=click.FloatRange(0, 10_000), default=10, show_default=True, help="Milliseconds of quiet after a change before checking.")
@_handles_errors
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    _stop_cleanly_on_sigterm()
    cli.main(args=argv, prog_name="convspec")


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM (`kill`, a job scheduler's timeout) ends the command as an exception would: staging
    folders and partial files are removed on the way out, and the exit status is 143 as for
    a default SIGTERM. A handler the embedding program set is left alone."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, stop)


if __name__ == "__main__":  # pragma: no cover
    main()
