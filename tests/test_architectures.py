"""Real architectures as specs, exact to torchvision's published figures.

The reference figures are torchvision's (parameters, and GMACs at 224x224,
which torchvision's model tables list as "GFLOPS"): the specs must give the
same parameter count exactly, in `check` and in the built module, and MACs
within 1%.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from functools import partial

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convspec
from convspec.layers_wiring import StochasticDepth
from support import CountMultiplies  # tests/ is on sys.path (conftest.py)

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
    # torchvision rounds these to 0.22 and 0.06 GFLOPS; the test against the reference modules below measures them
    Reference("mobilenet_v3_large", 5_483_032, None, (160,)),
    Reference("mobilenet_v3_small", 2_542_856, None, (160,)),
    Reference("efficientnet_b0", 5_288_548, 0.39, (160,)),
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



# ---------------------------------------------------------------- MobileNetV3 and EfficientNet-B0 against reference modules
#
# Written here from the papers' tables (Howard et al. 2019, tables 1 and 2; Tan and Le 2019, table 1)
# and torchvision's documented structure (mobilenetv3.py, efficientnet.py, ops.misc): the same
# layer order, parameter shapes, BatchNorm settings and stochastic depth, with torchvision's names.


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of 8, never more than 10% down."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class _Conv2dNormActivation(nn.Sequential):
    """torchvision's Conv2dNormActivation: conv (no bias before a norm), norm, activation; padding (k - 1) // 2."""

    def __init__(self, cin, cout, kernel, stride=1, groups=1, norm=nn.BatchNorm2d, act=nn.ReLU):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False), norm(cout)]
        super().__init__(*layers, *([act()] if act is not None else []))


