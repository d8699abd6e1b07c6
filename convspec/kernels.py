"""The fixed-filter library: named filters and user-written kernels as plain numbers.

A ``fixed`` layer is a convolution whose weights are known before training: a
named filter (``gaussian``, ``sobel_x``, ...) or a literal matrix from the
spec. This module builds and validates those kernels as nested Python lists
of floats, one nesting level per spatial dim (a 2-D kernel is a list of rows).

It deliberately imports neither torch nor numpy: the spec checker uses it to
validate filters and infer shapes, and must stay torch-free and fast. The
builder turns the lists into tensors itself.

Orientation: kernels are applied as cross-correlation, which is what
``torch.nn.functional.conv*d`` computes (the kernel is not flipped). So
``sobel_x`` = ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` responds positively
where the image gets brighter towards larger x (to the right), and ``emboss``
lights edges facing the bottom-right. Index ``[i][j]`` is row ``i`` (the H
axis), column ``j`` (the W axis), the same layout as a conv weight's last
two dims.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Callable

from .limits import float32_problem

__all__ = [
    "separable_factors",
    "SEPARABLE_FROM",
    "FilterError",
    "FilterInfo",
    "NAMED_FILTERS",
    "filter_names",
    "make_filter",
    "literal_kernel",
    "kernel_shape",
    "normalize_kernel",
    "flatten_kernel",
]


class FilterError(ValueError):
    """A filter request that cannot be met; the message is for people (what is wrong, what would be right)."""


@dataclass(frozen=True)
class FilterInfo:
    """What a named filter is and which options it takes."""

    name: str
    description: str  # one line, for `convspec filters`
    dims: tuple[int, ...]  # spatial dims it exists in, e.g. (1, 2, 3) or (2,)
    takes_kernel_size: bool
    takes_sigma: bool


# convspec builds 1-D, 2-D and 3-D stacks only.
SUPPORTED_DIMS: tuple[int, ...] = (1, 2, 3)

# A guard against typos such as `sigma: 1000`, which would otherwise make the
# checker build a multi-million-entry list before anything else is reported.
MAX_KERNEL_ENTRIES = 1_000_000

# The fixed 3x3 tables, (row, column) = (H, W), applied as cross-correlation.
# The *_y filters are the transposes of the *_x ones.
_SOBEL_X = ((-1, 0, 1), (-2, 0, 2), (-1, 0, 1))
_SCHARR_X = ((-3, 0, 3), (-10, 0, 10), (-3, 0, 3))
_PREWITT_X = ((-1, 0, 1), (-1, 0, 1), (-1, 0, 1))


def _transpose(table: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    return tuple(zip(*table))


_TABLES_3X3: dict[str, tuple[tuple[int, ...], ...]] = {
    "sobel_x": _SOBEL_X,
    "sobel_y": _transpose(_SOBEL_X),
    "scharr_x": _SCHARR_X,
    "scharr_y": _transpose(_SCHARR_X),
    "prewitt_x": _PREWITT_X,
    "prewitt_y": _transpose(_PREWITT_X),
    "laplacian": ((0, 1, 0), (1, -4, 1), (0, 1, 0)),
    "sharpen": ((0, -1, 0), (-1, 5, -1), (0, -1, 0)),
    "emboss": ((-2, -1, 0), (-1, 1, 1), (0, 1, 2)),
}


def _info3x3(name: str, description: str) -> FilterInfo:
    return FilterInfo(name, description, dims=(2,), takes_kernel_size=False, takes_sigma=False)


def _info_any_size(name: str, description: str, takes_sigma: bool = False) -> FilterInfo:
    return FilterInfo(name, description, dims=(1, 2, 3), takes_kernel_size=True, takes_sigma=takes_sigma)


NAMED_FILTERS: dict[str, FilterInfo] = {
    "gaussian": _info_any_size(
        "gaussian", "Gaussian blur, sums to 1; kernel_size and/or sigma (int/float or per-dim list)", takes_sigma=True
    ),
    "box": _info_any_size("box", "box (mean) blur, every entry 1/size; kernel_size required"),
    "sobel_x": _info3x3("sobel_x", "3x3 Sobel derivative along x (columns, W): vertical edges"),
    "sobel_y": _info3x3("sobel_y", "3x3 Sobel derivative along y (rows, H): horizontal edges"),
    "scharr_x": _info3x3("scharr_x", "3x3 Scharr derivative along x (W), more rotation-invariant than Sobel"),
    "scharr_y": _info3x3("scharr_y", "3x3 Scharr derivative along y (H), more rotation-invariant than Sobel"),
    "prewitt_x": _info3x3("prewitt_x", "3x3 Prewitt derivative along x (W)"),
    "prewitt_y": _info3x3("prewitt_y", "3x3 Prewitt derivative along y (H)"),
    "laplacian": _info3x3("laplacian", "3x3 Laplacian (4-neighbour), second derivative; sums to 0"),
    "sharpen": _info3x3("sharpen", "3x3 sharpen: identity plus negative Laplacian; sums to 1"),
    "emboss": _info3x3("emboss", "3x3 emboss: relief lit from the bottom-right"),
    "identity": _info_any_size(
        "identity", "a single 1 at the centre (passes input through); kernel_size optional and odd, default 1"
    ),
}


def filter_names(dims: int | None = None) -> list[str]:
    """All named filters in registry order, or only those that exist in `dims` spatial dims."""
    if dims is None:
        return list(NAMED_FILTERS)
    return [name for name, info in NAMED_FILTERS.items() if dims in info.dims]


# ----------------------------------------------------------------------------
# small helpers


def _is_number(x: object) -> bool:
    # bool is an int subclass in Python, but `true` in a kernel is a mistake.
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_seq(x: object) -> bool:
    return isinstance(x, (list, tuple))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _entries(n: int) -> str:
    return "1 entry" if n == 1 else f"{n} entries"


def _nd(dims: int) -> str:
    return f"{dims}-D"


def _check_dims(dims: object) -> int:
    if not isinstance(dims, int) or isinstance(dims, bool) or dims not in SUPPORTED_DIMS:
        raise FilterError(f"dims must be 1, 2 or 3 (1-D, 2-D or 3-D input), got {dims!r}")
    return dims


# ----------------------------------------------------------------------------
# option parsing


def _per_dim(
    value: object,
    dims: int,
    key: str,
    check: Callable[[object, str], float | int],
) -> list:
    """Expand an int/float or a per-dim list to one checked value per spatial dim."""
    if _is_seq(value):
        items = list(value)  # type: ignore[arg-type]
        if len(items) != dims:
            raise FilterError(
                f"{key} {items!r} has {_entries(len(items))} but the input is {_nd(dims)}: "
                f"give {_entries(dims)} or a single value"
            )
        return [check(v, key) for v in items]
    return [check(value, key)] * dims


def _check_size(value: object, key: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise FilterError(f"{key} must be a whole number >= 1, got {value!r}")
    if value < 1:
        raise FilterError(f"{key} must be >= 1, got {value}")
    return value


def _check_sigma(value: object, key: str) -> float:
    if not _is_number(value):
        raise FilterError(f"{key} must be a number > 0, got {value!r}")
    problem = float32_problem(value)  # type: ignore[arg-type]
    if problem:
        raise FilterError(f"{key} {problem}")
    if value <= 0:  # type: ignore[operator]
        raise FilterError(f"{key} must be > 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _check_entries(name: str, sizes: list[int]) -> None:
    total = math.prod(sizes)
    if total > MAX_KERNEL_ENTRIES:
        shape = "x".join(str(s) for s in sizes)
        raise FilterError(
            f"{name} kernel of {shape} = {total} entries is too large "
            f"(at most {MAX_KERNEL_ENTRIES}); use a smaller kernel_size or sigma"
        )


def _unknown_filter(name: object) -> FilterError:
    valid = ", ".join(NAMED_FILTERS)
    if not isinstance(name, str):
        return FilterError(f"a filter name must be a string, got {name!r}; the named filters are: {valid}")
    close = difflib.get_close_matches(name, list(NAMED_FILTERS), n=1)
    if not close:
        # Case slips ("Gaussian") score high anyway; this catches e.g. "SOBEL_X".
        close = difflib.get_close_matches(name.lower(), list(NAMED_FILTERS), n=1)
    if close:
        return FilterError(f"unknown filter {name!r}: did you mean {close[0]!r}?")
    return FilterError(f"unknown filter {name!r}; the named filters are: {valid}")


# ----------------------------------------------------------------------------
# building kernels


def _outer(vectors: list[list[float]]) -> list:
    """Separable product: kernel[i][j][...] = v0[i] * v1[j] * ..."""
    if len(vectors) == 1:
        return list(vectors[0])
    inner = _outer(vectors[1:])
    return [_scale(inner, a) for a in vectors[0]]


def _scale(kernel: object, factor: float) -> list | float:
    if _is_seq(kernel):
        return [_scale(x, factor) for x in kernel]
    return float(kernel) * factor  # type: ignore[arg-type]


def _full(sizes: list[int], value: float) -> list:
    if len(sizes) == 1:
        return [value] * sizes[0]
    return [_full(sizes[1:], value) for _ in range(sizes[0])]


def _gaussian_1d(size: int, sigma: float) -> list[float]:
    """Samples of exp(-x^2 / (2 sigma^2)) at integer offsets from the centre (size-1)/2, summing to 1."""
    centre = (size - 1) / 2
    offsets = [i - centre for i in range(size)]
    # Measure the exponent from the smallest offset so the central samples are
    # exactly 1 before normalising: with a tiny sigma and an even size (no
    # sample at 0) every plain exp() would underflow to 0 and the sum with it.
    nearest = min(x * x for x in offsets)
    values = []
    for x in offsets:
        d = x * x - nearest
        values.append(1.0 if d == 0 else math.exp(-(d / (2.0 * sigma) / sigma)))
    total = math.fsum(values)
    return [v / total for v in values]


def _gaussian(dims: int, kernel_size: object, sigma: object) -> list:
    if kernel_size is None and sigma is None:
        raise FilterError(
            "gaussian needs kernel_size or sigma (or both), e.g. kernel_size: 5, sigma: 1.0; "
            "with only sigma, kernel_size = 2*ceil(3*sigma)+1; with only kernel_size, "
            "sigma = 0.3*((kernel_size-1)/2 - 1) + 0.8"
        )
    sigmas = _per_dim(sigma, dims, "sigma", _check_sigma) if sigma is not None else None
    if kernel_size is not None:
        sizes = _per_dim(kernel_size, dims, "kernel_size", _check_size)
    else:
        assert sigmas is not None
        for s in sigmas:
            if 6 * s + 1 > MAX_KERNEL_ENTRIES:  # also keeps ceil() below away from inf
                raise FilterError(
                    f"gaussian with sigma {s:g} would need a kernel_size over {MAX_KERNEL_ENTRIES} "
                    f"(2*ceil(3*sigma)+1), too large; use a smaller sigma"
                )
        # 3 sigma either side holds 99.7% of the mass.
        sizes = [2 * math.ceil(3 * s) + 1 for s in sigmas]
    _check_entries("gaussian", sizes)
    if sigmas is None:
        # OpenCV's rule for sigma from ksize (getGaussianKernel with sigma <= 0), so a
        # given size blurs as users of cv2.GaussianBlur expect. (OpenCV itself uses fixed
        # tables for odd sizes up to 7, which differ slightly from sampling.)
        sigmas = [0.3 * ((k - 1) * 0.5 - 1) + 0.8 for k in sizes]
    # Each 1-D factor sums to 1, so their product does too.
    return _outer([_gaussian_1d(k, s) for k, s in zip(sizes, sigmas)])


def _box(dims: int, kernel_size: object) -> list:
    if kernel_size is None:
        raise FilterError("box needs kernel_size, e.g. kernel_size: 3 (or one entry per dim, e.g. [3, 5])")
    sizes = _per_dim(kernel_size, dims, "kernel_size", _check_size)
    _check_entries("box", sizes)
    return _full(sizes, 1.0 / math.prod(sizes))


def _identity(dims: int, kernel_size: object) -> list:
    sizes = _per_dim(1 if kernel_size is None else kernel_size, dims, "kernel_size", _check_size)
    even = [k for k in sizes if k % 2 == 0]
    if even:
        raise FilterError(
            f"identity needs an odd kernel_size (it has no centre otherwise), got {kernel_size!r}; "
            f"use e.g. {even[0] - 1} or {even[0] + 1}"
        )
    _check_entries("identity", sizes)
    kernel = _full(sizes, 0.0)
    cell = kernel
    for k in sizes[:-1]:
        cell = cell[k // 2]
    cell[sizes[-1] // 2] = 1.0
    return kernel


def _table_3x3(name: str, kernel_size: object) -> list:
    if kernel_size is not None:
        # Accept kernel_size 3 (or [3, 3]) as a harmless restatement of the size.
        try:
            sizes = _per_dim(kernel_size, 2, "kernel_size", _check_size)
        except FilterError:
            sizes = None
        if sizes != [3, 3]:
            raise FilterError(
                f"{name} is a fixed 3x3 filter and takes no kernel_size (got {kernel_size!r}); "
                f"drop kernel_size, or use gaussian/box for a size of your choice"
            )
    return [[float(v) for v in row] for row in _TABLES_3X3[name]]


def make_filter(
    name: str,
    dims: int = 2,
    kernel_size: int | list[int] | None = None,
    sigma: float | list[float] | None = None,
) -> list:
    """The kernel of a named filter as nested lists of floats, one nesting level per spatial dim.

    `kernel_size` and `sigma` are an int/float or a list with one entry per
    spatial dim. The kernel is applied as cross-correlation (as torch's conv
    does), so it is not flipped. Raises `FilterError` for an unknown name, a
    filter that does not exist in `dims`, an option the filter does not take,
    or a bad value.
    """
    info = NAMED_FILTERS.get(name) if isinstance(name, str) else None
    if info is None:
        raise _unknown_filter(name)
    dims = _check_dims(dims)
    if dims not in info.dims:
        where = " or ".join(_nd(d) for d in info.dims)
        raise FilterError(
            f"{name} is a {where} filter; in {_nd(dims)} use one of: {', '.join(filter_names(dims))}"
        )
    if sigma is not None and not info.takes_sigma:
        takers = [n for n, i in NAMED_FILTERS.items() if i.takes_sigma]
        raise FilterError(
            f"{name} takes no sigma (got {sigma!r}); only {', '.join(takers)} does: drop sigma"
        )
    if name == "gaussian":
        return _gaussian(dims, kernel_size, sigma)
    if name == "box":
        return _box(dims, kernel_size)
    if name == "identity":
        return _identity(dims, kernel_size)
    return _table_3x3(name, kernel_size)


# ----------------------------------------------------------------------------
# literal kernels

# What a container at a given remaining depth is called: a 2-D kernel is rows
# of entries, a 3-D kernel planes of rows.
_CONTAINER = {1: "row", 2: "plane"}
_ITEMS = {1: "entries", 2: "rows", 3: "planes"}


def _index(path: tuple[int, ...]) -> str:
    return "".join(f"[{i}]" for i in path)


def _label(path: tuple[int, ...], dims: int) -> str:
    """People's name for the container at `path`: 'row 2', 'plane 1, row 3' (1-based counts)."""
    parts = []
    for depth, i in enumerate(path):
        remaining = dims - depth - 1
        parts.append(f"{_CONTAINER.get(remaining, 'slice')} {i + 1}")
    return ", ".join(parts)


