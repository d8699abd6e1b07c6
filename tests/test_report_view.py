"""The report as people and scripts read it: the table (columns, notes, FLOPs, training memory), JSON, str."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import convspec
from convspec.budget import OPTIMIZER_STATES, estimate_memory, estimate_training_memory
from convspec.cli import cli
from convspec.report_view import kernel_and_stride, table_text

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


NOTES = ("kernel, stride:", "total:", "memory:", "training (")


def _rows(text: str) -> list[list[str]]:
    """The body rows of a table, split on runs of two or more spaces (empty cells vanish)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("layer ")) + 1
    body = [line for line in lines[start:] if not line.startswith(NOTES) and "nested rows folded" not in line]
    return [re.split(r" {2,}", line.strip()) for line in body]


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_the_table_has_no_trailing_spaces_and_a_legend(path):
    text = table_text(convspec.check(path), flops=True, train="adam")
    assert all(line == line.rstrip() for line in text.splitlines())
    assert "kernel, stride: the layer's own; RF, RF stride:" in text


def test_kernel_and_stride_columns_are_the_layers_own():
    report = convspec.check(ROOT / "specs" / "resnet34.yaml")
    rows = {row[0]: row for row in _rows(table_text(report, depth=0))}
    assert rows["stem"][3:5] == ["7x7", "2x2"] and rows["maxpool"][3:5] == ["3x3", "2x2"]
    assert rows["fc"][3] == "513,000"  # a linear layer has no kernel or stride: its params follow its output
    for layer in report.walk():
        kernel, stride = kernel_and_stride(layer)
        if layer.type in ("conv", "pool"):
            assert len(kernel) == len(stride) == 2 and kernel == tuple(layer.layer.kernel_size if isinstance(layer.layer.kernel_size, list) else [layer.layer.kernel_size] * 2)


def test_flops_are_two_per_mac_in_the_table_and_the_json():
    report = convspec.check(ROOT / "specs" / "small_cnn.yaml")
    header = table_text(report, flops=True).splitlines()[1].split()
    assert header[header.index("MACs") + 1] == "FLOPs"
    for row in _rows(table_text(report, flops=True)):
        macs, flops = (int(cell.replace(",", "")) for cell in row[-4:-2])
        assert flops == 2 * macs
    data = json.loads(run("check", str(ROOT / "specs" / "small_cnn.yaml"), "--format", "json", "--flops").stdout)
    assert data["total_flops"] == 2 * data["total_macs"] and all(layer["flops"] == 2 * layer["macs"] for layer in data["layers"])
    assert "flops" not in json.loads(run("check", str(ROOT / "specs" / "small_cnn.yaml"), "--format", "json").stdout)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_memory_counts_what_torch_optim_keeps(optimizer):
    """Gradients and optimizer state measured on the built model after one step equal the estimate."""
    spec = ROOT / "specs" / "resnet_small.yaml"
    report = convspec.check(spec, "2x3x64x64")
    step = estimate_training_memory(report, optimizer)
    model = convspec.build(spec, seed=0, input_shape="2x3x64x64")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if optimizer == "sgd" else torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    opt.step()
    gradient_bytes = sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    state_bytes = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t) and t.dim() > 0)
    assert step.gradient_bytes == gradient_bytes and step.optimizer_bytes == state_bytes
    assert step.weight_bytes == estimate_memory(report).weight_bytes
    assert step.total == step.weight_bytes + (1 + OPTIMIZER_STATES[optimizer]) * gradient_bytes + step.activation_bytes


def test_train_on_the_command_line():
    spec = str(ROOT / "specs" / "small_cnn.yaml")
    adam, sgd = run("check", spec, "--train"), run("check", spec, "--train", "--optimizer", "sgd")
    assert adam.exit_code == sgd.exit_code == 0
    assert "training (adam): about" in adam.stdout and "training (sgd): about" in sgd.stdout
    assert "training" not in run("check", spec).stdout
    refused = run("check", spec, "--optimizer", "sgd")
    assert refused.exit_code == 2 and "--optimizer goes with --train" in refused.output
    with pytest.raises(convspec.InputError, match="sgd, adam"):
        estimate_training_memory(convspec.check(spec), "rmsprop")


def test_the_json_of_an_untraceable_spec_names_it(tmp_path):
    named = tmp_path / "broken.yaml"
    named.write_text("name: my_net\ninput: {channels: 3, size: [8, 8], colour: 1}\nlayers:\n  - {type: flatten}\n")
    data = json.loads(run("check", str(named), "--format", "json").stdout)
    assert data["valid"] is False and data["name"] == "my_net" and data["errors"]
    unreadable = tmp_path / "bad_yaml.yaml"
    unreadable.write_text("name: x\nlayers: [\n")
    data = json.loads(run("check", str(unreadable), "--format", "json").stdout)
    assert data["name"] == "bad_yaml" and data["errors"]  # the file's stem, the format's default name


def test_a_report_prints_as_its_table():
    report = convspec.check(ROOT / "specs" / "small_cnn.yaml")
    assert str(report) == report.table().rstrip("\n")
    assert str(report) == run("check", str(ROOT / "specs" / "small_cnn.yaml")).stdout.rstrip("\n")
    assert repr(report) == "<Report small_cnn: 7 layers, 2,310 parameters, 737,480 MACs, valid>"
    assert json.loads(report.to_json()) == json.loads(run("check", str(ROOT / "specs" / "small_cnn.yaml"), "--format", "json").stdout)


BAD_GROUPS = "input: {channels: 6, size: [8, 8]}\nlayers:\n  - {type: group, name: g1, out: 8, kernel: 3, groups: 4}\n"


def test_check_raises_for_every_fault_and_keeps_the_traced_report():
    with pytest.raises(convspec.SpecError) as shape_fault:
        convspec.check(BAD_GROUPS)
    assert "groups=4 does not divide in_channels=6" in str(shape_fault.value)
    assert shape_fault.value.report.layers[0].name == "g1" and not shape_fault.value.report.valid
    with pytest.raises(convspec.SpecError) as key_fault:
        convspec.check(BAD_GROUPS.replace("groups: 4", "grups: 4"))
    assert "did you mean 'groups'" in str(key_fault.value)


def test_check_on_the_command_line_is_unchanged_by_it(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_GROUPS)
    table = run("check", str(spec))
    assert table.exit_code == 1 and "groups=4 does not divide" in table.output
    data = json.loads(run("check", str(spec), "--format", "json").stdout)
    assert data["valid"] is False and data["layers"][0]["name"] == "g1"  # the traced layers, as before


def test_replacing_a_file_is_asked_for_in_the_caller_s_words(tmp_path):
    from convspec.fileio import atomic_write_text

    out = tmp_path / "schema.json"
    out.write_text("{}")
    with pytest.raises(convspec.InputError, match="pass force=True to replace it"):
        atomic_write_text(out, "x")
    refused = run("schema", "-o", str(out))
    assert refused.exit_code == 2 and "pass --force to replace it" in refused.output
