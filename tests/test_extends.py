"""`extends`: a spec merged onto its base by layer name, every value located in the file it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import convspec
import convspec.compose
from convspec import compose
from convspec.cli import cli

BASE = """\
name: basenet
input: {channels: 3, size: [16, 16]}
layers:
  - {name: stem, type: conv, out: 16, kernel: 3, padding: 1, act: relu}
  - {type: pool, op: max, kernel: 2}
  - {name: body, type: conv, out: 32, kernel: 3, padding: 1}
  - name: stage
    type: block
    layers:
      - {name: conv1, type: conv, out: 32, kernel: 3, padding: 1}
      - {name: conv2, type: conv, out: 32, kernel: 3, padding: 1}
  - {name: head, type: global_pool, op: avg}
"""


def write(tmp_path, **files):
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return tmp_path


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_merge_by_name_remove_and_insert(tmp_path):
    write(tmp_path, base=BASE, child="""\
extends: base.yaml
input: {size: [32, 32]}
layers:
  - {name: stem, out: 24, act: null}
  - {after: stem, name: blur, type: fixed, filter: gaussian, kernel: 3, sigma: 1.0, padding: 1}
  - {remove: body}
  - {name: stage, layers: [{name: conv2, stride: 2}, {before: conv1, name: pre, type: act, fn: relu}]}
  - {name: fc_in, type: flatten}
""")
    spec = convspec.load(tmp_path / "child.yaml")
    assert spec.name == "child"  # not inherited
    assert spec.input.size == [32, 32] and spec.input.channels == 3
    names = [layer.name for layer in spec.layers]
    assert names == ["stem", "blur", "pool_1", "stage", "head", "fc_in"]  # pool keeps its base name
    stem = spec.layers[0]
    assert stem.out_channels == 24 and stem.act is None and stem.kernel_size == 3
    assert [layer.name for layer in spec.layers[3].layers] == ["pre", "conv1", "conv2"]
    assert spec.layers[3].layers[2].stride == 2
    report = convspec.check(spec)
    assert report.valid, report.errors


def test_error_in_an_inherited_layer_points_into_the_base(tmp_path):
    write(tmp_path, base=BASE.replace("out: 32, kernel: 3, padding: 1}\n  - name: stage", "out: 32, kernel: 3, padding: 1, groups: 3}\n  - name: stage"), child="extends: base.yaml\nlayers:\n  - {name: stem, out: 8}\n")
    result = run("check", tmp_path / "child.yaml")
    assert result.exit_code == 1
    first = result.output.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'base.yaml'}:6:"), first
    assert "groups=3" in first


def test_error_in_the_child_points_into_the_child(tmp_path):
    write(tmp_path, base=BASE, child="extends: base.yaml\nlayers:\n  - {name: stem, out: -8}\n")
    with pytest.raises(convspec.SpecError) as err:
        convspec.load(tmp_path / "child.yaml")
    (problem,) = err.value.problems
    assert problem.location.file == str(tmp_path / "child.yaml") and problem.location.line == 3


def test_a_chain_of_bases(tmp_path):
    write(tmp_path, base=BASE, middle="extends: base.yaml\nlayers:\n  - {name: stem, out: 8}\n",
          child="extends: middle.yaml\nlayers:\n  - {name: body, out: 12}\n")  # fmt: skip
    spec = convspec.load(tmp_path / "child.yaml")
    assert spec.layers[0].out_channels == 8 and spec.layers[2].out_channels == 12


def test_cycle_is_an_error(tmp_path):
    write(tmp_path, a="extends: b.yaml\n", b="extends: a.yaml\n")
    result = run("check", tmp_path / "a.yaml")
    assert result.exit_code == 1
    assert "`extends` makes a cycle (a.yaml -> b.yaml -> a.yaml)" in result.output
    write(tmp_path, me="extends: me.yaml\n")
    assert "cycle" in run("check", tmp_path / "me.yaml").output


def test_missing_base_is_located(tmp_path):
    write(tmp_path, child="input: {channels: 3}\nextends: nothere.yaml\n")
    result = run("check", tmp_path / "child.yaml")
    assert result.exit_code == 1
    assert f"{tmp_path / 'child.yaml'}:2:1: `extends: nothere.yaml`: {tmp_path / 'nothere.yaml'}: no such file" in result.output


@pytest.mark.parametrize(
    "entry, message",
    [
        ("{remove: bdy}", "no layer of that name (did you mean 'body'?)"),
        ("{after: stme, name: x, type: identity}", "`after: stme`: the base's layers has no layer of that name (did you mean 'stem'?)"),
        ("{after: stem, name: body, type: identity}", "the base already has a layer 'body'"),
        ("{remove: body, out: 3}", "a `remove` entry holds only the name"),
    ],
)
def test_bad_merge_entries(tmp_path, entry, message):
    write(tmp_path, base=BASE, child=f"extends: base.yaml\nlayers:\n  - {entry}\n")
    with pytest.raises(convspec.SpecError) as err:
        convspec.load(tmp_path / "child.yaml")
    (problem,) = err.value.problems
    assert message in problem.message and problem.location.line == 3


def test_limits_hold_for_the_whole_chain(tmp_path, monkeypatch):
    write(tmp_path, base=BASE, child="extends: base.yaml\n")
    monkeypatch.setattr(compose, "MAX_NODES", 40)  # base alone is over it with the child
    with pytest.raises(convspec.SpecError, match="the `extends` chain has more than 40 nodes"):
        convspec.load(tmp_path / "child.yaml")
    monkeypatch.setattr(compose, "MAX_FILE_BYTES", 100)
    monkeypatch.setattr(compose, "MAX_NODES", 10**6)
    with pytest.raises(convspec.SpecError, match="over 100 bytes"):
        convspec.load(tmp_path / "child.yaml")


def test_load_composed_for_tools(tmp_path):
    write(tmp_path, base=BASE, child="extends: base.yaml\nlayers:\n  - {name: stem, out: 8}\n")
    data, source = compose.load_composed(tmp_path / "child.yaml")
    assert data["layers"][0]["out"] == 8 and "extends" not in data
    assert source.locate(("layers", 0, "out")).file == str(tmp_path / "child.yaml")
    assert source.locate(("layers", 0, "kernel")) .file == str(tmp_path / "base.yaml")


def test_text_extends_relative_to_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path, base=BASE)
    monkeypatch.chdir(tmp_path)
    spec = convspec.load("extends: base.yaml\nlayers:\n  - {name: stem, out: 8}\n")
    assert spec.layers[0].out_channels == 8


SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))


def _without_spec(report) -> dict:
    data = report.to_dict()
    data.pop("spec"), data.pop("name")
    return data


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_a_child_that_touches_the_first_layer_changes_nothing(tmp_path, path):
    """Merging by name renames nothing: every layer keeps its (default) name, so the report is the base's."""
    base = convspec.load(path)
    first = base.layers[0].name or "first"
    data = convspec.compose.load_composed(path)[0]
    layer = data["layers"][0]
    if "name" not in layer:  # its default name, as `extends` keeps it
        kind = layer["type"] if layer["type"] != "use" else data["blocks"][layer["block"]]["type"]
        first = f"{kind}_0"
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {path}\nlayers:\n  - {{name: {first}}}\n")
    assert _without_spec(convspec.check(child)) == _without_spec(convspec.check(path))