def _first_path_depth(value: object) -> tuple[int, object]:
    """Nesting depth along value[0][0]..., and what sits at the end of that path."""
    depth = 0
    while _is_seq(value) and len(value) > 0:  # type: ignore[arg-type]
        value = value[0]  # type: ignore[index]
        depth += 1
    return depth, value


def _example(dims: int) -> str:
    return {1: "[1, -1]", 2: "[[1, -1]]", 3: "[[[1, -1]]]"}.get(dims, "nested lists")


def _check_matrix(value: object, dims: int) -> None:
    """FilterError unless `value` is a non-empty list whose first path (value[0][0]...) is `dims` levels deep.

    A depth mismatch is the likeliest slip (a 2-D matrix for a 1-D input), so it is named as
    such rather than as the first misplaced entry.
    """
    levels = _plural(dims, "level")
    if not _is_seq(value):
        if _is_number(value):
            raise FilterError(
                f"the kernel is a single number ({value!r}), not a {_nd(dims)} matrix: "
                f"give {levels} of nesting, e.g. {_example(dims)}"
            )
        raise FilterError(
            f"the kernel is {value!r}, not a filter name or a {_nd(dims)} matrix "
            f"(nested lists of numbers, {levels} deep, e.g. {_example(dims)})"
        )
    if len(value) == 0:  # type: ignore[arg-type]
        raise FilterError(f"the kernel is empty: give at least one entry, e.g. {_example(dims)}")
    depth, leaf = _first_path_depth(value)
    if _is_number(leaf) and depth != dims:
        raise FilterError(
            f"the kernel is {_nd(depth)} but the input is {_nd(dims)}: "
            f"give {levels} of nesting, e.g. {_example(dims)}"
        )


