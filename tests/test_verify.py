"""Verification that tells a right ONNX graph from a wrong one: the parity criterion, `convspec verify`,
PyTorch's sizes in every opset, export limits found by `check --target onnx`, non-finite weights."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import convspec
from convspec import cli as cli_module
from convspec import export as export_module
from convspec.export import export_onnx
from convspec.onnx_checks import opset_problems
from convspec.opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from convspec.verify import ATOL, RTOL, compare_output, verify_onnx
from strategies import specs

ROOT = Path(__file__).parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
EXAMPLES = int(os.environ.get("CONVSPEC_EXPORT_EXAMPLES", "6"))

# ten conv + BatchNorm + SiLU layers with PyTorch's default init: outputs far below 1e-4
TINY = """\
name: tiny_outputs
input: {channels: 3, size: [32, 32]}
layers:
  - type: repeat
    name: stack
    times: 10
    layers:
      - {type: conv, out_channels: 16, kernel_size: 3, padding: 1, norm: batch, act: silu}
"""

# the shape of YOLOv5n: C3 blocks (two branches joined by Concat), SPPF, an upsampling head
YOLO_LIKE = """\
name: yolo_like
input: {channels: 3, size: [64, 64]}
layers:
  - {name: stem, type: conv, out_channels: 16, kernel_size: 6, stride: 2, padding: 2, norm: batch, act: silu}
  - {name: down1, type: conv, out_channels: 32, kernel_size: 3, stride: 2, padding: 1, norm: batch, act: silu}
  - name: c3_1
    type: block
    layers:
      - {name: cv1, type: conv, out_channels: 16, kernel_size: 1, norm: batch, act: silu}
      - name: m
        type: residual
        layers:
          - {type: conv, out_channels: 16, kernel_size: 1, norm: batch, act: silu}
          - {type: conv, out_channels: 16, kernel_size: 3, padding: 1, norm: batch, act: silu}
      - {name: cv2, type: conv, out_channels: 16, kernel_size: 1, norm: batch, act: silu, from: input}
      - {name: cat, type: concat, from: [m, cv2]}
      - {name: cv3, type: conv, out_channels: 32, kernel_size: 1, norm: batch, act: silu}
  - {name: down2, type: conv, out_channels: 64, kernel_size: 3, stride: 2, padding: 1, norm: batch, act: silu}
  - name: sppf
    type: block
    layers:
      - {name: cv1, type: conv, out_channels: 32, kernel_size: 1, norm: batch, act: silu}
      - {name: p1, type: pool, op: max, kernel_size: 5, stride: 1, padding: 2}
      - {name: p2, type: pool, op: max, kernel_size: 5, stride: 1, padding: 2}
      - {name: p3, type: pool, op: max, kernel_size: 5, stride: 1, padding: 2}
      - {name: cat, type: concat, from: [cv1, p1, p2, p3]}
      - {name: cv2, type: conv, out_channels: 64, kernel_size: 1, norm: batch, act: silu}
  - {name: lateral, type: conv, out_channels: 32, kernel_size: 1, norm: batch, act: silu}
  - {name: up, type: upsample, scale: 2}
  - {name: merge, type: concat, from: [up, c3_1]}
  - {name: head, type: conv, out_channels: 18, kernel_size: 1}
"""


def run(*args):
    return CliRunner().invoke(cli_module.cli, [str(a) for a in args])


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- tampering


def _tamper_outputs(proto: onnx.ModelProto, op: str) -> onnx.ModelProto:
    """A copy whose every output goes through one more node: Neg, or Mul by 0."""
    tampered = onnx.ModelProto()
    tampered.CopyFrom(proto)
    for index, output in enumerate(tampered.graph.output):
        raw = f"{output.name}_before_tampering"
        for node in tampered.graph.node:
            node.output[:] = [raw if o == output.name else o for o in node.output]
        if op == "Neg":
            tampered.graph.node.append(onnx.helper.make_node("Neg", [raw], [output.name], name=f"tamper{index}"))
        else:
            zero = f"tamper_zero{index}"
            tampered.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros((), np.float32), zero))
            tampered.graph.node.append(onnx.helper.make_node("Mul", [raw, zero], [output.name], name=f"tamper{index}"))
    return tampered


def _reverse_concats(proto: onnx.ModelProto) -> onnx.ModelProto:
    tampered = onnx.ModelProto()
    tampered.CopyFrom(proto)
    concats = [node for node in tampered.graph.node if node.op_type == "Concat"]
    assert concats
    for node in concats:
        node.input[:] = list(reversed(node.input))
    return tampered


TAMPERINGS = {"negated": lambda p: _tamper_outputs(p, "Neg"), "zeroed": lambda p: _tamper_outputs(p, "Mul"), "concat_reversed": _reverse_concats}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The two specs, exported once each (seed 0), with their files and specs."""
    folder = tmp_path_factory.mktemp("exported")
    files = {}
    for name, text in (("tiny", TINY), ("yolo", YOLO_LIKE)):
        spec = write(folder / f"{name}.yaml", text)
        export_onnx(None, spec, folder / f"{name}.onnx")
        files[name] = (folder / f"{name}.onnx", spec)
    return files


