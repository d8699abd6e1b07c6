"""Scaling presets: one spec, many sizes (Ultralytics' width / depth / max_channels rule). No torch.

A spec names its sizes in `scales:` and a command picks one with `--scale NAME`
(`scale=` in Python). `scale_data` is the one place the rule is applied: it
rewrites the spec's plain data after block templates are expanded and before it
is validated, so every later step (validation, the checker, the builder,
`convspec resolve`) sees ordinary numbers at their written positions, and a
mistake the rounding causes is reported at the key that was rounded.

The rule, from Ultralytics' `parse_model` (ultralytics/nn/tasks.py):

- the output channels `c` of a conv-family layer become
  `make_divisible(min(c, max_channels) * width, channel_divisor)`;
- a repeat's `times` `n` becomes `max(round(n * depth), 1)` when `n > 1`.

Left as written: `linear` (its outputs are classes), `depthwise` (its channels
are its input's), `fixed` filters (known kernels), and every layer marked
`keep_width: true` (or inside a container so marked); a repeat marked
`keep_depth: true` keeps its `times`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError, Problem, did_you_mean, listing, quote

# Conv-family kinds whose `out_channels` a preset scales; `depthwise` follows its input.
WIDTH_KINDS = frozenset({"conv", "pointwise", "asymmetric", "dilated", "group", "separable", "transposed", "dynamic"})
CHANNEL_KEYS = ("out_channels", "out")  # the key and its alias
LIST_KEYS = ("layers", "shortcut", "first")  # the keys of a layer that hold layer lists
DEFAULT_DIVISOR = 8


def make_divisible(value: float, divisor: int) -> int:
    """`value` rounded up to a multiple of `divisor`: ceil(value / divisor) * divisor.

    Ultralytics' `make_divisible` (ultralytics/utils/ops.py), computed in floats as it is, so
    a preset gives the channel counts Ultralytics gives.
    """
    return math.ceil(value / divisor) * divisor


@dataclass(frozen=True)
class Factors:
    """A chosen preset: its name, width and depth multipliers, channel cap (None: no cap) and divisor."""

    name: str | None = None
    width: float = 1.0
    depth: float = 1.0
    max_channels: int | None = None
    divisor: int = DEFAULT_DIVISOR

    def channels(self, requested: int) -> int:
        """Output channels under this preset: make_divisible(min(c, max_channels) * width, divisor)."""
        capped = requested if self.max_channels is None else min(requested, self.max_channels)
        return make_divisible(capped * self.width, self.divisor)

    def times(self, requested: int) -> int:
        """A repeat's copies under this preset: max(round(n * depth), 1) for n > 1; 1 stays 1."""
        return max(round(requested * self.depth), 1) if requested > 1 else requested

    def describe(self) -> str:
        """'n' (width 0.25, depth 0.33, max_channels 1024, channel_divisor 8), for messages."""
        cap = f", max_channels {self.max_channels}" if self.max_channels is not None else ""
        return f"{quote(self.name)} (width {self.width:g}, depth {self.depth:g}{cap}, channel_divisor {self.divisor})"


@dataclass
class Scaling:
    """What a preset changed: for each layer's data path, its (requested, scaled) out_channels or times."""

    factors: Factors
    channels: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    repeats: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    def requested(self, path: tuple) -> dict[str, int] | None:
        """What the spec asked for at a layer where the preset changed it: {'out_channels': 64} or {'times': 3}."""
        asked = {}
        if path in self.channels and self.channels[path][0] != self.channels[path][1]:
            asked["out_channels"] = self.channels[path][0]
        if path in self.repeats and self.repeats[path][0] != self.repeats[path][1]:
            asked["times"] = self.repeats[path][0]
        return asked or None


