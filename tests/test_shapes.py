"""The shape formulas on their own, and the receptive field against gradients."""

from __future__ import annotations

import sys
import subprocess

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.geometry import pool_output_size, same_padding, transposed_output_size, transposed_same_padding


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 4), padding=st.integers(0, 3), ceil_mode=st.booleans())
def test_pool_output_size_equals_torch(size, kernel, stride, padding, ceil_mode):
    if padding > kernel // 2 or size + 2 * padding < kernel:
        return  # torch refuses these; the checker reports them
    pool = torch.nn.MaxPool1d(kernel, stride, padding, ceil_mode=ceil_mode)
    assert pool(torch.zeros(1, 1, size)).shape[-1] == pool_output_size(size, kernel, stride, padding, ceil_mode)


@given(kernel=st.integers(1, 9), dilation=st.integers(1, 4))
def test_same_padding_total_and_split(kernel, dilation):
    low, high = same_padding(kernel, dilation)
    assert low + high == dilation * (kernel - 1)
    assert high - low in (0, 1)  # the lower side gets the floor of half


@given(size=st.integers(1, 30), kernel=st.integers(1, 8), stride=st.integers(1, 5), dilation=st.integers(1, 3))
def test_transposed_same_padding_is_valid_when_found(size, kernel, stride, dilation):
    pair = transposed_same_padding(kernel, stride, dilation)
    if pair is None:
        # no (padding, output_padding) with output_padding < max(stride, dilation) exists
        assert all(
            transposed_output_size(size, kernel, stride, dilation, p, op) != size * stride
            for p in range(kernel * dilation + 1)
            for op in range(max(stride, dilation))
        )
        return
    padding, output_padding = pair
    assert padding >= 0 and 0 <= output_padding < max(stride, dilation)
    assert transposed_output_size(size, kernel, stride, dilation, padding, output_padding) == size * stride


layer_1d = st.one_of(
    st.builds(
        lambda k, s, d: {"type": "conv", "out": 1, "kernel": k, "stride": s, "dilation": d, "bias": False, "init": {"weight": "ones"}},
        st.integers(1, 5), st.integers(1, 3), st.integers(1, 3),
    ),
    st.builds(lambda k, s: {"type": "pool", "op": "avg", "kernel_size": k, "stride": s}, st.integers(1, 4), st.integers(1, 3)),
)


@settings(max_examples=60, deadline=None)
@given(layers=st.lists(layer_1d, min_size=1, max_size=4))
def test_receptive_field_and_stride_equal_the_gradient_footprint(layers):
    # 4,000: four layers of stride 3 and a dilated kernel of 13 still leave 47 values, so every draw checks
    spec = {"input": {"channels": 1, "size": [4000]}, "layers": layers}
    report = convspec.check(spec)
    assert report.valid
    last = report.layers[-1]
    out_len = last.output_shape[-1]
    if out_len < 3:
        return
    model = convspec.build(spec).double()
    x = torch.ones(1, 1, 4000, dtype=torch.float64, requires_grad=True)
    y = model(x)
    footprints = []
    for index in (out_len // 2, out_len // 2 + 1):
        (grad,) = torch.autograd.grad(y[0, 0, index], x, retain_graph=True)
        touched = grad[0, 0].nonzero().flatten()
        footprints.append((touched.min().item(), touched.max().item()))
    (lo, hi), (next_lo, _) = footprints
    assert hi - lo + 1 == last.receptive_field[0]
    assert next_lo - lo == last.stride[0]


def test_check_does_not_import_torch():
    code = "import sys, convspec; convspec.check('specs/resnet_small.yaml'); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_check_of_a_1000_layer_spec_is_quick_arithmetic():
    layers = [{"type": "conv", "out": 8, "kernel": 3, "padding": "same", "act": "relu"} for _ in range(1000)]
    report = convspec.check({"input": {"channels": 8, "size": [32, 32]}, "layers": layers})
    assert report.valid and len(report.layers) == 1000
    assert report.layers[-1].receptive_field == (2001, 2001)
