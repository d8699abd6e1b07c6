"""convspec's performance suite: figures as ratios against a baseline measured in the same run.

    python benchmarks/run.py            # everything
    python benchmarks/run.py --quick    # fewer rounds, fewer specs
    python benchmarks/run.py --only export,ort
    python benchmarks/run.py --only precision -o benchmarks/precision.json   # fp32 / fp16 / int8 side by side
    python benchmarks/run.py --only lsp    # the language server's change -> diagnostics latency
    python benchmarks/run.py --thp      # large tensors on huge pages (torch's THP_MEM_ALLOC_ENABLE=1)

Prints a table per section and writes benchmarks/results.json (medians, the machine, the command).
The machine is shared and noisy: every figure is a median over interleaved rounds, and each
comparison is a ratio taken within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import convspec  # noqa: E402
from convspec.bench import bench  # noqa: E402
from convspec.export import export_onnx  # noqa: E402

THP_VARIABLE = "THP_MEM_ALLOC_ENABLE"
EXAMPLE_SPECS = ["small_cnn", "resnet_small", "unet_small", "nine_kinds", "conv1d_audio", "conv3d_video"]
ARCHITECTURES = ["resnet34", "resnext50_32x4d", "shufflenet_v2_x1_0", "squeezenet1_1", "mobilenet_v1", "mobilenet_v2"]


def spec_path(name: str) -> Path:
    return ROOT / "specs" / f"{name}.yaml"


def section_export(quick: bool) -> list[dict]:
    """Export + verify time per spec (wall seconds; the first includes loading the exporter)."""
    rows = []
    names = [n for n in EXAMPLE_SPECS + ARCHITECTURES if spec_path(n).exists()]
    if quick:
        names = names[:3]
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            started = time.perf_counter()
            result = export_onnx(None, spec_path(name), Path(folder) / f"{name}.onnx")
            total = time.perf_counter() - started
            steps = {s.name: round(s.seconds, 3) for s in result.steps}
            worst = max(c.worst_abs for c in result.checks)
            rows.append({"spec": name, "seconds": round(total, 2), **steps, "nodes": result.node_count, "worst_abs_diff": worst})
    return rows


def section_export_vs_bare(quick: bool, spec: str = "resnet34") -> list[dict]:
    """`convspec export` (verification included) against a hand-written export (benchmarks/bare_export.py).

    Both run as fresh processes with the same threads, alternating, so each round's ratio
    compares runs under the same load; the figures are medians over the rounds.
    """
    import subprocess

    rounds = 1 if quick else 5
    commands = {
        "convspec export": [sys.executable, "-m", "convspec", "export", str(spec_path(spec)), "--force", "-o"],
        "bare script": [sys.executable, str(ROOT / "benchmarks" / "bare_export.py"), str(spec_path(spec))],
    }
    seconds: dict[str, list[float]] = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as folder:
        for r in range(rounds):
            for name, command in (commands.items() if r % 2 == 0 else reversed(commands.items())):
                started = time.perf_counter()
                subprocess.run([*command, str(Path(folder) / "m.onnx")], check=True, capture_output=True, cwd=ROOT)
                seconds[name].append(time.perf_counter() - started)
    ratios = [a / b for a, b in zip(seconds["convspec export"], seconds["bare script"])]
    return [
        {"spec": spec, "run": name, "median_seconds": round(statistics.median(values), 2), "rounds": rounds}
        for name, values in seconds.items()
    ] + [{"spec": spec, "run": "ratio convspec/bare (median of rounds)", "median_seconds": round(statistics.median(ratios), 3), "rounds": rounds}]


def section_ort(quick: bool) -> list[dict]:
    """onnxruntime (full optimisation) against eager at its best memory format, batches 1 and 8."""
    rows = []
    names = [n for n in EXAMPLE_SPECS + ARCHITECTURES if spec_path(n).exists()]
    if quick:
        names = ["small_cnn", "resnet_small"]
    for name in names:
        batches = (1,) if quick else (1, 8)
        # 1.4 s per batch and engine: 7 rounds of blocks of about 0.2 s
        result = bench(spec_path(name), batches=batches, rounds=3 if quick else 7, threads=2, seconds=1.4 * 3 * len(batches))
        for batch in sorted({t.batch for t in result.timings}):
            ms = {t.engine: t.median_ms for t in result.timings if t.batch == batch}
            best = min(ms["eager"], ms.get("eager channels_last", ms["eager"]))
            rows.append({"spec": name, "batch": batch, "eager_ms": round(ms["eager"], 3),
                         "eager_channels_last_ms": round(ms["eager channels_last"], 3) if "eager channels_last" in ms else "",
                         "onnxruntime_ms": round(ms["onnxruntime"], 3), "ort_vs_best_eager": round(ms["onnxruntime"] / best, 2)})
    return rows


def page_fault_cost() -> dict:
    """What a fresh 32 MiB tensor costs on this machine against refilling one already mapped (ms)."""
    shape = (8, 64, 128, 128)  # 32 MiB: at glibc's largest mmap threshold, so every fresh one is mapped anew
    reused = torch.empty(shape)
    times = interleaved({"fresh": lambda: torch.empty(shape).fill_(1.0), "reused": lambda: reused.fill_(1.0)}, rounds=15)
    return {"fresh_32mib_fill_ms": round(times["fresh"] * 1e3, 2), "reused_32mib_fill_ms": round(times["reused"] * 1e3, 2)}


def interleaved(engines: dict[str, Callable[[], object]], rounds: int, calls: int = 1) -> dict[str, float]:
    """Median seconds per call of each engine, engines interleaved round by round."""
    for fn in engines.values():
        fn()  # warm-up
    samples: dict[str, list[float]] = {name: [] for name in engines}
    for _ in range(rounds):
        for name, fn in engines.items():
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - started) / calls)
    return {name: statistics.median(values) for name, values in samples.items()}


def _plain_stack(layers: int = 1000) -> dict:
    """`layers` 3x3 convs of 16 channels on 32x32: the cheapest dry run a 1,000-layer spec can have."""
    stack = [{"type": "conv", "out": 16, "kernel": 3, "padding": "same", "act": "relu"} for _ in range(layers)]
    return {"input": {"channels": 16, "size": [32, 32]}, "layers": stack}


def _residual_stack(layers: int = 1000) -> dict:
    """Residual blocks of two 3x3 convs, 16 channels on 32x32: `layers` // 3 blocks, each 3 layers to the checker."""
    def block() -> dict:  # a new one each time: shared dicts would be written to YAML as aliases
        return {"type": "residual", "act": "relu", "layers": [
            {"type": "conv", "out": 16, "kernel": 3, "padding": 1, "norm": "batch", "act": "relu"},
            {"type": "conv", "out": 16, "kernel": 3, "padding": 1, "norm": "batch"},
        ]}  # fmt: skip

    return {"input": {"channels": 16, "size": [32, 32]}, "layers": [block() for _ in range(layers // 3)]}


def _resnet_1001() -> dict:
    """ResNet-1001 for CIFAR (He et al. 2016, "Identity Mappings"): 3 stages of 111 bottlenecks, 1,000 convs + a linear."""

    def bottleneck(width: int, out: int, stride: int) -> dict:
        return {"type": "residual", "act": "relu", "layers": [
            {"type": "conv", "out": width, "kernel": 1, "norm": "batch", "act": "relu"},
            {"type": "conv", "out": width, "kernel": 3, "stride": stride, "padding": 1, "norm": "batch", "act": "relu"},
            {"type": "conv", "out": out, "kernel": 1, "norm": "batch"},
        ]}  # fmt: skip

    layers: list[dict] = [{"type": "conv", "out": 16, "kernel": 3, "padding": 1, "norm": "batch", "act": "relu"}]
    for stage, (width, out) in enumerate(((16, 64), (32, 128), (64, 256))):
        stride = 1 if stage == 0 else 2
        first = bottleneck(width, out, stride)
        first["shortcut"] = [{"type": "conv", "out": out, "kernel": 1, "stride": stride, "norm": "batch"}]
        layers += [first] + [bottleneck(width, out, 1) for _ in range(110)]
    layers += [{"type": "pool", "op": "avg", "kernel_size": 8}, {"type": "flatten"}, {"type": "linear", "out": 10}]
    return {"input": {"channels": 3, "size": [32, 32]}, "layers": layers}


def section_checker(quick: bool) -> list[dict]:
    """convspec.check on 1,000-layer specs against building the module and running one forward pass (a dry run)."""
    rows = []
    for label, spec in (("1,000 convs, 16 ch, 32x32", _plain_stack()), ("ResNet-1001, 3x32x32", _resnet_1001())):
        shape = (1, spec["input"]["channels"], *spec["input"]["size"])

        def dry_run(spec=spec, shape=shape):
            model = convspec.build(spec)
            with torch.no_grad():
                model(torch.zeros(shape))

        times = interleaved({"check": lambda spec=spec: convspec.check(spec), "dry run": dry_run}, rounds=3 if quick else 7)
        rows.append({"spec": label, "check_ms": round(times["check"] * 1e3, 1), "dry_run_ms": round(times["dry run"] * 1e3, 1),
                     "ratio": round(times["dry run"] / times["check"], 1)})
    import subprocess

    command = [sys.executable, "-m", "convspec", "check", str(spec_path("resnet34"))]
    walls = []
    for _ in range(3 if quick else 7):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    rows.append({"spec": "`convspec check specs/resnet34.yaml` (whole command, wall)", "check_ms": round(statistics.median(walls) * 1e3, 1),
                 "dry_run_ms": "", "ratio": ""})
    return rows


SCALING_SIZES = (1000, 10000)
SCALING_GOAL = 1.5  # per-layer check cost at 10,000 layers over that at 1,000


def section_scaling(quick: bool, sizes: tuple[int, int] = SCALING_SIZES, rounds: int | None = None) -> list[dict]:
    """Per-layer cost of `convspec.check` at 1,000 and at 10,000 layers, from a dict and from YAML text; the ratio.

    Every round checks the same number of layers at both sizes (ten 1,000-layer specs against one of
    10,000), so both pay the same share of CPython's full garbage collections. A full collection visits
    the whole process heap and runs once enough objects have survived since the last one; timing one
    1,000-layer check per round would let the median skip it (it lands in one round of several) while
    every 10,000-layer check pays it, which measures the collector's timing rather than the checker.
    The single-check medians are kept in the row for comparison.
    """
    import yaml

    rounds = rounds or (3 if quick else 7)
    small, large = sizes
    rows = []
    for structure, make in (("3x3 conv stack", _plain_stack), ("residual blocks", _residual_stack)):
        for form in ("dict", "YAML text"):
            specs = {n: make(n) for n in sizes}
            if form == "YAML text":
                specs = {n: yaml.safe_dump(spec, sort_keys=False) for n, spec in specs.items()}
            layers = {n: sum(1 for _ in convspec.check(spec).walk()) for n, spec in specs.items()}
            single = interleaved({n: (lambda spec=spec: convspec.check(spec)) for n, spec in specs.items()}, rounds=rounds)
            equal_work = interleaved(
                {n: (lambda spec=spec, copies=large // n: [convspec.check(spec) for _ in range(copies)]) for n, spec in specs.items()},
                rounds=rounds,
            )
            per_layer = {n: equal_work[n] / (layers[n] * (large // n)) for n in sizes}
            rows.append({"spec": f"{structure}, {form}", f"{small}_layers_ms": round(single[small] * 1e3, 1),
                         f"{large}_layers_ms": round(single[large] * 1e3, 1),
                         f"us_per_layer_{small}": round(per_layer[small] * 1e6, 1), f"us_per_layer_{large}": round(per_layer[large] * 1e6, 1),
                         "ratio": round(per_layer[large] / per_layer[small], 2), "goal": f"<= {SCALING_GOAL}",
                         "single_check_ratio": round(single[large] / layers[large] / (single[small] / layers[small]), 2)})
    return rows


def _hand_written_resnet18() -> torch.nn.Module:
    """ResNet-18 written by hand in plain PyTorch, as torchvision writes it."""
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = (
                nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None
            )

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + identity)

    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(512, 1000)]
    return nn.Sequential(*layers)


def section_overhead(quick: bool) -> list[dict]:
    """The built ResNet-18-style spec against the same network written by hand: forward latency ratio."""
    built = convspec.build(spec_path("resnet_small"), seed=0).eval()
    hand = _hand_written_resnet18().eval()
    assert sum(p.numel() for p in built.parameters()) == sum(p.numel() for p in hand.parameters())
    rows = []
    for batch in (1,) if quick else (1, 8):
        x = torch.randn(batch, 3, 224, 224)
        with torch.no_grad():
            times = interleaved({"hand": lambda: hand(x), "convspec": lambda: built(x)}, rounds=5 if quick else 15)
        rows.append({"batch": batch, "hand_ms": round(times["hand"] * 1e3, 2), "convspec_ms": round(times["convspec"] * 1e3, 2),
                     "ratio": round(times["convspec"] / times["hand"], 3)})
    return rows


def section_fixed(quick: bool) -> list[dict]:
    """Per-channel gaussian on 8x64x128x128: convspec's fixed layer against the seed article's loop over channels."""
    import torch.nn.functional as F

    rows = []
    x = torch.randn(8, 64, 128, 128)
    for k in (3, 15):
        spec = {"input": {"channels": 64, "size": [128, 128]},
                "layers": [{"type": "fixed", "filter": "gaussian", "kernel_size": k, "sigma": k / 6, "padding": "same"}]}
        model = convspec.build(spec).eval()
        kernel = model.fixed_0.weight[:1]  # (1, 1, k, k)

        def article_loop():  # one conv per channel, then torch.cat, as the article writes it
            return torch.cat([F.conv2d(x[:, c : c + 1], kernel, padding=k // 2) for c in range(64)], dim=1)

        last = convspec.build(spec, memory_format="channels_last").eval()
        x_last = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            error = (model(x) - article_loop()).abs().max().item()
            engines = {"article loop": article_loop, "convspec (NCHW)": lambda: model(x), "convspec (channels_last)": lambda: last(x_last)}
            times = interleaved(engines, rounds=3 if quick else 7)
        base = times["article loop"]
        for name, seconds in times.items():
            rows.append({"kernel": f"{k}x{k}", "engine": name, "median_ms": round(seconds * 1e3, 1),
                         "speedup_vs_loop": round(base / seconds, 1), "max_abs_diff": f"{error:.1e}" if name != "article loop" else ""})
    return rows


def section_memory_format(quick: bool) -> list[dict]:
    """Eager NCHW against channels_last per example spec, batch 8: which specs gain."""
    rows = []
    names = ["mobilenet_v1", "mobilenet_v2", "shufflenet_v2_x1_0", "resnet_small", "nine_kinds", "unet_small"]
    if quick:
        names = names[:2]
    for name in names:
        if not spec_path(name).exists():
            continue
        report = convspec.check(spec_path(name))
        x = torch.randn(8, *report.input_shape[1:])
        nchw = convspec.build(spec_path(name), seed=0).eval()
        last = convspec.build(spec_path(name), seed=0, memory_format="channels_last").eval()
        with torch.no_grad():
            times = interleaved({"nchw": lambda: nchw(x), "last": lambda: last(x)}, rounds=3 if quick else 7)
        rows.append({"spec": name, "nchw_ms": round(times["nchw"] * 1e3, 1), "channels_last_ms": round(times["last"] * 1e3, 1),
                     "ratio": round(times["last"] / times["nchw"], 2)})
    return rows


def section_dynamic(quick: bool) -> list[dict]:
    """Dynamic conv (K=4) against a static conv of the same shape: B=32, 32->64, 56x56, eager and onnxruntime."""
    import onnxruntime as ort

    base = {"input": {"channels": 32, "size": [56, 56]}}
    static = dict(base, layers=[{"type": "conv", "out": 64, "kernel": 3, "padding": 1}])
    dynamic = dict(base, layers=[{"type": "dynamic", "out": 64, "kernel": 3, "padding": 1, "experts": 4}])
    x = torch.randn(32, 32, 56, 56)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        sessions, models = {}, {}
        for name, spec in (("static", static), ("dynamic", dynamic)):
            models[name] = convspec.build(spec, seed=0).eval()
            path = Path(folder) / f"{name}.onnx"
            export_onnx(models[name], spec, path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        rounds = 3 if quick else 15  # single calls of 20-50 ms: more rounds steady the medians
        with torch.no_grad():
            eager = interleaved({n: (lambda m=m: m(x)) for n, m in models.items()}, rounds=rounds)
        onnx_times = interleaved({n: (lambda s=s: s.run(None, {"input": x.numpy()})) for n, s in sessions.items()}, rounds=rounds)
    for engine, times in (("eager", eager), ("onnxruntime", onnx_times)):
        rows.append({"engine": engine, "static_ms": round(times["static"] * 1e3, 1), "dynamic_ms": round(times["dynamic"] * 1e3, 1),
                     "ratio": round(times["dynamic"] / times["static"], 2)})
    return rows


def section_weights(quick: bool) -> list[dict]:
    """`map_weights` of torchvision-keyed state_dicts (tests/torchvision_models.py) onto the bundled specs.

    The baseline is `load_state_dict` of the same tensors under the spec's own keys, into an already
    built model; `by_name` maps a state_dict sorted by key, as a .safetensors file gives it back.
    """
    sys.path.insert(0, str(ROOT / "tests"))
    from torchvision_models import REFERENCES

    from convspec.weights import map_weights

    rows = []
    for name in ("resnet34",) if quick else ("resnet34", "efficientnet_b0"):
        source = REFERENCES[name]().state_dict()
        by_name = dict(sorted(source.items()))
        spec = convspec.load(spec_path(name))
        mapped, _ = map_weights(spec, source)
        model = convspec.build(spec, seed=0)
        times = interleaved(
            {
                "load_state_dict": lambda: model.load_state_dict(mapped),
                "map": lambda: map_weights(spec, source),
                "by_name": lambda: map_weights(spec, by_name, registration_order=False),
            },
            rounds=3 if quick else 7,
        )
        rows.append({
            "spec": name, "tensors": len(source), "load_state_dict_ms": round(times["load_state_dict"] * 1e3, 1),
            "map_ms": round(times["map"] * 1e3, 1), "by_name_ms": round(times["by_name"] * 1e3, 1),
            "map_ratio": round(times["map"] / times["load_state_dict"], 2),
        })  # fmt: skip
    return rows


def section_import(quick: bool) -> list[dict]:
    """`import_onnx` (read, spec, check, build, onnxruntime parity) of torchvision-structured networks exported by torch.

    The baseline is what any use of the file costs: `onnx.load`, an onnxruntime session and one
    run at the same input, on the same file.
    """
    import warnings

    import numpy as np
    import onnx

    sys.path.insert(0, str(ROOT / "tests"))
    from torchvision_models import REFERENCES

    from convspec.importer import import_onnx
    from convspec.verify import ort_session

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in ("resnet34",) if quick else ("resnet34", "efficientnet_b0"):
            path = Path(folder) / f"{name}.onnx"
            model = REFERENCES[name]().eval()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17)
            x = np.random.default_rng(0).standard_normal((1, 3, 224, 224), dtype=np.float32)

            def baseline(path=path, x=x):
                onnx.load(str(path))
                session = ort_session(path)
                session.run(None, {session.get_inputs()[0].name: x})

            times = interleaved({"load_and_run": baseline, "import": lambda path=path: import_onnx(path)}, rounds=3 if quick else 5)
            rows.append({
                "model": name, "params": sum(p.numel() for p in model.parameters()), "mb": round(path.stat().st_size / 2**20, 1),
                "load_and_run_s": round(times["load_and_run"], 2), "import_s": round(times["import"], 2),
                "ratio": round(times["import"] / times["load_and_run"], 2),
            })  # fmt: skip


PRECISION_SPECS = ["resnet34", "mobilenet_v2"]
PRECISION_GOALS = {"int8_latency_vs_fp32": 0.6, "int8_top1_agreement": 0.99, "fp16_size_vs_fp32": 0.52}


def section_precision(quick: bool, names: list[str] | None = None, batches: tuple[int, ...] = (1, 8), rounds: int | None = None) -> list[dict]:
    """fp32, fp16 and int8 files side by side: size, onnxruntime latency (medians, interleaved) and accuracy against float32.

    Each precision is exported and verified by `convspec.precision.export_precision` (int8
    calibrated on its 32 drawn inputs, where top-1 agreement is measured); latency with one
    intra-op thread, every file at batches 1 and 8 on the same inputs; ratios against fp32.
    """
    import warnings

    import onnxruntime as ort

    from convspec.precision import export_precision

    names = names or (PRECISION_SPECS[:1] if quick else PRECISION_SPECS)
    rounds = rounds or (3 if quick else 9)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            files, figures = {}, {}
            for precision in ("fp32", "fp16", "int8"):
                path = Path(folder) / f"{name}-{precision}.onnx"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the drawn-calibration warning: known here
                    if precision == "fp32":
                        export_onnx(None, spec_path(name), path)
                        figures[precision] = ("", "", "")
                    else:
                        # every figure recorded, none refused: the goals are judged on the table
                        result = export_precision(None, spec_path(name), path, precision=precision, min_top1=0.0)
                        worst = max(o.worst_rel for o in result.outputs)
                        close = sum(o.close_calls for o in result.outputs)
                        figures[precision] = (f"{worst:.2e}", "" if result.top1 is None else round(result.top1, 4), close)
                files[precision] = path
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sessions = {p: ort.InferenceSession(str(f), options, providers=["CPUExecutionProvider"]) for p, f in files.items()}
            shape = convspec.check(spec_path(name)).input_shape[1:]
            for batch in batches:
                x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0)).numpy()
                times = interleaved({p: (lambda s=s: s.run(None, {"input": x})) for p, s in sessions.items()}, rounds=rounds)
                for precision in files:
                    size = files[precision].stat().st_size
                    rows.append({
                        "spec": name, "precision": precision, "batch": batch, "size_mb": round(size / 1e6, 2),
                        "size_vs_fp32": round(size / files["fp32"].stat().st_size, 3),
                        "ms": round(times[precision] * 1e3, 2), "latency_vs_fp32": round(times[precision] / times["fp32"], 2),
                        "max_rel_diff": figures[precision][0], "top1_agreement": figures[precision][1],
                        "close_calls": figures[precision][2],
                    })
    return rows


LSP_SPEC = "resnet34"
LSP_ROUNDS = 40


async def _lsp_latencies(rounds: int, debounce_ms: float) -> list[float]:
    """Seconds from each didChange of specs/resnet34.yaml to its diagnostics, through a real client and server.

    Changes alternate between a valid spec and one with a shape error, so every round is
    checked anew and half publish a diagnostic; each change follows a pause longer than the debounce.
    """
    import asyncio

    from lsprotocol import types as lsp
    from pygls.lsp.client import LanguageClient

    path = spec_path(LSP_SPEC)
    valid = path.read_text(encoding="utf-8")
    broken = valid.replace("{name: stem, type: conv, out: 64,", "{name: stem, type: conv, out: 64, groups: 5,", 1)
    assert broken != valid
    client = LanguageClient("convspec-bench", "1")
    arrived: dict[int, float] = {}
    waiting: dict[int, asyncio.Event] = {}

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: lsp.PublishDiagnosticsParams) -> None:
        arrived[params.version] = time.perf_counter()
        waiting.setdefault(params.version, asyncio.Event()).set()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    await client.start_io(sys.executable, "-m", "convspec", "lsp", "--debounce", str(debounce_ms), env=env)
    await client.initialize_async(lsp.InitializeParams(capabilities=lsp.ClientCapabilities()))
    client.initialized(lsp.InitializedParams())
    uri = path.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(text_document=lsp.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=valid)))
    await waiting.setdefault(1, asyncio.Event()).wait()
    latencies = []
    for version in range(2, rounds + 2):
        await asyncio.sleep(0.05 + debounce_ms / 1000)  # a pause in typing
        change = lsp.TextDocumentContentChangeWholeDocument(text=broken if version % 2 else valid)
        sent = time.perf_counter()
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=[change]))
        await asyncio.wait_for(waiting.setdefault(version, asyncio.Event()).wait(), 30)
        latencies.append(arrived[version] - sent)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return latencies


def section_lsp(quick: bool) -> list[dict]:
    """`convspec lsp`: change -> diagnostics latency on resnet34 (server warm), against the checker alone in-process."""
    import asyncio

    from convspec.lsp import DEFAULT_DEBOUNCE
    from convspec.lsp_analysis import analyse

    rounds = 10 if quick else LSP_ROUNDS
    path = spec_path(LSP_SPEC)
    text = path.read_text(encoding="utf-8")
    analyse(text, str(path))
    checker = []
    for _ in range(rounds):
        started = time.perf_counter()
        analyse(text, str(path))
        checker.append(time.perf_counter() - started)
    baseline = statistics.median(checker)
    rows = [{"case": "checker alone, in process (baseline)", "debounce_ms": "", "median_ms": round(baseline * 1000, 2),
             "p90_ms": round(sorted(checker)[int(0.9 * (rounds - 1))] * 1000, 2), "ratio": 1.0}]
    for debounce_ms in (DEFAULT_DEBOUNCE * 1000, 0):
        found = asyncio.run(_lsp_latencies(rounds, debounce_ms))
        median = statistics.median(found)
        rows.append({"case": "didChange -> publishDiagnostics", "debounce_ms": debounce_ms, "median_ms": round(median * 1000, 2),
                     "p90_ms": round(sorted(found)[int(0.9 * (rounds - 1))] * 1000, 2), "ratio": round(median / baseline, 2)})
    return rows


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {
    "checker": section_checker,
    "scaling": section_scaling,
    "overhead": section_overhead,
    "fixed": section_fixed,
    "memory_format": section_memory_format,
    "dynamic": section_dynamic,
    "export": section_export,
    "export_vs_bare": section_export_vs_bare,
    "ort": section_ort,
    "weights": section_weights,
    "import": section_import,
    "precision": section_precision,
    "lsp": section_lsp,
}


def print_rows(title: str, rows: list[dict]) -> None:
    print(f"\n## {title}")
    if not rows:
        print("(nothing)")
        return
    keys = list(rows[0])
    widths = {k: max(len(k), *(len(str(r.get(k, ""))) for r in rows)) for k in keys}
    print("  ".join(k.ljust(widths[k]) for k in keys))
    for r in rows:
        print("  ".join(str(r.get(k, "")).ljust(widths[k]) for k in keys))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and specs")
    parser.add_argument("--only", help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--thp", action="store_true",
                        help="run with THP_MEM_ALLOC_ENABLE=1: torch backs large tensors with huge pages (fewer page faults)")
    args = parser.parse_args()
    if args.thp and os.environ.get(THP_VARIABLE) != "1":
        # torch reads the variable once, at its first allocation: start again with it set
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, THP_VARIABLE: "1"})
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    results = {
        "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]),
        "machine": {
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), THP_VARIABLE: os.environ.get(THP_VARIABLE, ""), **page_fault_cost(),
        },
        "convspec": convspec.__version__,
        "sections": {},
    }
    for name in chosen:
        rows = SECTIONS[name](args.quick)
        results["sections"][name] = rows
        print_rows(name, rows)
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    main()
