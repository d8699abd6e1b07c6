"""A separable fixed filter's MACs, as the checker counts them, equal what its module computes.

The module runs one 1-D pass per dim; where the conv pads itself each pass pads only its own
dim, otherwise the input is padded first. torch's FlopCounterMode counts what runs.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import convspec

PADDINGS = st.one_of(
    st.integers(0, 3), st.sampled_from(["valid", "same", "same_upper", "same_lower"]),
    st.tuples(st.tuples(st.integers(0, 3), st.integers(0, 3)), st.tuples(st.integers(0, 3), st.integers(0, 3))).map(
        lambda pairs: [list(p) for p in pairs]
    ),
)


@settings(max_examples=60, deadline=None)
@given(
    size=st.tuples(st.integers(5, 12), st.integers(5, 12)), channels=st.integers(1, 3), kernel=st.sampled_from([5, 7]),
    padding=PADDINGS, stride=st.integers(1, 3), dilation=st.integers(1, 2), mode=st.sampled_from(["zeros", "reflect"]),
)
def test_separable_fixed_filter_macs_equal_the_module(size, channels, kernel, padding, stride, dilation, mode):
    layer = {
        "name": "blur", "type": "fixed", "filter": "gaussian", "kernel_size": kernel, "sigma": 1.5,
        "padding": padding, "stride": stride, "dilation": dilation, "padding_mode": mode,
    }
    spec = {"input": {"channels": channels, "size": list(size)}, "layers": [layer]}
    try:
        report = convspec.check(spec)
    except convspec.SpecError:
        return  # a combination the format refuses (same with a stride, ...)
    if not report.valid:
        return
    model = convspec.build(spec).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, channels, *size))
    assert report.layers[0].macs == counter.get_total_flops() // 2
