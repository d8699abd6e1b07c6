"""What the language server knows of one document: its problems, its report and where every node is. No torch, no pygls.

`analyse(text, path)` runs the checker exactly as `convspec check` does (read, validate,
trace; when some layers are invalid, the rest are traced from the partial spec) and
returns an `Analysis`: every problem, the `Report` when one could be made, and a
`SpanIndex` of the text. The server keeps the last analysis that had a report, so hover
and inlay hints keep working while the YAML is broken mid-typing.

Positions here are 0-based lines and code-point columns (libyaml's marks); the server
converts them to the client's units (UTF-16 by default) in one place, `lsp.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, Location, Problem, SpecError
from .kinds import ExportTarget, export_limit_problems
from .opsets import DEFAULT_OPSET
from .report import LayerReport, Report
from .source import parse_yaml
from .templates import LAYER_LIST_KEYS

Point = tuple[int, int]  # (line, column), 0-based, column in code points
NodePath = tuple[Any, ...]  # as Source's: str keys and int list indices

# A spec says so: the yaml-language-server schema line names convspec's schema, or a top-level
# `convspec:` key gives the format version, or the file is named *.convspec.yaml.
_SCHEMA_LINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=\S*convspec", re.MULTILINE)
_VERSION_KEY = re.compile(r"^convspec\s*:", re.MULTILINE)
_SPEC_SUFFIXES = (".convspec.yaml", ".convspec.yml")


def is_spec_document(text: str, path: str | None = None) -> bool:
    """Whether a YAML document is a convspec spec (and not some other YAML the editor opened)."""
    if path and path.lower().endswith(_SPEC_SUFFIXES):
        return True
    return bool(_SCHEMA_LINE.search(text) or _VERSION_KEY.search(text))


# ---------------------------------------------------------------- where nodes are


@dataclass(frozen=True)
class Span:
    """A stretch of text: `start` inclusive, `end` exclusive."""

    start: Point
    end: Point

    def __contains__(self, point: Point) -> bool:
        return self.start <= point <= self.end  # the end too: a cursor just after a word is on it


@dataclass
class SpanIndex:
    """Every node of a YAML text by path: its value's span and kind, its key's span, scalar texts.

    Built from the parser's events, so it holds what was read before a syntax error too.
    """

    values: dict[NodePath, Span] = field(default_factory=dict)
    keys: dict[NodePath, Span] = field(default_factory=dict)
    kinds: dict[NodePath, str] = field(default_factory=dict)  # "map", "seq" or "scalar"
    scalars: dict[NodePath, str] = field(default_factory=dict)
    complete: bool = True  # False when a syntax error stopped the reading

    def layer_paths(self) -> list[NodePath]:
        """The written layers, in text order: mappings in a `layers`/`shortcut`/`first` list, and block templates."""
        paths = [
            path
            for path, kind in self.kinds.items()
            if kind == "map"
            and (
                (len(path) >= 2 and isinstance(path[-1], int) and path[-2] in LAYER_LIST_KEYS)
                or (len(path) == 2 and path[0] == "blocks" and isinstance(path[1], str))
            )
        ]
        return sorted(paths, key=lambda p: self.values[p].start)

    def layer_at(self, point: Point) -> NodePath | None:
        """The innermost written layer whose text holds `point`."""
        inside = [p for p in self.layer_paths() if point in self.values[p]]
        return max(inside, key=len) if inside else None

    def scalar_at(self, point: Point) -> NodePath | None:
        """The path of the scalar value (or key: then the path it names) under `point`."""
        for path, span in self.values.items():
            if self.kinds[path] == "scalar" and point in span:
                return path
        return None

    def key_at(self, point: Point) -> NodePath | None:
        for path, span in self.keys.items():
            if point in span:
                return path
        return None

    def layer_name(self, path: NodePath) -> str | None:
        """A written layer's name: its `name`, else the default `<type>_<index>`; template bodies by their block name."""
        name = self.scalars.get(path + ("name",))
        if name is not None:
            return name
        kind = self.scalars.get(path + ("type",))
        if isinstance(path[-1], int) and kind is not None:
            return f"{kind}_{path[-1]}"
        return str(path[-1]) if path[:1] == ("blocks",) and len(path) == 2 else None


def _point(mark: yaml.Mark) -> Point:
    return mark.line, mark.column


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NO_KEY = object()


