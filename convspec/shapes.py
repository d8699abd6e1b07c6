"""Shape rules: what every layer outputs, what it costs and what it sees, by arithmetic alone.

This is the one place for padding resolution, output sizes, parameter and MAC
counts and receptive fields; the builder takes its padding and channel counts
from the `LayerReport`s made here and never recomputes them. No torch import:
checking a 1,000-layer spec is integer arithmetic.

Conventions:
- Shapes include the batch: (B, C, *spatial) for feature maps, (B, F) once flat.
  A spatial size is None where the input size is not known (dynamic).
- MACs count the multiply-accumulates of convolutions and linear layers (and the
  kernel mixing and attention of a dynamic conv), and the multiplies of `mul`;
  norms, activations, pooling and additions are not counted, as in the usual
  reference tables.
- Receptive field and effective stride ("jump") are per spatial dim, in input pixels,
  along the widest path; a transposed conv gives a fractional stride.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from fractions import Fraction
from collections.abc import Callable, Iterator
from typing import Any

from . import kernels
from .errors import LISTED_NAMES, Problem, SpecError, shorten
from .geometry import (
    AUTO_PADS, ConvGeometry, adaptive_widest_window, attention_hidden, auto_padding, conv_output_size, divisors, norm_params,
    pool_output_size, resize_output_size, same_padding, transposed_auto_padding, transposed_output_size, transposed_same_padding,
)  # fmt: skip
from .plans import (
    AdaptivePoolPlan, ContainerPlan, ConvPlan, DropoutPlan, DynamicPlan, EmptyPlan, FixedPlan, GlobalPoolPlan, JoinPlan,
    LinearPlan, NormPlan, PoolPlan, SeparablePlan, ShufflePlan, SplitPlan, UpsamplePlan, act_plan, init_plan,
)  # fmt: skip
from .limits import INT_LIMIT
from .schema import LayerBase, Spec
from .source import layer_label

DIM_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
MAX_LAYERS = 10_000  # after `repeat` expansion: the largest real networks have a few thousand


# ---------------------------------------------------------------- values and reports


@dataclass(frozen=True)
class Value:
    """What flows along an edge: a shape and what its pixels see."""

    shape: tuple[int | None, ...]  # (B, C, *spatial) or (B, F)
    rf: tuple[int | Fraction, ...]  # receptive field per input spatial dim
    jump: tuple[int | Fraction | None, ...]  # effective stride per input spatial dim (a Fraction only when not whole)
    flat: bool = False

    @property
    def channels(self) -> int | None:
        return self.shape[1]

    @property
    def spatial(self) -> tuple[int | None, ...]:
        return self.shape[2:]


def _whole(value: Fraction) -> int | Fraction:
    return value.numerator if value.denominator == 1 else value


def _figure(value: int | Fraction | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value.denominator == 1 else round(float(value), 6)


@dataclass
class LayerReport:
    """One layer as the checker sees it."""

    name: str
    type: str
    path: tuple  # data path of the layer, e.g. ("layers", 3)
    layer: LayerBase | None
    sources: list[str] = field(default_factory=list)
    input_shapes: list[tuple] = field(default_factory=list)
    output_shape: tuple | None = None
    params: int = 0
    trainable_params: int = 0
    macs: int = 0
    receptive_field: tuple = ()
    stride: tuple = ()
    children: list["LayerReport"] = field(default_factory=list)
    plan: Any = None  # the frozen plan (`plans.py`) the kind's builder reads; None where the layer failed
    role: str = "layer"  # "layer"; or what a container made: "shortcut" (a residual's), "copy" (a repeat's), "part" (a split's)
    requested: dict[str, int] | None = None  # what the spec asked where a `--scale` preset changed it: {"out_channels": 64}

    def to_dict(self) -> dict:
        from .plugins import kind_package  # torch-free; a kind from outside convspec says which package declared it

        scaled = {"requested": dict(self.requested)} if self.requested else {}
        package = kind_package(self.type)
        return {
            "name": self.name,
            "type": self.type,
            "output_shape": list(self.output_shape) if self.output_shape is not None else None,
            "params": self.params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "receptive_field": [_figure(v) for v in self.receptive_field],
            "stride": [_figure(v) for v in self.stride],
            "children": [child.to_dict() for child in self.children],
            **scaled,
            **({"package": package} if package is not None else {}),
        }


@dataclass
class Report:
    """What `check` found: per-layer figures, totals and every error."""

    spec: Spec
    input_shape: tuple
    layers: list[LayerReport]
    outputs: dict[str, tuple | None]
    errors: list[Problem]

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def total_params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def trainable_params(self) -> int:
        return sum(layer.trainable_params for layer in self.layers)

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def raise_for_errors(self) -> None:
        if self.errors:
            raise SpecError(self.errors)

    def table(self, depth: int | None = None, *, flops: bool = False, train: str | None = None) -> str:
        """The table `convspec check` prints, as text without a final newline (`report_view.table_text`: `depth`, `flops`, `train`)."""
        from .report_view import table_text

        return table_text(self, depth, flops=flops, train=train).rstrip("\n")

    def to_json(self, *, flops: bool = False) -> str:
        """The JSON `convspec check --format json` prints (with `flops`, as `--flops` adds)."""
        from .report_view import to_json_text

        return to_json_text(self, flops)

    def __str__(self) -> str:
        return self.table() if self.valid else "\n".join(map(str, self.errors))

    def __repr__(self) -> str:  # the dataclass's own would print every layer's plan
        state = "valid" if self.valid else f"{len(self.errors)} problem{'s' if len(self.errors) != 1 else ''}"
        name = self.spec.name or self.spec.source.file
        return f"<Report {name}: {len(self.layers)} layers, {self.total_params:,} parameters, {self.total_macs:,} MACs, {state}>"

    def walk(self):
        """Every layer report, depth first."""
        stack = list(reversed(self.layers))
        while stack:
            layer = stack.pop()
            yield layer
            stack.extend(reversed(layer.children))

    def to_dict(self) -> dict:
        return {
            "spec": self.spec.source.file,
            "name": self.spec.name,
            "valid": self.valid,
            "input_shape": list(self.input_shape),
            "layers": [layer.to_dict() for layer in self.layers],
            "outputs": {k: (list(v) if v is not None else None) for k, v in self.outputs.items()},
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "total_macs": self.total_macs,
            "errors": [p.to_dict() for p in self.errors],
        }


# ---------------------------------------------------------------- tracing context


class LayerFailed(Exception):
    """A layer failed; its problems are already recorded.

    `assumed` is what its own keys still determine of its output (the channels, and the spatial
    sizes that could be computed, None where not), so that the layers after it are still checked;
    None when nothing can be assumed.
    """

    def __init__(self, assumed: Value | None = None):
        super().__init__()
        self.assumed = assumed


@dataclass
class TraceContext:
    """One trace of a spec: what every rule shares (the dims, the problems found so far, the way into inner lists)."""

    spec: Spec
    dims: int
    data: dict  # the spec as plain data, for labels
    problems: list[Problem]
    # (layers, path, input value, ctx) -> (reports, output or None): the walk of one list, given by `trace.py`
    trace_list: Callable[..., tuple[list[LayerReport], Value | None]]
    layers_traced: int = 0  # after `repeat` expansion; bounded so a huge `times` ends in an error, not a hang
    sizes_known: bool = True  # the input's spatial sizes are given: an unknown size later comes from an earlier failure
    _seen: set[Problem] = field(default_factory=set, repr=False)  # `problems` as a set: thousands stay linear

    def problem(self, path: tuple, key: str | tuple | None, message: str) -> None:
        """Record a problem at the layer `path`, located at its `key` (a name, or a path within the layer)."""
        _, label = layer_label(self.data, path)
        where = path + (key if isinstance(key, tuple) else (key,)) if key else path
        problem = Problem(message, self.spec.source.locate(where), label)
        if problem not in self._seen:  # repeat copies report a problem once
            self._seen.add(problem)
            self.problems.append(problem)

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """Trace without recording problems (a layer traced on assumptions: its findings may be wrong)."""
        kept, self.problems, seen, self._seen = self.problems, [], self._seen, set()
        try:
            yield
        finally:
            self.problems, self._seen = kept, seen


@dataclass
class Traced:
    """What a shape rule returns: the output value, its figures, and the plan its builder reads."""

    value: Value
    params: int = 0
    trainable: int = 0
    macs: int = 0
    plan: Any = None
    children: list[LayerReport] = field(default_factory=list)
    parts: list[Value] | None = None  # a split's outputs, read as NAME.0, NAME.1, ...


class TracedLayer:
    """The layer under trace: its model, path and a way to report problems on its keys."""

    def __init__(self, model: LayerBase, path: tuple, ctx: TraceContext):
        self.model, self.path, self.ctx = model, path, ctx
        self.failed = False

    def error(self, key: str | tuple | None, message: str) -> None:
        self.failed = True
        self.ctx.problem(self.path, key, message)

    def fail(self, key: str | None, message: str):
        self.error(key, message)
        raise LayerFailed

    def per_dim(self, key: str, value: Any) -> tuple[int, ...]:
        """An int or per-dim list as one entry per spatial dim."""
        dims = self.ctx.dims
        if isinstance(value, list):
            if len(value) != dims:
                self.fail(key, f"`{key}` has {len(value)} entries ({value}) but the input is {dims}-D; give {dims} or one int")
            return tuple(value)
        return (value,) * dims

    def trace_list(self, key: str, value: Value) -> tuple[list[LayerReport], Value | None]:
        """Trace the inner layer list under `key` (a container's `layers`, `shortcut`, `first`) on `value`."""
        return self.ctx.trace_list(getattr(self.model, key), self.path + (key,), value, self.ctx)


# ---------------------------------------------------------------- shared rule pieces


def _feature_map(layer: TracedLayer, value: Value, what: str) -> Value:
    if value.flat:
        layer.fail(None, f"{what} needs a feature map (B, C, ...), but its input is flat {list(value.shape)}; move it before `flatten`")
    return value


def _spread(value: Value, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple, tuple]:
    """Receptive field and jump after a sliding window."""
    rf, jump = [], []
    for r, j, k, s, d in zip(value.rf, value.jump, kernel, stride, dilation):
        effective = d * (k - 1) + 1
        rf.append(_whole(r + (effective - 1) * j) if j is not None else r)
        jump.append(_whole(j * s) if j is not None else None)
    return tuple(rf), tuple(jump)


def _whole_input(value: Value) -> tuple[tuple, tuple]:
    """Receptive field when every position is seen (global pooling, flatten)."""
    rf, jump = [], []
    for r, j, size in zip(value.rf, value.jump, value.spatial or (None,) * len(value.rf)):
        if size is None or j is None:
            rf.append(r)
            jump.append(None)
        else:
            rf.append(r + (size - 1) * j)
            jump.append(j * size)
    return tuple(rf), tuple(jump)


def _check_in_channels(layer: TracedLayer, declared: int | None, inferred: int | None) -> None:
    if declared is not None and inferred is not None and declared != inferred:
        layer.error("in_channels", f"in_channels={declared} but the input has {inferred} channels; drop `in_channels` (it is inferred)")


def _resolve_padding(
    layer: TracedLayer, model: Any, kernel: tuple[int, ...], dilation: tuple[int, ...],
    stride: tuple[int, ...] | None = None, sizes: tuple[int | None, ...] | None = None,
) -> tuple[tuple[int, int], ...]:
    """(low, high) per dim for `padding`; `same_upper` / `same_lower` at the input `sizes` ((0, 0) where one is unknown and it matters)."""
    padding = model.padding
    if padding == "same":
        return tuple(same_padding(k, d) for k, d in zip(kernel, dilation))
    if padding == "valid":
        return ((0, 0),) * len(kernel)
    if padding in AUTO_PADS:
        stride = stride or (1,) * len(kernel)
        sizes = sizes or (None,) * len(kernel)
        return tuple(
            auto_padding(n, k, s, d, padding) if n is not None or s == 1 else (0, 0)
            for n, k, s, d in zip(sizes, kernel, stride, dilation)
        )
    if isinstance(padding, list) and padding and isinstance(padding[0], list):
        return tuple((lo, hi) for lo, hi in layer.per_dim("padding", padding))
    return tuple((p, p) for p in layer.per_dim("padding", padding))


def _field(model: LayerBase, name: str, default: Any) -> Any:
    """`model.<name>`, or `default` for a kind without that key (a miss through pydantic's __getattr__ costs 2 us)."""
    return getattr(model, name) if name in type(model).model_fields else default


def _auto_pad(model: LayerBase) -> str | None:
    padding = _field(model, "padding", None)
    return padding if isinstance(padding, str) and padding in AUTO_PADS else None


def _divisors(n: int) -> str:
    """The divisors of `n` for a message: all of a few, else the smallest and largest (a count near 2**31 has up to 1,600)."""
    found = [str(d) for d in divisors(n)]
    if len(found) <= 12:
        return ", ".join(found)
    return f"{', '.join(found[:8])}, ..., {', '.join(found[-3:])}: {len(found):,} in all"


def _norm_statistics_check(layer: TracedLayer, kind: str | None, groups: int | None, value: Value, key: str) -> None:
    """Instance and group norm need more than one value to normalise over, in eval mode too."""
    if value.flat or any(s is None for s in value.spatial):
        return
    positions = math.prod(value.spatial)
    if kind == "instance" and positions == 1:
        layer.error(key, f"instance norm needs more than one position, but the map is {list(value.shape)}")
    if kind == "group" and groups and value.channels % groups == 0 and positions * (value.channels // groups) == 1:
        layer.error(key, f"group norm needs more than one value per group, but the map is {list(value.shape)} with {groups} groups")


def _norm_check(layer: TracedLayer, kind: str | None, groups: int | None, value: Value, key: str = "norm") -> None:
    """A conv's `norm` must fit the conv's output `value`."""
    channels = value.channels
    if kind == "group" and groups is not None and channels % groups:
        layer.error(
            "norm_groups" if key == "norm" else key,
            f"norm_groups={groups} does not divide the {channels} channels (divisors: {_divisors(channels)})",
        )
    _norm_statistics_check(layer, kind, groups, value, key)


def _check_groups(layer: TracedLayer, key: str, groups: int, in_channels: int, out_channels: int) -> None:
    """`groups` must divide both channel counts (nn.ConvNd's rule), with the divisors that would."""
    wrong = [
        f"{what}={channels} (divisors: {_divisors(channels)})"
        for what, channels in (("in_channels", in_channels), ("out_channels", out_channels))
        if channels % groups
    ]
    if wrong:  # one mistake, one message
        layer.error(key, f"groups={groups} does not divide {' or '.join(wrong)}")


def _conv(
    layer: TracedLayer,
    value: Value,
    out_channels: int,
    kernel: tuple[int, ...],
    groups: int,
    bias: bool,
    stride: tuple[int, ...] | None = None,
    dilation: tuple[int, ...] | None = None,
    padding: tuple[tuple[int, int], ...] | None = None,
) -> tuple[ConvGeometry, Value, int]:
    """Geometry, output value and MACs of one (non-transposed) convolution."""
    model = layer.model
    explicit_padding = padding
    dims = layer.ctx.dims
    stride = stride or layer.per_dim("stride", model.stride)
    dilation = dilation or layer.per_dim("dilation", model.dilation)
    padding = padding or _resolve_padding(layer, model, kernel, dilation, stride, value.spatial)
    auto_pad = _auto_pad(model) if explicit_padding is None else None
    in_channels = value.channels
    _check_groups(layer, "groups", groups, in_channels, out_channels)
    mode = _field(model, "padding_mode", "zeros")
    out_spatial: list[int | None] = []
    too_large: list[tuple] = []  # (dim, kernel text, padded size, size, padding text)
    for axis, (size, k, s, d, pad) in enumerate(zip(value.spatial, kernel, stride, dilation, padding)):
        if size is None:
            out_spatial.append(None)
            continue
        dim = DIM_NAMES[dims][axis]
        if mode == "reflect" and max(pad) >= size:
            layer.error(
                "padding",
                f"reflect padding {max(pad)} must be smaller than the input size {size} in {dim}; "
                f"use padding <= {size - 1} or padding_mode replicate",
            )
        if mode == "circular" and max(pad) > size:
            layer.error(
                "padding",
                f"circular padding {max(pad)} must be at most the input size {size} in {dim}; use padding <= {size} or padding_mode replicate",
            )
        effective = d * (k - 1) + 1
        if size + pad[0] + pad[1] < effective:
            extent = f"kernel {k}" + (f" (spanning {effective} with dilation {d})" if d > 1 else "")
            too_large.append((dim, extent, size + pad[0] + pad[1], size, f"{pad[0]}+{pad[1]}"))
            out_spatial.append(None)
            continue
        out_spatial.append(conv_output_size(size, k, s, d, pad))
    if too_large:  # one message for the layer, not one per dim
        clauses: dict[tuple, list[str]] = {}
        for dim, extent, padded, size, pad_text in too_large:
            clauses.setdefault((extent, padded, size, pad_text), []).append(dim)
        text = "; ".join(
            f"{extent} is larger than the padded input {padded} in {' and '.join(dims_)} (input {size}, padding {pad_text})"
            for (extent, padded, size, pad_text), dims_ in clauses.items()
        )
        layer.error("kernel_size", f"{text}; use a smaller kernel or more padding")
    rf, jump = _spread(value, kernel, stride, dilation)
    if layer.failed:  # the output's channels are the layer's own; sizes where they could be computed
        raise LayerFailed(Value((value.shape[0], out_channels, *out_spatial), rf, jump))
    geometry = ConvGeometry(dims, in_channels, out_channels, kernel, stride, dilation, padding, groups, bias, mode, auto_pad=auto_pad)
    shape = (value.shape[0], out_channels, *out_spatial)
    return geometry, Value(shape, rf, jump), geometry.macs(value.shape, shape)


def _check_init(layer: TracedLayer, weight_shape: tuple[int, ...], has_bias: bool, out: int, arrays: bool = True) -> None:
    """Literal arrays and filter initialisers must fit the weight they initialise."""
    init = _field(layer.model, "init", None)
    if init is None:
        return
    if init.bias is not None and not has_bias:
        layer.error(("init", "bias"), "`init.bias` is given but the layer has no bias (bias is off when `norm` is set; set `bias: true`)")
    for part, expected in (("weight", weight_shape), ("bias", (out,))):
        spec = getattr(init, part)
        if spec is None:
            continue
        if spec.kind == "array":
            if not arrays:
                layer.error(("init", part), f"a literal {part} array is ambiguous here; use a named initialiser")
            elif kernels.kernel_shape(spec.array) != tuple(expected):
                layer.error(
                    ("init", part),
                    f"the literal {part} has shape {list(kernels.kernel_shape(spec.array))} but the layer's {part} "
                    f"has shape {list(expected)}",
                )
        elif spec.kind == "filter":
            if not arrays:
                layer.error(("init", part), "a filter initialiser is ambiguous here (two kernels); use a named initialiser")
                continue
            if part == "bias":
                layer.error(("init", part), "a filter initialises a weight, not a bias")
                continue
            args = spec.filter
            try:
                values = kernels.make_filter(args["filter"], layer.ctx.dims, args.get("kernel_size"), args.get("sigma"))
            except kernels.FilterError as err:
                layer.error(("init", part), str(err))
                continue
            if kernels.kernel_shape(values) != tuple(weight_shape[2:]):
                layer.error(
                    ("init", part),
                    f"the {args['filter']} filter is {list(kernels.kernel_shape(values))} but the kernel is {list(weight_shape[2:])}",
                )
        elif spec.kind == "orthogonal" and part == "bias":
            layer.error(("init", part), "orthogonal initialises a weight (2 or more dims), not a bias")
        elif spec.kind.startswith(("kaiming", "xavier")) and part == "bias":
            layer.error(("init", part), f"{spec.kind} needs a weight's fan-in and fan-out; use zeros, constant, uniform or normal for a bias")


def _bias_default(model: Any) -> bool:
    return model.bias if model.bias is not None else model.norm is None


def _norm_plan(
    layer: TracedLayer, kind: str | None, channels: int, dims: int, groups: int | None, settings: Any = None, flat: bool = False,
) -> NormPlan | None:
    """The plan of a norm; `settings` (the layer, or a separable's `depthwise`) may set `eps` and `momentum`.

    What it leaves unset comes from the spec's `batch_norm` for a batch norm, else PyTorch's defaults.
    """
    if kind is None:
        return None
    eps, momentum = (None, None) if settings is None else (_field(settings, "eps", None), _field(settings, "momentum", None))
    defaults = layer.ctx.spec.batch_norm
    if kind == "batch" and defaults is not None:
        eps = defaults.eps if eps is None else eps
        momentum = defaults.momentum if momentum is None else momentum
    return NormPlan(kind, channels, dims, groups, flat, eps, momentum)


def _finish_conv(layer: TracedLayer, geometry: ConvGeometry, value: Value, macs: int) -> Traced:
    """A conv layer's figures and ConvPlan, after checking its norm and init against the geometry."""
    model = layer.model
    _norm_check(layer, model.norm, model.norm_groups, value)
    _check_init(layer, geometry.weight_shape, geometry.bias, geometry.out_channels)
    norm = _norm_plan(layer, model.norm, geometry.out_channels, geometry.dims, model.norm_groups, model)
    params = geometry.params + norm_params(model.norm, geometry.out_channels)
    trainable = params if model.trainable else 0
    plan = ConvPlan(geometry, norm, act_plan(model.act), init_plan(model.init), model.trainable)
    return Traced(value, params, trainable, macs, plan)


# ---------------------------------------------------------------- the rules, one per kind


def rule_conv(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], model.type)
    _check_in_channels(layer, model.in_channels, value.channels)
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    groups = _field(model, "groups", 1)
    if model.type == "depthwise":
        groups = value.channels
        out = value.channels * model.multiplier
        if model.out_channels is not None and model.out_channels != out:
            layer.error(
                "out_channels",
                f"a depthwise conv outputs in_channels x multiplier = {value.channels} x {model.multiplier} = {out} channels, "
                f"not {model.out_channels}; drop out_channels or set multiplier",
            )
    else:
        out = model.out_channels
    geometry, result, macs = _conv(layer, value, out, kernel, groups, _bias_default(model))
    return _finish_conv(layer, geometry, result, macs)


def rule_separable(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "separable")
    _check_in_channels(layer, model.in_channels, value.channels)
    inner = model.depthwise
    inner_norm = inner.norm if inner else None
    inner_bias = inner.bias if inner and inner.bias is not None else inner_norm is None
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    mid = value.channels * model.multiplier
    try:
        dw, mid_value, dw_macs = _conv(layer, value, mid, kernel, value.channels, inner_bias)
    except LayerFailed as failed:  # the pointwise half only changes the channels
        assumed = failed.assumed
        raise LayerFailed(Value((assumed.shape[0], model.out_channels, *assumed.spatial), assumed.rf, assumed.jump)) from None
    _norm_check(layer, inner_norm, inner.norm_groups if inner else None, mid_value, key="depthwise")
    ones = (1,) * layer.ctx.dims
    pw, out_value, pw_macs = _conv(
        layer, mid_value, model.out_channels, ones, _field(model, "groups", 1),
        _bias_default(model), stride=ones, dilation=ones, padding=((0, 0),) * layer.ctx.dims,
    )
    _norm_check(layer, model.norm, model.norm_groups, out_value)
    _check_init(layer, pw.weight_shape, pw.bias, pw.out_channels, arrays=False)
    params = dw.params + norm_params(inner_norm, mid) + pw.params + norm_params(model.norm, model.out_channels)
    dims = layer.ctx.dims
    plan = SeparablePlan(
        ConvPlan(dw, _norm_plan(layer, inner_norm, mid, dims, inner.norm_groups if inner else None, inner), act_plan(inner.act if inner else None)),
        ConvPlan(pw, _norm_plan(layer, model.norm, model.out_channels, dims, model.norm_groups, model), act_plan(model.act)),
        init_plan(model.init),
        model.trainable,
    )
    return Traced(out_value, params, params if model.trainable else 0, dw_macs + pw_macs, plan)


def rule_transposed(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "transposed")
    _check_in_channels(layer, model.in_channels, value.channels)
    dims = layer.ctx.dims
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    stride = layer.per_dim("stride", model.stride)
    dilation = layer.per_dim("dilation", model.dilation)
    if model.padding_mode != "zeros":
        layer.error("padding_mode", f"a transposed convolution supports only padding_mode zeros (as nn.ConvTranspose), not {model.padding_mode!r}")
    if model.padding in AUTO_PADS:
        if model.output_padding != 0:
            layer.error("output_padding", f"`padding: {model.padding}` chooses output_padding itself; drop `output_padding`")
            raise LayerFailed
        chosen = [transposed_auto_padding(k, s, d, model.padding) for k, s, d in zip(kernel, stride, dilation)]
        crops = tuple(crop for crop, _ in chosen)
        output_padding = tuple(op for _, op in chosen)
    elif model.padding == "same":
        if model.output_padding != 0:
            layer.error("output_padding", "`padding: same` chooses output_padding itself; drop `output_padding`")
        pairs = [transposed_same_padding(k, s, d) for k, s, d in zip(kernel, stride, dilation)]
        missing: dict[tuple, list[str]] = {}  # (kernel, stride, dilation) -> dims: one message per mistake
        for axis, pair in enumerate(pairs):
            if pair is None:
                missing.setdefault((kernel[axis], stride[axis], dilation[axis]), []).append(DIM_NAMES[dims][axis])
        for (k, s_, d), dims_ in missing.items():
            nearby = [c for c in (k + 1, k - 1, k + 2) if c >= 1 and transposed_same_padding(c, s_, d) is not None]
            hint = f"kernel_size {nearby[0]} would, " if nearby else ""
            layer.error(
                "padding",
                f"no padding gives out = in x stride (with any valid output_padding) for kernel {k}, stride {s_}, dilation {d} "
                f"in {' and '.join(dims_)}; {hint}or `padding: same_lower` crops the output to in x stride",
            )
        if layer.failed:
            raise LayerFailed
        crops = tuple((p, p) for p, _ in pairs)
        output_padding = tuple(op for _, op in pairs)
    else:
        # an int or per-dim list crops both ends alike (nn.ConvTranspose's padding); pairs crop each end (ONNX's pads)
        crops = _resolve_padding(layer, model, kernel, dilation)
        output_padding = layer.per_dim("output_padding", model.output_padding)
    for axis, (op, s, d) in enumerate(zip(output_padding, stride, dilation)):
        if op >= max(s, d):
            layer.error(
                "output_padding",
                f"output_padding={op} in {DIM_NAMES[dims][axis]} must be smaller than stride ({s}) or dilation ({d}); "
                f"use 0..{max(s, d) - 1}",
            )
    groups = model.groups
    in_channels, out_channels = value.channels, model.out_channels
    _check_groups(layer, "groups", groups, in_channels, out_channels)
    out_spatial: list[int | None] = []
    for axis, (size, k, s, d, crop, op) in enumerate(zip(value.spatial, kernel, stride, dilation, crops, output_padding)):
        if size is None:
            out_spatial.append(None)
            continue
        out = transposed_output_size(size, k, s, d, crop, op)
        if out < 1:
            shown = crop[0] if crop[0] == crop[1] else list(crop)
            layer.error("padding", f"padding {shown} leaves no output in {DIM_NAMES[dims][axis]} (size {out}); use less padding")
        out_spatial.append(out if out >= 1 else None)
    if layer.failed:
        raise LayerFailed(Value((value.shape[0], out_channels, *out_spatial), value.rf, (None,) * dims))
    geometry = ConvGeometry(
        dims, in_channels, out_channels, kernel, stride, dilation, crops, groups, _bias_default(model), "zeros", output_padding,
        auto_pad=_auto_pad(model),
    )
    rf, jump = [], []
    for r, j, k, s, d in zip(value.rf, value.jump, kernel, stride, dilation):
        # each output pixel gathers at most ceil(k_eff / s) neighbouring input pixels
        rf.append(r + (-(-(d * (k - 1) + 1) // s) - 1) * j if j is not None else r)
        jump.append(_whole(Fraction(j) / s) if j is not None else None)
    shape = (value.shape[0], out_channels, *out_spatial)
    return _finish_conv(layer, geometry, Value(shape, tuple(rf), tuple(jump)), geometry.macs(value.shape, shape))


def rule_dynamic(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "dynamic")
    _check_in_channels(layer, model.in_channels, value.channels)
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    geometry, result, conv_macs = _conv(layer, value, model.out_channels, kernel, model.groups, _bias_default(model))
    _norm_check(layer, model.norm, model.norm_groups, result)
    _check_init(layer, geometry.weight_shape, geometry.bias, geometry.out_channels)
    experts = model.experts
    hidden = attention_hidden(geometry.in_channels, model.reduction)
    per_expert = geometry.params
    attention = geometry.in_channels * hidden + hidden + hidden * experts + experts
    params = experts * per_expert + attention + norm_params(model.norm, model.out_channels)
    batch = value.shape[0]
    # per sample: the attention MLP and the mixing of K kernels (and biases) into one
    macs = conv_macs + batch * (geometry.in_channels * hidden + hidden * experts + experts * per_expert)
    plan = DynamicPlan(
        geometry, experts, model.reduction, model.temperature,
        _norm_plan(layer, model.norm, geometry.out_channels, geometry.dims, model.norm_groups, model), act_plan(model.act),
        init_plan(model.init), model.trainable,
    )  # fmt: skip
    return Traced(result, params, params if model.trainable else 0, macs, plan)


def rule_fixed(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "fixed")
    _check_in_channels(layer, model.in_channels, value.channels)
    dims = layer.ctx.dims
    try:
        if isinstance(model.filter, str):
            kernel_values = kernels.make_filter(model.filter, dims, model.kernel_size, model.sigma)
        else:
            if model.kernel_size is not None or model.sigma is not None:
                layer.error("kernel_size" if model.kernel_size is not None else "sigma",
                            "a literal filter has its own size; drop `kernel_size` and `sigma`")
            kernel_values = kernels.literal_kernel(model.filter, dims)
        if model.normalize:
            kernel_values = kernels.normalize_kernel(kernel_values)
    except kernels.FilterError as err:
        layer.fail("filter", str(err))
    kernel = kernels.kernel_shape(kernel_values)
    channels = value.channels
    if model.per_channel:
        if model.out_channels is not None and model.out_channels != channels:
            layer.error("out_channels", f"a per-channel filter keeps the {channels} channels; drop out_channels or set per_channel: false")
        out, groups = channels, channels
    else:
        out, groups = model.out_channels or channels, 1
    geometry, result, macs = _conv(layer, value, out, kernel, groups, False)
    params = geometry.params
    # frozen fixed kernels are buffers, not parameters; trainable ones are parameters
    traced_params = params if model.trainable else 0
    passes = None
    if not model.trainable and model.per_channel and max(kernel) >= kernels.SEPARABLE_FROM:
        passes = kernels.separable_factors(kernel_values)
    if passes is not None:
        macs = _separable_macs(geometry, value.shape)
    plan = FixedPlan(geometry, kernel_values, tuple(map(tuple, passes)) if passes else None, model.trainable)
    return Traced(result, traced_params, traced_params, macs, plan)


def _separable_macs(geometry: ConvGeometry, in_shape: tuple) -> int:
    """MACs of one 1-D pass per dim: pass d shrinks dim d to its output size and costs k_d per output.

    As `FixedConv` runs them: where the conv pads itself (`conv_padding`), each pass pads only
    its own dim, so the dims after it are still unpadded; otherwise the input is padded first.
    """
    if any(s is None for s in in_shape):
        return 0
    own = geometry.conv_padding
    sizes = list(in_shape[2:]) if own is not None else [s + lo + hi for s, (lo, hi) in zip(in_shape[2:], geometry.padding)]
    macs = 0
    for axis, (k, s, d) in enumerate(zip(geometry.kernel_size, geometry.stride, geometry.dilation)):
        pad = (own[axis], own[axis]) if own is not None else (0, 0)
        sizes[axis] = conv_output_size(sizes[axis], k, s, d, pad)
        macs += in_shape[0] * geometry.out_channels * math.prod(sizes) * k
    return macs


def rule_norm(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model, value = layer.model, inputs[0]
    if value.flat and model.kind in ("instance", "group"):
        layer.fail("kind", f"{model.kind} norm needs a feature map, but its input is flat {list(value.shape)}")
    channels = value.shape[1]
    if model.kind == "group" and channels % model.groups:
        layer.fail("groups", f"groups={model.groups} does not divide the {channels} channels (divisors: {_divisors(channels)})")
    _norm_statistics_check(layer, model.kind, model.groups, value, "kind")
    params = norm_params(model.kind, channels)
    return Traced(value, params, params, plan=_norm_plan(layer, model.kind, channels, layer.ctx.dims, model.groups, model, value.flat))


def rule_passthrough(layer: TracedLayer, inputs: list[Value]) -> Traced:
    return Traced(inputs[0], plan=EmptyPlan())


def rule_act(layer: TracedLayer, inputs: list[Value]) -> Traced:
    return Traced(inputs[0], plan=act_plan(layer.model.fn, layer.model.negative_slope))


def rule_dropout(layer: TracedLayer, inputs: list[Value]) -> Traced:
    return Traced(inputs[0], plan=DropoutPlan(layer.model.p))


def rule_pool(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "pool")
    dims = layer.ctx.dims
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    stride = layer.per_dim("stride", model.stride) if model.stride is not None else kernel
    padding = layer.per_dim("padding", model.padding)
    out_spatial: list[int | None] = []
    too_much = [(DIM_NAMES[dims][axis], p, k) for axis, (k, p) in enumerate(zip(kernel, padding)) if p > k // 2]
    if too_much:  # one message for the layer
        groups: dict[tuple, list[str]] = {}
        for dim, p, k in too_much:
            groups.setdefault((p, k), []).append(dim)
        text = "; ".join(f"padding {p} in {' and '.join(dims_)} must be at most half the kernel ({k // 2})" for (p, k), dims_ in groups.items())
        layer.error("padding", f"{text}, as PyTorch requires")
    for axis, (size, k, s, p) in enumerate(zip(value.spatial, kernel, stride, padding)):
        dim = DIM_NAMES[dims][axis]
        if size is None:
            pass
        elif pool_output_size(size, k, s, p, model.ceil_mode) < 1:  # ceil_mode keeps a window that hangs past the end
            layer.error("kernel_size", f"kernel {k} is larger than the padded input {size + 2 * p} in {dim}"
                        + ("" if not model.ceil_mode else f", even with ceil_mode (stride {s})"))
        elif model.op == "avg" and dims == 3 and size < k:
            # torch's avg_pool3d compares the unpadded input with the kernel
            layer.error("kernel_size", f"kernel {k} is larger than the input {size} in {dim} (3-D average pooling does not count padding here)")
        else:
            out_spatial.append(pool_output_size(size, k, s, p, model.ceil_mode))
            continue
        out_spatial.append(None)  # unknown: dynamic, or no valid output
    rf, jump = _spread(value, kernel, stride, (1,) * dims)
    if layer.failed:
        raise LayerFailed(Value((value.shape[0], value.channels, *out_spatial), rf, jump))
    plan = PoolPlan(model.op, dims, kernel, stride, padding, model.ceil_mode)
    return Traced(Value((value.shape[0], value.channels, *out_spatial), rf, jump), plan=plan)


def rule_adaptive_pool(layer: TracedLayer, inputs: list[Value]) -> Traced:
    value = _feature_map(layer, inputs[0], "adaptive_pool")
    size = layer.per_dim("size", layer.model.size)
    rf, jump = [], []
    for r, j, s_in, s_out in zip(value.rf, value.jump, value.spatial, size):
        if s_in is None or j is None:
            rf.append(r)
            jump.append(None)
        else:
            window = adaptive_widest_window(s_in, s_out)
            rf.append(r + (window - 1) * j)
            jump.append(_whole(j * Fraction(s_in, s_out)))
    plan = AdaptivePoolPlan(layer.model.op, size)
    return Traced(Value((value.shape[0], value.channels, *size), tuple(rf), tuple(jump)), plan=plan)


def rule_global_pool(layer: TracedLayer, inputs: list[Value]) -> Traced:
    value = _feature_map(layer, inputs[0], "global_pool")
    rf, jump = _whole_input(value)
    plan = GlobalPoolPlan(layer.model.op, layer.ctx.dims)
    return Traced(Value((value.shape[0], value.channels) + (1,) * layer.ctx.dims, rf, jump), plan=plan)


def rule_upsample(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "upsample")
    dims = layer.ctx.dims
    linear = {1: "linear", 2: "bilinear", 3: "trilinear"}[dims]
    if model.mode in ("linear", "bilinear", "trilinear") and model.mode != linear:
        layer.error("mode", f"mode {model.mode!r} is for {['linear', 'bilinear', 'trilinear'].index(model.mode) + 1}-D input; use {linear!r} here")
    if model.mode == "bicubic" and dims != 2:
        layer.error("mode", "bicubic is 2-D only")
    if model.size is not None:
        size = layer.per_dim("size", model.size)
        scale = None
    else:
        scale = tuple(model.scale) if isinstance(model.scale, list) else (model.scale,) * dims
        if len(scale) != dims:
            layer.fail("scale", f"`scale` has {len(scale)} entries but the input is {dims}-D")
        size = []
        for axis, (s, f) in enumerate(zip(value.spatial, scale)):
            out = None if s is None else s * f
            if out is not None and not out <= INT_LIMIT:  # also catches inf
                layer.fail("scale", f"scale {f:g} makes {DIM_NAMES[dims][axis]} larger than {INT_LIMIT:,}")
            size.append(None if out is None else resize_output_size(s, f))
            if size[-1] == 0:
                layer.error("scale", f"scale {f:g} leaves no output in {DIM_NAMES[dims][axis]}")
        size = tuple(size)
    if layer.failed:
        raise LayerFailed
    rf, jump = [], []
    for r, j, s_in, s_out in zip(value.rf, value.jump, value.spatial, size):
        if j is None or s_in is None or s_out is None:
            rf.append(r)
            jump.append(None)
        else:
            step = _whole(j * Fraction(s_in, s_out))
            rf.append(r + (j if model.mode != "nearest" else 0))
            jump.append(step)
    plan = UpsamplePlan(model.mode, tuple(size) if model.size is not None else None, None if scale is None else tuple(float(f) for f in scale), model.align_corners)
    return Traced(Value((value.shape[0], value.channels, *size), tuple(rf), tuple(jump)), plan=plan)


def rule_shuffle(layer: TracedLayer, inputs: list[Value]) -> Traced:
    value = _feature_map(layer, inputs[0], "shuffle")
    groups = layer.model.groups
    if value.channels % groups:
        layer.fail("groups", f"groups={groups} does not divide the {value.channels} channels (divisors: {_divisors(value.channels)})")
    return Traced(value, plan=ShufflePlan(groups))


def rule_split(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model, value = layer.model, inputs[0]
    channels = value.shape[1]
    what = "features" if value.flat else "channels"
    if channels is None:
        layer.fail(None, f"cannot split an unknown number of {what}; give `input.size` or pool to a fixed size first")
    if model.sizes is not None:
        sizes = list(model.sizes)
        if sum(sizes) != channels:
            layer.fail(
                "sizes",
                f"the sizes {sizes} add up to {sum(sizes)}, but the input has {channels} {what}; they must add up to {channels}",
            )
    else:
        if channels % model.parts:
            layer.fail("parts", f"parts={model.parts} does not divide the {channels} {what} (divisors: {_divisors(channels)})")
        sizes = [channels // model.parts] * model.parts
    parts = [Value((value.shape[0], size, *value.shape[2:]), value.rf, value.jump, value.flat) for size in sizes]
    # the split itself passes its input on; each part is a child (module NAME.i), read with `from: NAME.i`
    children = [
        LayerReport(str(i), "part", layer.path, None, [], [value.shape], part.shape, receptive_field=part.rf, stride=part.jump, role="part")
        for i, part in enumerate(parts)
    ]
    return Traced(value, children=children, parts=parts, plan=SplitPlan(tuple(sizes)))


def split_parts(model: LayerBase) -> int:
    """How many outputs a split layer has (known from the spec alone)."""
    return model.parts if model.sizes is None else len(model.sizes)


def _part_names(name: str, parts: int) -> str:
    """'s.0, s.1, s.2', or the first and last few when there are many."""
    name = shorten(name)
    if parts <= LISTED_NAMES:
        return ", ".join(f"{name}.{i}" for i in range(parts))
    return f"{name}.0, {name}.1, {name}.2, ..., {name}.{parts - 1}"


def rule_flatten(layer: TracedLayer, inputs: list[Value]) -> Traced:
    value = inputs[0]
    if value.flat:
        return Traced(value, plan=EmptyPlan())
    features = None if any(s is None for s in value.shape[1:]) else math.prod(value.shape[1:])
    rf, jump = _whole_input(value)
    return Traced(Value((value.shape[0], features), rf, jump, flat=True), plan=EmptyPlan())


def rule_linear(layer: TracedLayer, inputs: list[Value]) -> Traced:
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
    _check_init(layer, (model.out_features, features), model.bias, model.out_features)
    params = features * model.out_features + (model.out_features if model.bias else 0)
    macs = value.shape[0] * features * model.out_features
    return Traced(
        Value((value.shape[0], model.out_features), value.rf, value.jump, flat=True),
        params, params if model.trainable else 0, macs,
        LinearPlan(features, model.out_features, model.bias, init_plan(model.init), model.trainable),
    )


def _merge_rf(values: list[Value]) -> tuple[tuple, tuple]:
    rf = tuple(max(v.rf[i] for v in values) for i in range(len(values[0].rf)))
    jump = tuple(
        None if any(v.jump[i] is None for v in values) else max(v.jump[i] for v in values) for i in range(len(values[0].jump))
    )
    return rf, jump


def _compatible(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def rule_add(layer: TracedLayer, inputs: list[Value]) -> Traced:
    first = inputs[0]
    for name, value in zip(layer.model.sources[1:], inputs[1:]):
        if not _compatible(first.shape, value.shape):
            layer.error(
                "from",
                f"add needs equal shapes, but {layer.model.sources[0]!r} gives {list(first.shape)} and {name!r} gives {list(value.shape)}",
            )
            same_rank = all(len(v.shape) == len(first.shape) and v.flat == first.flat for v in inputs)
            if same_rank and len({v.shape[1] for v in inputs}) == 1:  # the channels agree: only the sizes are unknown
                spatial = len(first.spatial)
                raise LayerFailed(Value((*first.shape[:2], *(None,) * spatial), first.rf, (None,) * spatial, first.flat))
            raise LayerFailed
    rf, jump = _merge_rf(inputs)
    shape = tuple(next((x for x in dim if x is not None), None) for dim in zip(*(v.shape for v in inputs)))
    return Traced(Value(shape, rf, jump, first.flat), plan=JoinPlan("add", act_plan(layer.model.act)))


def _broadcast(a: int | None, b: int | None) -> int | None | bool:
    """One dim of two broadcast shapes: the size (None if unknown), or False if they cannot broadcast."""
    if a == 1:
        return b
    if b == 1:
        return a
    if a is None or b is None:
        return b if a is None else a  # an unknown size: the known one, which it must equal (or be 1)
    return a if a == b else False


def rule_mul(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Element-wise product, broadcasting size-1 dims as torch does (an SE gate B x C x 1 x 1 times a map B x C x H x W).

    MACs: the multiplies of the product taken left to right, one per value of each partial
    product; for a map times gates (the map first), one per output value per gate.
    """
    names = layer.model.sources
    first = inputs[0]
    shape: tuple = first.shape
    macs: int | None = 0
    for name, value in zip(names[1:], inputs[1:]):
        if len(value.shape) != len(shape) or value.flat != first.flat:
            layer.fail(
                "from",
                f"mul needs inputs of the same rank, but {names[0]!r} gives {list(first.shape)} and {name!r} gives "
                f"{list(value.shape)}; {'flatten both or neither' if value.flat != first.flat else 'pool or reshape one to match'}",
            )
        joined = tuple(_broadcast(a, b) for a, b in zip(shape, value.shape))
        if any(d is False for d in joined):
            bad = [i for i, d in enumerate(joined) if d is False]
            dims = ", ".join(f"dim {i} ({shape[i]} vs {value.shape[i]})" for i in bad)
            before = repr(names[0]) if len(inputs) == 2 else "the inputs before it"
            layer.fail(
                "from",
                f"mul multiplies equal sizes or broadcasts a size 1, but {before} and {name!r} differ in {dims}: "
                f"{list(shape)} and {list(value.shape)}; make them equal, or pool one to size 1 (a gate)",
            )
        shape = joined
        macs = macs + math.prod(shape) if macs is not None and None not in shape else None
    rf, _ = _merge_rf(inputs)
    # a gate broadcast over a dim (size 1 there) sees the whole input but does not set the map's step along it
    spatial = shape[2:] if not first.flat else ()
    jump = tuple(
        _merge_rf([v for v in inputs if v.flat or v.spatial[axis] != 1 or spatial[axis] == 1] or inputs)[1][axis]
        for axis in range(len(rf))
    )
    return Traced(Value(shape, rf, jump, first.flat), macs=macs or 0, plan=JoinPlan("mul"))


def rule_concat(layer: TracedLayer, inputs: list[Value]) -> Traced:
    first = inputs[0]
    names = layer.model.sources
    for name, value in zip(names[1:], inputs[1:]):
        if value.flat != first.flat or not _compatible(first.shape[2:], value.shape[2:]) or len(first.shape) != len(value.shape):
            layer.error(
                "from",
                f"concat joins along channels, so all other dims must agree, but {names[0]!r} gives {list(first.shape)} "
                f"and {name!r} gives {list(value.shape)}",
            )
            if not first.flat and all(len(v.shape) == len(first.shape) and not v.flat for v in inputs):
                spatial = len(first.spatial)  # the channels still add up; the sizes are unknown
                raise LayerFailed(Value((first.shape[0], sum(v.shape[1] for v in inputs), *(None,) * spatial), first.rf, (None,) * spatial))
            raise LayerFailed
    channels = None if any(v.shape[1] is None for v in inputs) else sum(v.shape[1] for v in inputs)
    rf, jump = _merge_rf(inputs)
    spatial = tuple(next((x for x in dim if x is not None), None) for dim in zip(*(v.shape[2:] for v in inputs)))
    return Traced(Value((first.shape[0], channels, *spatial), rf, jump, first.flat), plan=JoinPlan("concat"))


def rule_block(layer: TracedLayer, inputs: list[Value]) -> Traced:
    children, out = layer.trace_list("layers", inputs[0])
    if out is None:
        raise LayerFailed
    return _sum_children(out, children)


def rule_repeat(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model, value = layer.model, inputs[0]
    per_copy = max(len(model.layers), len(model.first or ()))
    if model.times * per_copy > MAX_LAYERS:
        layer.fail("times", f"times={model.times:,} makes {model.times * per_copy:,} layers; a network may have at most {MAX_LAYERS:,}")
    copies = []
    for index in range(model.times):
        # copy 0 may differ (`first`), as the downsampling block that opens a ResNet stage
        key = "first" if index == 0 and model.first else "layers"
        children, out = layer.trace_list(key, value)
        if out is None:
            raise LayerFailed
        copy = _sum_children(out, children)
        copies.append(
            LayerReport(
                str(index), "block", layer.path, None, [], [value.shape], out.shape, copy.params, copy.trainable,
                copy.macs, out.rf, out.jump, children, ContainerPlan(), role="copy",
            )
        )
        value = out
    return _sum_children(value, copies)


def rule_residual(layer: TracedLayer, inputs: list[Value]) -> Traced:
    model, value = layer.model, inputs[0]
    for index, inner in enumerate(model.layers):
        if inner.name == "shortcut":
            layer.error(None, f"layers[{index}] may not be named 'shortcut': that name holds the residual's shortcut branch")
    children, main = layer.trace_list("layers", value)
    shortcut = value
    if model.shortcut:
        short_children, shortcut = layer.trace_list("shortcut", value)
        if shortcut is not None:
            short = _sum_children(shortcut, short_children)
            children.append(
                LayerReport(
                    "shortcut", "block", layer.path + ("shortcut",), None, [], [value.shape], shortcut.shape,
                    short.params, short.trainable, short.macs, shortcut.rf, shortcut.jump, short_children,
                    ContainerPlan(), role="shortcut",
                )
            )
    if main is None or shortcut is None or layer.failed:
        raise LayerFailed(main or shortcut)  # a valid residual's output is both; the branch is the likelier intent
    if not _compatible(main.shape, shortcut.shape):
        hint = ""
        if not model.shortcut:
            hint = "; add a `shortcut` (e.g. a pointwise conv with the right out_channels and stride) to match"
        layer.error(
            "layers",
            f"the residual branch gives {list(main.shape)} but the shortcut gives {list(shortcut.shape)}; they must be equal{hint}",
        )
        raise LayerFailed(main)  # the branch is what the layers compute; the layers after are checked on it
    rf, jump = _merge_rf([main, shortcut])
    return _sum_children(Value(main.shape, rf, jump, main.flat), children, ContainerPlan(act_plan(model.act), model.drop_path))


def _sum_children(value: Value, children: list[LayerReport], plan: ContainerPlan | None = None) -> Traced:
    return Traced(
        value,
        sum(c.params for c in children),
        sum(c.trainable_params for c in children),
        sum(c.macs for c in children),
        plan=plan or ContainerPlan(),
        children=children,
    )


