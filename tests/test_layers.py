"""Behaviour of convspec.layers: pad_input, DynamicConv and ChannelShuffle, in 1-D, 2-D and 3-D.

The references here are written independently of the module's code: F.pad with
a hand-built pad list, a static conv per sample, a Python sum over experts, an
explicit channel permutation.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convspec.geometry import attention_hidden
from convspec.layers import pad_input
from convspec.layers_kernels import DynamicConv
from convspec.layers_wiring import ChannelShuffle

CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
MODES = ["zeros", "reflect", "replicate", "circular"]
TORCH_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}


def _fill(shape, seed, dtype=torch.float64):
    """A seeded random tensor that leaves the global RNG alone."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def _build(seed, *args, **kwargs) -> DynamicConv:
    """A DynamicConv with a reproducible initialisation (global RNG forked and restored)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return DynamicConv(*args, **kwargs)


def _param_count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------- pad_input


@st.composite
def pad_cases(draw):
    dims = draw(st.integers(1, 3))
    mode = draw(st.sampled_from(MODES))
    pads = [(draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(dims)]
    # reflect needs pad < size, circular pad <= size; draw sizes that allow the pads.
    sizes = [max(lo, hi) + 1 + draw(st.integers(0, 2)) for lo, hi in pads]
    batch = draw(st.integers(1, 2))
    channels = draw(st.integers(1, 3))
    return dims, mode, pads, (batch, channels, *sizes), draw(st.integers(0, 2**16))


@settings(max_examples=60, deadline=None)
@given(pad_cases())
def test_pad_input_matches_f_pad(case):
    dims, mode, pads, shape, seed = case
    x = _fill(shape, seed)
    # F.pad's argument written out by hand: last spatial dim first.
    torch_pad = []
    for lo, hi in pads[::-1]:
        torch_pad += [lo, hi]
    expected = F.pad(x, torch_pad, mode=TORCH_MODE[mode])
    got = pad_input(x, pads, mode)
    assert got.shape == (*shape[:2], *(s + lo + hi for s, (lo, hi) in zip(shape[2:], pads)))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_pad_input_zeros_places_input_at_low_offset(dims):
    # Asymmetric pads, checked without F.pad: the input sits at offset `low` in a zero tensor.
    pads = [(1, 3), (2, 0), (0, 2)][:dims]
    x = _fill((2, 3, *[4] * dims), 0)
    got = pad_input(x, pads, "zeros")
    expected = torch.zeros(2, 3, *[4 + lo + hi for lo, hi in pads], dtype=x.dtype)
    expected[(slice(None), slice(None), *[slice(lo, lo + 4) for lo, _ in pads])] = x
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_pad_input_first_pair_is_first_spatial_dim(dims):
    pads = [(0, 0)] * dims
    pads[0] = (2, 1)
    x = _fill((1, 1, *[3] * dims), 1)
    assert pad_input(x, pads, "replicate").shape[2:] == (6, *[3] * (dims - 1))


@pytest.mark.parametrize("mode", MODES)
def test_pad_input_all_zero_pads_returns_input(mode):
    x = _fill((1, 2, 3, 3), 0)
    assert pad_input(x, [(0, 0), (0, 0)], mode) is x


def test_pad_input_rejects_bad_arguments():
    x = _fill((1, 2, 3, 3), 0)
    with pytest.raises(ValueError, match="padding_mode"):
        pad_input(x, [(1, 1), (1, 1)], "constant")
    with pytest.raises(ValueError, match="pair"):
        pad_input(x, [(1, 1)], "zeros")
    with pytest.raises(ValueError, match="non-negative"):
        pad_input(x, [(1, -1), (0, 0)], "zeros")
    with pytest.raises(ValueError, match="reflect"):
        pad_input(x, [(3, 0), (0, 0)], "reflect")
    with pytest.raises(ValueError, match="circular"):
        pad_input(x, [(0, 0), (0, 4)], "circular")


# ---------------------------------------------------------------- DynamicConv


@st.composite
def dynamic_cases(draw):
    dims = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    in_ch = groups * draw(st.integers(1, 3))
    out_ch = groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    padding = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(dims))
    mode = draw(st.sampled_from(MODES))
    sizes = []
    for k, d, (lo, hi) in zip(kernel, dilation, padding):
        # Big enough for reflect (pad < size) and for one output position after padding.
        need = max(max(lo, hi) + 1, d * (k - 1) + 1 - lo - hi, 1)
        sizes.append(need + draw(st.integers(0, 3 if dims < 3 else 1)))
    return dict(
        dims=dims,
        in_channels=in_ch,
        out_channels=out_ch,
        kernel_size=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=groups,
        bias=draw(st.booleans()),
        padding_mode=mode,
        experts=draw(st.integers(1, 4)),
        reduction=draw(st.integers(1, 4)),
        temperature=draw(st.sampled_from([0.5, 1.0, 3.0])),
        batch=draw(st.integers(1, 4)),
        sizes=tuple(sizes),
        seed=draw(st.integers(0, 2**16)),
    )


def _make(case) -> tuple[DynamicConv, torch.Tensor]:
    kwargs = {k: v for k, v in case.items() if k not in ("batch", "sizes", "seed")}
    m = _build(case["seed"], **kwargs).double()
    x = _fill((case["batch"], case["in_channels"], *case["sizes"]), case["seed"] + 1)
    return m, x


def _expected_out_size(size, k, s, d, lo, hi):
    return (size + lo + hi - d * (k - 1) - 1) // s + 1


@settings(max_examples=80, deadline=None)
@given(dynamic_cases())
def test_dynamic_conv_equals_static_conv_per_sample(case):
    m, x = _make(case)
    y = m(x)
    out_sizes = tuple(
        _expected_out_size(n, k, s, d, lo, hi)
        for n, k, s, d, (lo, hi) in zip(case["sizes"], m.kernel_size, m.stride, m.dilation, m.padding)
    )
    assert y.shape == (case["batch"], case["out_channels"], *out_sizes)
    weight, bias = m.mixed_weight(x)
    k_in = case["in_channels"] // case["groups"]
    assert weight.shape == (case["batch"], case["out_channels"], k_in, *case["kernel_size"])
    assert (bias is None) == (not case["bias"])
    for b in range(case["batch"]):
        xb = pad_input(x[b : b + 1], case["padding"], case["padding_mode"])
        ref = CONV[case["dims"]](
            xb,
            weight[b],
            None if bias is None else bias[b],
            case["stride"],
            0,
            case["dilation"],
            case["groups"],
        )
        torch.testing.assert_close(y[b : b + 1], ref, rtol=0, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(dynamic_cases())
def test_mixed_weight_is_softmax_weighted_sum_of_experts(case):
    m, x = _make(case)
    logits = m.attention(x)  # the attention branch's raw output, (B, K)
    weight, bias = m.mixed_weight(x)
    attn = m.attention_weights(x)
    torch.testing.assert_close(attn.sum(dim=1), torch.ones(case["batch"], dtype=attn.dtype))
    assert (attn >= 0).all()
    for b in range(case["batch"]):
        z = [float(v) / case["temperature"] for v in logits[b].detach()]
        top = max(z)
        e = [math.exp(v - top) for v in z]
        p = [v / sum(e) for v in e]
        torch.testing.assert_close(attn[b], torch.tensor(p, dtype=attn.dtype), rtol=0, atol=1e-9)
        w_ref = sum(p[k] * m.weight[k] for k in range(case["experts"]))
        torch.testing.assert_close(weight[b], w_ref, rtol=0, atol=1e-9)
        if bias is not None:
            b_ref = sum(p[k] * m.bias[k] for k in range(case["experts"]))
            torch.testing.assert_close(bias[b], b_ref, rtol=0, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(dynamic_cases())
def test_dynamic_conv_parameter_count(case):
    m, _ = _make(case)
    K, cin, cout, g = case["experts"], case["in_channels"], case["out_channels"], case["groups"]
    hidden = max(1, cin // case["reduction"])
    assert attention_hidden(cin, case["reduction"]) == hidden
    expected = K * cout * (cin // g) * math.prod(case["kernel_size"])
    expected += K * cout if case["bias"] else 0
    expected += cin * hidden + hidden + hidden * K + K
    assert _param_count(m) == expected


def test_dynamic_conv_state_dict_keys_and_shapes():
    m = _build(0, 2, 8, 6, (3, 5), (1, 1), ((1, 1), (2, 2)), (1, 1), groups=2, experts=3, reduction=2)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "weight": (3, 6, 4, 3, 5),
        "bias": (3, 6),
        "attention.2.weight": (4, 8),
        "attention.2.bias": (4,),
        "attention.4.weight": (3, 4),
        "attention.4.bias": (3,),
    }
    no_bias = _build(0, 1, 4, 4, (3,), (1,), ((0, 0),), (1,), bias=False)
    assert no_bias.bias is None and "bias" not in no_bias.state_dict()


def test_dynamic_conv_float32_batch_matches_per_sample():
    m = _build(3, 2, 6, 9, (3, 3), (2, 1), ((1, 2), (0, 1)), (1, 2), groups=3, padding_mode="reflect")
    x = _fill((4, 6, 11, 10), 4, dtype=torch.float32)
    y = m(x)
    for b in range(4):
        torch.testing.assert_close(y[b : b + 1], m(x[b : b + 1]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_single_expert_is_a_plain_conv(dims):
    # K = 1: softmax is 1, so the layer is nn.ConvNd with the one expert kernel.
    m = _build(5, dims, 4, 6, (3,) * dims, (1,) * dims, ((1, 1),) * dims, (1,) * dims, groups=2, experts=1).double()
    x = _fill((3, 4, *[5] * dims), 6)
    ref = CONV[dims](x, m.weight[0], m.bias[0], 1, 1, 1, 2)
    torch.testing.assert_close(m(x), ref, rtol=0, atol=1e-10)


def test_dynamic_conv_samples_get_different_kernels():
    m = _build(7, 2, 4, 4, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), experts=4, reduction=1).double()
    x = _fill((2, 4, 6, 6), 8)
    x[1] = 3 * x[1] + 1  # a different pooled descriptor -> different attention
    weight, _ = m.mixed_weight(x)
    assert not torch.allclose(weight[0], weight[1])


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_dynamic_conv_gradients_reach_every_parameter(dims):
    m = _build(9, dims, 8, 4, (3,) * dims, (1,) * dims, ((1, 1),) * dims, (1,) * dims, experts=3, reduction=2)
    x = _fill((3, 8, *[5] * dims), 10, dtype=torch.float32).requires_grad_()
    (m(x) ** 2).sum().backward()
    for name in ["weight", "bias", "attention.2.weight", "attention.2.bias", "attention.4.weight", "attention.4.bias"]:
        grad = m.get_parameter(name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_temperature_controls_attention_sharpness():
    m = _build(11, 2, 8, 4, (3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), experts=4, reduction=1).double()
    with torch.no_grad():  # spread the logits so the effect is visible
        m.attention[4].weight.mul_(20)
    x = _fill((3, 8, 6, 6), 12)

    def entropy(t):
        m.temperature = t
        a = m.attention_weights(x)
        return -(a * a.log()).sum(dim=1)

    temps = [0.1, 0.5, 1.0, 4.0, 30.0, 1e4]
    ents = [entropy(t) for t in temps]
    for lo, hi in zip(ents, ents[1:]):
        assert (hi >= lo - 1e-12).all()
    assert (ents[0] < ents[-1] - 0.1).all()
    m.temperature = 1e4
    uniform = m.attention_weights(x)
    torch.testing.assert_close(uniform, torch.full_like(uniform, 0.25), rtol=0, atol=1e-3)
    m.temperature = 0.01
    assert (m.attention_weights(x).max(dim=1).values > 0.9).all()
    # And the output follows the attention.
    m.temperature = 1.0
    y1 = m(x)
    m.temperature = 1e4
    assert not torch.allclose(y1, m(x))


def test_expert_initialisation_follows_conv_default():
    m = _build(13, 2, 6, 16, (3, 3), (1, 1), ((0, 0), (0, 0)), (1, 1), groups=2, experts=4)
    fan_in = (6 // 2) * 9
    bound = 1 / math.sqrt(fan_in)
    assert m.weight.abs().max() <= bound and m.bias.abs().max() <= bound
    # Uniform on [-bound, bound]: the spread fills most of the range, experts differ.
    assert m.weight.abs().max() > 0.8 * bound
    assert not torch.equal(m.weight[0], m.weight[1])


def test_dynamic_conv_extra_repr():
    m = DynamicConv(2, 4, 8, (3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1), groups=2, experts=3, padding_mode="reflect")
    r = m.extra_repr()
    assert r.startswith("4, 8, kernel_size=(3, 3), stride=(2, 2)")
    for part in ["experts=3", "groups=2", "padding_mode=reflect", "reduction=4"]:
        assert part in r


BASE = dict(dims=2, in_channels=6, out_channels=8, kernel_size=(3, 3), stride=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(groups=4), r"in_channels \(=6\) must be divisible by groups \(=4\)"),
        (dict(groups=3), r"out_channels \(=8\) must be divisible by groups \(=3\)"),
        (dict(groups=0), "groups"),
        (dict(dims=4), "dims"),
        (dict(in_channels=0), "in_channels"),
        (dict(experts=0), "experts"),
        (dict(reduction=0), "reduction"),
        (dict(temperature=0.0), "temperature"),
        (dict(temperature=-1.0), "temperature"),
        (dict(padding_mode="constant"), "padding_mode"),
        (dict(kernel_size=(3,)), "kernel_size"),
        (dict(kernel_size=(3, 0)), "kernel_size"),
        (dict(stride=(0, 1)), "stride"),
        (dict(dilation=(1, 1, 1)), "dilation"),
        (dict(padding=((1, -1), (0, 0))), "padding"),
        (dict(padding=((1, 1),)), "padding"),
    ],
)
def test_dynamic_conv_rejects_invalid_arguments(change, message):
    with pytest.raises(ValueError, match=message):
        DynamicConv(**{**BASE, **change})


def test_dynamic_conv_rejects_wrong_input():
    m = DynamicConv(**BASE)
    with pytest.raises(ValueError, match="input channels"):
        m(torch.randn(1, 5, 8, 8))
    with pytest.raises(ValueError, match="shape"):
        m(torch.randn(6, 8, 8))


# ---------------------------------------------------------------- ChannelShuffle


@settings(max_examples=40, deadline=None)
@given(
    dims=st.integers(1, 3),
    groups=st.integers(1, 4),
    per_group=st.integers(1, 4),
    batch=st.integers(1, 3),
    size=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_channel_shuffle_is_the_explicit_permutation(dims, groups, per_group, batch, size, seed):
    channels = groups * per_group
    x = _fill((batch, channels, *[size] * dims), seed)
    # Input channel c = j * per_group + i is channel i of group j; after the
    # shuffle, output channels take one channel from each group in turn:
    # output i * groups + j <- input j * per_group + i.
    source = [0] * channels
    for j in range(groups):
        for i in range(per_group):
            source[i * groups + j] = j * per_group + i
    expected = torch.stack([x[:, c] for c in source], dim=1)
    got = ChannelShuffle(groups)(x)
    assert got.shape == x.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_channel_shuffle_small_example():
    x = torch.arange(6.0).reshape(1, 6, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert ChannelShuffle(3)(x).flatten().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("groups", [0, -2, 1.5, True, "2"])
def test_channel_shuffle_rejects_invalid_groups(groups):
    with pytest.raises(ValueError, match="groups"):
        ChannelShuffle(groups)


def test_channel_shuffle_rejects_indivisible_channels():
    with pytest.raises(ValueError, match=r"channels \(=6\) must be divisible by groups \(=4\)"):
        ChannelShuffle(4)(torch.randn(1, 6, 3, 3))


def test_channel_shuffle_extra_repr():
    assert "groups=3" in repr(ChannelShuffle(3))


@pytest.mark.parametrize(
    "dims, groups, stride, dilation, padding, bias",
    [(1, 1, (2,), (1,), ((1, 2),), False), (2, 2, (1, 2), (2, 1), ((1, 1), (0, 2)), True),
     (3, 3, (1, 1, 2), (1, 2, 1), ((1, 0), (1, 1), (0, 1)), True)],
)
def test_dynamic_conv_export_path_equals_eager(dims, groups, stride, dilation, padding, bias):
    # the scan over the batch used under torch.export must compute what the eager path computes
    torch.manual_seed(0)
    conv = DynamicConv(dims, 6, 12, (3,) * dims, stride, padding, dilation, groups=groups, bias=bias, experts=3, reduction=2).double()
    x = torch.randn(3, 6, *(9,) * dims, dtype=torch.float64)
    weight, bias = conv.mixed_weight(x)
    padded = pad_input(x, padding, "zeros")
    unpadded = (0,) * dims
    eager = conv._forward_per_sample(padded, weight, bias, unpadded)
    assert torch.allclose(conv._forward_scan(padded, weight, bias, unpadded), eager, atol=1e-10)
    # the conv's own padding (used when it is symmetric) gives what padding first gives
    low = tuple(lo for lo, _ in padding)
    padded_low = pad_input(x, [(lo, lo) for lo in low], "zeros")
    for path in (conv._forward_scan, conv._forward_per_sample):
        assert torch.allclose(path(x, weight, bias, low), conv._forward_per_sample(padded_low, weight, bias, unpadded), atol=1e-10)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_dynamic_conv_takes_an_empty_batch_like_a_static_conv(dims):
    conv = DynamicConv(dims, 4, 6, (3,) * dims, (2,) * dims, ((1, 1),) * dims, (1,) * dims, experts=2)
    static = getattr(torch.nn, f"Conv{dims}d")(4, 6, 3, stride=2, padding=1)
    x = torch.zeros(0, 4, *(9,) * dims)
    assert conv(x).shape == static(x).shape == (0, 6, *(5,) * dims)
    # the empty output still takes part in autograd
    x.requires_grad_(True)
    conv(x).sum().backward()
    assert x.grad.shape == x.shape
