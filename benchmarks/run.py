"""convspec's performance suite: figures as ratios against a baseline measured in the same run.

    python benchmarks/run.py            # everything
    python benchmarks/run.py --quick    # fewer rounds, fewer specs
    python benchmarks/run.py --only export,ort

Prints a table per section and writes benchmarks/results.json (medians, the machine, the command).
The machine is shared and noisy: every figure is a median over interleaved rounds, and each
comparison is a ratio taken within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

EXAMPLE_SPECS = ["small_cnn", "resnet_small", "unet_small", "nine_kinds", "conv1d_audio", "conv3d_video"]
ARCHITECTURES = ["resnet34", "resnext50_32x4d", "shufflenet_v2_x1_0", "squeezenet1_1", "mobilenet_v1"]


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


def section_ort(quick: bool) -> list[dict]:
    """onnxruntime (full optimisation) and eager channels_last latency relative to eager NCHW, batches 1 and 8."""
    rows = []
    names = [n for n in EXAMPLE_SPECS + ARCHITECTURES if spec_path(n).exists()]
    if quick:
        names = ["small_cnn", "resnet_small"]
    for name in names:
        result = bench(spec_path(name), batches=(1,) if quick else (1, 8), rounds=3 if quick else 7, threads=2)
        for t in result.timings:
            rows.append({"spec": name, "batch": t.batch, "engine": t.engine, "median_ms": round(t.median_ms, 3), "ratio_vs_eager": round(t.ratio, 3)})
    return rows


SECTIONS: dict[str, Callable[[bool], list[dict]]] = {
    "export": section_export,
    "ort": section_ort,
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
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    results = {
        "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]),
        "machine": {
            "python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
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
