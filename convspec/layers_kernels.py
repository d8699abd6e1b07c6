"""Convolutions whose kernel is not a stock conv's weight: `FixedConv` (a known kernel) and `DynamicConv` (experts mixed per sample).

- `FixedConv`: a frozen (buffer) or trainable kernel given as numbers; a separable
  frozen kernel runs as one 1-D pass per dim, as the checker decides.
- `DynamicConv`: CondConv / Dynamic Convolution (Chen et al., 2020). K expert
  kernels are mixed per sample by a small attention branch, and each sample is
  convolved with its own kernel: one ordinary conv per sample, in eager mode
  as a loop and under export (for a dynamic batch) as torch's scan, which
  becomes an ONNX Scan. The mixed kernel is always a proper
  (out, in/groups, *kernel_size) weight, never a 5-D tensor handed to conv2d.

Shapes: B batch, C (= in) input channels, K experts, S spatial dims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import ConvGeometry, attention_hidden, conv_own_padding, padding_follows_size  # one formula, shared with the checker
from .layers import SamePad, check_padding_mode, padded_for_conv, positive_int, same_pad
from .layers_resample import ADAPTIVE_POOLS

__all__ = ["DynamicConv", "FixedConv"]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


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
        x, padding = padded_for_conv(x, self.padding, self.padding_mode, self._conv_padding, self._same)
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


def _check_dynamic_arguments(
    dims: int, in_channels: int, out_channels: int, groups: int, experts: int, reduction: int, padding_mode: str, temperature: float,
) -> None:
    """Raise ValueError, naming the argument, where `DynamicConv`'s arguments cannot make a module (nn.ConvNd's rules, and K, r, T > 0)."""
    if dims not in _CONV:
        raise ValueError(f"dims must be 1, 2 or 3, got {dims!r}")
    counts = {"in_channels": in_channels, "out_channels": out_channels, "groups": groups, "experts": experts, "reduction": reduction}
    for name, value in counts.items():
        positive_int(name, value)
    if in_channels % groups:
        raise ValueError(f"in_channels (={in_channels}) must be divisible by groups (={groups})")
    if out_channels % groups:
        raise ValueError(f"out_channels (={out_channels}) must be divisible by groups (={groups})")
    check_padding_mode(padding_mode)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if not math.isfinite(temperature):
        raise ValueError(f"temperature must be finite, got {temperature!r}")


def _attention_branch(dims: int, in_channels: int, reduction: int, experts: int) -> nn.Sequential:
    """(B, C, *S) -> (B, K) logits: global average pool, Linear(C, hidden), ReLU, Linear(hidden, K); keys `2.*` and `4.*`."""
    hidden = attention_hidden(in_channels, reduction)
    return nn.Sequential(
        ADAPTIVE_POOLS["avg"][dims - 1](1),  # (B, C, 1, ...)
        nn.Flatten(1),  # (B, C)
        nn.Linear(in_channels, hidden),  # (B, hidden)
        nn.ReLU(),
        nn.Linear(hidden, experts),  # (B, K) logits
    )


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
        _check_dynamic_arguments(dims, in_channels, out_channels, groups, experts, reduction, padding_mode, temperature)
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
        self.attention = _attention_branch(dims, in_channels, reduction, experts)
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
        x, padding = padded_for_conv(x, self.padding, self.padding_mode, self._conv_padding, self._same)
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
