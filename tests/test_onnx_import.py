"""`convspec import`: ONNX files from torch's two exporters read back as specs that compute the same.

The references (`onnx_reference_models.py`: resnet-like, mobilenet-like, a small U-Net with
concat and a transposed conv) are exported by `torch.onnx.export` with dynamo=True and
dynamo=False; the import must check to the file's parameter count and reproduce onnxruntime's
outputs on the file, and the reference's own outputs.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from click.testing import CliRunner
from onnx_reference_models import IMPORT_REFERENCES, export_reference

import convspec
from convspec.cli import cli
from convspec.importer import graph_to_spec, import_onnx, save_import
from convspec.onnx_walk import UnsupportedModelError

ROOT = Path(__file__).resolve().parent.parent


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every reference exported by both exporters, once per module: {(name, dynamo): (path, module)}."""
    folder = tmp_path_factory.mktemp("onnx")
    files = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in IMPORT_REFERENCES:
            for dynamo in (True, False):
                path = folder / f"{name}_{'dynamo' if dynamo else 'torchscript'}.onnx"
                files[name, dynamo] = (path, export_reference(name, path, dynamo))
    return files


@pytest.mark.parametrize("dynamo", [True, False], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("name", sorted(IMPORT_REFERENCES))
def test_imported_spec_reproduces_the_file_and_the_module(exported, name, dynamo, one_thread):
    path, reference = exported[name, dynamo]
    result = import_onnx(path)
    assert not result.embedded and result.checks and all(check.ok for check in result.checks)
    report = convspec.check(result.spec_text)
    assert report.total_params == result.params == sum(p.numel() for p in reference.parameters()) - _folded(reference)
    if name == "efficientnet":  # squeeze-and-excitation inside a residual: the mul and its global pool stay in the block
        blocks = [layer for layer in yaml.safe_load(result.spec_text)["layers"] if layer["type"] == "residual"]
        assert len(blocks) == 2 and all(any(inner["type"] == "mul" for inner in block["layers"]) for block in blocks)
    if name == "resampling":  # a ZeroPad2d joins the conv's padding; TorchScript's computed pads are folded first
        layers = yaml.safe_load(result.spec_text)["layers"]
        assert layers[0]["padding"] == [[1, 0], [1, 0]] and layers[1] == {"name": "act", "type": "act", "fn": "leaky_relu", "negative_slope": 0.2}
        assert [layer.get("mode") for layer in layers if layer["type"] == "upsample"] == ["nearest", "bilinear"]
    model = convspec.build(result.spec_text)
    model.load_state_dict(result.state_dict)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)


