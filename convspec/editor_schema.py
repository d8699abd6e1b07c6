"""The format's JSON Schema, shaped for editors and standard validators. No torch.

pydantic writes the union of layer kinds as `oneOf` with OpenAPI's `discriminator`,
which JSON Schema validators ignore: a one-letter typo in a conv layer then fails
every branch, and the editor shows "is not valid under any of the given schemas"
over dozens of sub-errors. `for_editors` reshapes what pydantic wrote:

- each union of layer kinds selects the kind's schema by its `type`, with one
  `if` / `then` per kind (JSON Schema 2020-12, section 10.2.2), so a validator
  reports the chosen kind's errors alone ("'stirde' was unexpected");
- a fixed filter's `filter` lists the named filters, and which of `kernel_size`
  and `sigma` each takes is both said and checked;
- a property schema that recurs in many layer kinds (`padding`, `init`, ...) is
  written once under `$defs/keys` and referred to, its description kept in place.
"""

from __future__ import annotations

import json
from typing import Any

from .kernels import NAMED_FILTERS

KEYS_GROUP = "keys"  # $defs/keys/$defs/NAME: property schemas shared by several layer kinds
SHARED_FROM_BYTES = 120  # smaller repeated schemas stay inline: a $ref would save little and read worse
KEPT_IN_PLACE = ("description", "default", "title")  # what differs between uses of one shared schema


def for_editors(schema: dict) -> dict:
    """`schema` (pydantic's, with templates added) reshaped as this module's docstring says; changed in place."""
    _plain_either_required(schema)
    _describe_filters(schema)
    _select_by_form(schema)
    _select_by_type(schema)
    _share_repeated_properties(schema)
    return schema


# ---------------------------------------------------------------- layer unions


def _objects(node: Any, seen: set[int] | None = None):
    """Every dict in the schema tree, outermost first, each object once (a schema may hold one object at two places)."""
    seen = set() if seen is None else seen
    if isinstance(node, (dict, list)):
        if id(node) in seen:
            return
        seen.add(id(node))
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _objects(value, seen)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value, seen)


def _unions(schema: Any):
    """Every {"discriminator": ..., "oneOf": ...} dict in the schema, outermost first, each object once."""
    return (node for node in _objects(schema) if "discriminator" in node and "oneOf" in node)


def by_type(mapping: dict[str, str], key: str = "type") -> dict:
    """The schema that validates an object against `mapping[object[key]]`, and nothing else.

    One `if` / `then` per value of `key`; the last entry lists the values, so an unknown one
    is one error naming the choices.
    """
    chain = [{"if": {"properties": {key: {"const": kind}}, "required": [key]}, "then": {"$ref": ref}} for kind, ref in mapping.items()]
    return {
        "type": "object",
        "required": [key],
        "allOf": [*chain, {"properties": {key: {"enum": sorted(mapping), "description": "the layer kind"}}}],
    }


def _select_by_type(schema: dict) -> None:
    """Each discriminated union in place as `by_type`; the unions that recur become one `$defs/Layer`."""
    found = list(_unions(schema))
    canonical = [json.dumps(union, sort_keys=True) for union in found]
    repeated = {text for text in canonical if canonical.count(text) > 1}
    shared: dict[str, str] = {}
    for union, text in zip(found, canonical):
        selector = by_type(union["discriminator"]["mapping"], union["discriminator"]["propertyName"])
        union.clear()
        if text in repeated:
            if text not in shared:
                name = "Layer" if "Layer" not in schema["$defs"] else f"Layer{len(shared) + 1}"
                schema["$defs"][name] = selector
                shared[text] = f"#/$defs/{name}"
            union["$ref"] = shared[text]
        else:
            union.update(selector)


# ---------------------------------------------------------------- a key or its alias


def either_required(name: str, alias: str) -> dict:
    """`name` or its alias `alias` must be given; missing both is one error naming `name`."""
    return {"if": {"required": [alias]}, "else": {"required": [name]}}


def _plain_either_required(node: Any) -> None:
    """Rewrite {"anyOf": [{"required": [a]}, {"required": [b]}]} (a required key or its alias) as `either_required`."""
    if isinstance(node, dict):
        for value in node.values():
            _plain_either_required(value)
        for index, entry in enumerate(node.get("allOf", [])):
            branches = entry.get("anyOf") if isinstance(entry, dict) and len(entry) == 1 else None
            if branches and len(branches) == 2 and all(set(b) == {"required"} and len(b["required"]) == 1 for b in branches):
                node["allOf"][index] = either_required(branches[0]["required"][0], branches[1]["required"][0])
    elif isinstance(node, list):
        for value in node:
            _plain_either_required(value)


# ---------------------------------------------------------------- named filters


