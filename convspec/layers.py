"""The few layers convspec needs that torch does not ship, for 1-D, 2-D and 3-D inputs.

- `pad_input`: explicit, possibly asymmetric padding in any of convspec's
  `padding_mode`s, written per spatial dim in spatial order (torch's `F.pad`
  wants the last dim first; this is the one place that converts).
- `DynamicConv`: CondConv / Dynamic Convolution (Chen et al., 2020). K expert
  kernels are mixed per sample by a small attention branch, and each sample is
  convolved with its own kernel: one ordinary conv per sample, in eager mode
  as a loop and under export (for a dynamic batch) as torch's scan, which
  becomes an ONNX Scan. The mixed kernel is always a proper
  (out, in/groups, *kernel_size) weight, never a 5-D tensor handed to conv2d.
- `ChannelShuffle`: ShuffleNet's channel shuffle, built from reshapes and a
  transpose so it exports to ONNX.
- `ChannelSplit`: ShuffleNet V2's channel split. It passes its input on
  unchanged; its children `0`, `1`, ... (`ChannelSlice`) cut out the parts,
  so the part a `Graph` reads as `from: NAME.i` is the output of the real
  submodule `NAME.i`.

Shapes: B batch, C (= in) input channels, K experts, S spatial dims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import (  # one formula, shared with the checker
    PAD_MODES, ConvGeometry, adaptive_windows, attention_hidden, auto_padding, conv_own_padding, interpolation_scale,
    padding_follows_size, resize_output_size,
)

__all__ = [
    "PADDING_MODES", "pad_input", "attention_hidden", "DynamicConv", "ChannelShuffle", "ChannelSplit", "ChannelSlice",
    "ConvNormAct", "FixedConv", "ChannelLayerNorm", "conv_norm_act", "make_conv", "make_pad", "SamePad", "StochasticDepth",
]

PADDING_MODES = PAD_MODES  # convspec's padding_mode names -> F.pad's mode names

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
# torch's adaptive pooling classes by op, for 1-D, 2-D and 3-D input
ADAPTIVE_POOLS: dict[str, tuple[type[nn.Module], ...]] = {
    "max": (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d),
    "avg": (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d),
}


class MaxPool1d(nn.MaxPool1d):
    """nn.MaxPool1d that runs as a 2-D max pool over a unit height: (N, C, L) -> (N, C, L_out).

    The same windows and values as nn.MaxPool1d (PyTorch docs, MaxPool1d "Shape"); torch.export
    specializes every size of max_pool1d's input to the example's, so the 1-D op alone would
    give an ONNX file that only runs at one length.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s, p, d = (_single(v) for v in (self.kernel_size, self.stride, self.padding, self.dilation))
        pooled = F.max_pool2d(x.unsqueeze(-2), (1, k), (1, s), (0, p), (1, d), ceil_mode=self.ceil_mode)
        return pooled.squeeze(-2)


class Upsample(nn.Upsample):
    """nn.Upsample whose `nearest` mode exports as PyTorch computes it: (N, C, *S) -> (N, C, *S_out).

    PyTorch's nearest picks source pixel min(floor(i * scale), in - 1), with the float32 scale
    in / out (or 1 / scale_factor; aten UpSample.h `compute_scales_value`), but its 2-D kernel
    copies an axis a scale_factor keeps and halves one it doubles (`geometry.interpolation_scale`). ONNX Resize divides
    by out / in instead, which rounds differently: 26 -> 4 picks pixel 12 for 13. Under export
    the same float32 arithmetic is written out as index gathers, so every runtime picks
    PyTorch's pixels; eager runs are nn.Upsample's own.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.mode != "nearest" or not torch.compiler.is_exporting() or not all(isinstance(n, int) for n in x.shape[2:]):
            return super().forward(x)  # at a dynamic size the exporter writes Resize (exact for whole factors)
        dims = x.dim() - 2
        sizes = self.size if isinstance(self.size, (tuple, list)) else (self.size,) * dims if self.size is not None else None
        factors = self.scale_factor if isinstance(self.scale_factor, (tuple, list)) else (self.scale_factor,) * dims
        for axis in range(dims):
            n = x.shape[2 + axis]
            if sizes is not None:
                out, scale = sizes[axis], torch.tensor(n, dtype=torch.float32) / sizes[axis]
            else:  # the scale PyTorch's kernel samples with: 1 or 2 where 2-D nearest keeps or doubles an axis
                out = resize_output_size(n, factors[axis])
                scale = torch.tensor(1.0 / interpolation_scale("nearest", dims, n, out, factors[axis]), dtype=torch.float32)
            index = torch.floor(torch.arange(out, dtype=torch.float32) * scale).to(torch.int64).clamp(max=n - 1)
            x = x.index_select(2 + axis, index)
        return x


def _single(value: int | tuple[int, ...]) -> int:
    return value if isinstance(value, int) else value[0]


def _eager() -> bool:
    """True outside tracing, compiling and FX's symbolic tracing, where data-dependent Python checks are safe to run."""
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.fx._symbolic_trace.is_fx_symbolic_tracing())


