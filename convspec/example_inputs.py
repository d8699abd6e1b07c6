"""The input shapes (NCHW) an export traces and verification runs at: the example, other batches, other spatial sizes; no torch."""

from __future__ import annotations

from .errors import ExportError, Problem
from .schema import Spec
from .trace import check_spec

EXPORT_BATCH = 2  # the traced batch; verification runs at other batch sizes, so a baked-in batch is caught
VERIFY_BATCHES = (1, 3)
SPATIAL_CANDIDATES = (64, 96, 128, 224, 48, 32, 256, 16)


def example_shape(spec: Spec, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """An input shape (NCHW) the spec accepts: given, from input.size, or the first of SPATIAL_CANDIDATES the checker accepts."""
    if input_shape is not None:
        return input_shape
    if spec.input.size is not None:
        return (EXPORT_BATCH, spec.input.channels, *spec.input.size)
    for size in SPATIAL_CANDIDATES:
        shape = (EXPORT_BATCH, spec.input.channels, *(size,) * spec.dims)
        if check_spec(spec, shape).valid:
            return shape
    raise ExportError(
        [Problem("no example input size works for this spec; give input.size or --input", spec.source.locate(("input",)))]
    )


def spatial_variants(spec: Spec, base: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Up to two other valid input shapes (batch 1) to verify a dynamic-size model at: base +1, +7, -5, +32 in every dim."""
    variants = []
    for delta in (1, 7, -5, 32):
        shape = (1, base[1], *(max(1, s + delta) for s in base[2:]))
        if shape not in variants and check_spec(spec, shape).valid:
            variants.append(shape)
        if len(variants) == 2:
            break
    return variants
