"""What every `convspec` command shares: problems printed with their exit status, option values parsed as usage errors."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from .errors import ConvspecError, InputError, Problem

EXIT_INTERNAL = 3
CLI_FORCE = "--force"  # how this command line asks to replace a file (fileio's messages name it)

MAX_MEMORY_HELP = (
    "Refuse to go beyond this much memory (e.g. 8GB; build: the weights; commands that run the model: "
    "weights and activations); default: half of what is available."
)


class CommandState:
    """What the `convspec` group's own options decide for the command it runs (`--debug`)."""

    def __init__(self, debug: bool):
        self.debug = debug


def print_problems(problems: list[Problem]) -> None:
    """Each problem on stderr (a plugin's own traceback first with --debug), then their count when several."""
    state = click.get_current_context(silent=True)
    debug = state is not None and (found := state.find_object(CommandState)) is not None and found.debug
    for problem in problems:
        cause = getattr(problem, "cause", None)  # a plugin's exception (`plugins.PluginProblem`)
        if debug and cause is not None:
            traceback.print_exception(cause)
        click.echo(str(problem), err=True)
    if len(problems) > 1:
        click.echo(f"{len(problems)} problems", err=True)


def handles_errors(command: Callable) -> Callable:
    """Turn every ConvspecError into its message and exit status; other errors into a short note."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = click.get_current_context().find_object(CommandState).debug
        try:
            return command(*args, **kwargs)
        except ConvspecError as err:
            if debug:
                traceback.print_exc()
            print_problems(err.problems)
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


def as_usage_error(parse: Callable[[Any], Any], value: Any, option: str) -> Any:
    """`parse(value)` (one of the API's own argument parsers), its InputError shown as a usage error of `option`."""
    try:
        return parse(value)
    except InputError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def input_shape_option(value: str | None) -> tuple[int, ...] | None:
    """`--input BxCxHxW` as a shape (NCHW, NCL or NCDHW), or None when not given."""
    from .trace import parse_input_shape

    return None if value is None else as_usage_error(parse_input_shape, value, "--input")


def max_memory_option(value: str | None) -> int | None:
    """`--max-memory SIZE` in bytes, or None for the default budget."""
    from .budget import memory_budget

    return as_usage_error(memory_budget, value, "--max-memory")


def seed_option(value: int | None) -> int | None:
    """`--seed N`, checked against torch's seed range."""
    from .limits import seed_argument

    return as_usage_error(seed_argument, value, "--seed")


def spec_options(command: Callable) -> Callable:
    """`--scale NAME` and `--set KEY=VALUE` (repeatable), for every command that reads a spec."""
    command = click.option(
        "--set", "overrides", multiple=True, metavar="KEY=VALUE",
        help="Set a value by layer name (stem.out_channels=48) or top-level key (input.size=[320,320]); repeatable.",
    )(command)
    return click.option("--scale", metavar="NAME", help="Use the preset NAME of the spec's `scales:` (width, depth, max_channels).")(command)


def echo_step(step: Any) -> None:
    """One line per step of an export or a verification (`verify.Step`): name, seconds, what it found."""
    click.echo(f"{step.name:<7}{step.seconds:7.2f} s  {step.detail}")
