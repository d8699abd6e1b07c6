"""Hypothesis strategies: random specs across layer kinds, strides, paddings, dilations, groups and dims.

The strategies track the channel count as they go, so most drawn stacks are
valid; what the checker rejects (a kernel larger than a shrunken input, say)
the tests discard with `assume`.
"""

from __future__ import annotations

from hypothesis import strategies as st

SIZE_RANGE = {1: (12, 40), 2: (8, 20), 3: (5, 9)}
MAX_KERNEL = {1: 7, 2: 5, 3: 3}
NAMED_BY_DIMS = {1: ["gaussian", "box", "identity"], 2: ["gaussian", "box", "identity", "sobel_x", "laplacian", "sharpen"], 3: ["gaussian", "box", "identity"]}

SINGLE_INPUT_KINDS = [
    "conv", "pointwise", "asymmetric", "dilated", "depthwise", "group", "separable", "transposed", "dynamic",
    "fixed", "norm", "act", "pool", "adaptive_pool", "upsample", "shuffle", "dropout", "identity",
]  # fmt: skip


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def per_dim(draw, dims: int, values: st.SearchStrategy[int]):
    """An int or a per-dim list."""
    if draw(st.booleans()):
        return draw(values)
    return [draw(values) for _ in range(dims)]


@st.composite
def conv_layer(draw, kind: str, channels: int, dims: int):
    """A conv-family layer and its output channel count."""
    if kind == "group" and channels == 1:
        kind = "conv"  # no groups >= 2 divide a single channel
    layer: dict = {"type": kind}
    k_max = MAX_KERNEL[dims]
    if kind == "pointwise":
        pass
    elif kind == "asymmetric":
        if dims == 1:
            kind = layer["type"] = "conv"
            layer["kernel_size"] = draw(st.integers(1, k_max))
        else:
            sizes = [draw(st.integers(1, k_max)) for _ in range(dims)]
            if len(set(sizes)) == 1:
                sizes[0] = sizes[0] % k_max + 1
            layer["kernel_size"] = sizes
    else:
        layer["kernel_size"] = per_dim(draw, dims, st.integers(1, k_max))
    if kind != "pointwise":
        layer["stride"] = per_dim(draw, dims, st.integers(1, 2))
    if kind == "dilated":
        layer["dilation"] = draw(st.integers(2, 3))
    elif kind not in ("pointwise",):
        layer["dilation"] = per_dim(draw, dims, st.integers(1, 2))
    padding_choice = draw(st.sampled_from(["int", "list", "same", "valid", "default", "pairs", "same_upper", "same_lower"]))
    if padding_choice == "int":
        layer["padding"] = draw(st.integers(0, 2))
    elif padding_choice == "list":
        layer["padding"] = [draw(st.integers(0, 2)) for _ in range(dims)]
    elif padding_choice == "pairs":
        layer["padding"] = [[draw(st.integers(0, 2)), draw(st.integers(0, 2))] for _ in range(dims)]
    elif padding_choice in ("same", "valid", "same_upper", "same_lower"):
        layer["padding"] = padding_choice
    if kind == "transposed":
        stride = draw(st.integers(1, 3))
        dilation = draw(st.integers(1, 2))
        layer["stride"], layer["dilation"] = stride, dilation
        if padding_choice not in ("same", "same_upper", "same_lower"):
            layer["output_padding"] = draw(st.integers(0, max(stride, dilation) - 1))
    elif kind != "pointwise" and draw(st.integers(0, 4)) == 0:
        layer["padding_mode"] = draw(st.sampled_from(["reflect", "replicate", "circular"]))
    if kind == "depthwise":
        multiplier = draw(st.integers(1, 2))
        layer["multiplier"] = multiplier
        out = channels * multiplier
    else:
        groups = 1
        if kind in ("conv", "group", "transposed", "dynamic"):
            options = [d for d in divisors(channels) if kind != "group" or d >= 2]
            groups = draw(st.sampled_from(options))
            if groups > 1 or kind == "group":
                layer["groups"] = groups
        out = groups * draw(st.integers(1, max(1, 8 // groups)))
        layer["out_channels"] = out
    if kind == "separable":
        layer["multiplier"] = draw(st.integers(1, 2))
        if draw(st.booleans()):
            layer["depthwise"] = {"norm": "batch", "act": "relu"}
    if kind == "dynamic":
        layer["experts"] = draw(st.integers(1, 3))
        layer["reduction"] = draw(st.integers(1, 4))
    if draw(st.booleans()):
        layer["norm"] = draw(st.sampled_from(["batch", "instance", "layer", "group"]))
        if layer["norm"] == "group":
            layer["norm_groups"] = draw(st.sampled_from(divisors(out)))
        if draw(st.integers(0, 3)) == 0:
            layer["eps"] = draw(st.sampled_from([1e-3, 1e-5, 0.01]))
        if layer["norm"] == "batch" and draw(st.integers(0, 3)) == 0:
            layer["momentum"] = draw(st.sampled_from([0.01, 0.03, 0.1]))
    if draw(st.booleans()):
        layer["act"] = draw(st.sampled_from(["relu", "silu", "leaky_relu", "gelu", "hardswish", "tanh", "hardsigmoid", "hardtanh"]))
    if draw(st.integers(0, 5)) == 0:
        layer["bias"] = draw(st.booleans())
    if draw(st.integers(0, 6)) == 0:
        layer["trainable"] = False
    return layer, out


@st.composite
def any_layer(draw, channels: int, dims: int):
    kind = draw(st.sampled_from(SINGLE_INPUT_KINDS))
    if kind in ("conv", "pointwise", "asymmetric", "dilated", "depthwise", "group", "separable", "transposed", "dynamic"):
        return draw(conv_layer(kind, channels, dims))
    if kind == "fixed":
        name = draw(st.sampled_from(NAMED_BY_DIMS[dims]))
        layer = {"type": "fixed", "filter": name, "padding": draw(st.sampled_from(["same", 0, 1]))}
        if name == "gaussian":
            layer["kernel_size"] = draw(st.integers(1, MAX_KERNEL[dims]))
            layer["sigma"] = draw(st.floats(0.5, 2.0))
        elif name == "box":
            layer["kernel_size"] = draw(st.integers(1, MAX_KERNEL[dims]))
        elif name == "identity":
            layer["kernel_size"] = draw(st.sampled_from([1, 3]))
        out = channels
        if draw(st.integers(0, 3)) == 0:
            layer["per_channel"] = False
            out = draw(st.integers(1, 6))
            layer["out_channels"] = out
        if draw(st.integers(0, 3)) == 0:
            layer["trainable"] = True
        return layer, out
    if kind == "norm":
        norm = draw(st.sampled_from(["batch", "instance", "group", "layer"]))
        layer = {"type": "norm", "kind": norm}
        if norm == "group":
            layer["groups"] = draw(st.sampled_from(divisors(channels)))
        if draw(st.integers(0, 3)) == 0:
            layer["eps"] = 1e-3
        if norm == "batch" and draw(st.integers(0, 3)) == 0:
            layer["momentum"] = 0.01
        return layer, channels
    if kind == "act":
        fn = draw(st.sampled_from(["relu", "relu6", "leaky_relu", "silu", "gelu", "sigmoid", "tanh", "hardswish", "mish", "hardsigmoid", "hardtanh"]))
        layer = {"type": "act", "fn": fn}
        if fn == "leaky_relu" and draw(st.booleans()):
            layer["negative_slope"] = 0.2
        return layer, channels
    if kind == "pool":
        k = draw(st.integers(1, 3))
        layer = {"type": "pool", "op": draw(st.sampled_from(["max", "avg"])), "kernel_size": k}
        if draw(st.booleans()):
            layer["stride"] = draw(st.integers(1, 2))
        layer["padding"] = draw(st.integers(0, k // 2))
        layer["ceil_mode"] = draw(st.booleans())
        return layer, channels
    if kind == "adaptive_pool":
        return {"type": "adaptive_pool", "op": draw(st.sampled_from(["max", "avg"])), "size": per_dim(draw, dims, st.integers(1, 4))}, channels
    if kind == "upsample":
        if draw(st.booleans()):
            layer = {"type": "upsample", "scale": draw(st.sampled_from([1, 2, 1.5]))}
        else:
            layer = {"type": "upsample", "size": per_dim(draw, dims, st.integers(4, 12))}
        layer["mode"] = draw(st.sampled_from(["nearest", {1: "linear", 2: "bilinear", 3: "trilinear"}[dims]]))
        return layer, channels
    if kind == "shuffle":
        return {"type": "shuffle", "groups": draw(st.sampled_from(divisors(channels)))}, channels
    if kind == "dropout":
        return {"type": "dropout", "p": 0.3}, channels
    return {"type": "identity"}, channels


@st.composite
def specs(draw, max_layers: int = 4, dims: int | None = None):
    """A spec dict: a chain of 1..max_layers layers, optionally ending in a classifier head."""
    dims = dims or draw(st.sampled_from([1, 2, 2, 3]))
    low, high = SIZE_RANGE[dims]
    size = [draw(st.integers(low, high)) for _ in range(dims)]
    channels = in_channels = draw(st.integers(1, 8))
    layers = []
    for _ in range(draw(st.integers(1, max_layers))):
        layer, channels = draw(any_layer(channels, dims))
        layers.append(layer)
    if draw(st.integers(0, 3)) == 0:
        # a gate (Squeeze-and-Excitation's form): the map times a C x 1 x 1 (or 1 x S) function of itself
        name = f"gated_{len(layers)}"
        layers[-1] = {**layers[-1], "name": name}
        if draw(st.booleans()):
            layers += [{"type": "global_pool", "op": "avg"}, {"type": "pointwise", "out": channels, "act": "hardsigmoid"}]
        else:
            layers += [{"type": "pointwise", "out": 1, "act": "sigmoid"}]
        layers.append({"type": "mul", "from": [name, f"{layers[-1]['type']}_{len(layers) - 1}"] if draw(st.booleans()) else [f"{layers[-1]['type']}_{len(layers) - 1}", name]})
    if draw(st.integers(0, 3)) == 0:
        layers += [{"type": "global_pool", "op": "avg"}, {"type": "flatten"}, {"type": "linear", "out": draw(st.integers(1, 10))}]
    spec = {"input": {"channels": in_channels, "size": size, "batch": draw(st.integers(1, 3))}, "layers": layers}
    if draw(st.integers(0, 4)) == 0:
        spec["batch_norm"] = {"eps": draw(st.sampled_from([1e-3, 1e-5])), "momentum": draw(st.sampled_from([0.01, 0.1]))}
    return spec
