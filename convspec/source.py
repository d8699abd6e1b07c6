"""YAML loading that keeps every node's position and refuses what is unsafe or ambiguous.

PyYAML's parser gives events with marks but constructs nothing, so no
tag can build an object or run code. We turn those events into plain dicts,
lists and scalars ourselves, recording for every path (``("layers", 3,
"groups")``) where its key and its value sit in the text. Duplicate keys,
unknown tags, cyclic or exploding aliases and oversized files are errors with
a location, never a traceback.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import InputError, LayerRef, Location, Problem, SpecError, first_line, quote, shorten

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
_STR_TAG, _FLOAT_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:float"
# YAML 1.2 core schema floats that YAML 1.1 leaves as text: an exponent without a dot (`1e-3`, `5E+2`)
_YAML12_FLOAT = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")


_TEXT_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"}
_KEY_TAGS = _STANDARD_TAGS | _TEXT_TAGS


@dataclass
class Source:
    """A spec's text and the position of everything in it."""

    file: str | None = None  # display name: a path, "<string>" or "<dict>"
    text: str | None = None
    data: Any = None  # the parsed plain data, before validation
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    value_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    templates: dict[Path_, str] = field(default_factory=dict)  # block template of each `use` layer, by its expanded path
    # the data is no longer what `text` says: a base merged (`extends`), `--set` overrides or a scale applied
    derived: bool = False

    def at(self, pos: tuple | None) -> Location:
        """A recorded position as a Location: `(line, column)` in this file, or `(line, column, file)`
        for a value that came from elsewhere (a base spec of `extends`, a `--set` on the command line)."""
        if pos is None:
            return Location(self.file)
        return Location(pos[2] if len(pos) > 2 else self.file, pos[0], pos[1])

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
                return self.at(pos)
            if not path:
                return Location(self.file)
            path = path[:-1]


def layer_label(data: Any, path: tuple) -> tuple[tuple, LayerRef | None]:
    """The deepest layer on `path` and its label, e.g. ``layers[3].layers[0] 'g1' (group)``."""
    node, layer_path, label_parts, layer = data, (), [], None
    for i, part in enumerate(path):
        if isinstance(node, dict) and part in ("layers", "shortcut", "first") and i + 1 < len(path) and isinstance(path[i + 1], int):
            items = node.get(part)
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


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when present: ~7x faster
_NODE_EVENTS = (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.AliasEvent)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_MERGE = object()  # what `_key` returns for a `<<` merge key
_UNREADABLE = (yaml.YAMLError, ValueError, KeyError, TypeError, OverflowError)  # `!!int abc`, `!!bool maybe`


class _Events:
    """The parser's events, pulled one at a time and counted; kept only while an anchored node is open."""

    replay = False

    def __init__(self, events, file: str | None):
        self._events = iter(events)
        self._file = file
        self.count = 0
        self.recordings: list[list[yaml.Event]] = []  # the events of each anchored node still open

    def next(self) -> yaml.Event:
        event = next(self._events)
        if isinstance(event, _NODE_EVENTS):
            self.count += 1
            if self.count > MAX_NODES:
                # counted as the parser goes, so a huge document stops here, in moments
                message = f"the YAML has more than {MAX_NODES:,} nodes; a spec is far smaller than that"
                raise SpecError([Problem(message, _location(self._file, event.start_mark))])
        for recording in self.recordings:
            recording.append(event)
        return event


class _Replay:
    """An anchored node's events again, for an alias."""

    replay = True

    def __init__(self, events: list[yaml.Event]):
        self._events = iter(events)

    def next(self) -> yaml.Event:
        return next(self._events)


