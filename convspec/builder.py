"""Plan -> nn.Module. A pure function of the checked report: one builder per layer kind.

Each kind's builder (named in its `kinds.Kind` declaration) reads the frozen plan its
shape rule made (`plans.py`) and chooses torch modules; it computes no shapes and never
reads the pydantic layer. Child modules carry the spec's layer names, so state_dict keys
follow the spec.

Modules are made on the meta device and then given memory and initialised in one pass
(`initialize`): with a seed, from a local `torch.Generator`, so a seeded build is the
same in any thread and leaves torch's global random state alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import kernels
from .budget import enforce_budget, memory_budget
from .errors import BudgetError, InputError, first_line
from .graph import Add, Concat, Graph, Mul, Network, Residual
from .kinds import registry
from .layers import ChannelLayerNorm, ConvNormAct, conv_norm_act
from .layers_kernels import DynamicConv, FixedConv
from .layers_resample import ADAPTIVE_POOLS, AdaptivePool, MaxPool1d, Upsample
from .layers_wiring import ChannelShuffle, ChannelSplit, StochasticDepth
from .plans import (
    ActPlan, AdaptivePoolPlan, ContainerPlan, ConvPlan, DropoutPlan, DynamicPlan, FixedPlan, GlobalPoolPlan, InitPlan, JoinPlan,
    LinearPlan, NormPlan, PoolPlan, SeparablePlan, ShufflePlan, SplitPlan, UpsamplePlan,
)  # fmt: skip
from .fileio import check_readable
from .limits import choice_argument, path_argument, seed_argument
from .report import LayerReport, Report
from .schema_values import MEMORY_FORMATS, Init
from .trace import load_and_check

_POOL = {"max": (MaxPool1d, nn.MaxPool2d, nn.MaxPool3d), "avg": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)}
_BATCH_NORM = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_INSTANCE_NORM = (nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)

ACTIVATIONS: dict[str, Callable[[float | None], nn.Module]] = {
    "relu": lambda slope: nn.ReLU(),
    "relu6": lambda slope: nn.ReLU6(),
    "leaky_relu": lambda slope: nn.LeakyReLU(0.01 if slope is None else slope),
    "silu": lambda slope: nn.SiLU(),
    "gelu": lambda slope: nn.GELU(),
    "sigmoid": lambda slope: nn.Sigmoid(),
    "tanh": lambda slope: nn.Tanh(),
    "hardswish": lambda slope: nn.Hardswish(),
    "mish": lambda slope: nn.Mish(),
    "hardsigmoid": lambda slope: nn.Hardsigmoid(),
    "hardtanh": lambda slope: nn.Hardtanh(),
}


def make_act(plan: ActPlan | None) -> nn.Module | None:
    return None if plan is None else ACTIVATIONS[plan.fn](plan.negative_slope)


def make_norm(plan: NormPlan | None) -> nn.Module | None:
    """The norm of `plan`; flat input (B, F) gets the 1-D / feature-wise form."""
    if plan is None:
        return None
    kind, channels, dims = plan.kind, plan.channels, plan.dims
    eps = {} if plan.eps is None else {"eps": plan.eps}  # else the module's own default
    if kind == "batch":
        momentum = {} if plan.momentum is None else {"momentum": plan.momentum}
        return (nn.BatchNorm1d if plan.flat else _BATCH_NORM[dims - 1])(channels, **eps, **momentum)
    if kind == "instance":
        return _INSTANCE_NORM[dims - 1](channels, **eps)
    if kind == "group":
        return nn.GroupNorm(plan.groups, channels, **eps)
    if kind == "layer":
        # over channels at each position (as ConvNeXt's LayerNorm2d); on flat input, over features
        return nn.LayerNorm(channels, **eps) if plan.flat else ChannelLayerNorm(channels, **eps)
    raise ValueError(f"unknown norm {kind!r}")


# ---------------------------------------------------------------- initialisation


_NAMED_INITS: dict[str, Callable[..., Any]] = {
    "kaiming_normal": nn.init.kaiming_normal_,
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "orthogonal": nn.init.orthogonal_,
}


@torch.no_grad()
def apply_init(tensor: torch.Tensor, init: Init | None, dims: int, generator: torch.Generator | None = None) -> None:
    """Set `tensor` in place as the spec's `init` says (the checker has already matched shapes).

    Random initialisers draw from `generator` (torch's global generator when None).
    """
    if init is None or init.kind == "default":
        return
    if init.kind in _NAMED_INITS:
        _NAMED_INITS[init.kind](tensor, generator=generator)
    elif init.kind == "zeros":
        nn.init.zeros_(tensor)
    elif init.kind == "ones":
        nn.init.ones_(tensor)
    elif init.kind == "constant":
        nn.init.constant_(tensor, init.args[0])
    elif init.kind == "uniform":
        nn.init.uniform_(tensor, *init.args, generator=generator)
    elif init.kind == "normal":
        nn.init.normal_(tensor, *init.args, generator=generator)
    elif init.kind == "filter":
        args = init.filter or {}
        values = kernels.make_filter(args["filter"], dims, args.get("kernel_size"), args.get("sigma"))
        tensor.copy_(torch.tensor(values, dtype=tensor.dtype).expand_as(tensor))
    elif init.kind == "array":
        tensor.copy_(torch.tensor(init.array, dtype=tensor.dtype).reshape(tensor.shape))
    else:
        raise ValueError(f"unknown initialiser {init.kind!r}")


def _modules_outside(model: nn.Module, kept: list[nn.Module]) -> Iterator[nn.Module]:
    """`model.modules()` (depth first, each once) without the subtrees of `kept`."""
    skip, seen, stack = {id(m) for m in kept}, set(), [model]
    while stack:
        module = stack.pop()
        if id(module) in skip or id(module) in seen:
            continue
        seen.add(id(module))
        yield module
        stack.extend(reversed([child for child in module.children()]))


@torch.no_grad()
def _default_init(model: nn.Module, generator: torch.Generator | None, kept: list[nn.Module] | None = None) -> None:
    """Every module's own initialisation, as torch's `reset_parameters`, drawing from `generator`;
    the subtrees in `kept` (user kinds' modules, which keep their own) are passed over."""
    for module in _modules_outside(model, kept) if kept else model.modules():
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)):
            # nn.ConvNd / nn.Linear.reset_parameters, with the generator passed through
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            if module.bias is not None:
                fan_in, _ = nn.init._calculate_fan_in_and_fan_out(module.weight)
                bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        elif isinstance(module, DynamicConv):
            module.reset_parameters(generator)
        elif hasattr(module, "reset_parameters"):  # norms, fixed kernels: nothing random
            module.reset_parameters()
        elif any(True for _ in module.parameters(recurse=False)) or any(True for _ in module.buffers(recurse=False)):
            raise TypeError(f"{type(module).__name__} holds tensors but has no reset_parameters(); convspec cannot initialise it")


