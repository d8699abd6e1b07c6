"""Layer kinds from outside convspec: a plugin package found through its entry points, and kinds registered in Python.

tests/plugins/ holds three small packages, each a directory with a hand-written `*.dist-info`
(METADATA and entry_points.txt), put on sys.path by a fixture so that importlib.metadata finds
them as if pip had installed them:

- demo: `cbam` (attention) and `pixel_shuffle`, the worked example of docs/custom-kinds.md;
- broken: a plugin that fails to import, one that declares `conv` and one whose object is not a kind;
- faulty: kinds that load but whose rule raises, whose module disagrees with its rule, or whose builder raises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from importlib import metadata
from pathlib import Path
from typing import Literal

import jsonschema
import pytest
import torch
import yaml
from click.testing import CliRunner
from pydantic import Field
from torch import nn

import convspec
from convspec.trace import checked_with_target  # the report with its problems, as `convspec check` prints them
from convspec.budget import estimate_memory
from convspec.cli import cli
from convspec.draw import render
from convspec.kinds import registry
from convspec.plugins import PluginError, UserKind, discover
from support import assert_report_matches_model

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "tests" / "plugins"

SR_SPEC = """\
name: tiny_sr
input: {channels: 3, size: [16, 16]}
layers:
  - {type: conv, out: 16, kernel: 3, padding: 1, act: relu}
  - {type: cbam, name: attention, reduction: 4}
  - {type: conv, out: 12, kernel: 3, padding: 1}
  - {type: pixel_shuffle, name: upscale, upscale_factor: 2}
