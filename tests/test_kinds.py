"""The kind registry: one declaration per kind, read by check, build, draw, the budget, the JSON Schema and errors.

A toy kind declared here, inside the test, goes through every view without touching convspec's code:
this is the mechanism user-defined kinds plug into.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from pathlib import Path
from typing import Literal

import jsonschema
import pytest
import torch
from pydantic import Field
from torch import nn

import convspec
from convspec import schema as S
from convspec.budget import estimate_memory
from convspec.draw import render
from convspec.geometry import ConvGeometry, conv_own_padding
from convspec.kinds import Kind, registry
from convspec.plans import ConvPlan, SeparablePlan
from convspec.shapes import Traced, TracedLayer, Value
from support import assert_report_matches_model

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- a toy kind, declared here


class ScaleLayer(S.LayerBase):
    """Multiplies every channel by a learned factor, then repeats the channels `times` times."""

    type: Literal["scale"]
    times: S.PosInt = Field(1, description="how many copies of the channels to output")


@dataclasses.dataclass(frozen=True)
class ScalePlan:
    channels: int
    times: int


def scale_rule(layer: TracedLayer, inputs: list[Value]) -> Traced:
    value = inputs[0]
    if value.flat:
        layer.fail(None, "scale needs a feature map")
    if layer.model.times > 4:
        layer.error("times", f"times={layer.model.times} is more than 4")
    channels = value.channels
    shape = (value.shape[0], channels * layer.model.times, *value.spatial)
    macs = math.prod(value.shape) if all(s is not None for s in value.shape) else 0
    return Traced(Value(shape, value.rf, value.jump), channels, channels, macs, ScalePlan(channels, layer.model.times))


class Scale(nn.Module):
    def __init__(self, channels: int, times: int):
        super().__init__()
        self.factor = nn.Parameter(torch.empty(channels))
        self.times = times
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.factor)

    def forward(self, x):
        y = x * self.factor.view(1, -1, *[1] * (x.dim() - 2))
        return y.repeat(1, self.times, *[1] * (x.dim() - 2))


def build_scale(plan: ScalePlan, report, ctx) -> nn.Module:
    return Scale(plan.channels, plan.times)


TOY = Kind("scale", ScaleLayer, scale_rule, build_scale, buffers=lambda report: 5, colours=("#000001", "#000002"), origin="tests")

TOY_SPEC = """\
input: {channels: 3, size: [8, 8]}
layers:
  - {type: conv, out: 4, kernel: 3, padding: 1}
  - {type: scale, name: sc, times: 2}
  - {type: block, name: inner, layers: [{type: scale, times: 1}]}