def _whole(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _positive(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def choose_factors(data: dict, scale: str | None, file: str | None = None) -> Factors | None:
    """The preset `scale` of the spec's data, or None when no scale is asked for.

    Raises InputError (a usage error) when the spec has no `scales:` or no preset of that name
    (with "did you mean"). A preset whose values are not valid numbers gives None: the
    validator reports those, located, and nothing is scaled meanwhile.
    """
    if scale is None:
        return None
    if not isinstance(scale, str):
        raise InputError(f"scale must be the name of one of the spec's `scales`, not {type(scale).__name__}")
    where = file if file and not file.startswith("<") else "the spec"
    scales = data.get("scales")
    if scales is None:
        raise InputError(f"scale {quote(scale)} asked for, but {where} has no `scales:`; add them or drop the scale")
    if not isinstance(scales, dict):
        return None
    if scale not in scales:
        names = [str(name) for name in scales]
        raise InputError(f"scale {quote(scale)} is not one of the scales of {where} ({listing(names) or 'none'}){did_you_mean(scale, names)}")
    preset = scales[scale]
    divisor = data.get("channel_divisor", DEFAULT_DIVISOR)
    if not isinstance(preset, dict) or not _whole(divisor):
        return None
    width, depth, cap = preset.get("width", 1.0), preset.get("depth", 1.0), preset.get("max_channels")
    if not (_positive(width) and _positive(depth) and (cap is None or _whole(cap))):
        return None
    return Factors(scale, float(width), float(depth), cap, int(divisor))


def expression_factors(data: dict, factors: Factors | None) -> dict[str, float | int]:
    """The names expressions use for the scale's factors: the chosen preset's, or 1, 1, no cap (a
    number larger than any channel count) and the spec's divisor when no scale is chosen."""
    from .limits import INT_LIMIT

    if factors is None:
        divisor = data.get("channel_divisor", DEFAULT_DIVISOR)
        factors = Factors(divisor=divisor if _whole(divisor) else DEFAULT_DIVISOR)
    cap = INT_LIMIT if factors.max_channels is None else factors.max_channels
    return {"width": factors.width, "depth": factors.depth, "max_channels": cap, "channel_divisor": factors.divisor}


def scale_data(data: dict, factors: Factors) -> tuple[dict, Scaling]:
    """The spec's data with `factors` applied (a copy where it changes), and what changed.

    Values that are not whole numbers are left for the validator to report.
    """
    record = Scaling(factors)
    layers = data.get("layers")
    if isinstance(layers, list):
        data = {**data, "layers": _scale_list(layers, ("layers",), False, factors, record)}
    return data, record


def _scale_list(items: list, path: tuple, keep: bool, factors: Factors, record: Scaling) -> list:
    return [_scale_layer(item, path + (i,), keep, factors, record) if isinstance(item, dict) else item for i, item in enumerate(items)]


def _scale_layer(layer: dict, path: tuple, keep: bool, factors: Factors, record: Scaling) -> dict:
    layer = dict(layer)
    keep = keep or layer.get("keep_width") is True
    kind = layer.get("type")
    if kind in WIDTH_KINDS and not keep:
        for key in CHANNEL_KEYS:
            if _whole(layer.get(key)):
                requested = layer[key]
                layer[key] = factors.channels(requested)
                record.channels[path] = (requested, layer[key])
    if kind == "repeat" and layer.get("keep_depth") is not True and _whole(layer.get("times")):
        requested = layer["times"]
        layer["times"] = factors.times(requested)
        record.repeats[path] = (requested, layer["times"])
    for key in LIST_KEYS:
        if isinstance(layer.get(key), list):
            layer[key] = _scale_list(layer[key], path + (key,), keep, factors, record)
    return layer


# ---------------------------------------------------------------- joins the rounding broke

JOIN_KINDS = ("add", "mul", "residual")


def explain_joins(report, problems: list[Problem]) -> list[Problem]:
    """`problems` with a note on each unequal-shapes problem of an add, mul or residual under a preset:
    which of the joined layers the preset rounded, and how, so the cause is plain before anything builds."""
    scaling = report.spec._scaling
    if scaling is None or not problems:
        return problems
    troubled = {getattr(problem.layer, "path", None) for problem in problems}  # only these joins need a look
    notes: dict[tuple, str] = {}
    for layer in report.walk():
        if layer.type not in JOIN_KINDS or _label_of(layer.path) not in troubled:
            continue
        joined = _joined(layer, report)
        rounded = [f"{name} {asked} -> {got}" for name, asked, got in joined if asked != got]
        kept = [name for name, asked, got in joined if asked == got]
        if not rounded:
            continue
        note = (
            f"; under scale {scaling.factors.describe()} out_channels became: {listing(rounded)}"
            + (f", while {listing(kept)} kept {'its' if len(kept) == 1 else 'their'} channels" if kept else "")
            + "; mark a layer `keep_width: true` or change the requested channels so the joined widths agree"
        )
        notes[layer.path] = note
    rounded_here = {
        path: f"; under scale {quote(scaling.factors.name)} its out_channels {asked} became {got}"
        for path, (asked, got) in scaling.channels.items() if asked != got
    }
    if not notes and not rounded_here:
        return problems
    join_labels = {_label_of(path): path for path in notes}
    rounded_labels = {_label_of(path): path for path in rounded_here}
    out = []
    for problem in problems:
        path = _problem_path(problem, join_labels)
        if path is not None and ("equal" in problem.message or "broadcast" in problem.message):
            problem = Problem(problem.message + notes[path], problem.location, problem.layer)
        else:  # a layer the preset rounded, whose out_channels no longer fit its groups
            path = _problem_path(problem, rounded_labels)
            if path is not None and ("out_channels" in problem.message or "groups" in problem.message):
                problem = Problem(problem.message + rounded_here[path], problem.location, problem.layer)
        out.append(problem)
    return out


def _problem_path(problem: Problem, labels: dict[str, tuple]) -> tuple | None:
    """The layer path of the layer `problem` is about, among `labels` ('layers[3]' -> ('layers', 3))."""
    label = getattr(problem.layer, "path", None)
    return labels.get(label) if label else None


def _label_of(path: tuple) -> str:
    """('layers', 3, 'layers', 0) -> 'layers[3].layers[0]', as problems label layers."""
    return ".".join(f"{path[i]}[{path[i + 1]}]" for i in range(0, len(path) - 1, 2))


def _joined(layer, report) -> list[tuple[str, int, int]]:
    """(name, requested, scaled) of the last layer the preset scaled in each input of a join: its `from`
    layers, or a residual's branch and shortcut. Read from the data, so a failed join has them too."""
    scaling, data = report.spec._scaling, report.spec.source.data
    if layer.type == "residual":
        prefixes = [layer.path + ("layers",), layer.path + ("shortcut",)]
    else:
        items = _at(data, layer.path[:-1])
        names = _names(items) if isinstance(items, list) else {}
        prefixes = [layer.path[:-1] + (names[name],) for name in layer.sources if name in names]
    found = []
    for prefix in prefixes:
        inside = [path for path in scaling.channels if path[: len(prefix)] == prefix]
        if inside:
            path = max(inside)
            asked, got = scaling.channels[path]
            found.append((_names_of(data, path), asked, got))
    return found


def _at(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _names(items: list) -> dict[str, int]:
    names = {}
    for index, item in enumerate(items):
        if isinstance(item, dict):
            name = item.get("name") if isinstance(item.get("name"), str) else f"{item.get('type')}_{index}"
            names.setdefault(name, index)
    return names


def _names_of(data: Any, path: tuple) -> str:
    layer = _at(data, path)
    return layer.get("name") if isinstance(layer.get("name"), str) else f"{layer.get('type')}_{path[-1]}"