"""


@pytest.fixture()
def plugins(monkeypatch):
    """`plugins("demo")` puts tests/plugins/demo on sys.path; whatever is registered or discovered is forgotten after the test."""
    with registry.isolated():
        yield lambda *names: [monkeypatch.syspath_prepend(str(PLUGINS / name)) for name in names]


@pytest.fixture()
def spec_file(tmp_path):
    def write(text: str, name: str = "net.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def _problems(spec) -> list[str]:
    try:
        return [str(p) for p in convspec.check(spec).errors]
    except convspec.SpecError as err:
        return [str(p) for p in err.problems]


# ---------------------------------------------------------------- found through entry points


def test_entry_points_are_read_only_when_a_spec_names_a_type_convspec_lacks(plugins, monkeypatch):
    plugins("demo")
    calls = []
    real = metadata.entry_points
    monkeypatch.setattr(metadata, "entry_points", lambda **kw: calls.append(kw) or real(**kw))
    assert convspec.check("input: {channels: 3, size: [8, 8]}\nlayers: [{type: conv, out: 4, kernel: 3}]").valid
    assert calls == [] and "cbam" not in registry
    report = convspec.check(SR_SPEC)
    assert calls == [{"group": "convspec.kinds"}]
    assert report.valid, report.errors
    attention, upscale = report.layers[1], report.layers[3]
    # CBAM at 16 channels, reduction 4: two 1x1 convs 16 -> 4 -> 16 and a 7x7 conv 2 -> 1, no biases
    assert attention.output_shape == (1, 16, 16, 16) and attention.params == 2 * 16 * 4 + 2 * 49
    assert attention.macs == 2 * (2 * 16 * 4) + 16 * 16 * 2 * 49
    assert upscale.output_shape == (1, 3, 32, 32) and upscale.params == 0
    assert upscale.stride == (Fraction(8), Fraction(8))  # after the whole-map attention (16), halved by the upscaling
    convspec.check(SR_SPEC)
    assert len(calls) == 1  # read once


def test_a_spec_alone_reaches_no_code():
    """Without the plugin installed, its kind is an unknown type: a spec cannot name a module to import."""
    before = set(sys.modules)
    problems = _problems(SR_SPEC)
    assert any("<string>:5:" in p and "unknown layer type 'cbam'" in p for p in problems), problems
    bad = SR_SPEC.replace("type: cbam", "type: 'convspec_demo_kinds.modules:build_cbam'")
    assert any("unknown layer type 'convspec_demo_kinds.modules:build_cbam'" in p for p in _problems(bad))
    assert not [name for name in set(sys.modules) - before if name.startswith("convspec_demo")]
    assert "cbam" not in registry


def test_check_json_names_each_plugin_kinds_package(plugins, spec_file):
    plugins("demo")
    result = CliRunner().invoke(cli, ["check", str(spec_file(SR_SPEC)), "--format", "json"])
    assert result.exit_code == 0, result.output
    layers = {layer["name"]: layer for layer in json.loads(result.output)["layers"]}
    assert layers["attention"]["package"] == layers["upscale"]["package"] == "convspec-demo-kinds"
    assert "package" not in layers["conv_0"]


def test_the_table_shows_plugin_kinds_like_the_others(plugins, spec_file):
    plugins("demo")
    result = CliRunner().invoke(cli, ["check", str(spec_file(SR_SPEC))])
    assert result.exit_code == 0, result.output
    assert "attention  cbam" in result.output and "1x3x32x32" in result.output


def test_a_plugin_kind_builds_with_its_names_and_its_own_initialisation(plugins):
    plugins("demo")
    report = convspec.check(SR_SPEC)
    model = convspec.build(SR_SPEC, seed=7)
    assert_report_matches_model(report, model)
    keys = set(model.state_dict())
    assert {"attention.channel.fc1.weight", "attention.channel.fc2.weight", "attention.spatial.conv.weight"} <= keys
    again = convspec.build(SR_SPEC, seed=7).state_dict()
    assert all(torch.equal(again[k], v) for k, v in model.state_dict().items())  # seeded: the same weights
    other = convspec.build(SR_SPEC, seed=8).state_dict()
    assert not torch.equal(other["attention.spatial.conv.weight"], again["attention.spatial.conv.weight"])
    # torch's own initialisation of the plugin's convs (kaiming uniform, bound 1/sqrt(fan_in)), not left empty
    weight = model.attention.spatial.conv.weight
    assert weight.abs().max() <= 1 / (2 * 49) ** 0.5 and weight.abs().sum() > 0


def test_each_copy_of_a_repeated_plugin_kind_gets_its_own_weights(plugins):
    plugins("demo")
    text = "input: {channels: 8, size: [8, 8]}\nlayers:\n  - {type: repeat, name: stage, times: 2, layers: [{type: cbam, name: att, reduction: 2}]}\n"
    first, second = convspec.build(text, seed=5).state_dict(), convspec.build(text, seed=5).state_dict()
    key = "stage.{}.att.spatial.conv.weight"
    assert not torch.equal(first[key.format(0)], first[key.format(1)])
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_a_seeded_build_with_a_plugin_kind_leaves_the_global_rng_as_it_was(plugins):
    plugins("demo")
    torch.manual_seed(99)
    before = torch.get_rng_state()
    convspec.build(SR_SPEC, seed=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_plugin_kind_is_drawn_budgeted_and_in_the_json_schema(plugins, spec_file):
    plugins("demo")
    report = convspec.check(SR_SPEC)
    svg = render(report, "svg")
    assert "attention · cbam" in svg and "#b59200" in svg  # the colours its declaration gives
    memory = {m.label: m for m in estimate_memory(report).layers}
    assert memory["attention"].weight_bytes == 226 * 4
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert {"CBAMLayer", "PixelShuffleLayer"} <= set(schema["$defs"])
    assert not list(jsonschema.Draft202012Validator(schema).iter_errors(yaml.safe_load(SR_SPEC)))
    draw = CliRunner().invoke(cli, ["draw", str(spec_file(SR_SPEC)), "-o", "-", "--format", "mermaid"])
    assert draw.exit_code == 0 and "cbam" in draw.output


def test_a_plugin_kind_exports_verified_with_the_spec_names(plugins, tmp_path, one_thread):
    import onnx

    plugins("demo")
    path = tmp_path / "sr.onnx"
    model = convspec.build(SR_SPEC, seed=0)
    convspec.export_onnx(model, SR_SPEC, path)  # verified by onnxruntime against the module, or ExportError
    graph = onnx.load(path).graph
    names = [node.name for node in graph.node]
    assert any(name.startswith("attention/") for name in names) and "upscale/DepthToSpace" in names
    assert "attention.channel.fc1.weight" in {init.name for init in graph.initializer}


def test_plugin_kinds_get_located_errors_all_at_once(plugins):
    plugins("demo")
    bad = SR_SPEC.replace("reduction: 4", "reduction: 4, kernel_size: 4").replace("out: 12", "out: 10")
    bad = bad.replace("out: 16, kernel: 3, padding: 1, act: relu}", "out: 16, kernel: 3, padding: 1, act: relu, groups: 5}")
    problems = _problems(bad)
    assert any("<string>:4:" in p and "groups=5" in p for p in problems), problems
    assert any("<string>:5:" in p and "'attention' (cbam)" in p and "kernel_size=4 must be odd" in p and "use 3 or 5" in p for p in problems), problems
    assert any("<string>:7:" in p and "'upscale' (pixel_shuffle)" in p and "10 channels are not divisible by upscale_factor**2 = 4" in p
               and "8 or 12" in p for p in problems), problems
    typo = _problems(SR_SPEC.replace("reduction: 4", "reducton: 4"))
    assert any("<string>:5:" in p and "reducton" in p and "did you mean 'reduction'" in p for p in typo), typo


# ---------------------------------------------------------------- broken and faulty plugins


def test_a_plugin_that_fails_to_import_or_clashes_is_named_with_exit_1_and_no_traceback(plugins, spec_file):
    plugins("broken")
    path = spec_file(SR_SPEC)
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:5:" in result.output and "unknown layer type 'cbam'" in result.output
    assert "'missing = convspec_broken_kinds.missing:KINDS' of package convspec-broken-kinds 0.1.0 failed to load" in result.output
    assert "ModuleNotFoundError" in result.output and "declares conv, which convspec has already (built-in)" in result.output
    assert "'model = convspec_broken_kinds:Conv' of package convspec-broken-kinds 0.1.0 declares no usable kind: a kind is declared as convspec.UserKind" in result.output
    assert "Traceback" not in result.output
    debug = CliRunner().invoke(cli, ["--debug", "check", str(path)])
    assert debug.exit_code == 1 and "Traceback" in debug.output and "convspec_not_installed_anywhere" in debug.output
    assert registry["conv"].origin == "convspec"  # the clashing plugin changed nothing
    schema = CliRunner().invoke(cli, ["schema"])
    assert schema.exit_code == 1 and "convspec-broken-kinds" in schema.output and "Traceback" not in schema.output
    with pytest.raises(PluginError, match="convspec-broken-kinds"):
        convspec.json_schema()


def test_a_broken_plugin_does_not_stop_a_spec_that_needs_none_of_it(plugins):
    plugins("broken", "demo")
    assert convspec.check(SR_SPEC).valid
    assert [failure.package for failure in discover()] == ["convspec-broken-kinds 0.1.0"] * 3


def test_a_rule_that_raises_is_a_located_fault_of_its_package(plugins, spec_file):
    plugins("faulty")
    text = "input: {channels: 3, size: [8, 8]}\nlayers:\n  - {type: raising_rule}\n  - {type: conv, out: 4, kernel: 3, groups: 2}\n"
    result = CliRunner().invoke(cli, ["check", str(spec_file(text))])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ":3:6: layers[0] 'raising_rule_0' (raising_rule): the rule of kind 'raising_rule' (package convspec-faulty-kinds) raised ZeroDivisionError" in result.output
    assert "groups=2 does not divide" in result.output  # the spec's own mistakes are still all reported
    debug = CliRunner().invoke(cli, ["--debug", "check", str(spec_file(text))])
    assert "Traceback" in debug.output and "1 // 0" in debug.output


def test_a_module_that_disagrees_with_its_rule_is_found_at_build_time(plugins, spec_file):
    plugins("faulty")
    text = "input: {channels: 3, size: [8, 8]}\nlayers:\n  - {type: conv, out: 4, kernel: 3}\n  - {type: liar, name: fib}\n"
    assert convspec.check(text).valid  # the rule alone cannot know
    result = CliRunner().invoke(cli, ["build", str(spec_file(text))])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ":4:6: layers[1] 'fib' (liar): the rule and the module of kind 'liar' (package convspec-faulty-kinds) disagree" in result.output
    assert "the rule says [1, 4, 6, 6] but the module returns [1, 4, 3, 3]" in result.output
    failing = CliRunner().invoke(cli, ["build", str(spec_file(text.replace("liar, name: fib", "bad_builder")))])
    assert failing.exit_code == 1 and "the builder of kind 'bad_builder' (package convspec-faulty-kinds) raised RuntimeError: no module for you" in failing.output


def test_the_plugin_works_from_the_command_line_of_a_fresh_process(spec_file):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(PLUGINS / "demo")]), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "convspec", "check", str(spec_file(SR_SPEC)), "--format", "json"], capture_output=True, text=True, env=env, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert [layer.get("package") for layer in json.loads(run.stdout)["layers"]] == [None, "convspec-demo-kinds", None, "convspec-demo-kinds"]
    # checking a spec of plugin kinds stays torch-free when the plugin names its builders as "module:function"
    probe = f"import sys, convspec; assert convspec.check({str(spec_file(SR_SPEC))!r}).valid; print('torch' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "False", run.stderr


# ---------------------------------------------------------------- kinds registered in Python


class GateLayer(convspec.LayerBase):
    """x * sigmoid(w) per channel, w learned; `start` is w's initial value."""

    type: Literal["gate"]
    start: float = Field(0.0, description="initial value of the gate's logit")


