"""ONNX export: every spec and random specs export and verify; the exporter's traps are handled."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import convspec
from convspec.trace import load_and_check  # an invalid spec's report too
from convspec import cli as cli_module
from convspec.export import DEFAULT_OPSET, export_onnx
from convspec.geometry import onnx_ceil_pool
from convspec.kinds import ExportTarget, registry
from support import ort_run  # tests/ is on sys.path (conftest.py)
from strategies import specs

SPECS = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))
EXAMPLES = int(os.environ.get("CONVSPEC_EXPORT_EXAMPLES", "6"))


def spec(*layers, channels=3, size=(16, 16), **extra):
    inp = {"channels": channels, **({"size": list(size)} if size else {})}
    return {"input": inp, "layers": list(layers), **extra}


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_exports_and_verifies(path, tmp_path):
    out = tmp_path / "model.onnx"
    result = export_onnx(None, path, out)
    assert out.is_file() and not (tmp_path / "model.onnx.data").exists()  # one self-contained file
    assert [s.name for s in result.steps] == ["export", "check", "verify", "write"]
    assert result.checks and all(c.ok for c in result.checks)
    assert {c.input_shape[0] for c in result.checks} >= {1, 3}  # batches other than the exported one
    assert list(os.listdir(tmp_path)) == ["model.onnx"]  # no staging leftovers


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_random_specs_export_and_verify(data, tmp_path_factory):
    definition = data.draw(specs(max_layers=3))
    report = load_and_check(definition)
    assume(report.valid)
    out = tmp_path_factory.mktemp("random") / "m.onnx"
    limited = [layer for layer in report.walk() if registry[layer.type].export_limit and registry[layer.type].export_limit(layer, ExportTarget(DEFAULT_OPSET, False))]
    if limited:  # a restriction of the runtime, refused before exporting with the layer's location
        with pytest.raises(convspec.ExportError) as refused:
            export_onnx(None, definition, out)
        assert "layers[" in str(refused.value) and "onnxruntime" in str(refused.value) and not out.exists()  # located, and why
        return
    result = export_onnx(None, definition, out)
    assert all(c.ok for c in result.checks)


@pytest.mark.parametrize(
    "layers, channels, size",
    [
        ([{"type": "conv", "out": 4, "kernel": 4, "stride": 2, "padding": "same"}], 3, (15, 16)),
        ([{"type": "conv", "out": 4, "kernel": [2, 4], "stride": [2, 3], "dilation": [1, 2], "padding": "same"}], 3, (17, 19)),
        ([{"type": "conv", "out": 4, "kernel": 3, "padding": 2, "padding_mode": "reflect"}], 3, (9, 9)),
        ([{"type": "conv", "out": 4, "kernel": 2, "padding": "same", "padding_mode": "circular"}], 3, (9, 9)),
        ([{"type": "transposed", "out": 6, "kernel": 3, "stride": 2, "output_padding": 1, "groups": 3, "padding": 1}], 3, (7, 8)),
        ([{"type": "transposed", "out": 4, "kernel": 4, "stride": 2, "padding": "same"}], 2, (5,)),
        ([{"type": "fixed", "filter": "gaussian", "kernel_size": 5, "sigma": 1.2, "padding": "same"}], 3, (12, 12)),
        ([{"type": "fixed", "filter": [[1, -1]], "per_channel": False, "out": 2}], 3, (6, 8)),
        ([{"type": "dynamic", "out": 8, "kernel": 3, "padding": 1, "groups": 2, "experts": 3}], 4, (10, 10)),
        ([{"type": "dynamic", "out": 4, "kernel": 3, "stride": 2, "padding": "same"}], 2, (20,)),
        ([{"type": "dynamic", "out": 4, "kernel": 3, "padding": 1, "norm": "batch", "act": "relu"}], 2, (5, 6, 7)),
        ([{"type": "depthwise", "kernel": 3, "padding": "same", "multiplier": 2}, {"type": "shuffle", "groups": 2}], 3, (4, 6, 6)),
        ([{"type": "upsample", "scale": 2, "mode": "trilinear"}, {"type": "conv", "out": 2, "kernel": 1}], 2, (3, 4, 5)),
    ],
    ids=lambda v: None,
)
def test_layer_kinds_export_in_every_dim(layers, channels, size, tmp_path):
    result = export_onnx(None, spec(*layers, channels=channels, size=size), tmp_path / "m.onnx")
    assert all(c.ok for c in result.checks)


def test_dynamic_conv_exports_with_a_dynamic_batch(tmp_path):
    definition = spec({"type": "dynamic", "name": "dyn", "out": 8, "kernel": 3, "padding": 1, "experts": 4}, channels=4)
    model = convspec.build(definition, seed=0).eval()
    out = tmp_path / "dyn.onnx"
    export_onnx(model, definition, out)
    batch = onnx.load(str(out)).graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.HasField("dim_value")
    for b in (1, 5):
        x = torch.randn(b, 4, 16, 16)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(ort_run(out, x.numpy())[0], expected, rtol=1e-3, atol=1e-4)
    # one Scan over the batch whose body convolves a sample with its own kernel
    graph = onnx.load(str(out)).graph
    (scan,) = [n for n in graph.node if n.op_type == "Scan"]
    body = next(a.g for a in scan.attribute if a.name == "body")
    assert scan.name == "dyn/Scan" and "dyn/Scan/Conv" in {n.name for n in body.node}
    assert not [p for n in body.node for p in n.metadata_props if p.key == "pkg.torch.onnx.stack_trace"]


def test_multiple_outputs_are_named_after_the_spec(tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(None, "specs/multi_output.yaml", out)
    names = [o.name for o in onnx.load(str(out)).graph.output]
    assert names == list(convspec.check("specs/multi_output.yaml").outputs)
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["input"]


def test_batchnorm_is_folded_into_convs(tmp_path):
    # bias=False convs followed by BatchNorm: the exporter's optimizer must fuse them
    out = tmp_path / "r.onnx"
    result = export_onnx(None, "specs/resnet_small.yaml", out)
    assert "BatchNormalization" not in result.node_counts
    assert result.node_counts["Conv"] == 20


def test_node_names_follow_the_spec_and_carry_no_local_paths(tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(None, "specs/nine_kinds.yaml", out)
    graph = onnx.load(str(out)).graph
    names = [n.name for n in graph.node]
    assert names[0] == "conv/Conv" and "transposed/ConvTranspose" in names
    assert len(set(names)) == len(names)
    assert not any(p.key.endswith("stack_trace") for n in graph.node for p in n.metadata_props)


def test_provenance_metadata(tmp_path):
    out = tmp_path / "m.onnx"
    export_onnx(None, "specs/small_cnn.yaml", out)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    text = Path("specs/small_cnn.yaml").read_text()
    assert meta["convspec.spec"] == text
    assert meta["convspec.spec_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert meta["convspec.opset"] == str(DEFAULT_OPSET) and meta["torch.version"] == torch.__version__
    assert meta["convspec.version"] == convspec.__version__


@pytest.mark.parametrize("opset", [14, 16, 17, 20])
def test_requested_opset_is_honoured(opset, tmp_path):
    # small_cnn ends in a global average pool: a reduction, whose form changed in opset 18
    out = tmp_path / "m.onnx"
    result = export_onnx(None, "specs/small_cnn.yaml", out, opset=opset)
    model = onnx.load(str(out))
    assert result.opset == opset
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [opset]


@pytest.mark.parametrize("opset", [14, 26])
def test_all_nine_kinds_export_at_the_lowest_and_highest_opset(opset, tmp_path):
    # the dynamic conv's Scan body is converted along with the main graph
    result = export_onnx(None, "specs/nine_kinds.yaml", tmp_path / "m.onnx", opset=opset)
    assert result.opset == opset and all(c.ok for c in result.checks)
    assert "Scan" in result.node_counts


def test_adaptive_pool_with_dynamic_size_is_refused(tmp_path):
    definition = spec({"type": "conv", "out": 4, "kernel": 3}, {"type": "adaptive_pool", "size": 2}, size=None)
    with pytest.raises(convspec.ExportError, match="adaptive_pool to size"):
        export_onnx(None, definition, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())
    # with a static size it is exact and allowed
    export_onnx(None, spec({"type": "conv", "out": 4, "kernel": 3}, {"type": "adaptive_pool", "size": 2}), tmp_path / "ok.onnx")


def test_dynamic_spatial_size_is_verified_at_several_sizes(tmp_path):
    result = export_onnx(None, "specs/unet_small.yaml", tmp_path / "u.onnx", dynamic_size=True)
    assert len({c.input_shape[2:] for c in result.checks}) >= 2
    session = ort.InferenceSession(str(tmp_path / "u.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((1, 1, 96, 96), np.float32)})[0].shape == (1, 2, 96, 96)


def test_large_models_use_external_data_written_beside(tmp_path):
    out = tmp_path / "big.onnx"
    export_onnx(None, "specs/small_cnn.yaml", out, external_data_threshold=1)  # force the >2 GB path
    assert sorted(os.listdir(tmp_path)) == ["big.onnx", "big.onnx.data"]
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    assert ort_run(out, x)[0].shape == (1, 10)


def test_failed_verification_leaves_existing_file_untouched(tmp_path, monkeypatch):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    from convspec import export as export_module

    monkeypatch.setattr(export_module, "_compare", lambda name, shape, e, a, rtol, atol: export_module.OutputCheck(name, shape, 1.0, 1.0, False))
    with pytest.raises(convspec.ExportError, match="onnxruntime differs from PyTorch on output 'fc'"):
        export_onnx(None, "specs/small_cnn.yaml", out, force=True)
    assert out.read_bytes() == b"precious"
    assert os.listdir(tmp_path) == ["m.onnx"]


def test_existing_file_needs_force(tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"x")
    with pytest.raises(convspec.InputError, match="pass force=True to replace it"):
        export_onnx(None, "specs/small_cnn.yaml", out)
    export_onnx(None, "specs/small_cnn.yaml", out, force=True)
    assert onnx.load(str(out)).graph.node


# ---------------------------------------------------------------- the command


def run(*args):
    return CliRunner().invoke(cli_module.cli, [str(a) for a in args])


def test_cli_export_prints_one_line_per_step_and_nothing_else(tmp_path):
    result = run("export", "specs/small_cnn.yaml", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["export", "check", "verify", "write", "sizes"]
    assert "max|diff| <= 1e-09 + 0.001 x max|PyTorch|, per output" in lines[2]
    assert "Warning" not in result.output and "torch.onnx" not in result.output


def test_cli_default_opset_matches_the_library():
    assert cli_module.DEFAULT_OPSET == DEFAULT_OPSET


def test_cli_export_with_weights_from_a_checkpoint_and_a_state_dict(tmp_path):
    model = convspec.build("specs/small_cnn.yaml", seed=5)
    convspec.save_checkpoint(model, "specs/small_cnn.yaml", tmp_path / "ck.pt")
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(x)).numpy()
    for weights in ("ck.pt", "sd.pt"):
        out = tmp_path / f"{weights}.onnx"
        result = run("export", "specs/small_cnn.yaml", "-o", out, "--weights", tmp_path / weights)
        assert result.exit_code == 0, result.output
        np.testing.assert_allclose(ort_run(out, x)[0], expected, rtol=1e-4, atol=1e-5)


def test_cli_export_refuses_unsafe_or_mismatched_weights(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pt")
    result = run("export", "specs/small_cnn.yaml", "-o", tmp_path / "m.onnx", "--weights", tmp_path / "evil.pt")
    assert result.exit_code == 2 and "cannot load weights safely" in result.output
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "m.onnx").exists()

    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    result = run("export", "specs/small_cnn.yaml", "-o", tmp_path / "m.onnx", "--weights", tmp_path / "bad.pt")
    assert result.exit_code == 2 and "missing keys" in result.output and "shape mismatches" in result.output
    assert "Traceback" not in result.output


def test_cli_export_no_verify_and_bad_opset(tmp_path):
    result = run("export", "specs/small_cnn.yaml", "-o", tmp_path / "m.onnx", "--no-verify")
    assert result.exit_code == 0 and "verification skipped" in result.output
    assert [line.split()[0] for line in result.output.strip().splitlines()[:2]] == ["export", "write"]
    for opset in ("7", "13"):  # torch's exporter cannot write below 14
        result = run("export", "specs/small_cnn.yaml", "-o", tmp_path / "x.onnx", "--opset", opset)
        assert result.exit_code == 2 and "out of range" in result.output


@pytest.mark.parametrize("kernel, size, expect_ceil", [(2, 25, False), (3, 24, True)])
def test_ceil_mode_pool_exports_the_windows_pytorch_uses(kernel, size, expect_ceil, tmp_path):
    # at 25 with padding 1 ceil_mode's extra window starts in the padding and PyTorch drops it; ONNX
    # shape inference before opset 22 keeps it (14 vs 13), so the plan uses floor mode's equal windows
    spec = {"input": {"channels": 1, "size": [size]}, "layers": [{"type": "pool", "op": "max", "kernel_size": kernel, "stride": 2, "padding": 1, "ceil_mode": True}]}
    report = convspec.check(spec)
    model = convspec.build(spec)
    assert model.pool_0.ceil_mode  # the module is the spec's; only the file says floor where that is the same
    x = torch.arange(size, dtype=torch.float32).reshape(1, 1, size)
    expected = torch.nn.functional.max_pool1d(x, kernel, 2, 1, ceil_mode=True)
    assert torch.equal(model(x), expected) and report.layers[0].output_shape[-1] == expected.shape[-1]
    out = tmp_path / "m.onnx"
    result = export_onnx(None, spec, out)
    assert all(c.ok for c in result.checks)
    node = next(n for n in onnx.load(out).graph.node if n.op_type == "MaxPool")
    assert {a.name: a.i for a in node.attribute}.get("ceil_mode", 0) == int(expect_ceil)


def test_ceil_mode_pool_at_a_dynamic_size_needs_opset_22(tmp_path):
    spec = {"input": {"channels": 1, "dims": 1}, "layers": [{"type": "pool", "op": "max", "kernel_size": 2, "padding": 1, "ceil_mode": True}]}
    with pytest.raises(convspec.ExportError) as refused:
        export_onnx(None, spec, tmp_path / "m.onnx", input_shape=(1, 1, 25))
    assert "--opset 22" in str(refused.value) and "ceil_mode" in str(refused.value)
    assert not (tmp_path / "m.onnx").exists()
    result = export_onnx(None, spec, tmp_path / "m.onnx", input_shape=(1, 1, 25), opset=22)
    assert all(c.ok for c in result.checks)


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_1d_max_pool_exports_at_a_dynamic_length(ceil_mode, tmp_path):
    # torch.export pins every size of max_pool1d's input; the built pool runs as 2-D over a unit height
    spec = {"input": {"channels": 2, "dims": 1}, "layers": [{"type": "pool", "op": "max", "kernel_size": 3, "stride": 2, "ceil_mode": ceil_mode}]}
    result = export_onnx(None, spec, tmp_path / "m.onnx", input_shape=(1, 2, 25))
    assert {c.input_shape[2] for c in result.checks} > {25} and all(c.ok for c in result.checks)
    model = convspec.build(spec, input_shape=(1, 2, 25))
    x = torch.randn(3, 2, 30)
    assert torch.equal(model(x), torch.nn.functional.max_pool1d(x, 3, 2, ceil_mode=ceil_mode))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(1, 40), out=st.integers(1, 40))
@example(size=26, out=4)
@example(size=10, out=13)
def test_nearest_upsample_picks_pytorchs_pixels_in_onnxruntime(size, out, tmp_path_factory):
    # ONNX Resize divides by out/in where PyTorch multiplies by the float32 in/out: 26 -> 4 picks 12 for 13
    spec = {"input": {"channels": 1, "size": [size]}, "layers": [{"type": "upsample", "mode": "nearest", "size": out}]}
    path = tmp_path_factory.mktemp("nearest") / "m.onnx"
    export_onnx(None, spec, path, verify=False)
    x = np.arange(size, dtype=np.float32).reshape(1, 1, size)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=out, mode="nearest").numpy()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("op", ["max", "avg"])
@pytest.mark.parametrize("size, kernel, padding", [([8, 12], 3, 1), ([7, 9], 4, 2), ([9, 9], 4, 2), ([24], 3, 1)])
def test_ceil_mode_pools_export_or_are_refused_where_dims_disagree(op, size, kernel, padding, tmp_path):
    # 8 with padding 1 drops PyTorch's last window, 12 needs it: the pool pads it in at the end (a max
    # ignores padding; an average pool's own padding becomes a Pad node, so the padding added is not counted)
    spec = {"input": {"channels": 1, "size": size}, "layers": [{"type": "pool", "op": op, "kernel_size": kernel, "padding": padding, "ceil_mode": True}]}
    report = convspec.check(spec)
    way = onnx_ceil_pool(size, [kernel] * len(size), [kernel] * len(size), [padding] * len(size))
    out = tmp_path / "m.onnx"
    if way is None:
        with pytest.raises(convspec.ExportError) as refused:
            export_onnx(None, spec, out)
        assert "--opset 22" in str(refused.value) and "layers[0]" in str(refused.value) and not out.exists()
        result = export_onnx(None, spec, out, opset=22)
    else:
        result = export_onnx(None, spec, out)
    assert all(c.ok for c in result.checks)
    assert report.layers[0].output_shape[2:] == tuple(
        torch.nn.functional.max_pool2d(torch.zeros(1, 1, *size[-2:]) if len(size) == 2 else torch.zeros(1, 1, 1, size[0]),
                                       kernel if len(size) == 2 else (1, kernel), ceil_mode=True,
                                       padding=padding if len(size) == 2 else (0, padding)).shape[-len(size):]
    )
