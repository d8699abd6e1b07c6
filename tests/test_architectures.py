"""Real architectures as specs, exact to torchvision's published figures.

The reference figures are torchvision's (parameters, and GMACs at 224x224,
which torchvision's model tables list as "GFLOPS"): the specs must give the
same parameter count exactly, in `check` and in the built module, and MACs
within 1%.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import convspec

SPECS = Path(__file__).parent.parent / "specs"


@dataclass(frozen=True)
class Reference:
    spec: str
    params: int
    gmacs: float | None  # at 224x224; None where torchvision publishes none
    other_sizes: tuple[int, ...] = ()  # further input sizes the net must run at


REFERENCES = [
    Reference("resnet34", 21_797_672, 3.664),
    Reference("resnext50_32x4d", 25_028_904, 4.23),
    Reference("shufflenet_v2_x1_0", 2_278_604, 0.145, (160, 192)),
    Reference("squeezenet1_1", 1_235_496, None, (192,)),
    Reference("mobilenet_v1", 4_231_976, 0.569, (160,)),
    Reference("mobilenet_v2", 3_504_872, 0.30, (160,)),
]
IDS = [r.spec for r in REFERENCES]


def path(ref: Reference) -> Path:
    return SPECS / f"{ref.spec}.yaml"


pytestmark = pytest.mark.usefixtures("one_thread")  # the fixture lives in conftest.py


@pytest.fixture(scope="module")
def models(one_thread) -> dict[str, torch.nn.Module]:
    """Each architecture built once (in eval mode) for the tests below."""
    return {ref.spec: convspec.build(path(ref), seed=0).eval() for ref in REFERENCES}


@pytest.mark.parametrize("ref", REFERENCES, ids=IDS)
def test_check_gives_the_exact_parameter_count(ref: Reference):
    report = convspec.check(path(ref))
    assert report.valid, report.errors
    assert report.total_params == ref.params
    assert report.trainable_params == ref.params
    assert report.input_shape == (1, 3, 224, 224)
    assert report.outputs == {report.layers[-1].name: (1, 1000)}


@pytest.mark.parametrize("ref", [r for r in REFERENCES if r.gmacs is not None], ids=[r.spec for r in REFERENCES if r.gmacs])
def test_macs_within_one_percent(ref: Reference):
    macs = convspec.check(path(ref)).total_macs
    assert abs(macs / 1e9 - ref.gmacs) / ref.gmacs < 0.01, macs


@pytest.mark.parametrize("ref", REFERENCES, ids=IDS)
def test_built_module_has_the_parameters_and_runs_at_224(ref: Reference, models):
    model = models[ref.spec]
    assert sum(p.numel() for p in model.parameters()) == ref.params
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(
    "ref, size", [(r, s) for r in REFERENCES for s in r.other_sizes], ids=[f"{r.spec}-{s}" for r in REFERENCES for s in r.other_sizes]
)
def test_runs_at_another_size(ref: Reference, size: int, models):
    report = convspec.check(path(ref), input_shape=(1, 3, size, size))
    assert report.valid, report.errors
    assert list(report.outputs.values()) == [(1, 1000)]
    with torch.no_grad():
        out = models[ref.spec](torch.randn(1, 3, size, size))
    assert out.shape == (1, 1000)


# ---------------------------------------------------------------- the structures, as torchvision builds them


def _children(report, name: str):
    return next(layer for layer in report.layers if layer.name == name).children


def test_resnet34_stages_read_like_the_paper():
    report = convspec.check(SPECS / "resnet34.yaml")
    assert [len(_children(report, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    shapes = {layer.name: layer.output_shape for layer in report.layers}
    assert shapes["layer1"] == (1, 64, 56, 56) and shapes["layer4"] == (1, 512, 7, 7)


def test_resnet_blocks_downsample_on_the_3x3_with_a_projection_shortcut(models):
    # ResNet v1.5 (torchvision): stride 2 on the first 3x3 conv, 1x1/2 conv + BN shortcut; only the first block of a stage
    block = models["resnet34"].get_submodule("layer2.0.block")
    assert block.conv1.conv.stride == (2, 2) and block.conv1.conv.kernel_size == (3, 3) and block.conv1.conv.bias is None
    proj = block.shortcut.downsample
    assert proj.conv.kernel_size == (1, 1) and proj.conv.stride == (2, 2) and proj.conv.bias is None and proj.norm is not None
    assert models["resnet34"].get_submodule("layer2.1.block").shortcut is None
    assert models["resnet34"].get_submodule("layer1.0.block").shortcut is None  # 64 -> 64, stride 1: identity
    bottleneck = models["resnext50_32x4d"].get_submodule("layer3.0.block")
    assert bottleneck.conv1.conv.stride == (1, 1) and bottleneck.conv2.conv.stride == (2, 2)
    assert models["resnext50_32x4d"].get_submodule("layer1.0.block").shortcut is not None  # 64 -> 256


def test_resnext_uses_32_groups_of_4_channels_in_the_first_stage(models):
    conv2 = models["resnext50_32x4d"].get_submodule("layer1.1.block.conv2")
    assert (conv2.conv.in_channels, conv2.conv.out_channels, conv2.conv.groups) == (128, 128, 32)
    assert conv2.conv.weight.shape == (128, 4, 3, 3)
    assert models["resnext50_32x4d"].get_submodule("layer4.2.block.conv3").conv.out_channels == 2048


def test_state_dict_keys_follow_the_instance_names(models):
    keys = set(models["resnet34"].state_dict())
    assert "layer3.5.block.conv2.conv.weight" in keys
    assert "layer4.0.block.shortcut.downsample.norm.running_var" in keys
    assert "fc.weight" in keys


def test_shufflenet_units_split_transform_concat_and_shuffle(models):
    report = convspec.check(SPECS / "shufflenet_v2_x1_0.yaml")
    assert [len(_children(report, f"stage{i}")) for i in (2, 3, 4)] == [4, 8, 4]
    assert [layer.output_shape[1] for layer in report.layers[:6]] == [24, 24, 116, 232, 464, 1024]
    unit = models["shufflenet_v2_x1_0"].get_submodule("stage3.1.unit")
    assert unit.halves.sizes == (116, 116)
    assert unit.shuffle.groups == 2
    down = models["shufflenet_v2_x1_0"].get_submodule("stage3.0.unit")
    depthwise = down.branch1.get_submodule("depthwise_0")
    assert (depthwise.conv.groups, depthwise.conv.stride) == (116, (2, 2))
    # the shuffle interleaves the two halves: channel 2i from the passed half, 2i + 1 from the branch
    x = torch.randn(1, 232, 14, 14)
    with torch.no_grad():
        out = unit(x)
        branch = unit.branch2(x[:, 116:])
    torch.testing.assert_close(out[:, 0::2], x[:, :116])
    torch.testing.assert_close(out[:, 1::2], branch)


def test_squeezenet_fire_modules_and_ceil_mode_pools(models):
    report = convspec.check(SPECS / "squeezenet1_1.yaml")
    shapes = {layer.name: layer.output_shape for layer in report.layers}
    assert shapes["conv1"] == (1, 64, 111, 111)
    assert shapes["pool1"] == (1, 64, 55, 55)
    assert shapes["pool5"] == (1, 256, 13, 13)
    assert shapes["fire9"] == (1, 512, 13, 13)
    # at 224 every pooled size is odd, so ceil_mode changes nothing; at 226 conv1 gives 112 and it does
    at_226 = {layer.name: layer.output_shape for layer in convspec.check(SPECS / "squeezenet1_1.yaml", input_shape=(1, 3, 226, 226)).layers}
    assert at_226["conv1"] == (1, 64, 112, 112) and at_226["pool1"] == (1, 64, 56, 56)  # floor mode: 55
    with torch.no_grad():
        pooled = models["squeezenet1_1"].pool1(models["squeezenet1_1"].conv1(torch.randn(1, 3, 226, 226)))
    assert pooled.shape == at_226["pool1"]
    fire = models["squeezenet1_1"].fire4
    assert (fire.squeeze.conv.out_channels, fire.expand1x1.conv.out_channels, fire.expand3x3.conv.out_channels) == (32, 128, 128)
    assert fire.expand3x3.conv.padding == (1, 1) and fire.squeeze.conv.bias is not None
    assert models["squeezenet1_1"].pool3.ceil_mode


def test_mobilenet_v1_has_13_separable_blocks_without_conv_biases(models):
    report = convspec.check(SPECS / "mobilenet_v1.yaml")
    separables = [layer for layer in report.walk() if layer.type == "separable"]
    assert len(separables) == 13
    assert [s.output_shape[1] for s in separables] == [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    assert [s.output_shape[2] for s in separables] == [112, 56, 56, 28, 28, 14, 14, 14, 14, 14, 14, 7, 7]
    convs = [m for m in models["mobilenet_v1"].modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 27 and all(conv.bias is None for conv in convs)


def test_mobilenet_v2_adds_the_input_back_only_at_stride_1_with_the_same_channels(models):
    report = convspec.check(SPECS / "mobilenet_v2.yaml")
    residuals = [layer for layer in report.walk() if layer.type == "residual"]
    assert len(residuals) == 17 - 7  # each stage's first block changes the size or the channels
    assert all(r.input_shapes[0] == r.output_shape for r in residuals)
    # expansion 6 everywhere but the first stage, which has no expansion conv
    expands = [layer for layer in report.walk() if layer.name == "expand"]
    assert len(expands) == 16
    assert all(e.output_shape[1] == 6 * e.input_shapes[0][1] for e in expands)
    assert [layer.output_shape[1:] for layer in report.layers[1:9]] == [
        (16, 112, 112), (24, 56, 56), (32, 28, 28), (64, 14, 14), (96, 14, 14), (160, 7, 7), (320, 7, 7), (1280, 7, 7)]
    model = models["mobilenet_v2"]
    assert isinstance(model.get_submodule("stage2.0.block.depthwise.act"), torch.nn.ReLU6)
    assert not hasattr(model.get_submodule("stage2.1.block.project"), "act")  # the projection is linear