class Gate(nn.Module):
    def __init__(self, channels: int, start: float):
        super().__init__()
        self.logit = nn.Parameter(torch.full((channels,), start))  # its own initialisation, no reset_parameters
        self.register_buffer("calls", torch.zeros(()), persistent=False)

    def forward(self, x):  # (B, C, *spatial)
        return x * torch.sigmoid(self.logit).view(1, -1, *[1] * (x.dim() - 2))


def gate_rule(layer: GateLayer, inputs):
    batch, channels, *spatial = inputs[0]
    if not spatial:
        raise convspec.LayerError("gate needs a feature map")
    return convspec.Figures(inputs[0], params=channels, buffers=1)


GATE_SPEC = "input: {channels: 3, size: [8, 8]}\nlayers:\n  - {type: conv, out: 4, kernel: 3}\n  - {type: gate, name: g, start: 2.5}\n"


def test_register_kind_as_a_call_and_as_a_decorator():
    with registry.isolated():
        declared = convspec.register_kind(model=GateLayer, rule=gate_rule, build=lambda layer, inputs: Gate(inputs[0][1], layer.start))
        assert isinstance(declared, UserKind) and registry["gate"].origin == "test_user_kinds"
        model = convspec.build(GATE_SPEC, seed=0)
        assert torch.equal(model.g.logit.detach(), torch.full((4,), 2.5))  # kept, not re-initialised
        assert estimate_memory(convspec.check(GATE_SPEC)).layers[1].weight_bytes == (4 + 1) * 4
    assert "gate" not in registry
    with registry.isolated():

        @convspec.register_kind(model=GateLayer, rule=gate_rule, package="my-gates")
        def build_gate(layer, inputs):
            return Gate(inputs[0][1], layer.start)

        assert callable(build_gate) and registry["gate"].origin == "my-gates"
        assert convspec.check(GATE_SPEC).to_dict()["layers"][1]["output_shape"] == [1, 4, 6, 6]


