"""The layer kinds: one declaration each, and the registry every view reads. No torch.

A `Kind` ties together everything convspec knows about a layer type:

- `model`: its pydantic model (the keys, their types and defaults, the JSON Schema);
- `rule`: its torch-free shape rule, `(TracedLayer, [Value]) -> Traced` (`shapes.py` and its family modules), which
  returns the figures and the frozen plan its builder reads;
- `builder`: `(plan, LayerReport, BuildContext) -> nn.Module`, given as "module:function" so that
  the checker, which never imports torch, can hold it; resolved on the first build;
- what the other views need: the buffers it holds (memory budget), the keys holding inner
  layer lists (containers), how many inputs it takes, its colours in drawings, and what
  stops it from exporting.

`check`, `build`, `draw`, the budget, the JSON Schema and the error messages all read
`registry`, so a kind declared here (or registered by a user) is handled by all of them.
The conv variants that are `conv` plus one rule of their own (pointwise, asymmetric,
dilated, depthwise, group) share conv's rule and builder; their models' validators hold
the difference (depthwise's channels, groups = in and out = in x multiplier, are one branch
of conv's rule).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import schema as S
from . import shapes_basic, shapes_conv, shapes_graph, shapes_resample
from .errors import Problem
from .geometry import (
    interpolation_scale, norm_buffers, onnx_ceil_pool, onnx_resize_output_size, pool_ceil_may_drop, resize_copied_by_onnxruntime,
    resize_output_size, resize_scale_disagrees,
)
from .plans import ConvPlan, DynamicPlan, FixedPlan, NormPlan, SeparablePlan
from .report import LayerReport, Report
from .shapes import DIM_NAMES, Traced, TracedLayer, Value
from .source import layer_label

# Colours in drawings: (fill, stroke).
CONV_COLOURS = ("#e8f0fe", "#4a76c9")
FIXED_COLOURS = ("#e3f4f1", "#2a8f82")
POOL_COLOURS = ("#fff3e0", "#c9822a")
JOIN_COLOURS = ("#f2e9fb", "#8a5cc2")
LINEAR_COLOURS = ("#fdeaea", "#c05656")
PLAIN_COLOURS = ("#f4f4f4", "#8a8a8a")


def no_buffers(report: LayerReport) -> int:
    return 0


def plan_buffers(report: LayerReport) -> int:
    """Values held as buffers by a conv-like or norm layer: BatchNorm statistics, a frozen fixed kernel."""
    plan = report.plan
    if isinstance(plan, SeparablePlan):
        return sum(norm_buffers(p.norm.kind, p.norm.channels) for p in (plan.depthwise, plan.pointwise) if p.norm)
    if isinstance(plan, (ConvPlan, DynamicPlan)):
        return norm_buffers(plan.norm.kind, plan.norm.channels) if plan.norm else 0
    if isinstance(plan, NormPlan):
        return norm_buffers(plan.kind, plan.channels)
    if isinstance(plan, FixedPlan) and not plan.trainable:
        return plan.geometry.params  # the kernel as a (out, in/groups, *k) buffer
    return 0


# `type` values that are not layer kinds but mean something to the loader: no kind may take them
RESERVED_TYPES = {"use": "a block template's use, expanded before any kind sees it", "input": "the name of the spec's input"}


@dataclass(frozen=True)
class ExportTarget:
    """What an export is asked for, as a kind's `export_limit` sees it."""

    opset: int  # the ONNX opset of the file
    dynamic_spatial: bool  # spatial sizes are symbolic in the file


def _adaptive_pool_export_limit(report: LayerReport, target: ExportTarget) -> tuple[str, str] | None:
    if target.dynamic_spatial and any(s != 1 for s in report.plan.size):
        return "size", (
            f"adaptive_pool to size {list(report.plan.size)} cannot be exported exactly with a dynamic "
            "spatial size (the exporter bakes in the windows of the example size); give `input.size` in the "
            "spec and drop --dynamic-size, or pool to size 1 (global_pool)"
        )
    return None


