"""Convolution and pooling geometry by arithmetic: the one place for these formulas. No torch.

The checker (`shapes.py`), the memory budget (`budget.py`) and the torch modules
(`layers.py`) all take their numbers from here, so a report and a module cannot
disagree about padding, output sizes or weight shapes.

Conventions: sizes are per spatial dim; padding is one `(low, high)` pair per
spatial dim, first spatial dim first (equinox's `((lo, hi), ...)` form); kernels,
strides and dilations are tuples of ints, one per spatial dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Pads = tuple[tuple[int, int], ...]


# convspec's padding_mode names -> torch.nn.functional.pad's mode names
PAD_MODES: dict[str, str] = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def format_shape(shape: tuple | None) -> str:
    """(1, 64, None, None) -> '1x64x?x?'; None (unknown) -> '?'."""
    if shape is None:
        return "?"
    return "x".join("?" if s is None else str(s) for s in shape)


# ---------------------------------------------------------------- padding


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """`padding: same`: (k - 1) * d in total, the lower side the floor of half (PyTorch's split for `padding="same"`)."""
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def transposed_same_padding(kernel: int, stride: int, dilation: int) -> tuple[int, int] | None:
    """(padding, output_padding) giving out = in * stride for nn.ConvTransposeNd, or None where no valid pair exists."""
    # out = in*s  <=>  2p - op = d*(k-1) + 1 - s, with p >= 0 and 0 <= op < max(s, d)
    excess = dilation * (kernel - 1) + 1 - stride
    if excess >= 0:
        padding, output_padding = (excess + 1) // 2, (excess + 1) // 2 * 2 - excess
    else:
        padding, output_padding = 0, -excess
    if output_padding >= max(stride, dilation):
        return None
    return padding, output_padding


def conv_own_padding(padding: Pads, padding_mode: str) -> tuple[int, ...] | None:
    """The one decision of how padding is applied: the per-dim padding a conv applies itself, or None.

    A conv pads itself when the padding is zeros and the same on both sides of every dim (what
    `nn.ConvNd(padding=p)` and `F.convNd(padding=p)` do at no extra cost). Anything else
    (asymmetric pairs from an even `same` kernel, reflect / replicate / circular modes) is
    applied before an unpadded conv, as nn.ConvNd itself does for non-zero modes.
    """
    if padding_mode != "zeros" or any(lo != hi for lo, hi in padding):
        return None
    return tuple(lo for lo, _ in padding)


# ---------------------------------------------------------------- output sizes


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, pad: tuple[int, int]) -> int:
    """floor((in + pad_lo + pad_hi - d*(k-1) - 1) / s) + 1, as nn.ConvNd (PyTorch docs, Conv2d "Shape")."""
    return (size + pad[0] + pad[1] - dilation * (kernel - 1) - 1) // stride + 1


def transposed_output_size(size: int, kernel: int, stride: int, dilation: int, padding: int, output_padding: int) -> int:
    """(in - 1) * s - 2p + d*(k-1) + output_padding + 1, as nn.ConvTransposeNd (PyTorch docs)."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """nn.MaxPoolNd / AvgPoolNd output size, including ceil_mode's rule that the last window starts inside the input."""
    span = size + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window may not start inside the right padding
    return out


