"""Layer kinds from outside convspec: declared in one file of the user's, registered by a call or an entry point. No torch.

A user kind is a `UserKind`: its pydantic model (a `LayerBase` with `type: Literal["NAME"]`), a
torch-free shape rule and a builder. The rule has a small public signature,

    rule(layer, inputs) -> Figures

where `layer` is the validated model and `inputs` holds one shape per input, each a tuple
(B, C, *spatial) for a feature map or (B, F) once flat, a size None where it is not known (a
dynamic input size). It returns `Figures` (output shape, parameters, MACs, receptive-field window)
or raises `LayerError(message, key)` for a fault of the spec, which becomes a located problem.
`to_kind` adapts it to the registry's internal `(TracedLayer, [Value]) -> Traced` form, so a user
kind gets everything a built-in one gets (located errors, the table and JSON, the memory budget,
drawings, the JSON Schema, export).

Two ways in: `register_kind` (a call or a decorator) and the packaging entry-point group
`convspec.kinds`, whose entry points each load a `UserKind` or a list of them. Entry points are
read lazily: when a spec names a type no registered kind has (`find_kinds`, called by
`loading.parse_spec`) and for the JSON Schema (`discover`). A spec itself never names code: only
kinds the user installed or registered are reachable. A plugin that fails to load, clashes with
a kind already registered, or whose rule raises, is reported naming its package; the exception
is kept for `--debug`.
"""

from __future__ import annotations

import importlib
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import metadata
from typing import Any

from .errors import ConvspecError, Location, Problem, SpecError, first_line, in_order, listing, quote
from .kinds import PLAIN_COLOURS, ExportTarget, Kind, KindRegistry, registry
from .layer_names import NAME_PATTERN
from .report import LayerReport
from .schema import LayerBase
from .shapes import LayerFailed, Traced, TracedLayer, Value, merged_field, whole_input_field, window_field

ENTRY_POINT_GROUP = "convspec.kinds"

Shape = tuple  # (B, C, *spatial) or (B, F); an entry is None where the size is not known


@dataclass(frozen=True)
class Figures:
    """What a user kind's rule returns for one layer.

    - `shape`: the output shape, (B, C, *spatial) for a feature map or (B, F) once flat; a size
      may be None where it cannot be known (it follows an unknown input size).
    - `params`: the module's parameters (all of them); `trainable`: those with requires_grad
      (None: all of them).
    - `macs`: multiply-accumulates of one forward at batch B, counted as convspec counts them:
      convolutions and linear maps (half of torch's FlopCounterMode FLOPs), and explicit products
      of tensors if the kind's authors choose, as convspec's `mul` does.
    - `buffers`: values held besides parameters (BatchNorm statistics, a fixed kernel), for the
      memory budget (float32 each).
    - Receptive field: a spatial kind that slides a window gives `kernel_size`, `stride` and
      `dilation` (int or per-dim tuple; padding does not change the field; an upsampling kind's stride is a
      Fraction, `Fraction(1, 2)` for a factor of 2), as in
      Araujo et al., "Computing Receptive Fields of Convolutional Neural Networks" (Distill 2019);
      one that mixes every position (global pooling, attention over the map) sets `whole_input`.
      Neither: the field and stride pass through unchanged (a pointwise or element-wise kind).
    """

    shape: Shape
    params: int = 0
    trainable: int | None = None
    macs: int = 0
    buffers: int = 0
    kernel_size: int | tuple[int, ...] | None = None
    stride: int | Fraction | tuple[int | Fraction, ...] = 1
    dilation: int | tuple[int, ...] = 1
    whole_input: bool = False


