"""Spec -> nn.Module. A pure function of the spec: one builder per layer kind in a plain dict.

Channel counts, padding and every other derived number come from the checker's
`LayerReport`s (one formula, one place); a builder only chooses the torch module.
Child modules carry the spec's layer names, so state_dict keys follow the spec.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import kernels
from ._version import __version__
from .errors import BudgetError, InputError, Problem, SpecError, first_line
from .budget import enforce_budget
from .fileio import atomic_write
from .graph import Add, Concat, Graph, Network, Residual
from .layers import AdaptivePool, ChannelLayerNorm, ChannelShuffle, ChannelSplit, ConvNormAct, DynamicConv, FixedConv
from .schema import Init, Spec, load
from .shapes import ConvGeometry, LayerReport, Report, load_and_check

_POOL = {
    ("max", 1): nn.MaxPool1d, ("max", 2): nn.MaxPool2d, ("max", 3): nn.MaxPool3d,
    ("avg", 1): nn.AvgPool1d, ("avg", 2): nn.AvgPool2d, ("avg", 3): nn.AvgPool3d,
}  # fmt: skip
_ADAPTIVE_POOL = {
    ("max", 1): nn.AdaptiveMaxPool1d, ("max", 2): nn.AdaptiveMaxPool2d, ("max", 3): nn.AdaptiveMaxPool3d,
    ("avg", 1): nn.AdaptiveAvgPool1d, ("avg", 2): nn.AdaptiveAvgPool2d, ("avg", 3): nn.AdaptiveAvgPool3d,
}  # fmt: skip
_BATCH_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_INSTANCE_NORM = {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}

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
}


def make_act(name: str | None, negative_slope: float | None = None) -> nn.Module | None:
    return None if name is None else ACTIVATIONS[name](negative_slope)


def make_norm(kind: str | None, channels: int, dims: int, groups: int | None = None, flat: bool = False) -> nn.Module | None:
    """The norm for `channels` features; flat input (B, F) gets the 1-D / feature-wise form."""
    if kind is None:
        return None
    if kind == "batch":
        return nn.BatchNorm1d(channels) if flat else _BATCH_NORM[dims](channels)
    if kind == "instance":
        return _INSTANCE_NORM[dims](channels)
    if kind == "group":
        return nn.GroupNorm(groups, channels)
    if kind == "layer":
        # over channels at each position (as ConvNeXt's LayerNorm2d); on flat input, over features
        return nn.LayerNorm(channels) if flat else ChannelLayerNorm(channels)
    raise ValueError(f"unknown norm {kind!r}")


# ---------------------------------------------------------------- initialisers


_NAMED_INITS: dict[str, Callable[[torch.Tensor], Any]] = {
    "zeros": nn.init.zeros_,
    "ones": nn.init.ones_,
    "kaiming_normal": nn.init.kaiming_normal_,
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "xavier_normal": nn.init.xavier_normal_,
    "xavier_uniform": nn.init.xavier_uniform_,
    "orthogonal": nn.init.orthogonal_,
}


@torch.no_grad()
def apply_init(tensor: torch.Tensor, init: Init | None, dims: int) -> None:
    """Set `tensor` in place as `init` says (the checker has already matched shapes)."""
    if init is None or init.kind == "default":
        return
    if init.kind in _NAMED_INITS:
        _NAMED_INITS[init.kind](tensor)
    elif init.kind == "constant":
        nn.init.constant_(tensor, init.args[0])
    elif init.kind == "uniform":
        nn.init.uniform_(tensor, *init.args)
    elif init.kind == "normal":
        nn.init.normal_(tensor, *init.args)
    elif init.kind == "filter":
        args = init.filter or {}
        values = kernels.make_filter(args["filter"], dims, args.get("kernel_size"), args.get("sigma"))
        tensor.copy_(torch.tensor(values, dtype=tensor.dtype).expand_as(tensor))
    elif init.kind == "array":
        tensor.copy_(torch.tensor(init.array, dtype=tensor.dtype).reshape(tensor.shape))
    else:
        raise ValueError(f"unknown initialiser {init.kind!r}")


def _init_conv(weight: torch.Tensor, bias: torch.Tensor | None, model: Any, dims: int) -> None:
    init = getattr(model, "init", None)
    if init is None:
        return
    apply_init(weight, init.weight, dims)
    if bias is not None:
        apply_init(bias, init.bias, dims)


def _freeze(module: nn.Module, model: Any) -> nn.Module:
    if not getattr(model, "trainable", True):
        module.requires_grad_(False)
    return module


# ---------------------------------------------------------------- builders, one per kind


def _conv_module(geometry: ConvGeometry, norm: str | None, norm_groups: int | None, act: str | None) -> ConvNormAct:
    return ConvNormAct(
        geometry,
        norm=make_norm(norm, geometry.out_channels, geometry.dims, norm_groups),
        act=make_act(act),
    )


def _build_conv(report: LayerReport, dims: int) -> nn.Module:
    model = report.layer
    module = _conv_module(report.resolved["geometry"], model.norm, model.norm_groups, model.act)
    _init_conv(module.weight, module.bias, model, dims)
    return _freeze(module, model)


def _build_separable(report: LayerReport, dims: int) -> nn.Module:
    model = report.layer
    inner = model.depthwise
    block = nn.Module()
    block.depthwise = _conv_module(
        report.resolved["depthwise"], inner.norm if inner else None, inner.norm_groups if inner else None, inner.act if inner else None
    )
    block.pointwise = _conv_module(report.resolved["pointwise"], model.norm, model.norm_groups, model.act)
    if model.init is not None:  # named initialisers apply to both stages' weights
        for stage in (block.depthwise, block.pointwise):
            apply_init(stage.weight, model.init.weight, dims)
            if stage.bias is not None:
                apply_init(stage.bias, model.init.bias, dims)
    return _freeze(Separable(block.depthwise, block.pointwise), model)


class Separable(nn.Sequential):
    """Depthwise then pointwise; children `depthwise` and `pointwise`."""

    def __init__(self, depthwise: nn.Module, pointwise: nn.Module):
        super().__init__()
        self.depthwise = depthwise
        self.pointwise = pointwise


def _build_dynamic(report: LayerReport, dims: int) -> nn.Module:
    model = report.layer
    g: ConvGeometry = report.resolved["geometry"]
    conv = DynamicConv(
        dims, g.in_channels, g.out_channels, g.kernel_size, g.stride, g.padding, g.dilation, g.groups, g.bias,
        g.padding_mode, model.experts, model.reduction, model.temperature,
    )
    if model.init is not None:
        for expert in range(model.experts):  # each expert initialised like a conv of its own
            apply_init(conv.weight[expert], model.init.weight, dims)
            if conv.bias is not None:
                apply_init(conv.bias[expert], model.init.bias, dims)
    norm, act = make_norm(model.norm, g.out_channels, dims, model.norm_groups), make_act(model.act)
    module = conv if norm is None and act is None else DynamicNormAct(conv, norm, act)
    return _freeze(module, model)


class DynamicNormAct(nn.Sequential):
    """A dynamic conv followed by its norm and activation (children `conv`, `norm`, `act`)."""

    def __init__(self, conv: nn.Module, norm: nn.Module | None, act: nn.Module | None):
        super().__init__()
        self.conv = conv
        if norm is not None:
            self.norm = norm
        if act is not None:
            self.act = act


def _build_fixed(report: LayerReport, dims: int) -> nn.Module:
    model = report.layer
    r = report.resolved
    return FixedConv(r["geometry"], r["kernel"], trainable=model.trainable, passes=r["passes"])


def _build_norm(report: LayerReport, dims: int) -> nn.Module:
    model = report.layer
    flat = len(report.input_shapes[0]) == 2
    return make_norm(model.kind, report.resolved["channels"], dims, model.groups, flat=flat)


def _build_pool(report: LayerReport, dims: int) -> nn.Module:
    model, r = report.layer, report.resolved
    return _POOL[model.op, dims](r["kernel_size"], r["stride"], r["padding"], ceil_mode=model.ceil_mode)


def _build_upsample(report: LayerReport, dims: int) -> nn.Module:
    model, r = report.layer, report.resolved
    if r["size"] is not None:
        return nn.Upsample(size=tuple(r["size"]), mode=model.mode, align_corners=model.align_corners)
    return nn.Upsample(scale_factor=tuple(float(s) for s in r["scale"]), mode=model.mode, align_corners=model.align_corners)


def _build_linear(report: LayerReport, dims: int) -> nn.Module:
    model = report.layer
    module = nn.Linear(report.resolved["in_features"], model.out_features, bias=model.bias)
    _init_conv(module.weight, module.bias, model, dims)
    return _freeze(module, model)


def _build_residual(report: LayerReport, dims: int) -> nn.Module:
    model = report.layer
    main = [c for c in report.children if c.name != "shortcut" or c.layer is not None]
    shortcut_report = next((c for c in report.children if c.name == "shortcut" and c.layer is None), None)
    shortcut = Graph(_build_nodes(shortcut_report.children, dims)) if shortcut_report else None
    return Residual(_build_nodes(main, dims), shortcut, make_act(model.act))


def _build_repeat(report: LayerReport, dims: int) -> nn.Module:
    return nn.Sequential(*(Graph(_build_nodes(copy.children, dims)) for copy in report.children))


BUILDERS: dict[str, Callable[[LayerReport, int], nn.Module]] = {
    "conv": _build_conv,
    "pointwise": _build_conv,
    "asymmetric": _build_conv,
    "dilated": _build_conv,
    "depthwise": _build_conv,
    "group": _build_conv,
    "separable": _build_separable,
    "transposed": _build_conv,
    "dynamic": _build_dynamic,
    "fixed": _build_fixed,
    "norm": _build_norm,
    "act": lambda r, dims: make_act(r.layer.fn, r.layer.negative_slope),
    "pool": _build_pool,
    "adaptive_pool": lambda r, dims: AdaptivePool(r.layer.op, r.resolved["size"]),
    "global_pool": lambda r, dims: _ADAPTIVE_POOL[r.layer.op, dims](1),
    "upsample": _build_upsample,
    "shuffle": lambda r, dims: ChannelShuffle(r.layer.groups),
    "split": lambda r, dims: ChannelSplit(r.resolved["sizes"]),
    "dropout": lambda r, dims: nn.Dropout(r.layer.p),
    "flatten": lambda r, dims: nn.Flatten(1),
    "linear": _build_linear,
    "identity": lambda r, dims: nn.Identity(),
    "add": lambda r, dims: Add(make_act(r.layer.act)),
    "concat": lambda r, dims: Concat(),
    "residual": _build_residual,
    "repeat": _build_repeat,
    "block": lambda r, dims: Graph(_build_nodes(r.children, dims)),
}


def _build_nodes(reports: list[LayerReport], dims: int) -> list[tuple[str, nn.Module, list[str]]]:
    return [(r.name, BUILDERS[r.type](r, dims), r.sources) for r in reports]


# ---------------------------------------------------------------- the API


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Seed torch's RNG for the build only; the caller's RNG state is restored after."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_from_report(
    report: Report, seed: int | None = None, max_memory: int | None = None, memory_format: str | None = None
) -> nn.Module:
    """The module for an already checked spec; refused (BudgetError) before allocation if it would not fit in memory."""
    report.raise_for_errors()
    enforce_budget(report, max_memory)
    spec = report.spec
    memory_format = memory_format or spec.memory_format
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(spec.dims + 2) if memory_format == "channels_last" else None
    try:
        with _seeded(seed):
            model = Network(_build_nodes(report.layers, spec.dims), spec.output_names, layout)
    except (MemoryError, RuntimeError) as err:
        if isinstance(err, RuntimeError) and "allocate" not in str(err):
            raise
        # over a raised --max-memory, or the machine changed since the estimate
        raise BudgetError(f"the machine could not allocate the network's weights ({first_line(err, 200)}); lower the sizes in the spec") from None
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
) -> nn.Module:
    """Check a spec (path, YAML text, dict or Spec) and build its nn.Module.

    Raises SpecError with every problem if the spec is invalid, and BudgetError if its
    weights and activations (estimated by arithmetic) exceed `max_memory` bytes (default:
    half the memory available). With `seed`, the weights are the same on every call
    (torch's global RNG is left as it was).
    """
    report = load_and_check(spec, input_shape, require_size=False)
    return build_from_report(report, seed, max_memory, memory_format)


# ---------------------------------------------------------------- checkpoints

CHECKPOINT_FORMAT = "convspec-checkpoint/1"


def spec_text(spec: Spec) -> str:
    """The spec as YAML text: its original text where it came from one."""
    if spec.source.text is not None:
        return spec.source.text
    import yaml

    data = spec.source.data if spec.source.data is not None else spec.model_dump(by_alias=True, exclude_none=True, warnings=False)
    return yaml.safe_dump(data, sort_keys=False)


def save_checkpoint(
    model: nn.Module, spec: Any, path: str | Path, *, force: bool = False, input_shape: tuple[int, ...] | None = None
) -> Path:
    """Save the spec's text and the model's state_dict together, atomically (with the input shape built for, if any)."""
    parsed = load(spec)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "convspec_version": __version__,
        "spec_name": parsed.name,
        "input_shape": list(input_shape) if input_shape else None,  # needed again to rebuild a spec without input.size
        "spec_text": spec_text(parsed),
        "state_dict": model.state_dict(),
    }
    return atomic_write(path, lambda f: torch.save(payload, f), force=force)


def read_checkpoint(path: str | Path) -> dict:
    """A checkpoint's contents, loaded with weights_only=True (no arbitrary objects unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a bad or unsafe file
        raise InputError(f"{path}: not a readable convspec checkpoint ({type(err).__name__}: {first_line(err)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a convspec checkpoint (made by `convspec build -o`); for a bare state_dict use --weights")
    return payload


def load_checkpoint(path: str | Path) -> nn.Module:
    """Rebuild the model saved by `save_checkpoint` / `convspec build -o`, with its weights."""
    payload = read_checkpoint(path)
    spec = load(payload["spec_text"])
    if spec.name is None:
        spec.name = payload.get("spec_name")
    shape = payload.get("input_shape")
    model = build(spec, input_shape=tuple(shape) if shape else None)
    load_weights(model, payload["state_dict"], str(path))
    return model


def load_weights(model: nn.Module, state_dict: dict, origin: str) -> None:
    """load_state_dict with a report of every missing, unexpected or mis-shaped key."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: file {list(state_dict[k].shape)}, spec {list(own[k].shape)}"
        for k in own
        if k in state_dict and hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        lines = []
        if missing:
            lines.append(f"missing keys ({len(missing)}): {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:10])}{' ...' if len(unexpected) > 10 else ''}")
        if mismatched:
            lines.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:10])}")
        raise InputError([Problem(f"the weights do not fit the spec: {line}", _origin(origin)) for line in lines])
    model.load_state_dict(state_dict)


def _origin(origin: str):
    from .errors import Location

    return Location(origin)


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(all, trainable) parameter counts, as the checker reports them."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


__all__ = ["build", "build_from_report", "save_checkpoint", "load_checkpoint", "read_checkpoint", "load_weights", "BUILDERS"]
_ = (math, SpecError)