@dataclass
class BuildContext:
    """One build: the spatial dims, and the spec's `init:` entries, applied once the weights have memory."""

    dims: int
    inits: list[Callable[[torch.Generator | None], None]] = field(default_factory=list)
    seed: int | None = None  # the build's seed: user kinds' modules are built from seeds derived from it
    spec: Any = None  # the Spec, to locate a fault of a user kind's module
    own_init: list[nn.Module] = field(default_factory=list)  # user kinds' modules: the default initialisation passes over them

    def nodes(self, reports: list[LayerReport]) -> list[tuple[str, nn.Module, list[str]]]:
        """(name, module, sources) for each layer of a list, as `Graph` takes them."""
        return [(r.name, build_layer(r, self), r.sources) for r in reports]

    def init_later(self, tensor_of: Callable[[], torch.Tensor | None], init: Init | None) -> None:
        if init is not None:
            self.inits.append(lambda generator: _init_if_present(tensor_of(), init, self.dims, generator))


def _init_if_present(tensor: torch.Tensor | None, init: Init, dims: int, generator: torch.Generator | None) -> None:
    if tensor is not None:
        apply_init(tensor, init, dims, generator)


def _init_conv_later(ctx: BuildContext, conv: nn.Module, init: InitPlan | None) -> None:
    if init is not None:
        ctx.init_later(lambda: conv.weight, init.weight)
        ctx.init_later(lambda: conv.bias, init.bias)


def _freeze(module: nn.Module, trainable: bool) -> nn.Module:
    if not trainable:
        module.requires_grad_(False)
    return module