class LayerError(Exception):
    """A fault of the spec found by a user kind's rule: `message` says what is wrong and what would be
    right; `key` is the layer key to point at (None: the layer itself). Reported located, as a built-in
    kind's problems are; the layers after it are still checked."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.message, self.key = message, key


@dataclass(frozen=True)
class UserPlan:
    """What a user kind's builder receives: the validated layer and its input shapes (as the rule saw them).

    `output_shape` is the rule's answer, compared with the built module's real output once per build.
    """

    layer: LayerBase
    input_shapes: tuple[Shape, ...]
    output_shape: Shape
    buffers: int = 0


@dataclass(frozen=True)
class UserKind:
    """A layer kind declared outside convspec, in one file.

    - `model`: a `convspec.LayerBase` subclass with `type: Literal["NAME"]` and the kind's keys
      (unknown keys are refused, as for every kind).
    - `rule`: `(layer, input shapes) -> Figures`, torch-free (see the module docstring).
    - `build`: `(layer, input shapes) -> nn.Module`, or "module:function" naming it, imported on the
      first build (so `convspec check` need not import torch). The module keeps its own
      initialisation; it is built on the CPU, in a seeded build from a seed derived from the build's.
    - `many_inputs`: the kind takes two or more `from` inputs (its forward takes them in order).
    - `colours`: (fill, stroke) of its box in drawings.
    - `export_limit`: `(layer, input shapes, ExportTarget) -> reason or None`: why this layer cannot
      be exported to that opset / dynamic size (a refusal located at the layer, as for built-ins).
    - `package`: who declared it, as messages and `check --format json` name it; default the model's
      top-level module (for an entry point, its distribution's name).
    """

    model: type[LayerBase]
    rule: Callable[[Any, tuple[Shape, ...]], Figures]
    build: Callable[..., Any] | str
    many_inputs: bool = False
    colours: tuple[str, str] | None = None
    export_limit: Callable[[Any, tuple[Shape, ...], ExportTarget], str | None] | None = None
    package: str | None = None

    @property
    def name(self) -> str:
        return kind_name(self.model)


@dataclass(frozen=True)
class PluginProblem(Problem):
    """A problem caused by a plugin's code, not by the spec: keeps the exception for `--debug`."""

    cause: BaseException | None = field(default=None, compare=False, repr=False)


class PluginError(ConvspecError):
    """An installed plugin of `convspec.kinds` cannot be used (exit status 1); the message names it."""


def kind_name(model: Any) -> str:
    """The NAME of a model's `type: Literal["NAME"]`; TypeError when it is not a layer model of that form."""
    if not (isinstance(model, type) and issubclass(model, LayerBase)):
        raise TypeError(f"a kind's model must be a subclass of convspec.LayerBase, not {model!r:.80}")
    declared = model.model_fields.get("type")
    annotation = declared.annotation if declared is not None else None
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is not typing.Literal or len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{model.__name__} must declare `type: Literal['NAME']` with one name")
    if not NAME_PATTERN.fullmatch(args[0]):
        raise TypeError(f"{model.__name__}: the kind name {args[0]!r} must be letters, digits and underscores, starting with a letter")
    return args[0]


def _per_dim(value: Any, dims: int, what: str, fractions: bool = False) -> tuple:
    """One entry per spatial dim: whole numbers >= 1 (a stride may be a Fraction > 0: an upsampling kind's)."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims

    def fits(v: Any) -> bool:
        if isinstance(v, Fraction) and fractions:
            return v > 0
        return isinstance(v, int) and not isinstance(v, bool) and v >= 1

    if len(values) != dims or not all(fits(v) for v in values):
        kinds = "a whole number >= 1 (or a Fraction > 0)" if fractions else "a whole number >= 1"
        raise ValueError(f"Figures.{what} must be {kinds}, or one per spatial dim ({dims}), not {value!r:.60}")
    return tuple(v.numerator if isinstance(v, Fraction) and v.denominator == 1 else v for v in values)


def _checked_figures(figures: Any, inputs: list[Value], dims: int) -> tuple[Value, int, int, int, int]:
    """(output value, params, trainable, MACs, buffers) from a rule's Figures; ValueError naming what is malformed."""
    if not isinstance(figures, Figures):
        raise ValueError(f"the rule must return convspec.Figures, not {type(figures).__name__}")
    shape = tuple(figures.shape) if isinstance(figures.shape, (tuple, list)) else None
    if shape is None or len(shape) not in (2, dims + 2) or not all(
        s is None or (isinstance(s, int) and not isinstance(s, bool) and s >= 1) for s in shape
    ):
        raise ValueError(f"Figures.shape must be (B, C, *{dims} spatial sizes) or (B, F) of whole numbers >= 1 or None, not {figures.shape!r:.80}")
    if shape[1] is None:
        raise ValueError("Figures.shape must give the channels (or features): they are never unknown")
    counts = {"params": figures.params, "macs": figures.macs, "buffers": figures.buffers}
    for what, count in counts.items():
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"Figures.{what} must be a whole number >= 0, not {count!r:.40}")
    trainable = figures.params if figures.trainable is None else figures.trainable
    if not isinstance(trainable, int) or isinstance(trainable, bool) or not 0 <= trainable <= figures.params:
        raise ValueError(f"Figures.trainable must be from 0 to params ({figures.params}), not {trainable!r:.40}")
    rf, jump = merged_field(inputs) if len(inputs) > 1 else (inputs[0].rf, inputs[0].jump)
    source = Value(inputs[0].shape, rf, jump, inputs[0].flat)
    if figures.whole_input and not source.flat:
        rf, jump = whole_input_field(source)
    elif figures.kernel_size is not None or figures.stride != 1:
        kernel = _per_dim(1 if figures.kernel_size is None else figures.kernel_size, dims, "kernel_size")
        stride = _per_dim(figures.stride, dims, "stride", fractions=True)
        rf, jump = window_field(source, kernel, stride, _per_dim(figures.dilation, dims, "dilation"))
    return Value(shape, rf, jump, flat=len(shape) == 2), figures.params, trainable, figures.macs, figures.buffers