def _pool_export_limit(report: LayerReport, target: ExportTarget) -> tuple[str, str] | None:
    # MaxPool/AveragePool before opset 22 keep a ceil_mode window that starts in the right padding
    # (onnx/onnx#5711); PyTorch drops it. At a fixed size the plan has ceil_mode only where no window
    # is dropped; at a dynamic size some sizes would differ in runtimes that follow the old spec.
    plan = report.plan
    if not (plan.ceil_mode and target.opset < 22):
        return None
    if not target.dynamic_spatial:
        sizes = report.input_shapes[0][2:] if report.input_shapes else ()
        if None in sizes or not sizes:
            return None
        # the exporter writes the windows ceil mode adds as end padding (an average pool's own padding
        # becomes a Pad node first, so only it is counted); only padding onnxruntime refuses stops it
        if onnx_ceil_pool(sizes, plan.kernel_size, plan.stride, plan.padding) is None:
            return "ceil_mode", (
                f"ceil_mode at input {list(sizes)} drops PyTorch's last window in one dim and needs it in another; "
                "before opset 22 ONNX cannot say both for this pool (onnxruntime follows the opset); export with "
                "--opset 22, or change the padding or the input size"
            )
        return None
    if any(pool_ceil_may_drop(k, s, p) for k, s, p in zip(plan.kernel_size, plan.stride, plan.padding)):
        return "ceil_mode", (
            f"ceil_mode with padding {list(plan.padding)} (or a stride above the kernel) cannot be exported "
            f"at a dynamic size to opset {target.opset}: before opset 22 ONNX keeps a last window that "
            "starts in the padding, which PyTorch drops, so some sizes disagree; export with --opset 22, "
            "or give `input.size` and drop --dynamic-size"
        )
    return None


def _transposed_export_limit(report: LayerReport, target: ExportTarget) -> tuple[str, str] | None:
    # PyTorch allows output_padding < max(stride, dilation); onnxruntime's ConvTranspose wants < stride
    g = report.plan.geometry
    for axis, (op, s) in enumerate(zip(g.transposed_parts[1], g.stride)):
        if op >= s:
            dim = DIM_NAMES[g.dims][axis]
            written = getattr(report.layer, "output_padding", None) is not None
            cause = f"output_padding={op} in {dim}" if written else f"`padding: same` needs output_padding={op} in {dim}, which"
            return ("output_padding" if written else "padding"), (
                f"{cause} is valid in PyTorch (below the dilation {g.dilation[axis]}) but cannot be exported: "
                f"onnxruntime's ConvTranspose refuses an output_padding not below the stride ({s}); "
                + (f"use output_padding {'0' if s == 1 else f'at most {s - 1}'} in {dim}, or a stride above {op}" if written else f"give explicit `padding` and `output_padding` below {s}, or a stride above {op}")
            )
    return None


LAYER_NORM_OPSET = 17  # ONNX's LayerNormalization, which torch's exporter writes for `layer` norms


def _norm_export_limit(report: LayerReport, target: ExportTarget) -> tuple[str, str] | None:
    # onnx's version converter has no form of LayerNormalization before opset 17
    if target.opset >= LAYER_NORM_OPSET:
        return None
    plan = report.plan
    if isinstance(plan, NormPlan):
        found = [("kind", plan)]
    elif isinstance(plan, SeparablePlan):
        found = [("depthwise", plan.depthwise.norm), ("norm", plan.pointwise.norm)]
    else:
        found = [("norm", getattr(plan, "norm", None))]
    for key, norm in found:
        if norm is not None and norm.kind == "layer":
            return key, (
                f"a layer norm is ONNX's LayerNormalization, which exists from opset {LAYER_NORM_OPSET}: it cannot be "
                f"exported to opset {target.opset}; use --opset {LAYER_NORM_OPSET} or higher, or another norm"
            )
    return None


def _first_limit(*limits: Callable[[LayerReport, ExportTarget], tuple[str, str] | None]):
    """An export_limit that is the first refusal of `limits`."""

    def limit(report: LayerReport, target: ExportTarget) -> tuple[str, str] | None:
        return next((found for check in limits if (found := check(report, target)) is not None), None)

    return limit


