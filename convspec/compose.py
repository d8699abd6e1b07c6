"""`extends`: a spec merged onto its base spec, layers by name. No torch.

    extends: yolo_base.yaml            # relative to this file
    input: {size: [320, 320]}          # mappings merge key by key
    layers:
      - {name: stem, out: 32}          # a base layer of that name: these keys change
      - {remove: head}                 # drop a base layer
      - {after: stem, name: blur, type: fixed, filter: gaussian, kernel: 3, padding: 1}

Mappings merge as a JSON Merge Patch (RFC 7386): the child's keys replace the
base's, mappings merge recursively, `null` removes a key. Layer lists (`layers`,
`shortcut`, `first`) merge by layer name, never by index; every other list is
replaced whole. A base layer without a name keeps its default name
(`<type>_<index>` in the base) as an explicit `name`, so inserting or removing a
layer renames nothing. `name` is not inherited: a child is its own network.

Every value keeps the position it was written at, with its file: an error in
an inherited layer points into the base file. A base may extend another; a cycle,
a missing base and a chain beyond the loader's limits (bytes, nodes) are errors
located at the `extends` that causes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CloseNames, InputError, Location, Problem, SpecError, quote, shorten
from .node_tree import Node, plain_of, record_positions, tree_of
from .source import MAX_FILE_BYTES, MAX_NODES, Source, parse_yaml, read_spec_file

MAX_CHAIN = 16  # bases of bases; a real chain is one or two deep
LAYER_LISTS = ("layers", "shortcut", "first")
PLACEMENT_KEYS = ("before", "after")
REMOVE_KEY = "remove"


def load_composed(path: str | Path, text: str | None = None) -> tuple[Any, Source]:
    """A spec file read with its `extends` chain merged: the plain data and a `Source` whose positions
    carry the file each value came from. For tools that read specs without validating them: an editor
    passes the buffer's `text` (unsaved changes) with the file's `path`, which `extends` is relative to.
    Raises InputError (the file cannot be read) or SpecError (bad YAML, a bad `extends`)."""
    if text is None:
        data, source = read_spec_file(path)
    else:
        data, source = parse_yaml(text, str(path))
    source.data = compose(data, source)
    return source.data, source


def compose(data: dict, source: Source) -> dict:
    """`data` merged onto the spec its `extends` names (recursively), positions recorded in `source`.

    Paths are relative to the file `source` read (the working directory for text or a dict).
    Raises SpecError for a missing or unreadable base, a cycle, or a chain beyond the limits.
    """
    if "extends" not in data:
        return data
    budget = _Budget(source)
    root = _compose_node(data, source, budget, (), 0)
    merged = plain_of(root)
    for table in (source.key_positions, source.value_positions):
        table.clear()
    record_positions(root, (), source)
    return merged


class _Budget:
    """The loader's limits, over the whole chain: bytes of text and nodes."""

    def __init__(self, source: Source):
        self.bytes = len(source.text.encode()) if source.text else 0
        self.nodes = _count(source.data)

    def add(self, source: Source, at: Location) -> None:
        self.bytes += len(source.text.encode()) if source.text else 0
        self.nodes += _count(source.data)
        if self.bytes > MAX_FILE_BYTES:
            raise SpecError([Problem(f"the `extends` chain is over {MAX_FILE_BYTES:,} bytes, the most a spec may be", at)])
        if self.nodes > MAX_NODES:
            raise SpecError([Problem(f"the `extends` chain has more than {MAX_NODES:,} nodes; a spec is far smaller than that", at)])


def _count(data: Any) -> int:
    count, stack = 0, [data]
    while stack:
        node = stack.pop()
        count += 1
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


def _file_of(source: Source) -> Path | None:
    file = source.file
    return None if file is None or file.startswith("<") else Path(file)


def _tagged(source: Source) -> None:
    """Every position of `source` with its file, so it stays right once merged into another file's spec."""
    for table in (source.key_positions, source.value_positions):
        for path, pos in table.items():
            if len(pos) == 2:
                table[path] = (pos[0], pos[1], source.file)


