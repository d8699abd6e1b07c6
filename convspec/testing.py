"""Testing a layer kind: does its rule say what its module does? For plugin authors and for convspec's own kinds.

`assert_rule_matches_module(kind, layers, inputs)` draws layer configurations and input shapes with
hypothesis, checks a one-layer spec of each, builds it and runs it, and compares the rule's output
shape, parameters (all and trainable) and MACs with the module's. A disagreement fails with the
configuration and input that show it (hypothesis shrinks them to a small case first).

MACs are measured as half the FLOPs torch's `FlopCounterMode` counts (convolutions, matrix
products): the convention of convspec's figures. A kind whose rule also counts other work (the
products of `mul`, say) passes `macs=False`.

Needs torch and hypothesis (`pip install hypothesis`); imports neither until called.
"""

from __future__ import annotations

from typing import Any

from .errors import SpecError
from .kinds import registry
from .plugins import PluginProblem, UserKind, kind_name, to_kind

PROBE = "probe"  # the name of the layer under test in the one-layer spec


def feature_maps(dims: int = 2, *, batch: tuple[int, int] = (1, 2), channels: tuple[int, int] = (1, 16), size: tuple[int, int] = (1, 16)) -> Any:
    """A hypothesis strategy of input shapes (B, C, *spatial) with `dims` spatial sizes, each range inclusive."""
    from hypothesis import strategies as st

    return st.tuples(st.integers(*batch), st.integers(*channels), *(st.integers(*size) for _ in range(dims)))


def probe_spec(kind: str, config: dict, shape: tuple[int, ...], many_inputs: bool = False) -> dict:
    """A one-layer spec: the layer of `kind` with the keys of `config`, named `probe`, on an input of `shape` (B, C, *spatial)."""
    layer = {"type": kind, "name": PROBE, **config}
    if many_inputs:
        layer["from"] = ["input", "input"]
    return {"input": {"batch": shape[0], "channels": shape[1], "size": list(shape[2:])}, "layers": [layer]}


def compare_one(kind: str, config: dict, shape: tuple[int, ...], *, macs: bool = True, seed: int = 0) -> bool:
    """Check, build and run one configuration; False when the spec is invalid (a configuration the kind refuses).

    Raises AssertionError naming what differs: the output shape, the parameters, the trainable
    parameters or the MACs; or a fault of the kind's code (its rule or builder raised).
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from .builder import build_from_report
    from .trace import load_and_check

    where = f"kind {kind!r} with {config} on input {list(shape)}"
    try:
        report = load_and_check(probe_spec(kind, config, shape, registry[kind].many_inputs))
        report.raise_for_errors()
    except SpecError as err:
        faults = [p for p in err.problems if isinstance(p, PluginProblem)]
        if faults:
            raise AssertionError(f"{where}: {faults[0].message}") from faults[0].cause
        return False
    try:
        model = build_from_report(report, seed=seed).eval()
    except SpecError as err:  # a fault found at build time: the module's real shape is not the rule's
        raise AssertionError(f"{where}: {err.problems[0].message}") from err
    layer = report.layers[0]
    module = model.get_submodule(PROBE)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        out = model(x)
    real = {
        "output shape": tuple(out.shape),
        "params": sum(p.numel() for p in module.parameters()),
        "trainable params": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    said = {"output shape": layer.output_shape, "params": layer.params, "trainable params": layer.trainable_params}
    if macs:
        real["MACs"], said["MACs"] = counter.get_total_flops() // 2, layer.macs
    wrong = [f"{what}: the rule says {said[what]}, the module has {real[what]}" for what in real if real[what] != said[what]]
    if wrong:
        raise AssertionError(f"{where}: " + "; ".join(wrong))
    return True


def assert_rule_matches_module(
    kind: str | UserKind, layers: Any = None, inputs: Any = None, *, max_examples: int = 20, macs: bool = True, seed: int = 0,
) -> None:
    """Compare a kind's rule with its module on drawn configurations (see the module docstring).

    `kind`: a registered kind's name, or a `UserKind` (registered for the duration of the test).
    `layers`: a hypothesis strategy of the layer's keys as a dict (without `type`); default `{}`,
    the kind's defaults. `inputs`: a strategy of input shapes (B, C, *spatial); default
    `feature_maps(2)`. Configurations the kind refuses (an invalid spec) are skipped, so a strategy
    may be loose; hypothesis reports one that is almost never valid. Raises AssertionError with the
    smallest disagreeing configuration and input it finds.
    """
    from hypothesis import HealthCheck, given, reject, settings
    from hypothesis import strategies as st

    if isinstance(kind, UserKind):
        name = kind_name(kind.model)
        if name not in registry:
            with registry.temporarily(to_kind(kind)):
                assert_rule_matches_module(name, layers, inputs, max_examples=max_examples, macs=macs, seed=seed)
            return
        kind = name
    if kind not in registry:
        raise ValueError(f"no kind {kind!r} is registered")

    @settings(
        max_examples=max_examples, deadline=None, database=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(config=layers if layers is not None else st.just({}), shape=inputs if inputs is not None else feature_maps(2))
    def run(config: dict, shape: tuple[int, ...]) -> None:
        if not compare_one(kind, config, shape, macs=macs, seed=seed):
            reject()

    run()


__all__ = ["PROBE", "assert_rule_matches_module", "compare_one", "feature_maps", "probe_spec"]
