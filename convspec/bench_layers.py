"""Per-layer latency for `convspec bench --per-layer`: each top-level spec layer's time in both engines.

- PyTorch eager: forward pre- and post-hooks on the module's children, which are named after
  the spec's top-level layers (`builder.py`); a layer's time is from its pre-hook to its hook,
  everything inside it (a residual's branches, a repeat's copies) included.
- onnxruntime: its profiler (`SessionOptions.enable_profiling`), one event per node and run.
  The exporter names every node after the layer it came from (`layer1.0.residual_0.conv1/Conv`,
  `node_names.name_nodes`); onnxruntime's optimiser renames the nodes it fuses after their output
  tensor (`relu_1_nchwc`), so a name that is no node's is looked up among the tensors the
  exported graph's nodes produce. What still matches no layer (onnxruntime's own layout
  conversions, `ReorderInput` / `ReorderOutput`) is one row of its own, `(onnxruntime)`.

Times are medians over the profiled calls, after one warm-up call, in ms per call.
"""

from __future__ import annotations

import bisect
import json
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .report import Report

UNATTRIBUTED = "(onnxruntime)"  # the row of time no spec layer's node took


@dataclass
class LayerTiming:
    """One top-level spec layer in one engine at one batch: the median time of the layer in one call (ms)."""

    engine: str  # "eager" or "onnxruntime"
    batch: int
    layer: str  # the layer's name, or UNATTRIBUTED
    type: str  # the layer's kind ("" for UNATTRIBUTED)
    median_ms: float
    share: float  # of the sum of this engine's layer times at this batch, 0 to 1
    note: str = ""  # why a layer has no time of its own, or what UNATTRIBUTED holds


def _rows(engine: str, batch: int, report: Report, per_call: list[dict[str, float]], notes: dict[str, str]) -> list[LayerTiming]:
    """Median per layer over the calls, in the spec's order; a layer absent from a call counts 0 there."""
    names = [layer.name for layer in report.layers] + ([UNATTRIBUTED] if any(UNATTRIBUTED in c for c in per_call) else [])
    kinds = {layer.name: layer.type for layer in report.layers}
    medians = {name: statistics.median(call.get(name, 0.0) for call in per_call) for name in names}
    total = sum(medians.values()) or 1.0
    return [
        LayerTiming(engine, batch, name, kinds.get(name, ""), medians[name] * 1e3, medians[name] / total, notes.get(name, ""))
        for name in names
    ]


def eager_layer_times(model: Any, report: Report, x: Any, batch: int, calls: int) -> list[LayerTiming]:
    """Each top-level layer's time in PyTorch eager, from forward hooks, over `calls` calls after a warm-up."""
    started: dict[str, float] = {}
    current: dict[str, float] = defaultdict(float)
    handles = []
    children = dict(model.named_children())
    for layer in report.layers:
        module = children.get(layer.name)
        if module is None:
            continue

        def before(_module, _inputs, name=layer.name):
            started[name] = time.perf_counter()

        def after(_module, _inputs, _output, name=layer.name):
            current[name] += time.perf_counter() - started[name]

        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    per_call: list[dict[str, float]] = []
    try:
        model(x)  # warm-up
        for _ in range(calls):
            current.clear()
            model(x)
            per_call.append(dict(current))
    finally:
        for handle in handles:
            handle.remove()
    return _rows("eager", batch, report, per_call, {})


def _graph_names(path: Path) -> tuple[set[str], dict[str, str]]:
    """(every node's name, the node that produces each tensor), subgraphs included."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    nodes: set[str] = set()
    producers: dict[str, str] = {}
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            nodes.add(node.name)
            for output in node.output:
                producers.setdefault(output, node.name)
            graphs.extend(a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH)
    return nodes, producers


def spec_node(profiled: str, nodes: set[str], producers: dict[str, str]) -> str | None:
    """The exported node behind a name onnxruntime's profiler gives, or None.

    The name itself, else the name as a tensor, else the same with a trailing `_suffix` taken
    off, again and again (onnxruntime names a fused node after its output plus a tag: `relu_1_nchwc`).
    """
    name = profiled
    while name:
        if name in nodes:
            return name
        if name in producers:
            return producers[name]
        name, sep, _ = name.rpartition("_")
        if not sep:
            return None
    return None


def layer_of(node: str, top_level: set[str]) -> str | None:
    """The top-level spec layer of an exported node named `MODULE.PATH/Op`, or None."""
    module, sep, _ = node.partition("/")
    if not sep:
        return None
    top = module.split(".")[0]
    return top if top in top_level else None


def onnxruntime_layer_times(
    path: Path, threads: int, report: Report, x: Any, batch: int, calls: int, folder: Path
) -> list[LayerTiming]:
    """Each top-level layer's time in onnxruntime, from its profiler, over `calls` runs after a warm-up.

    A node event's `dur` is in microseconds (onnxruntime's Chrome-trace profile); events are
    assigned to runs by the `model_run` event whose span holds them.
    """
    import onnxruntime as ort

    from .verify import session_options

    options = session_options()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / f"profile_batch{batch}")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(calls + 1):
        session.run(None, {"input": x})
    events = json.loads(Path(session.end_profiling()).read_text())
    nodes, producers = _graph_names(path)
    top_level = {layer.name for layer in report.layers}
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    starts = [start for start, _ in runs]
    per_run: list[dict[str, float]] = [defaultdict(float) for _ in runs]
    others: set[str] = set()
    for event in events:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        number = bisect.bisect_right(starts, event["ts"]) - 1
        if number < 0:
            continue
        node = spec_node(event["name"].removesuffix("_kernel_time"), nodes, producers)
        layer = layer_of(node, top_level) if node else None
        if layer is None:
            others.add(event.get("args", {}).get("op_name") or event["name"])
            layer = UNATTRIBUTED
        per_run[number][layer] += event["dur"] / 1e6
    measured = [dict(run) for run in per_run[1:]] or [dict(run) for run in per_run]  # the first run warms up
    seen = {name for run in measured for name in run}
    notes = {
        layer.name: "no node of its own in onnxruntime (fused into another layer's, or nothing to compute)"
        for layer in report.layers
        if layer.name not in seen
    }
    if others:
        notes[UNATTRIBUTED] = "nodes of no spec layer: " + ", ".join(sorted(others))
    return _rows("onnxruntime", batch, report, measured, notes)


__all__ = ["LayerTiming", "eager_layer_times", "onnxruntime_layer_times", "spec_node", "layer_of", "UNATTRIBUTED"]
