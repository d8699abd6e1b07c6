"""Verification's PyTorch reference: one forward per spatial shape, smaller batches checked on its first samples."""

from __future__ import annotations

import convspec
from convspec.export import export_onnx
from convspec.verify import ort_session, run_parity

SPEC = """
name: two_outputs
input: {channels: 3, size: [16, 16]}
layers:
  - {name: stem, type: conv, out: 8, kernel: 3, padding: same, norm: batch, act: relu}
  - {name: head, type: conv, out: 4, kernel: 1}
"""


def test_the_reference_runs_once_per_spatial_shape_at_its_largest_batch(tmp_path):
    model = convspec.build(SPEC, seed=0).eval()
    export_onnx(model, SPEC, tmp_path / "m.onnx", dynamic_size=True)
    batches = []
    model.register_forward_hook(lambda module, args, out: batches.append(tuple(args[0].shape)))
    shapes = [(1, 3, 16, 16), (3, 3, 16, 16), (2, 3, 24, 24)]
    checks = run_parity(ort_session(tmp_path / "m.onnx"), model, shapes, "input", [("head", "head")], 1e-3, 1e-9)
    assert batches == [(3, 3, 16, 16), (2, 3, 24, 24)]
    assert [c.input_shape for c in checks] == shapes
    assert all(c.ok for c in checks)


def test_a_wrong_first_sample_is_still_found_at_batch_one(tmp_path, monkeypatch):
    # the batch-1 check compares onnxruntime's run on the first sample with PyTorch's first sample
    model = convspec.build(SPEC, seed=0).eval()
    export_onnx(model, SPEC, tmp_path / "m.onnx")
    session = ort_session(tmp_path / "m.onnx")

    class Tampered:
        def run(self, names, feeds):
            out = session.run(names, feeds)
            if feeds["input"].shape[0] == 1:
                out[0] = -out[0]
            return out

    try:
        run_parity(Tampered(), model, [(1, 3, 16, 16), (3, 3, 16, 16)], "input", [("head", "head")], 1e-3, 1e-9)
    except convspec.ExportError as err:
        failed = [c for c in err.checks if not c.ok]
        assert [c.input_shape for c in failed] == [(1, 3, 16, 16)]
    else:
        raise AssertionError("a negated batch-1 output passed")


def test_an_output_that_ignores_the_input_is_named_in_the_verify_line(tmp_path):
    # zero weights: the output is the bias whatever the input, so any graph computing the bias passes parity
    spec = """
name: constant
input: {channels: 3, size: [8, 8]}
layers:
  - {name: head, type: conv, out: 4, kernel: 3, init: {weight: zeros, bias: ones}}
"""
    result = export_onnx(None, spec, tmp_path / "c.onnx")
    verify_line = result.steps[[s.name for s in result.steps].index("verify")].detail
    assert "warning: output head barely depends on the input" in verify_line
    plain = export_onnx(None, SPEC, tmp_path / "m.onnx")
    assert "warning" not in plain.steps[[s.name for s in plain.steps].index("verify")].detail
