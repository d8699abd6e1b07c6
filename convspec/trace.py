"""The graph walk: trace a spec's layer lists in order, running each layer's shape rule. No torch.

`check_spec` walks the layers with the rules of the kind registry (`kinds.py`),
resolves `from` names (including a split's parts), records every problem and
goes on where it can, and returns a `Report`. `load_and_check` and `check` are
the entry points that also load the spec.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from .errors import CloseNames, InputError, Problem, SpecError, in_order, listing, quote, shorten
from .kinds import ExportTarget, Kind, export_limit_problems, registry
from .limits import INT_LIMIT, describe_number, exact_int, whole_text
from .opsets import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
from .report import LayerReport, Report
from .scaling import explain_joins
from .schema import LayerBase, Spec
from .shapes import MAX_LAYERS, LayerFailed, Traced, TraceContext, TracedLayer, Value
from .shapes_graph import part_names

# ---------------------------------------------------------------- walking lists


def layer_name(layer: LayerBase, index: int) -> str:
    return layer.name or f"{layer.type}_{index}"


@dataclass
class _Scope:
    """What one list knows while it is traced: the values by name (a split's parts as NAME.0, NAME.1, ...)."""

    layers: list[LayerBase]
    values: dict[str, Value | None]
    parts: dict[str, int] = field(default_factory=dict)  # multi-output layers of this list: name -> number of parts
    broken: set[str] = field(default_factory=set)  # layers invalid in the schema, stood in for: their parts are unknown
    # made at the first unknown name only, then kept: a list of thousands of bad `from`s is still linear
    _hints: CloseNames | None = None  # the earlier names, for "did you mean"
    _all_names: set[str] | None = None  # every layer's name in the list, earlier or not
    _models: dict[str, LayerBase] | None = None  # the first layer of each name

    def inputs(self, layer: TracedLayer, index: int, sources: list[str]) -> list[Value | None]:
        """The values `sources` name, None (with the problem recorded) where a name does not resolve."""
        explicit = layer.model.sources is not None
        inputs: list[Value | None] = []
        for source in sources:
            base, dot, part = source.partition(".")
            if base in self.parts:
                if dot and part in [str(i) for i in range(self.parts[base])]:
                    inputs.append(self.values[source])
                    continue
                if dot or explicit:  # an implicit `from` after a split is reported by the caller
                    layer.error("from", f"{quote(source)}: the split {quote(base)} has {self.parts[base]} parts: {part_names(base, self.parts[base])}")
            elif dot and base in self.values:
                if base not in self.broken:
                    layer.error("from", self._not_a_split(source, base))
            elif source in self.values:
                inputs.append(self.values[source])
                continue
            else:
                self._unknown(layer, index, source)
            inputs.append(None)
        return inputs

    def _not_a_split(self, source: str, base: str) -> str:
        if self._models is None:
            self._models = {}
            for i, m in enumerate(self.layers):
                self._models.setdefault(layer_name(m, i), m)
        model = self._models.get(base)
        if model is not None and registry[model.type].child_lists:
            return (
                f"{quote(source)}: the layers inside {quote(base)} are not visible outside it; a {model.type} gives only its "
                f"output (`from: {shorten(base)}`); to read an inner layer, move it out of the {model.type}"
            )
        return f"{quote(source)}: {quote(base)} is not a split, so it has no parts; use `from: {shorten(base)}`"

    def _unknown(self, layer: TracedLayer, index: int, source: str) -> None:
        if source.partition(".")[0] in layer.ctx.spec._rejected_names:
            return  # a name the schema refused: reported there
        if self._all_names is None:
            self._all_names = {layer_name(m, i) for i, m in enumerate(self.layers)}
        if source.partition(".")[0] in self._all_names:  # not among the earlier names (`values`), so at or after
            layer.error("from", f"{quote(source)} comes at or after this layer; `from` can only name earlier layers (or 'input')")
            return
        if self._hints is None:
            self._hints = CloseNames()
        if len(self.values) > len(self._hints):  # the names added since the last look (`values` only grows)
            self._hints.update(reversed(list(islice(reversed(self.values), len(self.values) - len(self._hints)))))
        hint = self._hints.did_you_mean(source) or f"; earlier names in this list: {listing(self.values, last=True)}"
        layer.error("from", f"no layer named {quote(source)} before this one in the same list{hint}")


def _assumed_after_failure(kind: Kind, model: LayerBase, inputs: list[Value | None]) -> Value | None:
    """What a failed one-input layer whose rule assumed nothing still says of its output: sizes unknown,
    channels from its own keys (`out_channels`, `multiplier`) or else its input's, features if it is linear.
    None for joins, containers, splits and flatten, whose output its keys do not give."""
    if kind.many_inputs or kind.child_lists or kind.parts is not None or len(inputs) != 1 or inputs[0] is None:
        return None
    value = inputs[0]
    fields = type(model).model_fields
    if "out_features" in fields:
        return Value((value.shape[0], model.out_features), value.rf, value.jump, flat=True)
    if value.flat or model.type == "flatten":
        return None
    channels = model.out_channels if "out_channels" in fields else None
    if channels is None and "multiplier" in fields:
        channels = value.channels * model.multiplier
    spatial = len(value.spatial)
    return Value((value.shape[0], channels or value.channels, *(None,) * spatial), value.rf, (None,) * spatial)


def _run_rule(kind: Kind, layer: TracedLayer, inputs: list[Value]) -> tuple[Traced | None, Value | None]:
    """The rule's result, or (None, what the failed layer's own keys still say of its output)."""
    try:
        return kind.rule(layer, inputs), None
    except LayerFailed as failed:
        return None, failed.assumed


def _wired_inputs(
    layer: TracedLayer, kind: Kind, index: int, sources: list[str], previous: str, scope: _Scope, earlier: dict[str, int]
) -> list[Value | None]:
    """The values a layer reads, every wiring problem recorded on the way: a name used before in
    the list (`earlier`: each name's first index), an implicit read of a split, a name that does
    not resolve, several inputs to a kind that takes one."""
    model = layer.model
    name = layer_name(model, index)
    if name in earlier:
        layer.error("name", f"the name {quote(name)} is already used by {layer.path[-2]}[{earlier[name]}] in this list; names must be unique")
    if model.sources is None and previous in scope.parts:
        layer.error(
            None,
            f"the layer before is the split {quote(previous)}; say which part this layer reads, "
            f"with `from:` one of {part_names(previous, scope.parts[previous])}",
        )
    inputs = scope.inputs(layer, index, sources)
    if len(sources) > 1 and not kind.many_inputs:
        article = "an" if model.type[0] in "aeiou" else "a"
        layer.error("from", f"{article} {model.type} layer takes one input, but `from` names {len(sources)}; join them with add, concat or mul first")
    return inputs


def _trace_layer(kind: Kind, layer: TracedLayer, inputs: list[Value], repair: str | None) -> tuple[Traced | None, Value | None]:
    """Run a layer's rule: (its result, its output), the output assumed from its own keys when the rule failed.

    `repair` is "spatial" for a layer invalid in the schema, traced without its wrong keys, whose
    sizes cannot be trusted: its own findings are muted and its output keeps batch and channels only.
    """
    with layer.ctx.muted() if repair == "spatial" else contextlib.nullcontext():
        traced, output = _run_rule(kind, layer, inputs)
    if traced is not None:
        output = traced.value
    elif output is None:
        output = _assumed_after_failure(kind, layer.model, inputs)
    if repair == "spatial" and output is not None:
        output = Value((output.shape[0], output.shape[1], *(None,) * len(output.spatial)), output.rf, (None,) * len(output.jump), output.flat)
        traced = None
    return traced, output


def _keep_output(scope: _Scope, kind: Kind, model: LayerBase, name: str, traced: Traced | None, output: Value | None) -> None:
    """A layer's output under its name for later layers, and a split's parts as NAME.0, NAME.1, ... (None when unknown)."""
    scope.values[name] = output
    if kind.parts is not None:
        scope.parts[name] = kind.parts(model)
        parts = traced.parts if traced is not None and output is not None else None
        for i in range(scope.parts[name]):
            scope.values[f"{name}.{i}"] = parts[i] if parts else None


def trace_list(layers: list[LayerBase], path: tuple, value: Value, ctx: TraceContext) -> tuple[list[LayerReport], Value | None]:
    """Trace one list (a scope). Returns its layer reports and its output (None if it cannot be known)."""
    scope = _Scope(layers, {"input": value})
    # read once: a pydantic private attribute costs a __getattr__ call
    broken_layers, repaired_layers = ctx.spec._broken_layers, ctx.spec._repaired_layers
    scaling = ctx.spec._scaling
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
        layer = TracedLayer(model, layer_path, ctx)
        kind = registry[model.type]
        sources = model.sources or [previous]
        inputs = _wired_inputs(layer, kind, index, sources, previous, scope, positions)
        # invalid in the schema (already reported): traced without its wrong keys where that is
        # sound ("exact"; "spatial" when the sizes cannot be trusted), else a stand-in with no output
        broken = layer_path in broken_layers
        repair = repaired_layers.get(layer_path) if broken else None
        if broken and repair is None:
            scope.broken.add(name)
        traced, output = None, None
        if not layer.failed and (not broken or repair) and all(v is not None for v in inputs):
            traced, output = _trace_layer(kind, layer, inputs, repair)  # type: ignore[arg-type]
        reports.append(_report(name, model, layer_path, sources, inputs, traced))
        if scaling is not None:
            reports[-1].requested = scaling.requested(layer_path)
        positions.setdefault(name, index)
        _keep_output(scope, kind, model, name, traced, output)
        previous = name
    if previous in scope.parts:
        ctx.problem(
            path + (len(layers) - 1,), None,
            f"a split cannot end a list: its parts must be read by later layers (`from: {previous}.0`, ...)",
        )
        return reports, None
    return reports, scope.values[previous] if layers else value


def _report(name: str, model: LayerBase, path: tuple, sources: list[str], inputs: list, traced: Traced | None) -> LayerReport:
    report = LayerReport(name, model.type, path, model, list(sources), [v.shape for v in inputs if v is not None])
    if traced is not None:
        report.output_shape = traced.value.shape
        report.params, report.trainable_params, report.macs = traced.params, traced.trainable, traced.macs
        report.receptive_field, report.stride = traced.value.rf, traced.value.jump
        report.children, report.plan = traced.children, traced.plan
    return report


def parse_input_shape(value: str | Sequence[int]) -> tuple[int, ...]:
    """An input shape (NCL, NCHW or NCDHW) from text or a sequence: '1x3x224x224' or (1, 3, 224, 224) -> (1, 3, 224, 224).

    The one parser of `--input` and of every API function's `input_shape`: 3 to 5 whole
    sizes (not bools, not floats), each from 1 to `INT_LIMIT`, as `input.size` and
    `input.batch` in a spec. Raises InputError saying what would be right.
    """
    form = "BxCxL, BxCxHxW or BxCxDxHxW, e.g. 1x3x224x224 or (1, 3, 224, 224)"
    if isinstance(value, str):
        shown = repr(value) if len(value) <= 60 else repr(value[:57]) + "..."
        parts = value.lower().replace(",", "x").split("x")
        if len(parts) > 5 or not all(re.fullmatch(r"\s*[0-9]+\s*", part) for part in parts):
            raise InputError(f"input shape {shown} is not like {form}: 3 to 5 whole sizes joined by x")
        sizes: list = [whole_text(part) for part in parts]
    elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)) or isinstance(getattr(value, "tolist", None) and value.tolist(), list):
        sizes = list(value) if isinstance(value, Sequence) else value.tolist()  # a tuple, list, torch.Size or 1-D array
        shown = repr(tuple(sizes)) if len(sizes) <= 8 else f"a sequence of {len(sizes)} entries"
    else:
        raise InputError(f"input shape must be {form}, not {type(value).__name__} {value!r:.60}")
    if not 3 <= len(sizes) <= 5:
        raise InputError(f"input shape {shown} has {len(sizes)} entries; give {form}")
    shape = []
    for index, size in enumerate(sizes):
        whole = exact_int(size)
        if whole is None:
            raise InputError(f"input shape {shown}: entry {index} is {size!r:.40}, not a whole number; give {form}")
        size = whole
        if not 1 <= size <= INT_LIMIT:
            raise InputError(f"input shape {shown}: entry {index} is {describe_number(size)}; every size must be from 1 to {INT_LIMIT:,}")
        shape.append(size)
    return tuple(shape)