def test_a_malformed_declaration_or_a_taken_name_is_refused():
    class Conv(convspec.LayerBase):
        type: Literal["conv"]

    class NoType(convspec.LayerBase):
        size: int = 1

    build = lambda layer, inputs: nn.Identity()  # noqa: E731
    with registry.isolated():
        with pytest.raises(ValueError, match="already registered \\(by convspec\\)"):
            convspec.register_kind(model=Conv, rule=gate_rule, build=build)
        with pytest.raises(TypeError, match="Literal"):
            convspec.register_kind(model=NoType, rule=gate_rule, build=build)
        with pytest.raises(TypeError, match="subclass of convspec.LayerBase"):
            convspec.register_kind(model=dict, rule=gate_rule, build=build)
        with pytest.raises(TypeError, match="`build` must be"):
            convspec.register_kind(model=GateLayer, rule=gate_rule, build=42)
        assert "gate" not in registry


def test_a_rule_that_answers_malformed_figures_is_a_fault_of_its_package():
    def flat_rule(layer, inputs):
        return convspec.Figures((1, 4, 6), params=-1)

    with registry.isolated():
        convspec.register_kind(model=GateLayer, rule=flat_rule, build="torch.nn:Identity", package="sloppy")
        problems = _problems(GATE_SPEC)
    assert any("<string>:4:" in p and "kind 'gate' (package sloppy) returned a malformed answer: Figures.shape" in p for p in problems), problems


