"""TensorFlow/Keras padding conventions, against Keras 3 itself (on its torch backend)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import convspec

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")  # a test dependency ([test] extra); the backend is chosen above, before import

CASES = [(3, 2, 1), (4, 2, 1), (2, 2, 1), (5, 3, 1), (3, 1, 1), (1, 2, 1), (4, 3, 1), (3, 1, 2)]


def keras_layer(cls, out: int, kernel: int, stride: int, dilation: int, weight: torch.Tensor, in_shape: tuple):
    layer = cls(out, kernel, strides=stride, dilation_rate=dilation, padding="same", use_bias=False, data_format="channels_first")
    layer.build(in_shape)
    # torch (out, in, kh, kw) -> Keras Conv2D (kh, kw, in, out); torch transposed (in, out, kh, kw) -> (kh, kw, out, in)
    layer.set_weights([weight.detach().permute(2, 3, 1, 0).numpy()])
    return layer


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="Keras runs on another backend in this process")
@pytest.mark.parametrize("kernel, stride, dilation", CASES)
@pytest.mark.parametrize("size", [(5, 7), (8, 6)])
def test_same_upper_conv_is_keras_conv2d_same(kernel, stride, dilation, size):
    spec = {"input": {"channels": 3, "size": list(size)}, "layers": [
        {"type": "conv", "out": 2, "kernel": kernel, "stride": stride, "dilation": dilation, "padding": "same_upper", "bias": False},
    ]}  # fmt: skip
    model = convspec.build(spec, seed=0).eval()
    x = torch.randn(1, 3, *size)
    weight = model.conv_0.conv.weight  # (out, in, kh, kw)
    layer = keras_layer(keras.layers.Conv2D, 2, kernel, stride, dilation, weight, x.shape)
    expected = keras.ops.convert_to_numpy(layer(x))
    with torch.no_grad():
        got = model(x).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="Keras runs on another backend in this process")
@pytest.mark.parametrize("kernel, stride", [(k, s) for k, s, d in CASES if d == 1])
def test_same_upper_transposed_is_keras_conv2d_transpose_same(kernel, stride):
    spec = {"input": {"channels": 3, "size": [5, 7]}, "layers": [
        {"type": "transposed", "out": 2, "kernel": kernel, "stride": stride, "padding": "same_upper", "bias": False},
    ]}  # fmt: skip
    model = convspec.build(spec, seed=0).eval()
    x = torch.randn(1, 3, 5, 7)
    layer = keras_layer(keras.layers.Conv2DTranspose, 2, kernel, stride, 1, model.transposed_0.conv.weight, x.shape)
    expected = keras.ops.convert_to_numpy(layer(x))
    with torch.no_grad():
        got = model(x).numpy()
    assert got.shape == expected.shape == (1, 2, 5 * stride, 7 * stride)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