def _upsample_export_limit(report: LayerReport, target: ExportTarget) -> tuple[str, str] | None:
    # ONNX's Resize takes float32 scales and samples at the scale it is given; PyTorch floors
    # in * scale in double and samples some axes at another scale (`interpolation_scale`). At a
    # fixed size the exporter writes what PyTorch does; at a dynamic size only a scale that
    # means the same at every size can be exported.
    plan = report.plan
    if plan.scale is None:
        return None
    dims = len(plan.scale)
    if not target.dynamic_spatial:
        # at a fixed size nearest upsampling exports as index gathers (`layers_resample.Upsample`), not as a Resize
        sizes, outs = tuple(report.input_shapes[0][2:]), tuple(report.output_shape[2:])
        if plan.mode != "nearest" and None not in sizes and resize_copied_by_onnxruntime(plan.mode, sizes, outs, plan.scale):
            return "scale", _copied(plan, sizes)
        return None
    if all(1 <= scale < 1.5 for scale in plan.scale):  # at size 2 every axis stays 2
        if resize_copied_by_onnxruntime(plan.mode, (2,) * dims, (2,) * dims, plan.scale):
            return "scale", _copied(plan, (2,) * dims) + " (at a dynamic size)"
    for axis, scale in enumerate(plan.scale):
        found = resize_scale_disagrees(scale, plan.mode, dims)
        if found is None:
            continue
        size, how = found
        out = resize_output_size(size, scale)
        dim = DIM_NAMES[dims][axis]
        if how == "size":
            reason = (
                f"ONNX's Resize stores it as a float32 and would make {onnx_resize_output_size(size, scale)} of {size} "
                f"in {dim} where PyTorch makes {out}"
            )
        else:
            reason = (
                f"PyTorch's {plan.mode} upsampling of {size} to {out} in {dim} samples at scale "
                f"{interpolation_scale(plan.mode, dims, size, out, scale):g}, not {scale:g}, which ONNX's Resize does"
            )
        return "scale", (
            f"scale {scale:g} cannot be exported exactly at a dynamic spatial size: {reason}; give `input.size` "
            "(a fixed size is exported as PyTorch computes it), or a scale that is a whole number or that float32 "
            "holds exactly (such as 1.5 or 2.5), or `size`"
        )
    return None


def _copied(plan: Any, sizes: tuple[int, ...]) -> str:
    shape = "x".join(map(str, sizes))
    return (
        f"scale {' x '.join(f'{s:g}' for s in dict.fromkeys(plan.scale))} keeps the size {shape}, which PyTorch's {plan.mode} upsampling "
        f"resamples but onnxruntime's Resize copies unchanged, so the two differ; use a scale that changes the size, "
        "or `identity` for a copy"
    )


def export_limit_problems(report: Report, target: ExportTarget) -> list[Problem]:
    """Every layer of a checked report that its kind's `export_limit` refuses for `target`, located at the key to change."""
    problems = []
    source = report.spec.source
    for layer in report.walk():
        kind = registry.get(layer.type)
        limit = kind.export_limit(layer, target) if kind is not None and kind.export_limit and layer.plan else None
        if limit is not None:
            key, reason = limit
            label = layer_label(source.data, layer.path)[1] if source.data is not None else layer.name
            problems.append(Problem(reason, source.locate(layer.path + (key,)), label))
    return problems