def _check_mode(mode: str) -> str:
    if mode not in PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, got {mode!r}"
        )
    return PADDING_MODES[mode]


def pad_input(x: Tensor, pads: Sequence[tuple[int, int]], mode: str) -> Tensor:
    """Pad the spatial dims of `x` (B, C, *S).

    `pads` holds one (low, high) pair per spatial dim, first spatial dim first;
    `mode` is a convspec padding_mode ('zeros', 'reflect', 'replicate', 'circular').
    Returns `x` itself when every pad is 0.
    """
    torch_mode = _check_mode(mode)
    pairs = [tuple(int(p) for p in pair) for pair in pads]
    if x.dim() != len(pairs) + 2:
        raise ValueError(
            f"pad_input: got {len(pairs)} (low, high) pair(s) for an input of shape "
            f"{tuple(x.shape)}; expected one pair per spatial dim ({x.dim() - 2})"
        )
    for dim, pair in enumerate(pairs):
        if len(pair) != 2 or min(pair) < 0:
            raise ValueError(
                f"pad_input: spatial dim {dim} needs a (low, high) pair of non-negative ints, got {pair}"
            )
    if not any(lo or hi for lo, hi in pairs):
        return x
    if mode in ("reflect", "circular") and _eager():
        # torch's own messages for these are cryptic; say which dim is too small.
        for dim, (lo, hi) in enumerate(pairs):
            size = x.shape[2 + dim]
            limit_ok = max(lo, hi) < size if mode == "reflect" else max(lo, hi) <= size
            if not limit_ok:
                bound = "smaller than" if mode == "reflect" else "at most"
                raise ValueError(
                    f"{mode} padding ({lo}, {hi}) must be {bound} the input size ({size}) "
                    f"in spatial dim {dim}"
                )
    # F.pad lists the LAST dim first: (last_lo, last_hi, ..., first_lo, first_hi).
    flat = [p for pair in reversed(pairs) for p in pair]
    return F.pad(x, flat, mode=torch_mode)


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _padded_for_conv(
    x: Tensor, pads: Sequence[tuple[int, int]], mode: str, own: tuple[int, ...] | None, same: "SamePad | None" = None
) -> tuple[Tensor, tuple[int, ...]]:
    """`x` and the padding to hand the conv: `own` (from `geometry.conv_own_padding`) if there is one, else `x` padded.

    `same` pads by the input's size (`same_upper` / `same_lower` with a stride), computed anew for each input.
    """
    if same is not None:
        return same(x), (0,) * len(pads)
    if own is not None:
        return x, own
    return pad_input(x, pads, mode), (0,) * len(pads)


def _maximum(a, b):
    """max() for padding arithmetic: torch.sym_max while exporting (sizes are symbols), else Python's."""
    return torch.sym_max(a, b) if not isinstance(a, int) else max(a, b)


