"""Modern networks' pieces: `mul` gates, hard activations, stochastic depth, BatchNorm settings, padding of other frameworks."""

from __future__ import annotations

import math
import os

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

import convspec
from convspec.export import export_onnx
from convspec.geometry import auto_pad_total, auto_padding, transposed_auto_padding
from convspec.layers_wiring import StochasticDepth
from support import CountMultiplies, assert_report_matches_model, printed_problems

EXAMPLES = int(os.environ.get("CONVSPEC_HYPOTHESIS_EXAMPLES", "60"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])

pytestmark = pytest.mark.usefixtures("one_thread")


def spec(*layers, channels=3, size=(16, 16), **extra) -> dict:
    return {"input": {"channels": channels, **({"size": list(size)} if size else {})}, "layers": list(layers), **extra}


def built(definition):
    report = convspec.check(definition)
    assert report.valid, report.errors
    return report, convspec.build(definition, seed=0).eval()


# ---------------------------------------------------------------- mul


@st.composite
def broadcast_shapes(draw):
    """Two to four shapes of one rank (B, C, *S) that broadcast: each dim equal or 1."""
    dims = draw(st.integers(1, 3))
    full = [draw(st.integers(1, 3)), draw(st.integers(1, 6))] + [draw(st.integers(1, 7)) for _ in range(dims)]
    count = draw(st.integers(2, 4))
    return [[size if draw(st.booleans()) else 1 for size in full] for _ in range(count)], full


@SETTINGS
@given(data=st.data())
def test_mul_broadcasts_as_torch_and_counts_the_multiplies_torch_runs(data):
    shapes, full = data.draw(broadcast_shapes())
    assume(any(shape[0] == full[0] for shape in shapes))  # the network's input is one of them: its batch is the batch
    # each input is the spec's input pooled to its shape: adaptive pooling gives any size up to the input's
    channels, spatial = full[1], full[2:]
    layers = []
    for index, shape in enumerate(shapes):
        layers.append({"name": f"p{index}", "type": "adaptive_pool", "op": "avg", "size": shape[2:], "from": "input"})
        layers.append({"name": f"c{index}", "type": "pointwise", "out": shape[1], "from": f"p{index}"})
    layers.append({"name": "product", "type": "mul", "from": [f"c{i}" for i in range(len(shapes))]})
    definition = spec(*layers, channels=channels, size=spatial)
    definition["input"]["batch"] = full[0]
    assume(all(shape[0] == full[0] for shape in shapes))  # pooled from the input, every shape has its batch
    report, model = built(definition)
    expected = torch.broadcast_shapes(*(tuple(s) for s in shapes))
    assert report.layers[-1].output_shape == tuple(expected)
    assert_report_matches_model(report, model)
    inputs = [torch.randn(shape) for shape in shapes]
    counter = CountMultiplies()
    with counter, torch.no_grad():
        out = model.product(*inputs)
    assert out.shape == expected
    assert report.layers[-1].macs == counter.count
    if tuple(shapes[0]) == tuple(expected):  # a map times gates: one multiply per output value per gate
        assert counter.count == math.prod(expected) * (len(shapes) - 1)
    torch.testing.assert_close(out, math.prod(torch.broadcast_tensors(*inputs)))


