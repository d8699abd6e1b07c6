"""Side-by-side latency: PyTorch eager (NCHW and channels_last) and onnxruntime, same threads, one run.

Each engine is timed in its own block of calls; blocks are interleaved over rounds
(engine A, B, C, then A, B, C again ...) so a noisy machine hurts every engine alike,
and the median per engine is reported with the ratios against eager NCHW, the spread
of the rounds (quartiles, min, max) and the machine's load average before and after.

The timing has a budget, `seconds`, shared equally by every (batch, engine) pair:
each pair's calibration (several calls) and its rounds fit in its share, so a slow
model gets fewer rounds or calls, never a longer run. `per_layer` adds the time of
each top-level spec layer in both engines (`bench_layers.py`).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .bench_layers import LayerTiming, eager_layer_times, onnxruntime_layer_times
from .budget import enforce_budget
from .example_inputs import example_shape
from .export import export_onnx
from .limits import batches_argument, number_argument, seed_argument, whole_argument
from .verify import session_options
from .report import Report
from .trace import check_spec, checked_report

MAX_THREADS = 256
MAX_ROUNDS = 100
DEFAULT_SECONDS = 5.0  # the timing budget of a whole run (seconds); export and verification come on top
MAX_SECONDS = 3600.0
CALIBRATION_SHARE = 0.1  # of a pair's budget, at most, spent finding the time of one call
CALIBRATION_CALLS = 5  # timed calls for the calibration, at most (at least 2, after one warm-up call)
MAX_CALLS = 1000  # calls in one timed block
NOISY_SPREAD = 0.25  # interquartile range over median beyond which a figure is flagged
OVERRUN = 1.5  # a batch's rounds stop once they take this many times their share (the machine slowed down)


@dataclass
class EngineTiming:
    """One engine at one batch: the median time of one call (ms) and how it was measured."""

    engine: str
    batch: int
    median_ms: float
    ratio: float  # median / eager NCHW median at the same batch
    gmacs_per_s: float
    rounds: int  # rounds timed (fewer than asked when the budget could not pay for them)
    calls_per_round: int
    calibration_ms: float  # the median of the calibration calls: what the rounds and calls were planned from
    q1_ms: float  # quartiles of the rounds' times per call (the median when there is one round)
    q3_ms: float
    min_ms: float
    max_ms: float

    @property
    def spread(self) -> float:
        """Interquartile range over median: 0.1 means the middle half of the rounds lie within 10% of the median."""
        return (self.q3_ms - self.q1_ms) / self.median_ms if self.median_ms else 0.0


@dataclass
class Load:
    """The machine's load average over 1 minute (runnable processes), from `os.getloadavg`, and its cores."""

    before: float | None
    after: float | None
    cores: int


