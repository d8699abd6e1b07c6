"""Shape rules: what every layer outputs, what it costs and what it sees, by arithmetic alone.

This is the one place for padding resolution, output sizes, parameter and MAC
counts and receptive fields; the builder takes its padding and channel counts
from the `LayerReport`s made here and never recomputes them. No torch import:
checking a 1,000-layer spec is integer arithmetic.

Conventions:
- Shapes include the batch: (B, C, *spatial) for feature maps, (B, F) once flat.
  A spatial size is None where the input size is not known (dynamic).
- MACs count the multiply-accumulates of convolutions and linear layers (and the
  kernel mixing and attention of a dynamic conv); norms, activations, pooling and
  additions are not counted, as in the usual reference tables.
- Receptive field and effective stride ("jump") are per spatial dim, in input pixels,
  along the widest path; a transposed conv gives a fractional stride.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable

from . import kernels
from .errors import InputError, Problem, SpecError
from .schema import INT_LIMIT, LayerBase, Spec
from .source import layer_label

DIM_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


# ---------------------------------------------------------------- the formulas


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """`padding: same`: (k - 1) * d in total, the lower side the floor of half (PyTorch's split)."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, pad: tuple[int, int]) -> int:
    """floor((in + pad_lo + pad_hi - d*(k-1) - 1) / s) + 1, as nn.ConvNd."""
    return (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def transposed_output_size(size: int, kernel: int, stride: int, dilation: int, padding: int, output_padding: int) -> int:
    """(in - 1) * s - 2p + d*(k-1) + output_padding + 1, as nn.ConvTransposeNd."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def transposed_same_padding(kernel: int, stride: int, dilation: int) -> tuple[int, int] | None:
    """(padding, output_padding) giving out = in * stride, or None where no valid pair exists."""
    # out = in*s  <=>  2p - op = d*(k-1) + 1 - s, with p >= 0 and 0 <= op < max(s, d)
    excess = dilation * (kernel - 1) + 1 - stride
    if excess >= 0:
        padding, output_padding = (excess + 1) // 2, (excess + 1) // 2 * 2 - excess
    else:
        padding, output_padding = 0, -excess
    if output_padding >= max(stride, dilation):
        return None
    return padding, output_padding


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """nn.MaxPoolNd / AvgPoolNd output size, including ceil_mode's last-window rule."""
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window may not start inside the right padding
    return out


def conv_params(in_channels: int, out_channels: int, kernel: tuple[int, ...], groups: int, bias: bool) -> int:
    return out_channels * (in_channels // groups) * math.prod(kernel) + (out_channels if bias else 0)


def attention_hidden(in_channels: int, reduction: int) -> int:
    """Width of a dynamic conv's attention MLP."""
    return max(1, in_channels // reduction)


def norm_params(kind: str | None, channels: int) -> int:
    """Learnable parameters of a norm over `channels` (running stats are buffers, not counted)."""
    if kind in ("batch", "group", "layer"):
        return 2 * channels
    return 0  # instance norm: affine=False, as nn.InstanceNormNd's default


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


@dataclass
class ConvGeometry:
    """Everything the builder needs for one convolution, resolved once here."""

    dims: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]  # (low, high) per spatial dim
    groups: int
    bias: bool
    padding_mode: str = "zeros"
    output_padding: tuple[int, ...] | None = None  # transposed only

    @property
    def symmetric_padding(self) -> tuple[int, ...] | None:
        """Per-dim padding when low == high everywhere (the conv pads itself), else None."""
        if all(lo == hi for lo, hi in self.padding):
            return tuple(lo for lo, _ in self.padding)
        return None


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
    resolved: dict[str, Any] = field(default_factory=dict)  # builder inputs: geometry, kernels, ...

    def to_dict(self) -> dict:
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


class _LayerFailed(Exception):
    """A layer's output cannot be determined; its problems are already recorded."""


@dataclass
class _Context:
    spec: Spec
    dims: int
    data: dict  # the spec as plain data, for labels
    problems: list[Problem]
    layers_traced: int = 0  # after `repeat` expansion; bounded so a huge `times` ends in an error, not a hang

    def problem(self, path: tuple, key: str | tuple | None, message: str) -> None:
        """Record a problem at the layer `path`, located at its `key` (a name, or a path within the layer)."""
        _, label = layer_label(self.data, path)
        where = path + (key if isinstance(key, tuple) else (key,)) if key else path
        problem = Problem(message, self.spec.source.locate(where), label)
        if problem not in self.problems:  # repeat copies report a problem once
            self.problems.append(problem)


@dataclass
class _Traced:
    """What a shape rule returns."""

    value: Value
    params: int = 0
    trainable: int = 0
    macs: int = 0
    resolved: dict = field(default_factory=dict)
    children: list[LayerReport] = field(default_factory=list)
    parts: list[Value] | None = None  # a split's outputs, read as NAME.0, NAME.1, ...


class _Layer:
    """The layer under trace: its model, path and a way to report problems on its keys."""

    def __init__(self, model: LayerBase, path: tuple, ctx: _Context):
        self.model, self.path, self.ctx = model, path, ctx
        self.failed = False

    def error(self, key: str | tuple | None, message: str) -> None:
        self.failed = True
        self.ctx.problem(self.path, key, message)

    def fail(self, key: str | None, message: str):
        self.error(key, message)
        raise _LayerFailed

    def per_dim(self, key: str, value: Any) -> tuple[int, ...]:
        """An int or per-dim list as one entry per spatial dim."""
        dims = self.ctx.dims
        if isinstance(value, list):
            if len(value) != dims:
                self.fail(key, f"`{key}` has {len(value)} entries ({value}) but the input is {dims}-D; give {dims} or one int")
            return tuple(value)
        return (value,) * dims


# ---------------------------------------------------------------- shared rule pieces


def _feature_map(layer: _Layer, value: Value, what: str) -> Value:
    if value.flat:
        layer.fail(None, f"{what} needs a feature map (B, C, ...), but its input is flat {list(value.shape)}; move it before `flatten`")
    return value


def _spread(value: Value, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple, tuple]:
    """Receptive field and jump after a sliding window."""
    rf, jump = [], []
    for r, j, k, s, d in zip(value.rf, value.jump, kernel, stride, dilation):
        effective = d * (k - 1) + 1
        rf.append(r + (effective - 1) * j if j is not None else r)
        jump.append(j * s if j is not None else None)
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


def _check_in_channels(layer: _Layer, declared: int | None, inferred: int | None) -> None:
    if declared is not None and inferred is not None and declared != inferred:
        layer.error("in_channels", f"in_channels={declared} but the input has {inferred} channels; drop `in_channels` (it is inferred)")


def _resolve_padding(layer: _Layer, model: Any, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    padding = model.padding
    if padding == "same":
        return tuple(same_padding(k, d) for k, d in zip(kernel, dilation))
    if padding == "valid":
        return ((0, 0),) * len(kernel)
    return tuple((p, p) for p in layer.per_dim("padding", padding))


def _divisors(n: int) -> str:
    return ", ".join(str(d) for d in range(1, n + 1) if n % d == 0)


def _norm_statistics_check(layer: _Layer, kind: str | None, groups: int | None, value: Value, key: str) -> None:
    """Instance and group norm need more than one value to normalise over, in eval mode too."""
    if value.flat or any(s is None for s in value.spatial):
        return
    positions = math.prod(value.spatial)
    if kind == "instance" and positions == 1:
        layer.error(key, f"instance norm needs more than one position, but the map is {list(value.shape)}")
    if kind == "group" and groups and value.channels % groups == 0 and positions * (value.channels // groups) == 1:
        layer.error(key, f"group norm needs more than one value per group, but the map is {list(value.shape)} with {groups} groups")


def _norm_check(layer: _Layer, kind: str | None, groups: int | None, value: Value, key: str = "norm") -> None:
    """A conv's `norm` must fit the conv's output `value`."""
    channels = value.channels
    if kind == "group" and groups is not None and channels % groups:
        layer.error(
            "norm_groups" if key == "norm" else key,
            f"norm_groups={groups} does not divide the {channels} channels (divisors: {_divisors(channels)})",
        )
    _norm_statistics_check(layer, kind, groups, value, key)


def _conv(
    layer: _Layer,
    value: Value,
    out_channels: int,
    kernel: tuple[int, ...],
    groups: int,
    bias: bool,
    what: str = "convolution",
    stride: tuple[int, ...] | None = None,
    dilation: tuple[int, ...] | None = None,
    padding: tuple[tuple[int, int], ...] | None = None,
    in_key: str = "groups",
) -> tuple[ConvGeometry, Value, int]:
    """Geometry, output value and MACs of one (non-transposed) convolution."""
    model = layer.model
    dims = layer.ctx.dims
    stride = stride or layer.per_dim("stride", model.stride)
    dilation = dilation or layer.per_dim("dilation", model.dilation)
    padding = padding or _resolve_padding(layer, model, kernel, dilation)
    in_channels = value.channels
    if in_channels % groups:
        layer.error(in_key, f"groups={groups} does not divide in_channels={in_channels} (divisors: {_divisors(in_channels)})")
    if out_channels % groups:
        layer.error(in_key, f"groups={groups} does not divide out_channels={out_channels} (divisors: {_divisors(out_channels)})")
    mode = getattr(model, "padding_mode", "zeros")
    out_spatial: list[int | None] = []
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
            layer.error(
                "kernel_size",
                f"{extent} is larger than the padded input {size + pad[0] + pad[1]} in {dim} "
                f"(input {size}, padding {pad[0]}+{pad[1]}); use a smaller kernel or more padding",
            )
            out_spatial.append(None)
            continue
        out_spatial.append(conv_output_size(size, k, s, d, pad))
    if layer.failed:
        raise _LayerFailed
    geometry = ConvGeometry(dims, in_channels, out_channels, kernel, stride, dilation, padding, groups, bias, mode)
    rf, jump = _spread(value, kernel, stride, dilation)
    shape = (value.shape[0], out_channels, *out_spatial)
    macs = _conv_macs(geometry, shape)
    return geometry, Value(shape, rf, jump), macs


def _conv_macs(geometry: ConvGeometry, out_shape: tuple) -> int:
    if any(s is None for s in out_shape):
        return 0
    per_output = (geometry.in_channels // geometry.groups) * math.prod(geometry.kernel_size)
    return math.prod(out_shape) * per_output


def _check_init(layer: _Layer, weight_shape: tuple[int, ...], has_bias: bool, out: int, arrays: bool = True) -> None:
    """Literal arrays and filter initialisers must fit the weight they initialise."""
    init = getattr(layer.model, "init", None)
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


def _finish_conv(layer: _Layer, geometry: ConvGeometry, value: Value, macs: int, norm: str | None, norm_groups: int | None) -> _Traced:
    model = layer.model
    _norm_check(layer, norm, norm_groups, value)
    if geometry.output_padding is None:
        weight_shape = (geometry.out_channels, geometry.in_channels // geometry.groups, *geometry.kernel_size)
    else:  # nn.ConvTransposeNd stores (in, out / groups, *kernel)
        weight_shape = (geometry.in_channels, geometry.out_channels // geometry.groups, *geometry.kernel_size)
    _check_init(layer, weight_shape, geometry.bias, geometry.out_channels)
    params = conv_params(geometry.in_channels, geometry.out_channels, geometry.kernel_size, geometry.groups, geometry.bias)
    params += norm_params(norm, geometry.out_channels)
    trainable = params if model.trainable else 0
    return _Traced(value, params, trainable, macs, {"geometry": geometry})


# ---------------------------------------------------------------- the rules, one per kind


def _rule_conv(layer: _Layer, inputs: list[Value]) -> _Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], model.type)
    _check_in_channels(layer, model.in_channels, value.channels)
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    groups = getattr(model, "groups", 1)
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
    return _finish_conv(layer, geometry, result, macs, model.norm, model.norm_groups)


def _rule_separable(layer: _Layer, inputs: list[Value]) -> _Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "separable")
    _check_in_channels(layer, model.in_channels, value.channels)
    inner = model.depthwise
    inner_norm = inner.norm if inner else None
    inner_bias = inner.bias if inner and inner.bias is not None else inner_norm is None
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    mid = value.channels * model.multiplier
    dw, mid_value, dw_macs = _conv(layer, value, mid, kernel, value.channels, inner_bias)
    _norm_check(layer, inner_norm, inner.norm_groups if inner else None, mid_value, key="depthwise")
    ones = (1,) * layer.ctx.dims
    pw, out_value, pw_macs = _conv(
        layer, mid_value, model.out_channels, ones, model.groups if hasattr(model, "groups") else 1,
        _bias_default(model), stride=ones, dilation=ones, padding=((0, 0),) * layer.ctx.dims,
    )
    _norm_check(layer, model.norm, model.norm_groups, out_value)
    _check_init(layer, (pw.out_channels, pw.in_channels, *ones), pw.bias, pw.out_channels, arrays=False)
    params = conv_params(dw.in_channels, dw.out_channels, dw.kernel_size, dw.groups, dw.bias) + norm_params(inner_norm, mid)
    params += conv_params(pw.in_channels, pw.out_channels, pw.kernel_size, pw.groups, pw.bias) + norm_params(model.norm, model.out_channels)
    return _Traced(
        out_value, params, params if model.trainable else 0, dw_macs + pw_macs, {"depthwise": dw, "pointwise": pw}
    )


def _rule_transposed(layer: _Layer, inputs: list[Value]) -> _Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "transposed")
    _check_in_channels(layer, model.in_channels, value.channels)
    dims = layer.ctx.dims
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    stride = layer.per_dim("stride", model.stride)
    dilation = layer.per_dim("dilation", model.dilation)
    if model.padding_mode != "zeros":
        layer.error("padding_mode", f"a transposed convolution supports only padding_mode zeros (as nn.ConvTranspose), not {model.padding_mode!r}")
    if model.padding == "same":
        if model.output_padding != 0:
            layer.error("output_padding", "`padding: same` chooses output_padding itself; drop `output_padding`")
        pairs = [transposed_same_padding(k, s, d) for k, s, d in zip(kernel, stride, dilation)]
        for axis, pair in enumerate(pairs):
            if pair is None:
                k, s_, d = kernel[axis], stride[axis], dilation[axis]
                nearby = [c for c in (k + 1, k - 1, k + 2) if c >= 1 and transposed_same_padding(c, s_, d) is not None]
                hint = f"kernel_size {nearby[0]} would" if nearby else "give padding and output_padding explicitly"
                layer.error(
                    "padding",
                    f"no padding gives out = in x stride (with any valid output_padding) for kernel {k}, stride {s_}, dilation {d} "
                    f"in {DIM_NAMES[dims][axis]}; {hint}",
                )
        if layer.failed:
            raise _LayerFailed
        padding = tuple(p for p, _ in pairs)
        output_padding = tuple(op for _, op in pairs)
    else:
        padding = (0,) * dims if model.padding == "valid" else layer.per_dim("padding", model.padding)
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
    if in_channels % groups:
        layer.error("groups", f"groups={groups} does not divide in_channels={in_channels} (divisors: {_divisors(in_channels)})")
    if out_channels % groups:
        layer.error("groups", f"groups={groups} does not divide out_channels={out_channels} (divisors: {_divisors(out_channels)})")
    out_spatial: list[int | None] = []
    for axis, (size, k, s, d, p, op) in enumerate(zip(value.spatial, kernel, stride, dilation, padding, output_padding)):
        if size is None:
            out_spatial.append(None)
            continue
        out = transposed_output_size(size, k, s, d, p, op)
        if out < 1:
            layer.error("padding", f"padding {p} leaves no output in {DIM_NAMES[dims][axis]} (size {out}); use less padding")
        out_spatial.append(out)
    if layer.failed:
        raise _LayerFailed
    geometry = ConvGeometry(
        dims, in_channels, out_channels, kernel, stride, dilation, tuple((p, p) for p in padding), groups,
        _bias_default(model), "zeros", output_padding,
    )
    rf, jump = [], []
    for r, j, k, s, d in zip(value.rf, value.jump, kernel, stride, dilation):
        # each output pixel gathers at most ceil(k_eff / s) neighbouring input pixels
        rf.append(r + (-(-(d * (k - 1) + 1) // s) - 1) * j if j is not None else r)
        jump.append(_whole(Fraction(j) / s) if j is not None else None)
    shape = (value.shape[0], out_channels, *out_spatial)
    macs = 0
    if all(s is not None for s in value.shape):
        macs = math.prod(value.shape) * (out_channels // groups) * math.prod(kernel)
    return _finish_conv(layer, geometry, Value(shape, tuple(rf), tuple(jump)), macs, model.norm, model.norm_groups)


def _rule_dynamic(layer: _Layer, inputs: list[Value]) -> _Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "dynamic")
    _check_in_channels(layer, model.in_channels, value.channels)
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    geometry, result, conv_macs = _conv(layer, value, model.out_channels, kernel, model.groups, _bias_default(model))
    _norm_check(layer, model.norm, model.norm_groups, result)
    _check_init(layer, (geometry.out_channels, geometry.in_channels // geometry.groups, *kernel), geometry.bias, geometry.out_channels)
    experts = model.experts
    hidden = attention_hidden(geometry.in_channels, model.reduction)
    per_expert = conv_params(geometry.in_channels, geometry.out_channels, kernel, geometry.groups, geometry.bias)
    attention = geometry.in_channels * hidden + hidden + hidden * experts + experts
    params = experts * per_expert + attention + norm_params(model.norm, model.out_channels)
    batch = value.shape[0]
    # per sample: the attention MLP and the mixing of K kernels (and biases) into one
    macs = conv_macs + batch * (geometry.in_channels * hidden + hidden * experts + experts * per_expert)
    resolved = {"geometry": geometry, "experts": experts, "reduction": model.reduction, "temperature": model.temperature}
    return _Traced(result, params, params if model.trainable else 0, macs, resolved)


def _rule_fixed(layer: _Layer, inputs: list[Value]) -> _Traced:
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
    params = conv_params(channels, out, kernel, groups, False)
    # frozen fixed kernels are buffers, not parameters; trainable ones are parameters
    traced_params = params if model.trainable else 0
    passes = None
    if not model.trainable and model.per_channel and max(kernel) >= kernels.SEPARABLE_FROM:
        passes = kernels.separable_factors(kernel_values)
    if passes is not None:
        macs = _separable_macs(geometry, value.shape)
    resolved = {"geometry": geometry, "kernel": kernel_values, "passes": passes}
    return _Traced(result, traced_params, traced_params, macs, resolved)


def _separable_macs(geometry: ConvGeometry, in_shape: tuple) -> int:
    """MACs of one 1-D pass per dim: pass d shrinks dim d to its output size and costs k_d per output."""
    if any(s is None for s in in_shape):
        return 0
    sizes = [s + lo + hi for s, (lo, hi) in zip(in_shape[2:], geometry.padding)]
    macs = 0
    for axis, (k, s, d) in enumerate(zip(geometry.kernel_size, geometry.stride, geometry.dilation)):
        sizes[axis] = conv_output_size(sizes[axis], k, s, d, (0, 0))
        macs += in_shape[0] * geometry.out_channels * math.prod(sizes) * k
    return macs


def _rule_norm(layer: _Layer, inputs: list[Value]) -> _Traced:
    model, value = layer.model, inputs[0]
    if value.flat and model.kind in ("instance", "group"):
        layer.fail("kind", f"{model.kind} norm needs a feature map, but its input is flat {list(value.shape)}")
    channels = value.shape[1]
    if model.kind == "group" and channels % model.groups:
        layer.fail("groups", f"groups={model.groups} does not divide the {channels} channels (divisors: {_divisors(channels)})")
    _norm_statistics_check(layer, model.kind, model.groups, value, "kind")
    params = norm_params(model.kind, channels)
    return _Traced(value, params, params, resolved={"channels": channels})


def _rule_passthrough(layer: _Layer, inputs: list[Value]) -> _Traced:
    return _Traced(inputs[0])


def _rule_pool(layer: _Layer, inputs: list[Value]) -> _Traced:
    model = layer.model
    value = _feature_map(layer, inputs[0], "pool")
    dims = layer.ctx.dims
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    stride = layer.per_dim("stride", model.stride) if model.stride is not None else kernel
    padding = layer.per_dim("padding", model.padding)
    out_spatial: list[int | None] = []
    for axis, (size, k, s, p) in enumerate(zip(value.spatial, kernel, stride, padding)):
        dim = DIM_NAMES[dims][axis]
        if p > k // 2:
            layer.error("padding", f"padding {p} in {dim} must be at most half the kernel ({k // 2}), as PyTorch requires")
        if size is None:
            out_spatial.append(None)
        elif size + 2 * p < k:
            layer.error("kernel_size", f"kernel {k} is larger than the padded input {size + 2 * p} in {dim}")
        elif model.op == "avg" and dims == 3 and size < k:
            # torch's avg_pool3d compares the unpadded input with the kernel
            layer.error("kernel_size", f"kernel {k} is larger than the input {size} in {dim} (3-D average pooling does not count padding here)")
        else:
            out_spatial.append(pool_output_size(size, k, s, p, model.ceil_mode))
    if layer.failed:
        raise _LayerFailed
    rf, jump = _spread(value, kernel, stride, (1,) * dims)
    resolved = {"kernel_size": kernel, "stride": stride, "padding": padding}
    return _Traced(Value((value.shape[0], value.channels, *out_spatial), rf, jump), resolved=resolved)


def _rule_adaptive_pool(layer: _Layer, inputs: list[Value]) -> _Traced:
    value = _feature_map(layer, inputs[0], "adaptive_pool")
    size = layer.per_dim("size", layer.model.size)
    rf, jump = [], []
    for r, j, s_in, s_out in zip(value.rf, value.jump, value.spatial, size):
        if s_in is None or j is None:
            rf.append(r)
            jump.append(None)
        else:
            window = -(-s_in // s_out)  # the widest of PyTorch's adaptive windows
            rf.append(r + (window - 1) * j)
            jump.append(_whole(j * Fraction(s_in, s_out)))
    return _Traced(Value((value.shape[0], value.channels, *size), tuple(rf), tuple(jump)), resolved={"size": size})


def _rule_global_pool(layer: _Layer, inputs: list[Value]) -> _Traced:
    value = _feature_map(layer, inputs[0], "global_pool")
    rf, jump = _whole_input(value)
    return _Traced(Value((value.shape[0], value.channels) + (1,) * layer.ctx.dims, rf, jump))


def _rule_upsample(layer: _Layer, inputs: list[Value]) -> _Traced:
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
            size.append(None if out is None else math.floor(out))
            if size[-1] == 0:
                layer.error("scale", f"scale {f:g} leaves no output in {DIM_NAMES[dims][axis]}")
        size = tuple(size)
    if layer.failed:
        raise _LayerFailed
    rf, jump = [], []
    for r, j, s_in, s_out in zip(value.rf, value.jump, value.spatial, size):
        if j is None or s_in is None or s_out is None:
            rf.append(r)
            jump.append(None)
        else:
            step = _whole(j * Fraction(s_in, s_out))
            rf.append(r + (j if model.mode != "nearest" else 0))
            jump.append(step)
    resolved = {"size": size if model.size is not None else None, "scale": scale}
    return _Traced(Value((value.shape[0], value.channels, *size), tuple(rf), tuple(jump)), resolved=resolved)


def _rule_shuffle(layer: _Layer, inputs: list[Value]) -> _Traced:
    value = _feature_map(layer, inputs[0], "shuffle")
    groups = layer.model.groups
    if value.channels % groups:
        layer.fail("groups", f"groups={groups} does not divide the {value.channels} channels (divisors: {_divisors(value.channels)})")
    return _Traced(value)


def _rule_split(layer: _Layer, inputs: list[Value]) -> _Traced:
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
        LayerReport(str(i), "part", layer.path, None, [], [value.shape], part.shape, receptive_field=part.rf, stride=part.jump)
        for i, part in enumerate(parts)
    ]
    return _Traced(value, children=children, parts=parts, resolved={"sizes": sizes})


def split_parts(model: LayerBase) -> int:
    """How many outputs a split layer has (known from the spec alone)."""
    return model.parts if model.sizes is None else len(model.sizes)


def _part_names(name: str, parts: int) -> str:
    return ", ".join(f"{name}.{i}" for i in range(parts))


def _rule_flatten(layer: _Layer, inputs: list[Value]) -> _Traced:
    value = inputs[0]
    if value.flat:
        return _Traced(value)
    features = None if any(s is None for s in value.shape[1:]) else math.prod(value.shape[1:])
    rf, jump = _whole_input(value)
    return _Traced(Value((value.shape[0], features), rf, jump, flat=True))


def _rule_linear(layer: _Layer, inputs: list[Value]) -> _Traced:
    model, value = layer.model, inputs[0]
    if not value.flat:
        suggestion = "add `{type: flatten}` before it" if all(s == 1 for s in value.spatial) else "add `{type: global_pool}` and `{type: flatten}` (or just flatten) before it"
        layer.fail(None, f"a linear layer needs flat input (B, F), but its input is {list(value.shape)}; {suggestion}")
    features = value.shape[1]
    if features is None:
        layer.fail(None, "cannot infer in_features: the input size is dynamic; give `input.size` or pool to a fixed size first")
    if model.in_features is not None and model.in_features != features:
        layer.error("in_features", f"in_features={model.in_features} but the input has {features} features; drop `in_features` (it is inferred)")
    _check_init(layer, (model.out_features, features), model.bias, model.out_features)
    params = features * model.out_features + (model.out_features if model.bias else 0)
    macs = value.shape[0] * features * model.out_features
    return _Traced(
        Value((value.shape[0], model.out_features), value.rf, value.jump, flat=True),
        params, params if model.trainable else 0, macs, {"in_features": features},
    )


def _merge_rf(values: list[Value]) -> tuple[tuple, tuple]:
    rf = tuple(max(v.rf[i] for v in values) for i in range(len(values[0].rf)))
    jump = tuple(
        None if any(v.jump[i] is None for v in values) else max(v.jump[i] for v in values) for i in range(len(values[0].jump))
    )
    return rf, jump


def _compatible(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _rule_add(layer: _Layer, inputs: list[Value]) -> _Traced:
    first = inputs[0]
    for name, value in zip(layer.model.sources[1:], inputs[1:]):
        if not _compatible(first.shape, value.shape):
            layer.fail(
                "from",
                f"add needs equal shapes, but {layer.model.sources[0]!r} gives {list(first.shape)} and {name!r} gives {list(value.shape)}",
            )
    rf, jump = _merge_rf(inputs)
    shape = tuple(next((x for x in dim if x is not None), None) for dim in zip(*(v.shape for v in inputs)))
    return _Traced(Value(shape, rf, jump, first.flat))


def _rule_concat(layer: _Layer, inputs: list[Value]) -> _Traced:
    first = inputs[0]
    names = layer.model.sources
    for name, value in zip(names[1:], inputs[1:]):
        if value.flat != first.flat or not _compatible(first.shape[2:], value.shape[2:]) or len(first.shape) != len(value.shape):
            layer.fail(
                "from",
                f"concat joins along channels, so all other dims must agree, but {names[0]!r} gives {list(first.shape)} "
                f"and {name!r} gives {list(value.shape)}",
            )
    channels = None if any(v.shape[1] is None for v in inputs) else sum(v.shape[1] for v in inputs)
    rf, jump = _merge_rf(inputs)
    spatial = tuple(next((x for x in dim if x is not None), None) for dim in zip(*(v.shape[2:] for v in inputs)))
    return _Traced(Value((first.shape[0], channels, *spatial), rf, jump, first.flat))


def _rule_block(layer: _Layer, inputs: list[Value]) -> _Traced:
    children, out = _trace_list(layer.model.layers, layer.path + ("layers",), inputs[0], layer.ctx)
    if out is None:
        raise _LayerFailed
    return _sum_children(out, children)


def _rule_repeat(layer: _Layer, inputs: list[Value]) -> _Traced:
    model, value = layer.model, inputs[0]
    per_copy = max(len(model.layers), len(model.first or ()))
    if model.times * per_copy > MAX_LAYERS:
        layer.fail("times", f"times={model.times:,} makes {model.times * per_copy:,} layers; a network may have at most {MAX_LAYERS:,}")
    copies = []
    for index in range(model.times):
        # copy 0 may differ (`first`), as the downsampling block that opens a ResNet stage
        key = "first" if index == 0 and model.first else "layers"
        children, out = _trace_list(getattr(model, key), layer.path + (key,), value, layer.ctx)
        if out is None:
            raise _LayerFailed
        copy = _sum_children(out, children)
        copies.append(
            LayerReport(
                str(index), "block", layer.path, None, [], [value.shape], out.shape, copy.params, copy.trainable,
                copy.macs, out.rf, out.jump, children,
            )
        )
        value = out
    return _sum_children(value, copies)


def _rule_residual(layer: _Layer, inputs: list[Value]) -> _Traced:
    model, value = layer.model, inputs[0]
    for index, inner in enumerate(model.layers):
        if inner.name == "shortcut":
            layer.error(None, f"layers[{index}] may not be named 'shortcut': that name holds the residual's shortcut branch")
    children, main = _trace_list(model.layers, layer.path + ("layers",), value, layer.ctx)
    shortcut = value
    if model.shortcut:
        short_children, shortcut = _trace_list(model.shortcut, layer.path + ("shortcut",), value, layer.ctx)
        if shortcut is not None:
            short = _sum_children(shortcut, short_children)
            children.append(
                LayerReport(
                    "shortcut", "block", layer.path + ("shortcut",), None, [], [value.shape], shortcut.shape,
                    short.params, short.trainable, short.macs, shortcut.rf, shortcut.jump, short_children,
                )
            )
    if main is None or shortcut is None or layer.failed:
        raise _LayerFailed
    if not _compatible(main.shape, shortcut.shape):
        hint = ""
        if not model.shortcut:
            hint = "; add a `shortcut` (e.g. a pointwise conv with the right out_channels and stride) to match"
        layer.fail(
            "layers",
            f"the residual branch gives {list(main.shape)} but the shortcut gives {list(shortcut.shape)}; they must be equal{hint}",
        )
    rf, jump = _merge_rf([main, shortcut])
    return _sum_children(Value(main.shape, rf, jump, main.flat), children)


def _sum_children(value: Value, children: list[LayerReport]) -> _Traced:
    return _Traced(
        value,
        sum(c.params for c in children),
        sum(c.trainable_params for c in children),
        sum(c.macs for c in children),
        children=children,
    )


SHAPE_RULES: dict[str, Callable[[_Layer, list[Value]], _Traced]] = {
    "conv": _rule_conv,
    "pointwise": _rule_conv,
    "asymmetric": _rule_conv,
    "dilated": _rule_conv,
    "depthwise": _rule_conv,
    "group": _rule_conv,
    "separable": _rule_separable,
    "transposed": _rule_transposed,
    "dynamic": _rule_dynamic,
    "fixed": _rule_fixed,
    "norm": _rule_norm,
    "act": _rule_passthrough,
    "pool": _rule_pool,
    "adaptive_pool": _rule_adaptive_pool,
    "global_pool": _rule_global_pool,
    "upsample": _rule_upsample,
    "shuffle": _rule_shuffle,
    "split": _rule_split,
    "dropout": _rule_passthrough,
    "flatten": _rule_flatten,
    "linear": _rule_linear,
    "identity": _rule_passthrough,
    "add": _rule_add,
    "concat": _rule_concat,
    "residual": _rule_residual,
    "repeat": _rule_repeat,
    "block": _rule_block,
}

MAX_LAYERS = 10_000  # after `repeat` expansion: the largest real networks have a few thousand

MULTI_INPUT_KINDS = ("add", "concat")


# ---------------------------------------------------------------- walking lists


def layer_name(layer: LayerBase, index: int) -> str:
    return layer.name or f"{layer.type}_{index}"


def _trace_list(layers: list[LayerBase], path: tuple, value: Value, ctx: _Context) -> tuple[list[LayerReport], Value | None]:
    """Trace one list (a scope). Returns its layer reports and its output (None if it cannot be known)."""
    values: dict[str, Value | None] = {"input": value}  # a split's parts as NAME.0, NAME.1, ...
    splits: dict[str, int] = {}  # split layers of this list: name -> number of parts
    broken_names: set[str] = set()  # layers invalid in the schema, stood in for: their parts are unknown
    positions: dict[str, int] = {}
    reports: list[LayerReport] = []
    previous = "input"
    for index, model in enumerate(layers):
        layer_path = path + (index,)
        ctx.layers_traced += 1
        if ctx.layers_traced > MAX_LAYERS:
            ctx.problem(layer_path, None, f"the network expands to more than {MAX_LAYERS:,} layers; that is more than any real network")
            return reports, None
        name = layer_name(model, index)
        layer = _Layer(model, layer_path, ctx)
        if name in positions:
            layer.error("name", f"the name {name!r} is already used by {path[-1]}[{positions[name]}] in this list; names must be unique")
        sources = model.sources or [previous]
        if model.sources is None and previous in splits:
            layer.error(
                None,
                f"the layer before is the split {previous!r}; say which part this layer reads, "
                f"with `from:` one of {_part_names(previous, splits[previous])}",
            )
        inputs: list[Value | None] = []
        for source in sources:
            base, dot, part = source.partition(".")
            if base in splits:
                if dot and part in [str(i) for i in range(splits[base])]:
                    inputs.append(values[source])
                elif dot or model.sources is not None:
                    layer.error("from", f"{source!r}: the split {base!r} has {splits[base]} parts: {_part_names(base, splits[base])}")
                    inputs.append(None)
                else:
                    inputs.append(None)  # reported above
                continue
            if dot and base in values:
                if base not in broken_names:
                    layer.error("from", f"{source!r}: {base!r} is not a split, so it has no parts; use `from: {base}`")
                inputs.append(None)
                continue
            if source in values:
                inputs.append(values[source])
                continue
            later = [layer_name(m, i) for i, m in enumerate(layers) if i >= index]
            if base in later:
                layer.error("from", f"{source!r} comes at or after this layer; `from` can only name earlier layers (or 'input')")
            else:
                known = list(values)
                close = difflib.get_close_matches(source, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f"; earlier names in this list: {', '.join(known)}"
                layer.error("from", f"no layer named {source!r} before this one in the same list{hint}")
            inputs.append(None)
        if len(sources) > 1 and model.type not in MULTI_INPUT_KINDS:
            layer.error("from", f"a {model.type} layer takes one input, but `from` names {len(sources)}; join them with add or concat first")
        output: Value | None = None
        traced = None
        broken = layer_path in ctx.spec._broken_layers  # invalid in the schema: already reported
        if broken:
            broken_names.add(name)
        if not layer.failed and not broken and all(v is not None for v in inputs):
            try:
                traced = SHAPE_RULES[model.type](layer, inputs)  # type: ignore[arg-type]
                output = traced.value if not layer.failed else None
            except _LayerFailed:
                output = None
        report = LayerReport(name, model.type, layer_path, model, list(sources), [v.shape for v in inputs if v is not None])
        if traced is not None:
            report.output_shape = traced.value.shape
            report.params, report.trainable_params, report.macs = traced.params, traced.trainable, traced.macs
            report.receptive_field, report.stride = traced.value.rf, traced.value.jump
            report.children, report.resolved = traced.children, traced.resolved
        reports.append(report)
        positions.setdefault(name, index)
        values[name] = output
        if model.type == "split":
            splits[name] = split_parts(model)
            parts = traced.parts if traced is not None and output is not None else None
            for i in range(splits[name]):
                values[f"{name}.{i}"] = parts[i] if parts else None
        previous = name
    if previous in splits:
        ctx.problem(
            path + (len(layers) - 1,), None,
            f"a split cannot end a list: its parts must be read by later layers (`from: {previous}.0`, ...)",
        )
        return reports, None
    return reports, values[previous] if layers else value


def parse_input_shape(text: str) -> tuple[int, ...]:
    """'1x3x224x224' -> (1, 3, 224, 224)."""
    try:
        shape = tuple(int(part) for part in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise ValueError(f"input shape {text!r} is not like 1x3x224x224") from None
    if not 3 <= len(shape) <= 5 or any(s < 1 for s in shape):
        raise ValueError(f"input shape {text!r} must be BxCxL, BxCxHxW or BxCxDxHxW with positive sizes")
    return shape


def check_spec(spec: Spec, input_shape: tuple[int, ...] | None = None, require_size: bool = True) -> Report:
    """Trace the whole spec: every layer's figures and every problem. Never raises for spec problems."""
    problems: list[Problem] = []
    inp = spec.input
    dims = spec.dims
    if input_shape is not None:
        if len(input_shape) != dims + 2:
            raise InputError([Problem(f"the input shape {list(input_shape)} has {len(input_shape) - 2} spatial dims but the spec is {dims}-D", spec.source.locate(("input",)))])
        if input_shape[1] != inp.channels:
            raise InputError([Problem(f"the input shape {list(input_shape)} has {input_shape[1]} channels but input.channels is {inp.channels}", spec.source.locate(("input", "channels")))])
        shape = tuple(input_shape)
    else:
        if inp.size is None and require_size:
            raise SpecError([Problem("input.size is not given, so shapes are unknown; pass an input shape (e.g. --input 1x3x224x224)", spec.source.locate(("input",)))])
        shape = (inp.batch, inp.channels, *(inp.size or (None,) * dims))
    value = Value(shape, (1,) * dims, (1,) * dims)  # ints while they stay whole: Fraction arithmetic is slow
    data = spec.source.data
    if data is None:  # a Spec built in Python rather than loaded
        data = spec.model_dump(by_alias=True, exclude_unset=True, warnings=False)
    ctx = _Context(spec, dims, data, problems)
    layers, output = _trace_list(spec.layers, ("layers",), value, ctx)
    names = {report.name: report for report in layers}
    outputs: dict[str, tuple | None] = {}
    for index, name in enumerate(spec.output_names or [layers[-1].name]):
        if name not in names:
            close = difflib.get_close_matches(name, list(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            path = ("outputs", index) if isinstance(spec.outputs, list) else ("outputs",)
            problems.append(Problem(f"`outputs` names {name!r}, which is not a top-level layer{hint}", spec.source.locate(path)))
            continue
        if names[name].type == "split" and spec.output_names:  # a split ending the list is reported there
            path = ("outputs", index) if isinstance(spec.outputs, list) else ("outputs",)
            problems.append(Problem(f"`outputs` names the split {name!r}; name a layer that reads its parts", spec.source.locate(path)))
            continue
        outputs[name] = names[name].output_shape
    problems.sort(key=lambda p: (p.location.line or 0, p.location.column or 0))
    return Report(spec, shape, layers, outputs, problems)


def load_and_check(spec: Any, input_shape: tuple[int, ...] | None = None, require_size: bool = True) -> Report:
    """Load and check; if the schema rejects some layers, the raised SpecError also lists the other layers' shape problems."""
    from .schema import load

    if isinstance(input_shape, str):
        input_shape = parse_input_shape(input_shape)
    try:
        parsed = load(spec)
    except SpecError as err:
        if err.partial is None:
            raise
        try:
            shape_problems = check_spec(err.partial, input_shape, require_size).errors
        except SpecError:
            raise err from None
        problems = list(err.problems) + [p for p in shape_problems if p not in err.problems]
        problems.sort(key=lambda p: (p.location.line or 0, p.location.column or 0))
        raise SpecError(problems) from None
    return check_spec(parsed, input_shape, require_size)


def check(spec: Any, input_shape: tuple[int, ...] | str | None = None) -> Report:
    """Load (if needed) and check a spec: every layer's shape, parameters, MACs and receptive field.

    Schema problems raise SpecError (listing the shape problems of the valid layers too);
    shape problems of a valid spec are listed in `Report.errors`.
    """
    if isinstance(input_shape, str):
        input_shape = parse_input_shape(input_shape)
    return load_and_check(spec, input_shape)
