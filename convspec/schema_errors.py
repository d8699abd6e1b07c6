"""pydantic's validation errors as located `Problem`s, with "did you mean" hints and other libraries' names answered."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Problem, quote
from .errors import did_you_mean as _did_you_mean
from .schema import KEY_ALIASES, LAYER_MODELS, BatchNormDefaults, InitSpec, InputSpec, Spec, StageSpec
from .schema_values import describe_value
from .source import Source, layer_label


def validation_problems(
    error: ValidationError, data: Any, source: Source, wrong_keys: dict[tuple, set], known: set[Problem]
) -> list[Problem]:
    """Every error of pydantic's `error` on `data` as a located problem, in pydantic's order, leaving out those `known`.

    Records in `wrong_keys` the path of each layer with a mistake (`()` for the spec itself)
    and the keys it got wrong (None: the layer as a whole, or a key it lacks), which
    `partial_spec` reads to repair the layer or stand in for it.
    """
    seen = set(known)  # a set: a spec of thousands of mistakes is still checked in linear time
    problems = []
    fields = _all_field_names()  # once, not per error
    for detail in error.errors(include_url=False):
        path = _data_path(data, tuple(detail["loc"]), fields)
        problem = _problem_from_error(detail, data, source, path)
        if problem not in seen:
            seen.add(problem)
            problems.append(problem)
        layer_path = layer_label(data, path)[0]
        key = path[len(layer_path)] if len(path) > len(layer_path) else None
        wrong_keys.setdefault(layer_path, set()).add(key if detail["type"] != "missing" else None)
    return problems


def _data_path(data: Any, loc: tuple, fields: set[str]) -> tuple:
    """Map pydantic's error location onto the data: drop union tags and type names it inserts."""
    path: list = []
    node = data
    previous = None
    for part in loc:
        if isinstance(previous, int) and isinstance(node, dict) and node.get("type") == part:
            previous = part  # the discriminated union's tag right after a list index: not a key
            continue
        previous = part
        if isinstance(node, dict) and part in node:
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and part == "from_" and "from" in node:
            path.append("from")
            node = node["from"]
        elif isinstance(node, dict) and any(part in longs and short in node for short, longs in KEY_ALIASES.items()):
            short = next(short for short, longs in KEY_ALIASES.items() if part in longs and short in node)
            path.append(short)  # the user wrote the short alias: point at it
            node = node[short]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in fields:
            path.append(part)  # a missing key: point at its mapping, name the key
            node = None
        # else: a union tag such as 'conv' or 'list[int]': not part of the data
    return tuple(path)


def _all_field_names() -> set[str]:
    names = {"from"}
    for model in (*LAYER_MODELS.values(), InputSpec, Spec, InitSpec, StageSpec, BatchNormDefaults):
        names.update(f.alias or n for n, f in model.model_fields.items())
    return names


