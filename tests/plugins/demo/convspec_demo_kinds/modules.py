"""The torch side of the demo kinds: one builder each, (layer, input shapes) -> nn.Module."""

import torch
from torch import nn


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x):  # (B, C, H, W) -> (B, C, 1, 1)
        avg = self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        peak = self.fc2(torch.relu(self.fc1(x.amax((2, 3), keepdim=True))))
        return torch.sigmoid(avg + peak)


class SpatialAttention(nn.Module):
    def __init__(self, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):  # (B, C, H, W) -> (B, 1, H, W)
        pooled = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)  # (B, 2, H, W)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    def __init__(self, channels: int, reduction: int, kernel_size: int):
        super().__init__()
        self.channel = ChannelAttention(channels, max(1, channels // reduction))
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x):
        x = x * self.channel(x)
        return x * self.spatial(x)


def build_cbam(layer, inputs) -> nn.Module:
    return CBAM(inputs[0][1], layer.reduction, layer.kernel_size)


def build_pixel_shuffle(layer, inputs) -> nn.Module:
    return nn.PixelShuffle(layer.upscale_factor)
