"""Shape rules of the layers that resample a map: pooling (windowed, adaptive, global) and upsampling."""

from __future__ import annotations

from fractions import Fraction

from .geometry import adaptive_widest_window, pool_output_size, resize_output_size
from .plans import AdaptivePoolPlan, GlobalPoolPlan, PoolPlan, UpsamplePlan
from .limits import INT_LIMIT
from .shapes import DIM_NAMES, LayerFailed, Traced, TracedLayer, Value, feature_map, int_if_whole, whole_input_field, window_field


def rule_pool(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """nn.MaxPoolNd / AvgPoolNd: (B, C, *S) -> (B, C, *S_out) (`geometry.pool_output_size`, floor or ceil_mode); padding at most half the kernel."""
    model = layer.model
    value = feature_map(layer, inputs[0], "pool")
    dims = layer.ctx.dims
    kernel = layer.per_dim("kernel_size", model.kernel_size)
    stride = layer.per_dim("stride", model.stride) if model.stride is not None else kernel
    padding = layer.per_dim("padding", model.padding)
    out_spatial: list[int | None] = []
    too_much = [(DIM_NAMES[dims][axis], p, k) for axis, (k, p) in enumerate(zip(kernel, padding)) if p > k // 2]
    if too_much:  # one message for the layer
        groups: dict[tuple, list[str]] = {}
        for dim, p, k in too_much:
            groups.setdefault((p, k), []).append(dim)
        text = "; ".join(f"padding {p} in {' and '.join(dims_)} must be at most half the kernel ({k // 2})" for (p, k), dims_ in groups.items())
        layer.error("padding", f"{text}, as PyTorch requires")
    for axis, (size, k, s, p) in enumerate(zip(value.spatial, kernel, stride, padding)):
        dim = DIM_NAMES[dims][axis]
        if size is None:
            pass
        elif pool_output_size(size, k, s, p, model.ceil_mode) < 1:  # ceil_mode keeps a window that hangs past the end
            layer.error("kernel_size", f"kernel {k} is larger than the padded input {size + 2 * p} in {dim}"
                        + ("" if not model.ceil_mode else f", even with ceil_mode (stride {s})"))
        elif model.op == "avg" and dims == 3 and size < k:
            # torch's avg_pool3d compares the unpadded input with the kernel
            layer.error("kernel_size", f"kernel {k} is larger than the input {size} in {dim} (3-D average pooling does not count padding here)")
        else:
            out_spatial.append(pool_output_size(size, k, s, p, model.ceil_mode))
            continue
        out_spatial.append(None)  # unknown: dynamic, or no valid output
    rf, jump = window_field(value, kernel, stride, (1,) * dims)
    if layer.failed:
        raise LayerFailed(Value((value.shape[0], value.channels, *out_spatial), rf, jump))
    plan = PoolPlan(model.op, dims, kernel, stride, padding, model.ceil_mode)
    return Traced(Value((value.shape[0], value.channels, *out_spatial), rf, jump), plan=plan)


def rule_adaptive_pool(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Adaptive max / avg pooling: (B, C, *S) -> (B, C, *size); each output sees its widest window (`geometry.adaptive_widest_window`)."""
    value = feature_map(layer, inputs[0], "adaptive_pool")
    size = layer.per_dim("size", layer.model.size)
    rf, jump = [], []
    for r, j, s_in, s_out in zip(value.rf, value.jump, value.spatial, size):
        if s_in is None or j is None:
            rf.append(r)
            jump.append(None)
        else:
            window = adaptive_widest_window(s_in, s_out)
            rf.append(r + (window - 1) * j)
            jump.append(int_if_whole(j * Fraction(s_in, s_out)))
    plan = AdaptivePoolPlan(layer.model.op, size)
    return Traced(Value((value.shape[0], value.channels, *size), tuple(rf), tuple(jump)), plan=plan)


def rule_global_pool(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """Pooling over every position: (B, C, *S) -> (B, C, 1, ...)."""
    value = feature_map(layer, inputs[0], "global_pool")
    rf, jump = whole_input_field(value)
    plan = GlobalPoolPlan(layer.model.op, layer.ctx.dims)
    return Traced(Value((value.shape[0], value.channels) + (1,) * layer.ctx.dims, rf, jump), plan=plan)


def rule_upsample(layer: TracedLayer, inputs: list[Value]) -> Traced:
    """nn.Upsample by `scale` or to `size`: (B, C, *S) -> (B, C, *S_out) (`geometry.resize_output_size`); the mode must fit the dims."""
    model = layer.model
    value = feature_map(layer, inputs[0], "upsample")
    dims = layer.ctx.dims
    linear = {1: "linear", 2: "bilinear", 3: "trilinear"}[dims]
    if model.mode in ("linear", "bilinear", "trilinear") and model.mode != linear:
        layer.error("mode", f"mode {model.mode!r} is for {['linear', 'bilinear', 'trilinear'].index(model.mode) + 1}-D input; use {linear!r} here")
    if model.mode == "bicubic" and dims != 2:
        layer.error("mode", "bicubic is 2-D only")
    if model.size is not None:
        size = layer.per_dim("size", model.size)
        scale = None
    else:
        scale = tuple(model.scale) if isinstance(model.scale, list) else (model.scale,) * dims
        if len(scale) != dims:
            layer.fail("scale", f"`scale` has {len(scale)} entries but the input is {dims}-D")
        size = []
        for axis, (s, f) in enumerate(zip(value.spatial, scale)):
            out = None if s is None else s * f
            if out is not None and not out <= INT_LIMIT:  # also catches inf
                layer.fail("scale", f"scale {f:g} makes {DIM_NAMES[dims][axis]} larger than {INT_LIMIT:,}")
            size.append(None if out is None else resize_output_size(s, f))
            if size[-1] == 0:
                layer.error("scale", f"scale {f:g} leaves no output in {DIM_NAMES[dims][axis]}")
        size = tuple(size)
    if layer.failed:
        raise LayerFailed
    rf, jump = [], []
    for r, j, s_in, s_out in zip(value.rf, value.jump, value.spatial, size):
        if j is None or s_in is None or s_out is None:
            rf.append(r)
            jump.append(None)
        else:
            step = int_if_whole(j * Fraction(s_in, s_out))
            rf.append(r + (j if model.mode != "nearest" else 0))
            jump.append(step)
    plan = UpsamplePlan(model.mode, tuple(size) if model.size is not None else None, None if scale is None else tuple(float(f) for f in scale), model.align_corners)
    return Traced(Value((value.shape[0], value.channels, *size), tuple(rf), tuple(jump)), plan=plan)
