"""The partial spec: a spec whose layers failed validation, each repaired or stood in for, so tracing goes on past them."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import ValidationError

from .layer_names import NAME_PATTERN, layer_name_problem
from .schema import KEY_ALIASES, LAYER_MODELS, LayerBase, Spec
from .schema_errors import FOREIGN_KEYS
from .source import Source

# Keys that never change a layer's output shape: a layer whose only mistakes are in these (or in
# keys it does not have, typos) is traced without them, so its shape checks and everything after
# it still run.
SHAPE_NEUTRAL_KEYS = frozenset(
    "act align_corners bias depthwise experts fn in_channels in_features init kind mode name "
    "negative_slope norm norm_groups normalize op p padding_mode reduction temperature trainable".split()
)
# Keys that decide a layer's channels or its inputs: without them nothing after it can be assumed.
CHANNEL_KEYS = frozenset("out_channels out_features multiplier per_channel sizes parts layers first times shortcut from type".split())


def partial_spec(data: dict, wrong_keys: dict[tuple, set], source: Source) -> Spec | None:
    """The spec with each invalid layer repaired or stood in for, so the rest can still be checked.

    `wrong_keys` maps the path of each layer with a mistake (`()`: the spec itself) to the keys
    it got wrong (None: the layer as a whole), as `schema_errors.validation_problems` records them.

    A layer whose mistakes are only in keys that leave its channels alone is traced without those
    keys (its output is exact when they were shape-neutral; otherwise its spatial sizes are
    treated as unknown); any other invalid layer becomes an identity placeholder whose output is
    unknown. None when a problem lies outside the layers (in `input`, say).
    """
    broken = set(wrong_keys)
    if () in broken:
        return None
    outermost = {p for p in broken if not any(p[: i] in broken for i in range(1, len(p)))}
    repaired: dict[tuple, str] = {}
    rejected: set[str] = set()
    lenient = _replace_layers(data, (), outermost, wrong_keys, repaired, rejected)
    try:
        spec = Spec.model_validate(lenient)
    except ValidationError:
        return None
    spec._source = source
    spec._broken_layers = frozenset(outermost)
    spec._repaired_layers = dict(repaired)
    spec._rejected_names = frozenset(rejected)
    return spec


def _layer_model(node: Any) -> type[LayerBase] | None:
    if isinstance(node, dict) and isinstance(node.get("type"), str):
        return LAYER_MODELS.get(node["type"])
    return None


def _repair(node: Any, keys: set) -> tuple[dict, str] | None:
    """`node` without its wrong `keys`, and "exact" or "spatial" (what of its output can be trusted), or None."""
    model = _layer_model(node)
    if model is None or None in keys:
        return None
    fields = list(model.model_fields)

    def meant(key: Any) -> str | None:
        """The field `key` stands for: itself, through an alias, or (an unknown key) the one it misspells."""
        names = (*KEY_ALIASES.get(key, (key,)), *FOREIGN_KEYS.get(key, ())) if isinstance(key, str) else ()
        known = next((n for n in names if n in model.model_fields), None)
        if known is not None:
            return known
        close = difflib.get_close_matches(str(key), fields + list(KEY_ALIASES), n=1)
        return meant(close[0]) if close and close[0] != key else None  # None: intent unknown

    intents = {meant(key) for key in keys}
    if intents & CHANNEL_KEYS:
        return None
    repaired = {k: v for k, v in node.items() if k not in keys}
    try:
        model.model_validate(repaired)
    except ValidationError:
        return None
    return repaired, "exact" if None not in intents and intents <= SHAPE_NEUTRAL_KEYS else "spatial"


def _replace_layers(
    node: Any, path: tuple, broken: set[tuple], wrong_keys: dict[tuple, set], repaired: dict[tuple, str], rejected: set[str]
) -> Any:
    if path in broken:
        fixed = _repair(node, wrong_keys.get(path, {None}))
        name = node.get("name") if isinstance(node, dict) else None
        if fixed is not None and isinstance(name, str) and "name" not in fixed[0]:
            rejected.add(name)
        if fixed is not None:
            repaired[path] = fixed[1]
            return fixed[0]
        name = node.get("name") if isinstance(node, dict) else None
        if isinstance(name, str) and layer_name_problem(name) is not None:
            rejected.add(name)  # reported; a `from` or `outputs` naming it is not a second mistake
        kind = node.get("type") if isinstance(node, dict) else None
        if name is None and isinstance(kind, str) and NAME_PATTERN.fullmatch(kind):
            name = f"{kind}_{path[-1]}"  # the default name the layer would have had, so `from` still finds it
        valid_name = isinstance(name, str) and layer_name_problem(name) is None
        return {"type": "identity", **({"name": name} if valid_name else {})}
    if isinstance(node, dict):
        return {k: _replace_layers(v, path + (k,), broken, wrong_keys, repaired, rejected) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_layers(v, path + (i,), broken, wrong_keys, repaired, rejected) for i, v in enumerate(node)]
    return node
