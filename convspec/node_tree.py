"""YAML values as trees of `Node`s that keep where each key and value is written, for rewriting a spec's data
(block templates, `extends`) without losing a position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .source import Source

Position = tuple[int, int]


@dataclass
class Node:
    """A YAML value with where its key and its value are written."""

    value: Any  # a scalar, dict[str, Node] or list[Node]
    key_at: Position | None = None
    at: Position | None = None
    counted: tuple[int, int] | None = None  # (nodes, levels) of a value substituted for a placeholder, once counted


def measure(node: Node) -> tuple[int, int]:
    """How many nodes `node` holds, itself included, and how many levels deep it goes (a scalar: 1, 1)."""
    if node.counted is None:
        size, height = 1, 0
        children = node.value.values() if isinstance(node.value, dict) else node.value if isinstance(node.value, list) else ()
        for child in children:
            child_size, child_height = measure(child)
            size, height = size + child_size, max(height, child_height)
        node.counted = (size, height + 1)
    return node.counted


def copy_tree(node: Node) -> Node:
    """A fresh copy of a node tree (a substituted value: each instance gets its own)."""
    if isinstance(node.value, dict):
        return Node({k: copy_tree(v) for k, v in node.value.items()}, node.key_at, node.at, node.counted)
    if isinstance(node.value, list):
        return Node([copy_tree(v) for v in node.value], node.key_at, node.at, node.counted)
    return Node(node.value, node.key_at, node.at, node.counted)


def tree_of(data: Any, source: Source, path: tuple) -> Node:
    """`data` (found at `path` in the spec) as a tree of nodes carrying `source`'s positions."""
    node = Node(None, source.key_positions.get(path), source.value_positions.get(path))
    if isinstance(data, dict):
        node.value = {k: tree_of(v, source, path + (k,)) for k, v in data.items()}
    elif isinstance(data, list):
        node.value = [tree_of(v, source, path + (i,)) for i, v in enumerate(data)]
    else:
        node.value = data
    return node


def plain_of(node: Node) -> Any:
    """The plain data (dicts, lists, scalars) a tree holds."""
    if isinstance(node.value, dict):
        return {k: plain_of(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [plain_of(v) for v in node.value]
    return node.value


def record_positions(node: Node, path: tuple, source: Source) -> None:
    """Write the positions of the tree's nodes into `source`, the tree standing at `path` of the spec."""
    if node.key_at is not None:
        source.key_positions[path] = node.key_at
    if node.at is not None:
        source.value_positions[path] = node.at
    if isinstance(node.value, dict):
        for k, v in node.value.items():
            record_positions(v, path + (k,), source)
    elif isinstance(node.value, list):
        for i, v in enumerate(node.value):
            record_positions(v, path + (i,), source)


def walk(node: Node, path: tuple = ()):
    """(path, node) for every node under `node`, itself first."""
    yield path, node
    if isinstance(node.value, dict):
        for k, v in node.value.items():
            yield from walk(v, path + (k,))
    elif isinstance(node.value, list):
        for i, v in enumerate(node.value):
            yield from walk(v, path + (i,))
