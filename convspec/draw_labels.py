"""The words on a diagram's boxes, from a layer's plan: `3x3/2 · bn · relu`, shapes without the batch.

No torch. Kernel and stride read as in the ResNet paper's tables ("3x3, 64, /2"):
`KxK/S`, the stride left out when it is 1; dilation as `d2`, groups as `g4`;
norms by their usual short names (bn, in, gn, ln: BatchNorm, InstanceNorm,
GroupNorm, LayerNorm); activations by the spec's names.
"""

from __future__ import annotations

import re

from .geometry import ConvGeometry, format_shape
from .plans import (
    ActPlan, AdaptivePoolPlan, ConvPlan, DropoutPlan, DynamicPlan, FixedPlan, GlobalPoolPlan, JoinPlan, NormPlan,
    PoolPlan, SeparablePlan, ShufflePlan, SplitPlan, UpsamplePlan,
)  # fmt: skip
from .report import LayerReport

NORM_NAMES = {"batch": "bn", "instance": "in", "group": "gn", "layer": "ln"}
_STEP = re.compile(r"(\w+)\[(\d+)\]")  # "layers[3]" in a layer label


def sample_shape(shape: tuple | None) -> str:
    """A tensor's shape without its batch (N of NCHW): (1, 64, 56, 56) -> '64x56x56'; unknown -> '?'."""
    if shape is None:
        return "?"
    return format_shape(tuple(shape)[1:]) if len(shape) > 1 else format_shape(tuple(shape))


def _sizes(values: tuple[int, ...]) -> str:
    """(3, 3) -> '3x3'; (5,) -> '5'."""
    return "x".join(str(v) for v in values)


def _per_dim(values: tuple[int, ...]) -> str:
    """One number when every dim has it: (2, 2) -> '2'; (2, 1) -> '2x1'."""
    return str(values[0]) if len(set(values)) == 1 else _sizes(values)


def _window(kernel: tuple[int, ...], stride: tuple[int, ...]) -> str:
    """'3x3/2' (stride 2), '3x3' (stride 1)."""
    strided = any(s != 1 for s in stride)
    return _sizes(kernel) + (f"/{_per_dim(stride)}" if strided else "")


def _geometry(geometry: ConvGeometry, depthwise: bool = False) -> str:
    parts = [_window(geometry.kernel_size, geometry.stride)]
    if any(d != 1 for d in geometry.dilation):
        parts[0] += f" d{_per_dim(geometry.dilation)}"
    if geometry.groups > 1 and not depthwise:
        parts[0] += " dw" if geometry.groups == geometry.in_channels else f" g{geometry.groups}"
    return parts[0]


def _norm(norm: NormPlan | None) -> list[str]:
    if norm is None:
        return []
    short = NORM_NAMES.get(norm.kind, norm.kind)
    return [f"{short}{norm.groups}" if norm.kind == "group" and norm.groups else short]


def _act(act: ActPlan | None) -> list[str]:
    return [] if act is None else [act.fn]


def operation(report: LayerReport) -> str:
    """What a layer computes, in a few characters, from its plan: '3x3/2 · bn · relu', 'max 3x3/2'; '' if nothing to add."""
    plan = report.plan
    if isinstance(plan, ConvPlan):  # a depthwise layer's title already says so
        return " · ".join([_geometry(plan.geometry, report.type == "depthwise"), *_norm(plan.norm), *_act(plan.act)])
    if isinstance(plan, SeparablePlan):
        inner = " · ".join([_geometry(plan.depthwise.geometry, depthwise=True) + " dw", *_norm(plan.depthwise.norm), *_act(plan.depthwise.act)])
        return " · ".join([inner + " → 1x1", *_norm(plan.pointwise.norm), *_act(plan.pointwise.act)])
    if isinstance(plan, DynamicPlan):
        return " · ".join([_geometry(plan.geometry), f"{plan.experts} experts", *_norm(plan.norm), *_act(plan.act)])
    if isinstance(plan, FixedPlan):
        name = getattr(report.layer, "filter", None)
        label = name if isinstance(name, str) else "literal"
        return f"{label} {_geometry(plan.geometry, depthwise=True)}"  # per channel or not, the title says fixed
    if isinstance(plan, PoolPlan):
        return f"{plan.op} {_window(plan.kernel_size, plan.stride)}"
    if isinstance(plan, AdaptivePoolPlan):
        return f"{plan.op} → {_sizes(plan.size)}"
    if isinstance(plan, GlobalPoolPlan):
        return plan.op
    if isinstance(plan, UpsamplePlan):
        how = f"×{_per_dim(plan.scale)}" if plan.scale else f"→ {_sizes(plan.size)}" if plan.size else ""
        return f"{plan.mode} {how}".strip()
    if isinstance(plan, NormPlan):
        return _norm(plan)[0]
    if isinstance(plan, ActPlan):
        return plan.fn + (f" {plan.negative_slope:g}" if plan.negative_slope is not None else "")
    if isinstance(plan, DropoutPlan):
        return f"p={plan.p:g}"
    if isinstance(plan, ShufflePlan):
        return f"{plan.groups} groups"
    if isinstance(plan, SplitPlan):
        return "+".join(str(size) for size in plan.sizes)
    if isinstance(plan, JoinPlan):
        return " · ".join(_act(plan.act))
    return ""


def layer_path(label: str | None) -> tuple | None:
    """The data path a problem's layer label names: "layers[2].first[0]" -> ('layers', 2, 'first', 0)."""
    if not label:
        return None
    text = getattr(label, "path", None) or str(label).split(" ")[0]
    steps = _STEP.findall(text)
    if not steps:
        return None
    path: tuple = ()
    for key, index in steps:
        path += (key, int(index))
    return path


__all__ = ["NORM_NAMES", "layer_path", "operation", "sample_shape"]
