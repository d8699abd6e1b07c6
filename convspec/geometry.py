"""Convolution and pooling geometry by arithmetic: the one place for these formulas. No torch.

The checker (`shapes.py` and its `shapes_*` rules), the memory budget (`budget.py`)
and the torch modules (`layers.py` and its `layers_*` siblings) all take their numbers
from here, so a report and a module cannot disagree about padding, output sizes or
weight shapes.

Conventions: sizes are per spatial dim; padding is one `(low, high)` pair per
spatial dim, first spatial dim first (equinox's `((lo, hi), ...)` form); kernels,
strides and dilations are tuples of ints, one per spatial dim.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

Pads = tuple[tuple[int, int], ...]


# convspec's padding_mode names -> torch.nn.functional.pad's mode names
PAD_MODES: dict[str, str] = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


# One multiply-accumulate is two floating-point operations, a multiply and an add: the
# convention of torch.utils.flop_counter.FlopCounterMode (fvcore and thop count MACs instead).
FLOPS_PER_MAC = 2


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


AUTO_PADS = ("same_upper", "same_lower")  # ONNX's auto_pad terms, in convspec's spelling


def auto_pad_total(size, kernel: int, stride: int, dilation: int, maximum=max):
    """Total padding of `same_upper` / `same_lower` in one dim: ONNX's auto_pad SAME_*, TensorFlow's "SAME".

    max((ceil(in / s) - 1) * s + (k - 1) * d + 1 - in, 0) (ONNX Conv's auto_pad, TensorFlow's
    `tf.nn.convolution` padding docs), so that out = ceil(in / s). Since
    (ceil(in / s) - 1) * s + 1 - in = -((in - 1) % s), this is max((k - 1) * d - (in - 1) % s, 0).
    Written with +, -, % and `maximum` alone so that `size` may be symbolic (a SymInt while
    torch exports, an FX proxy): the module computes its padding from its input with this same
    function; `maximum` is needed only where the kernel spans fewer than stride - 1 pixels.
    """
    span = dilation * (kernel - 1)
    if stride == 1 or span == 0:
        return span  # (in - 1) % 1 == 0; a 1-pixel kernel never needs padding
    if span >= stride - 1:  # (in - 1) % s <= s - 1: never negative
        return span - (size - 1) % stride
    return maximum(span - (size - 1) % stride, 0)


def auto_pad_depends_on_size(kernel: int, stride: int, dilation: int) -> bool:
    """Whether `same_upper` / `same_lower` padding changes with the input size: stride > 1 and a kernel wider than 1."""
    return stride > 1 and dilation * (kernel - 1) > 0


def padding_follows_size(auto_pad: str | None, kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...]) -> bool:
    """Whether a conv with this `auto_pad` must compute its padding from each input: in some dim, it changes with the size."""
    return auto_pad is not None and any(auto_pad_depends_on_size(k, s, d) for k, s, d in zip(kernel, stride, dilation))


def auto_padding(size, kernel: int, stride: int, dilation: int, auto_pad: str, maximum=max) -> tuple:
    """(low, high) of `same_upper` (the odd pixel at the end, as TensorFlow) or `same_lower` (at the start)."""
    total = auto_pad_total(size, kernel, stride, dilation, maximum)
    half = total // 2
    return (half, total - half) if auto_pad == "same_upper" else (total - half, half)


def transposed_auto_padding(kernel: int, stride: int, dilation: int, auto_pad: str) -> tuple[tuple[int, int], int]:
    """((crop_low, crop_high), output_padding) giving out = in * stride for any input size.

    A transposed conv is the adjoint of a conv; this one is the adjoint of the `auto_pad` conv
    from in * stride to in, whose total padding is then max(d * (k - 1) + 1 - s, 0) at every size.
    So the full output, (in - 1) * s + d * (k - 1) + 1 long, loses that total, split as the conv
    pads: `same_upper` crops the odd pixel at the end and keeps the leading part (TensorFlow's and
    Keras's `Conv2DTranspose(padding="same")`, the gradient of their "SAME" conv); `same_lower`
    crops it at the start. Where the kernel is shorter than the stride, zeros are added at the end
    (output_padding) instead, as TensorFlow does.
    """
    excess = dilation * (kernel - 1) + 1 - stride
    if excess <= 0:
        return (0, 0), -excess
    half = excess // 2
    return ((half, excess - half) if auto_pad == "same_upper" else (excess - half, half)), 0


def transposed_conv_parts(crop: tuple[int, int], output_padding: int, stride: int) -> tuple[int, int, tuple[int, int]]:
    """How nn.ConvTransposeNd gives a transposed conv cropped by (low, high): (padding, output_padding, extra crop).

    nn.ConvTransposeNd crops its padding p from both ends and then adds output_padding at the
    end, so an end crop smaller than the start crop is p = low with more output_padding, while
    that stays below the stride (PyTorch allows up to the dilation, onnxruntime only below the
    stride); what is left is cropped after the conv.
    """
    low, high = crop
    if low >= high and output_padding + low - high < stride:
        return low, output_padding + low - high, (0, 0)
    common = min(low, high)
    return common, output_padding, (low - common, high - common)


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


def transposed_output_size(size: int, kernel: int, stride: int, dilation: int, padding, output_padding: int) -> int:
    """(in - 1) * s - 2p + d*(k-1) + output_padding + 1, as nn.ConvTransposeNd (PyTorch docs).

    `padding` is p, cropped from both ends, or a (low, high) pair cropped from each end (ONNX
    ConvTranspose's `pads`): then low + high replaces 2p.
    """
    low, high = (padding, padding) if isinstance(padding, int) else padding
    return (size - 1) * stride - low - high + dilation * (kernel - 1) + output_padding + 1


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


def onnx_ceil_pool(
    sizes: Sequence[int], kernel: Sequence[int], stride: Sequence[int], padding: Sequence[int]
) -> tuple[bool, tuple[int, ...]] | None:
    """How MaxPool / AveragePool before opset 22 get PyTorch's ceil_mode windows at these input sizes.

    Returns (ceil_mode, extra padding at the end of each dim), or None when they cannot. Before
    opset 22 ONNX keeps a ceil-mode window that starts in the right padding, which PyTorch drops
    (onnx/onnx#5711). Where every dim either drops it or has none, floor mode is the same pool;
    where none drops it, ceil mode is; where one dim drops it and another needs it, floor mode
    with the needed windows padded in at the end is (exact for max pooling, which ignores
    padding), as long as that padding stays below the kernel, as onnxruntime requires.
    """
    torch_out = [pool_output_size(n, k, s, p, True) for n, k, s, p in zip(sizes, kernel, stride, padding)]
    floor_out = [pool_output_size(n, k, s, p, False) for n, k, s, p in zip(sizes, kernel, stride, padding)]
    kept_out = [-(-(n + 2 * p - k) // s) + 1 for n, k, s, p in zip(sizes, kernel, stride, padding)]
    none = (0,) * len(sizes)
    if torch_out == floor_out:
        return False, none
    if torch_out == kept_out:
        return True, none
    extra = tuple(
        (t - 1) * s + k - (n + 2 * p) if t > f else 0
        for t, f, n, k, s, p in zip(torch_out, floor_out, sizes, kernel, stride, padding)
    )
    if any(e and p + e >= k for e, k, p in zip(extra, kernel, padding)):
        return None
    return False, extra


def pool_ceil_may_drop(kernel: int, stride: int, padding: int) -> bool:
    """Whether ceil_mode's extra window can ever start inside the right padding, at some input size.

    The extra window starts at ceil((in + 2p - k) / s) * s - p < in - p + s - k + p = in + s - k
    past the left edge (plus the left padding), so it stays inside the input when p == 0 and s <= k.
    ONNX opsets before 22 do not drop such a window (MaxPool/AveragePool-22 added PyTorch's rule).
    """
    return padding > 0 or stride > kernel


def resize_output_size(size: int, scale: float) -> int:
    """nn.Upsample / F.interpolate with `scale_factor`: floor(in * scale), in double precision (PyTorch's rule)."""
    return math.floor(size * scale)


def float32(value: float) -> float:
    """`value` rounded to float32, the type of ONNX Resize's `scales` (inf when beyond float32's range)."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.inf


def onnx_resize_output_size(size: int, scale: float) -> int:
    """ONNX Resize with `scales`: floor(in * scale), the scale stored as float32, computed exactly (the ONNX operator spec).

    1.3 is 1.29999995 in float32, so ONNX's Resize makes 12 of 10 where PyTorch makes 13.
    """
    numerator, denominator = Fraction(float32(scale)).as_integer_ratio()
    return size * numerator // denominator


def interpolation_scale(mode: str, dims: int, size: int, out: int, scale: float) -> float:
    """The scale PyTorch's CPU kernels sample an axis with, upsampling `size` to `out` by `scale`.

    Measured with torch 2.13: the 2-D nearest kernel copies an axis whose size is kept and
    halves the indices of one whose size doubles, whatever the scale; the linear kernels
    (linear, bilinear, trilinear) copy a kept axis; otherwise the scale given is used.
    ONNX's Resize samples at the scale it is given, so these must be written as 1 and 2.
    """
    if out == size and (mode in ("linear", "bilinear", "trilinear") or (mode == "nearest" and dims == 2)):
        return 1.0
    if out == 2 * size and mode == "nearest" and dims == 2:
        return 2.0
    return scale


def resize_copied_by_onnxruntime(mode: str, sizes: tuple[int, ...], outs: tuple[int, ...], scales: tuple[float, ...]) -> bool:
    """Whether onnxruntime copies a Resize that keeps every size while PyTorch resamples it.

    onnxruntime (1.32) returns its input when the output shape equals it, whatever the scales;
    PyTorch's 1-D and 3-D nearest and its bicubic kernels sample such axes at the scale given.
    """
    dims = len(sizes)
    return tuple(outs) == tuple(sizes) and any(
        n >= 2 and interpolation_scale(mode, dims, n, n, scale) != 1.0 for n, scale in zip(sizes, scales)
    )


def resize_scale_disagrees(scale: float, mode: str, dims: int, limit: int = 2**16) -> tuple[int, str] | None:
    """The smallest input size up to `limit` at which ONNX's Resize by `scale` differs from PyTorch's, and how.

    "size": ONNX's float32 scale makes another output size (checked first); "samples": PyTorch
    samples at another scale there (`interpolation_scale`). None when they agree at every size.
    """
    if not math.isfinite(float32(scale)):
        return 1, "size"
    if float32(scale) != scale:  # exact in binary (2, 1.5, 0.25): the same product at every size
        size = next((n for n in range(1, limit + 1) if resize_output_size(n, scale) != onnx_resize_output_size(n, scale)), None)
        if size is not None:
            return size, "size"
    # an axis is kept (n * scale < n + 1) or doubled (n * scale < 2n + 1) only below these sizes
    if scale <= 1 or scale == 2:
        return None
    last = min(limit, math.floor(1 / (scale - 1 if scale < 2 else scale - 2)) + 1)
    for n in range(2, last + 1):
        if interpolation_scale(mode, dims, n, resize_output_size(n, scale), scale) != scale:
            return n, "samples"
    return None


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
    conv only (then `padding` is what is cropped from each end of its output). `auto_pad`
    (`same_upper` / `same_lower`) marks padding that may follow the input size: `padding` is
    then the one at the traced size, (0, 0) where that size is unknown, and the module
    computes its own from each input where `padding_follows_size` says so.
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
    auto_pad: str | None = None

    @property
    def transposed(self) -> bool:
        return self.output_padding is not None

    @property
    def padding_follows_size(self) -> bool:
        """Whether the padding is computed from the input at run time (`auto_pad` with a stride > 1)."""
        return not self.transposed and padding_follows_size(self.auto_pad, self.kernel_size, self.stride, self.dilation)

    @property
    def conv_padding(self) -> tuple[int, ...] | None:
        """Per-dim padding the conv applies itself, or None when it is applied before (see `conv_own_padding`)."""
        if self.transposed:  # ConvTranspose's padding crops the output: always the conv's own
            return tuple(self.transposed_parts[0])
        if self.padding_follows_size:
            return None
        return conv_own_padding(self.padding, self.padding_mode)

    @property
    def transposed_parts(self) -> tuple[tuple[int, ...], tuple[int, ...], Pads]:
        """A transposed conv as nn.ConvTransposeNd takes it: (padding, output_padding, crop after), per dim."""
        parts = [transposed_conv_parts(c, op, s) for c, op, s in zip(self.padding, self.output_padding, self.stride)]
        return tuple(p for p, _, _ in parts), tuple(op for _, op, _ in parts), tuple(c for _, _, c in parts)

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
    "AUTO_PADS", "auto_pad_depends_on_size", "auto_pad_total", "auto_padding", "padding_follows_size", "transposed_auto_padding",
    "transposed_conv_parts",
    "ConvGeometry", "Pads", "attention_hidden", "conv_output_size", "conv_own_padding", "conv_params", "conv_weight_shape", "divisors",
    "float32", "interpolation_scale", "norm_buffers", "resize_copied_by_onnxruntime", "norm_params", "onnx_resize_output_size", "pool_output_size", "resize_output_size",
    "resize_scale_disagrees", "same_padding", "transposed_output_size", "transposed_same_padding",
]  # fmt: skip
