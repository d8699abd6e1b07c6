"""Two layer kinds for convspec, declared in one file: `cbam` (attention) and `pixel_shuffle`.

Torch-free: the builders are named as "module:function", so `convspec check` does not import torch.
"""

import math
from fractions import Fraction
from typing import Literal

from pydantic import Field

import convspec


class CBAMLayer(convspec.LayerBase):
    """CBAM (Woo et al., ECCV 2018): channel attention, then spatial attention, on a feature map."""

    type: Literal["cbam"]
    reduction: int = Field(16, ge=1, description="channel attention's hidden width is channels // reduction (at least 1)")
    kernel_size: int = Field(7, ge=1, description="spatial attention's kernel; odd, so the map keeps its size")


def cbam_rule(layer: CBAMLayer, inputs):
    batch, channels, *spatial = inputs[0]
    if len(spatial) != 2:
        raise convspec.LayerError(f"cbam works on 2-D feature maps (B, C, H, W), not on {list(inputs[0])}")
    if layer.kernel_size % 2 == 0:
        raise convspec.LayerError(
            f"kernel_size={layer.kernel_size} must be odd so the attention map keeps the input's size; "
            f"use {layer.kernel_size - 1} or {layer.kernel_size + 1}",
            key="kernel_size",
        )
    hidden = max(1, channels // layer.reduction)
    window = layer.kernel_size**2
    positions = None if None in spatial else math.prod(spatial)
    mlp = 2 * channels * hidden  # two 1x1 convs, C -> hidden -> C, no bias
    macs = batch * (2 * mlp + (positions * 2 * window if positions else 0))  # the MLP on the avg and max vectors; the 2 -> 1 conv
    return convspec.Figures(shape=(batch, channels, *spatial), params=mlp + 2 * window, macs=macs, whole_input=True)


class PixelShuffleLayer(convspec.LayerBase):
    """nn.PixelShuffle: (B, C * r^2, H, W) -> (B, C, H * r, W * r) (Shi et al., CVPR 2016)."""

    type: Literal["pixel_shuffle"]
    upscale_factor: int = Field(ge=1, description="r: each spatial size is multiplied by it")


def pixel_shuffle_rule(layer: PixelShuffleLayer, inputs):
    batch, channels, *spatial = inputs[0]
    r = layer.upscale_factor
    if len(spatial) != 2:
        raise convspec.LayerError(f"pixel_shuffle works on 2-D feature maps (B, C, H, W), not on {list(inputs[0])}")
    if channels % (r * r):
        fits = [c for c in (channels - channels % (r * r), channels + r * r - channels % (r * r)) if c > 0]
        raise convspec.LayerError(
            f"the input's {channels} channels are not divisible by upscale_factor**2 = {r * r}; "
            f"make the layer before give {' or '.join(map(str, fits))} channels",
            key="upscale_factor",
        )
    out = tuple(None if size is None else size * r for size in spatial)
    return convspec.Figures(shape=(batch, channels // (r * r), *out), stride=Fraction(1, r))


KINDS = [
    convspec.UserKind(CBAMLayer, cbam_rule, "convspec_demo_kinds.modules:build_cbam", colours=("#fff8d6", "#b59200")),
    convspec.UserKind(PixelShuffleLayer, pixel_shuffle_rule, "convspec_demo_kinds.modules:build_pixel_shuffle"),
]