def adaptive_windows(size: int, out: int) -> list[tuple[int, int]]:
    """[start, end) of each of adaptive pooling's `out` windows over `size` inputs.

    PyTorch's windows (aten AdaptiveAveragePooling): start = floor(i * size / out),
    end = ceil((i + 1) * size / out). Uneven windows differ in width by up to 2.
    """
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def adaptive_widest_window(size: int, out: int) -> int:
    """The widest of `adaptive_windows(size, out)`, in O(1): ceil((size + out - gcd(size, out)) / out).

    Window i is ceil((i*size mod out + size) / out) wide, and i*size mod out reaches at most
    out - gcd(size, out).
    """
    return -(-(size + out - math.gcd(size, out)) // out)


def pool_ceil_may_drop(kernel: int, stride: int, padding: int) -> bool:
    """Whether ceil_mode's extra window can ever start inside the right padding, at some input size.

    The extra window starts at ceil((in + 2p - k) / s) * s - p < in - p + s - k + p = in + s - k
    past the left edge (plus the left padding), so it stays inside the input when p == 0 and s <= k.
    ONNX opsets before 22 do not drop such a window (MaxPool/AveragePool-22 added PyTorch's rule).
    """
    return padding > 0 or stride > kernel


# ---------------------------------------------------------------- weights and costs


def conv_weight_shape(in_channels: int, out_channels: int, kernel: tuple[int, ...], groups: int, transposed: bool = False) -> tuple[int, ...]:
    """nn.ConvNd's weight (out, in/groups, *k); nn.ConvTransposeNd's (in, out/groups, *k)."""
    if transposed:
        return (in_channels, out_channels // groups, *kernel)
    return (out_channels, in_channels // groups, *kernel)


def conv_params(in_channels: int, out_channels: int, kernel: tuple[int, ...], groups: int, bias: bool) -> int:
    """Weight values (in/groups x out x prod(kernel)) plus one bias per output channel."""
    return out_channels * (in_channels // groups) * math.prod(kernel) + (out_channels if bias else 0)


def norm_params(kind: str | None, channels: int) -> int:
    """Learnable parameters of a norm over `channels` (affine weight and bias); running statistics are buffers."""
    if kind in ("batch", "group", "layer"):
        return 2 * channels
    return 0  # instance norm: affine=False, as nn.InstanceNormNd's default


def norm_buffers(kind: str | None, channels: int) -> int:
    """Values a norm holds as buffers: BatchNorm's running mean and variance (its int64 batch counter not counted)."""
    return 2 * channels if kind == "batch" else 0


def attention_hidden(in_channels: int, reduction: int) -> int:
    """Width of a dynamic conv's attention MLP: max(1, in // reduction) (Chen et al. 2020)."""
    return max(1, in_channels // reduction)


# ---------------------------------------------------------------- one convolution, resolved


@dataclass(frozen=True)
class ConvGeometry:
    """One convolution, fully resolved: what a torch conv needs, and nothing to recompute.

    `padding` holds (low, high) per spatial dim; `output_padding` is set for a transposed
    conv only (then `padding` is symmetric, as nn.ConvTransposeNd allows).
    """

    dims: int
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    padding: Pads
    groups: int
    bias: bool
    padding_mode: str = "zeros"
    output_padding: tuple[int, ...] | None = None

    @property
    def transposed(self) -> bool:
        return self.output_padding is not None

    @property
    def conv_padding(self) -> tuple[int, ...] | None:
        """Per-dim padding the conv applies itself, or None when it is applied before (see `conv_own_padding`)."""
        if self.transposed:  # ConvTranspose's padding crops the output: always the conv's own
            return tuple(lo for lo, _ in self.padding)
        return conv_own_padding(self.padding, self.padding_mode)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        return conv_weight_shape(self.in_channels, self.out_channels, self.kernel_size, self.groups, self.transposed)

    @property
    def params(self) -> int:
        return conv_params(self.in_channels, self.out_channels, self.kernel_size, self.groups, self.bias)

    def macs(self, in_shape: tuple, out_shape: tuple) -> int:
        """Multiply-accumulates from input (B, C_in, *S) to output (B, C_out, *S'); 0 where a size is unknown.

        Each output value of a conv sums (in/groups) x prod(kernel) products; each input value of
        a transposed conv spreads (out/groups) x prod(kernel) products.
        """
        if self.transposed:
            counted, per_value = in_shape, self.out_channels // self.groups
        else:
            counted, per_value = out_shape, self.in_channels // self.groups
        if any(s is None for s in counted):
            return 0
        return math.prod(counted) * per_value * math.prod(self.kernel_size)


# ---------------------------------------------------------------- divisors (for hints on `groups`)

_SMALL_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def _is_prime(n: int) -> bool:
    """Miller-Rabin with the first 12 primes as bases: exact below 3.3e24 (Sorenson and Webster 2015)."""
    if n < 2:
        return False
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in _SMALL_PRIMES:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _factor(n: int) -> int:
    """A non-trivial factor of the composite odd `n` (Pollard's rho, Brent's variant; Brent 1980)."""
    for c in range(1, n):
        y, m, g, r, q = 2, 64, 1, 1, 1
        x = ys = y
        while g == 1:
            x = y
            for _ in range(r):
                y = (y * y + c) % n
            k = 0
            while k < r and g == 1:
                ys = y
                for _ in range(min(m, r - k)):
                    y = (y * y + c) % n
                    q = q * abs(x - y) % n
                g = math.gcd(q, n)
                k += m
            r *= 2
        if g == n:  # the batch overshot: step one at a time
            g = 1
            while g == 1:
                ys = (ys * ys + c) % n
                g = math.gcd(abs(x - ys), n)
        if g != n:
            return g
    raise ArithmeticError(f"no factor found for {n}")  # unreachable for composite n


def divisors(n: int) -> list[int]:
    """Every divisor of `n` >= 1, ascending; in time about n ** (1/4), so channel counts near 2**31 (or sums of them) cost nothing."""
    primes: dict[int, int] = {}
    stack = [n]
    while stack:
        m = stack.pop()
        if m == 1:
            continue
        for p in _SMALL_PRIMES:
            while m % p == 0:
                primes[p] = primes.get(p, 0) + 1
                m //= p
        if m == 1:
            continue
        if _is_prime(m):
            primes[m] = primes.get(m, 0) + 1
            continue
        f = _factor(m)
        stack += [f, m // f]
    found = [1]
    for p, power in primes.items():
        found = [d * p**e for d in found for e in range(power + 1)]
    return sorted(found)


__all__ = [
    "ConvGeometry", "Pads", "attention_hidden", "conv_output_size", "conv_own_padding", "conv_params", "conv_weight_shape", "divisors",
    "norm_buffers", "norm_params", "pool_output_size", "same_padding", "transposed_output_size", "transposed_same_padding",
]  # fmt: skip
