"""The checker's arithmetic equals what the built module really has and returns, layer by layer."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from torch.utils.flop_counter import FlopCounterMode

import convspec
from convspec.trace import load_and_check  # an invalid spec's report too
from hypothesis import strategies as st
from strategies import specs

EXAMPLES = int(os.environ.get("CONVSPEC_HYPOTHESIS_EXAMPLES", "60"))  # per dim; more with the env var
MAC_KINDS = {"conv", "pointwise", "asymmetric", "dilated", "depthwise", "group", "separable", "transposed", "dynamic", "fixed", "linear"}


def run_with_hooks(model: torch.nn.Module, x: torch.Tensor) -> dict[str, tuple]:
    """Each top-level child's real (inputs, output)."""
    seen: dict[str, tuple] = {}
    hooks = [
        child.register_forward_hook(lambda mod, inp, out, name=name: seen.__setitem__(name, (inp, out)))
        for name, child in model.named_children()
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return seen


def measured_macs(module: torch.nn.Module, inputs: tuple) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops() // 2  # the counter counts a multiply-add as 2 FLOPs


@pytest.mark.parametrize("dims", [1, 2, 3])
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_checker_figures_equal_the_built_module(dims, data):
    spec = data.draw(specs(dims=dims))
    report = load_and_check(spec)
    assume(report.valid)
    model = convspec.build(spec, seed=0).eval()
    x = torch.randn(report.input_shape)
    seen = run_with_hooks(model, x)
    children = dict(model.named_children())
    assert [r.name for r in report.layers] == list(children)
    for layer in report.layers:
        child = children[layer.name]
        inputs, output = seen[layer.name]
        assert tuple(output.shape) == layer.output_shape, (layer.name, layer.type)
        assert sum(p.numel() for p in child.parameters()) == layer.params, (layer.name, layer.type)
        assert sum(p.numel() for p in child.parameters() if p.requires_grad) == layer.trainable_params, layer.name
        if layer.type in MAC_KINDS:
            assert measured_macs(child, inputs) == layer.macs, (layer.name, layer.type)
    assert report.total_params == sum(p.numel() for p in model.parameters())