@dataclass
class BenchResult:
    spec: str
    input_shape: tuple[int, ...]
    threads: int
    macs_per_sample: int
    timings: list[EngineTiming]
    seconds: float = DEFAULT_SECONDS  # the timing budget the run kept to
    load: Load | None = None
    warnings: list[str] = field(default_factory=list)
    layers: list[LayerTiming] = field(default_factory=list)  # with `per_layer` only

    def to_dict(self) -> dict:
        return {
            "spec": self.spec, "input_shape": list(self.input_shape), "threads": self.threads,
            "macs_per_sample": self.macs_per_sample, "seconds": self.seconds,
            "load": asdict(self.load) if self.load is not None else None, "warnings": list(self.warnings),
            "timings": [{**asdict(t), "spread": round(t.spread, 4)} for t in self.timings],
            "layers": [asdict(layer) for layer in self.layers],
        }  # fmt: skip


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def plan_rounds(once: float, share: float, rounds: int, block_seconds: float) -> tuple[int, int]:
    """(rounds, calls per round) whose timed calls take about `share` seconds at `once` seconds a call.

    At most `rounds` rounds and MAX_CALLS calls a block; a block lasts at most about `block_seconds`;
    `rounds * calls * once` stays within `share` unless a single call already exceeds it (then one call).
    """
    once = max(once, 1e-9)
    affordable = max(1, int(share / once))  # calls the share pays for
    rounds = max(1, min(rounds, affordable))
    calls = max(1, min(MAX_CALLS, affordable // rounds, int(block_seconds / once)))
    return rounds, calls


def _calibrate(fn: Callable[[], Any], budget: float) -> tuple[float, float]:
    """(median seconds of one call, seconds spent): one warm-up call, then 2 to CALIBRATION_CALLS timed calls within `budget`."""
    started = time.perf_counter()
    fn()
    durations: list[float] = []
    while len(durations) < CALIBRATION_CALLS:
        began = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - began)
        if len(durations) >= 2 and time.perf_counter() - started >= budget:
            break
    return statistics.median(durations), time.perf_counter() - started


def _quartiles(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return samples[0], samples[0]
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q1, q3


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # not every system keeps one
        return None


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may run on
    except AttributeError:
        return os.cpu_count() or 1


def load_warnings(load: Load, threads: int, timings: list[EngineTiming]) -> list[str]:
    """Why the figures may not hold: other work on the cores the run used, or rounds that disagree.

    The 1-minute load average counts runnable processes; before the run, more than
    `cores - threads` of them means the run's threads had to share cores. After the run
    the average includes the run's own threads, so it is compared with `cores`.
    """
    found = []
    if load.before is not None and load.before > load.cores - threads + 0.5:
        found.append(
            f"load average {load.before:.2f} before the run on {load.cores} cores with {threads} thread{'s' if threads != 1 else ''}: "
            "other work shared the cores, so the figures (eager's in particular) may be far from an idle machine's"
        )
    elif load.after is not None and load.after > load.cores + 0.5:
        found.append(f"load average {load.after:.2f} after the run on {load.cores} cores: other work started during it")
    noisy = [t for t in timings if t.spread > NOISY_SPREAD]
    if noisy:
        names = ", ".join(f"{t.engine} at batch {t.batch} ({t.spread:.0%})" for t in noisy)
        found.append(f"the rounds disagree (interquartile range over median above {NOISY_SPREAD:.0%}): {names}")
    return found


def timed_rounds(
    engines: dict[str, Callable[[], Any]], plans: dict[str, tuple[int, int]], limit: float
) -> tuple[dict[str, list[float]], int]:
    """(each engine's seconds per call, one per round; the rounds run), engines interleaved round by round.

    `plans` gives each engine's (rounds, calls per round). Calibrated on a machine that may slow down
    later (a busy core can make torch's threads wait 100x longer), no round starts that the last
    one's length says would end past `limit` seconds: every engine has had the same rounds (or its
    own fewer).
    """
    deadline = time.perf_counter() + limit
    samples: dict[str, list[float]] = {name: [] for name in engines}
    done = 0
    last_round = 0.0  # how long the previous round took: a round that would end past the deadline is not started
    for number in range(max(r for r, _ in plans.values())):
        if number and time.perf_counter() + last_round > deadline:
            break
        round_started = time.perf_counter()
        for name, fn in engines.items():
            planned_rounds, calls = plans[name]
            if number >= planned_rounds:
                continue
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - started) / calls)
        done = number + 1
        last_round = time.perf_counter() - round_started
    return samples, done


def _check_arguments(
    batches: tuple[int, ...], threads: int | None, rounds: int, seconds: float, block_seconds: float,
    seed: int, weights: str | Path | None,
) -> tuple[int, ...]:
    """`bench`'s arguments checked before any work (InputError); the batches as a tuple of ints."""
    batches = batches_argument(batches)
    if threads is not None:
        whole_argument("threads", threads, 1, MAX_THREADS)
    whole_argument("rounds", rounds, 1, MAX_ROUNDS)
    number_argument("seconds", seconds, 0, MAX_SECONDS, above=True)
    number_argument("block_seconds", block_seconds, 0, 60, above=True)
    seed_argument(seed)
    if weights is not None:
        from .fileio import check_readable
        from .limits import path_argument

        check_readable(path_argument("weights", weights))
    return batches


