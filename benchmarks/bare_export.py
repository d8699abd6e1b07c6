"""The baseline `convspec export` is measured against: what a user would write by hand.

    python benchmarks/bare_export.py SPEC OUT.onnx

Builds the spec's model, exports it with torch's dynamo exporter (dynamic batch), saves it,
and runs one onnxruntime session on one input: no checks, no parity, no metadata.
"""

from __future__ import annotations

import sys

import onnxruntime as ort
import torch

import convspec


def main(spec: str, out: str) -> None:
    report = convspec.check(spec)
    model = convspec.build(spec, seed=0).eval()
    x = torch.randn(report.spec.input.batch, report.spec.input.channels, *report.spec.input.size)
    program = torch.onnx.export(
        model, (x,), None, input_names=["input"], dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), dynamo=True, optimize=True
    )
    program.save(out)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    session.run(None, {"input": x.numpy()})


if __name__ == "__main__":
    main(*sys.argv[1:3])
