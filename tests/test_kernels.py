"""Tests for convspec.kernels, the fixed-filter library.

The expected values here are written independently of kernels.py: the 3x3
tables are typed out again, gaussians are computed with NumPy, and
convolutions are checked against a hand-written NumPy loop, so a mistake in
the library cannot hide behind the same mistake in the test.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convspec.limits import FLOAT32_TINY
from convspec import kernels as K
from convspec.kernels import (
    NAMED_FILTERS,
    FilterError,
    FilterInfo,
    filter_names,
    flatten_kernel,
    kernel_shape,
    literal_kernel,
    make_filter,
    normalize_kernel,
)

# ---------------------------------------------------------------------------
# independent reference material

ALL_NAMES = [
    "gaussian", "box", "sobel_x", "sobel_y", "scharr_x", "scharr_y",
    "prewitt_x", "prewitt_y", "laplacian", "sharpen", "emboss", "identity",
]
ND_NAMES = ["gaussian", "box", "identity"]  # the ones with 1-D and 3-D analogues

# Typed out again on purpose (not read from kernels.py).
TABLES = {
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "scharr_x": [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]],
    "scharr_y": [[-3, -10, -3], [0, 0, 0], [3, 10, 3]],
    "prewitt_x": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "prewitt_y": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}


def np_gaussian_1d(k: int, sigma: float) -> np.ndarray:
    x = np.arange(k, dtype=np.float64) - (k - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def np_gaussian(sizes: list[int], sigmas: list[float]) -> np.ndarray:
    out = np.ones(())
    for k, s in zip(sizes, sigmas):
        out = np.multiply.outer(out, np_gaussian_1d(k, s))
    return out / out.sum()


def np_identity(sizes: list[int]) -> np.ndarray:
    out = np.zeros(sizes)
    out[tuple(k // 2 for k in sizes)] = 1.0
    return out


# The 2-D filters with the options used in the convolution checks, and the
# kernel the test expects, computed here.
CASES_2D: dict[str, tuple[dict, np.ndarray]] = {
    "gaussian": ({"kernel_size": 5, "sigma": 1.0}, np_gaussian([5, 5], [1.0, 1.0])),
    "box": ({"kernel_size": 3}, np.full((3, 3), 1 / 9)),
    **{name: ({}, np.array(table, dtype=np.float64)) for name, table in TABLES.items()},
    "identity": ({"kernel_size": 3}, np_identity([3, 3])),
}
# Extra even and non-square cases: asymmetric "same" padding, centre between samples.
EXTRA_2D: dict[str, tuple[str, dict, np.ndarray]] = {
    "box_4x2": ("box", {"kernel_size": [4, 2]}, np.full((4, 2), 1 / 8)),
    "gaussian_4x3": (
        "gaussian",
        {"kernel_size": [4, 3], "sigma": [1.5, 0.7]},
        np_gaussian([4, 3], [1.5, 0.7]),
    ),
}


def np_correlate2d(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Plain 'valid' cross-correlation of one 2-D channel, one output position at a time."""
    h, w = k.shape
    out = np.empty((x.shape[0] - h + 1, x.shape[1] - w + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = (x[i : i + h, j : j + w] * k).sum()
    return out


def np_correlate_nd(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The same loop for any number of dims (used for 1-D and 3-D)."""
    out_shape = tuple(n - m + 1 for n, m in zip(x.shape, k.shape))
    out = np.empty(out_shape)
    for idx in np.ndindex(*out_shape):
        window = x[tuple(slice(i, i + m) for i, m in zip(idx, k.shape))]
        out[idx] = (window * k).sum()
    return out


def same_pads(shape: tuple[int, ...]) -> list[tuple[int, int]]:
    """convspec's `same`: k-1 in total per dim, the lower side getting floor(half)."""
    return [((k - 1) // 2, (k - 1) - (k - 1) // 2) for k in shape]


# ---------------------------------------------------------------------------
# the module itself


def test_kernels_module_imports_neither_torch_nor_numpy():
    source = Path(K.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"torch", "numpy"}, imported


def test_registry_order_and_info():
    assert list(NAMED_FILTERS) == ALL_NAMES
    assert filter_names() == ALL_NAMES
    for name, info in NAMED_FILTERS.items():
        assert isinstance(info, FilterInfo)
        assert info.name == name
        assert info.description and "\n" not in info.description
    assert NAMED_FILTERS["gaussian"].takes_sigma and NAMED_FILTERS["gaussian"].takes_kernel_size
    assert NAMED_FILTERS["box"].takes_kernel_size and not NAMED_FILTERS["box"].takes_sigma
    assert NAMED_FILTERS["identity"].takes_kernel_size and not NAMED_FILTERS["identity"].takes_sigma
    for name in TABLES:
        info = NAMED_FILTERS[name]
        assert info.dims == (2,)
        assert not info.takes_kernel_size and not info.takes_sigma
    for name in ND_NAMES:
        assert NAMED_FILTERS[name].dims == (1, 2, 3)
    with pytest.raises(Exception):
        NAMED_FILTERS["box"].name = "other"  # frozen


def test_filter_names_by_dims():
    assert filter_names(1) == ND_NAMES
    assert filter_names(3) == ND_NAMES
    assert filter_names(2) == ALL_NAMES


def test_filter_error_is_a_value_error():
    assert issubclass(FilterError, ValueError)


# ---------------------------------------------------------------------------
# every named filter, every dim


def default_kwargs(name: str) -> dict:
    return {"gaussian": {"sigma": 1.0}, "box": {"kernel_size": 3}}.get(name, {})


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_every_filter_in_every_dim(name, dims):
    if dims not in NAMED_FILTERS[name].dims:
        with pytest.raises(FilterError, match=f"{name} is a 2-D filter; in {dims}-D use one of"):
            make_filter(name, dims)
        return
    kern = make_filter(name, dims, **default_kwargs(name))
    arr = np.asarray(kern, dtype=np.float64)
    expected_shape = {"gaussian": (7,) * dims, "box": (3,) * dims, "identity": (1,) * dims}.get(name, (3, 3))
    assert arr.shape == expected_shape
    assert kernel_shape(kern) == expected_shape
    assert np.isfinite(arr).all()
    assert all(type(v) is float for v in flatten_kernel(kern))


@pytest.mark.parametrize("name", list(TABLES))
def test_fixed_tables_exactly(name):
    kern = make_filter(name)
    assert kern == [[float(v) for v in row] for row in TABLES[name]]
    assert all(type(v) is float for row in kern for v in row)
    # kernel_size 3 restates the size and is accepted.
    assert make_filter(name, 2, kernel_size=3) == kern
    assert make_filter(name, 2, kernel_size=[3, 3]) == kern


@pytest.mark.parametrize("axis", ["sobel", "scharr", "prewitt"])
def test_y_filters_are_x_transposed(axis):
    x = np.array(make_filter(f"{axis}_x"))
    y = np.array(make_filter(f"{axis}_y"))
    np.testing.assert_array_equal(y, x.T)


def test_sums_of_the_fixed_tables():
    for name in ["sobel_x", "sobel_y", "scharr_x", "scharr_y", "prewitt_x", "prewitt_y", "laplacian"]:
        assert sum(flatten_kernel(make_filter(name))) == 0
    assert sum(flatten_kernel(make_filter("sharpen"))) == 1
    assert sum(flatten_kernel(make_filter("emboss"))) == 1


# ---------------------------------------------------------------------------
# gaussian, box, identity: properties for all sizes


@st.composite
def gaussian_args(draw):
    dims = draw(st.integers(1, 3))
    max_k = 7 if dims == 3 else 12
    mode = draw(st.sampled_from(["both", "size", "sigma"]))
    per_dim = draw(st.booleans())
    sigma_st = st.floats(0.1, 4.0) if mode != "sigma" else st.floats(0.1, 1.0 if dims == 3 else 2.0)
    if per_dim:
        ks = draw(st.lists(st.integers(1, max_k), min_size=dims, max_size=dims))
        ss = draw(st.lists(sigma_st, min_size=dims, max_size=dims))
    else:
        ks = draw(st.integers(1, max_k))
        ss = draw(sigma_st)
    kernel_size = ks if mode in ("both", "size") else None
    sigma = ss if mode in ("both", "sigma") else None
    return dims, kernel_size, sigma


def expand(value, dims):
    return list(value) if isinstance(value, list) else [value] * dims


@settings(max_examples=60, deadline=None)
@given(gaussian_args())
def test_gaussian_properties(args):
    dims, kernel_size, sigma = args
    arr = np.asarray(make_filter("gaussian", dims, kernel_size=kernel_size, sigma=sigma))
    if kernel_size is not None:
        sizes = expand(kernel_size, dims)
    else:
        sizes = [2 * math.ceil(3 * s) + 1 for s in expand(sigma, dims)]
    assert arr.shape == tuple(sizes)
    assert np.isfinite(arr).all() and (arr >= 0).all()
    assert arr.sum() == pytest.approx(1.0, abs=1e-12)
    for axis in range(dims):
        np.testing.assert_allclose(arr, np.flip(arr, axis=axis), rtol=0, atol=1e-15)
    # The maximum sits at the centre (for even sizes the two middle samples tie).
    centre = tuple((k - 1) // 2 for k in sizes)
    assert arr[centre] == pytest.approx(arr.max(), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(gaussian_args())
def test_gaussian_equals_numpy(args):
    dims, kernel_size, sigma = args
    got = np.asarray(make_filter("gaussian", dims, kernel_size=kernel_size, sigma=sigma))
    if kernel_size is None:
        sigmas = expand(sigma, dims)
        sizes = [2 * math.ceil(3 * s) + 1 for s in sigmas]
    else:
        sizes = expand(kernel_size, dims)
        sigmas = expand(sigma, dims) if sigma is not None else [0.3 * ((k - 1) * 0.5 - 1) + 0.8 for k in sizes]
    if dims == 2:
        expected = np.outer(np_gaussian_1d(sizes[0], sigmas[0]), np_gaussian_1d(sizes[1], sigmas[1]))
        expected /= expected.sum()
    else:
        expected = np_gaussian(sizes, sigmas)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_gaussian_known_values():
    # kernel_size 3 alone: sigma = 0.3*((3-1)/2 - 1) + 0.8 = 0.8, samples at -1, 0, 1.
    e = math.exp(-1 / (2 * 0.8**2))
    expected = [e / (1 + 2 * e), 1 / (1 + 2 * e), e / (1 + 2 * e)]
    np.testing.assert_allclose(make_filter("gaussian", 1, kernel_size=3), expected, rtol=1e-12)
    # kernel_size 2: the centre falls between the samples, which therefore tie.
    assert make_filter("gaussian", 1, kernel_size=2) == [0.5, 0.5]
    # sigma only: 2*ceil(3*0.5)+1 = 5 samples.
    assert kernel_shape(make_filter("gaussian", 2, sigma=0.5)) == (5, 5)
    assert kernel_shape(make_filter("gaussian", 2, sigma=[0.5, 1.0])) == (5, 7)


def test_gaussian_tiny_sigma_even_size_stays_finite():
    # No sample sits at the centre; a naive exp() underflows to 0 everywhere.
    arr = np.asarray(make_filter("gaussian", 2, kernel_size=4, sigma=1e-3))
    assert np.isfinite(arr).all()
    assert arr.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(arr[1:3, 1:3], 0.25)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3).flatmap(lambda d: st.lists(st.integers(1, 6), min_size=d, max_size=d)))
def test_box_is_uniform_and_sums_to_one(sizes):
    arr = np.asarray(make_filter("box", len(sizes), kernel_size=sizes))
    assert arr.shape == tuple(sizes)
    np.testing.assert_allclose(arr, 1 / np.prod(sizes), rtol=1e-15)
    assert arr.sum() == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3).flatmap(lambda d: st.lists(st.sampled_from([1, 3, 5, 7]), min_size=d, max_size=d)))
def test_identity_is_a_single_one_at_the_centre(sizes):
    arr = np.asarray(make_filter("identity", len(sizes), kernel_size=sizes))
    np.testing.assert_array_equal(arr, np_identity(sizes))


def test_identity_default_size_is_one():
    assert make_filter("identity", 1) == [1.0]
    assert make_filter("identity", 2) == [[1.0]]
    assert make_filter("identity", 3) == [[[1.0]]]


# ---------------------------------------------------------------------------
# independent convolution checks: torch conv with our kernel == NumPy loop with the test's kernel


def depthwise_weight(kern: list, channels: int) -> torch.Tensor:
    w = torch.tensor(kern, dtype=torch.float64)
    return w.expand(channels, 1, *w.shape).contiguous()


ALL_2D_CASES = {name: (name, kw, exp) for name, (kw, exp) in CASES_2D.items()} | EXTRA_2D


def test_all_2d_filters_have_a_convolution_case():
    assert set(filter_names(2)) <= set(CASES_2D)


@pytest.mark.parametrize("case", list(ALL_2D_CASES))
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv2d_matches_numpy_loop(case, padding):
    name, kwargs, expected_kernel = ALL_2D_CASES[case]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 12, 13, generator=gen, dtype=torch.float64)
    kern = make_filter(name, 2, **kwargs)
    assert kernel_shape(kern) == expected_kernel.shape
    pads = same_pads(expected_kernel.shape) if padding == "same" else [(0, 0), (0, 0)]
    # F.pad takes (W_lo, W_hi, H_lo, H_hi); explicit so even kernels get convspec's split.
    xp = F.pad(x, (*pads[1], *pads[0]))
    y = F.conv2d(xp, depthwise_weight(kern, 3), groups=3)
    if padding == "same":
        assert y.shape == x.shape
    xn = x.numpy()
    for c in range(3):
        expected = np_correlate2d(np.pad(xn[0, c], pads), expected_kernel)
        np.testing.assert_allclose(y[0, c].numpy(), expected, rtol=1e-10, atol=1e-10)


def test_conv2d_same_padding_int_matches_torch_padding_for_3x3():
    # For 3x3, padding=1 is `same`: check torch's own padding argument too.
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 12, 13, generator=gen, dtype=torch.float64)
    for name, table in TABLES.items():
        y = F.conv2d(x, depthwise_weight(make_filter(name), 3), groups=3, padding=1)
        for c in range(3):
            expected = np_correlate2d(np.pad(x[0, c].numpy(), 1), np.array(table, dtype=np.float64))
            np.testing.assert_allclose(y[0, c].numpy(), expected, rtol=1e-10, atol=1e-10)


def test_sobel_x_orientation_on_a_ramp():
    # Cross-correlation: brightness rising to the right gives a positive sobel_x response.
    x = torch.arange(13, dtype=torch.float64).expand(1, 1, 12, 13).contiguous()
    y = F.conv2d(x, depthwise_weight(make_filter("sobel_x"), 1))
    assert torch.allclose(y, torch.full_like(y, 8.0))
    y = F.conv2d(x, depthwise_weight(make_filter("sobel_y"), 1))
    assert torch.allclose(y, torch.zeros_like(y))


ND_CASES = [
    (1, "gaussian", {"kernel_size": 5, "sigma": 1.2}, lambda: np_gaussian([5], [1.2])),
    (1, "gaussian", {"kernel_size": 4}, lambda: np_gaussian([4], [0.3 * (1.5 - 1) + 0.8])),
    (1, "box", {"kernel_size": 4}, lambda: np.full((4,), 0.25)),
    (1, "identity", {"kernel_size": 3}, lambda: np_identity([3])),
    (3, "gaussian", {"kernel_size": [3, 2, 3], "sigma": [0.8, 1.0, 1.5]},
     lambda: np_gaussian([3, 2, 3], [0.8, 1.0, 1.5])),
    (3, "gaussian", {"sigma": 0.5}, lambda: np_gaussian([5, 5, 5], [0.5] * 3)),
    (3, "box", {"kernel_size": [2, 3, 3]}, lambda: np.full((2, 3, 3), 1 / 18)),
    (3, "identity", {"kernel_size": 3}, lambda: np_identity([3, 3, 3])),
]


@pytest.mark.parametrize("dims,name,kwargs,expected_fn", ND_CASES)
def test_conv1d_conv3d_match_numpy_loop(dims, name, kwargs, expected_fn):
    gen = torch.Generator().manual_seed(2)
    size = (20,) if dims == 1 else (6, 7, 5)
    x = torch.randn(1, 2, *size, generator=gen, dtype=torch.float64)
    kern = make_filter(name, dims, **kwargs)
    expected_kernel = expected_fn()
    np.testing.assert_allclose(np.asarray(kern), expected_kernel, rtol=0, atol=1e-12)
    pads = same_pads(expected_kernel.shape)
    flat_pads = [p for lo_hi in reversed(pads) for p in lo_hi]
    conv = F.conv1d if dims == 1 else F.conv3d
    y = conv(F.pad(x, flat_pads), depthwise_weight(kern, 2), groups=2)
    assert y.shape == x.shape
    for c in range(2):
        expected = np_correlate_nd(np.pad(x[0, c].numpy(), pads), expected_kernel)
        np.testing.assert_allclose(y[0, c].numpy(), expected, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------
# make_filter errors


def test_unknown_name_suggests_the_closest():
    with pytest.raises(FilterError, match=r"unknown filter 'gausian'.*did you mean 'gaussian'\?"):
        make_filter("gausian")
    with pytest.raises(FilterError, match="did you mean 'sobel_x'"):
        make_filter("sobelx")


def test_unknown_name_without_close_match_lists_the_names():
    with pytest.raises(FilterError) as exc:
        make_filter("wavelet")
    msg = str(exc.value)
    assert "unknown filter 'wavelet'" in msg and "did you mean" not in msg
    for name in ALL_NAMES:
        assert name in msg


def test_2d_only_filter_in_1d_and_3d():
    with pytest.raises(FilterError) as exc:
        make_filter("sobel_x", 1)
    assert str(exc.value) == "sobel_x is a 2-D filter; in 1-D use one of: gaussian, box, identity"
    with pytest.raises(FilterError, match="laplacian is a 2-D filter; in 3-D use one of: gaussian, box, identity"):
        make_filter("laplacian", 3)


def test_identity_even_size():
    with pytest.raises(FilterError, match="identity needs an odd kernel_size"):
        make_filter("identity", 2, kernel_size=4)
    with pytest.raises(FilterError, match="odd"):
        make_filter("identity", 2, kernel_size=[3, 2])


def test_options_a_filter_does_not_take():
    with pytest.raises(FilterError, match="sobel_x is a fixed 3x3 filter and takes no kernel_size"):
        make_filter("sobel_x", 2, kernel_size=5)
    with pytest.raises(FilterError, match="takes no kernel_size"):
        make_filter("emboss", 2, kernel_size=[3, 5])
    with pytest.raises(FilterError, match="box takes no sigma.*only gaussian"):
        make_filter("box", 2, kernel_size=3, sigma=1.0)
    with pytest.raises(FilterError, match="laplacian takes no sigma"):
        make_filter("laplacian", 2, sigma=1.0)
    with pytest.raises(FilterError, match="identity takes no sigma"):
        make_filter("identity", 2, sigma=1.0)


def test_missing_required_options():
    with pytest.raises(FilterError, match="gaussian needs kernel_size or sigma"):
        make_filter("gaussian", 2)
    with pytest.raises(FilterError, match="box needs kernel_size"):
        make_filter("box", 2)


@pytest.mark.parametrize(
    "name,kwargs,words",
    [
        ("gaussian", {"kernel_size": 0}, "kernel_size must be >= 1, got 0"),
        ("box", {"kernel_size": -3}, "kernel_size must be >= 1"),
        ("box", {"kernel_size": [3, 0]}, "kernel_size must be >= 1"),
        ("box", {"kernel_size": 2.5}, "kernel_size must be a whole number"),
        ("box", {"kernel_size": True}, "kernel_size must be a whole number"),
        ("gaussian", {"sigma": 0}, "sigma must be > 0, got 0"),
        ("gaussian", {"sigma": -1.0}, "sigma must be > 0"),
        ("gaussian", {"sigma": float("nan")}, "NaN/inf"),
        ("gaussian", {"sigma": float("inf")}, "NaN/inf"),
        ("gaussian", {"sigma": "1"}, "sigma must be a number"),
        ("gaussian", {"kernel_size": [3, 3, 3]}, "kernel_size [3, 3, 3] has 3 entries but the input is 2-D"),
        ("gaussian", {"kernel_size": 3, "sigma": [1.0]}, "sigma [1.0] has 1 entry but the input is 2-D"),
        ("box", {"kernel_size": [3]}, "has 1 entry but the input is 2-D: give 2 entries"),
        ("gaussian", {"sigma": 1e6}, "too large"),
        ("box", {"kernel_size": 2000}, "too large"),
    ],
)
def test_bad_option_values(name, kwargs, words):
    with pytest.raises(FilterError) as exc:
        make_filter(name, 2, **kwargs)
    assert words in str(exc.value)


def test_bad_dims():
    with pytest.raises(FilterError, match="dims must be 1, 2 or 3"):
        make_filter("gaussian", 4, sigma=1.0)


# ---------------------------------------------------------------------------
# literal kernels


def test_literal_kernel_accepts_and_returns_floats():
    assert literal_kernel([[1, -1]], 2) == [[1.0, -1.0]]
    assert all(type(v) is float for v in literal_kernel([[1, 2], [3, 4.5]], 2)[1])
    assert literal_kernel([1, 2, 3], 1) == [1.0, 2.0, 3.0]
    assert literal_kernel([[[1]], [[2]]], 3) == [[[1.0]], [[2.0]]]
    assert literal_kernel(((1, 2),), 2) == [[1.0, 2.0]]


@settings(max_examples=50, deadline=None)
@given(
    st.integers(1, 3).flatmap(
        lambda d: st.lists(st.integers(1, 4), min_size=d, max_size=d).flatmap(
            lambda shape: st.lists(
                # values float32 holds (tiny ones are refused: tests/test_hostile_inputs.py)
                st.one_of(st.integers(-100, 100), st.floats(-1e6, 1e6).filter(lambda x: x == 0 or abs(x) >= FLOAT32_TINY)),
                min_size=math.prod(shape),
                max_size=math.prod(shape),
            ).map(lambda flat: np.array(flat, dtype=object).reshape(shape).tolist())
        )
    )
)
def test_literal_kernel_round_trip(value):
    arr = np.array(value, dtype=np.float64)
    got = literal_kernel(value, arr.ndim)
    assert kernel_shape(got) == arr.shape
    assert flatten_kernel(got) == arr.ravel().tolist()
    np.testing.assert_array_equal(np.array(got), arr)


@pytest.mark.parametrize(
    "value,dims,words",
    [
        ([[1, 2], [1, 2, 3]], 2, "row 2 has 3 entries, row 1 has 2"),
        ([[1, 2], [1]], 2, "row 2 has 1 entry, row 1 has 2"),
        ([[[1, 2], [1, 2]], [[1, 2]]], 3, "plane 2 has 1 row, plane 1 has 2"),
        ([[[1, 2]], [[1, 2, 3]]], 3, "plane 2, row 1 has 3 entries; plane 1, row 1 has 2"),
        ([[1, -1]], 1, "is 2-D but the input is 1-D: give 1 level of nesting"),
        ([1, -1], 2, "is 1-D but the input is 2-D: give 2 levels of nesting"),
        ([[[1]]], 2, "is 3-D but the input is 2-D"),
        ([[1], 3], 2, "element [1] is 3, but a row (a list) belongs there"),
        ([[1, [2]]], 2, "entry [0][1] is a list"),
        (5, 2, "single number"),
        ([[1, True]], 2, "entry [0][1] is True, not a number"),
        ([False], 1, "entry [0] is False, not a number"),
        ([[1, 2], ["a", 3]], 2, "entry [1][0] is 'a', not a number"),
        ([[1, float("nan")]], 2, "NaN/inf not allowed"),
        ([float("inf")], 1, "NaN/inf not allowed"),
        ([[1, float("-inf")]], 2, "entry [0][1]"),
        ([[10**400]], 2, "too large"),
        ([], 1, "empty"),
        ([], 2, "the kernel is empty"),
        ([[]], 2, "row 1 is empty"),
        ([[1], []], 2, "row 2 is empty"),
        (None, 2, "not a filter name or a 2-D matrix"),
    ],
)
def test_literal_kernel_errors(value, dims, words):
    with pytest.raises(FilterError) as exc:
        literal_kernel(value, dims)
    assert words in str(exc.value)


# ---------------------------------------------------------------------------
# kernel utilities


def test_kernel_shape_and_flatten():
    assert kernel_shape([[1, 2, 3], [4, 5, 6]]) == (2, 3)
    assert kernel_shape([1.0]) == (1,)
    assert kernel_shape([[[0.0] * 4] * 3] * 2) == (2, 3, 4)
    assert flatten_kernel([[1, 2, 3], [4, 5, 6]]) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    k3 = np.arange(24.0).reshape(2, 3, 4)
    assert flatten_kernel(k3.tolist()) == k3.ravel().tolist()


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-10, 10), min_size=1, max_size=12).filter(
        lambda v: abs(math.fsum(v)) > 1e-3 * max(1.0, math.fsum(abs(x) for x in v))
    )
)
def test_normalize_scales_to_sum_one(values):
    kern = [values]
    got = normalize_kernel(kern)
    assert kernel_shape(got) == (1, len(values))
    assert math.fsum(flatten_kernel(got)) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(np.array(got) * math.fsum(values), np.array(kern), rtol=1e-9, atol=1e-9)
    assert kern == [values]  # the input is left alone