def check_spec(spec: Spec, input_shape: tuple[int, ...] | None = None, require_size: bool = True) -> Report:
    """Trace the whole spec: every layer's figures and every problem. Never raises for spec problems."""
    problems: list[Problem] = []
    inp = spec.input
    dims = spec.dims
    if input_shape is not None:
        input_shape = parse_input_shape(input_shape)
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
    ctx = TraceContext(spec, dims, data, problems, trace_list, sizes_known=all(s is not None for s in shape[2:]))
    layers, output = trace_list(spec.layers, ("layers",), value, ctx)
    names = {report.name: report for report in layers}
    outputs: dict[str, tuple | None] = {}
    hints = None
    listed: set[str] = set()
    for index, name in enumerate(spec.output_names or [layers[-1].name]):
        if name in listed:  # one graph output per name: ONNX outputs are named and unique
            path = ("outputs", index)
            problems.append(Problem(f"`outputs` lists {name!r} twice; list each layer once", spec.source.locate(path)))
            continue
        listed.add(name)
        if name in spec._rejected_names:
            continue  # a name the schema refused: reported there
        if name not in names:
            hints = hints or CloseNames(names)
            path = ("outputs", index) if isinstance(spec.outputs, list) else ("outputs",)
            message = f"`outputs` names {quote(name)}, which is not a top-level layer{hints.did_you_mean(name)}"
            problems.append(Problem(message, spec.source.locate(path)))
            continue
        if registry[names[name].type].parts is not None and spec.output_names:  # a split ending the list is reported there
            path = ("outputs", index) if isinstance(spec.outputs, list) else ("outputs",)
            problems.append(Problem(f"`outputs` names the split {quote(name)}; name a layer that reads its parts", spec.source.locate(path)))
            continue
        outputs[name] = names[name].output_shape
    report = Report(spec, shape, layers, outputs, in_order(problems))
    report.errors = explain_joins(report, report.errors)  # a preset's rounding that broke a join, said so
    return report