class SamePad(nn.Module):
    """`same_upper` / `same_lower` padding (ONNX's auto_pad, TensorFlow's "SAME") computed from each input's size.

    The padding depends on the input size where the stride is above 1, so it is computed from
    `x.shape` with `geometry.auto_padding`, the checker's own formula: with a fixed size, torch's
    exporter folds it into constants; with a dynamic size, the ONNX graph computes it (Shape, Mod,
    Sub, ..., Pad), as timm's dynamic "same" padding does. Input (B, C, *S), output (B, C, *S_padded).
    """

    def __init__(self, kernel_size: Sequence[int], stride: Sequence[int], dilation: Sequence[int], auto_pad: str, mode: str = "zeros"):
        super().__init__()
        if auto_pad not in ("same_upper", "same_lower"):
            raise ValueError(f"auto_pad must be 'same_upper' or 'same_lower', got {auto_pad!r}")
        _check_mode(mode)
        self.kernel_size, self.stride, self.dilation = tuple(kernel_size), tuple(stride), tuple(dilation)
        self.auto_pad, self.mode = auto_pad, mode

    def forward(self, x: Tensor) -> Tensor:
        pads = [
            auto_padding(x.shape[2 + axis], k, s, d, self.auto_pad, _maximum)
            for axis, (k, s, d) in enumerate(zip(self.kernel_size, self.stride, self.dilation))
        ]
        flat = [p for pair in reversed(pads) for p in pair]  # F.pad lists the last dim first
        return F.pad(x, flat, mode=PADDING_MODES[self.mode])

    def extra_repr(self) -> str:
        s = f"{self.auto_pad}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        return s + (f", mode={self.mode}" if self.mode != "zeros" else "")


def same_pad(geometry: ConvGeometry) -> SamePad | None:
    """The run-time padding of `geometry`, where its `auto_pad` follows the input size; else None."""
    g = geometry
    return SamePad(g.kernel_size, g.stride, g.dilation, g.auto_pad, g.padding_mode) if g.padding_follows_size else None


class StochasticDepth(nn.Module):
    """Stochastic depth, per sample ("row" mode; Huang et al. 2016), as torchvision.ops.StochasticDepth.

    In training, each sample's input is zeroed with probability `p` and the others scaled by
    1 / (1 - p), so the expectation is unchanged; in eval it is the identity (and so exported).
    Draws from torch's global RNG, as nn.Dropout does. Input and output (B, ...).
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"drop probability must be in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
        return x * noise.div_(survival)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode=row"


def _per_dim(name: str, value: int | Sequence[int], dims: int, minimum: int) -> tuple[int, ...]:
    """An int (same for every dim) or one int per spatial dim, each >= minimum."""
    values = (value,) * dims if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(values) != dims:
        raise ValueError(f"{name} needs {dims} entries (one per spatial dim), got {value!r}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"{name} entries must be integers >= {minimum}, got {value!r}")
    return values


def _pad_pairs(value: object, dims: int) -> tuple[tuple[int, int], ...]:
    """Padding as ((low, high), ...) per spatial dim; also takes an int or one int per dim (symmetric)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * dims
    try:
        entries = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise ValueError(f"padding must be an int or one (low, high) pair per spatial dim, got {value!r}") from None
    if len(entries) != dims:
        raise ValueError(f"padding needs {dims} entries (one per spatial dim), got {value!r}")
    pairs = []
    for entry in entries:
        pair = (entry, entry) if isinstance(entry, int) else tuple(entry)
        if len(pair) != 2 or any(isinstance(p, bool) or not isinstance(p, int) or p < 0 for p in pair):
            raise ValueError(f"padding entries must be non-negative ints or (low, high) pairs, got {value!r}")
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