def _filter_names() -> dict:
    lines = [f"{info.name} ({'/'.join(f'{d}D' for d in info.dims)}): {info.description}" for info in NAMED_FILTERS.values()]
    return {"enum": list(NAMED_FILTERS), "description": "a named filter; " + "; ".join(lines)}


REFUSED = {"not": {}}  # not `false`: jsonschema then reports the key's own path, so an editor marks the key
FIXED_SIZE = 3  # the 3x3 filters (sobel_x, ...) take kernel_size only as their own size


def _when(names: list[str], then: dict) -> dict:
    return {"if": {"properties": {"filter": {"enum": names}}, "required": ["filter"]}, "then": then}


def _filter_rules() -> list[dict]:
    """What each named filter takes, as `kernels.make_filter` checks it (tests compare the two)."""
    fixed = [name for name, info in NAMED_FILTERS.items() if not info.takes_kernel_size]
    no_sigma = [name for name, info in NAMED_FILTERS.items() if not info.takes_sigma]
    own_size = {"enum": [FIXED_SIZE, [FIXED_SIZE, FIXED_SIZE]], "description": "a fixed 3x3 filter: kernel_size 3 or nothing"}
    rules = [
        _when(fixed, {"properties": {"kernel_size": own_size, "kernel": own_size}}),
        _when(no_sigma, {"properties": {"sigma": REFUSED}}),
    ]
    if "box" in NAMED_FILTERS:
        rules.append(_when(["box"], either_required("kernel_size", "kernel")))
    if "gaussian" in NAMED_FILTERS:  # kernel_size, sigma or both
        size_or_sigma = {"if": {"anyOf": [{"required": ["kernel"]}, {"required": ["sigma"]}]}, "else": {"required": ["kernel_size"]}}
        rules.append(_when(["gaussian"], size_or_sigma))
    if "identity" in NAMED_FILTERS:  # a single 1 at the centre: an odd size
        odd = {"not": {"multipleOf": 2}}
        odd_size = {"if": {"type": "integer"}, "then": odd, "else": {"items": odd}, "description": "odd, one 1 at its centre"}
        rules.append(_when(["identity"], {"properties": {"kernel_size": odd_size, "kernel": odd_size}}))
    return [rule for rule in rules if rule["if"]["properties"]["filter"]["enum"]]


PLAIN_FILTER = ({"type": "string"}, {"anyOf": [{"type": "string"}, {"type": "array"}]})  # as pydantic writes them


def _describe_filters(schema: dict) -> None:
    """`filter` of a fixed layer and of `init: {filter: ...}`: the names listed, each one's keys checked.

    Templates (`blocks:`) keep their looser `filter`: a placeholder may stand for it.
    """
    for definition in _definitions(schema):
        current = definition["properties"].get("filter")
        if not isinstance(current, dict):
            continue
        kept = {k: v for k, v in current.items() if k in KEPT_IN_PLACE}
        form = {k: v for k, v in current.items() if k not in KEPT_IN_PLACE}
        if form == PLAIN_FILTER[0]:
            definition["properties"]["filter"] = {**kept, **_filter_names()}
        elif form == PLAIN_FILTER[1]:  # if / then / else rather than anyOf: a wrong name is one error listing the names
            literal = {"type": "array", "description": "a literal kernel: nested lists, one level per spatial dim"}
            definition["properties"]["filter"] = {**kept, "if": {"type": "string"}, "then": _filter_names(), "else": literal}
        else:
            continue
        definition.setdefault("allOf", []).extend(_filter_rules())


def _definitions(schema: Any):
    """Every object schema with `properties` in the tree, each object once."""
    return (node for node in _objects(schema) if isinstance(node.get("properties"), dict))


# ---------------------------------------------------------------- values of several forms


def _branches(node: dict) -> list[dict]:
    """The alternatives of an anyOf, nested anyOfs flattened (a description beside one is dropped)."""
    found = []
    for branch in node["anyOf"]:
        if isinstance(branch, dict) and set(branch) - set(KEPT_IN_PLACE) == {"anyOf"}:
            found.extend(_branches(branch))
        else:
            found.append(branch)
    return found


