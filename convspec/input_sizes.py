"""Which input sizes a spec takes, found with the checker's own arithmetic. No torch.

A fully convolutional network takes many sizes, but not all: a U-Net whose skip
connections concatenate an encoder's output with an upsampled decoder's needs
sizes that survive every downsampling evenly. Spatial axes are independent in
every shape rule (a join compares them one by one), so each axis is searched on
its own, the others held at a size that checks: sizes 1, 2, 3, ... are traced
(`trace.check_spec`) until two periods past the smallest valid one, a period
being at most the largest effective stride on that axis (one period finds the
step, the next confirms it). The valid sizes found
are summarised as the smallest and a step, the form every stride, pooling and
join rule gives: `smallest + k * step` for k >= 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .report import Report
from .schema import Spec

AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}
MAX_SEARCH = 1024  # sizes traced per axis at most: a bound on the time, not on the answer's form
NEAR = 32  # sizes this close to the one asked for are tried as the reference, then powers of two
PERIODS_PAST_SMALLEST = 2  # one period to find the step, one more to confirm it


@dataclass(frozen=True)
class AxisSizes:
    """The valid sizes of one spatial axis: `smallest + k * step` (k >= 0), or `smallest` alone when `fixed`.

    `searched` is the largest size traced: the summary holds up to there (and, for the form
    the shape rules give, beyond). `irregular` lists the valid sizes found when they follow
    no single step; `smallest` is None when no size up to `searched` is valid.
    """

    axis: str
    smallest: int | None
    step: int
    fixed: bool
    searched: int
    irregular: tuple[int, ...] = ()

    def allows(self, size: int) -> bool:
        """Whether the summary calls `size` valid."""
        if self.smallest is None or size < self.smallest:
            return False
        if self.irregular:
            return size in self.irregular
        if self.fixed:
            return size == self.smallest
        return (size - self.smallest) % self.step == 0

    def describe(self) -> str:
        """'multiples of 8, at least 16', 'at least 5', 'any size', 'only 32', '3 + 4k (3, 7, 11, ...)'."""
        m, p = self.smallest, self.step
        if m is None:
            return f"no size up to {self.searched}"
        if self.irregular:
            return f"only {', '.join(map(str, self.irregular[:6]))}{', ...' if len(self.irregular) > 6 else ''} (up to {self.searched})"
        if self.fixed:
            return f"only {m}"
        if p == 1:
            return "any size" if m == 1 else f"at least {m}"
        if m % p == 0:
            return f"multiples of {p}" if m == p else f"multiples of {p}, at least {m}"
        return f"{m} + {p}k ({m}, {m + p}, {m + 2 * p}, ...)"


@dataclass(frozen=True)
class InputSizes:
    """The valid size of each spatial axis of a spec's input (`AxisSizes`, in NCHW order)."""

    axes: tuple[AxisSizes, ...]

    def allows(self, sizes: tuple[int, ...]) -> bool:
        return all(axis.allows(size) for axis, size in zip(self.axes, sizes))

    def describe(self) -> str:
        """One line, axes with the same rule together: 'H and W: multiples of 8, at least 16'."""
        groups: dict[str, list[str]] = {}
        for axis in self.axes:
            groups.setdefault(axis.describe(), []).append(axis.axis)
        parts = []
        for rule, names in groups.items():
            joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            parts.append(f"{joined}: {rule}")
        return "; ".join(parts)


def _valid(spec: Spec, batch: int, sizes: tuple[int, ...]) -> bool:
    from .trace import check_spec

    return not check_spec(spec, (batch, spec.input.channels, *sizes)).errors


def _largest_stride(report: Report, axis: int) -> int:
    """The largest effective stride on `axis` (rounded up): a step of the valid sizes divides a multiple of it."""
    strides = [
        layer.stride[axis]
        for layer in report.walk()
        if len(layer.stride) > axis and layer.stride[axis] is not None
        and layer.output_shape is not None and len(layer.output_shape) > 2 + axis and (layer.output_shape[2 + axis] or 0) > 1
    ]  # a global pool's "stride" is the whole input: past it no size is left to divide
    return max([1, *(math.ceil(s) for s in strides)])


def _summary(name: str, valid: list[int], searched: int) -> AxisSizes:
    if not valid:
        return AxisSizes(name, None, 1, False, searched)
    smallest = valid[0]
    if len(valid) == 1:
        return AxisSizes(name, smallest, 1, True, searched)
    step = math.gcd(*(v - smallest for v in valid[1:]))
    if valid == list(range(smallest, searched + 1, step)):
        return AxisSizes(name, smallest, step, False, searched)
    return AxisSizes(name, smallest, step, False, searched, tuple(valid))


def _search_axis(fits, stride: int) -> tuple[list[int], int]:
    """The sizes 1, 2, ... for which `fits(size)`, up to two periods of `stride` past the first; and the last size tried."""
    valid: list[int] = []
    for size in range(1, MAX_SEARCH + 1):
        if valid and size > valid[0] + PERIODS_PAST_SMALLEST * stride:
            return valid, size - 1
        if fits(size):
            valid.append(size)
    return valid, MAX_SEARCH


def input_sizes(spec: Spec, reference: tuple[int, ...] | None = None) -> InputSizes | None:
    """The input sizes `spec` takes (`InputSizes`), or None when no size was found to check.

    `reference` is a full input shape (NCHW...); by default the spec's own size. When it does not
    check, the first that does among sizes equal on every axis (within NEAR of it, nearest
    first, then powers of two) stands in; when none does, None. Each axis is
    searched with the others held at that size.
    """
    batch = spec.input.batch
    if reference is not None:
        sizes = tuple(reference[2:])
    elif spec.input.size is not None:
        sizes = tuple(spec.input.size)
    else:
        sizes = None
    if sizes is None or not _valid(spec, batch, sizes):
        near = max(sizes or (64,))
        # nearest first: a reference as large as the one asked for shows every stride
        candidates = sorted({*(2**k for k in range(11)), *range(max(1, near - NEAR), near + NEAR + 1)}, key=lambda c: (abs(c - near), c))
        sizes = next(((s,) * spec.dims for s in candidates if _valid(spec, batch, (s,) * spec.dims)), None)
        if sizes is None:  # a fault that no size mends (groups, channels, ...), or sizes of an odd form
            return None
    from .trace import check_spec

    report = check_spec(spec, (batch, spec.input.channels, *sizes))
    axes = []
    for index, name in enumerate(AXIS_NAMES[spec.dims]):
        def fits(size: int, index: int = index) -> bool:
            return _valid(spec, batch, sizes[:index] + (size,) + sizes[index + 1 :])

        valid, searched = _search_axis(fits, _largest_stride(report, index))
        axes.append(_summary(name, valid, searched))
    return InputSizes(tuple(axes))


__all__ = ["input_sizes", "InputSizes", "AxisSizes"]