def test_mul_gates_a_map_with_a_channel_gate_and_a_spatial_gate():
    report, model = built(spec(
        {"name": "features", "type": "conv", "out": 8, "kernel": 3, "padding": 1},
        {"name": "pooled", "type": "global_pool"},
        {"name": "channel", "type": "pointwise", "out": 8, "act": "hardsigmoid"},
        {"name": "spatial", "type": "pointwise", "out": 1, "act": "sigmoid", "from": "features"},
        {"name": "gated", "type": "mul", "from": ["features", "channel", "spatial"]},
    ))
    assert [layer.output_shape for layer in report.layers[2:]] == [(1, 8, 1, 1), (1, 1, 16, 16), (1, 8, 16, 16)]
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        features = model.features(x)
        expected = features * model.channel(model.pooled(features)) * model.spatial(features)
        torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize(
    "layers, message",
    [
        (
            [{"name": "a", "type": "conv", "out": 8, "kernel": 1}, {"name": "b", "type": "conv", "out": 4, "kernel": 1, "from": "input"},
             {"type": "mul", "from": ["a", "b"]}],
            "layers[2] 'mul_2' (mul): mul multiplies equal sizes or broadcasts a size 1, but 'a' and 'b' differ in "
            "dim 1 (8 vs 4): [1, 8, 16, 16] and [1, 4, 16, 16]; make them equal, or pool one to size 1 (a gate)",
        ),
        (
            [{"name": "a", "type": "conv", "out": 8, "kernel": 1}, {"name": "flat", "type": "flatten"}, {"type": "mul", "from": ["a", "flat"]}],
            "layers[2] 'mul_2' (mul): mul needs inputs of the same rank, but 'a' gives [1, 8, 16, 16] and 'flat' gives "
            "[1, 2048]; flatten both or neither",
        ),
    ],
)
def test_mul_shape_errors_are_located_and_say_what_fits(layers, message, tmp_path):
    import yaml

    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(spec(*layers), sort_keys=False)
    path.write_text(text)
    [problem] = printed_problems(path)
    where, _, said = problem.partition(": ")
    assert said == message
    _, line, column = where.split(":")
    assert text.splitlines()[int(line) - 1][int(column) - 1 :].startswith("from")


def test_mul_needs_two_inputs():
    with pytest.raises(convspec.SpecError, match="`mul` needs `from` with two or more layer names"):
        convspec.check(spec({"type": "mul"}))


# ---------------------------------------------------------------- hard activations


@pytest.mark.parametrize("fn, module, reference", [("hardsigmoid", nn.Hardsigmoid, F.hardsigmoid), ("hardtanh", nn.Hardtanh, F.hardtanh)])
def test_hard_activations_are_pytorchs(fn, module, reference):
    _, model = built(spec({"type": "act", "fn": fn}, {"type": "conv", "out": 2, "kernel": 1, "act": fn}))
    assert isinstance(model.act_0, module) and isinstance(model.conv_1.act, module)
    x = torch.linspace(-5, 5, 3 * 16 * 16).reshape(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.act_0(x), reference(x))


# ---------------------------------------------------------------- stochastic depth


def torchvision_stochastic_depth(x: torch.Tensor, p: float) -> torch.Tensor:
    """torchvision.ops.stochastic_depth(x, p, mode="row", training=True), written out."""
    survival = 1.0 - p
    noise = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(survival)
    return x * noise.div_(survival) if survival > 0.0 else x * noise


DROP_PATH = spec(
    {"type": "conv", "out": 4, "kernel": 3, "padding": 1},
    {"name": "res", "type": "residual", "drop_path": 0.3, "layers": [{"name": "body", "type": "conv", "out": 4, "kernel": 3, "padding": 1}]},
    channels=4, size=(6, 6),
)