def _first_path_shape(value: object, dims: int) -> list[int]:
    """The lengths along value[0][0]... (at most `dims` of them): what every container must match."""
    shape: list[int] = []
    probe: object = value
    for _ in range(dims):
        if not _is_seq(probe) or len(probe) == 0:  # type: ignore[arg-type]
            break
        shape.append(len(probe))  # type: ignore[arg-type]
        probe = probe[0]  # type: ignore[index]
    return shape


def _literal_entry(node: object, path: tuple[int, ...], dims: int) -> float:
    """The entry at `path` as a float; FilterError unless it is a number a float32 weight can hold."""
    if _is_seq(node):
        raise FilterError(
            f"entry {_index(path)} is a list, but the kernel is {_nd(dims)}: "
            f"entries must be numbers ({_plural(dims, 'level')} of nesting)"
        )
    if not _is_number(node):
        why = " (true/false are not numbers here)" if isinstance(node, bool) else ""
        raise FilterError(f"entry {_index(path)} is {node!r}, not a number{why}")
    problem = float32_problem(node)  # type: ignore[arg-type]  # entries become float32 weights
    if problem:
        raise FilterError(f"entry {_index(path)} {problem}")
    return float(node)  # type: ignore[arg-type]


def _check_container(node: object, path: tuple[int, ...], dims: int, shape: list[int]) -> None:
    """FilterError unless the container at `path` is a non-empty list as long as the first one at its depth."""
    depth = len(path)
    what = _label(path, dims) if path else "the kernel"
    remaining = dims - depth
    if not _is_seq(node):
        inner = _CONTAINER.get(remaining, "slice")
        raise FilterError(
            f"element {_index(path)} is {node!r}, but a {inner} (a list) belongs there: "
            f"the kernel is {_nd(dims)}, so every entry sits {_plural(dims, 'level')} deep"
        )
    if len(node) == 0:  # type: ignore[arg-type]
        raise FilterError(f"{what} is empty: every {_CONTAINER.get(remaining, 'slice')} needs at least one entry")
    if depth < len(shape) and len(node) != shape[depth]:  # type: ignore[arg-type]
        first = _label((0,) * depth, dims)
        items = _ITEMS.get(remaining, "items")
        if len(node) == 1:  # type: ignore[arg-type]
            items = items[:-3] + "y" if items.endswith("ies") else items[:-1]
        # "plane 2, row 1 has ..." already holds a comma, so split the two halves with ";".
        sep = "; " if "," in first else ", "
        raise FilterError(
            f"{what} has {len(node)} {items}{sep}{first} has {shape[depth]}: "  # type: ignore[arg-type]
            f"the kernel must be rectangular"
        )