def load_and_check(
    spec: Any, input_shape: tuple[int, ...] | None = None, require_size: bool = True, *, scale: str | None = None, overrides: Any = None
) -> Report:
    """Load and check; if the schema rejects some layers, the raised SpecError also lists the other layers' shape problems.

    `scale` and `overrides` are `convspec.load`'s.
    """
    if input_shape is not None:
        input_shape = parse_input_shape(input_shape)  # before loading: a wrong argument is reported first
    return _load_and_check(spec, input_shape, require_size, scale, overrides)


def _load_and_check(spec: Any, input_shape: tuple[int, ...] | None, require_size: bool, scale: str | None = None, overrides: Any = None) -> Report:
    report, schema_failed = _checked(spec, input_shape, require_size, scale, overrides)
    if schema_failed:
        raise SpecError(report.errors) from None
    return report


def _checked(
    spec: Any, input_shape: tuple[int, ...] | None, require_size: bool, scale: str | None = None, overrides: Any = None
) -> tuple[Report, bool]:
    """(the report, whether the schema rejected layers): then the report is the partial spec's, every problem in it."""
    from .loading import load

    try:
        parsed = load(spec, scale=scale, overrides=overrides)
    except SpecError as err:
        if err.partial is None:
            raise
        try:
            report = check_spec(err.partial, input_shape, require_size)
        except SpecError:
            raise err from None
        known = set(err.problems)
        report.errors = in_order(list(err.problems) + [p for p in report.errors if p not in known])
        return report, True
    return check_spec(parsed, input_shape, require_size), False


