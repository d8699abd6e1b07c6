"""The checker takes exactly the pools PyTorch runs, ceil_mode windows hanging past the end included."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 9), kernel=st.integers(1, 6), stride=st.integers(1, 4), padding=st.integers(0, 3),
    op=st.sampled_from(["max", "avg"]), ceil_mode=st.booleans(),
)
def test_a_pool_checks_exactly_when_pytorch_runs_it(size, kernel, stride, padding, op, ceil_mode):
    if padding > kernel // 2:
        return  # PyTorch's own rule, a separate located error
    layer = {"name": "p", "type": "pool", "op": op, "kernel_size": kernel, "stride": stride, "padding": padding, "ceil_mode": ceil_mode}
    spec = {"input": {"channels": 1, "size": [size, size]}, "layers": [layer]}
    pool = (torch.nn.MaxPool2d if op == "max" else torch.nn.AvgPool2d)(kernel, stride, padding, ceil_mode=ceil_mode)
    try:
        expected = tuple(pool(torch.randn(1, 1, size, size)).shape)
    except RuntimeError:
        expected = None
    try:
        got = convspec.check(spec).layers[0].output_shape
    except convspec.SpecError as err:
        assert expected is None, f"PyTorch gives {expected}, the checker refuses: {err}"
        return
    assert got == expected
