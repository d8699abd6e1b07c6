"""YAML loading that keeps every node's position and refuses what is unsafe or ambiguous.

PyYAML's composer gives a node tree with marks but constructs nothing, so no
tag can build an object or run code. We turn that tree into plain dicts,
lists and scalars ourselves, recording for every path (``("layers", 3,
"groups")``) where its key and its value sit in the text. Duplicate keys,
unknown tags, cyclic or exploding aliases and oversized files are errors with
a location, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, LayerRef, Location, Problem, SpecError

Path_ = tuple[Any, ...]  # a path into the data: str keys and int list indices

MAX_FILE_BYTES = 5 * 1024 * 1024  # specs are a few KB; anything near this is not a spec
MAX_NODES = 200_000  # counts nodes after alias expansion, so "billion laughs" stops early
MAX_DEPTH = 100  # a spec nests a few levels; this keeps far from Python's recursion limit

_STANDARD_TAGS = {
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


_TEXT_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}


@dataclass
class Source:
    """A spec's text and the position of everything in it."""

    file: str | None = None  # display name: a path, "<string>" or "<dict>"
    text: str | None = None
    data: Any = None  # the parsed plain data, before validation
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    value_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: Path_, prefer_value: bool = False) -> Location:
        """The position of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while True:
            first, second = (
                (self.value_positions, self.key_positions)
                if prefer_value
                else (self.key_positions, self.value_positions)
            )
            pos = first.get(path) or second.get(path)
            if pos is not None:
                return Location(self.file, pos[0], pos[1])
            if not path:
                return Location(self.file)
            path = path[:-1]


def layer_label(data: Any, path: tuple) -> tuple[tuple, LayerRef | None]:
    """The deepest layer on `path` and its label, e.g. ``layers[3].layers[0] 'g1' (group)``."""
    node, layer_path, label_parts, layer = data, (), [], None
    for i, part in enumerate(path):
        if isinstance(node, dict) and part in ("layers", "shortcut", "first") and i + 1 < len(path) and isinstance(path[i + 1], int):
            items = node[part]
            index = path[i + 1]
            if isinstance(items, list) and index < len(items):
                layer = items[index]
                layer_path = path[: i + 2]
                label_parts.append(f"{part}[{index}]")
        node = node.get(part) if isinstance(node, dict) else (node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None)
    if not label_parts:
        return (), None
    name = kind = None
    if isinstance(layer, dict):
        kind = layer.get("type") if isinstance(layer.get("type"), str) else None
        name = layer.get("name") if isinstance(layer.get("name"), str) else (f"{kind}_{layer_path[-1]}" if kind else None)
    return layer_path, LayerRef(".".join(label_parts), name, kind)


def _location(file: str | None, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(file)
    return Location(file, mark.line + 1, mark.column + 1)


class _Converter:
    """Node tree -> plain Python data, recording positions and collecting problems."""

    def __init__(self, source: Source):
        self.source = source
        self.problems: list[tuple[Path_, Problem]] = []  # labelled with their layer once the data is whole
        self.nodes_seen = 0
        # A SafeLoader only to reuse its scalar resolution (ints, floats, bools, null).
        self._scalars = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, path: Path_, active: frozenset[int]) -> Any:
        self.nodes_seen += 1
        if self.nodes_seen > MAX_NODES:
            raise SpecError(
                [
                    Problem(
                        f"the YAML expands to more than {MAX_NODES:,} nodes through its aliases; a spec is far smaller than that",
                        _location(self.source.file, node.start_mark),
                    )
                ]
            )
        if len(path) > MAX_DEPTH:
            raise SpecError(
                [Problem(f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", _location(self.source.file, node.start_mark))]
            )
        if id(node) in active:
            raise SpecError(
                [Problem("an alias refers to itself (a cyclic YAML structure)", _location(self.source.file, node.start_mark))]
            )
        self.source.value_positions.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.ScalarNode) and node.tag in _TEXT_TAGS:
            return node.value  # `2020-01-01` or `=`: YAML 1.1 resolves these implicitly; a spec wants the text
        if node.tag not in _STANDARD_TAGS:
            message = f"the YAML tag {node.tag!r} is not allowed: a spec holds plain mappings, lists, numbers and strings"
            self.problems.append((path, Problem(message, self.source.locate(path))))
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, active | {id(node)})
        if isinstance(node, yaml.SequenceNode):
            inner = active | {id(node)}
            return [self.convert(item, path + (i,), inner) for i, item in enumerate(node.value)]
        try:
            return self._scalars.construct_object(node, deep=True)
        except yaml.YAMLError as err:
            self.problems.append((path, Problem(f"cannot read this value: {err}", self.source.locate(path))))
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path_, active: frozenset[int]) -> dict:
        own_keys: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(key_node, path)
            if key in own_keys:
                first = own_keys[key].start_mark
                message = f"duplicate key {key!r} (first given at line {first.line + 1}, column {first.column + 1}); keep one of them"
                self.problems.append((path + (key,), Problem(message, _location(self.source.file, key_node.start_mark))))
            else:
                own_keys[key] = key_node
        # `<<: *base` merges are allowed; the mapping's own keys win over merged ones.
        try:
            self._scalars.flatten_mapping(node)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None) or node.start_mark
            message = "`<<` merges a mapping (or a list of mappings) into this one; " + (getattr(err, "problem", None) or "this is neither")
            self.problems.append((path, Problem(message, _location(self.source.file, mark))))
            node.value = [(k, v) for k, v in node.value if not (isinstance(k, yaml.ScalarNode) and k.tag == "tag:yaml.org,2002:merge")]
        result: dict = {}
        for key_node, value_node in node.value:
            key = self._key(key_node, path, report=False)
            if key is None:  # an unusable key, already reported
                continue
            child = path + (key,)
            self.source.key_positions[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = self.convert(value_node, child, active)
        return result

    def _key(self, key_node: yaml.Node, path: Path_, report: bool = True) -> Any:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _STANDARD_TAGS | _TEXT_TAGS:
            if report:
                message = (
                    "a mapping key must be a plain name, not a list or mapping"
                    if not isinstance(key_node, yaml.ScalarNode)
                    else f"the YAML tag {key_node.tag!r} is not allowed on a key"
                )
                self.problems.append((path, Problem(message, _location(self.source.file, key_node.start_mark))))
            return None
        value = self._scalars.construct_object(key_node)
        # YAML 1.1 reads unquoted `on`/`yes`/1 keys as bools/ints: keys are names, keep their text.
        return value if isinstance(value, str) else key_node.value


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when present: ~7x faster
_NODE_EVENTS = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.AliasEvent)


def _position_of(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _yaml_problem(err: yaml.YAMLError, text: str, file: str | None) -> Problem:
    if isinstance(err, yaml.reader.ReaderError):  # a character YAML does not allow; it knows only the offset
        line, column = _position_of(text, err.position)
        return Problem(f"the character {err.character!r} is not allowed in YAML text", Location(file, line, column))
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        what = err.problem or err.context or "invalid YAML"
        if "'\\t'" in what:  # PyYAML's own words for a tab are cryptic
            return Problem("a tab character is not allowed here; YAML indents with spaces only", _location(file, mark))
        return Problem(f"YAML syntax error: {what}", _location(file, mark))
    return Problem(f"YAML syntax error: {str(err).splitlines()[0] if str(err) else type(err).__name__}", Location(file))


def parse_yaml(text: str, file: str | None = "<string>") -> tuple[Any, Source]:
    """Parse YAML text into plain data and its `Source` (positions). Raises SpecError with every problem found."""
    source = Source(file=file, text=text)
    try:
        # Count nodes on the parser's event stream first: a huge document stops here, in
        # moments, instead of after a slow build of every node.
        nodes = 0
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, _NODE_EVENTS):
                nodes += 1
                if nodes > MAX_NODES:
                    raise SpecError(
                        [Problem(f"the YAML has more than {MAX_NODES:,} nodes; a spec is far smaller than that", _location(file, event.start_mark))]
                    )
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise SpecError([_yaml_problem(err, text, file)]) from None
    except RecursionError:
        raise SpecError([Problem(f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", Location(file))]) from None
    if node is None:
        raise SpecError([Problem("the spec is empty; it needs at least `input` and `layers`", Location(file, 1, 1))])
    converter = _Converter(source)
    data = converter.convert(node, (), frozenset())
    if converter.problems:
        labelled = [Problem(p.message, p.location, layer_label(data, path)[1]) for path, p in converter.problems]
        raise SpecError(labelled)
    source.data = data
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        raise SpecError(
            [Problem(f"the top level of a spec must be a mapping (input:, layers:, ...), not a {kind}", _location(file, node.start_mark))]
        )
    return data, source


def read_spec_file(path: str | Path) -> tuple[Any, Source]:
    """Read and parse a spec file. Missing, unreadable, oversized or non-UTF-8 files are clear errors."""
    path = Path(path)
    shown = str(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{shown}: no such file") from None
    except OSError as err:
        raise InputError(f"{shown}: cannot read: {err.strerror or err}") from None
    if path.is_dir():
        raise InputError(f"{shown}: is a directory, not a spec file")
    if not path.is_file():  # a device, FIFO or socket: may never end, or never answer
        raise InputError(f"{shown}: not a regular file")
    too_big = Problem(f"the file is over {MAX_FILE_BYTES:,} bytes, the most a spec may be", Location(shown))
    if size > MAX_FILE_BYTES:
        raise SpecError([too_big])
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # never trust the size alone: the file may grow
    except OSError as err:
        raise InputError(f"{shown}: cannot read: {err.strerror or err}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError([too_big])
    return parse_yaml(decode_spec_bytes(raw, shown), file=shown)


def decode_spec_bytes(raw: bytes, shown: str) -> str:
    """UTF-8 (a BOM allowed) or a clear error at the first bad byte."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SpecError([Problem("the file is UTF-16 text; save it as UTF-8", Location(shown, 1, 1))])
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        line = raw[:offset].count(b"\n") + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        raise SpecError([Problem("this is a binary file, not a YAML spec (it contains NUL bytes)", Location(shown, line, column))])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        col = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise SpecError(
            [Problem(f"the file is not UTF-8 text (byte 0x{raw[err.start]:02x} cannot be decoded)", Location(shown, line, col))]
        ) from None


def looks_like_yaml_text(value: str) -> bool:
    """A string argument is YAML text (not a path) when it has a newline or a top-level `key:`."""
    return "\n" in value or (":" in value and not Path(value).suffix in {".yaml", ".yml"})