def load_for_drawing(spec: Any, input_shape: tuple[int, ...] | None = None, *, scale: str | None = None, overrides: Any = None) -> Report:
    """The report of a spec, its errors in `errors`, even when the schema rejects some layers (then the
    report is the partial spec's: wrong layers kept without their wrong keys, or as placeholders).

    Raises SpecError only when nothing can be traced (bad YAML, a bad `input`, ...); sizes may stay dynamic.
    """
    if input_shape is not None:
        input_shape = parse_input_shape(input_shape)
    return _checked(spec, input_shape, False, scale, overrides)[0]


def checked_report(spec: Any, input_shape: Any, report: Report | None) -> tuple[Report, tuple[int, ...] | None]:
    """The valid Report a command works from, and the parsed input shape: `report` when the caller
    has one (checked once), else the spec loaded and checked here (sizes may stay dynamic).

    Raises SpecError for an invalid spec, InputError for a `report` that is not a Report or a bad shape.
    """
    if input_shape is not None:
        input_shape = parse_input_shape(input_shape)
    if report is None:
        report = load_and_check(spec, input_shape, require_size=False)
    elif not isinstance(report, Report):
        raise InputError(f"report must be the Report of convspec.check, not {type(report).__name__}")
    report.raise_for_errors()
    return report, input_shape