def _compose_node(data: dict, source: Source, budget: _Budget, chain: tuple[Path, ...], depth: int) -> Node:
    """The merged tree of `data` (read by `source`) and its bases."""
    own = _file_of(source)
    chain = chain + ((own.resolve(),) if own is not None else ())
    child = tree_of(data, source, ())
    if "extends" not in data:
        return child
    extends = child.value.pop("extends")
    at = source.at(extends.key_at or extends.at)
    if not isinstance(extends.value, str) or not extends.value.strip():
        raise SpecError([Problem(f"`extends` must be the path of one base spec (a string), not {quote(plain_of(extends))}", at)])
    base_dir = own.parent if own is not None else Path.cwd()
    base_path = base_dir / extends.value
    shown = str(base_path) if own is not None else extends.value
    if base_path.resolve() in chain:
        names = " -> ".join(str(p.name) for p in chain + (base_path.resolve(),))
        raise SpecError([Problem(f"`extends` makes a cycle ({names}); a spec cannot extend itself", at)])
    if depth + 1 > MAX_CHAIN:
        raise SpecError([Problem(f"the `extends` chain is more than {MAX_CHAIN} specs deep", at)])
    try:
        base_data, base_source = read_spec_file(base_path)
    except InputError as err:
        reason = err.problems[0].message.split(": ", 1)[-1] if err.problems else "cannot read"
        raise SpecError([Problem(f"`extends: {shorten(extends.value)}`: {shorten(shown, 200)}: {reason}", at)]) from None
    base_source.file = shown
    base_source.data = base_data
    _tagged(base_source)
    budget.add(base_source, at)
    base = _compose_node(base_data, base_source, budget, chain, depth + 1)
    base.value.pop("name", None)  # a child is its own network: its name is its own (default: its file's stem)
    problems: list[Problem] = []
    merged = _Merger(source, problems, base).mapping(base, child, ())
    if problems:
        raise SpecError(problems)
    return merged


class _Merger:
    def __init__(self, source: Source, problems: list[Problem], base: Node):
        self.source, self.problems = source, problems
        blocks = base.value.get("blocks")
        self.blocks = blocks.value if blocks is not None and isinstance(blocks.value, dict) else {}

    def problem(self, message: str, node: Node, label: str | None = None) -> None:
        self.problems.append(Problem(message, self.source.at(node.key_at or node.at), label))

    def mapping(self, base: Node, child: Node, path: tuple) -> Node:
        result = dict(base.value)
        for key, value in child.value.items():
            if value.value is None:
                result.pop(key, None)  # RFC 7386: null removes the key
                continue
            known = result.get(key)
            if known is not None and key in LAYER_LISTS and isinstance(known.value, list) and isinstance(value.value, list):
                result[key] = self.layers(known, value, path + (key,))
            elif known is not None and isinstance(known.value, dict) and isinstance(value.value, dict):
                result[key] = self.mapping(known, value, path + (key,))
            else:
                result[key] = value
        return Node(result, child.key_at or base.key_at, child.at or base.at)

    def _default_name(self, layer: Node, index: int) -> str | None:
        kind = layer.value.get("type")
        kind = kind.value if kind is not None else None
        if kind == "use":  # an instance is named after its template's kind
            block = layer.value.get("block")
            template = self.blocks.get(block.value) if block is not None and isinstance(block.value, str) else None
            inner = template.value.get("type") if template is not None and isinstance(template.value, dict) else None
            kind = inner.value if inner is not None else None
        return f"{kind}_{index}" if isinstance(kind, str) else None

    def _named(self, layers: list[Node]) -> list[Node]:
        """The base's layers, each mapping without a `name` given its default name (`<type>_<index>`), so
        inserting or removing layers renames nothing."""
        items: list[Node] = []
        for index, layer in enumerate(layers):
            if isinstance(layer.value, dict) and "name" not in layer.value:
                name = self._default_name(layer, index)
                if name is not None:
                    layer = Node({**layer.value, "name": Node(name, layer.key_at, layer.at)}, layer.key_at, layer.at)
            items.append(layer)
        return items

    def _remove(self, items: list[Node], entry: Node, known: dict[str, int], where: str) -> None:
        """A `{remove: NAME}` entry: the named layer dropped from `items`, or the problem recorded."""
        keys = entry.value
        target = keys[REMOVE_KEY]
        if len(keys) > 1:
            others = ", ".join(f"`{k}`" for k in keys if k != REMOVE_KEY)
            self.problem(f"a `remove` entry holds only the name of the base layer to drop, not {others}", entry)
        elif not isinstance(target.value, str) or target.value not in known:
            hint = CloseNames(known).did_you_mean(target.value) if isinstance(target.value, str) else ""
            self.problem(f"`remove: {shorten(str(target.value))}`: the base's {where} has no layer of that name{hint}", target)
        else:
            del items[known[target.value]]

    def _insert(self, items: list[Node], entry: Node, placement: list[str], known: dict[str, int], where: str) -> None:
        """A new layer with `before` / `after: NAME`: inserted next to the named layer, or the problem recorded."""
        keys = entry.value
        if len(placement) > 1:
            self.problem("give `before` or `after`, not both", keys["after"])
            return
        anchor = keys[placement[0]]
        name = keys.get("name")
        if name is not None and isinstance(name.value, str) and name.value in known:
            self.problem(
                f"the base already has a layer {quote(name.value)}; to change it drop `{placement[0]}`, to move it `remove` it first",
                keys[placement[0]],
            )
            return
        if not isinstance(anchor.value, str) or anchor.value not in known:
            hint = CloseNames(known).did_you_mean(anchor.value) if isinstance(anchor.value, str) else ""
            self.problem(f"`{placement[0]}: {shorten(str(anchor.value))}`: the base's {where} has no layer of that name{hint}", anchor)
            return
        layer = Node({k: v for k, v in keys.items() if k not in PLACEMENT_KEYS}, entry.key_at, entry.at)
        items.insert(known[anchor.value] + (1 if placement[0] == "after" else 0), layer)

    def layers(self, base: Node, child: Node, path: tuple) -> Node:
        """The base's layer list with the child's entries merged by name (see the module's docstring)."""
        items = self._named(base.value)
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        for entry in child.value:
            if not isinstance(entry.value, dict):
                items.append(entry)  # the validator says what is wrong with it
                continue
            keys = entry.value
            known = _first_index_of_names(items)
            placement = [k for k in PLACEMENT_KEYS if k in keys]
            name = keys.get("name")
            name = name.value if name is not None and isinstance(name.value, str) else None
            if REMOVE_KEY in keys:
                self._remove(items, entry, known, where)
            elif placement:
                self._insert(items, entry, placement, known, where)
            elif name is not None and name in known:
                index = known[name]
                items[index] = self.mapping(items[index], entry, path + (index,))
            else:
                items.append(entry)  # a new layer without a place: at the end
        return Node(items, child.key_at or base.key_at, child.at or base.at)