def test_a_user_kinds_export_limit_is_reported_by_check_and_export(tmp_path):
    def limit(layer, inputs, target):
        return "gate cannot be exported at a dynamic size" if target.dynamic_spatial else None

    with registry.isolated():
        convspec.register_kind(model=GateLayer, rule=gate_rule, build=lambda layer, inputs: Gate(inputs[0][1], layer.start), export_limit=limit)
        assert convspec.check(GATE_SPEC, target="onnx").valid
        errors = [str(p) for p in checked_with_target(GATE_SPEC, target="onnx", dynamic_size=True).errors]
    assert errors == ["<string>:4:6: layers[1] 'g' (gate): gate cannot be exported at a dynamic size (kind 'gate', package test_user_kinds)"]


class WeightedSumLayer(convspec.LayerBase):
    """a * x + (1 - a) * y of two equal inputs, a learned."""

    type: Literal["weighted_sum"]


class WeightedSum(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(0.5))

    def forward(self, x, y):
        return self.a * x + (1 - self.a) * y


def weighted_sum_rule(layer, inputs):
    if len(inputs) != 2 or inputs[0] != inputs[1]:
        raise convspec.LayerError(f"weighted_sum takes two inputs of one shape, not {[list(s) for s in inputs]}", key="from")
    return convspec.Figures(inputs[0], params=1)


def test_a_user_kind_with_two_inputs():
    text = (
        "input: {channels: 3, size: [8, 8]}\nlayers:\n  - {type: conv, name: a, out: 4, kernel: 3, padding: 1}\n"
        "  - {type: conv, name: b, from: input, out: 4, kernel: 3, padding: 1}\n  - {type: weighted_sum, from: [a, b]}\n"
    )
    with registry.isolated():
        convspec.register_kind(model=WeightedSumLayer, rule=weighted_sum_rule, build=lambda layer, inputs: WeightedSum(), many_inputs=True)
        report = convspec.check(text)
        assert report.valid and report.layers[2].params == 1
        assert_report_matches_model(report, convspec.build(text, seed=0))
        wrong = _problems(text.replace("padding: 1}\n  - {type: weighted", "padding: 0}\n  - {type: weighted"))
    assert any("<string>:5:" in p and "two inputs of one shape" in p for p in wrong), wrong


def test_the_docs_show_the_demo_plugin_as_it_is():
    page = (ROOT / "docs" / "custom-kinds.md").read_text(encoding="utf-8")
    for path in ("convspec_demo_kinds/__init__.py", "convspec_demo_kinds/modules.py", "convspec_demo_kinds-0.1.0.dist-info/entry_points.txt"):
        assert (PLUGINS / "demo" / path).read_text(encoding="utf-8") in page, f"docs/custom-kinds.md: {path} differs from tests/plugins/demo/{path}"


class BlurPoolLayer(convspec.LayerBase):
    """A fixed 3x3 window at stride 2 (a blur pool): the receptive field grows as a 3x3 conv's at stride 2."""

    type: Literal["blur_pool"]