def test_load_composed_takes_an_unsaved_buffer(tmp_path):
    write(tmp_path, base=BASE)
    data, source = compose.load_composed(tmp_path / "child.yaml", "extends: base.yaml\nlayers:\n  - {name: stem, out: 4}\n")
    assert data["layers"][0]["out"] == 4 and source.locate(("layers", 0, "out")).line == 3


@pytest.mark.parametrize(
    "base, message",
    [
        ("- just\n- a list\n", "the top level of a spec must be a mapping"),
        ("layers: [\n", "YAML syntax error"),
        (None, "is a directory"),
    ],
    ids=["list", "broken", "directory"],
)
def test_a_bad_base_is_reported(tmp_path, base, message):
    if base is None:
        (tmp_path / "base.yaml").mkdir()
    else:
        write(tmp_path, base=base)
    write(tmp_path, child="extends: base.yaml\n")
    with pytest.raises(convspec.SpecError, match=message) as err:
        convspec.load(tmp_path / "child.yaml")
    assert all(p.location.file for p in err.value.problems)


def test_a_chain_too_deep(tmp_path):
    write(tmp_path, base=BASE)
    previous = "base"
    for i in range(compose.MAX_CHAIN + 1):
        write(tmp_path, **{f"c{i}": f"extends: {previous}.yaml\n"})
        previous = f"c{i}"
    with pytest.raises(convspec.SpecError, match=f"more than {compose.MAX_CHAIN} specs deep"):
        convspec.load(tmp_path / f"{previous}.yaml")
    assert convspec.load(tmp_path / f"c{compose.MAX_CHAIN - 2}.yaml").layers[0].name == "stem"


def test_extends_must_be_a_path(tmp_path):
    write(tmp_path, child="extends: [base.yaml]\n")
    with pytest.raises(convspec.SpecError, match=r"`extends` must be the path of one base spec \(a string\), not \['base.yaml'\]"):
        convspec.load(tmp_path / "child.yaml")
