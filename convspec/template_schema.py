"""The JSON Schema of block templates: `blocks:`, `use` layers, and a `$param` placeholder allowed in every templated value."""

from __future__ import annotations

import copy
from typing import Any

from .templates import BLOCK_NAME, PARAM_NAME

_GROUP = "blocks"  # the definitions below live in $defs/blocks/$defs, apart from the layer models'
_PLACEHOLDER_JSON = {
    "type": "string",
    "pattern": r"^(?:[^$]*[^$A-Za-z0-9_])?\$",  # a `$` starting a term: `$out`, `$out * 2`, `max($a, 4)`; not `conv_$k`
    "description": "a parameter of the enclosing block template, e.g. $out, or an expression, e.g. $out * 2 or $(64 * width)",
}


def _group_ref(name: str) -> str:
    return f"#/$defs/{_GROUP}/$defs/{name}"


def _layer_unions(node: Any):
    """Every `oneOf` of layer kinds (discriminated on `type`) in the schema."""
    if isinstance(node, dict):
        discriminator = node.get("discriminator")
        if isinstance(discriminator, dict) and discriminator.get("propertyName") == "type" and "conv" in discriminator.get("mapping", {}):
            yield node
        for value in node.values():
            yield from _layer_unions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layer_unions(value)


class _TemplatedSchema:
    """Copies of definitions in which every value may also be a `$param` placeholder.

    `Open<Def>` is the copy without `additionalProperties: false`, so that
    `Template<Def>` (a layer inside a template) and `Block<Def>` (a template's top
    layer, which adds `params`) can close it with `unevaluatedProperties`.
    """

    def __init__(self, defs: dict, group: dict, layer_union: dict):
        self.defs, self.group, self.layer_union = defs, group, layer_union

    def target(self, ref: str) -> str:
        name = ref.rsplit("/", 1)[-1]
        closed = f"Template{name}"
        if closed not in self.group:
            open_ = f"Open{name}"
            self.group[closed] = {"$ref": _group_ref(open_), "unevaluatedProperties": False}
            self.group[open_] = {}  # reserved first: definitions refer to each other
            source = self.group[name] if ref == _group_ref(name) else self.defs[name]
            body = self.copy(source, wrap=False)
            body.pop("additionalProperties", None)
            self.group[open_] = body
        return _group_ref(closed)

    def union(self, node: dict) -> dict:
        """One shared definition for "any layer" inside a template."""
        if "TemplateLayer" not in self.group:
            self.group["TemplateLayer"] = {}
            self.group["TemplateLayer"] = {
                "discriminator": {**node["discriminator"], "mapping": {k: self.target(v) for k, v in node["discriminator"]["mapping"].items()}},
                "oneOf": [{"$ref": self.target(v["$ref"])} for v in node["oneOf"]],
            }
        return {"$ref": _group_ref("TemplateLayer")}

    def copy(self, node: Any, wrap: bool) -> Any:
        if not isinstance(node, dict):
            return copy.deepcopy(node)
        if node == self.layer_union:
            out = self.union(node)
        else:
            out = {}
            for key, value in node.items():
                if key == "$ref":
                    out[key] = self.target(value)
                elif key == "properties":
                    # a layer's `type` stays literal: it picks the kind
                    out[key] = {k: (copy.deepcopy(v) if k == "type" else self.copy(v, wrap=True)) for k, v in value.items()}
                elif key in ("items", "additionalProperties") and isinstance(value, dict):
                    out[key] = self.copy(value, wrap=True)
                elif key in ("anyOf", "oneOf", "allOf"):
                    out[key] = [self.copy(v, wrap=False) for v in value]
                else:
                    out[key] = copy.deepcopy(value)
        if not wrap:
            return out
        wrapped: dict = {"anyOf": [{"$ref": _group_ref("Placeholder")}, out]}
        if "description" in out:
            wrapped["description"] = out["description"]
        return wrapped


def template_json_schema(schema: dict) -> None:
    """Add `blocks:` and `use` layers to the format's JSON Schema (in place).

    A `use` layer is accepted wherever a layer is. In a template every value
    except a layer's `type` may be a placeholder, and a template's top layer
    takes `params` and no `name` or `from`.
    """
    defs = schema["$defs"]
    group: dict = {"Placeholder": _PLACEHOLDER_JSON}
    layer_props = defs["ConvLayer"]["properties"]
    group["UseLayer"] = {
        "type": "object",
        "title": "UseLayer",
        "description": "An instance of a block template: the template's layer with the `with:` values in place of its `$params`.",
        "properties": {
            "name": copy.deepcopy(layer_props["name"]),
            "from": copy.deepcopy(layer_props["from"]),
            "type": {"const": "use", "type": "string"},
            "block": {"type": "string", "description": "the name of a template in `blocks:`"},
            "with": {
                "type": "object",
                "description": "a value for each parameter of the template (whole YAML values)",
                "propertyNames": {"pattern": PARAM_NAME.pattern},
            },
        },
        "required": ["type", "block"],
        "additionalProperties": False,
    }
    unions = list(_layer_unions(schema))
    for union in unions:
        union["oneOf"].append({"$ref": _group_ref("UseLayer")})
        union["discriminator"]["mapping"]["use"] = _group_ref("UseLayer")
    templated = _TemplatedSchema(defs, group, copy.deepcopy(unions[0]))
    roots: dict[str, str] = {}
    for kind, ref in unions[0]["discriminator"]["mapping"].items():
        templated.target(ref)
        name = ref.rsplit("/", 1)[-1]
        group[f"Block{name}"] = {
            "$ref": _group_ref(f"Open{name}"),
            "properties": {
                "params": {
                    "type": "object",
                    "description": "the template's parameters and their defaults; `required` marks one that `with:` must give",
                    "propertyNames": {"pattern": PARAM_NAME.pattern},
                }
            },
            "not": {"anyOf": [{"required": ["name"]}, {"required": ["from"]}]},  # given on the `use` layer
            "unevaluatedProperties": False,
        }
        roots[kind] = _group_ref(f"Block{name}")
    defs[_GROUP] = {"description": "block templates (`blocks:`) and their instances (`use`)", "$defs": group}
    schema["properties"]["blocks"] = {
        "type": "object",
        "description": schema["properties"].get("blocks", {}).get("description", "named block templates"),
        "propertyNames": {"pattern": BLOCK_NAME.pattern},
        "additionalProperties": {
            "discriminator": {"propertyName": "type", "mapping": roots},
            "oneOf": [{"$ref": ref} for ref in roots.values()],
        },
    }
