"""The `convspec` command: parse arguments, call the API, print, set the exit status.

Exit status: 0 success; 1 an invalid spec (or a failed verification); 2 a usage
or I/O error; 3 an internal error (a bug: rerun with --debug for the traceback).
Results go to stdout, problems to stderr. torch is imported only by commands
that build a model, so `convspec check` starts fast. This module holds the group
and the commands of a spec's life (check, build, export, verify); `cli_tools`
the others, `cli_support` what they all share.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from . import cli_tools
from .opsets import DEFAULT_OPSET  # torch-free, like everything the CLI imports at load
from ._version import __version__
from .cli_support import (
    CLI_FORCE,
    MAX_MEMORY_HELP,
    CommandState,
    echo_step,
    handles_errors,
    input_shape_option,
    max_memory_option,
    print_problems,
    seed_option,
    spec_options,
)
from .errors import ConvspecError, InputError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convspec")
@click.option("--debug", is_flag=True, help="Show Python tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Define convolutional networks in YAML: check them, build them, export them to ONNX."""
    ctx.obj = CommandState(debug)


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
@spec_options
@handles_errors
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

    input_shape = input_shape_option(input_text)
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
        print_problems(report.errors)
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
@click.option("--max-memory", "max_memory", metavar="SIZE", help=MAX_MEMORY_HELP)
@click.option("--memory-format", type=click.Choice(["contiguous", "channels_last"]), help="Override the spec's memory_format.")
@spec_options
@click.option("--weights", type=click.Path(dir_okay=False), help="Load these weights (a state_dict, .safetensors or checkpoint).")
@handles_errors
def build(
    spec: str, output: str | None, seed: int | None, input_text: str | None, force: bool, max_memory: str | None,
    memory_format: str | None, scale: str | None, overrides: tuple[str, ...], weights: str | None,
) -> None:
    """Check SPEC, build its nn.Module, print it with the summary."""
    from .fileio import check_readable, check_writable
    from .report_view import render_table
    from .trace import load_and_check

    input_shape, budget, seed = input_shape_option(input_text), max_memory_option(max_memory), seed_option(seed)
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
@click.option("--max-memory", "max_memory", metavar="SIZE", help=MAX_MEMORY_HELP)
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8", "int8-dynamic"]), default="fp32", show_default=True,
              help="Weights and compute of the file; fp16 and int8 are verified against PyTorch float32 with their own tolerance.")
@click.option("--calibration", type=click.Path(exists=True, file_okay=False), metavar="DIR", help="A folder of .npy or image inputs: int8's calibration and the accuracy figures.")
@click.option("--simplify", is_flag=True, help="Simplify the graph with onnxslim, then verify it again.")
@click.option("--rtol", type=click.FloatRange(min=0), help="With --precision: allowed max|diff| as a fraction of max|PyTorch| [default: by precision].")
@click.option("--min-top1", "min_top1", type=click.FloatRange(0, 1), help="With --precision: least top-1 agreement with float32 for classifiers [default: by precision].")
@spec_options
@handles_errors
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

    input_shape, budget, seed = input_shape_option(input_text), max_memory_option(max_memory), seed_option(seed)
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

    if seed is None and not weights:
        seed = 0  # reproducible weights by default: `convspec verify` rebuilds them from the seed the file records
    with running("build"):
        model = _model_to_export(report, input_shape, seed, weights, budget)
    if reduced:
        from .precision import export_precision

        export_precision(
            model, report.spec, output, precision=precision, calibration=calibration, simplify=simplify, rtol=rtol,
            min_top1=min_top1, force=force, input_shape=input_shape, seed=None if weights else seed, report=report,
            on_step=echo_step, on_warning=lambda text: click.echo(f"warning: {text}", err=True), running=running,
            opset=opset, dynamic_size=dynamic_size or None, verbose=verbose,
        )
        return
    from .export import export_onnx

    result = export_onnx(
        model, report.spec, output, opset=opset, verify=not no_verify, force=force,
        dynamic_size=dynamic_size or None, input_shape=input_shape, verbose=verbose, on_step=echo_step, running=running,
        report=report, seed=None if weights else seed,
    )
    if not result.dynamic_spatial:  # the file takes one size; say which others the spec would take
        _echo_fixed_size(report)
    if no_verify:
        click.echo("verification skipped (--no-verify)")


