"""Shape rules of the layers that wire the graph: the joins (add, mul, concat), split, and the containers (block, repeat, residual)."""

from __future__ import annotations

import math

from .errors import LISTED_NAMES, shorten
from .plans import ContainerPlan, JoinPlan, SplitPlan, act_plan
from .report import LayerReport
from .schema import LayerBase
from .shapes import MAX_LAYERS, LayerFailed, Traced, TracedLayer, Value, divisors_text, merged_field


def _compatible(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def rule_add(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Element-wise sum of equal shapes, then `act`: the shape unchanged (additions are not counted as MACs)."""
    first = inputs[0]
    for name, value in zip(layer.model.sources[1:], inputs[1:]):
        if not _compatible(first.shape, value.shape):
            layer.error(
                "from",
                f"add needs equal shapes, but {layer.model.sources[0]!r} gives {list(first.shape)} and {name!r} gives {list(value.shape)}",
            )
            same_rank = all(len(v.shape) == len(first.shape) and v.flat == first.flat for v in inputs)
            if same_rank and len({v.shape[1] for v in inputs}) == 1:  # the channels agree: only the sizes are unknown
                spatial = len(first.spatial)
                raise LayerFailed(Value((*first.shape[:2], *(None,) * spatial), first.rf, (None,) * spatial, first.flat))
            raise LayerFailed
    rf, jump = merged_field(inputs)
    shape = tuple(next((x for x in dim if x is not None), None) for dim in zip(*(v.shape for v in inputs)))
    return Traced(Value(shape, rf, jump, first.flat), plan=JoinPlan("add", act_plan(layer.model.act)))


def _broadcast(a: int | None, b: int | None) -> int | None | bool:
    """One dim of two broadcast shapes: the size (None if unknown), or False if they cannot broadcast."""
    if a == 1:
        return b
    if b == 1:
        return a
    if a is None or b is None:
        return b if a is None else a  # an unknown size: the known one, which it must equal (or be 1)
    return a if a == b else False


def rule_mul(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Element-wise product, broadcasting size-1 dims as torch does (an SE gate B x C x 1 x 1 times a map B x C x H x W).

    MACs: the multiplies of the product taken left to right, one per value of each partial
    product; for a map times gates (the map first), one per output value per gate.
    """
    names = layer.model.sources
    first = inputs[0]
    shape: tuple = first.shape
    macs: int | None = 0
    for name, value in zip(names[1:], inputs[1:]):
        if len(value.shape) != len(shape) or value.flat != first.flat:
            layer.fail(
                "from",
                f"mul needs inputs of the same rank, but {names[0]!r} gives {list(first.shape)} and {name!r} gives "
                f"{list(value.shape)}; {'flatten both or neither' if value.flat != first.flat else 'pool or reshape one to match'}",
            )
        joined = tuple(_broadcast(a, b) for a, b in zip(shape, value.shape))
        if any(d is False for d in joined):
            bad = [i for i, d in enumerate(joined) if d is False]
            dims = ", ".join(f"dim {i} ({shape[i]} vs {value.shape[i]})" for i in bad)
            before = repr(names[0]) if len(inputs) == 2 else "the inputs before it"
            layer.fail(
                "from",
                f"mul multiplies equal sizes or broadcasts a size 1, but {before} and {name!r} differ in {dims}: "
                f"{list(shape)} and {list(value.shape)}; make them equal, or pool one to size 1 (a gate)",
            )
        shape = joined
        macs = macs + math.prod(shape) if macs is not None and None not in shape else None
    rf, _ = merged_field(inputs)
    # a gate broadcast over a dim (size 1 there) sees the whole input but does not set the map's step along it
    spatial = shape[2:] if not first.flat else ()
    jump = tuple(
        merged_field([v for v in inputs if v.flat or v.spatial[axis] != 1 or spatial[axis] == 1] or inputs)[1][axis]
        for axis in range(len(rf))
    )
    return Traced(Value(shape, rf, jump, first.flat), macs=macs or 0, plan=JoinPlan("mul"))


def rule_concat(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Concatenation along channels: (B, C_i, *S) -> (B, sum of C_i, *S); every other dim must agree."""
    first = inputs[0]
    names = layer.model.sources
    for name, value in zip(names[1:], inputs[1:]):
        if value.flat != first.flat or not _compatible(first.shape[2:], value.shape[2:]) or len(first.shape) != len(value.shape):
            layer.error(
                "from",
                f"concat joins along channels, so all other dims must agree, but {names[0]!r} gives {list(first.shape)} "
                f"and {name!r} gives {list(value.shape)}",
            )
            if not first.flat and all(len(v.shape) == len(first.shape) and not v.flat for v in inputs):
                spatial = len(first.spatial)  # the channels still add up; the sizes are unknown
                raise LayerFailed(Value((first.shape[0], sum(v.shape[1] for v in inputs), *(None,) * spatial), first.rf, (None,) * spatial))
            raise LayerFailed
    channels = None if any(v.shape[1] is None for v in inputs) else sum(v.shape[1] for v in inputs)
    rf, jump = merged_field(inputs)
    spatial = tuple(next((x for x in dim if x is not None), None) for dim in zip(*(v.shape[2:] for v in inputs)))
    return Traced(Value((first.shape[0], channels, *spatial), rf, jump, first.flat), plan=JoinPlan("concat"))


def rule_split(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Channel split into `parts` equal parts or `sizes`: (B, C, ...) passed on; part i is the child NAME.i, (B, C_i, ...)."""
    model, value = layer.model, inputs[0]
    channels = value.shape[1]
    what = "features" if value.flat else "channels"
    if channels is None:
        layer.fail(None, f"cannot split an unknown number of {what}; give `input.size` or pool to a fixed size first")
    if model.sizes is not None:
        sizes = list(model.sizes)
        if sum(sizes) != channels:
            layer.fail(
                "sizes",
                f"the sizes {sizes} add up to {sum(sizes)}, but the input has {channels} {what}; they must add up to {channels}",
            )
    else:
        if channels % model.parts:
            layer.fail("parts", f"parts={model.parts} does not divide the {channels} {what} (divisors: {divisors_text(channels)})")
        sizes = [channels // model.parts] * model.parts
    parts = [Value((value.shape[0], size, *value.shape[2:]), value.rf, value.jump, value.flat) for size in sizes]
    # the split itself passes its input on; each part is a child (module NAME.i), read with `from: NAME.i`
    children = [
        LayerReport(str(i), "part", layer.path, None, [], [value.shape], part.shape, receptive_field=part.rf, stride=part.jump, role="part")
        for i, part in enumerate(parts)
    ]
    return Traced(value, children=children, parts=parts, plan=SplitPlan(tuple(sizes)))


def split_parts(model: LayerBase) -> int:
    """How many outputs a split layer has (known from the spec alone)."""
    return model.parts if model.sizes is None else len(model.sizes)


def part_names(name: str, parts: int) -> str:
    """'s.0, s.1, s.2', or the first and last few when there are many."""
    name = shorten(name)
    if parts <= LISTED_NAMES:
        return ", ".join(f"{name}.{i}" for i in range(parts))
    return f"{name}.0, {name}.1, {name}.2, ..., {name}.{parts - 1}"


def rule_block(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """A named group of layers: its children traced in order, its figures their sums."""
    children, out = layer.trace_list("layers", inputs[0])
    if out is None:
        raise LayerFailed
    return _sum_children(out, children)


def rule_repeat(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """`times` chained copies of `layers` (copy 0 of `first` where given), each a child block with its own weights."""
    model, value = layer.model, inputs[0]
    per_copy = max(len(model.layers), len(model.first or ()))
    if model.times * per_copy > MAX_LAYERS:
        layer.fail("times", f"times={model.times:,} makes {model.times * per_copy:,} layers; a network may have at most {MAX_LAYERS:,}")
    copies = []
    for index in range(model.times):
        # copy 0 may differ (`first`), as the downsampling block that opens a ResNet stage
        key = "first" if index == 0 and model.first else "layers"
        children, out = layer.trace_list(key, value)
        if out is None:
            raise LayerFailed
        copy = _sum_children(out, children)
        copies.append(
            LayerReport(
                str(index), "block", layer.path, None, [], [value.shape], out.shape, copy.params, copy.trainable,
                copy.macs, out.rf, out.jump, children, ContainerPlan(), role="copy",
            )
        )
        value = out
    return _sum_children(value, copies)


def rule_residual(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """act(layers(x) + shortcut(x)): the branch and the shortcut (identity by default) must give equal shapes."""
    model, value = layer.model, inputs[0]
    for index, inner in enumerate(model.layers):
        if inner.name == "shortcut":
            layer.error(None, f"layers[{index}] may not be named 'shortcut': that name holds the residual's shortcut branch")
    children, main = layer.trace_list("layers", value)
    shortcut = value
    if model.shortcut:
        short_children, shortcut = layer.trace_list("shortcut", value)
        if shortcut is not None:
            short = _sum_children(shortcut, short_children)
            children.append(
                LayerReport(
                    "shortcut", "block", layer.path + ("shortcut",), None, [], [value.shape], shortcut.shape,
                    short.params, short.trainable, short.macs, shortcut.rf, shortcut.jump, short_children,
                    ContainerPlan(), role="shortcut",
                )
            )
    if main is None or shortcut is None or layer.failed:
        raise LayerFailed(main or shortcut)  # a valid residual's output is both; the branch is the likelier intent
    if not _compatible(main.shape, shortcut.shape):
        hint = ""
        if not model.shortcut:
            hint = "; add a `shortcut` (e.g. a pointwise conv with the right out_channels and stride) to match"
        layer.error(
            "layers",
            f"the residual branch gives {list(main.shape)} but the shortcut gives {list(shortcut.shape)}; they must be equal{hint}",
        )
        raise LayerFailed(main)  # the branch is what the layers compute; the layers after are checked on it
    rf, jump = merged_field([main, shortcut])
    return _sum_children(Value(main.shape, rf, jump, main.flat), children, ContainerPlan(act_plan(model.act), model.drop_path))


def _sum_children(value: Value, children: list[LayerReport], plan: ContainerPlan | None = None) -> Traced:
    return Traced(
        value,
        sum(c.params for c in children),
        sum(c.trainable_params for c in children),
        sum(c.macs for c in children),
        plan=plan or ContainerPlan(),
        children=children,
    )