def _folded(module: torch.nn.Module) -> int:
    """Parameters the exporters fold away: each BatchNorm after a conv becomes the conv's bias (2 per channel -> 1)."""
    return sum(m.num_features for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_layer_kinds_wiring_and_names(exported):
    resnet = yaml.safe_load(import_onnx(exported["resnet", False][0]).spec_text)
    layers = {layer["name"]: layer for layer in resnet["layers"]}
    assert list(layers) == ["conv1", "maxpool", "layer1", "layer2", "avgpool", "flatten", "fc"]
    assert layers["conv1"] == {"name": "conv1", "type": "conv", "out_channels": 16, "kernel_size": 3, "padding": 1, "act": "relu"}
    block = layers["layer2"]  # the BasicBlock with its downsample, as a residual
    assert block["type"] == "residual" and block["act"] == "relu"
    assert [layer["name"] for layer in block["layers"]] == ["conv1", "conv2"]
    assert block["shortcut"] == [{"name": "downsample_0", "type": "pointwise", "out_channels": 32, "stride": 2}]
    assert layers["layer1"]["type"] == "residual" and "shortcut" not in layers["layer1"]  # identity shortcut
    mobilenet = yaml.safe_load(import_onnx(exported["mobilenet", True][0]).spec_text)
    kinds = [layer["type"] for layer in mobilenet["layers"]]
    assert kinds.count("residual") == 2 and kinds[-3:] == ["global_pool", "flatten", "linear"]
    first = next(layer for layer in mobilenet["layers"] if layer["type"] == "residual")
    assert first["name"] == "features_1" and [layer["type"] for layer in first["layers"]] == ["depthwise", "pointwise"]
    assert first["layers"][0]["act"] == "relu6"
    unet = yaml.safe_load(import_onnx(exported["unet", True][0]).spec_text)
    assert [layer["type"] for layer in unet["layers"]].count("concat") == 1
    assert any(layer["type"] == "transposed" and layer["stride"] == 2 for layer in unet["layers"])


def test_batchnorm_left_in_the_graph_becomes_the_convs_norm(tmp_path):
    """A graph with BatchNormalization nodes (training-style export, nothing folded) keeps norm: batch and its statistics."""
    path = tmp_path / "bn.onnx"
    torch.manual_seed(0)
    model = IMPORT_REFERENCES["resnet"]().eval()
    x = torch.randn(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=17, do_constant_folding=False,
                          training=torch.onnx.TrainingMode.PRESERVE)  # fmt: skip
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    if "BatchNormalization" not in ops:
        pytest.skip("this torch folds BatchNorm even when asked to preserve it")
    result = import_onnx(path)
    spec = yaml.safe_load(result.spec_text)
    assert spec["layers"][0]["norm"] == "batch"
    assert result.params == sum(p.numel() for p in model.parameters())
    assert "conv1.norm.running_var" in result.state_dict


def test_a_convspec_export_gives_back_its_spec_exactly(tmp_path, one_thread):
    spec = ROOT / "specs" / "small_cnn.yaml"
    path = tmp_path / "small.onnx"
    convspec.export_onnx(None, spec, path)
    result = import_onnx(path)
    assert result.embedded and result.spec_text == spec.read_text()
    assert all(torch.equal(a, b) for a, b in zip(result.state_dict.values(), convspec.build(spec, seed=0).state_dict().values()))
    graph = import_onnx(path, from_graph=True)  # the graph itself, proved the same way
    assert not graph.embedded and graph.params == convspec.check(spec).total_params


def test_an_unknown_operator_is_refused_naming_the_node(tmp_path):
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    node = onnx.helper.make_node("Softplus", ["x"], ["y"], name="odd_one")
    model = onnx.helper.make_model(onnx.helper.make_graph([node], "g", [x], [y]), opset_imports=[onnx.helper.make_opsetid("", 17)])
    path = tmp_path / "softplus.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedModelError) as caught:
        graph_to_spec(model, str(path))
    assert "node 'odd_one' (Softplus): the operator Softplus has no spec layer" in str(caught.value)
    result = run("import", path, "-o", tmp_path / "out.yaml")
    assert result.exit_code == 1 and "odd_one" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.yaml").exists()


def test_cli_writes_spec_and_weights(exported, tmp_path, one_thread):
    path, reference = exported["unet", True]
    spec, weights = tmp_path / "unet.yaml", tmp_path / "unet.safetensors"
    result = run("import", path, "-o", spec, "--weights", weights)
    assert result.exit_code == 0, result.output
    assert "verify onnxruntime = PyTorch at 1x3x32x32" in result.output
    assert run("check", spec).exit_code == 0
    model = convspec.build(spec, weights=weights).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-5)
    again = run("import", path, "-o", spec)
    assert again.exit_code == 2 and "--force" in again.output
    missing = run("import", tmp_path / "nope.onnx", "-o", tmp_path / "x.yaml")
    assert missing.exit_code == 2 and not (tmp_path / "x.yaml").exists()


def test_save_import_as_checkpoint(exported, tmp_path):
    result = import_onnx(exported["resnet", True][0])
    spec, checkpoint = tmp_path / "r.yaml", tmp_path / "r.pt"
    save_import(result, spec, checkpoint)
    model = convspec.load_checkpoint(checkpoint)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(model.state_dict().values(), result.state_dict.values()))


def test_free_sizes_import_without_input_size_and_verify_at_several(tmp_path):
    path = tmp_path / "unet_any_size.onnx"
    model = IMPORT_REFERENCES["unet"]().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 32, 32),), str(path), dynamo=False, opset_version=17, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "b", 2: "h", 3: "w"}, "y": {0: "b", 2: "h", 3: "w"}})  # fmt: skip
    result = import_onnx(path)
    assert yaml.safe_load(result.spec_text)["input"] == {"channels": 3}
    shapes = {check.input_shape for check in result.checks}
    assert len({shape[0] for shape in shapes}) > 1 and len({shape[2:] for shape in shapes}) > 1


def test_torchvisions_mobilenet_v3_large_imports(tmp_path, one_thread):
    """A whole torchvision architecture (hardswish, hardsigmoid squeeze-and-excitation, residuals), from TorchScript."""
    from torchvision_models import MOBILENET_V3_LARGE, MobileNetV3, randomise_batchnorm

    model = MobileNetV3().eval()
    randomise_batchnorm(model, torch.Generator().manual_seed(0))
    path = tmp_path / "mobilenet_v3_large.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17)
    result = import_onnx(path)
    assert all(check.ok for check in result.checks)
    layers = yaml.safe_load(result.spec_text)["layers"]
    expected = sum(row[6] == 1 and row[0] == row[3] for row in MOBILENET_V3_LARGE)  # stride 1, channels kept: a residual
    assert expected == 10 and sum(layer["type"] == "residual" for layer in layers) == expected
    assert result.params == sum(p.numel() for p in model.parameters()) - _folded(model)