def _first_index_of_names(items: list[Node]) -> dict[str, int]:
    """Each layer name in a merged list, with the index of its first layer."""
    found: dict[str, int] = {}
    for i, item in enumerate(items):
        name = item.value.get("name") if isinstance(item.value, dict) else None
        if name is not None and isinstance(name.value, str):
            found.setdefault(name.value, i)
    return found


def extends_json_schema(schema: dict) -> dict:
    """The format's JSON Schema (made in place by `schema_json.json_schema`) with specs that `extends` a base:
    the whole-spec schema moves to `$defs/Spec`, and a spec with `extends` is checked by `$defs/ExtendingSpec`,
    in which every key is optional and a layer entry is any mapping (a change, a `remove`, a placed layer),
    since only the merge with its base makes a whole spec."""
    head = {key: schema.pop(key) for key in ("$schema", "title") if key in schema}
    defs = schema.pop("$defs", {})
    whole = schema
    partial = {
        "type": "object",
        "description": "a spec merged onto the base spec its `extends` names (layers by name)",
        "properties": {
            **whole.get("properties", {}),
            "input": {"type": "object", "description": "merged key by key onto the base's `input`"},
            "layers": {
                "type": "array",
                "description": "changes by layer name: {name: NAME, KEY: VALUE}, {remove: NAME}, or a new layer with `before` / `after: NAME`",
                "items": {"type": "object"},
            },
        },
        "required": ["extends"],
        "additionalProperties": False,
    }
    defs["Spec"], defs["ExtendingSpec"] = whole, partial
    return {
        **head,
        "description": whole.get("description", ""),
        "$defs": defs,
        "if": {"required": ["extends"]},
        "then": {"$ref": "#/$defs/ExtendingSpec"},
        "else": {"$ref": "#/$defs/Spec"},
    }
