"""The JSON Schema of the spec format (`convspec.json_schema`), for editors and validators."""

from __future__ import annotations

from .schema import KEY_ALIASES, Spec
from .template_schema import template_json_schema


def json_schema() -> dict:
    """The JSON Schema of the format, for editors (yaml-language-server) and validators.

    Includes the registered kinds and those of installed plugins (entry points `convspec.kinds`);
    raises `plugins.PluginError` naming a plugin that cannot be used.
    """
    from .plugins import discover_or_fail

    discover_or_fail()
    schema = Spec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "convspec spec"
    # The short aliases are accepted by the loader; tell editors about them too.
    for definition in schema.get("$defs", {}).values():
        props = definition.get("properties", {})
        for short, longs in KEY_ALIASES.items():
            for long in longs:
                if long in props and short not in props:
                    alias = dict(props[long])
                    alias["description"] = f"alias of `{long}`"
                    props[short] = alias
                    required = definition.get("required", [])
                    if long in required:
                        # either spelling satisfies the requirement (one anyOf per required key)
                        required.remove(long)
                        definition.setdefault("allOf", []).append({"anyOf": [{"required": [long]}, {"required": [short]}]})
    template_json_schema(schema)  # `blocks:` templates and `use` layers, expanded before validation
    from .compose import extends_json_schema
    from .editor_schema import for_editors

    # a spec with `extends` holds only changes to its base; then unions selected by `type`, filters named, repeated schemas shared
    return for_editors(extends_json_schema(schema))