def _plugin_problem(layer: TracedLayer, message: str, cause: BaseException) -> None:
    """Record a fault of a plugin's code at the layer's `type` (what the spec wrote to reach that code)."""
    from .source import layer_label

    ctx = layer.ctx
    _, label = layer_label(ctx.data, layer.path)
    problem = PluginProblem(message, ctx.spec.source.locate(layer.path + ("type",)), label, cause)
    layer.failed = True
    if problem not in ctx._seen:  # as TraceContext.problem records one, keeping the exception
        ctx._seen.add(problem)
        ctx.problems.append(problem)


def to_kind(user: UserKind, package: str | None = None) -> Kind:
    """The registry's `Kind` for a user kind: its rule and builder adapted to the internal signatures.

    TypeError when `user` is not a well-formed UserKind (its model, rule or builder).
    """
    if not isinstance(user, UserKind):
        raise TypeError(f"a kind is declared as convspec.UserKind(model, rule, build), not {user!r:.80}")
    name = kind_name(user.model)
    if not callable(user.rule):
        raise TypeError(f"kind {name!r}: `rule` must be a function (layer, input shapes) -> Figures")
    if not (callable(user.build) or (isinstance(user.build, str) and user.build.count(":") == 1)):
        raise TypeError(f"kind {name!r}: `build` must be a function (layer, input shapes) -> nn.Module, or 'module:function'")
    origin = package or user.package or user.model.__module__.partition(".")[0]

    def rule(layer: TracedLayer, inputs: list[Value]) -> Traced:
        shapes_in = tuple(tuple(value.shape) for value in inputs)
        try:
            figures = user.rule(layer.model, shapes_in)
        except LayerError as err:
            layer.fail(err.key, err.message)
        except Exception as err:  # the plugin's fault, not the spec's
            _plugin_problem(layer, f"the rule of kind {name!r} (package {origin}) raised {type(err).__name__}: {first_line(err, 200)}; "
                            f"this is a fault of {origin}, not of the spec (--debug shows the traceback)", err)
            raise LayerFailed from None
        try:
            value, params, trainable, macs, buffers = _checked_figures(figures, inputs, layer.ctx.dims)
        except ValueError as err:
            _plugin_problem(layer, f"the rule of kind {name!r} (package {origin}) returned a malformed answer: {err}", err)
            raise LayerFailed from None
        return Traced(value, params, trainable, macs, UserPlan(layer.model, shapes_in, value.shape, buffers))

    def builder(plan: UserPlan, report: LayerReport, ctx: Any) -> Any:
        from .plugin_build import build_user_module

        return build_user_module(user, name, origin, plan, report, ctx)

    def export_limit(report: LayerReport, target: ExportTarget) -> tuple[str, str] | None:
        try:
            reason = user.export_limit(report.plan.layer, report.plan.input_shapes, target)
        except Exception as err:  # the plugin's fault: refuse the export, naming it
            reason = f"the export_limit of kind {name!r} raised {type(err).__name__}: {first_line(err, 200)}; a fault of {origin}"
        return None if reason is None else ("type", f"{reason} (kind {name!r}, package {origin})")

    return Kind(
        name, user.model, rule, builder, many_inputs=user.many_inputs, buffers=lambda report: report.plan.buffers if report.plan else 0,
        colours=user.colours or PLAIN_COLOURS, export_limit=export_limit if user.export_limit else None, origin=origin,
    )