def _literal_floats(node: object, path: tuple[int, ...], dims: int, shape: list[int]) -> list | float:
    """The part of the kernel at `path`, checked, as nested lists of floats (depth first, so the first fault is named)."""
    if len(path) == dims:
        return _literal_entry(node, path, dims)
    _check_container(node, path, dims, shape)
    return [_literal_floats(child, path + (i,), dims, shape) for i, child in enumerate(node)]  # type: ignore[arg-type]


def literal_kernel(value: object, dims: int) -> list:
    """Validate a user-written kernel and return it as nested lists of floats.

    It must be nested lists exactly `dims` levels deep, rectangular and
    non-empty, every entry a finite int or float (a bool is not a number
    here). Messages count rows and planes from 1 ("row 2 has 3 entries, row 1
    has 2") and give entry positions as 0-based indices ("entry [1][0]"), as
    in the spec's YAML lists. Raises `FilterError` saying what is wrong.
    """
    dims = _check_dims(dims)
    _check_matrix(value, dims)
    result = _literal_floats(value, (), dims, _first_path_shape(value, dims))
    assert isinstance(result, list)
    return result


# ----------------------------------------------------------------------------
# kernel utilities


def kernel_shape(kernel: list) -> tuple[int, ...]:
    """The shape of a (rectangular) nested list, e.g. (3, 3); () for a bare number."""
    shape = []
    node: object = kernel
    while _is_seq(node):
        shape.append(len(node))  # type: ignore[arg-type]
        if len(node) == 0:  # type: ignore[arg-type]
            break
        node = node[0]  # type: ignore[index]
    return tuple(shape)