def _by_form(branches: list[dict]) -> dict | None:
    """The anyOf `branches` as one if / then / else chain on the value's JSON type (and an object's one key),
    so a wrong value is one error from the form it has; None where the branches do not allow it.

    Takes at most one string enum, one array and one null form, and objects that each require
    one key of their own (`init`'s {constant: v}, {uniform: [a, b]}, {filter: NAME, ...}).
    """
    forms: dict[str, dict] = {}
    objects: dict[str, dict] = {}
    for branch in branches:
        if not isinstance(branch, dict):
            return None
        if "enum" in branch and all(isinstance(v, str) for v in branch["enum"]):
            form = "string"
        elif branch.get("type") == "object" and len(branch.get("required", [])) == 1:
            key = branch["required"][0]
            if key in objects:
                return None
            objects[key] = branch
            continue
        elif branch.get("type") in ("array", "null"):
            form = branch["type"]
        else:
            return None
        if form in forms:
            return None
        forms[form] = branch
    if not objects or not forms:
        return None
    chain = [{"if": {"required": [key]}, "then": branch} for key, branch in objects.items()]
    keys = [{"required": [key]} for key in objects]
    selected: dict = {"type": "object", "allOf": [*chain, {"anyOf": keys} if len(keys) > 1 else keys[0]]}
    for form in ("null", "array", "string"):  # innermost last: each form's own schema under `if: {type: ...}`
        if form in forms:
            selected = {"if": {"type": form}, "then": forms[form], "else": selected}
    return selected


def _select_by_form(node: Any) -> None:
    if isinstance(node, dict):
        for value in node.values():
            _select_by_form(value)
        if isinstance(node.get("anyOf"), list):
            branches = _branches(node)
            selected = _by_form(branches)
            others = [b for b in branches if b != {"type": "null"}]
            if selected is None and len(others) == len(branches) - 1:  # X or null: X's own errors, not "any of"
                selected = {"if": {"type": "null"}, "else": others[0] if len(others) == 1 else {"anyOf": others}}
            if selected is not None:
                del node["anyOf"]
                node.update(selected)
    elif isinstance(node, list):
        for value in node:
            _select_by_form(value)


# ---------------------------------------------------------------- shared property schemas


def _canonical(value: dict) -> str:
    return json.dumps({k: v for k, v in value.items() if k not in KEPT_IN_PLACE}, sort_keys=True)


def _drop_generated_titles(node: Any) -> None:
    """pydantic titles each property after its key ("Out Channels"); the key says as much."""
    if isinstance(node, dict):
        for key, value in (node.get("properties") or {}).items():
            if isinstance(value, dict) and value.get("title") == key.replace("_", " ").title():
                del value["title"]
        for value in node.values():
            _drop_generated_titles(value)
    elif isinstance(node, list):
        for value in node:
            _drop_generated_titles(value)


def shareable_definitions(root: Any):
    """The object schemas whose properties may be shared: not the `if` of a condition (a test, not a shape)."""
    return (d for d in _definitions(root) if not set(d) <= {"properties", "required"})


def _share_repeated_properties(schema: dict) -> None:
    """Move each property schema written more than once (apart from its description) to `$defs/keys`.

    The description stays beside the `$ref`: each layer kind keeps its own words for its key.
    """
    _drop_generated_titles(schema)
    group: dict[str, dict] = {}
    refs: dict[str, str] = {}

    def share(root: Any) -> None:
        # every property's text first: replacing one may change the text of another that holds it
        found = [
            (definition, key, value, _canonical(value))
            for definition in shareable_definitions(root)
            for key, value in definition["properties"].items()
            if isinstance(value, dict) and "$ref" not in value
        ]
        counts: dict[str, int] = {}
        for *_, text in found:
            if len(text) >= SHARED_FROM_BYTES:
                counts[text] = counts.get(text, 0) + 1
        for definition, key, value, text in found:
            if counts.get(text, 0) < 2:
                continue
            if text not in refs:
                name = key if key not in group else next(f"{key}_{n}" for n in range(2, 10_000) if f"{key}_{n}" not in group)
                group[name] = json.loads(text)
                refs[text] = f"#/$defs/{KEYS_GROUP}/$defs/{name}"
            definition["properties"][key] = {"$ref": refs[text], **{k: v for k, v in value.items() if k in KEPT_IN_PLACE}}

    share(schema)
    share(dict(group))  # schemas inside a shared one share too
    if group:
        schema["$defs"][KEYS_GROUP] = {"description": "property schemas that several layer kinds share", "$defs": group}
        _inline_single_uses(schema, group)


def _inline_single_uses(schema: dict, group: dict[str, dict]) -> None:
    """Put back in place a shared schema used once (its other uses were inside another shared one) and drop
    one used nowhere, until every one left is used at least twice."""
    text = json.dumps(schema)
    single = {f"#/$defs/{KEYS_GROUP}/$defs/{name}": name for name in group if text.count(f'"#/$defs/{KEYS_GROUP}/$defs/{name}"') <= 1}
    if not single:
        return

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, dict) and value.get("$ref") in single:
                    name = single[value["$ref"]]
                    node[key] = {**group[name], **{k: v for k, v in value.items() if k != "$ref"}}
                walk(node[key])
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    for name in single.values():
        del group[name]
    _inline_single_uses(schema, group)