class _Reader:
    """The parser's events -> plain Python data, recording positions and collecting problems.

    One pass over the events, with no node tree: a 10,000-layer spec never holds hundreds of
    thousands of node and mark objects at once (whose garbage collection made reading
    superlinear). Nesting, nodes after alias expansion and cycles are bounded as it goes.
    """

    def __init__(self, source: Source):
        self.source = source
        self.keys, self.values = source.key_positions, source.value_positions  # swapped while a `<<` is read
        self.problems: list[tuple[Path_, Problem]] = []  # labelled with their layer once the data is whole
        self.nodes = 0  # after alias expansion
        self.aliased = False
        self.anchors: dict[str, list[yaml.Event] | None] = {}  # None while the anchored node is still open
        # A SafeLoader only to reuse its tag resolution and scalar constructors (ints, floats, bools, null).
        self._loader = yaml.SafeLoader("")
        self._scalars: dict[tuple, tuple[str, Any, str | None]] = {}

    def _at(self, mark: yaml.Mark) -> Location:
        return _location(self.source.file, mark)

    def _problem(self, path: Path_, message: str, mark: yaml.Mark) -> None:
        self.problems.append((path, Problem(message, self._at(mark))))

    def document(self, events: _Events) -> tuple[Any, yaml.Mark | None]:
        """The one document's data and where it starts; (None, None) for an empty stream."""
        events.next()  # StreamStartEvent
        event = events.next()
        if isinstance(event, yaml.StreamEndEvent):
            return None, None
        first = events.next()  # after DocumentStartEvent
        data = self.node(first, events, (), 0)
        events.next()  # DocumentEndEvent
        event = events.next()
        if isinstance(event, yaml.DocumentStartEvent):
            message = "a second YAML document starts here; a spec is one document (drop the `---` and what follows)"
            raise SpecError([Problem(message, self._at(event.start_mark))])
        return data, first.start_mark

    # ------------------------------------------------------------ nodes

    def _anchor(self, event: yaml.Event, events) -> list[yaml.Event] | None:
        """Open the recording of an anchored node (its first event given); None if it has no anchor."""
        anchor = getattr(event, "anchor", None)
        if anchor is None or events.replay:
            return None
        if anchor in self.anchors:
            message = f"the anchor &{shorten(anchor)} is defined twice; give each anchor its own name"
            self._problem((), message, event.start_mark)
            return None
        self.anchors[anchor] = None
        recording = [event]
        if not isinstance(event, yaml.ScalarEvent):
            events.recordings.append(recording)
        return recording

    def _close(self, event: yaml.Event, recording: list[yaml.Event] | None, events) -> None:
        if recording is None:
            return
        if not isinstance(event, yaml.ScalarEvent):
            events.recordings.remove(recording)
        self.anchors[event.anchor] = recording

    def _aliased(self, event: yaml.AliasEvent, path: Path_) -> _Replay | None:
        """The events an alias stands for, or None (the problem recorded)."""
        recording = self.anchors.get(event.anchor, False)
        if recording is False:
            self._problem(path, f"the alias *{shorten(event.anchor)} refers to no anchor (&{shorten(event.anchor)}) before it", event.start_mark)
            return None
        if recording is None:
            self._problem(path, "an alias refers to itself (a cyclic YAML structure)", event.start_mark)
            return None
        self.aliased = True
        return _Replay(recording)

    def node(self, event: yaml.Event, events, path: Path_, depth: int) -> Any:
        """The data of the node that starts with `event`, read from `events` up to its end."""
        if isinstance(event, yaml.AliasEvent):
            replay = self._aliased(event, path)
            return None if replay is None else self.node(replay.next(), replay, path, depth)
        self.nodes += 1
        if self.nodes > MAX_NODES:  # only aliases make more nodes than events, which are counted first
            message = f"the YAML expands to more than {MAX_NODES:,} nodes through its aliases; a spec is far smaller than that"
            raise SpecError([Problem(message, self._at(event.start_mark))])
        if depth > MAX_DEPTH:
            raise SpecError([Problem(f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", self._at(event.start_mark))])
        mark = event.start_mark
        self.values.setdefault(path, (mark.line + 1, mark.column + 1))
        recording = self._anchor(event, events) if event.anchor is not None else None
        if type(event) is yaml.ScalarEvent:
            value = self._scalar(event, path)
        else:
            tag = event.tag
            if tag is None or tag == "!":
                kind = yaml.MappingNode if isinstance(event, yaml.MappingStartEvent) else yaml.SequenceNode
                tag = self._loader.resolve(kind, None, event.implicit)
            if tag not in _STANDARD_TAGS:
                self._bad_tag(tag, path)
                _skip(event, events)
                value = None
            elif isinstance(event, yaml.MappingStartEvent):
                value = self._mapping(events, path, depth)
            else:
                value = []
                while not isinstance(item := events.next(), yaml.SequenceEndEvent):
                    value.append(self.node(item, events, path + (len(value),), depth + 1))
        if recording is not None:
            self._close(event, recording, events)
        return value

    def _bad_tag(self, tag: str, path: Path_) -> None:
        message = f"the YAML tag {quote(tag)} is not allowed: a spec holds plain mappings, lists, numbers and strings"
        self.problems.append((path, Problem(message, self.source.locate(path))))

    def _resolve(self, event: yaml.ScalarEvent) -> tuple[str, Any, str | None]:
        """A scalar's tag, its value, and why it cannot be read (or None); the same text is resolved once."""
        key = (event.tag, event.value, event.implicit)
        known = self._scalars.get(key)
        if known is not None:
            return known
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._loader.resolve(yaml.ScalarNode, event.value, event.implicit)
            if tag == _STR_TAG and not event.style and _YAML12_FLOAT.fullmatch(event.value):  # plain, not quoted
                # `1e-3`: a float in YAML 1.2 (and JSON), text in PyYAML's YAML 1.1 (which wants `1.0e-3`)
                self._scalars[key] = result = (_FLOAT_TAG, float(event.value), None)
                return result
        value, error = event.value, None  # `2020-01-01` or `=`: YAML 1.1 resolves these implicitly; a spec wants the text
        if tag in _STANDARD_TAGS:
            node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
            try:  # the constructor itself: `construct_object` would keep every node in its cache
                value = self._loader.yaml_constructors[tag](self._loader, node)
            except _UNREADABLE as err:
                value, error = None, getattr(err, "problem", None) or first_line(err)
        self._scalars[key] = (tag, value, error)  # values are immutable: str, int, float, bool, None
        return tag, value, error

    def _scalar(self, event: yaml.ScalarEvent, path: Path_) -> Any:
        tag, value, error = self._scalars.get((event.tag, event.value, event.implicit)) or self._resolve(event)
        if tag in _TEXT_TAGS:
            return value
        if tag not in _STANDARD_TAGS:
            self._bad_tag(tag, path)
            return None
        if error is not None:
            self.problems.append((path, Problem(f"cannot read this value as {tag.rsplit(':', 1)[-1]}: {error}", self.source.locate(path))))
        return value

    def _key(self, event: yaml.Event, events, path: Path_) -> tuple[Any, yaml.Mark]:
        """A mapping key's text (`_MERGE` for `<<`, None when unusable, reported) and where it is."""
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            recording = self.anchors.get(event.anchor)
            if recording and isinstance(recording[0], yaml.ScalarEvent):
                event = recording[0]  # an aliased scalar is a key like any other (at the anchor, as PyYAML has it)
                mark = event.start_mark
            elif recording:
                self._problem(path, "a mapping key must be a plain name, not a list or mapping", mark)
                return None, mark
            else:
                self._aliased(event, path)  # reports it
                return None, mark
        elif not isinstance(event, yaml.ScalarEvent):
            self._problem(path, "a mapping key must be a plain name, not a list or mapping", mark)
            _skip(event, events)
            return None, mark
        elif event.anchor is not None:
            self._close(event, self._anchor(event, events), events)
        tag, value, _ = self._scalars.get((event.tag, event.value, event.implicit)) or self._resolve(event)
        if tag == _MERGE_TAG:
            return _MERGE, mark
        if tag not in _KEY_TAGS:
            self._problem(path, f"the YAML tag {quote(tag)} is not allowed on a key", mark)
            return None, mark
        # YAML 1.1 reads unquoted `on`/`yes`/1 keys as bools/ints: keys are names, keep their text.
        return value if isinstance(value, str) else event.value, mark

    def _mapping(self, events, path: Path_, depth: int) -> dict:
        result: dict = {}
        first_at: dict[Any, yaml.Mark] = {}
        merged: list[tuple[dict, dict, dict]] = []  # each `<<` source: (data, key positions, value positions)
        while not isinstance(event := events.next(), yaml.MappingEndEvent):
            key, mark = self._key(event, events, path)
            value_event = events.next()
            if key is _MERGE:
                merged += self._merge_sources(value_event, events, path, depth)
                continue
            if key is None:  # an unusable key, already reported
                _skip(value_event, events)
                continue
            child = path + (key,)
            if key in first_at:
                first = first_at[key]
                message = f"duplicate key {quote(key)} (first given at line {first.line + 1}, column {first.column + 1}); keep one of them"
                self._problem(child, message, mark)
            else:
                first_at[key] = mark
            self.keys[child] = (mark.line + 1, mark.column + 1)
            result[key] = self.node(value_event, events, child, depth + 1)
        if not merged:
            return result
        # `<<: *base` merges are allowed; the mapping's own keys win over merged ones (YAML's merge key type)
        winner = {key: i for i, (data, _, _) in enumerate(merged) for key in data if key not in result}
        for i, (_, keys, values) in enumerate(merged):
            for table, positions in ((self.keys, keys), (self.values, values)):
                for at, position in positions.items():
                    if len(at) > len(path) and winner.get(at[len(path)]) == i:
                        table[at] = position
        whole: dict = {}
        for data, _, _ in merged:
            whole.update(data)
        whole.update(result)
        return whole

    def _merge_sources(self, event: yaml.Event, events, path: Path_, depth: int) -> list[tuple[dict, dict, dict]]:
        """What a `<<` key merges, lowest precedence first: a mapping, or a list of them (earlier ones win)."""
        if isinstance(event, yaml.AliasEvent):
            events = self._aliased(event, path)
            if events is None:
                return []
            event = events.next()
        if isinstance(event, yaml.MappingStartEvent):
            return [self._merged_mapping(event, events, path, depth)]
        if isinstance(event, yaml.SequenceStartEvent):
            sources = []
            while not isinstance(item := events.next(), yaml.SequenceEndEvent):
                replay = self._aliased(item, path) if isinstance(item, yaml.AliasEvent) else events
                if replay is None:
                    continue
                first = replay.next() if isinstance(item, yaml.AliasEvent) else item
                if isinstance(first, yaml.MappingStartEvent):
                    sources.append(self._merged_mapping(first, replay, path, depth))
                else:
                    self._problem(path, "`<<` merges a mapping (or a list of mappings) into this one; this list holds something else", first.start_mark)
                    _skip(first, replay)
            return sources[::-1]
        kind = "text or a number" if isinstance(event, yaml.ScalarEvent) else "something else"
        self._problem(path, f"`<<` merges a mapping (or a list of mappings) into this one, not {kind}", event.start_mark)
        _skip(event, events)
        return []

    def _merged_mapping(self, event: yaml.Event, events, path: Path_, depth: int) -> tuple[dict, dict, dict]:
        saved = self.keys, self.values
        self.keys, self.values = {}, {}
        try:
            data = self.node(event, events, path, depth + 1)  # its keys become this mapping's keys
            return data if isinstance(data, dict) else {}, self.keys, self.values
        finally:
            self.keys, self.values = saved


def _skip(event: yaml.Event, events) -> None:
    """Read past the node that starts with `event` (a refused key, a value under a refused tag)."""
    if not isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
        return
    open_nodes = 1
    while open_nodes:
        event = events.next()
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            open_nodes += 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            open_nodes -= 1


def _position_of(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


_TAB_MESSAGE = "a tab character is not allowed here: YAML indents with spaces only; replace the tab with spaces"


def _tab_near(text: str, mark: yaml.Mark) -> tuple[int, int] | None:
    """(line, column) of the tab a syntax error at `mark` is about: at the mark, or in its line's indentation."""
    lines = text.split("\n", mark.line + 1)
    if mark.line >= len(lines):
        return None
    line = lines[mark.line]
    if mark.column < len(line) and line[mark.column] == "\t":
        return mark.line + 1, mark.column + 1
    indent = line[: len(line) - len(line.lstrip(" \t"))]
    if "\t" in indent and mark.column <= len(indent):
        return mark.line + 1, indent.index("\t") + 1
    return None


def _yaml_problem(err: yaml.YAMLError, text: str, file: str | None) -> Problem:
    if isinstance(err, yaml.reader.ReaderError):  # a character YAML does not allow; it knows only the offset
        line, column = _position_of(text, err.position)
        return Problem(f"the character {err.character!r} is not allowed in YAML text", Location(file, line, column))
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        what = err.problem or err.context or "invalid YAML"
        # libyaml says "found character that cannot start any token" for a tab in indentation
        tab = _tab_near(text, mark) if mark is not None else None
        if tab is not None or "'\\t'" in what or "tab character" in what:
            return Problem(_TAB_MESSAGE, Location(file, *tab) if tab else _location(file, mark))
        return Problem(f"YAML syntax error: {what}", _location(file, mark))
    return Problem(f"YAML syntax error: {str(err).splitlines()[0] if str(err) else type(err).__name__}", Location(file))


def parse_yaml(text: str, file: str | None = "<string>") -> tuple[Any, Source]:
    """Parse YAML text into plain data and its `Source` (positions). Raises SpecError with every problem found."""
    source = Source(file=file, text=text)
    reader = _Reader(source)
    try:
        data, start = reader.document(_Events(yaml.parse(text, Loader=_Loader), file))
    except yaml.YAMLError as err:
        raise SpecError([_yaml_problem(err, text, file)]) from None
    except RecursionError:
        raise SpecError([Problem(f"the YAML is nested too deeply (more than {MAX_DEPTH} levels)", Location(file))]) from None
    if start is None:
        raise SpecError([Problem("the spec is empty; it needs at least `input` and `layers`", Location(file, 1, 1))])
    if reader.problems:
        labelled = [Problem(p.message, p.location, layer_label(data, path)[1]) for path, p in reader.problems]
        raise SpecError(labelled)
    source.data = data
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "null"
        raise SpecError(
            [Problem(f"the top level of a spec must be a mapping (input:, layers:, ...), not a {kind}", _location(file, start))]
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
    except ValueError:  # a NUL byte in the name, given through the API
        raise InputError(f"{shown!r}: not a file name (it holds a NUL byte)") from None
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
