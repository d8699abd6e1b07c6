"""Modules of the graph's wiring: `ChannelShuffle`, `ChannelSplit` (its parts `ChannelSlice`) and a residual's `StochasticDepth`.

- `ChannelShuffle`: ShuffleNet's channel shuffle, built from reshapes and a
  transpose so it exports to ONNX.
- `ChannelSplit`: ShuffleNet V2's channel split. It passes its input on
  unchanged; its children `0`, `1`, ... (`ChannelSlice`) cut out the parts,
  so the part a `Graph` reads as `from: NAME.i` is the output of the real
  submodule `NAME.i`.

Shapes: B batch, C channels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .layers import is_eager, positive_int

__all__ = ["ChannelShuffle", "ChannelSlice", "ChannelSplit", "StochasticDepth"]


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


class ChannelShuffle(nn.Module):
    """ShuffleNet channel shuffle: (B, g*n, ...) -> view (B, g, n, ...) -> transpose -> flatten back.

    Output channel i*g + j is input channel j*n + i (i < n, j < g), so the next
    grouped conv sees channels from every group. Works for any number of spatial dims.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = positive_int("groups", groups)

    def forward(self, x: Tensor) -> Tensor:
        if is_eager():
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
        self.start, self.length = start, positive_int("length", length)

    def forward(self, x: Tensor) -> Tensor:
        if is_eager() and x.shape[1] < self.start + self.length:
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
        if is_eager() and x.shape[1] != sum(self.sizes):
            raise ValueError(f"ChannelSplit: the sizes {list(self.sizes)} add up to {sum(self.sizes)}, but the input has {x.shape[1]} channels")
        return x

    def part(self, x: Tensor, index: int) -> Tensor:
        return self._modules[str(index)](x)

    def extra_repr(self) -> str:
        return f"sizes={list(self.sizes)}"