def build_layer(report: LayerReport, ctx: BuildContext) -> nn.Module:
    """The module of one checked layer, by its kind's builder."""
    return registry[report.type].resolve_builder()(report.plan, report, ctx)


# ---------------------------------------------------------------- builders, one per kind family


def build_conv(plan: ConvPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    module = conv_norm_act(plan.geometry, make_norm(plan.norm), make_act(plan.act))
    _init_conv_later(ctx, module.conv, plan.init)
    return _freeze(module, plan.trainable)


def build_separable(plan: SeparablePlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    stages = [conv_norm_act(p.geometry, make_norm(p.norm), make_act(p.act)) for p in (plan.depthwise, plan.pointwise)]
    for stage in stages:  # named initialisers apply to both stages' weights
        _init_conv_later(ctx, stage.conv, plan.init)
    return _freeze(Separable(*stages), plan.trainable)


class Separable(nn.Sequential):
    """Depthwise then pointwise; children `depthwise` and `pointwise`, each a `ConvNormAct`."""

    def __init__(self, depthwise: nn.Module, pointwise: nn.Module):
        super().__init__()
        self.depthwise = depthwise
        self.pointwise = pointwise


def build_dynamic(plan: DynamicPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    g = plan.geometry
    conv = DynamicConv(
        g.dims, g.in_channels, g.out_channels, g.kernel_size, g.stride, g.padding, g.dilation, g.groups, g.bias,
        g.padding_mode, plan.experts, plan.reduction, plan.temperature, auto_pad=g.auto_pad,
    )
    if plan.init is not None:
        for expert in range(plan.experts):  # each expert initialised like a conv of its own
            ctx.init_later(lambda e=expert: conv.weight[e], plan.init.weight)
            ctx.init_later(lambda e=expert: conv.bias[e] if conv.bias is not None else None, plan.init.bias)
    return _freeze(ConvNormAct(conv, make_norm(plan.norm), make_act(plan.act)), plan.trainable)


def build_fixed(plan: FixedPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return FixedConv(plan.geometry, plan.kernel, trainable=plan.trainable, passes=plan.passes)


def build_norm(plan: NormPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return make_norm(plan)


def build_act(plan: ActPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return make_act(plan)


def build_pool(plan: PoolPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return _POOL[plan.op][plan.dims - 1](plan.kernel_size, plan.stride, plan.padding, ceil_mode=plan.ceil_mode)


def build_adaptive_pool(plan: AdaptivePoolPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return AdaptivePool(plan.op, plan.size)


def build_global_pool(plan: GlobalPoolPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return ADAPTIVE_POOLS[plan.op][plan.dims - 1](1)


def build_upsample(plan: UpsamplePlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    if plan.size is not None:
        return Upsample(size=plan.size, mode=plan.mode, align_corners=plan.align_corners)
    return Upsample(scale_factor=plan.scale, mode=plan.mode, align_corners=plan.align_corners)


def build_shuffle(plan: ShufflePlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return ChannelShuffle(plan.groups)


def build_split(plan: SplitPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return ChannelSplit(plan.sizes)


def build_dropout(plan: DropoutPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return nn.Dropout(plan.p)


def build_flatten(plan: Any, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return nn.Flatten(1)


def build_identity(plan: Any, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return nn.Identity()


def build_linear(plan: LinearPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    module = nn.Linear(plan.in_features, plan.out_features, bias=plan.bias)
    _init_conv_later(ctx, module, plan.init)
    return _freeze(module, plan.trainable)


def build_join(plan: JoinPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    if plan.op == "mul":
        return Mul()
    return Add(make_act(plan.act)) if plan.op == "add" else Concat()


def build_residual(plan: ContainerPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    main = [c for c in report.children if c.role != "shortcut"]
    shortcut = next((c for c in report.children if c.role == "shortcut"), None)
    drop_path = StochasticDepth(plan.drop_path) if plan.drop_path else None
    return Residual(ctx.nodes(main), Graph(ctx.nodes(shortcut.children)) if shortcut else None, make_act(plan.act), drop_path)


def build_repeat(plan: ContainerPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return nn.Sequential(*(Graph(ctx.nodes(copy.children)) for copy in report.children))


def build_block(plan: ContainerPlan, report: LayerReport, ctx: BuildContext) -> nn.Module:
    return Graph(ctx.nodes(report.children))


# ---------------------------------------------------------------- the API


def build_from_report(
    report: Report, seed: int | None = None, max_memory: int | None = None, memory_format: str | None = None
) -> nn.Module:
    """The module for an already checked spec; refused (BudgetError) before allocation if its weights would not fit.

    With `seed` (an int from 0 to 2**64 - 1), weights come from a local generator seeded with it: the
    same in every call and thread, and torch's global random state is left as it was. Without, from
    torch's global RNG. `max_memory` is bytes or a size string such as "8GB" (`budget.memory_budget`);
    `memory_format` is "contiguous" or "channels_last" (None: the spec's). InputError for an argument
    outside these; every argument is checked before anything is built.
    """
    if not isinstance(report, Report):
        raise InputError(f"build_from_report takes the Report of convspec.check, not {type(report).__name__}")
    seed = seed_argument(seed)
    if memory_format is not None:
        memory_format = choice_argument("memory_format", memory_format, MEMORY_FORMATS)
    report.raise_for_errors()
    enforce_budget(report, max_memory, forward=False)  # building allocates the weights; a forward pass is its caller's
    spec = report.spec
    memory_format = memory_format or spec.memory_format
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(spec.dims + 2) if memory_format == "channels_last" else None
    ctx = BuildContext(spec.dims, seed=seed, spec=spec)
    with torch.device("meta"):  # structure first; memory and values below, in one pass
        model = Network(ctx.nodes(report.layers), spec.output_names, layout)
    try:
        model.to_empty(device="cpu")
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "allocate" not in str(err):
            raise
        # over a raised --max-memory, or the machine changed since the estimate
        raise BudgetError(f"the machine could not allocate the network's weights ({first_line(err, 200)}); lower the sizes in the spec") from None
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    _default_init(model, generator, ctx.own_init)
    for init in ctx.inits:
        init(generator)
    if layout is not None:
        to_memory_format(model, layout, spec.dims + 2)
    return model


def to_memory_format(model: nn.Module, memory_format: torch.memory_format, rank: int) -> None:
    """Like `model.to(memory_format=...)`, but only for tensors of that rank (a dynamic conv's 5-D expert weights stay)."""
    with torch.no_grad():
        for module in model.modules():
            for tensors in (module._parameters, module._buffers):
                for name, tensor in tensors.items():
                    if tensor is not None and tensor.dim() == rank:
                        tensor.data = tensor.data.contiguous(memory_format=memory_format)


def build(
    spec: Any,
    *,
    seed: int | None = None,
    input_shape: tuple[int, ...] | str | None = None,
    max_memory: int | None = None,
    memory_format: str | None = None,
    scale: str | None = None,
    overrides: Any = None,
    weights: str | Path | None = None,
) -> nn.Module:
    """Check a spec (path, YAML text, dict or Spec) and build its nn.Module.

    `scale` picks a preset of the spec's `scales:`, `overrides` sets values as `--set` does
    (see `convspec.load`).

    Raises SpecError with every problem if the spec is invalid, and BudgetError if its
    weights (parameters and buffers, float32, estimated by arithmetic: what building
    allocates) exceed `max_memory` (bytes, or a size such as "8GB"; default: half the
    memory available). With `seed` (0 to 2**64 - 1), the
    weights are the same on every call and in every thread (a local generator; torch's global
    RNG is left as it was). `input_shape` is NCHW-like, (1, 3, 64, 64) or "1x3x64x64".
    InputError for an argument of the wrong type or range, before the spec is read.
    `weights` (a state_dict `.pt`, a `.safetensors` file, e.g. from `convspec weights`, or a
    checkpoint) are loaded into the model; InputError when a key is missing, unexpected or mis-shaped.
    """
    seed_argument(seed)
    if weights is not None:
        check_readable(path_argument("weights", weights))  # before the build, not after it
    if memory_format is not None:
        choice_argument("memory_format", memory_format, MEMORY_FORMATS)
    memory_budget(max_memory)
    report = load_and_check(spec, input_shape, require_size=False, scale=scale, overrides=overrides)
    model = build_from_report(report, seed, max_memory, memory_format)
    if weights is not None:
        from .checkpoint import load_weights_file  # checkpoint imports this module

        load_weights_file(model, weights)
    return model


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts, as the checker reports them."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


__all__ = ["build", "build_from_report", "build_layer", "BuildContext", "apply_init", "count_parameters"]
