"""Residual blocks in a flat list of imported layers: an `add` of two branches from one tensor as a `residual`.

`onnx_import` reads a graph into a flat list wired with `from`; here every add whose two inputs
start from one tensor, with nothing else between, becomes a `residual` (the longer branch its
`layers`, the other its `shortcut`), its layers renamed within the new scope and their weights'
keys with them (`NAME.<layer>.*`, `NAME.shortcut.<layer>.*`, as the builder names them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layer_names import layer_name_problem


def _inputs(layers: list[dict], index: int) -> list[str]:
    """The names a flat layer reads (`input` for the list's input)."""
    source = layers[index].get("from")
    if source is None:
        return [layers[index - 1]["name"] if index else "input"]
    return list(source) if isinstance(source, list) else [source]


def _strip(names: list[str]) -> tuple[str, list[str]] | None:
    """The module-path prefix the names share ("layer1_"), and the names without it, when that leaves valid distinct names."""
    if not names:
        return None
    prefix = names[0]
    for n in names[1:]:
        while not n.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix[: prefix.rfind("_") + 1] if "_" in prefix else ""
    while prefix:  # the longest prefix that leaves valid names ("features_1_" where "features_1_conv_" leaves "0_0")
        short = [n[len(prefix):] for n in names]
        if len(set(short)) == len(short) and not any(layer_name_problem(n) for n in short):
            return prefix, short
        prefix = prefix[: prefix[:-1].rfind("_") + 1]
    return None


def _ancestors(name: str, within: dict[str, int], layers: list[dict]) -> set[str]:
    """`name` and every layer of `within` it reads, directly or not."""
    found, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in within and current not in found:
            found.add(current)
            todo += _inputs(layers, within[current])
    return found


def _residual_block(layers: list[dict], i: int, readers: dict[str, set[int]]) -> tuple[int, list[int], list[int], str] | None:
    """For the add at `i`: (index of the entry layer (-1: the input), main indices, shortcut indices, entry name), or None.

    The block is the layers between the entry and the add; it must read nothing from outside but
    the entry, nothing after the add may read inside it, and its layers must split into the
    ancestors of one input of the add (main) and of the other (shortcut; none for an identity).
    """
    a, b = _inputs(layers, i)
    for e in range(i - 1, -2, -1):
        entry = layers[e]["name"] if e >= 0 else "input"
        block = {layers[k]["name"]: k for k in range(e + 1, i)}
        if not block:
            continue
        if any(s not in block and s != entry for k in block.values() for s in _inputs(layers, k)):
            continue
        if any(r > i for name in block for r in readers.get(name, ())):
            continue
        if {a, b} - set(block) - {entry}:
            continue
        branches = [_ancestors(a, block, layers), _ancestors(b, block, layers)]
        if branches[0] & branches[1] or branches[0] | branches[1] != set(block):
            continue
        main, short = (0, 1) if len(branches[0]) >= len(branches[1]) else (1, 0)
        main_out = (a, b)[main]
        if main_out == entry:
            continue
        ordered = [sorted(block[n] for n in branches[main]), sorted(block[n] for n in branches[short])]
        # each branch's output must be its last layer (a residual returns the last of its lists)
        if layers[ordered[0][-1]]["name"] != main_out or (ordered[1] and layers[ordered[1][-1]]["name"] != (a, b)[short]):
            continue
        return e, ordered[0], ordered[1], entry
    return None


def group_residuals(layers: list[dict], weights: dict[str, np.ndarray], outputs: list[str]) -> list[dict]:
    """Every `add` of two branches from one tensor, with nothing else between, made a `residual` (weights renamed to match).

    The longer branch becomes `layers`, the other `shortcut` (none for an identity); the add's
    activation becomes the residual's `act`. Branches may hold joins of their own (a
    squeeze-and-excitation `mul`). Repeated until no add fits, so blocks in blocks group too.
    """
    changed = True
    while changed:
        changed = False
        readers: dict[str, set[int]] = {}
        for k in range(len(layers)):
            for name in _inputs(layers, k):
                readers.setdefault(name, set()).add(k)
        for name in outputs:
            readers.setdefault(name, set()).add(len(layers))
        for i, add in enumerate(layers):
            if add["type"] != "add" or len(_inputs(layers, i)) != 2:
                continue
            found = _residual_block(layers, i, readers)
            if found is None:
                continue
            e, main, shortcut, entry = found
            layers[:] = _regrouped(layers, weights, add, main, shortcut, entry, e + 1, i)
            changed = True
            break
    return layers


def _inner(layers: list[dict], indices: list[int], renames: dict[str, str], entry: str) -> list[dict]:
    """The layers of one branch, renamed, their `from` pointing inside the branch (`input`: the residual's input)."""
    inner = []
    for position, k in enumerate(indices):
        layer = {key: v for key, v in layers[k].items() if key != "from"}
        layer["name"] = renames[layers[k]["name"]]
        sources = [("input" if s == entry else renames[s]) for s in _inputs(layers, k)]
        previous = inner[-1]["name"] if inner else "input"
        if sources != [previous]:
            layer["from"] = sources if len(sources) > 1 else sources[0]
        inner.append(layer)
    return inner


def _regrouped(layers, weights, add, main, shortcut, entry, first, index) -> list[dict]:
    inner = [layers[k] for k in main] + [layers[k] for k in shortcut]
    stripped = _strip([layer["name"] for layer in inner])
    name = add["name"]
    renames = {layer["name"]: layer["name"] for layer in inner}
    if stripped is not None:
        prefix, short = stripped
        candidate = prefix[:-1]
        if candidate and layer_name_problem(candidate) is None and candidate not in {l["name"] for l in layers if l is not add}:
            name = candidate
        renames = {layer["name"]: s for layer, s in zip(inner, short)}
    residual: dict[str, Any] = {"name": name, "type": "residual"}
    if first and entry != layers[first - 1]["name"]:
        residual["from"] = entry
    residual["layers"] = _inner(layers, main, renames, entry)
    if shortcut:
        residual["shortcut"] = _inner(layers, shortcut, renames, entry)
    if "act" in add:
        residual["act"] = add["act"]
    # state_dict keys follow the scopes: NAME.<layer>.* and NAME.shortcut.<layer>.*
    for group, scope in ((main, name), (shortcut, f"{name}.shortcut")):
        for k in group:
            old = layers[k]["name"]
            for key in [key for key in weights if key.startswith(old + ".")]:
                weights[f"{scope}.{renames[old]}{key[len(old):]}"] = weights.pop(key)
    followers = layers[index + 1:]
    for layer in followers:  # later layers read the add by its name; the residual may have taken another
        source = layer.get("from")
        if source == add["name"]:
            layer["from"] = name
        elif isinstance(source, list):
            layer["from"] = [name if s == add["name"] else s for s in source]
    return layers[:first] + [residual] + followers


__all__ = ["group_residuals"]
