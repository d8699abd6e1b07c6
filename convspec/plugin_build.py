"""Building a user kind's module: its own initialisation kept, seeded builds reproducible, its rule checked once.

convspec makes its own modules on the meta device and initialises them in one pass (`builder.py`).
A user module keeps the initialisation its authors wrote instead: it is built on the CPU (in a
seeded build, under `torch.random.fork_rng` seeded from the build's seed and the module's place in the build, so
the same seed gives the same weights and torch's global random state is restored afterwards), its
values are kept, the default initialisation passes over it, and the values are put back once the
network has memory. Right after it is built, it runs once on an input of the shapes the rule saw
(batch 1): an output shape that differs from the rule's is a fault of the kind, reported located
at the layer and naming the kind's package, before a user finds it in training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from .errors import Problem, SpecError, first_line
from .plugins import UserKind, UserPlan, resolve
from .report import LayerReport


def layer_seed(seed: int, index: int) -> int:
    """The seed of the `index`-th user module (in build order) of a build seeded with `seed`: distinct per
    module (the copies of a `repeat` too), the same in every build of the spec."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _fault(report: LayerReport, ctx: Any, message: str) -> SpecError:
    """A located SpecError for a fault of the kind's code, at the layer's `type`."""
    from .source import layer_label

    spec = ctx.spec
    if spec is None:
        return SpecError([Problem(message)])
    data = spec.source.data
    label = layer_label(data, report.path)[1] if data is not None else report.name
    return SpecError([Problem(message, spec.source.locate(report.path + ("type",)), label)])


@contextmanager
def _rng(seed: int | None, index: int) -> Iterator[None]:
    """Torch's global RNG, forked and seeded for one layer in a seeded build; untouched otherwise (as torch modules draw)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(layer_seed(seed, index))
        yield


@torch.no_grad()
def _real_output_shape(module: nn.Module, input_shapes: tuple) -> tuple | None:
    """The module's output shape on zeros of `input_shapes` at batch 1 (eval mode, restored); None if a size is unknown."""
    if any(size is None for shape in input_shapes for size in shape[1:]):
        return None
    inputs = [torch.zeros((1, *shape[1:])) for shape in input_shapes]
    training = module.training
    module.eval()
    try:
        out = module(*inputs)
    finally:
        module.train(training)
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"its module returned {type(out).__name__}, not one tensor")
    return tuple(out.shape)


def build_user_module(user: UserKind, name: str, origin: str, plan: UserPlan, report: LayerReport, ctx: Any) -> nn.Module:
    """The module of one user-kind layer, built by its kind's `build`, its initialisation kept (see the module docstring).

    Raises SpecError, located at the layer and naming `origin`, when the builder fails, returns no
    nn.Module, or makes a module whose output shape or parameter count (all, trainable) is not the rule's.
    """
    who = f"kind {name!r} (package {origin})"
    with torch.device("cpu"), _rng(ctx.seed, len(ctx.own_init)):
        try:
            module = resolve(user.build)(plan.layer, plan.input_shapes)
        except Exception as err:  # the plugin's code
            raise _fault(report, ctx, f"the builder of {who} raised {type(err).__name__}: {first_line(err, 200)}; "
                                      f"a fault of {origin}, not of the spec (--debug shows the traceback)") from err
        if not isinstance(module, nn.Module):
            raise _fault(report, ctx, f"the builder of {who} returned {type(module).__name__}, not a torch.nn.Module")
        try:
            real = _real_output_shape(module, plan.input_shapes)
        except Exception as err:
            raise _fault(report, ctx, f"the module of {who} failed on an input of shape {_batch_one(plan.input_shapes)}: "
                                      f"{type(err).__name__}: {first_line(err, 200)}; a fault of {origin}") from err
    expected = (1, *plan.output_shape[1:])
    if real is not None and None not in expected and real != expected:
        raise _fault(
            report, ctx,
            f"the rule and the module of {who} disagree: on {_batch_one(plan.input_shapes)} the rule says "
            f"{list(expected)} but the module returns {list(real)}; a fault of {origin}, "
            "whose rule or builder needs fixing (convspec.testing.assert_rule_matches_module finds such cases)",
        )
    held = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    if (held, trainable) != (report.params, report.trainable_params):
        raise _fault(
            report, ctx,
            f"the rule and the module of {who} disagree: the rule counts {report.params:,} parameters "
            f"({report.trainable_params:,} trainable) but the module holds {held:,} ({trainable:,} trainable); "
            f"a fault of {origin}, whose rule or builder needs fixing (convspec.testing.assert_rule_matches_module finds such cases)",
        )
    keep_own_values(module, ctx)
    return module


def _batch_one(shapes: tuple) -> list[list]:
    """Shapes at batch 1, as messages show them."""
    return [[1, *shape[1:]] for shape in shapes]


def keep_own_values(module: nn.Module, ctx: Any) -> None:
    """Pass `module` over in the default initialisation and put its values back once the network has memory."""
    tensors = [(name, tensor.detach()) for name, tensor in module.named_parameters(remove_duplicate=False)]
    tensors += [(name, tensor.detach()) for name, tensor in module.named_buffers(remove_duplicate=False) if tensor is not None]
    ctx.own_init.append(module)

    @torch.no_grad()
    def restore(generator: torch.Generator | None) -> None:
        for name, value in tensors:
            owner, _, attribute = name.rpartition(".")
            target = getattr(module.get_submodule(owner) if owner else module, attribute)
            if target is not value:
                target.copy_(value)

    ctx.inits.append(restore)


__all__ = ["build_user_module", "keep_own_values", "layer_seed"]