# ---------------------------------------------------------------- 1. the criterion


def _old_criterion_accepts(expected: np.ndarray, actual: np.ndarray) -> bool:
    """The element-wise rule with a fixed absolute tolerance that verification used to apply."""
    return bool(np.all(np.abs(expected - actual) <= 1e-4 + 1e-3 * np.abs(expected)))


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(-1, 1, allow_nan=False, width=32), min_size=1, max_size=50).filter(lambda v: max(map(abs, v)) > 1e-3),
    exponent=st.integers(-30, 6),
)
def test_zeroed_and_negated_outputs_fail_at_every_scale_and_rounding_passes(values, exponent):
    expected = (np.asarray(values, np.float64) * 10.0**exponent).astype(np.float32)
    scale = float(np.abs(expected).max())
    assume(scale > 100 * ATOL)
    assert not compare_output("y", (1,), expected, np.zeros_like(expected), RTOL, ATOL).ok
    assert not compare_output("y", (1,), expected, -expected, RTOL, ATOL).ok
    # float32 rounding of every value (what BatchNorm folding and other kernels change) passes
    rounded = (expected.astype(np.float64) * (1 + 1e-6)).astype(np.float32)
    check = compare_output("y", (1,), expected, rounded, RTOL, ATOL)
    assert check.ok and check.worst_rel <= 2e-6 and check.scale == pytest.approx(scale)


def test_non_finite_and_misshapen_onnxruntime_outputs_fail_with_a_reason():
    expected = np.ones((2, 3), np.float32)
    nan = expected.copy()
    nan[0, 1] = np.nan
    check = compare_output("y", (1,), expected, nan, RTOL, ATOL)
    assert not check.ok and "NaN in 1 of 6 values" in check.detail
    check = compare_output("y", (1,), expected, np.ones((3, 2), np.float32), RTOL, ATOL)
    assert not check.ok and "shape [3, 2]" in check.detail


def test_tiny_outputs_are_below_the_old_absolute_tolerance(exported):
    # the premise of the tampering tests below: the old rule accepted an all-zero output here
    model = convspec.build(TINY, seed=0).eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))).numpy()
    assert np.abs(y).max() < 1e-4
    assert _old_criterion_accepts(y, np.zeros_like(y)) and _old_criterion_accepts(y, -y)


# ---------------------------------------------------------------- 2. convspec verify


@pytest.mark.parametrize("name", ["tiny", "yolo"])
def test_the_untampered_file_verifies(name, exported):
    path, spec = exported[name]
    result = verify_onnx(path, spec)  # the seed comes from the file's metadata
    assert result.checks and all(c.ok for c in result.checks) and result.weights.endswith("seed 0")
    assert max(c.worst_rel for c in result.checks) < RTOL / 10  # a wide margin under the tolerance
    cli = run("verify", path, spec)
    assert cli.exit_code == 0, cli.output
    assert [line.split()[0] for line in cli.output.strip().splitlines()] == ["check", "verify", "verified"]
    assert "x max|PyTorch|, per output" in cli.output


@pytest.mark.parametrize(
    "name, tampering",
    [("tiny", "negated"), ("tiny", "zeroed"), ("yolo", "negated"), ("yolo", "zeroed"), ("yolo", "concat_reversed")],
)  # the plain stack has no Concat to reverse
def test_tampered_copies_are_not_verified(name, tampering, exported, tmp_path):
    path, spec = exported[name]
    bad = tmp_path / f"{tampering}.onnx"
    onnx.save(TAMPERINGS[tampering](onnx.load(path)), bad)
    with pytest.raises(convspec.ExportError) as failed:
        verify_onnx(bad, spec)
    message = str(failed.value)
    output = "stack" if name == "tiny" else "head"
    assert f"onnxruntime differs from PyTorch on output {output!r}" in message
    relative = [c.worst_rel for c in failed.value.checks]
    assert min(relative) > 100 * RTOL  # far off: zeroed 1, negated 2 (x max|PyTorch|), swapped joins 0.1 or more
    result = run("verify", bad, spec)
    assert result.exit_code == 1 and "x max|PyTorch|" in result.output and "Traceback" not in result.output


def test_a_file_another_tool_changed_but_kept_right_is_verified(exported, tmp_path):
    # what a simplifier or a deployment script does: batch fixed to 1, outputs renamed, shapes and metadata gone
    path, spec = exported["yolo"]
    proto = onnx.load(path)
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    old_name = proto.graph.output[0].name
    for node in proto.graph.node:
        node.output[:] = ["detections" if o == old_name else o for o in node.output]
    proto.graph.output[0].name = "detections"
    del proto.graph.value_info[:]
    del proto.metadata_props[:]
    onnx.save(proto, tmp_path / "changed.onnx")
    result = verify_onnx(tmp_path / "changed.onnx", spec, seed=0)
    assert {c.input_shape for c in result.checks} == {(1, 3, 64, 64)} and all(c.ok for c in result.checks)
    assert run("verify", tmp_path / "changed.onnx", spec, "--seed", "0").exit_code == 0


