"""Shape rules of the convolutions: conv (with its pointwise, asymmetric, dilated, depthwise, group faces), separable, transposed, dynamic, fixed."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from . import kernels
from .geometry import (
    AUTO_PADS, ConvGeometry, attention_hidden, auto_padding, conv_output_size, norm_params, same_padding, transposed_auto_padding,
    transposed_output_size, transposed_same_padding,
)  # fmt: skip
from .plans import ConvPlan, DynamicPlan, FixedPlan, SeparablePlan, act_plan, init_plan
from .schema import LayerBase
from .shapes import (
    DIM_NAMES, LayerFailed, Traced, TracedLayer, Value, check_init, check_norm, divisors_text, feature_map, int_if_whole, key_or_default,
    norm_plan, window_field,
)  # fmt: skip


def _check_in_channels(layer: TracedLayer, declared: int | None, inferred: int | None) -> None:
    if declared is not None and inferred is not None and declared != inferred:
        layer.error("in_channels", f"in_channels={declared} but the input has {inferred} channels; drop `in_channels` (it is inferred)")


def _resolve_padding(
    layer: TracedLayer, model: Any, kernel: tuple[int, ...], dilation: tuple[int, ...],
    stride: tuple[int, ...] | None = None, sizes: tuple[int | None, ...] | None = None,
) -> tuple[tuple[int, int], ...]:
    """(low, high) per dim for `padding`; `same_upper` / `same_lower` at the input `sizes` ((0, 0) where one is unknown and it matters)."""
    padding = model.padding
    if padding == "same":
        return tuple(same_padding(k, d) for k, d in zip(kernel, dilation))
    if padding == "valid":
        return ((0, 0),) * len(kernel)
    if padding in AUTO_PADS:
        stride = stride or (1,) * len(kernel)
        sizes = sizes or (None,) * len(kernel)
        return tuple(
            auto_padding(n, k, s, d, padding) if n is not None or s == 1 else (0, 0)
            for n, k, s, d in zip(sizes, kernel, stride, dilation)
        )
    if isinstance(padding, list) and padding and isinstance(padding[0], list):
        return tuple((lo, hi) for lo, hi in layer.per_dim("padding", padding))
    return tuple((p, p) for p in layer.per_dim("padding", padding))


def _auto_pad(model: LayerBase) -> str | None:
    padding = key_or_default(model, "padding", None)
    return padding if isinstance(padding, str) and padding in AUTO_PADS else None


def _check_groups(layer: TracedLayer, key: str, groups: int, in_channels: int, out_channels: int) -> None:
    """`groups` must divide both channel counts (nn.ConvNd's rule), with the divisors that would."""
    wrong = [
        f"{what}={channels} (divisors: {divisors_text(channels)})"
        for what, channels in (("in_channels", in_channels), ("out_channels", out_channels))
        if channels % groups
    ]
    if wrong:  # one mistake, one message
        layer.error(key, f"groups={groups} does not divide {' or '.join(wrong)}")


def _conv(
    layer: TracedLayer,
    value: Value,
    out_channels: int,
    kernel: tuple[int, ...],
    groups: int,
    bias: bool,
    stride: tuple[int, ...] | None = None,
    dilation: tuple[int, ...] | None = None,
    padding: tuple[tuple[int, int], ...] | None = None,
) -> tuple[ConvGeometry, Value, int]:
    """Geometry, output value and MACs of one (non-transposed) convolution."""
    model = layer.model
    explicit_padding = padding
    dims = layer.ctx.dims
    stride = stride or layer.per_dim("stride", model.stride)
    dilation = dilation or layer.per_dim("dilation", model.dilation)
    padding = padding or _resolve_padding(layer, model, kernel, dilation, stride, value.spatial)
    auto_pad = _auto_pad(model) if explicit_padding is None else None
    in_channels = value.channels
    _check_groups(layer, "groups", groups, in_channels, out_channels)
    mode = key_or_default(model, "padding_mode", "zeros")
    out_spatial = _conv_output_sizes(layer, value, kernel, stride, dilation, padding, mode)
    rf, jump = window_field(value, kernel, stride, dilation)
    if layer.failed:  # the output's channels are the layer's own; sizes where they could be computed
        raise LayerFailed(Value((value.shape[0], out_channels, *out_spatial), rf, jump))
    geometry = ConvGeometry(dims, in_channels, out_channels, kernel, stride, dilation, padding, groups, bias, mode, auto_pad=auto_pad)
    shape = (value.shape[0], out_channels, *out_spatial)
    return geometry, Value(shape, rf, jump), geometry.macs(value.shape, shape)


def _conv_output_sizes(
    layer: TracedLayer, value: Value, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    padding: tuple[tuple[int, int], ...], mode: str,
) -> list[int | None]:
    """A convolution's output size per spatial dim, None where the input's is unknown or the kernel does not fit.

    Records a problem where a reflect / circular padding exceeds the input (F.pad's limits) and
    one for the layer where the kernel spans more than the padded input.
    """
    names = DIM_NAMES[layer.ctx.dims]
    out_spatial: list[int | None] = []
    too_large: list[tuple] = []  # (dim, kernel text, padded size, size, padding text)
    for axis, (size, k, s, d, pad) in enumerate(zip(value.spatial, kernel, stride, dilation, padding)):
        if size is None:
            out_spatial.append(None)
            continue
        dim = names[axis]
        if mode == "reflect" and max(pad) >= size:
            layer.error(
                "padding",
                f"reflect padding {max(pad)} must be smaller than the input size {size} in {dim}; "
                f"use padding <= {size - 1} or padding_mode replicate",
            )
        if mode == "circular" and max(pad) > size:
            layer.error(
                "padding",
                f"circular padding {max(pad)} must be at most the input size {size} in {dim}; use padding <= {size} or padding_mode replicate",
            )
        effective = d * (k - 1) + 1
        if size + pad[0] + pad[1] < effective:
            extent = f"kernel {k}" + (f" (spanning {effective} with dilation {d})" if d > 1 else "")
            too_large.append((dim, extent, size + pad[0] + pad[1], size, f"{pad[0]}+{pad[1]}"))
            out_spatial.append(None)
            continue
        out_spatial.append(conv_output_size(size, k, s, d, pad))
    if too_large:  # one message for the layer, not one per dim
        clauses: dict[tuple, list[str]] = {}
        for dim, extent, padded, size, pad_text in too_large:
            clauses.setdefault((extent, padded, size, pad_text), []).append(dim)
        text = "; ".join(
            f"{extent} is larger than the padded input {padded} in {' and '.join(dims_)} (input {size}, padding {pad_text})"
            for (extent, padded, size, pad_text), dims_ in clauses.items()
        )
        layer.error("kernel_size", f"{text}; use a smaller kernel or more padding")
    return out_spatial


def _bias_default(model: Any) -> bool:
    return model.bias if model.bias is not None else model.norm is None


def _finish_conv(layer: TracedLayer, geometry: ConvGeometry, value: Value, macs: int) -> Traced:
    """A conv layer's figures and ConvPlan, after checking its norm and init against the geometry."""
    model = layer.model
    check_norm(layer, model.norm, model.norm_groups, value)
    check_init(layer, geometry.weight_shape, geometry.bias, geometry.out_channels)
    norm = norm_plan(layer, model.norm, geometry.out_channels, geometry.dims, model.norm_groups, model)
    params = geometry.params + norm_params(model.norm, geometry.out_channels)
    trainable = params if model.trainable else 0
    plan = ConvPlan(geometry, norm, act_plan(model.act), init_plan(model.init), model.trainable)
    return Traced(value, params, trainable, macs, plan)


def rule_conv(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """nn.ConvNd, and its pointwise, asymmetric, dilated, depthwise, group faces: (B, C_in, *S) -> (B, C_out, *S_out)."""
    model = layer.model
    value = feature_map(layer, inputs[0], model.type)
    _check_in_channels(layer, model.in_channels, value.channels)
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    groups = key_or_default(model, "groups", 1)
    if model.type == "depthwise":
        groups = value.channels
        out = value.channels * model.multiplier
        if model.out_channels is not None and model.out_channels != out:
            layer.error(
                "out_channels",
                f"a depthwise conv outputs in_channels x multiplier = {value.channels} x {model.multiplier} = {out} channels, "
                f"not {model.out_channels}; drop out_channels or set multiplier",
            )
    else:
        out = model.out_channels
    geometry, result, macs = _conv(layer, value, out, kernel, groups, _bias_default(model))
    return _finish_conv(layer, geometry, result, macs)


def rule_separable(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Depthwise (groups = C_in, C_in x multiplier out) then pointwise conv: (B, C_in, *S) -> (B, out_channels, *S_out)."""
    model = layer.model
    value = feature_map(layer, inputs[0], "separable")
    _check_in_channels(layer, model.in_channels, value.channels)
    inner = model.depthwise
    inner_norm = inner.norm if inner else None
    inner_bias = inner.bias if inner and inner.bias is not None else inner_norm is None
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    mid = value.channels * model.multiplier
    try:
        dw, mid_value, dw_macs = _conv(layer, value, mid, kernel, value.channels, inner_bias)
    except LayerFailed as failed:  # the pointwise half only changes the channels
        assumed = failed.assumed
        raise LayerFailed(Value((assumed.shape[0], model.out_channels, *assumed.spatial), assumed.rf, assumed.jump)) from None
    check_norm(layer, inner_norm, inner.norm_groups if inner else None, mid_value, key="depthwise")
    ones = (1,) * layer.ctx.dims
    pw, out_value, pw_macs = _conv(
        layer, mid_value, model.out_channels, ones, key_or_default(model, "groups", 1),
        _bias_default(model), stride=ones, dilation=ones, padding=((0, 0),) * layer.ctx.dims,
    )
    check_norm(layer, model.norm, model.norm_groups, out_value)
    check_init(layer, pw.weight_shape, pw.bias, pw.out_channels, arrays=False)
    params = dw.params + norm_params(inner_norm, mid) + pw.params + norm_params(model.norm, model.out_channels)
    dims = layer.ctx.dims
    plan = SeparablePlan(
        ConvPlan(dw, norm_plan(layer, inner_norm, mid, dims, inner.norm_groups if inner else None, inner), act_plan(inner.act if inner else None)),
        ConvPlan(pw, norm_plan(layer, model.norm, model.out_channels, dims, model.norm_groups, model), act_plan(model.act)),
        init_plan(model.init),
        model.trainable,
    )
    return Traced(out_value, params, params if model.trainable else 0, dw_macs + pw_macs, plan)


def rule_transposed(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """nn.ConvTransposeNd: (B, C_in, *S) -> (B, C_out, *S_out); `same` and ONNX's auto_pad choose crops and output_padding."""
    model = layer.model
    value = feature_map(layer, inputs[0], "transposed")
    _check_in_channels(layer, model.in_channels, value.channels)
    dims = layer.ctx.dims
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    stride = layer.per_dim("stride", model.stride)
    dilation = layer.per_dim("dilation", model.dilation)
    if model.padding_mode != "zeros":
        layer.error("padding_mode", f"a transposed convolution supports only padding_mode zeros (as nn.ConvTranspose), not {model.padding_mode!r}")
    crops, output_padding = _transposed_crops(layer, kernel, stride, dilation)
    for axis, (op, s, d) in enumerate(zip(output_padding, stride, dilation)):
        if op >= max(s, d):
            layer.error(
                "output_padding",
                f"output_padding={op} in {DIM_NAMES[dims][axis]} must be smaller than stride ({s}) or dilation ({d}); "
                f"use 0..{max(s, d) - 1}",
            )
    groups = model.groups
    in_channels, out_channels = value.channels, model.out_channels
    _check_groups(layer, "groups", groups, in_channels, out_channels)
    out_spatial = _transposed_output_sizes(layer, value, kernel, stride, dilation, crops, output_padding)
    if layer.failed:
        raise LayerFailed(Value((value.shape[0], out_channels, *out_spatial), value.rf, (None,) * dims))
    geometry = ConvGeometry(
        dims, in_channels, out_channels, kernel, stride, dilation, crops, groups, _bias_default(model), "zeros", output_padding,
        auto_pad=_auto_pad(model),
    )
    rf, jump = _transposed_field(value, kernel, stride, dilation)
    shape = (value.shape[0], out_channels, *out_spatial)
    return _finish_conv(layer, geometry, Value(shape, rf, jump), geometry.macs(value.shape, shape))


def _transposed_crops(
    layer: TracedLayer, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """A transposed conv's (low, high) crop per dim and its output_padding, from `padding` and `output_padding`."""
    model = layer.model
    if model.padding in AUTO_PADS:
        if model.output_padding != 0:
            layer.error("output_padding", f"`padding: {model.padding}` chooses output_padding itself; drop `output_padding`")
            raise LayerFailed
        chosen = [transposed_auto_padding(k, s, d, model.padding) for k, s, d in zip(kernel, stride, dilation)]
        return tuple(crop for crop, _ in chosen), tuple(op for _, op in chosen)
    if model.padding == "same":
        if model.output_padding != 0:
            layer.error("output_padding", "`padding: same` chooses output_padding itself; drop `output_padding`")
        pairs = _transposed_same_pairs(layer, kernel, stride, dilation)
        return tuple((p, p) for p, _ in pairs), tuple(op for _, op in pairs)
    # an int or per-dim list crops both ends alike (nn.ConvTranspose's padding); pairs crop each end (ONNX's pads)
    return _resolve_padding(layer, model, kernel, dilation), layer.per_dim("output_padding", model.output_padding)


def _transposed_same_pairs(
    layer: TracedLayer, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
) -> list[tuple[int, int]]:
    """(padding, output_padding) per dim giving out = in x stride (`padding: same`); fails the layer where none does."""
    pairs = [transposed_same_padding(k, s, d) for k, s, d in zip(kernel, stride, dilation)]
    missing: dict[tuple, list[str]] = {}  # (kernel, stride, dilation) -> dims: one message per mistake
    for axis, pair in enumerate(pairs):
        if pair is None:
            missing.setdefault((kernel[axis], stride[axis], dilation[axis]), []).append(DIM_NAMES[layer.ctx.dims][axis])
    for (k, s_, d), dims_ in missing.items():
        nearby = [c for c in (k + 1, k - 1, k + 2) if c >= 1 and transposed_same_padding(c, s_, d) is not None]
        hint = f"kernel_size {nearby[0]} would, " if nearby else ""
        layer.error(
            "padding",
            f"no padding gives out = in x stride (with any valid output_padding) for kernel {k}, stride {s_}, dilation {d} "
            f"in {' and '.join(dims_)}; {hint}or `padding: same_lower` crops the output to in x stride",
        )
    if layer.failed:
        raise LayerFailed
    return pairs


def _transposed_output_sizes(
    layer: TracedLayer, value: Value, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
    crops: tuple[tuple[int, int], ...], output_padding: tuple[int, ...],
) -> list[int | None]:
    """A transposed conv's output size per spatial dim, None where the input's is unknown or the crop leaves nothing."""
    out_spatial: list[int | None] = []
    for axis, (size, k, s, d, crop, op) in enumerate(zip(value.spatial, kernel, stride, dilation, crops, output_padding)):
        if size is None:
            out_spatial.append(None)
            continue
        out = transposed_output_size(size, k, s, d, crop, op)
        if out < 1:
            shown = crop[0] if crop[0] == crop[1] else list(crop)
            layer.error("padding", f"padding {shown} leaves no output in {DIM_NAMES[layer.ctx.dims][axis]} (size {out}); use less padding")
        out_spatial.append(out if out >= 1 else None)
    return out_spatial


def _transposed_field(
    value: Value, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
) -> tuple[tuple, tuple]:
    """Receptive field and jump after a transposed conv: the jump divides by the stride (a Fraction where not whole)."""
    rf, jump = [], []
    for r, j, k, s, d in zip(value.rf, value.jump, kernel, stride, dilation):
        # each output pixel gathers at most ceil(k_eff / s) neighbouring input pixels
        rf.append(r + (-(-(d * (k - 1) + 1) // s) - 1) * j if j is not None else r)
        jump.append(int_if_whole(Fraction(j) / s) if j is not None else None)
    return tuple(rf), tuple(jump)


def rule_dynamic(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Dynamic convolution (CondConv; Chen et al. 2020): a conv's shape, K experts' weights and the attention MLP's."""
    model = layer.model
    value = feature_map(layer, inputs[0], "dynamic")
    _check_in_channels(layer, model.in_channels, value.channels)
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    geometry, result, conv_macs = _conv(layer, value, model.out_channels, kernel, model.groups, _bias_default(model))
    check_norm(layer, model.norm, model.norm_groups, result)
    check_init(layer, geometry.weight_shape, geometry.bias, geometry.out_channels)
    experts = model.experts
    hidden = attention_hidden(geometry.in_channels, model.reduction)
    per_expert = geometry.params
    attention = geometry.in_channels * hidden + hidden + hidden * experts + experts
    params = experts * per_expert + attention + norm_params(model.norm, model.out_channels)
    batch = value.shape[0]
    # per sample: the attention MLP and the mixing of K kernels (and biases) into one
    macs = conv_macs + batch * (geometry.in_channels * hidden + hidden * experts + experts * per_expert)
    plan = DynamicPlan(
        geometry, experts, model.reduction, model.temperature,
        norm_plan(layer, model.norm, geometry.out_channels, geometry.dims, model.norm_groups, model), act_plan(model.act),
        init_plan(model.init), model.trainable,
    )  # fmt: skip
    return Traced(result, params, params if model.trainable else 0, macs, plan)


def rule_fixed(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """A conv with a known kernel, per channel or full; a frozen kernel is a buffer, a separable one runs as 1-D passes."""
    model = layer.model
    value = feature_map(layer, inputs[0], "fixed")
    _check_in_channels(layer, model.in_channels, value.channels)
    dims = layer.ctx.dims
    try:
        if isinstance(model.filter, str):
            kernel_values = kernels.make_filter(model.filter, dims, model.kernel_size, model.sigma)
        else:
            if model.kernel_size is not None or model.sigma is not None:
                layer.error("kernel_size" if model.kernel_size is not None else "sigma",
                            "a literal filter has its own size; drop `kernel_size` and `sigma`")
            kernel_values = kernels.literal_kernel(model.filter, dims)
        if model.normalize:
            kernel_values = kernels.normalize_kernel(kernel_values)
    except kernels.FilterError as err:
        layer.fail("filter", str(err))
    kernel = kernels.kernel_shape(kernel_values)
    channels = value.channels
    if model.per_channel:
        if model.out_channels is not None and model.out_channels != channels:
            layer.error("out_channels", f"a per-channel filter keeps the {channels} channels; drop out_channels or set per_channel: false")
        out, groups = channels, channels
    else:
        out, groups = model.out_channels or channels, 1
    geometry, result, macs = _conv(layer, value, out, kernel, groups, False)
    params = geometry.params
    # frozen fixed kernels are buffers, not parameters; trainable ones are parameters
    traced_params = params if model.trainable else 0
    passes = None
    if not model.trainable and model.per_channel and max(kernel) >= kernels.SEPARABLE_FROM:
        passes = kernels.separable_factors(kernel_values)
    if passes is not None:
        macs = _separable_macs(geometry, value.shape)
    plan = FixedPlan(geometry, kernel_values, tuple(map(tuple, passes)) if passes else None, model.trainable)
    return Traced(result, traced_params, traced_params, macs, plan)


def _separable_macs(geometry: ConvGeometry, in_shape: tuple) -> int:
    """MACs of one 1-D pass per dim: pass d shrinks dim d to its output size and costs k_d per output.

    As `FixedConv` runs them: where the conv pads itself (`conv_padding`), each pass pads only
    its own dim, so the dims after it are still unpadded; otherwise the input is padded first.
    """
    if any(s is None for s in in_shape):
        return 0
    own = geometry.conv_padding
    sizes = list(in_shape[2:]) if own is not None else [s + lo + hi for s, (lo, hi) in zip(in_shape[2:], geometry.padding)]
    macs = 0
    for axis, (k, s, d) in enumerate(zip(geometry.kernel_size, geometry.stride, geometry.dilation)):
        pad = (own[axis], own[axis]) if own is not None else (0, 0)
        sizes[axis] = conv_output_size(sizes[axis], k, s, d, pad)
        macs += in_shape[0] * geometry.out_channels * math.prod(sizes) * k
    return macs