def _model_at(data: Any, path: tuple) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path`, for did-you-mean hints."""
    if not path:
        return Spec
    parent = data
    for part in path[:-1]:
        parent = parent[part] if isinstance(parent, (dict, list)) else None
    node = parent[path[-1]] if isinstance(parent, (dict, list)) else None
    if isinstance(node, dict) and isinstance(node.get("type"), str) and node["type"] in LAYER_MODELS:
        return LAYER_MODELS[node["type"]]
    key = path[-1]
    return {"input": InputSpec, "init": InitSpec, "depthwise": StageSpec, "batch_norm": BatchNormDefaults}.get(key) if isinstance(key, str) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    keys = [f.alias or n for n, f in model.model_fields.items()]
    keys += [short for short, longs in KEY_ALIASES.items() if any(name in keys for name in longs)]
    return keys


# Other libraries' names (PyTorch's, then Keras') for convspec's keys: an unknown key found here is
# answered with the key this kind has, or with why it is not needed.
FOREIGN_KEYS: dict[str, tuple[str, ...]] = {
    "scale_factor": ("scale",), "filters": ("out_channels",), "num_filters": ("out_channels",), "units": ("out_features",),
    "strides": ("stride",), "dilation_rate": ("dilation",), "pool_size": ("kernel_size",), "use_bias": ("bias",),
    "activation": ("act", "fn"), "rate": ("p",), "num_groups": ("norm_groups", "groups"), "kernel_initializer": ("init",),
    "depth_multiplier": ("multiplier",), "output_size": ("size",), "upscale_factor": ("scale",), "chunks": ("parts",),
    "split_size_or_sections": ("sizes",), "dim": ("parts", "sizes"),
}  # fmt: skip
INFERRED_KEYS = frozenset({"num_features", "num_channels", "in_features", "in_channels", "input_shape", "normalized_shape"})


def _unknown_key_hint(key: str, model: type[BaseModel]) -> str:
    """' (...)' or '; ...' explaining an unknown key from its meaning elsewhere, or ''."""
    own = getattr(model, "key_hints", {}).get(key)
    if own:
        return f"; {own}"
    fields = _keys_of(model)
    target = next((name for name in FOREIGN_KEYS.get(key, ()) if name in fields), None)
    if target:
        return f" (convspec calls it `{target}`)"
    if key in INFERRED_KEYS:
        return "; convspec infers it from the layer's input: drop it"
    return _did_you_mean(key, fields)


def _problem_from_error(error: dict, data: Any, source: Source, path: tuple) -> Problem:
    """A located problem for one pydantic error, whose place in the data (`_data_path`) is `path`."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    _, label = layer_label(data, path)
    key = path[-1] if path and isinstance(path[-1], str) else None
    if key is None and len(path) >= 2 and isinstance(path[-1], int) and isinstance(path[-2], str):
        key = f"{path[-2]}[{path[-1]}]"  # an entry of a list such as input.size

    if kind == "extra_forbidden":
        model = _model_at(data, path[:-1])
        hint = _unknown_key_hint(str(key), model) if model else ""
        if model and not hint:
            hint = f"; valid keys: {', '.join(sorted(k for k in _keys_of(model) if k != 'type'))}"
        return Problem(f"unknown key {quote(key)}{hint}", source.locate(path), label)
    if kind == "missing":
        return Problem(f"missing required key `{key}`", source.locate(path[:-1]), label)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tag = ctx.get("tag")
        if kind == "union_tag_not_found":
            return Problem("missing required key `type` (the layer kind)", source.locate(path), label)
        hint = _did_you_mean(str(tag), LAYER_MODELS) if isinstance(tag, str) else ""
        if not hint:
            hint = f"; kinds: {', '.join(LAYER_MODELS)}"
        if not isinstance(tag, str):
            return Problem(f"`type` must be a layer kind (a string), not {describe_value(tag)}{hint}", source.locate(path + ("type",)), label)
        return Problem(f"unknown layer type {quote(tag)}{hint}", source.locate(path + ("type",)), label)
    if kind == "alias_conflict":
        return Problem(error["msg"], source.locate(path + (ctx["short"],)), label)
    if kind == "string_pattern_mismatch" and path[:1] == ("scales",) and len(path) == 2:
        message = f"{quote(path[1])} is not a valid scale name: use letters, digits and underscores, starting with a letter"
        return Problem(message, source.locate(path), label)
    if kind == "convspec_key":
        return Problem(error["msg"], source.locate(path + (ctx["key"],)), label)
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return Problem(f"`{key}` must be {expected}, not {describe_value(error.get('input'))}", source.locate(path), label)
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        what = f"`{key}`" if key else "this"
        return Problem(f"{what} must be a mapping (key: value), not {describe_value(error.get('input'))}", source.locate(path), label)
    if kind == "list_type":
        what = f"`{key}`" if key else "this"
        return Problem(f"{what} must be a list, not {describe_value(error.get('input'))}", source.locate(path), label)
    if kind == "too_short":
        return Problem(f"`{key}` must not be empty", source.locate(path), label)
    if kind == "too_long":
        return Problem(f"`{key}` has too many entries ({ctx.get('actual_length')}); at most {ctx.get('max_length')}", source.locate(path), label)
    message = error["msg"]
    if kind == "string_type":
        message = f"must be a string, not {describe_value(error.get('input'))}"
    if key and not message.startswith("`"):
        # fragments ("must be ...") read on from the key; whole sentences get a colon
        joiner = " " if message.startswith(("must ", "is ", "has ", "every ", "entry")) else ": "
        message = f"`{key}`{joiner}{message}"
    return Problem(message, source.locate(path), label)


def drop_missing_explained_by_typos(problems: list[Problem]) -> list[Problem]:
    """`out_chanels: 8` is one mistake: keep "unknown key ... did you mean 'out_channels'?", drop "missing out_channels"."""
    suggested = {
        (p.layer, match.group(1) or match.group(2))
        for p in problems
        if (match := re.search(r"did you mean '(\w+)'\?|convspec calls it `(\w+)`", p.message)) and p.message.startswith("unknown key")
    }
    suggested |= {(layer, full) for layer, key in suggested for full in KEY_ALIASES.get(key, ())}  # `outt` -> `out`
    return [
        p
        for p in problems
        if not (
            (match := re.fullmatch(r"missing required key `(\w+)`", p.message))
            and (p.layer, match.group(1)) in suggested
        )
    ]