def flatten_kernel(kernel: list) -> list[float]:
    """All entries in row-major order (last index fastest), as a torch reshape would read them."""
    out: list[float] = []

    def visit(node: object) -> None:
        if _is_seq(node):
            for child in node:  # type: ignore[union-attr]
                visit(child)
        else:
            out.append(float(node))  # type: ignore[arg-type]

    visit(kernel)
    return out


def normalize_kernel(kernel: list) -> list:
    """The kernel scaled to sum to 1 (same nesting). FilterError if it sums to 0, as edge filters do."""
    entries = flatten_kernel(kernel)
    total = math.fsum(entries)
    magnitude = math.fsum(abs(v) for v in entries)
    # Relative test: [0.1, 0.2, -0.3] sums to ~5e-17 in floats and is a zero-sum kernel too.
    if magnitude == 0 or abs(total) <= 1e-12 * magnitude:
        raise FilterError(
            "normalize cannot apply: the kernel sums to 0 (as edge and derivative filters such as "
            "sobel_x or laplacian do), so it cannot be scaled to sum 1; drop normalize"
        )
    return _scale(kernel, 1.0 / total)  # type: ignore[return-value]


SEPARABLE_FROM = 5  # kernels at least this wide run as 1-D passes; below, one pass is as fast


def separable_factors(kernel: list, rtol: float = 1e-6) -> list[list[float]] | None:
    """1-D kernels whose outer product is `kernel` (to `rtol`), one per dim, or None if it is not separable.

    Gaussian and box filters are separable: convolving with them as one 1-D pass per dim
    costs k + k multiply-adds per output instead of k * k.
    """
    shape = kernel_shape(kernel)
    if len(shape) < 2:
        return None
    flat = flatten_kernel(kernel)
    peak_at = max(range(len(flat)), key=lambda i: abs(flat[i]))
    pivot = flat[peak_at]
    if pivot == 0:
        return None
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
    peak = [(peak_at // strides[d]) % shape[d] for d in range(len(shape))]
    factors = []
    for axis in range(len(shape)):
        base = peak_at - peak[axis] * strides[axis]
        factors.append([flat[base + i * strides[axis]] for i in range(shape[axis])])
    # kernel = f0 (x) f1 (x) ... / pivot^(dims - 1): fold the scale into the first factor
    factors[0] = [v / pivot ** (len(shape) - 1) for v in factors[0]]
    tolerance = rtol * abs(pivot)
    for index, value in enumerate(flat):
        product = 1.0
        for axis, factor in enumerate(factors):
            product *= factor[(index // strides[axis]) % shape[axis]]
        if abs(product - value) > tolerance:
            return None
    return factors

