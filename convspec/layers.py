"""Convolution blocks and their padding, as torch modules: `ConvNormAct` and the padding it runs.

- `pad_input`: explicit, possibly asymmetric padding in any of convspec's
  `padding_mode`s, written per spatial dim in spatial order (torch's `F.pad`
  wants the last dim first; this is the one place that converts).
- `SamePad`: `same_upper` / `same_lower` padding computed from each input's size.
- `ConvNormAct`: a stock conv with its padding, norm and activation, made from the
  checker's `ConvGeometry` by `conv_norm_act`; `ChannelLayerNorm` is its `norm: layer`.

The other torch modules are `layers_kernels` (FixedConv, DynamicConv), `layers_resample`
(pooling and upsampling) and `layers_wiring` (channel shuffle and split, stochastic depth);
they import only `geometry` and each other from convspec, never the checker.
Shapes: B batch, C channels, S spatial dims.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import PAD_MODES, ConvGeometry, auto_padding  # one formula, shared with the checker

__all__ = [
    "PADDING_MODES", "pad_input", "SamePad", "same_pad", "make_pad", "make_conv", "ConvNormAct", "conv_norm_act", "ChannelLayerNorm",
    "check_padding_mode", "is_eager", "positive_int", "padded_for_conv",
]  # fmt: skip

PADDING_MODES = PAD_MODES  # convspec's padding_mode names -> F.pad's mode names


def is_eager() -> bool:
    """True outside tracing, compiling and FX's symbolic tracing, where data-dependent Python checks are safe to run."""
    return not (torch.jit.is_tracing() or torch.compiler.is_compiling() or torch.fx._symbolic_trace.is_fx_symbolic_tracing())


def check_padding_mode(mode: str) -> str:
    """F.pad's mode for a convspec `padding_mode`; ValueError naming the modes for any other."""
    if mode not in PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, got {mode!r}"
        )
    return PADDING_MODES[mode]


def positive_int(name: str, value: object) -> int:
    """`value` if it is an int >= 1 (not a bool); else ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def pad_input(x: Tensor, pads: Sequence[tuple[int, int]], mode: str) -> Tensor:
    """Pad the spatial dims of `x` (B, C, *S).

    `pads` holds one (low, high) pair per spatial dim, first spatial dim first;
    `mode` is a convspec padding_mode ('zeros', 'reflect', 'replicate', 'circular').
    Returns `x` itself when every pad is 0.
    """
    torch_mode = check_padding_mode(mode)
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
    if mode in ("reflect", "circular") and is_eager():
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


def padded_for_conv(
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
        check_padding_mode(mode)
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
    check_padding_mode(mode)
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