def test_verify_with_weights_from_a_checkpoint_and_a_state_dict(tmp_path):
    spec = write(tmp_path / "yolo.yaml", YOLO_LIKE)
    model = convspec.build(spec, seed=7)
    convspec.save_checkpoint(model, spec, tmp_path / "ck.pt")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    assert run("export", spec, "-o", tmp_path / "m.onnx", "--weights", tmp_path / "ck.pt").exit_code == 0
    meta = {p.key: p.value for p in onnx.load(tmp_path / "m.onnx").metadata_props}
    assert "convspec.seed" not in meta  # weights from a file: verify needs them given
    for weights in ("ck.pt", "sd.pt"):
        result = run("verify", tmp_path / "m.onnx", spec, "--weights", tmp_path / weights)
        assert result.exit_code == 0, result.output
    assert verify_onnx(tmp_path / "m.onnx", spec, model=model).checks
    # other weights (seed 0), or none named: not verified (1), or a usage error (2)
    other = run("verify", tmp_path / "m.onnx", spec, "--seed", "0")
    assert other.exit_code == 1 and "seed 0" in other.output
    unnamed = run("verify", tmp_path / "m.onnx", spec)
    assert unnamed.exit_code == 2 and "--weights" in unnamed.output


def test_verify_usage_and_io_errors_exit_2(exported, tmp_path):
    path, spec = exported["tiny"]
    assert run("verify", tmp_path / "missing.onnx", spec).exit_code == 2
    write(tmp_path / "junk.onnx", "not a model")
    junk = run("verify", tmp_path / "junk.onnx", spec)
    assert junk.exit_code == 2 and "not a readable ONNX model" in junk.output
    missing_weights = run("verify", path, spec, "--weights", tmp_path / "nope.pt")
    assert missing_weights.exit_code == 2 and "no such file" in missing_weights.output
    assert run("verify", path, spec, "--weights", tmp_path / "x.pt", "--seed", "1").exit_code == 2
    wrong_input = run("verify", path, spec, "--input", "1x3x16x16")  # the file's size is fixed at 32x32
    assert wrong_input.exit_code == 2 and "does not fit" in wrong_input.output
    for result in (junk, missing_weights, wrong_input):
        assert "Traceback" not in result.output


def test_verify_against_another_spec_is_not_verified(exported):
    path, _ = exported["tiny"]
    _, other = exported["yolo"]
    result = run("verify", path, other)
    assert result.exit_code == 1 and "Traceback" not in result.output


def test_verify_onnx_is_public_and_import_stays_torch_free():
    code = (
        "import sys, convspec; convspec.check('specs/small_cnn.yaml', target='onnx'); "
        "assert 'torch' not in sys.modules; assert 'verify_onnx' in convspec.__all__; "
        "f = convspec.verify_onnx; assert 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# ---------------------------------------------------------------- 3. PyTorch's sizes, or a located refusal


def _spec_text(layer: dict, size: list[int], channels: int = 2) -> str:
    return yaml.safe_dump({"input": {"channels": channels, "size": size}, "layers": [layer]}, sort_keys=False)


SHAPE_DISAGREEMENTS = {
    "nearest_1.3": ({"type": "upsample", "scale": 1.3}, [10, 10]),
    "bilinear_0.7": ({"type": "upsample", "scale": 0.7, "mode": "bilinear"}, [10, 10]),
    "nearest_1.3_one_axis": ({"type": "upsample", "scale": 1.3}, [8, 10]),  # 8 x 1.3 agrees, 10 x 1.3 does not
    "bilinear_1.3_one_axis": ({"type": "upsample", "scale": [1.3, 0.7], "mode": "bilinear"}, [8, 10]),
    "nearest_1.1_kept_axis": ({"type": "upsample", "scale": 1.1}, [8, 10]),  # PyTorch copies H (8 to 8) whatever the scale
    "nearest_2.05_doubled_axis": ({"type": "upsample", "scale": 2.05}, [10, 6]),  # and samples W (6 to 12) at scale 2
    "bilinear_1.1_kept_axis": ({"type": "upsample", "scale": 1.1, "mode": "bilinear"}, [8, 10]),
    "maxpool3d_ceil": ({"type": "pool", "op": "max", "kernel_size": 3, "padding": 1, "ceil_mode": True}, [3, 6, 5]),
    "avgpool_ceil": ({"type": "pool", "op": "avg", "kernel_size": 4, "stride": 4, "padding": 2, "ceil_mode": True}, [9, 9]),
    "avgpool_ceil_mixed": ({"type": "pool", "op": "avg", "kernel_size": 3, "padding": 1, "ceil_mode": True}, [3, 6, 5]),
}


@pytest.mark.parametrize("opset", [14, DEFAULT_OPSET])  # the other opsets' forms: the sweep over specs/ below
@pytest.mark.parametrize("case", list(SHAPE_DISAGREEMENTS))
def test_pytorch_sizes_where_onnx_shape_inference_used_to_disagree(case, opset, tmp_path):
    layer, size = SHAPE_DISAGREEMENTS[case]
    spec = write(tmp_path / "s.yaml", _spec_text(layer, size))
    out = tmp_path / "m.onnx"
    result = export_onnx(None, spec, out, opset=opset)  # checker, opset, shape inference and parity pass
    assert all(c.ok for c in result.checks)
    expected = convspec.check(spec).outputs[convspec.check(spec).layers[-1].name]
    proto = onnx.load(out)
    recorded = [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim][1:]
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True).graph.output[0]
    assert recorded == list(expected[1:]) == [d.dim_value for d in inferred.type.tensor_type.shape.dim][1:]
    model = convspec.build(spec, seed=0).eval()
    assert tuple(model(torch.randn(1, 2, *size)).shape[1:]) == tuple(expected[1:])