def _model_to_export(report: Any, input_shape: tuple[int, ...] | None, seed: int | None, weights: str | None, budget: int | None) -> Any:
    """The nn.Module `export` writes, built from `report` (seeded) with `weights` loaded; raises BudgetError first
    when the batches export traces and verifies would need more memory (bytes) than `budget`."""
    from .budget import enforce_budget
    from .builder import build_from_report
    from .checkpoint import load_weights_file
    from .export import running_report

    # export runs the model, at the batches it traces and verifies: their activations count, not only the weights
    enforce_budget(running_report(report, input_shape), budget)
    model = build_from_report(report, seed=seed, max_memory=budget)
    if weights:
        load_weights_file(model, weights)
    return model


def _echo_fixed_size(report: Any) -> None:
    """The line after a fixed-size export: the spatial size the file takes, and the others the spec would."""
    from .geometry import format_shape
    from .input_sizes import input_sizes

    found = input_sizes(report.spec, report.input_shape)
    fixed = format_shape(report.input_shape[2:])
    also = f"; the spec also takes {found.describe()} (--dynamic-size keeps them)" if found is not None else ""
    click.echo(f"{'sizes':<7}{'':9}  spatial size fixed at {fixed}{also}")  # aligned with the steps' details


# ---------------------------------------------------------------- verify


@cli.command()
@click.argument("model_file", metavar="MODEL.onnx", type=click.Path(dir_okay=False))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--weights", type=click.Path(dir_okay=False), help="The checkpoint, state_dict or .safetensors file the file should compute with.")
@click.option("--seed", type=int, help="Or: the spec's initial weights from this seed (default: the seed the file records).")
@click.option("--input", "input_text", metavar="BxCxHxW", help="Verify at this input shape only.")
@click.option("--rtol", type=click.FloatRange(min=0), default=None, help="Allowed max|diff| as a fraction of max|PyTorch|, per output [default: 1e-3, or the file's precision's].")
@click.option("--atol", type=click.FloatRange(min=0), default=None, help="Allowed max|diff| besides, for outputs near zero [default: 1e-9].")
@click.option("--max-memory", "max_memory", metavar="SIZE", help=MAX_MEMORY_HELP)
@spec_options
@handles_errors
def verify(
    model_file: str, spec: str, weights: str | None, seed: int | None, input_text: str | None, rtol: float | None,
    atol: float | None, max_memory: str | None, scale: str | None, overrides: tuple[str, ...],
) -> None:
    """Re-verify MODEL.onnx against SPEC and its weights: checker, opset, shapes, onnxruntime = PyTorch.

    Exit status 0 verified, 1 not verified (what differs, and by how much), 2 usage or I/O.
    """
    from rich.console import Console

    from .trace import report_for_input

    if weights is not None and seed is not None:
        raise click.UsageError("give --weights or --seed, not both")
    input_shape = input_shape_option(input_text)
    report = report_for_input(spec, input_shape, scale=scale, overrides=list(overrides))
    max_memory_option(max_memory)  # a malformed size is a usage error before torch loads
    with Console(stderr=True).status("verifying...", spinner="dots"):
        from .verify import verify_onnx

        verify_onnx(
            model_file, report.spec, weights=weights, seed=seed, input_shape=input_shape, report=report,
            rtol=rtol, atol=atol, on_step=echo_step,
            max_memory=max_memory_option(max_memory),
        )
    click.echo(f"verified {model_file} against {spec}")


for _tool in cli_tools.TOOL_COMMANDS:  # one group: `convspec --help` lists every command
    cli.add_command(_tool)


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