def test_drop_path_is_the_identity_in_eval():
    _, model = built(DROP_PATH)
    residual = model.res
    assert isinstance(residual._drop_path, StochasticDepth) and residual._drop_path.p == 0.3
    x = torch.randn(8, 4, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(residual(x), residual.body(x) + x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_path_drops_whole_samples_in_training_as_torchvision(p):
    _, model = built({**DROP_PATH, "layers": [DROP_PATH["layers"][0], {**DROP_PATH["layers"][1], "drop_path": p}]})
    residual = model.res.train()
    x = torch.randn(400, 4, 6, 6)
    with torch.no_grad():
        branch = residual.body(x)
        torch.manual_seed(5)
        out = residual(x)
        torch.manual_seed(5)
        expected = torchvision_stochastic_depth(branch, p) + x
    torch.testing.assert_close(out, expected)
    kept = (out - x).flatten(1)
    dropped = kept.abs().amax(1) == 0
    scaled = torch.isclose(kept, branch.flatten(1) / (1 - p), rtol=1e-5, atol=1e-6).all(1)
    assert bool((dropped | scaled).all())  # every sample is dropped whole or kept scaled by 1 / (1 - p)
    assert abs(dropped.float().mean().item() - p) < 4 * math.sqrt(p * (1 - p) / len(x))  # about p of them dropped


def test_drop_path_exports_as_the_identity(tmp_path):
    result = export_onnx(None, DROP_PATH, tmp_path / "m.onnx")
    assert all(c.ok for c in result.checks)
    ops = {node.op_type for node in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert not ops & {"Bernoulli", "RandomUniform", "RandomUniformLike", "Dropout"}, ops


def test_drop_path_must_be_a_probability_below_one():
    residual = DROP_PATH["layers"][1]
    with pytest.raises(convspec.SpecError, match=r"`drop_path` must be in \[0, 1\), not 1"):
        convspec.check({**DROP_PATH, "layers": [DROP_PATH["layers"][0], {**residual, "drop_path": 1}]})


# ---------------------------------------------------------------- BatchNorm settings


def test_batch_norm_settings_per_layer_and_spec_wide():
    _, model = built(spec(
        {"name": "a", "type": "conv", "out": 4, "kernel": 3, "norm": "batch"},
        {"name": "b", "type": "conv", "out": 4, "kernel": 3, "norm": "batch", "eps": 1e-4, "momentum": 0.2},
        {"name": "c", "type": "norm", "kind": "batch", "momentum": 0.5},
        {"name": "d", "type": "separable", "out": 4, "kernel": 3, "norm": "batch", "depthwise": {"norm": "batch", "eps": 0.01}},
        {"name": "e", "type": "conv", "out": 4, "kernel": 1, "norm": "group", "norm_groups": 2, "eps": 1e-6},
        {"name": "f", "type": "conv", "out": 4, "kernel": 1, "norm": "layer"},
        batch_norm={"eps": 1e-3, "momentum": 0.03},
    ))
    settings_of = {name: (module.eps, getattr(module, "momentum", None)) for name, module in model.named_modules() if name.endswith("norm")}
    assert settings_of == {
        "a.norm": (1e-3, 0.03),  # the spec's default
        "b.norm": (1e-4, 0.2),  # the layer's own
        "d.depthwise.norm": (0.01, 0.03), "d.pointwise.norm": (1e-3, 0.03),
        "e.norm": (1e-6, None),  # eps for any norm; the spec-wide default is for batch norms only
        "f.norm": (1e-5, None),
    }
    assert (model.c.eps, model.c.momentum) == (1e-3, 0.5)


def test_batch_norm_defaults_are_pytorchs_without_settings():
    _, model = built(spec({"type": "conv", "out": 4, "kernel": 3, "norm": "batch"}))
    assert (model.conv_0.norm.eps, model.conv_0.norm.momentum) == (1e-5, 0.1)


def test_eps_changes_the_output_where_running_variances_are_small():
    # the reason to port eps: TensorFlow-trained BatchNorms with tiny variances differ a lot with PyTorch's 1e-5
    outputs = []
    for eps in (1e-3, 1e-5):
        _, model = built(spec({"type": "norm", "kind": "batch", "eps": eps}, channels=2, size=(4, 4)))
        model.norm_0.running_var.fill_(2e-3)
        with torch.no_grad():
            outputs.append(model(torch.ones(1, 2, 4, 4)))
    assert not torch.allclose(outputs[0], outputs[1], rtol=0.1)


@pytest.mark.parametrize(
    "layer, message",
    [
        ({"type": "conv", "out": 4, "kernel": 3, "norm": "group", "norm_groups": 2, "momentum": 0.1}, "`momentum` is only used with batch norm"),
        ({"type": "conv", "out": 4, "kernel": 3, "eps": 0.001}, "`eps` is only used with a `norm`"),
        ({"type": "norm", "kind": "layer", "momentum": 0.1}, "`momentum` is only used with batch norm"),
        ({"type": "conv", "out": 4, "kernel": 3, "norm": "batch", "momentum": 1.5}, r"`momentum` must be in \[0, 1\], not 1.5"),
        ({"type": "conv", "out": 4, "kernel": 3, "norm": "batch", "eps": 0}, "`eps` must be > 0, not 0"),
    ],
)
def test_norm_settings_errors_name_the_key(layer, message, tmp_path):
    import yaml

    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(spec(layer), sort_keys=False)
    path.write_text(text)
    [problem] = printed_problems(path)
    assert problem.startswith("bad.yaml:") and message.replace("\\", "") in problem.replace("\\", "") or pytest.fail(problem)
    line, column = (int(part) for part in problem.split(":")[1:3])
    key = "momentum" if "momentum" in message else "eps"
    assert text.splitlines()[line - 1][column - 1 :].startswith(key)


# ---------------------------------------------------------------- padding of other frameworks


def tensorflow_same_pads(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "SAME" as its docs give it: out = ceil(in / s), pad_along = max((out - 1) * s + k_eff - in, 0), top = half."""
    out = -(-size // stride)
    effective = (kernel - 1) * dilation + 1
    along = max((out - 1) * stride + effective - size, 0)
    return along // 2, along - along // 2


@SETTINGS
@given(size=st.integers(1, 80), kernel=st.integers(1, 9), stride=st.integers(1, 6), dilation=st.integers(1, 4))
def test_same_upper_is_tensorflows_same_and_same_lower_its_mirror(size, kernel, stride, dilation):
    upper = tensorflow_same_pads(size, kernel, stride, dilation)
    assert auto_padding(size, kernel, stride, dilation, "same_upper") == upper
    assert auto_padding(size, kernel, stride, dilation, "same_lower") == upper[::-1]
    assert auto_pad_total(size, kernel, stride, dilation) == sum(upper)


@SETTINGS
@given(
    size=st.lists(st.integers(3, 23), min_size=2, max_size=2), kernel=st.integers(1, 5), stride=st.integers(1, 3),
    dilation=st.integers(1, 2), mode=st.sampled_from(["same_upper", "same_lower"]), padding_mode=st.sampled_from(["zeros", "replicate"]),
)
def test_same_upper_and_lower_convs_equal_an_explicitly_padded_conv_at_any_size(size, kernel, stride, dilation, mode, padding_mode):
    layer = {"type": "conv", "out": 2, "kernel": kernel, "stride": stride, "dilation": dilation, "padding": mode, "padding_mode": padding_mode}
    report, model = built(spec(layer, size=size))
    assert report.layers[0].output_shape[2:] == tuple(-(-n // stride) for n in size)
    conv = model.conv_0.conv
    for sizes in (size, [n + 1 for n in size], [n + 2 for n in size]):  # the module follows the size it is given
        x = torch.randn(1, 3, *sizes)
        pads = [tensorflow_same_pads(n, kernel, stride, dilation) for n in sizes]
        if mode == "same_lower":
            pads = [pair[::-1] for pair in pads]
        padded = F.pad(x, [p for pair in reversed(pads) for p in pair], mode="constant" if padding_mode == "zeros" else padding_mode)
        with torch.no_grad():
            torch.testing.assert_close(model(x), F.conv2d(padded, conv.weight, conv.bias, stride, 0, dilation))


def test_same_differs_from_same_upper_where_tensorflow_pads_one_side():
    # kernel 3, stride 2 at an even size: TensorFlow pads (0, 1); convspec's `same` keeps PyTorch's (1, 1)
    same = convspec.check(spec({"type": "conv", "out": 2, "kernel": 3, "stride": 2, "padding": "same"})).layers[0].plan.geometry
    upper = convspec.check(spec({"type": "conv", "out": 2, "kernel": 3, "stride": 2, "padding": "same_upper"})).layers[0].plan.geometry
    assert same.padding == ((1, 1), (1, 1)) and upper.padding == ((0, 1), (0, 1))


def test_explicit_per_side_padding_pads_each_side():
    report, model = built(spec({"type": "conv", "out": 2, "kernel": 3, "padding": [[0, 1], [2, 0]]}))
    assert report.layers[0].output_shape == (1, 2, 15, 16)
    x = torch.randn(1, 3, 16, 16)
    conv = model.conv_0.conv
    with torch.no_grad():
        torch.testing.assert_close(model(x), F.conv2d(F.pad(x, [2, 0, 0, 1]), conv.weight, conv.bias))


@pytest.mark.parametrize(
    "padding, message",
    [
        ([[0, 1, 2], [0, 1]], "entry 0 is [0, 1, 2]; a per-side entry is one [before, after] pair of integers >= 0"),
        ([[0, -1], [0, 1]], "entry 0: every value must be >= 0, not -1"),
        ([[0, 1]], "`padding` has 1 entries ([[0, 1]]) but the input is 2-D; give 2 or one int"),
        ("same_uper", "'same_uper' (did you mean 'same_upper'?)"),
    ],
)
def test_bad_padding_is_located(padding, message, tmp_path):
    import yaml

    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(spec({"type": "conv", "out": 2, "kernel": 3, "padding": padding}), sort_keys=False)
    path.write_text(text)
    [problem] = printed_problems(path)
    assert message in problem, problem
    line, column = (int(part) for part in problem.split(":")[1:3])
    assert text.splitlines()[line - 1][column - 1 :].startswith("padding")


def _export_ops(path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("kernel, stride", [(3, 2), (2, 3), (5, 4)])
def test_same_upper_exports_at_a_dynamic_size_with_the_padding_computed_in_the_graph(kernel, stride, tmp_path):
    # (2, 3) and (5, 4): kernels shorter than the stride, where the total is max(..., 0)
    definition = spec({"type": "conv", "out": 4, "kernel": kernel, "stride": stride, "padding": "same_upper"}, size=None)
    model = convspec.build(definition, seed=0).eval()
    result = export_onnx(model, definition, tmp_path / "m.onnx")
    assert result.dynamic_spatial and all(c.ok for c in result.checks)
    assert len({c.input_shape[2:] for c in result.checks}) >= 3  # verified at several sizes, odd ones among them
    assert "Mod" in _export_ops(tmp_path / "m.onnx")  # (in - 1) % stride, computed from the input's shape
    # and at sizes the verification did not try, every remainder of the stride
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for size in range(9, 9 + 2 * stride):
        x = torch.randn(1, 3, size, size + 1)
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, rtol=1e-4, atol=1e-5)


def test_same_upper_exports_with_constant_padding_at_a_fixed_size(tmp_path):
    result = export_onnx(None, spec({"type": "conv", "out": 4, "kernel": 3, "stride": 2, "padding": "same_upper"}, size=(15, 16)), tmp_path / "m.onnx")
    assert not result.dynamic_spatial and all(c.ok for c in result.checks)
    assert "Mod" not in _export_ops(tmp_path / "m.onnx")


# ---------------------------------------------------------------- transposed convs: Keras' `same`


def tensorflow_transposed_same(x: torch.Tensor, weight: torch.Tensor, stride: int, dilation: int) -> torch.Tensor:
    """TensorFlow's conv2d_transpose(padding="SAME"), by its definition: the gradient of its "SAME" conv from in * s to in."""
    size = [n * stride for n in x.shape[2:]]
    kernel = weight.shape[2]
    pads = [tensorflow_same_pads(n, kernel, stride, dilation) for n in size]
    probe = torch.zeros(x.shape[0], weight.shape[1], *size, requires_grad=True)
    padded = F.pad(probe, [p for pair in reversed(pads) for p in pair])
    out = F.conv2d(padded, weight, None, stride, 0, dilation)  # (B, in, *x's size): weight (in, out, k, k) as a conv's
    (grad,) = torch.autograd.grad((out * x).sum(), probe)
    return grad


@pytest.mark.parametrize("kernel, stride, dilation", [(3, 2, 1), (4, 2, 1), (5, 2, 1), (3, 3, 1), (1, 2, 1), (2, 3, 1), (3, 2, 2), (4, 1, 1)])
def test_transposed_same_upper_is_keras_conv2d_transpose_same(kernel, stride, dilation):
    definition = spec(
        {"type": "transposed", "out": 2, "kernel": kernel, "stride": stride, "dilation": dilation, "padding": "same_upper", "bias": False},
        size=(5, 7),
    )
    report, model = built(definition)
    assert report.layers[0].output_shape == (1, 2, 5 * stride, 7 * stride)
    assert_report_matches_model(report, model)
    x = torch.randn(1, 3, 5, 7)
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, tensorflow_transposed_same(x, model.transposed_0.conv.weight, stride, dilation))


def test_transposed_same_lower_equals_same_where_same_exists():
    x = torch.randn(1, 3, 6, 5)
    outs = []
    for padding in ("same", "same_lower"):
        _, model = built(spec({"type": "transposed", "out": 2, "kernel": 3, "stride": 2, "padding": padding}, size=(6, 5)))
        with torch.no_grad():
            outs.append(model(x))
    torch.testing.assert_close(outs[0], outs[1])
    assert transposed_auto_padding(3, 2, 1, "same_upper") == ((0, 1), 0) and transposed_auto_padding(3, 2, 1, "same_lower") == ((1, 0), 0)


def test_transposed_same_lower_works_where_same_has_no_padding_pair():
    # kernel 4, stride 1: 2p - output_padding = 3 needs output_padding 1, which stride 1 forbids; a crop does it
    with pytest.raises(convspec.SpecError, match="no padding gives"):
        convspec.check(spec({"type": "transposed", "out": 2, "kernel": 4, "padding": "same"}))
    report, model = built(spec({"type": "transposed", "out": 2, "kernel": 4, "padding": "same_lower"}))
    assert report.layers[0].output_shape == (1, 2, 16, 16)
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 2, 16, 16)


def test_transposed_per_side_padding_crops_each_end():
    report, model = built(spec({"type": "transposed", "out": 2, "kernel": 3, "stride": 2, "padding": [[0, 2], [1, 0]]}, size=(4, 4)))
    assert report.layers[0].output_shape == (1, 2, 7, 8)
    x = torch.randn(1, 3, 4, 4)
    conv = model.transposed_0.conv
    with torch.no_grad():
        full = F.conv_transpose2d(x, conv.weight, conv.bias, 2)  # 9 x 9
        torch.testing.assert_close(model(x), full[:, :, 0:7, 1:9])


@pytest.mark.parametrize("padding", ["same_upper", "same_lower", [[0, 2], [1, 0]]])
def test_transposed_auto_and_per_side_padding_export_and_verify(padding, tmp_path):
    definition = spec({"type": "transposed", "out": 2, "kernel": 3, "stride": 2, "padding": padding}, size=None)
    result = export_onnx(None, definition, tmp_path / "m.onnx")
    assert result.dynamic_spatial and all(c.ok for c in result.checks)


@pytest.mark.parametrize("kind", ["fixed", "dynamic", "separable"])
def test_same_upper_on_the_other_conv_kinds_follows_the_size(kind):
    layer = {"fixed": {"type": "fixed", "filter": "box", "kernel_size": 3}, "dynamic": {"type": "dynamic", "out": 2, "kernel": 3},
             "separable": {"type": "separable", "out": 2, "kernel": 3}}[kind]
    for size in (15, 16):
        report, model = built(spec({**layer, "stride": 2, "padding": "same_upper"}, size=(size, size + 1)))
        assert report.layers[0].output_shape[2:] == (-(-size // 2), -(-(size + 1) // 2))
        assert_report_matches_model(report, model)


def test_drawings_show_gates_and_stochastic_depth():
    from convspec.draw import render

    svg = render(convspec.check("specs/efficientnet_b0.yaml"), "svg")
    assert "⊕ add · drop_path 0.025" in svg and "⊕ add · drop_path 0.175" in svg
    mermaid = render(convspec.check("specs/attention_cnn.yaml"), "mermaid")
    assert "spatial_scale · mul" in mermaid and "scale · mul" in mermaid


def test_a_gated_map_sees_the_whole_input_but_keeps_the_maps_stride():
    # conv k3 / 2 on 40 -> 19 (jump 2); its SE gate sees every input position; the product keeps jump 2
    layers = [
        {"name": "features", "type": "conv", "out": 2, "kernel": 3, "stride": 2},
        {"name": "pooled", "type": "global_pool"},
        {"name": "gate", "type": "pointwise", "out": 2, "act": "sigmoid"},
        {"name": "gated", "type": "mul", "from": ["features", "gate"]},
    ]
    report, model = built(spec(*layers, channels=2, size=(40,)))
    gated = report.layers[-1]
    assert gated.stride == (2,)
    x = torch.ones(1, 2, 40, dtype=torch.float64, requires_grad=True)
    y = model.double()(x)
    widest = 0
    for position in range(y.shape[-1]):  # the widest span of inputs one output position depends on
        (grad,) = torch.autograd.grad(y[0, 0, position], x, retain_graph=True)
        touched = grad[0].abs().sum(0).nonzero().flatten()
        widest = max(widest, touched.max().item() - touched.min().item() + 1)
    assert gated.receptive_field == (widest,) == (39,)