def report_for_input(spec: Any, input_shape: Any, *, scale: str | None = None, overrides: Any = None) -> Report:
    """The valid Report of `spec` (sizes may stay dynamic) at `input_shape` (NCHW..., or None), to verify a file at.

    Raises SpecError where the spec itself is wrong, InputError (a usage error) where it checks
    at its own size but does not take `input_shape`, naming what breaks.
    """
    report = load_and_check(spec, input_shape, require_size=False, scale=scale, overrides=overrides)
    if not report.valid and input_shape is not None:
        if load_and_check(spec, None, require_size=False, scale=scale, overrides=overrides).valid:
            shown = "x".join(map(str, parse_input_shape(input_shape)))
            raise InputError([Problem(f"--input {shown} does not fit the spec: {p.message}", p.location, p.layer) for p in report.errors])
    report.raise_for_errors()
    return report


def checked_with_target(
    spec: Any,
    input_shape: tuple[int, ...] | str | None = None,
    *,
    target: str | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_size: bool | None = None,
    scale: str | None = None,
    overrides: Any = None,
) -> Report:
    """`check` without its last step: shape problems stay in `Report.errors` (the CLI prints them).

    Schema problems raise SpecError (listing the shape problems of the valid layers too). With
    `target="onnx"`, the layers that cannot be exported to ONNX `opset` are listed in
    `Report.errors` too. `scale` and `overrides` are `convspec.load`'s: a preset of the spec's
    `scales:`, and values set as `--set` does.
    """
    if target not in (None, "onnx"):
        raise InputError(f"unknown target {target!r}; the one target is 'onnx'")
    if target and (exact_int(opset) is None or not MIN_OPSET <= opset <= MAX_OPSET):
        raise InputError(f"--opset {opset!r} is out of range; use {MIN_OPSET} to {MAX_OPSET}")
    report = load_and_check(spec, input_shape, scale=scale, overrides=overrides)
    if target == "onnx":
        dynamic = report.spec.input.size is None if dynamic_size is None else dynamic_size
        found = export_limit_problems(report, ExportTarget(opset, dynamic))
        report.errors = sorted([*report.errors, *found], key=lambda p: (p.location.line or 0, p.location.column or 0))
    return report


def check(
    spec: Any,
    input_shape: tuple[int, ...] | str | None = None,
    *,
    target: str | None = None,
    opset: int = DEFAULT_OPSET,
    dynamic_size: bool | None = None,
    scale: str | None = None,
    overrides: Any = None,
) -> Report:
    """Load (if needed) and check a spec: every layer's shape, parameters, MACs and receptive field.

    Returns the Report of a valid spec; any fault of the spec raises SpecError listing every
    problem at once (keys and values, shapes, and with `target="onnx"` what ONNX `opset`
    cannot express: spatial sizes dynamic when the spec has no `input.size`, or with
    `dynamic_size`), each located at the key to change, as `convspec check` prints them.
    When the spec could be traced, `SpecError.report` holds that (invalid) report.
    Raises InputError for an unknown target, an opset out of range or a bad `input_shape`.
    `scale` and `overrides` are `convspec.load`'s: a preset of the spec's `scales:`, and values
    set as `--set` does.
    """
    report = checked_with_target(
        spec, input_shape, target=target, opset=opset, dynamic_size=dynamic_size, scale=scale, overrides=overrides
    )
    if report.errors:
        error = SpecError(report.errors)
        error.report = report
        raise error
    return report