def test_normalize_sharpen_and_box_unchanged():
    assert normalize_kernel(make_filter("sharpen")) == make_filter("sharpen")
    np.testing.assert_allclose(normalize_kernel([[2, 2], [2, 2]]), 0.25)


@pytest.mark.parametrize("kern", [make_filter("sobel_x"), make_filter("laplacian"), [[0.1, 0.2, -0.3]], [[0, 0]]])
def test_normalize_zero_sum_kernel(kern):
    with pytest.raises(FilterError, match="normalize cannot apply.*sums to 0"):
        normalize_kernel(kern)


# ---------------------------------------------------------------------------
# the built `fixed` layer (needs convspec.build; errors until the builder lands)


@pytest.mark.parametrize("case", list(ALL_2D_CASES))
def test_fixed_layer_matches_numpy(case):
    import convspec

    name, kwargs, expected_kernel = ALL_2D_CASES[case]
    layer = {"type": "fixed", "filter": name, "padding": "same", **kwargs}
    model = convspec.build({"input": {"channels": 3, "size": [12, 13]}, "layers": [layer]})
    model.eval()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 12, 13, generator=gen)
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor)
    assert y.shape == (2, 3, 12, 13)
    pads = same_pads(expected_kernel.shape)
    xn = x.double().numpy()
    for n in range(2):
        for c in range(3):
            expected = np_correlate2d(np.pad(xn[n, c], pads), expected_kernel)
            np.testing.assert_allclose(y[n, c].double().numpy(), expected, rtol=1e-5, atol=1e-5)
