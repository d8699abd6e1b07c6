"""`convspec resolve`: the final spec as YAML, which checks to the same report as the spec it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import convspec
from convspec.cli import cli
from convspec import resolve

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
YOLO = ROOT / "specs" / "yolo_backbone.yaml"


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def same_report(a, b) -> None:
    first, second = a.to_dict(), b.to_dict()
    for report in (first, second):
        report.pop("spec")
        stack = list(report["layers"])
        while stack:
            layer = stack.pop()
            layer.pop("requested", None)  # what a preset changed: the resolved spec asks for the result
            stack += layer["children"]
    assert first == second


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_example_resolves_to_the_same_report(path):
    text = resolve(path)
    same_report(convspec.check(path), convspec.check(text))
    assert "blocks" not in yaml.safe_load(text)
    assert resolve(text) == text  # resolving is done once and for all


@pytest.mark.parametrize("scale", ["n", "s", "m", "l", "x"])
def test_every_preset_resolves_to_the_same_report(scale):
    text = resolve(YOLO, scale=scale)
    same_report(convspec.check(YOLO, scale=scale), convspec.check(text))
    assert "scales" not in yaml.safe_load(text)


def test_extends_and_overrides_resolve(tmp_path):
    (tmp_path / "base.yaml").write_text("input: {channels: 3, size: [8, 8]}\nlayers:\n  - {name: stem, type: conv, out: 8, kernel: 3}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nlayers:\n  - {name: head, type: global_pool, op: avg}\n")
    result = run("resolve", tmp_path / "child.yaml", "--set", "stem.out=4")
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(result.output)
    assert data["name"] == "child" and "extends" not in data
    assert [layer["name"] for layer in data["layers"]] == ["stem", "head"] and data["layers"][0]["out"] == 4


def test_notes_say_what_the_preset_changed():
    result = run("resolve", YOLO, "--scale", "n")
    assert result.exit_code == 0
    assert result.output.startswith("# scale 'n' (width 0.25, depth 0.33, max_channels 1024, channel_divisor 8) applied\n")
    stem = next(line for line in result.output.splitlines() if "name: stem" in line)
    assert "out: 16" in stem and stem.endswith("# out_channels 64 -> 16")


def test_exit_statuses(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: {channels: 3, size: [8, 8]}\nlayers:\n  - {type: conv, out: 8, kernel: 30}\n")
    assert run("resolve", bad).exit_code == 1
    assert run("resolve", YOLO, "--scale", "xx").exit_code == 2
    assert run("resolve", tmp_path / "missing.yaml").exit_code == 2