@dataclass(frozen=True)
class Kind:
    """One layer kind, declared once. See the module docstring for each field's role."""

    name: str
    model: type[S.LayerBase]
    rule: Callable[[TracedLayer, list[Value]], Traced]
    builder: str | Callable[..., Any]  # "module:function", or the function itself
    many_inputs: bool = False  # takes two or more `from` inputs (add, mul, concat)
    child_lists: tuple[str, ...] = ()  # keys holding inner layer lists (containers)
    parts: Callable[[S.LayerBase], int] | None = None  # outputs read as NAME.0, NAME.1, ... (split)
    buffers: Callable[[LayerReport], int] = no_buffers  # values held besides parameters, for the budget
    colours: tuple[str, str] = PLAIN_COLOURS  # (fill, stroke) of its box in drawings
    # (report, dynamic_spatial) -> (key, reason) when the layer cannot be exported that way, else None
    export_limit: Callable[[LayerReport, ExportTarget], tuple[str, str] | None] | None = None
    origin: str = "convspec"  # the package that declared it

    def resolve_builder(self) -> Callable[..., Any]:
        """The builder function (imports its module on first use: this is where torch comes in)."""
        if callable(self.builder):
            return self.builder
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)


@dataclass
class KindRegistry:
    """The layer kinds by name. `register` / `unregister` keep the schema's validators in step."""

    kinds: dict[str, Kind] = field(default_factory=dict)
    # entry points of `convspec.kinds` read so far ("package: name = module:attr"): the kind names
    # each registered, or why it could not be used (`plugins.discover`), so each is loaded once
    plugins: dict[str, Any] = field(default_factory=dict)

    def __contains__(self, name: object) -> bool:
        return name in self.kinds

    def __getitem__(self, name: str) -> Kind:
        return self.kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.kinds)

    def get(self, name: str) -> Kind | None:
        return self.kinds.get(name)

    def values(self):
        return self.kinds.values()

    def register(self, *kinds: Kind) -> None:
        """Add kinds; raises ValueError if a name or `type` literal is taken or does not match."""
        for kind in kinds:
            declared = kind.model.model_fields["type"].annotation
            literal = getattr(declared, "__args__", (None,))[0]
            if literal != kind.name:
                raise ValueError(f"kind {kind.name!r}: its model's `type` must be Literal[{kind.name!r}], not {declared!r}")
            if kind.name in self.kinds:
                raise ValueError(f"kind {kind.name!r} is already registered (by {self.kinds[kind.name].origin})")
            if kind.name in RESERVED_TYPES:
                raise ValueError(f"kind {kind.name!r}: the name is convspec's ({RESERVED_TYPES[kind.name]}); choose another")
        for kind in kinds:
            self.kinds[kind.name] = kind
            S.LAYER_MODELS[kind.name] = kind.model
        self._rebuild()

    def unregister(self, *names: str) -> None:
        for name in names:
            del self.kinds[name]
            del S.LAYER_MODELS[name]
        self._rebuild()

    @contextlib.contextmanager
    def temporarily(self, *kinds: Kind) -> Iterator[None]:
        """Register `kinds` for the duration of a `with` block (tests, notebooks)."""
        self.register(*kinds)
        try:
            yield
        finally:
            self.unregister(*(kind.name for kind in kinds))

    @contextlib.contextmanager
    def isolated(self) -> Iterator[None]:
        """Whatever a `with` block registers or discovers (entry points included) is forgotten after it (tests)."""
        kinds, plugins = dict(self.kinds), dict(self.plugins)
        try:
            yield
        finally:
            added = [name for name in self.kinds if name not in kinds]
            self.plugins.clear()
            self.plugins.update(plugins)
            if added:
                self.unregister(*added)

    def _rebuild(self) -> None:
        S.rebuild_layer_models([kind.model for kind in self.kinds.values() if kind.child_lists])


_BUILDER = "convspec.builder:"


def _conv_kind(name: str, model: type[S.LayerBase], rule=shapes_conv.rule_conv, builder: str = "build_conv") -> Kind:
    return Kind(name, model, rule, _BUILDER + builder, buffers=plan_buffers, colours=CONV_COLOURS, export_limit=_norm_export_limit)


