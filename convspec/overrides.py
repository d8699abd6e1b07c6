"""`--set KEY=VALUE`: change a spec's values from the command line (`overrides=` in Python). No torch.

KEY addresses a value by layer name, not list index: `stem.out_channels` is the
key `out_channels` of the top-level layer `stem`; `stage1.conv2.stride` goes
into the layers of `stage1`; a layer's mapping values continue with dots
(`head.init.weight`). A KEY that starts with a top-level key of the format
(`input.size`, `scales.n.width`, `channel_divisor`, ...) addresses that instead.
An unnamed layer answers to its default name, `<type>_<index>`. VALUE is YAML
(`48`, `true`, `[320, 320]`, `{weight: zeros}`).

Overrides apply to the spec as written (after `extends`, before block templates
are expanded and before a `--scale` preset), and the result is validated like
the file; a wrong value is reported at "command line --set KEY=VALUE". A KEY that
names no layer or no key of its layer is a usage error, with "did you mean".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .errors import CloseNames, InputError, SpecError, quote, shorten
from .source import Source, parse_yaml

LAYER_LISTS = ("layers", "first", "shortcut")  # where a layer's inner layers are found by name, in this order
USE_KEYS = ("type", "name", "from", "block", "with")


def parse_overrides(overrides: Any) -> list[tuple[str, str, Any, bool]]:
    """(key, the text shown in messages, value, whether the value is YAML text still to read) for each override.

    Takes a list of "KEY=VALUE" texts (as `--set` gives) or a mapping {KEY: value} (Python values).
    Raises InputError for a text without `=` or an empty key.
    """
    items: list[tuple[str, str, Any, bool]] = []
    if isinstance(overrides, Mapping):
        for key, value in overrides.items():
            if not isinstance(key, str) or not key:
                raise InputError(f"an override's key must be a dotted name such as 'stem.out_channels', not {quote(key)}")
            items.append((key, f"{key}={shorten(repr(value), 40)}", value, False))
        return items
    if isinstance(overrides, str) or not hasattr(overrides, "__iter__"):
        raise InputError("overrides must be a mapping {KEY: value} or a list of 'KEY=VALUE' texts")
    for text in overrides:
        if not isinstance(text, str) or "=" not in text:
            raise InputError(f"--set {quote(text)}: give KEY=VALUE, e.g. --set stem.out_channels=48")
        key, _, value = text.partition("=")
        key = key.strip()
        if not key:
            raise InputError(f"--set {quote(text)}: the KEY before '=' is empty; e.g. --set stem.out_channels=48")
        items.append((key, text, value, True))
    return items


def apply_overrides(data: dict, source: Source, overrides: Any) -> dict:
    """A copy of `data` with every override set, positions recorded in `source` ("command line --set ...").

    Raises InputError for a malformed override, or one whose KEY names no layer or key (with
    "did you mean"). A value of the wrong type is left for the validator, which reports it at
    the override.
    """
    data = copy.deepcopy(data)
    for key, shown, value, is_text in parse_overrides(overrides):
        origin = f"command line --set {shorten(shown, 120)}"
        if is_text:
            value = _read_value(value, origin, shown)
        path = _resolve(data, key, shown)
        _set(data, path, value)
        _record(source, path, value, origin)
    return data


def _read_value(text: str, origin: str, shown: str) -> Any:
    """VALUE as YAML, read by the spec reader (safe, limited); an empty VALUE is null."""
    try:
        parsed, _ = parse_yaml(f"value: {text}", origin)
    except SpecError as err:
        reason = err.problems[0].message if err.problems else "not YAML"
        raise InputError(f"--set {shorten(shown, 120)}: the value is not a YAML value ({reason})") from None
    return parsed["value"]


def _record(source: Source, path: tuple, value: Any, origin: str) -> None:
    """Every position under `path` (its old value's too) now points at the command line."""
    for table in (source.key_positions, source.value_positions):
        for known in [p for p in table if p[: len(path)] == path]:
            del table[known]
    stack = [(path, value)]
    while stack:
        at, node = stack.pop()
        source.key_positions[at] = source.value_positions[at] = (None, None, origin)
        if isinstance(node, dict):
            stack += [(at + (k,), v) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(at + (i,), v) for i, v in enumerate(node)]


def _set(data: dict, path: tuple, value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _layer_names(items: list) -> dict[str, int]:
    """Each layer's name (or default name, `<type>_<index>`) -> its index, the first of each name."""
    names: dict[str, int] = {}
    for index, layer in enumerate(items):
        if not isinstance(layer, dict):
            continue
        name = layer.get("name")
        if not isinstance(name, str):
            kind = layer.get("type")
            name = f"{kind}_{index}" if isinstance(kind, str) else None
        if name is not None:
            names.setdefault(name, index)
    return names


def _layer_keys(layer: dict) -> list[str]:
    """The keys a layer of its `type` may have (its model's fields and their short aliases)."""
    from .schema import KEY_ALIASES, LAYER_MODELS  # loaded by then: overrides apply inside `parse_spec`

    kind = layer.get("type")
    if kind == "use":
        return list(USE_KEYS)
    model = LAYER_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        return []
    keys = [field.alias or name for name, field in model.model_fields.items()]
    return keys + [short for short, longs in KEY_ALIASES.items() if any(long in keys for long in longs)]


def _top_keys() -> list[str]:
    from .schema import Spec

    return [field.alias or name for name, field in Spec.model_fields.items()]


def _resolve(data: dict, key: str, shown: str) -> tuple:
    """The data path KEY addresses (see the module's docstring); InputError when it addresses nothing."""
    parts = key.split(".")
    if any(not part for part in parts):
        raise InputError(f"--set {shorten(shown, 120)}: KEY {quote(key)} has an empty part; write NAME.KEY, e.g. stem.out_channels")
    top = _top_keys()
    if parts[0] == "extends":  # the chain is merged before --set applies: setting it would do nothing
        raise InputError(f"--set {shorten(shown, 120)}: `extends` cannot be set; it is read before --set applies (edit the file, or write a spec that extends it)")
    layers = data.get("layers") if isinstance(data.get("layers"), list) else []
    names = _layer_names(layers)
    if parts[0] in top and parts[0] not in names:
        return _into_value(data, (), parts, shown)
    if parts[0] not in names:
        hint = CloseNames([*names, *top]).did_you_mean(parts[0])
        raise InputError(f"--set {shorten(shown, 120)}: {quote(parts[0])} is neither a layer's name nor a top-level key{hint}")
    path: tuple = ("layers", names[parts[0]])
    layer = layers[names[parts[0]]]
    rest = parts[1:]
    while rest:
        part = rest[0]
        keys = _layer_keys(layer)
        if part in keys or not keys:
            return _into_value(layer, path, [_spelling(layer, part), *rest[1:]], shown)
        inner = next(
            ((list_key, items, found[part]) for list_key in LAYER_LISTS
             if isinstance(items := layer.get(list_key), list) and part in (found := _layer_names(items))),
            None,
        )  # fmt: skip
        if inner is None:
            inner_names = [n for list_key in LAYER_LISTS if isinstance(layer.get(list_key), list) for n in _layer_names(layer[list_key])]
            hint = CloseNames([*keys, *inner_names]).did_you_mean(part)
            what = "key or inner layer" if inner_names else "key"
            if layer.get("type") == "use":
                hint += "; an instance's layers are made from its block: set its parameters with NAME.with.PARAM"
            label = ".".join(parts[: len(parts) - len(rest)])
            raise InputError(f"--set {shorten(shown, 120)}: the layer {quote(label)} ({layer.get('type')}) has no {what} {quote(part)}{hint}")
        list_key, items, index = inner
        path += (list_key, index)
        layer = items[index]
        rest = rest[1:]
    raise InputError(f"--set {shorten(shown, 120)}: KEY names the layer {quote(key)} itself; name one of its keys, e.g. {key}.out_channels")


def _spelling(layer: dict, key: str) -> str:
    """`key` as the layer writes it: `out_channels` set on a layer that wrote `out` replaces `out`."""
    from .schema import KEY_ALIASES

    for short, longs in KEY_ALIASES.items():
        spellings = (short, *longs)
        if key in spellings and key not in layer:
            return next((s for s in spellings if s in layer), key)
    return key


def _into_value(node: Any, path: tuple, parts: list[str], shown: str) -> tuple:
    """The path of `parts` as keys (and list indices) into `node`, which sits at `path`."""
    for i, part in enumerate(parts):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise InputError(f"--set {shorten(shown, 120)}: {quote(part)} is not an index of the list at {'.'.join(parts[:i])} (0 to {len(node) - 1})")
            path, node = path + (int(part),), node[int(part)]
        elif node is None:
            raise InputError(f"--set {shorten(shown, 120)}: {'.'.join(parts[:i])} is not set, so it has no {quote(part)}; set it whole")
        elif isinstance(node, dict):
            path, node = path + (part,), node.get(part)
        else:
            raise InputError(f"--set {shorten(shown, 120)}: {'.'.join(parts[:i])} is {quote(node)}, which has no {quote(part)}")
    return path