def test_a_resize_keeps_pytorchs_sample_positions_on_the_axes_its_scale_gets_right(tmp_path):
    # sizes on every axis would resample H at 10 / 8 = 1.25 instead of 1.3
    layer = {"type": "upsample", "scale": 1.3, "mode": "bilinear"}
    spec = write(tmp_path / "s.yaml", _spec_text(layer, [8, 10], channels=1))
    export_onnx(None, spec, tmp_path / "m.onnx")
    resizes = [n for n in onnx.load(tmp_path / "m.onnx").graph.node if n.op_type == "Resize"]
    axes = [onnx.helper.get_attribute_value(a) for n in resizes for a in n.attribute if a.name == "axes"]
    assert len(resizes) == 2 and axes == [[3]]  # W by size (13, not ONNX's 12), H by the spec's scale
    x = torch.arange(80, dtype=torch.float32).reshape(1, 1, 8, 10)
    import onnxruntime as ort

    (y,) = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})
    expected = torch.nn.functional.interpolate(x, scale_factor=1.3, mode="bilinear").numpy()
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-4)  # values up to 79: float32 rounding only


@pytest.mark.parametrize(
    "layer, size", [({"type": "upsample", "scale": 1.1}, None), ({"type": "upsample", "scale": 1.1, "mode": "bicubic"}, [8, 8])]
)
def test_a_scale_that_keeps_every_size_is_refused_because_onnxruntime_copies(layer, size, tmp_path):
    # PyTorch resamples 5 to 5 at scale 1.1 (3-D nearest, bicubic); onnxruntime's Resize returns its input.
    # (3-D nearest at a fixed size is written as index gathers, so only the dynamic size meets a Resize.)
    text = _spec_text(layer, size or [5, 5, 5], channels=1)
    spec = write(tmp_path / "s.yaml", text if size else text.replace("size:\n  - 5\n  - 5\n  - 5\n", "dims: 3\n"))
    model = convspec.build(spec, input_shape=(1, 1, *(size or [5, 5, 5]))).eval()
    x = torch.randn(1, 1, *(size or [5, 5, 5]))
    assert model(x).shape == x.shape and not torch.equal(model(x), x)
    with pytest.raises(convspec.ExportError) as refused:
        export_onnx(None, spec, tmp_path / "m.onnx", input_shape=(1, 1, 5, 5, 5) if size is None else None)
    (problem,) = refused.value.problems
    scale_line = next(i for i, line in enumerate(spec.read_text().splitlines(), 1) if "scale:" in line)
    assert "onnxruntime's Resize copies" in problem.message and problem.location.line == scale_line
    with pytest.raises(convspec.SpecError) as checked:
        convspec.check(spec, None if size else "1x1x5x5x5", target="onnx")
    assert [str(p) for p in checked.value.problems] == [str(problem)]
    if size is None:  # at a fixed size the same layer exports, as gathers
        fixed = write(tmp_path / "f.yaml", _spec_text(layer, [5, 5, 5], channels=1))
        assert all(c.ok for c in export_onnx(None, fixed, tmp_path / "f.onnx").checks)


def test_a_standalone_batch_norm_exports_at_the_lowest_opset(tmp_path):
    # onnx's version converter has no adapter from BatchNormalization-15 down; the older form means the same
    spec = write(tmp_path / "s.yaml", _spec_text({"type": "norm", "kind": "batch"}, [6, 6]))
    result = export_onnx(None, spec, tmp_path / "m.onnx", opset=14)
    assert result.node_counts == {"BatchNormalization": 1} and all(c.ok for c in result.checks)