def _macs_per_sample(report: Report, example: tuple[int, ...]) -> int:
    """MACs of one sample at the example's spatial size: the report's when it was traced at that size."""
    if tuple(report.input_shape[1:]) == tuple(example[1:]):
        return report.total_macs // report.input_shape[0]  # MACs grow linearly with the batch
    return check_spec(report.spec, (1, *example[1:])).total_macs


def _baseline_model(report: Report, seed: int, weights: str | Path | None) -> torch.nn.Module:
    """The model timed as eager NCHW, in eval mode: built from the report with `seed`, or given `weights`."""
    from .builder import build_from_report

    model = build_from_report(report, seed=seed, memory_format="contiguous").eval()
    if weights is not None:
        from .checkpoint import load_weights_file

        load_weights_file(model, weights)
    return model


def _onnxruntime_session(onnx_path: Path, threads: int) -> Any:
    """An onnxruntime CPU session of the file on `threads` intra-op threads, its workers not spinning."""
    import onnxruntime as ort

    options = session_options()  # all graph optimisations, onnxruntime's own log silenced
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle onnxruntime workers spin for a while after each run, stealing the cores from the eager
    # block that follows; without spinning every engine gets the machine to itself.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _channels_last_copy(
    model: torch.nn.Module, report: Report, seed: int, rank: int
) -> tuple[torch.nn.Module, torch.memory_format | None]:
    """A second build holding `model`'s weights, in channels_last (4-D) or channels_last_3d (5-D) memory.

    The memory format is None for 1-D inputs (rank 3), which have no channels-last layout;
    the copy then stays NCHW-like and is not timed.
    """
    from .builder import build_from_report, to_memory_format

    copy = build_from_report(report, seed=seed, memory_format="contiguous").eval()
    copy.load_state_dict(model.state_dict())
    memory_format = {4: torch.channels_last, 5: torch.channels_last_3d}.get(rank)
    if memory_format is not None:
        to_memory_format(copy, memory_format, rank)
        copy._memory_format = memory_format
    return copy, memory_format


def _engines(
    model: torch.nn.Module, channels_last_model: torch.nn.Module, memory_format: torch.memory_format | None,
    session: Any, x: torch.Tensor,
) -> dict[str, Callable[[], Any]]:
    """One call of each engine on the input `x` (NCHW), by engine name; channels_last only where it exists."""
    x_numpy = x.numpy()
    engines: dict[str, Callable[[], Any]] = {
        "eager": lambda: model(x),
        "onnxruntime": lambda: session.run(None, {"input": x_numpy}),
    }
    if memory_format is not None:
        x_last = x.contiguous(memory_format=memory_format)
        engines["eager channels_last"] = lambda: channels_last_model(x_last)
    return engines


def _time_batch(
    engines: dict[str, Callable[[], Any]], batch: int, share: float, rounds: int, block_seconds: float, per_sample: int
) -> tuple[list[EngineTiming], list[str], dict[str, tuple[int, int]]]:
    """Each engine calibrated within CALIBRATION_SHARE of its `share` (seconds), then timed in interleaved rounds.

    Returns the engines' figures, a note when the rounds met their deadline, and each engine's
    planned (rounds, calls per round).
    """
    plans: dict[str, tuple[int, int]] = {}
    once: dict[str, float] = {}
    for name, fn in engines.items():
        once[name], spent = _calibrate(fn, share * CALIBRATION_SHARE)
        plans[name] = plan_rounds(once[name], max(share - spent, 0.0), rounds, block_seconds)
    samples, done = timed_rounds(engines, plans, OVERRUN * share * len(engines))
    stopped = []
    if done < max(r for r, _ in plans.values()):
        stopped.append(f"batch {batch}: stopped after {done} round{'s' if done != 1 else ''}, the calls took longer than calibrated")
    return _engine_timings(batch, samples, plans, once, per_sample), stopped, plans


