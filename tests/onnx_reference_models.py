"""Small networks written in plain PyTorch, exported by torch's exporters for `convspec import` to read back."""

from __future__ import annotations

import torch
from torch import nn
from torchvision_models import Conv2dNormActivation, InvertedResidualV2, randomise_batchnorm


class TinyResNet(nn.Module):
    """A stem, two BasicBlocks (one with a strided 1x1 downsample), global pool, a classifier."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        from torchvision_models import BasicBlock

        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = BasicBlock(16, 16)
        self.layer2 = BasicBlock(16, 32, 2, nn.Sequential(nn.Conv2d(16, 32, 1, 2, bias=False), nn.BatchNorm2d(32)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyMobileNet(nn.Module):
    """MobileNetV2's stem, inverted residuals (depthwise, ReLU6, a residual add), a 1x1 head."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            Conv2dNormActivation(3, 16, stride=2, activation_layer=nn.ReLU6),
            InvertedResidualV2(16, 16, 1, 1),
            InvertedResidualV2(16, 24, 2, 4),
            InvertedResidualV2(24, 24, 1, 4),
            Conv2dNormActivation(24, 64, kernel_size=1, activation_layer=nn.ReLU6),
        )
        self.classifier = nn.Linear(64, num_classes)

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class TinyUNet(nn.Module):
    """Two levels down, a transposed conv up, skip connections by concatenation, a 1x1 head."""

    def __init__(self, classes: int = 2):
        super().__init__()

        def double(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())  # fmt: skip

        self.enc1 = double(3, 8)
        self.pool = nn.MaxPool2d(2)
        self.enc2 = double(8, 16)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec1 = double(16, 8)
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        d1 = self.dec1(torch.cat([self.up(e2), e1], dim=1))
        return self.head(d1)


class TinyEfficientNet(nn.Module):
    """EfficientNet's MBConv blocks: SiLU, depthwise convs, squeeze-and-excitation (a broadcast multiply), a residual."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        from torchvision_models import MBConv

        self.features = nn.Sequential(
            Conv2dNormActivation(3, 16, stride=2, activation_layer=nn.SiLU),
            MBConv(1, 3, 1, 16, 16, nn.BatchNorm2d),
            MBConv(4, 5, 2, 16, 24, nn.BatchNorm2d),
            MBConv(4, 3, 1, 24, 24, nn.BatchNorm2d),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(24, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class Resampling(nn.Module):
    """Zero padding before a conv, average pooling, nearest and bilinear upsampling, a leaky ReLU, a hardswish."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 0, 1, 0))
        self.conv = nn.Conv2d(3, 8, 2)
        self.act = nn.LeakyReLU(0.2)
        self.pool = nn.AvgPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.swish = nn.Hardswish()
        self.smooth = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x):
        x = self.pool(self.act(self.conv(self.pad(x))))
        return self.smooth(self.swish(self.conv2(self.up(x))))


IMPORT_REFERENCES = {
    "resnet": TinyResNet, "mobilenet": TinyMobileNet, "unet": TinyUNet, "efficientnet": TinyEfficientNet,
    "resampling": Resampling,
}  # fmt: skip


def export_reference(name: str, path, dynamo: bool, size: int = 32) -> nn.Module:
    """The reference `name` (BatchNorm statistics randomised, eval mode), exported to `path`; returns the module."""
    torch.manual_seed(0)
    model = IMPORT_REFERENCES[name]().eval()
    randomise_batchnorm(model, torch.Generator().manual_seed(1))
    x = torch.randn(1, 3, size, size)
    kwargs = {"dynamo": dynamo}
    if dynamo:
        kwargs["verbose"] = False
    else:
        kwargs["opset_version"] = 17
    torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["output"], **kwargs)
    return model