class DynamicConv(nn.Module):
    """CondConv / Dynamic Convolution (Chen et al. 2020): K expert kernels mixed per sample.

    For each sample b, an attention branch (global average pool -> Linear ->
    ReLU -> Linear) gives K logits; `attn = softmax(logits / temperature)` mixes
    the experts into one kernel `W_b = sum_k attn[b, k] * weight[k]` (and one
    bias), and sample b is convolved with `W_b`. Padding is applied explicitly
    with `pad_input`, so every `padding_mode` and asymmetric padding work.

    Parameters (state_dict keys): `weight` (K, out, in/groups, *kernel_size),
    `bias` (K, out) or None, `attention.2.*` and `attention.4.*` (the two Linears).
    `temperature` is a plain attribute (not state), so it can be annealed during training.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, ...],
        stride: tuple[int, ...],
        padding: tuple[tuple[int, int], ...],
        dilation: tuple[int, ...],
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        experts: int = 4,
        reduction: int = 4,
        temperature: float = 1.0,
        auto_pad: str | None = None,
    ) -> None:
        super().__init__()
        if dims not in _CONV:
            raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
        in_channels = _positive_int("in_channels", in_channels)
        out_channels = _positive_int("out_channels", out_channels)
        groups = _positive_int("groups", groups)
        experts = _positive_int("experts", experts)
        reduction = _positive_int("reduction", reduction)
        if in_channels % groups:
            raise ValueError(f"in_channels (={in_channels}) must be divisible by groups (={groups})")
        if out_channels % groups:
            raise ValueError(f"out_channels (={out_channels}) must be divisible by groups (={groups})")
        _check_mode(padding_mode)
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        if not math.isfinite(temperature):
            raise ValueError(f"temperature must be finite, got {temperature!r}")

        self.dims = dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _per_dim("kernel_size", kernel_size, dims, 1)
        self.stride = _per_dim("stride", stride, dims, 1)
        self.padding = _pad_pairs(padding, dims)
        self.dilation = _per_dim("dilation", dilation, dims, 1)
        self.groups = groups
        self.padding_mode = padding_mode
        self.experts = experts
        self.reduction = reduction
        self.temperature = float(temperature)
        self._conv_padding = conv_own_padding(self.padding, padding_mode)
        # `same_upper` / `same_lower` with a stride: padding computed from each input (not a child: no state)
        follows = padding_follows_size(auto_pad, self.kernel_size, self.stride, self.dilation)
        self._same = SamePad(self.kernel_size, self.stride, self.dilation, auto_pad, padding_mode) if follows else None

        self.weight = nn.Parameter(torch.empty(experts, out_channels, in_channels // groups, *self.kernel_size))
        if bias:
            self.bias = nn.Parameter(torch.empty(experts, out_channels))
        else:
            self.register_parameter("bias", None)  # as nn.ConvNd: a known attribute, no state_dict key
        hidden = attention_hidden(in_channels, reduction)
        self.attention = nn.Sequential(
            ADAPTIVE_POOLS["avg"][dims - 1](1),  # (B, C, 1, ...)
            nn.Flatten(1),  # (B, C)
            nn.Linear(in_channels, hidden),  # (B, hidden)
            nn.ReLU(),
            nn.Linear(hidden, experts),  # (B, K) logits
        )
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise each expert as nn.ConvNd initialises its single kernel (the attention Linears are separate modules)."""
        fan_in = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            for k in range(self.experts):
                # Per expert, so kaiming's fan_in is that of one (out, in/groups, *k) kernel.
                nn.init.kaiming_uniform_(self.weight[k], a=math.sqrt(5), generator=generator)
                if self.bias is not None:
                    nn.init.uniform_(self.bias[k], -bound, bound, generator=generator)

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != self.dims + 2:
            raise ValueError(
                f"DynamicConv ({self.dims}-D) expects input of shape (B, C, {self._spatial_names()}), "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"DynamicConv expects {self.in_channels} input channels, got {x.shape[1]} (shape {tuple(x.shape)})"
            )

    def _spatial_names(self) -> str:
        return {1: "L", 2: "H, W", 3: "D, H, W"}[self.dims]

    def attention_weights(self, x: Tensor) -> Tensor:
        """The per-sample expert weights, softmax(logits / temperature): (B, K), each row sums to 1."""
        self._check_input(x)
        logits = self.attention(x)  # (B, K)
        return torch.softmax(logits / self.temperature, dim=1)  # (B, K)

    def mixed_weight(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Each sample's kernel and bias: ((B, out, in/groups, *k), (B, out) or None)."""
        attn = self.attention_weights(x)  # (B, K)
        experts = self.weight.flatten(1)  # (K, out * in/groups * prod(k))
        weight = (attn @ experts).unflatten(1, self.weight.shape[1:])  # (B, out, in/groups, *k)
        bias = attn @ self.bias if self.bias is not None else None  # (B, out)
        return weight, bias

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.mixed_weight(x)  # (B, out, in/g, *k), (B, out)
        x, padding = _padded_for_conv(x, self.padding, self.padding_mode, self._conv_padding, self._same)
        if torch.compiler.is_exporting():
            return self._forward_scan(x, weight, bias, padding)
        return self._forward_per_sample(x, weight, bias, padding)

    def _forward_per_sample(self, x: Tensor, weight: Tensor, bias: Tensor | None, padding: Sequence[int]) -> Tensor:
        # One ordinary conv per sample, each with that sample's kernel: torch's conv kernels run at
        # full speed on every sample. Measured against a static conv of the same shape, this stays
        # near its cost, while the batch-as-groups trick (one conv with B*groups groups) was slower.
        conv = _CONV[self.dims]
        if x.shape[0] == 0:  # an empty batch, as a static conv allows: any one kernel gives the shape
            return conv(x, self.weight[0], None, self.stride, padding, self.dilation, self.groups)  # (0, out, *S_out)
        outputs = [
            conv(x[b : b + 1], weight[b], bias[b] if bias is not None else None, self.stride, padding, self.dilation, self.groups)
            for b in range(x.shape[0])
        ]  # B x (1, out, *S_out)
        return torch.cat(outputs, dim=0)  # (B, out, *S_out)

    def _forward_scan(self, x: Tensor, weight: Tensor, bias: Tensor | None, padding: Sequence[int]) -> Tensor:
        # For export with a dynamic batch: a Python loop would be unrolled for the example batch,
        # and ONNX Conv's `group` is a static attribute, so the batch cannot become groups either.
        # torch's scan exports as one ONNX Scan over the batch whose body is the same per-sample
        # conv, with the sample's kernel as the Conv's weight input.
        from torch._higher_order_ops.scan import scan

        conv, stride, dilation, groups = _CONV[self.dims], self.stride, self.dilation, self.groups

        def one_sample(carry: Tensor, sample: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
            x_b, weight_b, *bias_b = sample  # (C, *S), (out, in/g, *k), [(out,)]
            y = conv(x_b.unsqueeze(0), weight_b, bias_b[0] if bias_b else None, stride, padding, dilation, groups)
            return carry + 1, y.squeeze(0)  # scan needs a carried state: here, the samples done

        samples = (x, weight) if bias is None else (x, weight, bias)
        _, y = scan(one_sample, x.new_zeros(()), samples)  # (B, out, *S_out)
        return y

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(lo or hi for lo, hi in self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        s += f", experts={self.experts}, reduction={self.reduction}, temperature={self.temperature:g}"
        return s


class ChannelShuffle(nn.Module):
    """ShuffleNet channel shuffle: (B, g*n, ...) -> view (B, g, n, ...) -> transpose -> flatten back.

    Output channel i*g + j is input channel j*n + i (i < n, j < g), so the next
    grouped conv sees channels from every group. Works for any number of spatial dims.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = _positive_int("groups", groups)

    def forward(self, x: Tensor) -> Tensor:
        if _eager():
            if x.dim() < 2:
                raise ValueError(f"ChannelShuffle expects input of shape (B, C, ...), got shape {tuple(x.shape)}")
            if x.shape[1] % self.groups:
                raise ValueError(f"channels (={x.shape[1]}) must be divisible by groups (={self.groups})")
        # unflatten/flatten only name the channel dim, so batch and spatial sizes stay dynamic in ONNX.
        x = x.unflatten(1, (self.groups, -1))  # (B, g, n, *S)
        x = x.transpose(1, 2)  # (B, n, g, *S)
        return x.flatten(1, 2)  # (B, n*g, *S)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ChannelSlice(nn.Module):
    """(B, C, ...) -> (B, length, ...): channels start .. start + length - 1 (a view, no copy)."""

    def __init__(self, start: int, length: int) -> None:
        super().__init__()
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ValueError(f"start must be an integer >= 0, got {start!r}")
        self.start, self.length = start, _positive_int("length", length)

    def forward(self, x: Tensor) -> Tensor:
        if _eager() and x.shape[1] < self.start + self.length:
            raise ValueError(f"ChannelSlice: channels {self.start}..{self.start + self.length - 1} of an input with {x.shape[1]}")
        return x.narrow(1, self.start, self.length)

    def extra_repr(self) -> str:
        return f"start={self.start}, length={self.length}"


class ChannelSplit(nn.Module):
    """Consecutive channel parts of `sizes` channels each (sum(sizes) == C), as children `0`, `1`, ...

    forward passes the input on unchanged; `part(x, i)` is the output of child `i`.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        start = 0
        for index, size in enumerate(sizes):
            self.add_module(str(index), ChannelSlice(start, size))
            start += size
        self.sizes = tuple(sizes)

    def forward(self, x: Tensor) -> Tensor:
        if _eager() and x.shape[1] != sum(self.sizes):
            raise ValueError(f"ChannelSplit: the sizes {list(self.sizes)} add up to {sum(self.sizes)}, but the input has {x.shape[1]} channels")
        return x

    def part(self, x: Tensor, index: int) -> Tensor:
        return self._modules[str(index)](x)

    def extra_repr(self) -> str:
        return f"sizes={list(self.sizes)}"


# ---------------------------------------------------------------- convolution with norm and activation

_CONV_CLASSES: dict[tuple[int, bool], type[nn.Module]] = {
    (1, False): nn.Conv1d, (2, False): nn.Conv2d, (3, False): nn.Conv3d,
    (1, True): nn.ConvTranspose1d, (2, True): nn.ConvTranspose2d, (3, True): nn.ConvTranspose3d,
}  # fmt: skip
_PAD_CLASSES: dict[str, tuple[type[nn.Module], ...]] = {
    "zeros": (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d),
    "reflect": (nn.ReflectionPad1d, nn.ReflectionPad2d, nn.ReflectionPad3d),
    "replicate": (nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d),
    "circular": (nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d),
}


def make_pad(pads: Sequence[tuple[int, int]], mode: str) -> nn.Module:
    """A stock torch padding module for (low, high) pairs per spatial dim, first dim first, in a convspec padding_mode."""
    _check_mode(mode)
    flat = tuple(p for pair in reversed(pads) for p in pair)  # torch's padding modules want the last dim first
    cls = _PAD_CLASSES[mode][len(pads) - 1]
    return cls(flat, 0.0) if mode == "zeros" else cls(flat)


def make_conv(geometry: ConvGeometry) -> nn.Module:
    """The stock nn.ConvNd / nn.ConvTransposeNd of `geometry`, padding itself where `conv_padding` says it can."""
    g = geometry
    cls = _CONV_CLASSES[g.dims, g.transposed]
    padding = g.conv_padding or (0,) * g.dims
    kwargs = dict(stride=g.stride, padding=padding, dilation=g.dilation, groups=g.groups, bias=g.bias)
    if g.transposed:
        kwargs["output_padding"] = g.transposed_parts[1]
    return cls(g.in_channels, g.out_channels, g.kernel_size, **kwargs)


class ConvNormAct(nn.Sequential):
    """A convolution with its norm and activation, as torchvision's Conv2dNormActivation and timm's ConvNormAct.

    Children, in order: `pad` (a stock padding module, only where the conv cannot pad itself:
    asymmetric pairs or a non-zero padding_mode; a `SamePad` where the padding follows the input
    size), `conv` (a stock nn.ConvNd / nn.ConvTransposeNd, or a `DynamicConv`), `crop` (a stock
    zero-padding module with negative padding, for a transposed conv that crops its ends unequally,
    as Keras' `same` does), `norm` and `act` (where given). Every leaf is a torch module, so tools
    that walk leaves (torchinfo, thop, FX fusion) see a plain conv. State_dict keys:
    `NAME.conv.weight`, `NAME.conv.bias`, `NAME.norm.weight`, `NAME.norm.running_mean`, ...
    Input (B, C_in, *S), output (B, C_out, *S').
    """

    def __init__(
        self, conv: nn.Module, norm: nn.Module | None = None, act: nn.Module | None = None, pad: nn.Module | None = None,
        crop: nn.Module | None = None,
    ):
        super().__init__()
        if pad is not None:
            self.pad = pad
        self.conv = conv
        if crop is not None:
            self.crop = crop
        if norm is not None:
            self.norm = norm
        if act is not None:
            self.act = act


def conv_norm_act(geometry: ConvGeometry, norm: nn.Module | None = None, act: nn.Module | None = None) -> ConvNormAct:
    """A `ConvNormAct` for `geometry` (the checker's): padding as resolved there, never recomputed."""
    pad = crop = None
    if geometry.transposed:
        extra = geometry.transposed_parts[2]
        if any(lo or hi for lo, hi in extra):
            crop = make_pad(tuple((-lo, -hi) for lo, hi in extra), "zeros")  # negative padding crops
    elif geometry.padding_follows_size:
        pad = same_pad(geometry)
    elif geometry.conv_padding is None:
        pad = make_pad(geometry.padding, geometry.padding_mode)
    return ConvNormAct(make_conv(geometry), norm, act, pad, crop)


class FixedConv(nn.Module):
    """A convolution with a known kernel: a buffer when frozen, a parameter when trainable.

    Per channel (groups = channels) the kernel is applied to each channel alone; otherwise
    every (out, in) pair gets the same kernel.
    """

    def __init__(self, geometry: ConvGeometry, kernel: list, trainable: bool = False, passes: Sequence[Sequence[float]] | None = None):
        super().__init__()
        g = geometry
        self._kernel, self._passes = kernel, passes  # plain numbers, to (re)fill the tensors from
        weight = torch.empty(g.out_channels, g.in_channels // g.groups, *g.kernel_size)
        if trainable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)
        self.dims, self.stride, self.dilation, self.groups = g.dims, g.stride, g.dilation, g.groups
        self.padding, self.padding_mode = g.padding, g.padding_mode
        self._conv_padding = g.conv_padding
        self._same = same_pad(g)  # padding computed from each input, where it follows the size
        # `passes`: the checker found the frozen kernel to be an outer product of 1-D kernels
        # (gaussian, box) wide enough to gain: run one 1-D pass per dim, k + k multiply-adds, not k * k.
        self.passes = len(passes) if passes else 0
        for axis, factor in enumerate(passes or ()):
            shape = [1] * self.dims
            shape[axis] = len(factor)
            # (C, 1, 1, .., k, .., 1): derived from `weight`, so kept out of the state_dict
            self.register_buffer(f"pass{axis}", torch.empty(g.out_channels, 1, *shape), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Fill the kernel (and the 1-D passes) from the plain numbers it was built with."""
        if self.weight.is_meta:  # built on the meta device: filled after `to_empty`
            return
        values = torch.tensor(self._kernel, dtype=self.weight.dtype)  # (*kernel_size)
        self.weight.copy_(values.expand_as(self.weight))
        for axis, factor in enumerate(self._passes or ()):
            one_d = getattr(self, f"pass{axis}")
            one_d.copy_(torch.tensor(factor, dtype=one_d.dtype).reshape(one_d.shape[1:]).expand_as(one_d))

    def forward(self, x: Tensor) -> Tensor:
        x, padding = _padded_for_conv(x, self.padding, self.padding_mode, self._conv_padding, self._same)
        if not self.passes:
            return _CONV[self.dims](x, self.weight, None, self.stride, padding, self.dilation, self.groups)
        for axis in range(self.dims):
            stride, dilation, axis_padding = [1] * self.dims, [1] * self.dims, [0] * self.dims
            stride[axis], dilation[axis], axis_padding[axis] = self.stride[axis], self.dilation[axis], padding[axis]
            x = _CONV[self.dims](x, getattr(self, f"pass{axis}"), None, stride, axis_padding, dilation, self.groups)
        return x

    def extra_repr(self) -> str:
        out, per_group = self.weight.shape[:2]
        kind = "per channel" if self.groups == out and per_group == 1 else "full"
        frozen = "trainable" if isinstance(self.weight, nn.Parameter) else "frozen"
        return f"{out}, kernel_size={tuple(self.weight.shape[2:])}, {kind}, {frozen}, padding={self.padding}, stride={self.stride}"


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels at each position of a (B, C, *S) map (ConvNeXt's LayerNorm2d)."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.eps = eps
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x.movedim(1, -1)  # (B, *S, C)
        x = F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)  # (B, C, *S)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


class AdaptivePool(nn.Module):
    """Adaptive max/avg pooling to a fixed size, exportable when the size does not divide the input.

    ONNX has no adaptive pooling: torch's exporter turns it into a fixed pool only when every
    output size divides the input size. Otherwise, under export, each output cell is reduced
    over its own window, exactly PyTorch's windows: [floor(i * n / m), ceil((i + 1) * n / m)).
    """

    def __init__(self, op: str, size: Sequence[int]):
        super().__init__()
        self.op, self.size = op, tuple(size)
        dims = len(self.size)
        self.pool = ADAPTIVE_POOLS[op][dims - 1](self.size)

    def forward(self, x: Tensor) -> Tensor:
        spatial = x.shape[2:]
        if not torch.compiler.is_exporting() or all(n % m == 0 for n, m in zip(spatial, self.size)):
            return self.pool(x)
        for axis, (n, m) in enumerate(zip(spatial, self.size)):
            dim = 2 + axis
            cells = []
            for start, end in adaptive_windows(n, m):
                window = x.narrow(dim, start, end - start)  # (B, C, .., end - start, ..)
                cells.append(window.amax(dim, keepdim=True) if self.op == "max" else window.mean(dim, keepdim=True))
            x = torch.cat(cells, dim)  # (B, C, .., m, ..): one dim at a time, as the windows are separable
        return x

    def extra_repr(self) -> str:
        return f"{self.op}, size={self.size}"
