"""The builder: names, seeds, freezing, fixed filters, init, padding, dynamic conv, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import convspec
from convspec.trace import load_and_check  # an invalid spec's report too
from convspec.checkpoint import load_weights, read_checkpoint, save_checkpoint
from convspec.layer_names import MODULE_ATTRIBUTES
from convspec.schema import LAYER_MODELS
from convspec.kinds import registry


def spec(*layers, channels=3, size=(16, 16), **extra):
    return {"input": {"channels": channels, "size": list(size)}, "layers": list(layers), **extra}


def test_every_kind_has_its_model_rule_and_builder_in_one_declaration():
    assert set(LAYER_MODELS) == set(registry)
    for kind in registry.values():
        assert LAYER_MODELS[kind.name] is kind.model and callable(kind.rule) and callable(kind.resolve_builder())


def test_module_attribute_names_are_all_reserved():
    from convspec.graph import Residual

    public = {name for name in dir(Residual(nodes=[("x", torch.nn.Identity(), ["input"])], shortcut=None, act=None)) if not name.startswith("_")}
    public -= {"x", "shortcut"}
    assert public <= MODULE_ATTRIBUTES


def test_reserved_layer_name_is_a_spec_error():
    with pytest.raises(convspec.SpecError, match="reserved"):
        convspec.build(spec({"type": "conv", "out": 4, "kernel": 3, "name": "forward"}))


def test_child_names_and_state_dict_follow_the_spec():
    model = convspec.build(
        spec(
            {"type": "conv", "name": "stem", "out": 8, "kernel": 3, "padding": 1, "norm": "batch", "act": "relu"},
            {
                "type": "repeat", "name": "stage", "times": 2,
                "layers": [{"type": "residual", "name": "blk", "layers": [{"type": "conv", "out": 8, "kernel": 3, "padding": 1}]}],
            },
            {
                "type": "residual", "name": "down",
                "layers": [{"type": "conv", "out": 16, "kernel": 3, "stride": 2, "padding": 1}],
                "shortcut": [{"type": "pointwise", "out": 16, "stride": 2}],
            },
            {"type": "separable", "name": "sep", "out": 4, "kernel": 3, "padding": 1},
        )
    )
    assert [name for name, _ in model.named_children()] == ["stem", "stage", "down", "sep"]
    keys = set(model.state_dict())
    assert {"stem.conv.weight", "stem.norm.weight", "stem.norm.running_mean", "stage.0.blk.conv_0.conv.weight",
            "stage.1.blk.conv_0.conv.bias", "down.conv_0.conv.weight", "down.shortcut.pointwise_0.conv.weight",
            "sep.depthwise.conv.weight", "sep.pointwise.conv.weight"} <= keys
    assert "stem.conv.bias" not in keys  # bias is off when a norm follows
    assert type(model.stem.conv) is torch.nn.Conv2d  # a stock conv, its norm and activation beside it


def test_seed_makes_weights_reproducible_and_leaves_global_rng_alone():
    definition = spec({"type": "conv", "out": 8, "kernel": 3}, {"type": "dynamic", "out": 4, "kernel": 3})
    state = torch.random.get_rng_state()
    a, b = convspec.build(definition, seed=7), convspec.build(definition, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = convspec.build(definition, seed=8)
    assert not torch.equal(a.state_dict()["conv_0.conv.weight"], c.state_dict()["conv_0.conv.weight"])


def test_two_builds_are_independent():
    definition = spec({"type": "conv", "out": 2, "kernel": 1})
    a, b = convspec.build(definition, seed=0), convspec.build(definition, seed=0)
    with torch.no_grad():
        a.conv_0.conv.weight.zero_()
    assert b.conv_0.conv.weight.abs().sum() > 0


def test_trainable_false_freezes_the_whole_layer():
    model = convspec.build(spec({"type": "conv", "out": 4, "kernel": 3, "norm": "batch", "trainable": False}, {"type": "identity"}))
    assert all(not p.requires_grad for p in model.conv_0.parameters())
    report = convspec.check(spec({"type": "conv", "out": 4, "kernel": 3, "norm": "batch", "trainable": False}))
    assert report.layers[0].trainable_params == 0 and report.layers[0].params == 4 * 3 * 9 + 8


def test_fixed_filter_is_a_buffer_when_frozen_and_a_parameter_when_trainable():
    frozen = convspec.build(spec({"type": "fixed", "filter": "sobel_x", "padding": 1}))
    assert "fixed_0.weight" in frozen.state_dict() and not list(frozen.parameters())
    trainable = convspec.build(spec({"type": "fixed", "filter": "sobel_x", "padding": 1, "trainable": True}))
    assert [name for name, _ in trainable.named_parameters()] == ["fixed_0.weight"]


def test_per_channel_fixed_filter_does_not_mix_channels():
    blur = convspec.build(spec({"type": "fixed", "filter": "gaussian", "kernel_size": 3, "sigma": 1.0, "padding": "same"}))
    x = torch.zeros(1, 3, 16, 16)
    x[0, 1, 8, 8] = 1.0  # an impulse in the middle channel only
    y = blur(x)
    assert y.shape == x.shape
    assert y[0, 0].abs().sum() == 0 and y[0, 2].abs().sum() == 0
    assert math.isclose(y[0, 1].sum().item(), 1.0, rel_tol=1e-5)


def test_literal_filter_normalize_and_full_mixing():
    model = convspec.build(spec({"type": "fixed", "filter": [[1, 1], [1, 1]], "normalize": True, "per_channel": False, "out_channels": 2}))
    assert model.fixed_0.weight.shape == (2, 3, 2, 2)
    assert torch.allclose(model.fixed_0.weight, torch.full((2, 3, 2, 2), 0.25))
    y = model(torch.ones(1, 3, 4, 4))
    assert torch.allclose(y, torch.full((1, 2, 3, 3), 3.0))  # every output sums all three channels


@pytest.mark.parametrize(
    "init, check",
    [
        ({"weight": "zeros", "bias": "ones"}, lambda w, b: w.eq(0).all() and b.eq(1).all()),
        ({"weight": {"constant": 0.5}, "bias": {"constant": -2}}, lambda w, b: w.eq(0.5).all() and b.eq(-2).all()),
        ({"weight": {"uniform": [2, 3]}}, lambda w, b: (w >= 2).all() and (w <= 3).all()),
        ({"weight": {"normal": [5, 0]}}, lambda w, b: w.eq(5).all()),
        ({"weight": {"filter": "box", "kernel_size": 3}}, lambda w, b: torch.allclose(w, torch.full_like(w, 1 / 9))),
        ({"weight": "kaiming_normal"}, lambda w, b: w.std() > 0),
        ({"weight": "orthogonal"}, lambda w, b: w.std() > 0),
    ],
)
def test_init(init, check):
    model = convspec.build(spec({"type": "conv", "out": 2, "kernel": 3, "init": init}, channels=1))
    assert check(model.conv_0.conv.weight.detach(), model.conv_0.conv.bias.detach())


def test_literal_array_init_sets_exact_weights():
    weight = [[[[1.0, -1.0]]]]
    model = convspec.build(spec({"type": "conv", "out": 1, "kernel": [1, 2], "init": {"weight": weight, "bias": [0.25]}}, channels=1))
    assert model.conv_0.conv.weight.tolist() == weight and model.conv_0.conv.bias.tolist() == [0.25]


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(1, 30), kernel=st.integers(1, 6), stride=st.integers(1, 4), dilation=st.integers(1, 3),
    mode=st.sampled_from(["zeros", "replicate", "circular"]),
)
def test_padding_same_gives_ceil_in_over_stride(size, kernel, stride, dilation, mode):
    definition = spec(
        {"type": "conv", "out": 1, "kernel": kernel, "stride": stride, "dilation": dilation, "padding": "same", "padding_mode": mode},
        channels=1, size=(size,),
    )
    report = load_and_check(definition)
    if mode == "circular" and not report.valid:
        return  # circular padding wider than the input is an error, checked elsewhere
    assert report.valid, report.errors
    out = convspec.build(definition)(torch.randn(1, 1, size))
    assert out.shape[-1] == -(-size // stride) == report.layers[0].output_shape[-1]


def test_padding_same_splits_like_pytorch_for_even_kernels():
    # stride 1: PyTorch's own padding='same' exists; convspec must give the same numbers
    definition = spec({"type": "conv", "out": 2, "kernel": [4, 2], "padding": "same", "dilation": [1, 3]}, channels=1, size=(9, 10))
    model = convspec.build(definition, seed=0)
    x = torch.randn(2, 1, 9, 10)
    expected = F.conv2d(x, model.conv_0.conv.weight, model.conv_0.conv.bias, padding="same", dilation=(1, 3))
    assert torch.allclose(model(x), expected, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(size=st.integers(1, 12), kernel=st.integers(1, 6), stride=st.integers(1, 4), dilation=st.integers(1, 2))
def test_transposed_same_gives_in_times_stride(size, kernel, stride, dilation):
    definition = spec({"type": "transposed", "out": 2, "kernel": kernel, "stride": stride, "dilation": dilation, "padding": "same"}, channels=1, size=(size, size))
    report = load_and_check(definition)
    if not report.valid:
        assert any("no padding gives" in p.message for p in report.errors)
        return
    assert convspec.build(definition)(torch.randn(1, 1, size, size)).shape[-2:] == (size * stride, size * stride)


def test_dynamic_conv_equals_a_static_conv_per_sample():
    definition = spec({"type": "dynamic", "out": 6, "kernel": 3, "padding": "same", "stride": 2, "groups": 3, "experts": 3, "reduction": 1}, channels=6, size=(11, 9))
    model = convspec.build(definition, seed=0).double()
    # samples with different means, so the attention really differs between them
    x = torch.randn(4, 6, 11, 9, dtype=torch.float64) + torch.arange(4, dtype=torch.float64).view(4, 1, 1, 1)
    y = model(x)
    weights, biases = model.dynamic_0.conv.mixed_weight(x)
    for b in range(4):
        padded = F.pad(x[b : b + 1], (1, 1, 1, 1))
        static = F.conv2d(padded, weights[b], biases[b], stride=2, groups=3)
        assert torch.allclose(y[b : b + 1], static, atol=1e-10)
    # and the samples really get different kernels
    assert not torch.allclose(weights[0], weights[3])


def test_multiple_outputs_return_a_tuple_in_order():
    model = convspec.build(
        spec(
            {"type": "conv", "name": "a", "out": 4, "kernel": 3},
            {"type": "global_pool", "name": "g"},
            {"type": "flatten", "name": "f"},
            {"type": "linear", "name": "head", "out": 5},
            outputs=["head", "a"],
        )
    )
    head, a = model(torch.randn(2, 3, 16, 16))
    assert head.shape == (2, 5) and a.shape == (2, 4, 14, 14)


def test_graph_wiring_with_from_and_input():
    model = convspec.build(
        spec(
            {"type": "conv", "name": "left", "out": 4, "kernel": 1},
            {"type": "conv", "name": "right", "out": 4, "kernel": 1, "from": "input"},
            {"type": "add", "name": "sum", "from": ["left", "right"], "act": "relu"},
            {"type": "concat", "name": "cat", "from": ["sum", "input"]},
        )
    )
    x = torch.randn(1, 3, 16, 16)
    expected = torch.cat([torch.relu(model.left(x) + model.right(x)), x], dim=1)
    assert torch.allclose(model(x), expected)


def test_build_without_input_size_runs_at_any_size():
    model = convspec.build({"input": {"channels": 3}, "layers": [{"type": "conv", "out": 4, "kernel": 3, "stride": 2, "padding": "same"}, {"type": "global_pool"}]})
    for size in (7, 32):
        assert model(torch.randn(1, 3, size, size + 1)).shape == (1, 4, 1, 1)


def test_checkpoint_round_trip(tmp_path):
    model = convspec.build("specs/small_cnn.yaml", seed=3)
    path = save_checkpoint(model, "specs/small_cnn.yaml", tmp_path / "m.pt")
    restored = convspec.load_checkpoint(path)
    for (k1, v1), (k2, v2) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2)
    assert read_checkpoint(path)["spec_text"] == open("specs/small_cnn.yaml").read()


def test_checkpoint_refuses_other_files(tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(convspec.InputError, match="not a convspec checkpoint"):
        convspec.load_checkpoint(plain)

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "x", "payload": Evil()}, evil)
    with pytest.raises(convspec.InputError, match="not a readable convspec checkpoint"):
        read_checkpoint(evil)


def test_weights_that_do_not_fit_are_listed():
    model = convspec.build(spec({"type": "conv", "out": 4, "kernel": 3}))
    state = {"conv_0.weight": torch.zeros(4, 3, 5, 5), "extra": torch.zeros(1)}
    with pytest.raises(convspec.InputError) as err:
        load_weights(model, state, "w.pt")
    text = str(err.value)
    assert "missing keys (1): conv_0.conv.bias" in text
    assert "unexpected keys (1): extra" in text
    assert "conv_0.conv.weight: file [4, 3, 5, 5], spec [4, 3, 3, 3]" in text  # a format-1 key, translated


@pytest.mark.parametrize(
    "layer, size",
    [
        ({"type": "fixed", "filter": "gaussian", "kernel_size": 7, "sigma": 1.5, "padding": "same"}, (19, 23)),
        ({"type": "fixed", "filter": "box", "kernel_size": [5, 9], "stride": 2, "padding": 3, "padding_mode": "reflect"}, (17, 20)),
        ({"type": "fixed", "filter": "gaussian", "kernel_size": 5, "sigma": 1.0, "dilation": 2, "padding": "same"}, (6, 9, 11)),
        ({"type": "fixed", "filter": [[1, 2, 1, 0, 1], [2, 4, 2, 0, 2]], "padding": 1}, (8, 8)),  # a literal rank-1 kernel
    ],
)
def test_separable_fixed_filters_run_as_1d_passes_with_the_same_output(layer, size):
    definition = spec(layer, size=size)
    model = convspec.build(definition)
    conv = model.fixed_0
    assert conv.passes == len(size)
    x = torch.randn(2, 3, *size)
    padded = convspec.layers.pad_input(x, conv.padding, conv.padding_mode)
    single = {2: F.conv2d, 3: F.conv3d}[len(size)](padded, conv.weight, None, conv.stride, 0, conv.dilation, conv.groups)
    assert torch.allclose(model(x), single, atol=1e-5)
    assert list(model.state_dict()) == ["fixed_0.weight"]


@pytest.mark.parametrize(
    "layer",
    [
        {"type": "fixed", "filter": "laplacian", "padding": 1},
        {"type": "fixed", "filter": "gaussian", "kernel_size": 3, "sigma": 1.0},  # too small to gain
        {"type": "fixed", "filter": "gaussian", "kernel_size": 7, "sigma": 1.0, "trainable": True},
        {"type": "fixed", "filter": "box", "kernel_size": 5, "per_channel": False, "out": 2},
    ],
)
def test_other_fixed_filters_run_as_one_conv(layer):
    assert convspec.build(spec(layer)).fixed_0.passes == 0


def test_memory_format_channels_last_gives_the_same_outputs():
    base = convspec.build("specs/nine_kinds.yaml", seed=0).eval()
    last = convspec.build("specs/nine_kinds.yaml", seed=0, memory_format="channels_last").eval()
    assert last.conv.conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(base(x), last(x), atol=1e-5)
    in_spec = convspec.load(open("specs/small_cnn.yaml").read() + "memory_format: channels_last\n")
    assert convspec.build(in_spec).conv1.conv.weight.is_contiguous(memory_format=torch.channels_last)
