"""Shape rules of the layers that neither convolve, resample nor wire: norm, act, dropout, identity, channel shuffle, flatten and linear."""

from __future__ import annotations

import math

from .geometry import norm_params
from .plans import DropoutPlan, EmptyPlan, LinearPlan, ShufflePlan, act_plan, init_plan
from .shapes import (
    LayerFailed, Traced, TracedLayer, Value, check_init, check_norm_statistics, divisors_text, feature_map, norm_plan, whole_input_field,
)  # fmt: skip


def rule_norm(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """A norm layer (batch, instance, group, layer): the shape unchanged; parameters as `geometry.norm_params`; `groups` must divide C."""
    model, value = layer.model, inputs[0]
    if value.flat and model.kind in ("instance", "group"):
        layer.fail("kind", f"{model.kind} norm needs a feature map, but its input is flat {list(value.shape)}")
    channels = value.shape[1]
    if model.kind == "group" and channels % model.groups:
        layer.fail("groups", f"groups={model.groups} does not divide the {channels} channels (divisors: {divisors_text(channels)})")
    check_norm_statistics(layer, model.kind, model.groups, value, "kind")
    params = norm_params(model.kind, channels)
    return Traced(value, params, params, plan=norm_plan(layer, model.kind, channels, layer.ctx.dims, model.groups, model, value.flat))


def rule_passthrough(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """identity: the input unchanged."""
    return Traced(inputs[0], plan=EmptyPlan())


def rule_act(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """An activation: the input unchanged, no parameters."""
    return Traced(inputs[0], plan=act_plan(layer.model.fn, layer.model.negative_slope))


def rule_dropout(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """nn.Dropout: the input unchanged."""
    return Traced(inputs[0], plan=DropoutPlan(layer.model.p))


def rule_shuffle(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Channel shuffle (ShuffleNet): (B, C, *S) unchanged; `groups` must divide C."""
    value = feature_map(layer, inputs[0], "shuffle")
    groups = layer.model.groups
    if value.channels % groups:
        layer.fail("groups", f"groups={groups} does not divide the {value.channels} channels (divisors: {divisors_text(value.channels)})")
    return Traced(value, plan=ShufflePlan(groups))


def rule_flatten(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """(B, C, *S) -> (B, C * prod(S)), as nn.Flatten(1); every position is then seen."""
    value = inputs[0]
    if value.flat:
        return Traced(value, plan=EmptyPlan())
    features = None if any(s is None for s in value.shape[1:]) else math.prod(value.shape[1:])
    rf, jump = whole_input_field(value)
    return Traced(Value((value.shape[0], features), rf, jump, flat=True), plan=EmptyPlan())


def rule_linear(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """nn.Linear on flat input: (B, F) -> (B, out_features); F x out weights (+ out biases), B x F x out MACs."""
    model, value = layer.model, inputs[0]
    if not value.flat:
        suggestion = "add `{type: flatten}` before it" if all(s == 1 for s in value.spatial) else "add `{type: global_pool}` and `{type: flatten}` (or just flatten) before it"
        layer.fail(None, f"a linear layer needs flat input (B, F), but its input is {list(value.shape)}; {suggestion}")
    features = value.shape[1]
    if features is None:
        if layer.ctx.sizes_known:  # an earlier layer failed and left the size unknown; reported there
            raise LayerFailed(Value((value.shape[0], model.out_features), value.rf, value.jump, flat=True))
        layer.fail(None, "cannot infer in_features: the input size is dynamic; give `input.size` or pool to a fixed size first")
    if model.in_features is not None and model.in_features != features:
        layer.error("in_features", f"in_features={model.in_features} but the input has {features} features; drop `in_features` (it is inferred)")
    check_init(layer, (model.out_features, features), model.bias, model.out_features)
    params = features * model.out_features + (model.out_features if model.bias else 0)
    macs = value.shape[0] * features * model.out_features
    return Traced(
        Value((value.shape[0], model.out_features), value.rf, value.jump, flat=True),
        params, params if model.trainable else 0, macs,
        LinearPlan(features, model.out_features, model.bias, init_plan(model.init), model.trainable),
    )