def register_kind(
    declaration: UserKind | None = None, /, *, model: type[LayerBase] | None = None, rule: Callable[..., Figures] | None = None,
    build: Callable[..., Any] | str | None = None, target: KindRegistry = registry, **options: Any,
) -> Any:
    """Register a layer kind for this process: `register_kind(UserKind(...))`, `register_kind(model=..., rule=..., build=...)`,
    or as a decorator of the builder, `@register_kind(model=..., rule=...)`.

    `options` are UserKind's other fields (many_inputs, colours, export_limit, package). Returns the
    UserKind (the decorated function, as a decorator). ValueError when the name is taken (by a
    built-in kind or another package), TypeError for a malformed declaration. `registry.temporarily`
    registers for a `with` block only (tests).
    """
    if declaration is not None:
        if model is not None or rule is not None or build is not None or options:
            raise TypeError("register_kind takes a UserKind, or its fields as keywords, not both")
        target.register(to_kind(declaration))
        return declaration
    if model is None or rule is None:
        raise TypeError("register_kind needs `model` and `rule` (and `build`, or use it as a decorator of the builder)")
    if build is None:
        def decorator(function: Callable[..., Any]) -> Callable[..., Any]:
            register_kind(UserKind(model, rule, function, **options), target=target)
            return function

        return decorator
    declared = UserKind(model, rule, build, **options)
    target.register(to_kind(declared))
    return declared


# ---------------------------------------------------------------- entry points


@dataclass(frozen=True)
class PluginFailure:
    """An entry point of `convspec.kinds` that could not be used: which, whose, why."""

    entry_point: str  # "NAME = module:attr"
    package: str
    reason: str
    cause: BaseException | None = field(default=None, compare=False, repr=False)
    clashes: tuple[str, ...] = ()  # kind names it declares that another package (or convspec) has already

    def __str__(self) -> str:
        return f"the plugin {self.entry_point!r} of package {self.package} {self.reason}"


def _declarations(loaded: Any) -> list[UserKind]:
    items = list(loaded) if isinstance(loaded, (list, tuple)) else [loaded]
    if not items:
        raise TypeError("declares no kind (an empty list)")
    return items


def _use_entry_point(entry: metadata.EntryPoint, package: str, target: KindRegistry) -> tuple[str, ...] | PluginFailure:
    """Load one entry point and register its kinds: their names, or why it cannot be used (nothing registered then)."""
    text = f"{entry.name} = {entry.value}"
    dist = getattr(entry, "dist", None)
    try:
        loaded = entry.load()
    except Exception as err:  # importing someone else's code: any exception is theirs
        return PluginFailure(text, package, f"failed to load: {type(err).__name__}: {first_line(err, 200)}", err)
    try:
        kinds = [to_kind(user, dist.name if dist is not None else None) for user in _declarations(loaded)]
    except TypeError as err:
        return PluginFailure(text, package, f"declares no usable kind: {first_line(err, 200)}", err)
    taken = [kind.name for kind in kinds if kind.name in target]
    if taken:
        owners = {target[name].origin for name in taken}
        whose = "built-in" if owners == {"convspec"} else f"registered by {', '.join(sorted(owners))}"
        return PluginFailure(
            text, package, f"declares {listing(taken)}, which convspec has already ({whose}); rename its kinds", clashes=tuple(taken)
        )
    try:
        target.register(*kinds)
    except ValueError as err:  # two kinds of one name within the plugin
        return PluginFailure(text, package, f"cannot be registered: {err}", err)
    return tuple(kind.name for kind in kinds)


def discover(target: KindRegistry = registry) -> list[PluginFailure]:
    """Load every entry point of `convspec.kinds` not loaded yet and register its kinds; each loads a
    UserKind or a list of them. Returns the plugins that could not be used (now or before), never raises
    for them: a plugin whose import fails, whose object is not a kind, or whose kinds clash with kinds
    already registered (built-in or another package's) is skipped whole."""
    failures: list[PluginFailure] = []
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(entry, "dist", None)
        package = f"{dist.name} {dist.version}" if dist is not None else entry.module
        key = f"{package}: {entry.name} = {entry.value}"
        if key not in target.plugins:
            target.plugins[key] = _use_entry_point(entry, package, target)
        if isinstance(target.plugins[key], PluginFailure):
            failures.append(target.plugins[key])
    return failures