"""


@pytest.fixture()
def toy():
    with registry.temporarily(TOY):
        yield TOY


def test_a_toy_kind_checks_builds_and_runs(toy):
    report = convspec.check(TOY_SPEC)
    assert report.valid, report.errors
    sc = report.layers[1]
    assert sc.output_shape == (1, 8, 8, 8) and sc.params == 4 and sc.plan == ScalePlan(4, 2)
    assert report.layers[2].children[0].output_shape == (1, 8, 8, 8)  # inside a container too
    model = convspec.build(TOY_SPEC, seed=0)
    assert isinstance(model.sc, Scale) and "sc.factor" in model.state_dict()
    assert_report_matches_model(report, model)


def test_a_toy_kind_gets_located_errors_with_the_others(toy):
    bad = TOY_SPEC.replace("times: 2}", "times: 9}").replace("times: 1}", "times: 6}").replace("name: inner,", "name: inner, from: input,")
    errors = _errors_of(bad)
    assert any("<string>:4:" in e and "times=9 is more than 4" in e and "'sc' (scale)" in e for e in errors), errors
    assert any("<string>:5:" in e and "times=6 is more than 4" in e for e in errors), errors  # every error at once


def test_a_toy_kinds_schema_errors_are_located_with_hints(toy):
    with pytest.raises(convspec.SpecError) as caught:
        convspec.check(TOY_SPEC.replace("times: 2", "tims: 2"))
    text = str(caught.value)
    assert "<string>:4:" in text and "tims" in text and "times" in text


def test_a_toy_kind_is_in_the_json_schema_and_drawn_and_budgeted(toy):
    schema = convspec.json_schema()
    assert "ScaleLayer" in schema["$defs"]
    validator = jsonschema.Draft202012Validator(schema)
    import yaml

    assert not list(validator.iter_errors(yaml.safe_load(TOY_SPEC)))
    report = convspec.check(TOY_SPEC)
    svg = render(report, "svg")
    assert "sc · scale" in svg and "#000002" in svg
    memory = {m.label: m for m in estimate_memory(report).layers}
    assert memory["sc"].weight_bytes == (4 + 5) * 4  # params plus the buffers its kind declares


def test_after_unregistering_the_kind_is_refused():
    with registry.temporarily(TOY):
        assert convspec.check(TOY_SPEC).valid
    with pytest.raises(convspec.SpecError) as caught:
        convspec.check(TOY_SPEC)
    assert "scale" in str(caught.value)
    assert "scale" not in S.LAYER_MODELS and "ScaleLayer" not in convspec.json_schema()["$defs"]


def test_a_clashing_kind_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(dataclasses.replace(TOY, name="conv", model=S.ConvLayer))
    with pytest.raises(ValueError, match="Literal"):
        registry.register(dataclasses.replace(TOY, name="other"))


def _errors_of(text: str) -> list[str]:
    """Every printed problem of a spec."""
    try:
        return [str(p) for p in convspec.check(text).errors]
    except convspec.SpecError as err:
        return [str(p) for p in err.problems]


# ---------------------------------------------------------------- typed plans and one geometry


def test_plans_hold_what_the_builder_needs_and_are_frozen():
    report = convspec.check(ROOT / "specs" / "nine_kinds.yaml")
    plans = {layer.type: layer.plan for layer in report.walk() if layer.plan is not None}
    assert isinstance(plans["conv"], ConvPlan) and isinstance(plans["separable"], SeparablePlan)
    dynamic = plans["dynamic"]
    layer = next(layer.layer for layer in report.walk() if layer.type == "dynamic")
    assert (dynamic.experts, dynamic.reduction, dynamic.temperature) == (layer.experts, layer.reduction, layer.temperature)
    with pytest.raises(dataclasses.FrozenInstanceError):
        plans["conv"].trainable = False


def test_shortcuts_copies_and_parts_are_marked_in_the_report():
    report = convspec.check(ROOT / "specs" / "resnet34.yaml")
    roles = {layer.role for layer in report.walk()}
    assert {"layer", "copy", "shortcut"} <= roles
    shuffle = convspec.check(ROOT / "specs" / "shufflenet_v2_x1_0.yaml")
    assert "part" in {layer.role for layer in shuffle.walk()}


@pytest.mark.parametrize(
    "padding, mode, own",
    [(((1, 1), (2, 2)), "zeros", (1, 2)), (((0, 1), (0, 1)), "zeros", None), (((1, 1),), "reflect", None)],
)
def test_one_decision_of_how_padding_is_applied(padding, mode, own):
    assert conv_own_padding(padding, mode) == own
    geometry = ConvGeometry(len(padding), 2, 2, (3,) * len(padding), (1,) * len(padding), (1,) * len(padding), padding, 1, True, mode)
    assert geometry.conv_padding == own
    from convspec.layers import conv_norm_act

    module = conv_norm_act(geometry)
    assert ("pad" in module._modules) == (own is None)


def test_torch_modules_import_nothing_from_the_checker():
    import ast

    for name in ("layers.py", "graph.py"):
        tree = ast.parse((ROOT / "convspec" / name).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not imported & {"shapes", "trace", "schema", "kinds", "budget"}, (name, imported)


# ---------------------------------------------------------------- seeded builds


def test_seeded_builds_are_thread_safe_and_leave_the_global_rng_alone():
    path = ROOT / "specs" / "resnet_small.yaml"
    expected = convspec.build(path, seed=0).state_dict()
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    results: dict[int, dict] = {}
    start = threading.Barrier(8)

    def worker(index: int) -> None:
        start.wait()
        results[index] = convspec.build(path, seed=0).state_dict()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert torch.equal(torch.get_rng_state(), before)
    for index in range(8):
        assert results[index].keys() == expected.keys()
        assert all(torch.equal(results[index][k], expected[k]) for k in expected), index


def test_unseeded_builds_draw_from_the_global_rng_like_torch_modules():
    path = ROOT / "specs" / "small_cnn.yaml"
    torch.manual_seed(3)
    a = convspec.build(path).state_dict()
    torch.manual_seed(3)
    b = convspec.build(path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- checkpoints of earlier versions


def test_a_format_1_checkpoint_still_loads_with_its_outputs():
    data = ROOT / "tests" / "data"
    model = convspec.load_checkpoint(data / "nine_kinds_format1.pt").eval()
    expected = torch.load(data / "nine_kinds_format1_io.pt", weights_only=True)
    x = torch.randn(expected["shape"], generator=torch.Generator().manual_seed(expected["seed"]))
    with torch.no_grad():
        y = model(x)
    # equal up to float32 rounding: the summation order of a conv depends on the thread count
    torch.testing.assert_close(y[:, :, ::16, ::16], expected["output_every_16th"], rtol=1e-5, atol=1e-6)