BUILTIN_KINDS: tuple[Kind, ...] = (
    _conv_kind("conv", S.ConvLayer),
    _conv_kind("pointwise", S.PointwiseLayer),
    _conv_kind("asymmetric", S.AsymmetricLayer),
    _conv_kind("dilated", S.DilatedLayer),
    _conv_kind("depthwise", S.DepthwiseLayer),
    _conv_kind("group", S.GroupLayer),
    _conv_kind("separable", S.SeparableLayer, shapes_conv.rule_separable, "build_separable"),
    dataclasses.replace(
        _conv_kind("transposed", S.TransposedLayer, shapes_conv.rule_transposed),
        export_limit=_first_limit(_transposed_export_limit, _norm_export_limit),
    ),
    _conv_kind("dynamic", S.DynamicLayer, shapes_conv.rule_dynamic, "build_dynamic"),
    Kind("fixed", S.FixedLayer, shapes_conv.rule_fixed, _BUILDER + "build_fixed", buffers=plan_buffers, colours=FIXED_COLOURS),
    Kind("norm", S.NormLayer, shapes_basic.rule_norm, _BUILDER + "build_norm", buffers=plan_buffers, export_limit=_norm_export_limit),
    Kind("act", S.ActLayer, shapes_basic.rule_act, _BUILDER + "build_act"),
    Kind("pool", S.PoolLayer, shapes_resample.rule_pool, _BUILDER + "build_pool", colours=POOL_COLOURS, export_limit=_pool_export_limit),
    Kind(
        "adaptive_pool", S.AdaptivePoolLayer, shapes_resample.rule_adaptive_pool, _BUILDER + "build_adaptive_pool",
        colours=POOL_COLOURS, export_limit=_adaptive_pool_export_limit,
    ),
    Kind("global_pool", S.GlobalPoolLayer, shapes_resample.rule_global_pool, _BUILDER + "build_global_pool", colours=POOL_COLOURS),
    Kind(
        "upsample", S.UpsampleLayer, shapes_resample.rule_upsample, _BUILDER + "build_upsample", colours=POOL_COLOURS,
        export_limit=_upsample_export_limit,
    ),
    Kind("shuffle", S.ShuffleLayer, shapes_basic.rule_shuffle, _BUILDER + "build_shuffle"),
    Kind("split", S.SplitLayer, shapes_graph.rule_split, _BUILDER + "build_split", parts=shapes_graph.split_parts, colours=JOIN_COLOURS),
    Kind("dropout", S.DropoutLayer, shapes_basic.rule_dropout, _BUILDER + "build_dropout"),
    Kind("flatten", S.FlattenLayer, shapes_basic.rule_flatten, _BUILDER + "build_flatten"),
    Kind("linear", S.LinearLayer, shapes_basic.rule_linear, _BUILDER + "build_linear", colours=LINEAR_COLOURS),
    Kind("identity", S.IdentityLayer, shapes_basic.rule_passthrough, _BUILDER + "build_identity"),
    Kind("add", S.AddLayer, shapes_graph.rule_add, _BUILDER + "build_join", many_inputs=True, colours=JOIN_COLOURS),
    Kind("concat", S.ConcatLayer, shapes_graph.rule_concat, _BUILDER + "build_join", many_inputs=True, colours=JOIN_COLOURS),
    Kind("mul", S.MulLayer, shapes_graph.rule_mul, _BUILDER + "build_join", many_inputs=True, colours=JOIN_COLOURS),
    Kind("residual", S.ResidualLayer, shapes_graph.rule_residual, _BUILDER + "build_residual", child_lists=("layers", "shortcut")),
    Kind("repeat", S.RepeatLayer, shapes_graph.rule_repeat, _BUILDER + "build_repeat", child_lists=("first", "layers")),
    Kind("block", S.BlockLayer, shapes_graph.rule_block, _BUILDER + "build_block", child_lists=("layers",)),
)

registry = KindRegistry()
registry.register(*BUILTIN_KINDS)


def child_list_keys() -> frozenset[str]:
    """Every key that holds an inner layer list in some registered kind (for locations and templates)."""
    return frozenset(key for kind in registry.values() for key in kind.child_lists)


__all__ = [
    "BUILTIN_KINDS", "ExportTarget", "Kind", "KindRegistry", "child_list_keys", "export_limit_problems", "no_buffers", "plan_buffers",
    "registry",
]  # fmt: skip
