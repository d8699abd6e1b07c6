"""`convspec resolve`: the final spec, as YAML, with everything a load does already done. No torch.

The text is the data the validator saw: `extends` merged, `--set` values in
place, block templates expanded, a `--scale` preset applied (and its `scales:`
and `channel_divisor` dropped, being spent). Checking it gives the same report
as checking the spec it came from with the same options. A layer the preset
changed carries a comment with what the spec asked for.
"""

from __future__ import annotations

from typing import Any

import yaml

from .schema import Spec
from .trace import load_and_check

SPENT_KEYS = ("extends", "blocks", "scales", "channel_divisor")  # applied by the load; meaningless after it
LIST_KEYS = ("layers", "shortcut", "first")
TOP_ORDER = ("convspec", "name", "input", "memory_format", "batch_norm", "outputs", "layers")


def resolve(spec: Any, *, scale: str | None = None, overrides: Any = None) -> str:
    """The spec (a path, YAML text, dict or Spec) loaded with `scale` and `overrides`, checked, and
    written out as one self-contained YAML spec. Raises SpecError if the spec is invalid, InputError
    for an unknown scale or a malformed override (see `convspec.load`)."""
    report = load_and_check(spec, require_size=False, scale=scale, overrides=overrides)
    report.raise_for_errors()
    return resolved_yaml(report.spec)


def _dump(value: Any) -> str:
    """A mapping or list as one line of flow-style YAML."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=float("inf"), allow_unicode=True).strip()


def _entry(key: str, value: Any) -> str:
    """'key: value' on one line (a one-key flow mapping without its braces)."""
    return _dump({key: value})[1:-1]


def resolved_yaml(spec: Spec) -> str:
    """A loaded Spec's final data as YAML text (see the module's docstring)."""
    data = dict(spec.source.data)
    for key in SPENT_KEYS:
        data.pop(key, None)
    if data.get("name") is None and spec.name is not None:
        data["name"] = spec.name  # the file's stem, which a copy elsewhere would not have
    scaling = spec._scaling
    lines = []
    if scaling is not None:
        lines.append(f"# scale {scaling.factors.describe()} applied")
    ordered = [k for k in TOP_ORDER if k in data] + [k for k in data if k not in TOP_ORDER]
    for key in ordered:
        if key == "layers" and isinstance(data[key], list):
            lines.append("layers:")
            lines += _layers(data[key], ("layers",), 1, scaling)
        else:
            lines.append(_entry(key, data[key]))
    return "\n".join(lines) + "\n"


def _note(path: tuple, scaling) -> str:
    if scaling is None:
        return ""
    notes = []
    if path in scaling.channels and scaling.channels[path][0] != scaling.channels[path][1]:
        notes.append(f"out_channels {scaling.channels[path][0]} -> {scaling.channels[path][1]}")
    if path in scaling.repeats and scaling.repeats[path][0] != scaling.repeats[path][1]:
        notes.append(f"times {scaling.repeats[path][0]} -> {scaling.repeats[path][1]}")
    return f"  # {', '.join(notes)}" if notes else ""


def _layers(items: list, path: tuple, level: int, scaling) -> list[str]:
    """A layer list, one flow mapping per layer; a container's inner lists nested in block style."""
    pad = "  " * level
    lines = []
    for index, layer in enumerate(items):
        here = path + (index,)
        inner = [k for k in LIST_KEYS if isinstance(layer, dict) and isinstance(layer.get(k), list)]
        if not inner:
            lines.append(f"{pad}- {_dump(layer)}{_note(here, scaling)}")
            continue
        own = {k: v for k, v in layer.items() if k not in inner}
        first = True
        for key, value in own.items():
            lead = f"{pad}- " if first else f"{pad}  "
            lines.append(f"{lead}{_entry(key, value)}{_note(here, scaling) if first else ''}")
            first = False
        for key in inner:
            lead = f"{pad}- " if first else f"{pad}  "
            lines.append(f"{lead}{key}:")
            first = False
            lines += _layers(layer[key], here + (key,), level + 2, scaling)
    return lines
