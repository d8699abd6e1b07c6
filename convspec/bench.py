"""Side-by-side latency: PyTorch eager (NCHW and channels_last) and onnxruntime, same threads, one run.

Each engine is timed in its own block of calls; blocks are interleaved over rounds
(engine A, B, C, then A, B, C again ...) so a noisy machine hurts every engine alike,
and the median per engine is reported with the ratios against eager NCHW.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from .budget import enforce_budget
from .export import _example_shape, export_onnx
from .limits import batches_argument, number_argument, seed_argument, whole_argument
from .verify import session_options
from .shapes import Report
from .trace import check_spec, checked_report

MAX_THREADS = 256
MAX_ROUNDS = 100


@dataclass
class EngineTiming:
    engine: str
    batch: int
    median_ms: float
    ratio: float  # median / eager NCHW median at the same batch
    gmacs_per_s: float
    rounds: int
    calls_per_round: int


@dataclass
class BenchResult:
    spec: str
    input_shape: tuple[int, ...]
    threads: int
    macs_per_sample: int
    timings: list[EngineTiming]

    def to_dict(self) -> dict:
        return {
            "spec": self.spec, "input_shape": list(self.input_shape), "threads": self.threads,
            "macs_per_sample": self.macs_per_sample, "timings": [asdict(t) for t in self.timings],
        }  # fmt: skip


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _calls_for(fn: Callable[[], Any], target_seconds: float) -> int:
    """How many calls make one timed block last about `target_seconds` (after a warm-up call)."""
    fn()
    durations = []
    for _ in range(3):
        started = time.perf_counter()
        fn()
        durations.append(time.perf_counter() - started)
    once = max(statistics.median(durations), 1e-6)
    return max(1, min(1000, int(target_seconds / once)))


def bench(
    spec: Any,
    *,
    batches: tuple[int, ...] = (1, 8),
    threads: int | None = None,
    rounds: int = 7,
    block_seconds: float = 0.2,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    report: Report | None = None,
) -> BenchResult:
    """Latency of the built model in eager (NCHW, channels_last) and of its ONNX in onnxruntime.

    `report`, the spec's checked report where the caller has one, saves loading and tracing it again.
    `batches` are 1 to 2**31 - 1, `threads` 1 to 256 (None: torch's count), `rounds` 1 to 100,
    `block_seconds` above 0 and at most 60, `seed` 0 to 2**64 - 1; else InputError, before any
    work. The largest batch's activations must fit the default memory budget (BudgetError).
    """
    from .builder import build_from_report, to_memory_format

    batches = batches_argument(batches)
    if threads is not None:
        whole_argument("threads", threads, 1, MAX_THREADS)
    whole_argument("rounds", rounds, 1, MAX_ROUNDS)
    number_argument("block_seconds", block_seconds, 0, 60, above=True)
    seed_argument(seed)
    report, input_shape = checked_report(spec, input_shape, report)
    parsed = report.spec
    threads = threads or torch.get_num_threads()
    example = _example_shape(parsed, input_shape)
    # the model is built at the report's batch, but the inputs are made at each batch: the largest must fit too
    enforce_budget(check_spec(parsed, (max(batches), *example[1:])))
    if tuple(report.input_shape[1:]) == tuple(example[1:]):
        per_sample = report.total_macs // report.input_shape[0]  # MACs grow linearly with the batch
    else:
        per_sample = check_spec(parsed, (1, *example[1:])).total_macs
    model = build_from_report(report, seed=seed, memory_format="contiguous").eval()  # the baseline: NCHW
    timings: list[EngineTiming] = []
    with tempfile.TemporaryDirectory() as folder, _torch_threads(threads), torch.inference_mode():
        onnx_path = Path(folder) / "model.onnx"
        with torch.inference_mode(False):
            export_onnx(model, parsed, onnx_path, input_shape=input_shape, verify=True, report=report)
        import onnxruntime as ort

        options = session_options()  # all graph optimisations, onnxruntime's own log silenced
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle onnxruntime workers spin for a while after each run, stealing the cores from the eager
        # block that follows; without spinning every engine gets the machine to itself.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        channels_last_model = build_from_report(report, seed=seed, memory_format="contiguous").eval()
        channels_last_model.load_state_dict(model.state_dict())
        memory_format = {4: torch.channels_last, 5: torch.channels_last_3d}.get(len(example))  # none for 1-D
        if memory_format is not None:
            to_memory_format(channels_last_model, memory_format, len(example))
            channels_last_model._memory_format = memory_format
        for batch in batches:
            x = torch.randn((batch, *example[1:]), generator=torch.Generator().manual_seed(seed))
            x_numpy = x.numpy()
            engines: dict[str, Callable[[], Any]] = {
                "eager": lambda: model(x),
                "onnxruntime": lambda: session.run(None, {"input": x_numpy}),
            }
            if memory_format is not None:
                x_last = x.contiguous(memory_format=memory_format)
                engines["eager channels_last"] = lambda: channels_last_model(x_last)
            calls = {name: _calls_for(fn, block_seconds) for name, fn in engines.items()}
            samples: dict[str, list[float]] = {name: [] for name in engines}
            for _ in range(rounds):
                for name, fn in engines.items():
                    started = time.perf_counter()
                    for _ in range(calls[name]):
                        fn()
                    samples[name].append((time.perf_counter() - started) / calls[name])
            baseline = statistics.median(samples["eager"])
            for name in ("eager", "eager channels_last", "onnxruntime"):
                if name not in samples:
                    continue
                median = statistics.median(samples[name])
                timings.append(
                    EngineTiming(name, batch, median * 1e3, median / baseline, per_sample * batch / median / 1e9, rounds, calls[name])
                )
    return BenchResult(parsed.source.file or parsed.name or "spec", tuple(example[1:]), threads, per_sample, timings)


__all__ = ["bench", "BenchResult", "EngineTiming"]
