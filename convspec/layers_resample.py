"""Pooling and upsampling modules that export as PyTorch computes them: `MaxPool1d`, `Upsample` and `AdaptivePool`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .geometry import adaptive_windows, interpolation_scale, resize_output_size  # one formula, shared with the checker

__all__ = ["ADAPTIVE_POOLS", "AdaptivePool", "MaxPool1d", "Upsample"]

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
