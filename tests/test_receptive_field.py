"""The checker's receptive field is the widest gradient footprint of one output position, for every kind."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.geometry import adaptive_widest_window, adaptive_windows


def widest_footprint(layers: list[dict], size: int) -> tuple[object, int]:
    """(the checker's receptive field in L, the widest span of inputs any one output position depends on)."""
    spec = {"input": {"channels": 2, "size": [size]}, "layers": layers}
    report = convspec.check(spec)
    assert report.valid, report.errors
    model = convspec.build(spec, seed=0).double().eval()
    with torch.no_grad():
        for parameter in model.parameters():  # positive weights: no footprint hides behind a cancellation
            parameter.uniform_(0.1, 1.0)
    x = torch.ones(1, 2, size, dtype=torch.float64, requires_grad=True)
    y = model(x)
    widest = 0
    for position in range(y.shape[-1]):
        (grad,) = torch.autograd.grad(y[0, 0, position], x, retain_graph=True)
        touched = grad[0].abs().sum(0).nonzero().flatten()
        widest = max(widest, touched.max().item() - touched.min().item() + 1)
    return report.layers[-1].receptive_field[0], widest


KINDS = {
    "dilated conv": [{"type": "conv", "out": 2, "kernel_size": 3, "dilation": 2}],
    "conv, same padding": [{"type": "conv", "out": 2, "kernel_size": 5, "padding": "same"}],
    "depthwise": [{"type": "depthwise", "kernel_size": 3}],
    "separable": [{"type": "separable", "out": 2, "kernel_size": 3}],
    "fixed": [{"type": "fixed", "filter": "box", "kernel_size": 3}],
    "avg pool": [{"type": "pool", "op": "avg", "kernel_size": 3, "stride": 2}],
    "adaptive 40 -> 7 (uneven)": [{"type": "adaptive_pool", "op": "avg", "size": 7}],
    "adaptive 40 -> 15 (uneven)": [{"type": "adaptive_pool", "op": "avg", "size": 15}],
    "adaptive 40 -> 60 (upsampling)": [{"type": "adaptive_pool", "op": "avg", "size": 60}],
    "conv then adaptive": [{"type": "conv", "out": 2, "kernel_size": 3, "stride": 2}, {"type": "adaptive_pool", "op": "avg", "size": 6}],
    "transposed": [{"type": "transposed", "out": 2, "kernel_size": 3, "stride": 2}],
    "transposed k4 s2 p1": [{"type": "transposed", "out": 2, "kernel_size": 4, "stride": 2, "padding": 1}],
    "nearest upsample": [{"type": "upsample", "scale": 2}],
    "linear upsample": [{"type": "upsample", "scale": 2, "mode": "linear"}],
    "nearest upsample then conv": [{"type": "upsample", "scale": 2}, {"type": "conv", "out": 2, "kernel_size": 3}],
    "strided conv then linear upsample": [
        {"type": "conv", "out": 2, "kernel_size": 3, "stride": 2}, {"type": "upsample", "scale": 2, "mode": "linear"},
    ],
    "global pool": [{"type": "global_pool", "op": "avg"}],
    "residual": [{"type": "residual", "layers": [{"type": "conv", "out": 2, "kernel_size": 5, "padding": 2}]}],
}


@pytest.mark.parametrize("layers", KINDS.values(), ids=KINDS.keys())
def test_receptive_field_equals_the_widest_gradient_footprint(layers):
    reported, measured = widest_footprint(layers, 40)
    assert reported == measured
    assert type(reported) is int  # a whole figure is an int, not Fraction(2, 1)


@pytest.mark.parametrize("size, out, expected", [(8, 3, 4), (12, 7, 3), (5, 7, 2), (9, 3, 3), (10, 4, 3)])
def test_adaptive_pooling_receptive_field_is_its_widest_window(size, out, expected):
    # PyTorch's windows are [floor(i*in/out), ceil((i+1)*in/out)): uneven ones are wider than ceil(in/out)
    report = convspec.check({"input": {"channels": 1, "size": [size]}, "layers": [{"type": "adaptive_pool", "op": "avg", "size": out}]})
    assert report.layers[0].receptive_field == (expected,)
    assert max(end - start for start, end in adaptive_windows(size, out)) == expected


@given(size=st.integers(1, 300), out=st.integers(1, 300))
def test_the_widest_adaptive_window_formula_equals_the_windows(size, out):
    assert adaptive_widest_window(size, out) == max(end - start for start, end in adaptive_windows(size, out))


@settings(max_examples=40, deadline=None)
@given(
    convs=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 2)), min_size=0, max_size=2),
    out=st.integers(1, 12),
    size=st.integers(12, 40),
)
def test_adaptive_pooling_after_convs_matches_the_footprint(convs, out, size):
    layers = [{"type": "conv", "out": 2, "kernel_size": k, "stride": s} for k, s in convs]
    layers.append({"type": "adaptive_pool", "op": "avg", "size": out})
    reported, measured = widest_footprint(layers, size)
    assert reported == measured
