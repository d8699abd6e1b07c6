"""Shape inference on a graph without its weights gives what it gives on the whole model."""

from __future__ import annotations

import onnx
import pytest

import convspec
from convspec.edge_shapes import SMALL_CONSTANT, infer_shapes

SPECS = {
    "resize by scale, flatten, linear": {
        "input": {"channels": 3, "size": [12, 10]},
        "layers": [
            {"type": "conv", "out": 8, "kernel": 3, "padding": 1, "norm": "batch", "act": "relu"},
            {"type": "upsample", "scale": 1.5, "mode": "bilinear"},
            {"type": "pool", "op": "max", "kernel_size": 2, "ceil_mode": True},
            {"type": "flatten"},
            {"type": "linear", "out": 5},
        ],
    },
    "dynamic spatial size, concat": {
        "input": {"channels": 2},
        "layers": [
            {"name": "a", "type": "conv", "out": 4, "kernel": 3, "padding": "same"},
            {"name": "b", "type": "depthwise", "kernel": 5, "padding": "same"},
            {"type": "concat", "from": ["a", "b"]},
            {"type": "transposed", "out": 3, "kernel": 2, "stride": 2},
        ],
    },
}


def _value_info(model: onnx.ModelProto) -> dict[str, bytes]:
    return {info.name: info.SerializeToString() for info in (*model.graph.value_info, *model.graph.output)}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("options", [{"data_prop": True}, {"check_type": True, "strict_mode": True, "data_prop": True}])
def test_same_shapes_as_inference_on_the_whole_model(tmp_path, name, options):
    path = tmp_path / "m.onnx"
    convspec.export_onnx(None, SPECS[name], path, verify=False)
    model = onnx.load(path)
    del model.graph.value_info[:]  # what export recorded must come back from inference alone
    assert any(len(t.raw_data) > 4 * SMALL_CONSTANT for t in model.graph.initializer)  # weights a lean copy leaves out
    whole = onnx.shape_inference.infer_shapes(model, **options)
    lean = infer_shapes(model, **options)
    assert _value_info(lean) == _value_info(whole)
    assert len(lean.graph.value_info) > 0


def test_weights_stay_out_and_small_constants_stay_in(tmp_path):
    path = tmp_path / "m.onnx"
    convspec.export_onnx(None, SPECS["resize by scale, flatten, linear"], path, verify=False)
    model = onnx.load(path)
    lean = infer_shapes(model)
    big = {t.name for t in model.graph.initializer if len(onnx.numpy_helper.to_array(t).reshape(-1)) > SMALL_CONSTANT}
    assert big, "the spec's weights are larger than a small constant"
    assert not big & {t.name for t in lean.graph.initializer}
    assert big <= {i.name for i in lean.graph.input}
    small = {t.name for t in model.graph.initializer} - big
    assert small <= {t.name for t in lean.graph.initializer}
    assert len(model.graph.initializer) == len(big) + len(small)  # the model itself is untouched


def test_an_inference_error_still_raises(tmp_path):
    path = tmp_path / "m.onnx"
    convspec.export_onnx(None, SPECS["resize by scale, flatten, linear"], path, verify=False)
    model = onnx.load(path)
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    weight = next(t for t in model.graph.initializer if t.name == gemm.input[1])
    weight.dims[1] += 1  # the weight no longer fits the flattened input
    weight.raw_data = b"\0" * (4 * weight.dims[0] * weight.dims[1])
    with pytest.raises(onnx.shape_inference.InferenceError):
        infer_shapes(model, check_type=True, strict_mode=True)