def discover_or_fail(target: KindRegistry = registry) -> None:
    """`discover`, raising PluginError naming every plugin that could not be used (for `convspec schema`)."""
    failures = discover(target)
    if failures:
        raise PluginError([PluginProblem(str(failure), cause=failure.cause) for failure in failures]) from failures[0].cause


_LIST_KEYS = ("layers", "shortcut", "first")  # where layer lists hang in a spec (as `source.layer_label` reads them)


def _names_unknown(data: Any, known: set[str]) -> bool:
    """Whether some layer of `data` has a `type` outside `known`."""
    stack = [data]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        for key in _LIST_KEYS:
            items = node.get(key)
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict) and isinstance(item.get("type"), str) and item["type"] not in known:
                        return True
                    stack.append(item)
    return False


def _unknown_types(data: Any, known: Iterable[str]) -> dict[str, list[tuple]]:
    """The layer types of `data` that `known` lacks, with the paths of the layers naming each."""
    known = set(known)
    if not _names_unknown(data, known):  # the common case, without building a path per layer
        return {}
    found: dict[str, list[tuple]] = {}
    stack: list[tuple[Any, tuple]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if path and isinstance(kind, str) and kind not in known:
            found.setdefault(kind, []).append(path)
        for key in _LIST_KEYS:
            items = node.get(key)
            if isinstance(items, list):
                stack.extend((item, path + (key, index)) for index, item in enumerate(items))
    return found


def find_kinds(data: Any, source: Any, target: KindRegistry = registry) -> None:
    """Before a spec is validated: if it names types no registered kind has, read the installed plugins.

    Raises SpecError when some plugin could not be used (it may be the one that declares a type
    still unknown): one problem per such plugin, naming it and why, and one at each layer of an
    unknown type. Without failures, unknown types are left to the schema's "unknown layer type"
    message and its hints.
    """
    unknown = _unknown_types(data, target)
    if not unknown:
        return
    failures = discover(target)
    from .source import layer_label

    # a kind two packages declare: the spec would get whichever loaded first, so neither is taken silently
    doubled = {name: f for f in failures for name in f.clashes if name in unknown and target[name].origin != "convspec"}
    if doubled:
        raise SpecError(in_order([
            Problem(f"layer type {quote(name)} is declared by two installed packages, {target[name].origin} and "
                    f"{doubled[name].package}; uninstall one of them (or rename its kind)",
                    source.locate(path + ("type",)), layer_label(data, path)[1])
            for name in doubled for path in unknown[name]
        ]))
    still = {kind: paths for kind, paths in unknown.items() if kind not in target}
    if not (still and failures):
        return

    suspects = listing(dict.fromkeys(f"{failure.entry_point.partition(' = ')[0]} ({failure.package})" for failure in failures))
    problems: list[Problem] = [PluginProblem(str(failure), Location(source.file), cause=failure.cause) for failure in failures]
    problems += [
        Problem(f"unknown layer type {quote(kind)}; a plugin that could not be used may declare it: {suspects}",
                source.locate(path + ("type",)), layer_label(data, path)[1])
        for kind, paths in still.items()
        for path in paths
    ]
    raise SpecError(in_order(problems)) from failures[0].cause


def kind_package(name: str, target: KindRegistry = registry) -> str | None:
    """The package that declared kind `name`, or None for a built-in kind (or an unknown name)."""
    kind = target.get(name)
    return None if kind is None or kind.origin == "convspec" else kind.origin


def resolve(builder: Callable[..., Any] | str) -> Callable[..., Any]:
    """A builder given as "module:function", imported; a function as it is."""
    if callable(builder):
        return builder
    module, _, function = builder.partition(":")
    return getattr(importlib.import_module(module), function)


__all__ = [
    "ENTRY_POINT_GROUP", "Figures", "LayerError", "PluginError", "PluginFailure", "PluginProblem", "UserKind", "UserPlan",
    "discover", "discover_or_fail", "find_kinds", "kind_name", "kind_package", "register_kind", "resolve", "to_kind",
]  # fmt: skip
