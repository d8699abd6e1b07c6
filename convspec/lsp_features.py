"""The editor features, as plain data: hover text, inlay hints, outline, completion, definition and references.

Each function reads the current text's `SpanIndex` (where things are now, even in broken
YAML) and the last `Analysis` that had a report (what the checker computed). The two are
joined by node path, and only where the layer there still has the same name, so figures
never land on the wrong layer while the text is mid-edit. No torch, no pygls: `lsp.py`
turns these results into LSP messages.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from .geometry import format_shape
from .kernels import NAMED_FILTERS
from .lsp_analysis import Analysis, LayerFigures, NodePath, Point, Span, SpanIndex, index_spans
from .report import LayerReport
from .report_view import format_figures
from .shapes import DIM_NAMES
from .templates import LAYER_LIST_KEYS, USE_KEYS

SHOWN_INSTANCES = 6  # a template used more often lists this many of its instances


def figures_at(spans: SpanIndex, good: Analysis | None, path: NodePath) -> list[LayerFigures]:
    """The traced layers written at `path` now, from the last good analysis (none if the layer there changed)."""
    if good is None or path not in good.layers:
        return []
    if spans is not good.spans and spans.layer_name(path) != good.spans.layer_name(path):
        return []
    return good.layers[path]


# ---------------------------------------------------------------- hover


def _padding(plan: Any, dims: int) -> str | None:
    """A conv's or pool's padding as resolved, `[[before, after], ...]` per spatial dim, or None."""
    geometry = getattr(plan, "geometry", None) or getattr(getattr(plan, "depthwise", None), "geometry", None)
    if geometry is not None:
        pairs = [list(pair) for pair in geometry.padding]
        text = f"{pairs} (before, after per dim {', '.join(DIM_NAMES[dims])})"
        if geometry.output_padding is not None:
            text = f"{pairs} cropped from the output, output_padding {list(geometry.output_padding)}"
        if geometry.padding_follows_size:
            text += f"; {geometry.auto_pad}: computed from each input's size"
        return text
    padding = getattr(plan, "padding", None)
    if isinstance(padding, tuple) and all(isinstance(p, int) for p in padding):
        return f"{[[p, p] for p in padding]} (before, after per dim {', '.join(DIM_NAMES[dims])})"
    return None


def _count_layers(layer: LayerReport) -> int:
    """The layers with no layers inside, under `layer` (a repeat's copies each counted)."""
    return sum(_count_layers(child) if child.children else 1 for child in layer.children)


def _params(layer: LayerReport) -> str:
    frozen = layer.params - layer.trainable_params
    return f"{layer.params:,} ({layer.trainable_params:,} trainable, {frozen:,} frozen)"


def _layer_hover(figures: list[LayerFigures], dims: int, block: str | None) -> str:
    first = figures[0].report
    used = f" (block `{block}`)" if block else ""
    lines = [f"**{figures[0].qualified}** · {first.type}{used}", ""]
    if len(figures) > 1:
        lines[0] = f"**{first.name}** · {first.type}{used}, {len(figures)} instances; figures of `{figures[0].qualified}`"
    rows = [
        ("input", ", ".join(format_shape(s) for s in first.input_shapes) or "?"),
        ("output", format_shape(first.output_shape)),
        ("parameters", _params(first)),
        ("MACs", f"{first.macs:,}"),
        ("receptive field", format_figures(first.receptive_field) or "?"),
        ("stride", format_figures(first.stride) or "?"),
    ]
    padding = _padding(first.plan, dims)
    if padding:
        rows.append(("padding", padding))
    if first.children:
        rows.append(("layers inside", f"{_count_layers(first):,}"))
    lines += [f"- {label}: {value}" for label, value in rows]
    if len(figures) > 1:
        lines += ["", "instances:"]
        lines += [f"- `{f.qualified}`: {format_shape(f.report.output_shape)}" for f in figures[:SHOWN_INSTANCES]]
        if len(figures) > SHOWN_INSTANCES:
            lines.append(f"- ... ({len(figures) - SHOWN_INSTANCES} more)")
    return "\n".join(lines)


def hover(spans: SpanIndex, good: Analysis | None, point: Point) -> tuple[str, Span] | None:
    """Markdown for the layer (or the input) under `point`, and the span it describes."""
    if good is None or good.report is None:
        return None
    report = good.report
    input_spans = [spans.keys.get(("input",)), spans.values.get(("input",))]
    if any(span is not None and point in span for span in input_spans):
        text = f"**input** {format_shape(report.input_shape)} (batch, channels, {', '.join(DIM_NAMES[report.spec.dims])})"
        return text, next(span for span in input_spans if span is not None)
    path = spans.layer_at(point)
    if path is None:
        return None
    figures = figures_at(spans, good, path)
    if not figures:
        return None
    block = spans.scalars.get(path + ("block",)) if spans.scalars.get(path + ("type",)) == "use" else None
    return _layer_hover(figures, report.spec.dims, block), spans.values[path]


# ---------------------------------------------------------------- inlay hints


def shape_label(figures: list[LayerFigures]) -> str | None:
    """'1x64x56x56'; a template's layer used with several shapes: 'first … last (N uses)'; None when unknown."""
    shapes = list(dict.fromkeys(f.report.output_shape for f in figures if f.report.output_shape is not None))
    if not shapes:
        return None
    if len(shapes) == 1:
        return format_shape(shapes[0]) + (f" ({len(figures)} uses)" if len(figures) > 1 else "")
    return f"{format_shape(shapes[0])} … {format_shape(shapes[-1])} ({len(figures)} uses)"


def inlay_hints(spans: SpanIndex, good: Analysis | None, lines: list[str], first: int, last: int) -> list[tuple[Point, str]]:
    """One hint per line from `first` to `last`: the output shape of the outermost layer starting there, at the line's end."""
    hints: dict[int, tuple[Point, str]] = {}
    for path in spans.layer_paths():
        line = spans.values[path].start[0]
        if not first <= line <= last or line in hints or line >= len(lines):
            continue
        label = shape_label(figures_at(spans, good, path))
        if label is not None:
            hints[line] = ((line, len(lines[line].rstrip())), f"→ {label}")
    return [hints[line] for line in sorted(hints)]


# ---------------------------------------------------------------- outline


@dataclass
class Outline:
    """One entry of the document's outline: a layer, a block template or the input."""

    name: str
    detail: str
    kind: str  # "layer", "container", "block" or "input"
    span: Span
    selection: Span
    children: list["Outline"] = field(default_factory=list)


def outline(spans: SpanIndex, good: Analysis | None) -> list[Outline]:
    """The layer tree (and block templates, and the input), nested as written."""
    roots: list[Outline] = []
    if ("input",) in spans.values and ("input",) in spans.keys:
        size = good and good.report and format_shape(good.report.input_shape)
        span = Span(spans.keys[("input",)].start, spans.values[("input",)].end)
        roots.append(Outline("input", size or "", "input", span, spans.keys[("input",)]))
    made: dict[NodePath, Outline] = {}
    for path in spans.layer_paths():
        span = spans.values[path]
        kind = spans.scalars.get(path + ("type",), "?")
        if path[:1] == ("blocks",) and len(path) == 2:
            entry = Outline(f"blocks.{path[1]}", f"template: {kind}", "block", Span(spans.keys[path].start, span.end), spans.keys[path])
        else:
            label = shape_label(figures_at(spans, good, path))
            selection = spans.values.get(path + ("name",), Span(span.start, span.start))
            if not (span.start <= selection.start and selection.end <= span.end):
                selection = Span(span.start, span.start)
            detail = kind + (f" {spans.scalars.get(path + ('block',), '')}" if kind == "use" else "") + (f" → {label}" if label else "")
            entry = Outline(spans.layer_name(path) or "?", detail, "layer", span, selection)
        parent = next((made[path[:i]] for i in range(len(path) - 1, 0, -1) if path[:i] in made), None)
        if parent is not None:
            parent.children.append(entry)
            if parent.kind == "layer":
                parent.kind = "container"
        else:
            roots.append(entry)
        made[path] = entry
    return roots


# ---------------------------------------------------------------- definition and references


def _enclosing_layer(path: NodePath) -> NodePath | None:
    """The layer that holds a node: the longest prefix that is an item of a layer list (or a template body)."""
    for i in range(len(path), 1, -1):
        prefix = path[:i]
        if (isinstance(prefix[-1], int) and prefix[-2] in LAYER_LIST_KEYS) or (len(prefix) == 2 and prefix[0] == "blocks"):
            return prefix
    return None


def _list_items(spans: SpanIndex, list_path: NodePath) -> list[NodePath]:
    items, index = [], 0
    while list_path + (index,) in spans.kinds:
        items.append(list_path + (index,))
        index += 1
    return items


@dataclass(frozen=True)
class Target:
    """What a name under the cursor stands for: a layer of a list, or a block template."""

    kind: str  # "layer" or "block"
    name: str
    list_path: NodePath = ()  # for a layer: the list it is in


def target_at(spans: SpanIndex, point: Point) -> Target | None:
    """The layer or block named at `point`: a `from` entry, `outputs` entry, a layer's `name`, a `block:` value or a template's key."""
    key = spans.key_at(point)
    if key is not None and len(key) == 2 and key[0] == "blocks":
        return Target("block", str(key[1]))
    path = spans.scalar_at(point)
    if path is None:
        return None
    value = spans.scalars.get(path)
    if value is None:
        return None
    if path[:1] == ("outputs",):
        return Target("layer", value.partition(".")[0], ("layers",))
    from_at = path.index("from") if "from" in path else None
    layer = _enclosing_layer(path[:from_at] if from_at is not None else path)
    if layer is None:
        return None
    if from_at is not None and path[:from_at] == layer:
        return Target("layer", value.partition(".")[0], layer[:-1])
    if path == layer + ("name",):
        return Target("layer", value, layer[:-1])
    if path == layer + ("block",) and spans.scalars.get(layer + ("type",)) == "use":
        return Target("block", value)
    return None


def definition(spans: SpanIndex, point: Point) -> Span | None:
    """Where the name under `point` is defined: the layer's `name` (or the layer, named by default), or the template's key."""
    target = target_at(spans, point)
    if target is None:
        return None
    if target.kind == "block":
        return spans.keys.get(("blocks", target.name))
    for item in _list_items(spans, target.list_path):
        if spans.layer_name(item) == target.name:
            return spans.values.get(item + ("name",), spans.values[item])
    return None


def references(spans: SpanIndex, point: Point, include_declaration: bool = True) -> list[Span]:
    """Every place the name under `point` is read (`from`, `outputs`, `block:`), and its definition if asked."""
    target = target_at(spans, point)
    if target is None:
        return []
    found: list[Span] = []
    if target.kind == "block":
        for path, value in spans.scalars.items():
            if path[-1] == "block" and value == target.name and spans.scalars.get(path[:-1] + ("type",)) == "use":
                found.append(spans.values[path])
    else:
        depth = len(target.list_path)  # a `from` of an item of the list: (*list, index, "from"[, entry])
        for path, value in spans.scalars.items():
            if (
                path[:depth] == target.list_path and depth + 2 <= len(path) <= depth + 3 and isinstance(path[depth], int)
                and path[depth + 1] == "from" and value.partition(".")[0] == target.name
            ):  # fmt: skip
                found.append(spans.values[path])
        if target.list_path == ("layers",):
            found += [spans.values[p] for p, v in spans.scalars.items() if p[:1] == ("outputs",) and v.partition(".")[0] == target.name]
    if include_declaration:
        declared = definition(spans, point)
        if declared is not None:
            found.insert(0, declared)
    return sorted(set(found), key=lambda s: s.start)


# ---------------------------------------------------------------- completion


@dataclass(frozen=True)
class Suggestion:
    """One completion: `kind` is "key", "type", "value", "layer" or "block"; `replace` the text it replaces."""

    label: str
    kind: str
    detail: str
    replace: Span
    insert: str


_WORD = re.compile(r"[\w.$-]*")
_WORD_BEFORE = re.compile(r"[\w.$-]*$")
_VALUE_OF = re.compile(r"([\w-]+)\s*:\s*(\[[^\]]*)?$")  # `key: ` or `key: [a, ` before the word
_KEY_START = re.compile(r"(^\s*(-\s+)*$)|([{,]\s*$)")


def _schema_properties(schema: dict, model: Any) -> dict:
    """The JSON-Schema properties of a pydantic model by key (the short aliases too), with descriptions and enums."""
    if model is None:
        return {}
    return _model_properties(model)


@functools.lru_cache(maxsize=None)  # a pure function of the model class: its schema is made once
def _model_properties(model: Any) -> dict:
    from .schema import KEY_ALIASES

    properties = dict(model.model_json_schema(by_alias=True).get("properties", {}))
    for short, longs in KEY_ALIASES.items():
        long = next((name for name in longs if name in properties), None)
        if long is not None and short not in properties:
            properties[short] = {**properties[long], "description": f"alias of `{long}`"}
    return properties


def _choices(prop: dict) -> list[str]:
    """The literal values a property takes (enums, consts, booleans), in the schema's order."""
    values: list[str] = []
    stack = [prop]
    while stack:
        node = stack.pop(0)
        if not isinstance(node, dict):
            continue
        values += [str(v).lower() if isinstance(v, bool) else str(v) for v in node.get("enum", []) if v is not None]
        if "const" in node and node["const"] is not None:
            values.append(str(node["const"]))
        if node.get("type") == "boolean":
            values += ["true", "false"]
        stack += node.get("anyOf", []) + node.get("oneOf", [])
    return list(dict.fromkeys(values))


def _model_of(spans: SpanIndex, mapping: NodePath) -> tuple[Any, list[str]]:
    """The model that validates the mapping at `mapping`, and extra keys it may have (a template's `params`)."""
    from . import schema as S
    from .kinds import registry

    extra: list[str] = []
    if mapping == ():
        return S.Spec, extra
    layer = _enclosing_layer(mapping)
    if layer == mapping:
        kind = spans.scalars.get(mapping + ("type",))
        if mapping[:1] == ("blocks",) and len(mapping) == 2:
            extra = ["params"]
        if kind == "use":
            return None, list(USE_KEYS)
        registered = registry.get(kind) if kind else None
        return (registered.model if registered else None), extra
    last = mapping[-1]
    return {"input": S.InputSpec, "init": S.InitSpec, "depthwise": S.StageSpec, "batch_norm": S.BatchNormDefaults}.get(last), extra


def _innermost(spans: SpanIndex, point: Point, kind: str) -> NodePath | None:
    """The deepest node of `kind` holding `point`; a block mapping only if `point` is not left of its keys."""
    best = None
    for path, node_kind in spans.kinds.items():
        if node_kind != kind or point not in spans.values[path]:
            continue
        start = spans.values[path].start
        if kind == "map" and start[0] < point[0] and point[1] < start[1]:
            continue  # a block mapping's keys sit at its start column: left of it is outside
        if best is None or len(path) > len(best):
            best = path
    return best


def completions(text: str, point: Point, schema: dict) -> list[Suggestion]:
    """What may be typed at `point`: keys of the mapping there, or values of the key before it.

    The word under the cursor is taken out and the rest re-read, so text broken by the
    half-typed word still gives its structure. `schema` is `convspec.json_schema()`.
    """
    lines = text.split("\n")
    if point[0] >= len(lines):
        return []
    line = lines[point[0]]
    column = min(point[1], len(line))
    start = _WORD_BEFORE.search(line[:column]).start()
    end = column + len(_WORD.match(line, column).group(0))
    replace = Span((point[0], start), (point[0], end))
    trial = "\n".join([*lines[: point[0]], line[:start] + line[end:], *lines[point[0] + 1 :]])
    spans = index_spans(trial)
    here = (point[0], start)
    before = line[:start]
    value_of = _VALUE_OF.search(before)
    if value_of:
        mapping = _innermost(spans, here, "map")
        if mapping is None:
            return []
        return _value_suggestions(spans, mapping, value_of.group(1), schema, replace)
    if not _KEY_START.search(before):
        return []
    mapping = _innermost(spans, here, "map")
    sequence = _innermost(spans, here, "seq")
    if sequence is not None and (mapping is None or len(sequence) > len(mapping)):
        if sequence and sequence[-1] in LAYER_LIST_KEYS:  # a new item of a layer list: a new layer
            return [Suggestion(k, "key", "layer key", replace, f"{k}: ") for k in ("type", "name", "from")]
        return []
    if mapping is None:
        mapping = ()
    present = {p[-1] for p in spans.keys if p[:-1] == mapping}
    if mapping[-1:] == ("with",) and spans.scalars.get(mapping[:-1] + ("type",)) == "use":  # the template's parameters
        params = ("blocks", spans.scalars.get(mapping[:-1] + ("block",)), "params")
        names = [str(p[-1]) for p in spans.keys if p[:-1] == params and p[-1] not in present]
        return [Suggestion(n, "key", f"parameter of block {params[1]}", replace, f"{n}: ") for n in names]
    model, extra = _model_of(spans, mapping)
    properties = _schema_properties(schema, model)
    keys = [k for k in [*properties, *extra] if k not in present]
    return [Suggestion(k, "key", properties.get(k, {}).get("description", ""), replace, f"{k}: ") for k in keys]


def _value_suggestions(spans: SpanIndex, mapping: NodePath, key: str, schema: dict, replace: Span) -> list[Suggestion]:
    from .kinds import registry

    def made(values, kind: str, detail: str = "") -> list[Suggestion]:
        return [Suggestion(v, kind, detail, replace, v) for v in values]

    layer = _enclosing_layer(mapping)
    if key == "type" and layer == mapping:
        return made([*registry, "use"], "type", "layer type")
    if key == "from" and layer == mapping and isinstance(mapping[-1], int):
        names = ["input"]
        for item in _list_items(spans, mapping[:-1])[: mapping[-1]]:
            name = spans.layer_name(item)
            if name is None:
                continue
            names.append(name)
            if spans.scalars.get(item + ("type",)) == "split":
                parts = spans.scalars.get(item + ("parts",))
                count = int(parts) if parts and parts.isdigit() else len(_list_items(spans, item + ("sizes",)))
                names += [f"{name}.{i}" for i in range(count)]
        return made(names, "layer", "an earlier layer")
    if key == "block":
        return made([str(p[1]) for p in spans.keys if len(p) == 2 and p[0] == "blocks"], "block", "block template")
    if key == "filter":
        return [Suggestion(name, "value", info.description, replace, name) for name, info in NAMED_FILTERS.items()]
    if key == "outputs" and mapping == ():
        return made([n for p in _list_items(spans, ("layers",)) if (n := spans.layer_name(p))], "layer", "a top-level layer")
    model, _ = _model_of(spans, mapping)
    return made(_choices(_schema_properties(schema, model).get(key, {})), "value", key)
