"""What every shape rule works with: the `Value` on an edge, the layer under trace, what a rule returns, and the checks rules share.

The rules live by family: `shapes_conv` (the convolutions), `shapes_resample` (pooling
and upsampling), `shapes_graph` (joins, split and containers) and `shapes_basic` (norm,
act, dropout, identity, shuffle, flatten, linear). Their formulas are `geometry`'s; the
builder takes its padding and channel counts from the plans the rules make and never
recomputes them. No torch import: checking a 1,000-layer spec is integer arithmetic.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from . import kernels
from .errors import Problem
from .geometry import divisors
from .plans import NormPlan
from .report import LayerReport
from .schema import LayerBase, Spec
from .source import layer_label

DIM_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
MAX_LAYERS = 10_000  # after `repeat` expansion: the largest real networks have a few thousand


# ---------------------------------------------------------------- values on the edges


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


def int_if_whole(value: Fraction) -> int | Fraction:
    """`value` as an int where it is whole, so reports print 4, not Fraction(4, 1)."""
    return value.numerator if value.denominator == 1 else value


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


def feature_map(layer: TracedLayer, value: Value, what: str) -> Value:
    """`value`, if it is a feature map (B, C, *spatial); a flat input fails the layer with a hint."""
    if value.flat:
        layer.fail(None, f"{what} needs a feature map (B, C, ...), but its input is flat {list(value.shape)}; move it before `flatten`")
    return value


def window_field(value: Value, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[tuple, tuple]:
    """Receptive field and jump after a sliding window."""
    rf, jump = [], []
    for r, j, k, s, d in zip(value.rf, value.jump, kernel, stride, dilation):
        effective = d * (k - 1) + 1
        rf.append(int_if_whole(r + (effective - 1) * j) if j is not None else r)
        jump.append(int_if_whole(j * s) if j is not None else None)
    return tuple(rf), tuple(jump)


def whole_input_field(value: Value) -> tuple[tuple, tuple]:
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


def merged_field(values: list[Value]) -> tuple[tuple, tuple]:
    """Receptive field and jump where several values meet: the widest of each, per dim (None where one is unknown)."""
    rf = tuple(max(v.rf[i] for v in values) for i in range(len(values[0].rf)))
    jump = tuple(
        None if any(v.jump[i] is None for v in values) else max(v.jump[i] for v in values) for i in range(len(values[0].jump))
    )
    return rf, jump


def key_or_default(model: LayerBase, name: str, default: Any) -> Any:
    """`model.<name>`, or `default` for a kind without that key (a miss through pydantic's __getattr__ costs 2 us)."""
    return getattr(model, name) if name in type(model).model_fields else default


def divisors_text(n: int) -> str:
    """The divisors of `n` for a message: all of a few, else the smallest and largest (a count near 2**31 has up to 1,600)."""
    found = [str(d) for d in divisors(n)]
    if len(found) <= 12:
        return ", ".join(found)
    return f"{', '.join(found[:8])}, ..., {', '.join(found[-3:])}: {len(found):,} in all"


def check_norm_statistics(layer: TracedLayer, kind: str | None, groups: int | None, value: Value, key: str) -> None:
    """Instance and group norm need more than one value to normalise over, in eval mode too."""
    if value.flat or any(s is None for s in value.spatial):
        return
    positions = math.prod(value.spatial)
    if kind == "instance" and positions == 1:
        layer.error(key, f"instance norm needs more than one position, but the map is {list(value.shape)}")
    if kind == "group" and groups and value.channels % groups == 0 and positions * (value.channels // groups) == 1:
        layer.error(key, f"group norm needs more than one value per group, but the map is {list(value.shape)} with {groups} groups")


def check_norm(layer: TracedLayer, kind: str | None, groups: int | None, value: Value, key: str = "norm") -> None:
    """A conv's `norm` must fit the conv's output `value`."""
    channels = value.channels
    if kind == "group" and groups is not None and channels % groups:
        layer.error(
            "norm_groups" if key == "norm" else key,
            f"norm_groups={groups} does not divide the {channels} channels (divisors: {divisors_text(channels)})",
        )
    check_norm_statistics(layer, kind, groups, value, key)


def norm_plan(
    layer: TracedLayer, kind: str | None, channels: int, dims: int, groups: int | None, settings: Any = None, flat: bool = False,
) -> NormPlan | None:
    """The plan of a norm; `settings` (the layer, or a separable's `depthwise`) may set `eps` and `momentum`.

    What it leaves unset comes from the spec's `batch_norm` for a batch norm, else PyTorch's defaults.
    """
    if kind is None:
        return None
    eps = None if settings is None else key_or_default(settings, "eps", None)
    momentum = None if settings is None else key_or_default(settings, "momentum", None)
    defaults = layer.ctx.spec.batch_norm
    if kind == "batch" and defaults is not None:
        eps = defaults.eps if eps is None else eps
        momentum = defaults.momentum if momentum is None else momentum
    return NormPlan(kind, channels, dims, groups, flat, eps, momentum)


def check_init(layer: TracedLayer, weight_shape: tuple[int, ...], has_bias: bool, out: int, arrays: bool = True) -> None:
    """Literal arrays and filter initialisers must fit the weight they initialise."""
    init = key_or_default(layer.model, "init", None)
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