@pytest.mark.parametrize(
    "layer",
    [
        {"type": "dropout", "p": 0.3},  # Identity-16
        {"type": "norm", "kind": "group", "groups": 2},  # Shape-15 with start / end
        {"type": "upsample", "size": [7, 9], "mode": "bilinear"},
        {"type": "conv", "out": 4, "kernel": 3, "act": "mish"},  # Mish exists from opset 18
    ],
    ids=["dropout", "group_norm", "upsample_size", "mish"],
)
def test_ops_newer_than_the_opset_are_written_in_its_forms(layer, tmp_path):
    spec = write(tmp_path / "s.yaml", _spec_text(layer, [12, 12], channels=4))
    result = export_onnx(None, spec, tmp_path / "m.onnx", opset=14)
    assert all(c.ok for c in result.checks) and "Mish" not in result.node_counts


def test_a_layer_norm_below_opset_17_is_refused_where_it_is_written(tmp_path):
    spec = write(tmp_path / "s.yaml", "input: {channels: 4, size: [8, 8]}\nlayers:\n  - {type: conv, out: 4, kernel: 3, norm: layer}\n")
    with pytest.raises(convspec.ExportError) as refused:
        export_onnx(None, spec, tmp_path / "m.onnx", opset=16)
    (problem,) = refused.value.problems
    assert problem.location.line == 3 and problem.location.column == spec.read_text().splitlines()[2].index("norm") + 1
    assert "--opset 17" in problem.message
    assert run("check", spec, "--target", "onnx", "--opset", "16").exit_code == 1
    assert run("check", spec, "--target", "onnx", "--opset", "17").exit_code == 0


def test_a_scale_float32_cannot_hold_is_refused_at_a_dynamic_size_with_its_location(tmp_path):
    spec = write(tmp_path / "s.yaml", "input: {channels: 2}\nlayers:\n  - {type: conv, out: 2, kernel: 1}\n  - {type: upsample, scale: 1.3}\n")
    with pytest.raises(convspec.ExportError) as refused:
        export_onnx(None, spec, tmp_path / "m.onnx")
    (problem,) = refused.value.problems
    text = spec.read_text().splitlines()
    assert (problem.location.line, problem.location.column) == (4, text[3].index("scale") + 1)
    assert "would make 12 of 10" in problem.message and "PyTorch makes 13" in problem.message and "input.size" in problem.message
    assert not (tmp_path / "m.onnx").exists()
    # a scale float32 holds exactly exports at any size
    write(spec, spec.read_text().replace("1.3", "1.5"))
    assert all(c.ok for c in export_onnx(None, spec, tmp_path / "m.onnx").checks)
    # one under which a size stays as it is samples there at scale 1 in PyTorch's 2-D kernels
    write(spec, spec.read_text().replace("1.5", "1.25"))
    with pytest.raises(convspec.ExportError) as refused:
        export_onnx(None, spec, tmp_path / "n.onnx")
    assert "nearest upsampling of 2 to 2 in H samples at scale 1, not 1.25" in str(refused.value)