def blur_pool_rule(layer, inputs):
    batch, channels, *spatial = inputs[0]
    out = tuple(None if size is None else (size - 1) // 2 + 1 for size in spatial)
    return convspec.Figures((batch, channels, *out), kernel_size=3, stride=2)


def test_a_user_kinds_window_counts_in_the_receptive_field_like_a_convs():
    text = "input: {channels: 3, size: [16, 16]}\nlayers:\n  - {type: conv, out: 4, kernel: 3, stride: 2}\n  - {type: LAYER}\n"
    with registry.isolated():
        convspec.register_kind(model=BlurPoolLayer, rule=blur_pool_rule, build="torch.nn:Identity")
        user = convspec.check(text.replace("LAYER", "blur_pool")).layers[1]
    conv = convspec.check(text.replace("LAYER", "conv, out: 4, kernel: 3, stride: 2, padding: 1")).layers[1]
    assert (user.receptive_field, user.stride) == (conv.receptive_field, conv.stride) == ((7, 7), (4, 4))


def test_an_export_limit_that_raises_refuses_the_export_naming_the_package():
    def limit(layer, inputs, target):
        raise KeyError("opset")

    with registry.isolated():
        convspec.register_kind(model=GateLayer, rule=gate_rule, build="torch.nn:Identity", export_limit=limit, package="shaky")
        errors = [str(p) for p in checked_with_target(GATE_SPEC, target="onnx").errors]
    assert len(errors) == 1 and "the export_limit of kind 'gate' raised KeyError" in errors[0] and "package shaky" in errors[0], errors


def test_a_checkpoint_of_a_plugin_kind_loads_back(plugins, tmp_path):
    plugins("demo")
    model = convspec.build(SR_SPEC, seed=2)
    path = convspec.save_checkpoint(model, SR_SPEC, tmp_path / "sr.pt")
    loaded = convspec.load_checkpoint(path).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_a_rule_that_miscounts_parameters_is_a_located_build_error():
    from convspec.kinds import registry

    class Scale(convspec.LayerBase):
        type: Literal["scaled"]

    def rule(layer, shapes):
        return convspec.Figures(shape=shapes[0], params=0)  # the module holds one weight per channel

    def build(layer, shapes):
        return Channelwise(shapes[0][1])

    spec = "input: {channels: 4, size: [4, 4]}\nlayers:\n  - {name: s, type: scaled}\n"
    with registry.temporarily(convspec.plugins.to_kind(convspec.UserKind(Scale, rule, build, package="review"))):
        assert convspec.check(spec).total_params == 0
        with pytest.raises(convspec.SpecError, match=r":3:15: .*the rule counts 0 parameters \(0 trainable\) but the module holds 4"):
            convspec.build(spec)


@pytest.mark.parametrize("name", ["use", "input"])
def test_a_kind_cannot_take_a_name_the_loader_uses(name):
    model = type("Taken", (convspec.LayerBase,), {"__annotations__": {"type": Literal[name]}})
    with pytest.raises(ValueError, match=f"kind '{name}': the name is convspec's"):
        convspec.register_kind(model=model, rule=lambda layer, shapes: convspec.Figures(shape=shapes[0]), build="x:y")


class Channelwise(nn.Module):
    """x * w, one weight per channel (NCHW): `channels` parameters."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels, 1, 1))

    def forward(self, x):
        return x * self.weight


def test_a_kind_two_packages_declare_is_an_error_where_the_spec_uses_it(plugins, spec_file):
    plugins("demo", "twin")
    path = spec_file("input: {channels: 4, size: [8, 8]}\nlayers:\n  - {type: pixel_shuffle, name: up, upscale_factor: 2}\n")
    problems = _problems(path)
    assert any(
        p.startswith(f"{path}:3:") and "'pixel_shuffle' is declared by two installed packages" in p
        and "convspec-twin-kinds" in p and "convspec-demo-kinds" in p
        for p in problems
    ), problems
