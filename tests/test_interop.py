"""Modules the PyTorch ecosystem reads correctly: every leaf a torch module, so summary tools,
FX fusion and TorchScript (through FX) see the network as it is.

Reference counts: `convspec check` (MACs of convs and linears, by arithmetic).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import convspec

SPECS = Path(__file__).resolve().parent.parent / "specs"


@pytest.fixture(scope="module", params=["resnet34", "mobilenet_v2"])
def checked(request):
    report = convspec.check(SPECS / f"{request.param}.yaml")
    return report, convspec.build(SPECS / f"{request.param}.yaml", seed=0).eval()


def test_torchinfo_counts_the_checkers_macs(checked):
    from torchinfo import summary

    report, model = checked
    total = summary(model, input_size=report.input_shape, verbose=0).total_mult_adds
    # torchinfo also charges the BatchNorm affine and the classifier bias: within 1%
    assert abs(total - report.total_macs) <= 0.01 * report.total_macs, (total, report.total_macs)


class _Block(nn.Module):
    """torchvision's BasicBlock: conv1/bn1/relu/conv2/bn2 (+ downsample), the key names thop sees there."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


def _reference_resnet34() -> nn.Module:
    """torchvision's resnet34 structure (layer order, shapes and key names), written here."""
    model = nn.Module()
    model.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    model.bn1, model.relu, model.maxpool = nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
    cin = 64
    for index, (cout, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], 1):
        layers = [_Block(cin, cout, stride)] + [_Block(cout, cout, 1) for _ in range(blocks - 1)]
        setattr(model, f"layer{index}", nn.Sequential(*layers))
        cin = cout
    model.avgpool, model.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(512, 1000)

    def forward(x):
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for index in range(1, 5):
            x = getattr(model, f"layer{index}")(x)
        return model.fc(torch.flatten(model.avgpool(x), 1))

    model.forward = forward
    return model


def _thop_macs(model: nn.Module, shape) -> float:
    from thop import profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        macs, _ = profile(model, inputs=(torch.randn(shape),), verbose=False)
    return macs


def test_thop_counts_the_network_as_it_counts_torchvisions_structure():
    report = convspec.check(SPECS / "resnet34.yaml")
    ours = _thop_macs(convspec.build(SPECS / "resnet34.yaml", seed=0).eval(), report.input_shape)
    reference = _thop_macs(_reference_resnet34().eval(), report.input_shape)
    assert abs(ours - reference) <= 0.01 * reference, (ours, reference)
    assert ours >= report.total_macs  # thop charges BatchNorm and ReLU too


def test_fx_fusion_folds_every_batchnorm(checked):
    from torch.ao.quantization.quantize_fx import fuse_fx

    report, model = checked
    fused = fuse_fx(model)
    assert not [m for m in fused.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    x = torch.randn(report.input_shape)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)


SCRIPTABLE = sorted(p.stem for p in SPECS.glob("*.yaml") if p.stem != "nine_kinds")  # nine_kinds has a dynamic conv


@pytest.mark.parametrize("name", SCRIPTABLE)
def test_torchscript_gives_equal_outputs(name):
    report = convspec.check(SPECS / f"{name}.yaml", input_shape=None)
    model = convspec.build(SPECS / f"{name}.yaml", seed=0).eval()
    shape = report.input_shape if None not in report.input_shape else (1, report.input_shape[1], *[32] * (len(report.input_shape) - 2))
    scripted = torch.jit.script(model)  # through Graph.__prepare_scriptable__: its FX trace
    assert sorted(dict(scripted.named_parameters())) == sorted(dict(model.named_parameters()))
    x = torch.randn(shape)
    with torch.no_grad():
        expected, got = model(x), scripted(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = got if isinstance(got, tuple) else (got,)
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e)


def test_a_dynamic_conv_cannot_be_fx_traced_as_documented():
    model = convspec.build("input: {channels: 3, size: [8, 8]}\nlayers: [{type: dynamic, out: 4, kernel: 3}]", seed=0)
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(model)
