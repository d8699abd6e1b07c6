"""Typed plans: what a shape rule hands the builder, resolved and frozen. No torch.

A rule (`shapes_*.py`) returns a plan with everything its builder (`builder.py`)
needs; a builder reads its plan and nothing else (not the pydantic layer, not
the report's figures). A plan holds plain numbers, tuples and the parsed
initialisers, so it can be compared, printed and tested without torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .geometry import ConvGeometry
from .schema_values import Init


@dataclass(frozen=True)
class NormPlan:
    """A norm over `channels`: kind batch / instance / group / layer; `flat` input (B, F) gets the 1-D form; its eps and momentum."""

    kind: str
    channels: int
    dims: int
    groups: int | None = None
    flat: bool = False
    eps: float | None = None  # None: PyTorch's default (1e-5)
    momentum: float | None = None  # batch norm only; None: PyTorch's default (0.1)


@dataclass(frozen=True)
class ActPlan:
    """An activation by name (`schema_values.ACTIVATIONS`); `negative_slope` for leaky_relu only."""

    fn: str
    negative_slope: float | None = None


@dataclass(frozen=True)
class InitPlan:
    """The spec's `init:` for a weight and a bias (None: the module's default initialisation)."""

    weight: Init | None = None
    bias: Init | None = None


@dataclass(frozen=True)
class ConvPlan:
    """A conv (or transposed conv) followed by an optional norm and activation."""

    geometry: ConvGeometry
    norm: NormPlan | None = None
    act: ActPlan | None = None
    init: InitPlan | None = None
    trainable: bool = True


@dataclass(frozen=True)
class SeparablePlan:
    """Depthwise then pointwise conv; `init` applies to both stages' weights."""

    depthwise: ConvPlan
    pointwise: ConvPlan
    init: InitPlan | None = None
    trainable: bool = True


@dataclass(frozen=True)
class DynamicPlan:
    """A dynamic conv (CondConv): `experts` kernels of `geometry` mixed per sample, then norm and act."""

    geometry: ConvGeometry
    experts: int
    reduction: int
    temperature: float
    norm: NormPlan | None = None
    act: ActPlan | None = None
    init: InitPlan | None = None
    trainable: bool = True


@dataclass(frozen=True)
class FixedPlan:
    """A conv with a known kernel (nested lists of floats, shape `geometry.kernel_size`).

    `passes` holds one 1-D kernel per spatial dim when the frozen kernel is their outer product
    and running them one after the other saves work.
    """

    geometry: ConvGeometry
    kernel: list
    passes: tuple[tuple[float, ...], ...] | None = None
    trainable: bool = False


@dataclass(frozen=True)
class PoolPlan:
    """nn.MaxPoolNd / AvgPoolNd: `op` max or avg, per-dim kernel, stride and (symmetric) padding."""

    op: str
    dims: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    ceil_mode: bool = False


@dataclass(frozen=True)
class AdaptivePoolPlan:
    """Adaptive max / avg pooling to a fixed spatial `size` (length = spatial dims)."""

    op: str
    size: tuple[int, ...]


@dataclass(frozen=True)
class UpsamplePlan:
    """nn.Upsample to a fixed `size`, or by per-dim `scale` factors."""

    mode: str
    size: tuple[int, ...] | None = None
    scale: tuple[float, ...] | None = None
    align_corners: bool | None = None


@dataclass(frozen=True)
class LinearPlan:
    """nn.Linear(in_features, out_features)."""

    in_features: int
    out_features: int
    bias: bool = True
    init: InitPlan | None = None
    trainable: bool = True


@dataclass(frozen=True)
class ShufflePlan:
    """A channel shuffle in `groups` groups (ShuffleNet)."""

    groups: int


@dataclass(frozen=True)
class SplitPlan:
    """Consecutive channel parts of `sizes` channels each."""

    sizes: tuple[int, ...]


@dataclass(frozen=True)
class DropoutPlan:
    """nn.Dropout with probability `p`."""

    p: float


@dataclass(frozen=True)
class JoinPlan:
    """`add` (element-wise sum, then `act`), `mul` (element-wise product, broadcasting size-1 dims) or `concat` (along channels)."""

    op: str
    act: ActPlan | None = None


@dataclass(frozen=True)
class ContainerPlan:
    """A block, repeat or residual: its layers are the report's children (their `role` says which is which)."""

    act: ActPlan | None = None  # a residual's activation after the sum
    drop_path: float = 0.0  # a residual's stochastic depth: the probability of dropping its branch, per sample, in training


@dataclass(frozen=True)
class EmptyPlan:
    """A kind whose module needs no numbers (identity, flatten, act-free pass-throughs)."""


@dataclass(frozen=True)
class GlobalPoolPlan:
    """Max / avg pooling over every spatial position of a `dims`-D map, to size 1."""

    op: str
    dims: int


def act_plan(fn: str | None, negative_slope: float | None = None) -> ActPlan | None:
    """The ActPlan of an activation name, or None for no activation."""
    return None if fn is None else ActPlan(fn, negative_slope)


def init_plan(init) -> InitPlan | None:
    """The InitPlan of a layer's `init:` (an `InitSpec` or None)."""
    if init is None or (init.weight is None and init.bias is None):
        return None
    return InitPlan(init.weight, init.bias)


__all__ = [
    "ActPlan", "AdaptivePoolPlan", "ContainerPlan", "ConvPlan", "DropoutPlan", "DynamicPlan", "EmptyPlan", "FixedPlan",
    "GlobalPoolPlan", "InitPlan", "JoinPlan", "LinearPlan", "NormPlan", "PoolPlan", "SeparablePlan", "ShufflePlan",
    "SplitPlan", "UpsamplePlan", "act_plan", "init_plan",
]  # fmt: skip