class _SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: avgpool, fc1, activation, fc2, scale_activation; scale * input."""

    def __init__(self, channels, squeeze, act=nn.ReLU, scale_act=nn.Sigmoid):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation, self.scale_activation = act(), scale_act()

    def forward(self, x):
        return self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x))))) * x


class _StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth(p, mode="row")."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
        return x * noise.div_(survival)


class _InvertedResidual(nn.Module):
    """torchvision's MobileNetV3 InvertedResidual: expand (if widened), depthwise, SE (hard sigmoid), project."""

    def __init__(self, cin, kernel, expanded, cout, use_se, activation, stride, norm):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        act = nn.Hardswish if activation == "HS" else nn.ReLU
        layers = [_Conv2dNormActivation(cin, expanded, 1, norm=norm, act=act)] if expanded != cin else []
        layers.append(_Conv2dNormActivation(expanded, expanded, kernel, stride, groups=expanded, norm=norm, act=act))
        if use_se:
            layers.append(_SqueezeExcitation(expanded, _make_divisible(expanded // 4), scale_act=nn.Hardsigmoid))
        layers.append(_Conv2dNormActivation(expanded, cout, 1, norm=norm, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        result = self.block(x)
        return result + x if self.use_res_connect else result


# (in, kernel, expanded, out, SE, activation, stride): the papers' tables 1 and 2, as torchvision writes them
_V3_LARGE = [
    (16, 3, 16, 16, False, "RE", 1), (16, 3, 64, 24, False, "RE", 2), (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2), (40, 5, 120, 40, True, "RE", 1), (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2), (80, 3, 200, 80, False, "HS", 1), (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1), (80, 3, 480, 112, True, "HS", 1), (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2), (160, 5, 960, 160, True, "HS", 1), (160, 5, 960, 160, True, "HS", 1),
]  # fmt: skip
_V3_SMALL = [
    (16, 3, 16, 16, True, "RE", 2), (16, 3, 72, 24, False, "RE", 2), (24, 3, 88, 24, False, "RE", 1),
    (24, 5, 96, 40, True, "HS", 2), (40, 5, 240, 40, True, "HS", 1), (40, 5, 240, 40, True, "HS", 1),
    (40, 5, 120, 48, True, "HS", 1), (48, 5, 144, 48, True, "HS", 1), (48, 5, 288, 96, True, "HS", 2),
    (96, 5, 576, 96, True, "HS", 1), (96, 5, 576, 96, True, "HS", 1),
]  # fmt: skip


class _MobileNetV3(nn.Module):
    """torchvision's MobileNetV3: BatchNorm eps 0.001, momentum 0.01; classifier Linear, Hardswish, Dropout, Linear."""

    def __init__(self, setting, last_channel, num_classes=1000, dropout=0.2):
        super().__init__()
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        last_in = setting[-1][3]
        self.features = nn.Sequential(
            _Conv2dNormActivation(3, setting[0][0], 3, 2, norm=norm, act=nn.Hardswish),
            *(_InvertedResidual(*cnf, norm=norm) for cnf in setting),
            _Conv2dNormActivation(last_in, 6 * last_in, 1, norm=norm, act=nn.Hardswish),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * last_in, last_channel), nn.Hardswish(), nn.Dropout(dropout), nn.Linear(last_channel, num_classes)
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


class _MBConv(nn.Module):
    """torchvision's MBConv: expand (if ratio > 1), depthwise, SE (squeeze in / 4, SiLU), project; stochastic depth."""

    def __init__(self, ratio, kernel, stride, cin, cout, stochastic_depth_prob):
        super().__init__()
        self.use_res_connect = stride == 1 and cin == cout
        expanded = _make_divisible(cin * ratio)
        layers = [_Conv2dNormActivation(cin, expanded, 1, act=nn.SiLU)] if expanded != cin else []
        layers += [
            _Conv2dNormActivation(expanded, expanded, kernel, stride, groups=expanded, act=nn.SiLU),
            _SqueezeExcitation(expanded, max(1, cin // 4), act=nn.SiLU),
            _Conv2dNormActivation(expanded, cout, 1, act=None),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = _StochasticDepth(stochastic_depth_prob)

    def forward(self, x):
        result = self.block(x)
        if self.use_res_connect:
            result = self.stochastic_depth(result) + x
        return result


# (expansion, kernel, stride, in, out, layers): table 1 of the paper
_B0 = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3), (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]


class _EfficientNet(nn.Module):
    """torchvision's EfficientNet-B0: block i of 16 gets stochastic depth 0.2 * i / 16."""

    def __init__(self, setting=_B0, dropout=0.2, stochastic_depth_prob=0.2, num_classes=1000):
        super().__init__()
        total, block_id = sum(cnf[5] for cnf in setting), 0
        stages = []
        for ratio, kernel, stride, cin, cout, n in setting:
            blocks = []
            for i in range(n):
                p = stochastic_depth_prob * float(block_id) / total
                blocks.append(_MBConv(ratio, kernel, stride if i == 0 else 1, cin if i == 0 else cout, cout, p))
                block_id += 1
            stages.append(nn.Sequential(*blocks))
        last_in = setting[-1][4]
        self.features = nn.Sequential(
            _Conv2dNormActivation(3, setting[0][3], 3, 2, act=nn.SiLU), *stages, _Conv2dNormActivation(last_in, 4 * last_in, 1, act=nn.SiLU)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * last_in, num_classes))

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


MODERN = {
    "mobilenet_v3_large": lambda: _MobileNetV3(_V3_LARGE, 1280),
    "mobilenet_v3_small": lambda: _MobileNetV3(_V3_SMALL, 1024),
    "efficientnet_b0": lambda: _EfficientNet(),
}


@pytest.fixture(scope="module")
def paired(models) -> dict[str, tuple[nn.Module, nn.Module]]:
    """(spec's module, reference) per architecture, the reference's weights and statistics copied into the spec's module."""
    pairs = {}
    for name, make in MODERN.items():
        torch.manual_seed(1)
        reference = make().eval()
        with torch.no_grad():  # random statistics, so that eval-mode BatchNorm is not the identity
            for module in reference.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.uniform_(-0.5, 0.5)
                    module.running_var.uniform_(0.5, 2.0)
        ours = convspec.build(SPECS / f"{name}.yaml", seed=0).eval()
        theirs, mine = list(reference.state_dict().items()), list(ours.state_dict().items())
        # the same layer order and shapes: the i-th tensor of one is the i-th of the other
        assert [tuple(t.shape) for _, t in theirs] == [tuple(t.shape) for _, t in mine]
        ours.load_state_dict({key: value for (key, _), (_, value) in zip(mine, theirs)})
        pairs[name] = ours, reference
    return pairs


@pytest.mark.parametrize("name", MODERN)
@pytest.mark.parametrize("size", [224, 97])
def test_modern_architectures_equal_their_references_given_equal_weights(name, size, paired):
    ours, reference = paired[name]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODERN)
def test_batch_norm_settings_are_torchvisions(name, paired):
    ours, reference = paired[name]
    norms = [[(m.eps, m.momentum) for m in model.modules() if isinstance(m, nn.BatchNorm2d)] for model in (ours, reference)]
    assert norms[0] == norms[1]
    assert set(norms[0]) == ({(0.001, 0.01)} if "mobilenet" in name else {(1e-5, 0.1)})


def test_efficientnet_b0_stochastic_depth_is_torchvisions(paired):
    ours, reference = paired["efficientnet_b0"]
    probabilities = [m.p for m in ours.modules() if isinstance(m, StochasticDepth)]
    assert probabilities == pytest.approx([m.stochastic_depth.p for m in reference.modules() if isinstance(m, _MBConv) and m.use_res_connect])
    assert len(probabilities) == 9
    # in training, the same random draws drop the same samples' branches: equal outputs for equal seeds
    ours.train(), reference.train()
    try:
        x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(3))
        outputs = []
        for model in (ours, reference):
            torch.manual_seed(7)
            with torch.no_grad():
                outputs.append(model(x))
        torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-4, atol=1e-5)
    finally:
        ours.eval(), reference.eval()


@pytest.mark.parametrize("name", MODERN)
def test_modern_architectures_macs_equal_the_references_measured(name, paired):
    # convs and linears as torch's FlopCounterMode counts them (2 FLOPs a MAC), plus SE's gating multiplies
    _, reference = paired[name]
    x = torch.randn(1, 3, 224, 224)
    flops, multiplies = FlopCounterMode(display=False), CountMultiplies()
    with flops, multiplies, torch.no_grad():
        reference(x)
    assert convspec.check(SPECS / f"{name}.yaml").total_macs == flops.get_total_flops() // 2 + multiplies.count