def _engine_timings(
    batch: int, samples: dict[str, list[float]], plans: dict[str, tuple[int, int]], once: dict[str, float],
    per_sample: int,
) -> list[EngineTiming]:
    """The figures of each engine timed at `batch` (seconds per call in, ms out), ratios against eager NCHW."""
    baseline = statistics.median(samples["eager"])
    timings = []
    for name in ("eager", "eager channels_last", "onnxruntime"):
        if name not in samples:
            continue
        median = statistics.median(samples[name])
        q1, q3 = _quartiles(samples[name])
        timings.append(EngineTiming(
            name, batch, median * 1e3, median / baseline, per_sample * batch / median / 1e9, len(samples[name]),
            plans[name][1], once[name] * 1e3, q1 * 1e3, q3 * 1e3, min(samples[name]) * 1e3, max(samples[name]) * 1e3,
        ))  # fmt: skip
    return timings


def bench(
    spec: Any,
    *,
    batches: tuple[int, ...] = (1, 8),
    threads: int | None = None,
    rounds: int = 7,
    seconds: float = DEFAULT_SECONDS,
    block_seconds: float = 0.2,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    report: Report | None = None,
    per_layer: bool = False,
    weights: str | Path | None = None,
) -> BenchResult:
    """Latency of the built model in eager (NCHW, channels_last) and of its ONNX in onnxruntime.

    Times are per call, in ms, medians over the rounds, with quartiles, min and max.
    `seconds` caps the timing (calibration and rounds) of all batches and engines together,
    shared equally; the export, verification and `per_layer` profiling come on top.
    `report`, the spec's checked report where the caller has one, saves loading and tracing it again.
    `batches` are 1 to 2**31 - 1, `threads` 1 to 256 (None: torch's count), `rounds` 1 to 100,
    `seconds` above 0 and at most 3600, `block_seconds` above 0 and at most 60, `seed` 0 to 2**64 - 1;
    else InputError, before any work. The largest batch's activations must fit the default memory
    budget (BudgetError).
    `weights` (a state_dict, `.safetensors` file or checkpoint) replace the seeded initial weights.
    """
    batches = _check_arguments(batches, threads, rounds, seconds, block_seconds, seed, weights)
    report, input_shape = checked_report(spec, input_shape, report)
    parsed = report.spec
    threads = threads or torch.get_num_threads()
    example = example_shape(parsed, input_shape)
    # the model is built at the report's batch, but the inputs are made at each batch: the largest must fit too
    enforce_budget(check_spec(parsed, (max(batches), *example[1:])))
    per_sample = _macs_per_sample(report, example)
    model = _baseline_model(report, seed, weights)
    timings: list[EngineTiming] = []
    layers: list[LayerTiming] = []
    stopped: list[str] = []  # batches whose rounds met the deadline
    load_before = _load_average()
    with tempfile.TemporaryDirectory() as folder, _torch_threads(threads), torch.inference_mode():
        onnx_path = Path(folder) / "model.onnx"
        with torch.inference_mode(False):
            export_onnx(model, parsed, onnx_path, input_shape=input_shape, verify=True, report=report)
        session = _onnxruntime_session(onnx_path, threads)
        channels_last_model, memory_format = _channels_last_copy(model, report, seed, len(example))
        engine_count = 3 if memory_format is not None else 2
        share = seconds / (len(batches) * engine_count)  # each (batch, engine) pair's part of the budget
        for batch in batches:
            x = torch.randn((batch, *example[1:]), generator=torch.Generator().manual_seed(seed))
            engines = _engines(model, channels_last_model, memory_format, session, x)
            batch_timings, batch_stopped, plans = _time_batch(engines, batch, share, rounds, block_seconds, per_sample)
            timings.extend(batch_timings)
            stopped.extend(batch_stopped)
            if per_layer:
                calls = max(1, min(rounds, plans["eager"][0] * plans["eager"][1]))
                layers.extend(eager_layer_times(model, report, x, batch, calls))
                layers.extend(onnxruntime_layer_times(onnx_path, threads, report, x.numpy(), batch, calls, Path(folder)))
    load = Load(load_before, _load_average(), _cores())
    return BenchResult(
        parsed.source.file or parsed.name or "spec", tuple(example[1:]), threads, per_sample, timings, seconds, load,
        load_warnings(load, threads, timings) + stopped, layers,
    )  # fmt: skip


__all__ = ["bench", "BenchResult", "EngineTiming", "LayerTiming", "Load", "plan_rounds", "timed_rounds", "load_warnings"]