@st.composite
def risky_specs(draw):
    """Random valid-looking specs plus the layers whose sizes ONNX and PyTorch can disagree on."""
    definition = draw(specs(max_layers=2))
    dims = len(definition["input"]["size"])
    extra = draw(st.sampled_from(["upsample", "pool", "transposed", "none"]))
    if extra == "upsample":
        definition["layers"].insert(0, {"type": "upsample", "scale": draw(st.sampled_from([1.3, 0.7, 1.5, 2.5, 0.35, 1.1, 1.25, 2.05])),
                                        "mode": draw(st.sampled_from(["nearest", {1: "linear", 2: "bilinear", 3: "trilinear"}[dims]]))})
    elif extra == "pool":
        k = draw(st.integers(2, 4))
        definition["layers"].insert(0, {"type": "pool", "op": draw(st.sampled_from(["max", "avg"])), "kernel_size": k,
                                        "stride": draw(st.integers(1, 4)), "padding": draw(st.integers(0, k // 2)), "ceil_mode": True})
    elif extra == "transposed":
        definition["layers"].insert(0, {"type": "transposed", "out": 2, "kernel_size": 3, "stride": draw(st.integers(1, 2)),
                                        "dilation": 2, "output_padding": 1})
    if draw(st.integers(0, 3)) == 0:
        del definition["input"]["size"]  # a dynamic size: the export limits of the dynamic case
        definition["input"]["dims"] = dims
    return yaml.safe_dump(definition, sort_keys=False)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@example(
    text=yaml.safe_dump({"input": {"channels": 1, "size": [8, 10]}, "layers": [{"type": "upsample", "scale": 1.3}, {"type": "norm", "kind": "batch"}]}),
    opset=14,
)
@example(text=yaml.safe_dump({"input": {"channels": 1, "size": [8, 10]}, "layers": [{"type": "upsample", "scale": 1.1}]}), opset=14)
@example(text=yaml.safe_dump({"input": {"channels": 1, "size": [5, 5, 5]}, "layers": [{"type": "upsample", "scale": 1.1}]}), opset=18)
@given(text=risky_specs(), opset=st.sampled_from([14, 16, 17, DEFAULT_OPSET, DEFAULT_OPSET, 19, 22, MAX_OPSET]))
def test_every_valid_spec_exports_or_is_refused_with_a_location(text, opset, tmp_path_factory):
    try:
        report = convspec.check(text)
    except convspec.SpecError:
        assume(False)
    assume(report.valid)
    out = tmp_path_factory.mktemp("risky") / "m.onnx"
    try:
        result = export_onnx(None, text, out, opset=opset)
    except convspec.ExportError as refused:
        assert refused.problems
        for problem in refused.problems:  # every refusal points at the layer and key to change
            assert problem.location.line is not None and problem.layer, str(problem)
        assert not out.exists()
        # and `check --target onnx` tells the same before exporting
        with pytest.raises(convspec.SpecError) as checked:
            convspec.check(text, target="onnx", opset=opset)
        assert {str(p) for p in checked.value.problems} == {str(p) for p in refused.problems}
        return
    assert all(c.ok for c in result.checks)
    assert convspec.check(text, target="onnx", opset=opset).valid


# ---------------------------------------------------------------- 4. check --target onnx, a quiet onnxruntime


TRANSPOSED = """\
input: {channels: 2, size: [9, 9]}
layers:
  - {name: up, type: transposed, out_channels: 2, kernel_size: 3, stride: 1, dilation: 2, output_padding: 1}
"""


def test_transposed_output_padding_is_an_export_limit_check_target_onnx_reports(tmp_path):
    spec = write(tmp_path / "t.yaml", TRANSPOSED)
    assert run("check", spec).exit_code == 0  # valid in PyTorch: it builds and runs
    model = convspec.build(spec).eval()
    assert tuple(model(torch.randn(1, 2, 9, 9)).shape) == convspec.check(spec).outputs["up"]
    result = run("check", spec, "--target", "onnx")
    assert result.exit_code == 1
    line = result.output.strip()
    column = TRANSPOSED.splitlines()[2].index("output_padding") + 1
    assert line.startswith(f"{spec}:3:{column}: layers[0] 'up' (transposed): output_padding=1 in H")
    assert "onnxruntime's ConvTranspose refuses" in line and "use output_padding 0 in H" in line
    as_json = run("check", spec, "--target", "onnx", "--format", "json")
    assert as_json.exit_code == 1 and f'"column": {column}' in as_json.output
    with pytest.raises(convspec.SpecError) as checked:
        convspec.check(spec, target="onnx")
    report = checked.value.report
    assert not report.valid and report.errors[0].location.line == 3
    with pytest.raises(convspec.ExportError) as refused:
        export_onnx(None, spec, tmp_path / "t.onnx")
    assert [str(p) for p in refused.value.problems] == [str(p) for p in report.errors]
    # an opset to check for, and usage errors
    assert run("check", spec, "--target", "onnx", "--opset", "22").exit_code == 1
    assert run("check", spec, "--opset", "22").exit_code == 2
    assert run("check", spec, "--target", "onnx", "--opset", "13").exit_code == 2
    assert run("check", spec, "--target", "tflite").exit_code == 2


def test_check_target_onnx_passes_an_exportable_spec_and_knows_dynamic_sizes(tmp_path):
    assert run("check", "specs/small_cnn.yaml", "--target", "onnx").exit_code == 0
    spec = write(tmp_path / "a.yaml", "input: {channels: 3, size: [16, 16]}\nlayers:\n  - {type: adaptive_pool, op: avg, size: 3}\n")
    assert run("check", spec, "--target", "onnx").exit_code == 0
    dynamic = run("check", spec, "--target", "onnx", "--dynamic-size")
    column = spec.read_text().splitlines()[2].index("size") + 1
    assert dynamic.exit_code == 1 and f"{spec}:3:{column}:" in dynamic.output and "adaptive_pool to size [3, 3]" in dynamic.output


WARNS = """\
import onnxruntime as ort, sys
sys.path.insert(0, sys.argv[3])
from convspec.verify import ort_session
path = sys.argv[1]
if sys.argv[2] == "default":
    ort.InferenceSession(path, providers=["CPUExecutionProvider"])
else:
    ort_session(path)
"""


def test_onnxruntime_log_lines_are_silenced(tmp_path, exported):
    # a file whose declared output shape disagrees with what onnxruntime infers: it warns while loading
    path, _ = exported["tiny"]
    proto = onnx.load(path)
    proto.graph.output[0].type.tensor_type.shape.dim[2].dim_value = 31
    onnx.save(proto, tmp_path / "odd.onnx")
    script = write(tmp_path / "warns.py", WARNS)
    noisy = subprocess.run([sys.executable, script, tmp_path / "odd.onnx", "default", ROOT], cwd=ROOT, capture_output=True, text=True)
    assert "onnxruntime" in noisy.stderr  # the control: onnxruntime does log here by default
    quiet = subprocess.run([sys.executable, script, tmp_path / "odd.onnx", "quiet", ROOT], cwd=ROOT, capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""


# ---------------------------------------------------------------- 5. circular padding, opsets and names


CIRCULAR = """\
input: {channels: 2, size: [7, 9]}
layers:
  - {name: wrap, type: conv, out_channels: 3, kernel_size: [3, 5], padding: [1, 2], padding_mode: circular}
  - {name: wrap_same, type: conv, out_channels: 2, kernel_size: 2, padding: same, padding_mode: circular}
"""


@pytest.mark.parametrize("opset", [14, 18, 19])
def test_circular_padding_is_lowered_below_opset_19(opset, tmp_path):
    spec = write(tmp_path / "c.yaml", CIRCULAR)
    result = export_onnx(None, spec, tmp_path / "c.onnx", opset=opset)
    assert all(c.ok for c in result.checks)
    proto = onnx.load(tmp_path / "c.onnx")
    pads = [n for n in proto.graph.node if n.op_type == "Pad"]
    if opset >= 19:
        assert pads and all(onnx.helper.get_attribute_value(a) == b"wrap" for n in pads for a in n.attribute if a.name == "mode")
    else:
        assert not pads and "Slice" in result.node_counts and "Concat" in result.node_counts
    assert opset_problems(proto) == []
    assert {n.name.split("/")[0] for n in proto.graph.node} == {"wrap", "wrap_same"}


def _model(opset: int, *nodes: onnx.NodeProto) -> onnx.ModelProto:
    graph = onnx.helper.make_graph(
        list(nodes), "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 1, 4, 4])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", "c", "h", "w"])],
        [onnx.numpy_helper.from_array(np.ones(8, np.int64), "p"), onnx.numpy_helper.from_array(np.ones(4, np.float32), "s")],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])


def test_opset_problems_find_what_the_checker_and_onnxruntime_let_through():
    wrap = onnx.helper.make_node("Pad", ["x", "p"], ["y"], name="w/Pad", mode="wrap")
    proto = _model(18, wrap)
    onnx.checker.check_model(proto, full_check=True)  # the checker does not notice
    assert opset_problems(proto) == ["w/Pad (Pad): mode='wrap' is not a value of Pad-18 (opset 18)"]
    assert opset_problems(_model(19, wrap)) == []
    resize = onnx.helper.make_node("Resize", ["x", "", "s"], ["y"], name="r/Resize", antialias=0)
    assert opset_problems(_model(17, resize)) == ["r/Resize (Resize): attribute 'antialias' does not exist in Resize-13 (opset 17)"]
    assert opset_problems(_model(18, resize)) == []
    gelu = onnx.helper.make_node("Gelu", ["x"], ["y"], name="g/Gelu")
    assert opset_problems(_model(18, gelu)) == ["g/Gelu (Gelu): Gelu does not exist in opset 18"]


@pytest.fixture(scope="module")
def traced_specs():
    """Each example spec traced once by torch's exporter (opset 18), with what finishing it needs."""
    traced = {}
    for path in SPECS:
        report = convspec.check(path)
        model = convspec.build(path, seed=0).eval()
        example, example_report = export_module._example(report, None)
        proto = export_module.trace_model(model, example, list(example_report.outputs), report.spec.input.size is None)
        traced[path.stem] = (proto, report, example_report)
    return traced


def test_every_spec_is_valid_with_its_names_at_every_supported_opset(traced_specs, one_thread):
    # the opset is all that differs after torch's exporter: each traced model is finished at each opset
    failures = []
    for stem, (raw, report, example_report) in traced_specs.items():
        dynamic = report.spec.input.size is None
        names_at = {}
        for opset in range(MIN_OPSET, MAX_OPSET + 1):
            proto = onnx.ModelProto()
            proto.CopyFrom(raw)
            proto = export_module.finish_model(proto, opset, report, example_report, dynamic)
            assert export_module._opset_of(proto) == opset
            failures += [f"{stem} at opset {opset}: {p}" for p in opset_problems(proto)]
            names = [n.name for n in proto.graph.node]
            assert all(names) and len(set(names)) == len(names), (stem, opset)
            names_at[opset] = {name.rsplit("/", 1)[0] for name in names if "/" in name}
        layered = names_at[DEFAULT_OPSET]
        assert layered, stem
        for opset, layers in names_at.items():  # no opset loses the layer names (Pad_1, Conv_1)
            assert layers == layered, (stem, opset, sorted(layered - layers)[:5])
    assert failures == []


def test_the_docs_give_the_opset_range_the_code_enforces(tmp_path):
    for page in ("docs/export.md", "docs/cli.md"):
        ranges = set(re.findall(r"use (\d+) to (\d+)", (ROOT / page).read_text()))
        assert ranges == {(str(MIN_OPSET), str(MAX_OPSET))}, page
    result = run("export", "specs/small_cnn.yaml", "-o", tmp_path / "m.onnx", "--opset", MAX_OPSET + 1)
    assert result.exit_code == 2 and f"use {MIN_OPSET} to {MAX_OPSET}" in result.output


# ---------------------------------------------------------------- 6. weights that are not finite


def test_nan_weights_are_named_not_blamed_on_onnxruntime(tmp_path):
    model = convspec.build("specs/small_cnn.yaml", seed=0)
    with torch.no_grad():
        model.get_submodule("conv2").conv.weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(convspec.ExportError) as refused:
        export_onnx(model, "specs/small_cnn.yaml", tmp_path / "m.onnx")
    message = str(refused.value)
    assert "weights are not finite" in message and "conv2.conv.weight (1 of " in message and "NaN" in message
    assert "onnxruntime" not in message and not (tmp_path / "m.onnx").exists()
    torch.save(model.state_dict(), tmp_path / "nan.pt")
    result = run("export", "specs/small_cnn.yaml", "-o", tmp_path / "m.onnx", "--weights", tmp_path / "nan.pt")
    assert result.exit_code == 1 and "conv2.conv.weight" in result.output and "onnxruntime" not in result.output


def test_finite_weights_whose_outputs_overflow_are_told_apart(tmp_path):
    spec = write(tmp_path / "big.yaml", (
        "input: {channels: 3, size: [8, 8]}\nlayers:\n"
        "  - {type: conv, out: 4, kernel: 3, init: {weight: {constant: 1.0e+30}}}\n"
        "  - {type: conv, out: 4, kernel: 3, init: {weight: {constant: 1.0e+30}}}\n"
    ))
    with pytest.raises(convspec.ExportError) as refused:
        export_onnx(None, spec, tmp_path / "m.onnx")
    assert "the weights are finite, so values overflow float32" in str(refused.value)


def test_a_file_with_nan_weights_is_not_verified_and_says_so(exported, tmp_path):
    path, spec = exported["tiny"]
    proto = onnx.load(path)
    init = max(proto.graph.initializer, key=lambda i: int(np.prod(i.dims)))
    values = onnx.numpy_helper.to_array(init).copy()
    values.flat[0] = np.nan
    init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
    onnx.save(proto, tmp_path / "nan.onnx")
    result = run("verify", tmp_path / "nan.onnx", spec)
    assert result.exit_code == 1
    assert "onnxruntime gives NaN" in result.output and f"the file's own weights are not finite: {init.name}" in result.output


def test_a_seed_other_than_the_files_is_named_when_verification_fails(tmp_path):
    spec = write(tmp_path / "s.yaml", "input: {channels: 3, size: [8, 8]}\nlayers:\n  - {name: c, type: conv, out: 4, kernel: 3}\n")
    assert run("export", spec, "-o", tmp_path / "m.onnx").exit_code == 0  # seed 0, recorded
    other = run("verify", tmp_path / "m.onnx", spec, "--seed", "1")
    assert other.exit_code == 1
    assert "the file records seed 0 (convspec.seed), and seed 1 builds other weights" in other.output
    assert run("verify", tmp_path / "m.onnx", spec).exit_code == 0


def test_a_file_with_other_outputs_is_not_the_specs_network(tmp_path):
    one = write(tmp_path / "one.yaml", "input: {channels: 3, size: [8, 8]}\nlayers:\n  - {name: c, type: conv, out: 4, kernel: 3}\n")
    two = write(tmp_path / "two.yaml", "input: {channels: 3, size: [8, 8]}\noutputs: [a, c]\nlayers:\n  - {name: a, type: conv, out: 4, kernel: 3}\n  - {name: c, type: conv, out: 4, kernel: 3}\n")
    assert run("export", one, "-o", tmp_path / "m.onnx").exit_code == 0
    result = run("verify", tmp_path / "m.onnx", two)
    assert result.exit_code == 1 and "the file has 1 output (c), the spec 2 (a, c): not the spec's network" in result.output


def test_an_input_the_spec_does_not_take_is_a_usage_error(tmp_path):
    spec = write(tmp_path / "u.yaml", "input: {channels: 1}\nlayers:\n  - {name: down, type: conv, out: 2, kernel: 2, stride: 2}\n"
                 "  - {name: up, type: transposed, out: 2, kernel: 2, stride: 2}\n  - {name: skip, type: conv, out: 2, kernel: 1, from: input}\n"
                 "  - {name: cat, type: concat, from: [up, skip]}\n")
    assert run("export", spec, "-o", tmp_path / "u.onnx", "--dynamic-size").exit_code == 0
    odd = run("verify", tmp_path / "u.onnx", spec, "--input", "1x1x9x8")
    assert odd.exit_code == 2, odd.output
    assert "--input 1x1x9x8 does not fit the spec" in odd.output and "'cat'" in odd.output
    assert run("verify", tmp_path / "u.onnx", spec, "--input", "1x1x10x8").exit_code == 0
