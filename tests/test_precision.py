"""Reduced-precision export (fp16, int8, int8-dynamic), --simplify, calibration folders and the shapes written for viewers."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.calibration import Calibration, drawn_calibration, load_calibration
from convspec.cli import cli
from convspec.edge_shapes import layer_outputs, record_edge_shapes
from convspec.errors import ExportError, InputError
from convspec.onnx_checks import dims_of
from convspec.precision import TOLERANCES, export_precision, tolerance_for
from convspec.precision_convert import read_float16_outputs as _read_float16_outputs

pytest.importorskip("onnxconverter_common")
pytest.importorskip("onnxslim")

ROOT = Path(__file__).resolve().parent.parent
SMALL_CNN = ROOT / "specs" / "small_cnn.yaml"
SMALL_CNN_SAMPLE = (1, 3, 32, 32)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def metadata(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


@pytest.fixture(scope="module")
def calibration_dir(tmp_path_factory) -> Path:
    """Twelve samples for small_cnn: a batch of 8 in one file, four single ones."""
    folder = tmp_path_factory.mktemp("calibration")
    generator = np.random.default_rng(3)
    np.save(folder / "a_batch.npy", generator.uniform(0, 1, (8, 3, 32, 32)).astype(np.float32))
    for i in range(4):
        np.save(folder / f"b_{i}.npy", generator.uniform(0, 1, (3, 32, 32)))  # float64, one sample: cast and batched
    (folder / "notes.txt").write_text("not a sample")
    return folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory, calibration_dir):
    """small_cnn exported once per precision through the CLI: {precision: (result, path)}."""
    folder = tmp_path_factory.mktemp("exports")
    done = {}
    for precision in ("fp32", "fp16", "int8"):
        path = folder / f"small_{precision}.onnx"
        extra = {"fp16": ["--simplify"], "int8": ["--calibration", calibration_dir]}.get(precision, [])
        done[precision] = (run("export", SMALL_CNN, "-o", path, *(["--precision", precision] if precision != "fp32" else []), *extra), path)
    return done


# ---------------------------------------------------------------- calibration sets


@settings(max_examples=30, deadline=None)
@given(count=st.integers(1, 40), sizes=st.lists(st.integers(1, 9), min_size=1, max_size=4))
def test_batches_keep_every_sample_in_order(count, sizes):
    calibration = drawn_calibration((1, 2, 3), count=count)
    batches = calibration.batches(tuple(sizes))
    assert np.array_equal(np.concatenate(batches), np.concatenate(calibration.samples))
    expected = [sizes[min(i, len(sizes) - 1)] for i in range(len(batches))]
    assert [b.shape[0] for b in batches[:-1]] == expected[:-1]
    assert 1 <= batches[-1].shape[0] <= expected[-1]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), index=st.integers(0, 7))
def test_the_hash_follows_the_data(seed, index):
    first = drawn_calibration((1, 3, 4, 4), count=8, seed=seed)
    again = drawn_calibration((1, 3, 4, 4), count=8, seed=seed)
    assert first.sha256 == again.sha256
    changed = [s.copy() for s in first.samples]
    changed[index].flat[0] += 1.0
    assert Calibration(tuple(changed), "", "", False) is not None
    from convspec.calibration import _hash

    assert _hash(changed) != first.sha256


def test_a_folder_of_npy_files(calibration_dir):
    calibration = load_calibration(calibration_dir, SMALL_CNN_SAMPLE)
    assert calibration.count == 12 and not calibration.drawn
    assert all(s.shape == SMALL_CNN_SAMPLE and s.dtype == np.float32 for s in calibration.samples)
    assert calibration.sha256 == load_calibration(calibration_dir, SMALL_CNN_SAMPLE).sha256


def test_images_are_resized_and_scaled(tmp_path):
    image = pytest.importorskip("PIL.Image")
    pixels = np.zeros((10, 20, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    image.fromarray(pixels).save(tmp_path / "red.png")
    calibration = load_calibration(tmp_path, SMALL_CNN_SAMPLE)
    (sample,) = calibration.samples
    assert sample.shape == SMALL_CNN_SAMPLE
    assert np.allclose(sample[0, 0], 1.0) and np.allclose(sample[0, 1:], 0.0)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: None, "holds no .npy or image"),
        (lambda d: np.save(d / "x.npy", np.zeros((3, 16, 16), np.float32)), "x.npy: shape 3x16x16 does not fit the input Nx3x32x32"),
        (lambda d: np.save(d / "x.npy", np.full((3, 32, 32), np.nan, np.float32)), "x.npy: holds NaN or inf"),
        (lambda d: (d / "x.npy").write_bytes(b"garbage"), "x.npy: not a readable .npy array"),
        (lambda d: (d / "x.png").write_bytes(b"garbage"), "x.png: not a readable image"),
    ],
)
def test_bad_calibration_folders_are_input_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        load_calibration(tmp_path, SMALL_CNN_SAMPLE)


def test_not_a_folder(tmp_path):
    with pytest.raises(InputError, match="not a folder"):
        load_calibration(tmp_path / "missing", SMALL_CNN_SAMPLE)


def test_unknown_precision_has_a_hint():
    with pytest.raises(InputError, match="did you mean 'int8'"):
        tolerance_for("int9")
    assert [TOLERANCES[p].rtol for p in ("fp32", "fp16", "int8")] == sorted(TOLERANCES[p].rtol for p in ("fp32", "fp16", "int8"))


# ---------------------------------------------------------------- shapes for viewers


def test_layer_outputs_are_found_by_node_names():
    make = onnx.helper.make_node
    graph = onnx.helper.make_graph(
        [make("Conv", ["x", "w"], ["c"], name="block.conv/Conv"), make("Relu", ["c"], ["r"], name="block.conv/Relu"),
         make("QuantizeLinear", ["r", "s"], ["q"], name="r_QuantizeLinear"), make("Add", ["r", "x"], ["y"], name="block/Add")],
        "g", [], [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )  # fmt: skip
    found = layer_outputs(graph, ["block", "block.conv", "missing"])
    # `r` also leaves the block (to a node no layer made); the last tensor handed on is the block's output
    assert found == {"block": ["r", "y"], "block.conv": ["r"]}


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=6))
def test_a_chain_of_layers_hands_on_each_layers_last_tensor(sizes):
    make = onnx.helper.make_node
    nodes, current, last = [], "x", {}
    for layer, count in enumerate(sizes):
        for step in range(count):
            nodes.append(make("Relu", [current], [f"t{len(nodes)}"], name=f"block.l{layer}/Relu" + (f"_{step}" if step else "")))
            current = nodes[-1].output[0]
        last[f"block.l{layer}"] = current
    graph = onnx.helper.make_graph(nodes, "g", [], [onnx.helper.make_tensor_value_info(current, onnx.TensorProto.FLOAT, None)])
    found = layer_outputs(graph, ["block", *last])
    assert found == {"block": [current], **{layer: [tensor] for layer, tensor in last.items()}}


def test_every_layer_output_has_the_checkers_shape(exported):
    result, path = exported["fp32"]
    assert result.exit_code == 0, result.output
    proto = onnx.load(str(path))
    report = convspec.check(SMALL_CNN)
    shapes = {info.name: info for info in proto.graph.value_info}
    outputs = layer_outputs(proto.graph, [layer.name for layer in report.layers])
    written = 0
    for layer in report.layers:
        if layer.name not in outputs or outputs[layer.name][-1] not in shapes:
            continue
        info = shapes[outputs[layer.name][-1]]
        assert info.type.tensor_type.shape.dim[0].dim_param == "batch"
        assert dims_of(info)[1:] == list(layer.output_shape[1:]), layer.name
        written += 1
    assert written == len(report.layers) - 1  # all but `fc`, the graph's output (its shape is on the output)
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    assert {i.name: dims_of(i) for i in inferred.graph.value_info} == {i.name: dims_of(i) for i in proto.graph.value_info}


def test_a_disagreement_with_shape_inference_is_located(exported):
    proto = onnx.load(str(exported["fp32"][1]))
    report = convspec.check(SMALL_CNN)
    layers = [(layer.name, replace(layer, output_shape=(1, 99, 16, 16)) if layer.name == "conv2" else layer) for layer in report.layers]
    with pytest.raises(ExportError) as caught:
        record_edge_shapes(proto, layers, report.spec, dynamic_spatial=False)
    (problem,) = caught.value.problems
    assert problem.location.line == 19 and "conv2" in problem.layer
    assert "ONNX shape inference gives" in problem.message and "99" in problem.message


# ---------------------------------------------------------------- fp16


def test_fp16_export_is_verified_and_half_the_size(exported):
    result, path = exported["fp16"]
    assert result.exit_code == 0, result.output
    assert "fp16 against PyTorch float32 on 32 inputs: fc: max|diff|" in result.output
    assert "top-1 agrees on" in result.output and "allowed 0.01 x max|PyTorch|" in result.output
    proto = onnx.load(str(path))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    weights = [i for i in proto.graph.initializer if i.name.endswith("weight")]
    assert weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    meta = metadata(path)
    assert meta["convspec.precision"] == "fp16" and "convspec.seed" in meta and "convspec.spec_sha256" in meta
    accuracy = json.loads(meta["convspec.accuracy"])
    assert accuracy["inputs"] == 32 and accuracy["outputs"]["fc"]["max_rel_diff"] < 0.01
    assert meta["convspec.calibration_sha256"] == drawn_calibration(SMALL_CNN_SAMPLE).sha256
    # and `convspec verify` reads the precision from the file and verifies with its tolerance
    verified = run("verify", path, SMALL_CNN)
    assert verified.exit_code == 0, verified.output
    assert "0.01 x max|PyTorch|" in verified.output


def test_the_fp16_tolerance_still_fails_a_wrong_file(exported, tmp_path):
    proto = onnx.load(str(exported["fp16"][1]))
    for init in proto.graph.initializer:
        if init.name == "fc.bias":
            init.CopyFrom(onnx.numpy_helper.from_array(-onnx.numpy_helper.to_array(init) * 50, init.name))
    onnx.save(proto, str(tmp_path / "wrong.onnx"))
    verified = run("verify", tmp_path / "wrong.onnx", SMALL_CNN)
    assert verified.exit_code == 1
    assert "onnxruntime differs from PyTorch on output 'fc'" in verified.output and "0.01 x max|PyTorch|" in verified.output


def test_a_graph_output_read_inside_the_graph_stays_float16():
    make = onnx.helper.make_node
    cast = make("Cast", ["f16"], ["features"], name="features/Relu_cast", to=onnx.TensorProto.FLOAT)
    reader = make("ReduceMean", ["features"], ["mean"], name="gap/ReduceMean")
    graph = onnx.helper.make_graph([make("Relu", ["x"], ["f16"], name="features/Relu"), cast, reader], "g", [],
                                   [onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, None)])
    proto = onnx.helper.make_model(graph)
    _read_float16_outputs(proto)
    assert list(proto.graph.node[2].input) == ["f16"] and list(proto.graph.node[1].input) == ["f16"]


# ---------------------------------------------------------------- int8


def test_int8_with_a_calibration_folder(exported, calibration_dir):
    result, path = exported["int8"]
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    assert "int8 against PyTorch float32 on 12 inputs" in result.output
    proto = onnx.load(str(path))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert {"conv1/Conv", "conv2/Conv", "fc/Gemm"} <= {node.name for node in proto.graph.node}  # still named after the spec
    meta = metadata(path)
    assert meta["convspec.precision"] == "int8"
    assert meta["convspec.calibration_sha256"] == load_calibration(calibration_dir, SMALL_CNN_SAMPLE).sha256
    assert path.stat().st_size < exported["fp32"][1].stat().st_size


def test_int8_below_the_threshold_fails_naming_layers(tmp_path):
    out = tmp_path / "m.onnx"
    result = run("export", SMALL_CNN, "-o", out, "--precision", "int8", "--rtol", "0")
    assert "warning: no --calibration" in result.output and "say little about real inputs" in result.output
    assert result.exit_code == 1
    assert "the int8 model is not accurate enough" in result.output
    located = [line for line in result.output.splitlines() if "int8 output differs from float32 here" in line]
    assert 1 <= len(located) <= 3
    assert all(line.startswith(f"{SMALL_CNN}:") for line in located)  # file:line:col of the spec layer
    assert "Traceback" not in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing half-written, no staging left


def test_int8_dynamic(tmp_path):
    said = []
    result = export_precision(None, SMALL_CNN, tmp_path / "m.onnx", precision="int8-dynamic", on_warning=said.append)
    assert len(said) == 1 and said[0].startswith("no --calibration: int8-dynamic's accuracy is measured on")
    ops = {node.op_type for node in onnx.load(str(result.path)).graph.node}
    assert "DynamicQuantizeLinear" in ops
    assert result.top1 is not None and result.top1 >= TOLERANCES["int8-dynamic"].min_top1
    assert result.calibration.drawn


# ---------------------------------------------------------------- simplify


def test_simplify_verifies_again(exported):
    result, path = exported["fp16"]  # exported with --simplify
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    slim = next(i for i, line in enumerate(lines) if line.startswith("slim "))
    assert "onnxslim:" in lines[slim] and "verified again" in lines[slim]
    assert lines[slim + 1].startswith("convert ")  # the simplified graph is the one converted
    assert metadata(path)["convspec.simplified"] == "onnxslim"


def test_a_simplified_model_that_does_not_verify_is_refused(tmp_path, monkeypatch):
    import convspec.precision as precision

    def broken(proto):
        for init in proto.graph.initializer:
            if init.name == "fc.bias":
                init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) + 100.0, init.name))
        return proto

    monkeypatch.setattr(precision, "simplify_model", broken)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="the simplified model does not verify"):
        export_precision(None, SMALL_CNN, out, precision="fp32", simplify=True)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- usage


@pytest.mark.parametrize(
    "args, message",
    [
        (["--precision", "fp16", "--no-verify"], "always verify"),
        (["--calibration", "."], "go with --precision"),
        (["--precision", "int8", "--calibration", "/nonexistent-folder"], "does not exist"),
        (["--precision", "int9"], "'int9' is not one of"),
        (["--precision", "fp16", "--min-top1", "1.5"], "1.5"),
    ],
)
def test_usage_errors_exit_2(tmp_path, args, message):
    result = run("export", SMALL_CNN, "-o", tmp_path / "m.onnx", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_verify_of_an_int8_file_says_its_ranges_follow_its_calibration(tmp_path):
    # calibrated on [0, 1): verify's standard-normal inputs fall outside the quantized ranges
    folder = tmp_path / "calibration"
    folder.mkdir()
    for i in range(8):
        np.save(folder / f"s{i}.npy", np.random.default_rng(i).random((1, 3, 32, 32)).astype(np.float32))
    out = tmp_path / "m.onnx"
    export_precision(None, SMALL_CNN, out, precision="int8", calibration=folder, min_top1=0.0)
    with pytest.raises(convspec.ExportError) as caught:
        convspec.verify_onnx(out, SMALL_CNN)
    assert any("the file is int8: its ranges were calibrated on the inputs its metadata names" in str(p) for p in caught.value.problems)