def index_spans(text: str) -> SpanIndex:
    """The `SpanIndex` of `text`; on a syntax error, of what came before it (open nodes end at the text's end)."""
    index = SpanIndex()
    stack: list[list] = []  # [path, kind, pending key, next item index, start]
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                path, _, _, _, start = stack.pop()
                index.values[path] = Span(start, _point(event.end_mark))
                continue
            if not isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                continue
            if stack and stack[-1][1] == "map" and stack[-1][2] is _NO_KEY:  # this node is a key
                key = event.value if isinstance(event, yaml.ScalarEvent) else "?"
                stack[-1][2] = key
                index.keys[stack[-1][0] + (key,)] = Span(_point(event.start_mark), _point(event.end_mark))
                if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                    stack.append([("?",), "skip", _NO_KEY, 0, _point(event.start_mark)])  # a complex key: not indexed
                continue
            if stack and stack[-1][1] == "map":
                path = stack[-1][0] + (stack[-1][2],)
                stack[-1][2] = _NO_KEY
            elif stack:
                path = stack[-1][0] + (stack[-1][3],)
                stack[-1][3] += 1
            else:
                path = ()
            start = _point(event.start_mark)
            if isinstance(event, yaml.MappingStartEvent):
                stack.append([path, "map", _NO_KEY, 0, start])
                index.kinds[path] = "map"
            elif isinstance(event, yaml.SequenceStartEvent):
                stack.append([path, "seq", _NO_KEY, 0, start])
                index.kinds[path] = "seq"
            else:
                index.values[path] = Span(start, _point(event.end_mark))
                index.kinds[path] = "scalar"
                if isinstance(event, yaml.ScalarEvent):
                    index.scalars[path] = event.value
    except yaml.YAMLError:
        index.complete = False
        lines = text.split("\n")
        end = (len(lines) - 1, len(lines[-1]))
        for path, _, _, _, start in stack:
            index.values.setdefault(path, Span(start, end))
    for table in (index.values, index.keys, index.kinds, index.scalars):  # inside complex keys: no path of a spec
        for path in [p for p in table if p[:1] == ("?",)]:
            del table[path]
    return index


# ---------------------------------------------------------------- the checker's view


@dataclass(frozen=True)
class LayerFigures:
    """One traced layer as the editor shows it: `qualified` is its state_dict prefix (`layer1.0.block.conv1`)."""

    qualified: str
    report: LayerReport


@dataclass
class Analysis:
    """One version of a document as the checker sees it."""

    text: str
    path: str
    spans: SpanIndex
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # export limits: `convspec export` would refuse these layers
    report: Report | None = None
    # every traced layer by the path of the node written for it (a template's layer: all its instances)
    layers: dict[NodePath, list[LayerFigures]] = field(default_factory=dict)


def analyse(text: str, path: str, opset: int = DEFAULT_OPSET) -> Analysis:
    """Check `text` (the spec at `path`) as `convspec check` would; never raises for a spec's faults.

    Sizes may stay dynamic (`input.size` omitted): the editor shows `?` where `check` would
    ask for `--input`. Layers that cannot be exported to ONNX `opset` are warnings.
    """
    analysis = Analysis(text, path, index_spans(text))
    try:
        spec = _load(text, path)
    except SpecError as err:
        analysis.errors = list(err.problems)
        if err.partial is not None:
            try:
                partial = _check(err.partial)
            except (SpecError, InputError):
                return analysis
            known = set(analysis.errors)
            analysis.errors += [p for p in partial.errors if p not in known]
            _attach(analysis, partial)
        return analysis
    except InputError as err:  # a base spec (`extends`) that cannot be read
        analysis.errors = list(err.problems)
        return analysis
    report = _check(spec)
    analysis.errors = list(report.errors)
    if not report.errors:
        analysis.warnings = export_limit_problems(report, ExportTarget(opset, spec.input.size is None))
    _attach(analysis, report)
    return analysis


def _load(text: str, path: str):
    """The validated spec of `text`, the one place a document becomes a Spec: `parse_spec` merges
    an `extends` base, found relative to `path`, whose problems are located in the base's file."""
    from .loading import parse_spec

    data, source = parse_yaml(text, file=path)
    spec = parse_spec(data, source)
    if spec.name is None:
        spec.name = Path(path).stem
    return spec


def _check(spec) -> Report:
    from .trace import check_spec

    return check_spec(spec, require_size=False)


def _attach(analysis: Analysis, report: Report) -> None:
    """Keep `report` and file each traced layer under the written node it came from (matched by start position)."""
    analysis.report = report
    source = report.spec.source
    written = {analysis.spans.values[p].start: p for p in analysis.spans.layer_paths()}
    for layer, qualified in _walk(report.layers, ""):
        if layer.role != "layer":
            continue  # a repeat's copies and a residual's shortcut list have no node of their own
        position = source.value_positions.get(layer.path)
        if position is None or (len(position) > 2 and position[2] != analysis.path):
            continue  # written in another file (a position may name its file): no node here
        node = written.get((position[0] - 1, position[1] - 1))
        if node is not None:
            analysis.layers.setdefault(node, []).append(LayerFigures(qualified, layer))


def _walk(layers: list[LayerReport], prefix: str):
    for layer in layers:
        qualified = f"{prefix}{layer.name}"
        yield layer, qualified
        yield from _walk(layer.children, qualified + ".")


def problem_file(problem: Problem, default: str) -> str:
    """The file a problem is in: its location's, or the document's when it names none."""
    file = problem.location.file
    return file if file and not file.startswith("<") else default


def problem_start(problem: Problem) -> Point:
    """Where a problem is, 0-based (the top of the file when it has no line)."""
    location: Location = problem.location
    return (location.line - 1 if location.line else 0, location.column - 1 if location.column else 0)
