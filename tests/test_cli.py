"""The `convspec` command line, through click's CliRunner (and two real subprocesses).

Exit statuses, what is printed, and what is written, for check, build, schema and
filters, as the contract (docs: spec-format, "Command line") promises them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import convspec
from convspec.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.yaml"))
SMALL_CNN = ROOT / "specs" / "small_cnn.yaml"
SMALL_CNN_NAMES = ["conv1", "pool1", "conv2", "pool2", "gap", "flat", "fc"]

NAMED_FILTERS = [
    "gaussian", "box", "sobel_x", "sobel_y", "scharr_x", "scharr_y",
    "prewitt_x", "prewitt_y", "laplacian", "sharpen", "emboss", "identity",
]  # fmt: skip

BAD_KEY_SPEC = "input:\n  channels: 3\n  size: [8, 8]\nlayers:\n  - {type: conv, out_channels: 4, kernel_sise: 3}\n"
BAD_SHAPE_SPEC = "input:\n  channels: 6\n  size: [8, 8]\nlayers:\n  - {type: group, out_channels: 8, kernel_size: 3, groups: 4}\n"


def run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def top_level_names(path: Path) -> list[str]:
    from convspec.compose import load_composed

    data = load_composed(path)[0]  # a spec that `extends` another holds only its changes
    return [layer.get("name") or f"{layer['type']}_{i}" for i, layer in enumerate(data["layers"])]


def assert_ok(result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}"


def state_dicts_equal(a: dict, b: dict) -> bool:
    import torch

    return list(a) == list(b) and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- check


def test_specs_exist():
    assert len(SPECS) >= 5 and SMALL_CNN in SPECS


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_check_table_every_spec(path):
    result = run("check", path)
    assert_ok(result)
    out = result.stdout
    for name in top_level_names(path):
        assert name in out, f"layer {name!r} not in the table:\n{out}"
    report = convspec.check(str(path))
    totals = [line for line in out.splitlines() if line.lstrip().lower().startswith("total")]
    assert totals, f"no totals line:\n{out}"
    plain = totals[-1].replace(",", "")
    assert str(report.total_params) in plain, plain
    assert str(report.total_macs) in plain, plain


LAYER_KEYS = {"name", "type", "output_shape", "params", "trainable_params", "macs", "receptive_field", "stride", "children"}
REPORT_KEYS = {"spec", "valid", "input_shape", "layers", "outputs", "total_params", "trainable_params", "total_macs", "errors"}


def _assert_layer_shape(layer: dict) -> None:
    assert set(layer) >= LAYER_KEYS, layer
    assert isinstance(layer["name"], str) and isinstance(layer["type"], str)
    assert isinstance(layer["output_shape"], list) and all(isinstance(s, int) for s in layer["output_shape"])
    for key in ("params", "trainable_params", "macs"):
        assert isinstance(layer[key], int) and layer[key] >= 0
    assert layer["trainable_params"] <= layer["params"]
    assert isinstance(layer["receptive_field"], list) and isinstance(layer["stride"], list)
    assert isinstance(layer["children"], list)
    for child in layer["children"]:
        _assert_layer_shape(child)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_check_json_every_spec(path):
    result = run("check", path, "--format", "json")
    assert_ok(result)
    got = json.loads(result.stdout)
    assert set(got) >= REPORT_KEYS, sorted(got)
    assert got["spec"] == str(path)
    assert got["valid"] is True and got["errors"] == []
    assert isinstance(got["input_shape"], list)
    assert [layer["name"] for layer in got["layers"]] == top_level_names(path)
    for layer in got["layers"]:
        _assert_layer_shape(layer)
    assert isinstance(got["outputs"], dict) and got["outputs"]
    for name, shape in got["outputs"].items():
        assert isinstance(name, str) and all(isinstance(s, int) for s in shape)
    assert got["total_params"] == sum(layer["params"] for layer in got["layers"])
    assert got["trainable_params"] == sum(layer["trainable_params"] for layer in got["layers"])
    assert got["total_macs"] == sum(layer["macs"] for layer in got["layers"])
    # the figures are the API's
    expected = json.loads(json.dumps(convspec.check(str(path)).to_dict()))
    assert got == expected


def test_check_input_option_changes_batch_and_shapes():
    result = run("check", SMALL_CNN, "--input", "2x3x96x96", "--format", "json")
    assert_ok(result)
    got = json.loads(result.stdout)
    assert got["input_shape"] == [2, 3, 96, 96]
    shapes = {layer["name"]: layer["output_shape"] for layer in got["layers"]}
    assert shapes["conv1"] == [2, 10, 96, 96]
    assert shapes["pool1"] == [2, 10, 48, 48]
    assert shapes["conv2"] == [2, 20, 48, 48]
    assert shapes["pool2"] == [2, 20, 24, 24]
    assert shapes["gap"] == [2, 20, 1, 1]
    assert shapes["flat"] == [2, 20]
    assert shapes["fc"] == [2, 10]
    assert got["outputs"] == {"fc": [2, 10]}
    # MACs scale with the batch and the area: conv1 at 96x96 batch 2 vs 32x32 batch 1
    base = {layer["name"]: layer for layer in convspec.check(str(SMALL_CNN)).to_dict()["layers"]}
    conv1 = next(layer for layer in got["layers"] if layer["name"] == "conv1")
    assert conv1["macs"] == base["conv1"]["macs"] * 2 * 9
    # the table says so too
    table = run("check", SMALL_CNN, "--input", "2x3x96x96")
    assert_ok(table)
    assert "2x3x96x96" in table.stdout and "2x10x96x96" in table.stdout


def test_check_without_input_size_needs_input_option(tmp_path):
    path = tmp_path / "nosize.yaml"
    path.write_text("input:\n  channels: 3\nlayers:\n  - {name: c, type: conv, out_channels: 4, kernel_size: 3}\n")
    result = run("check", path)
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert "--input" in result.output
    given = run("check", path, "--input", "1x3x20x20", "--format", "json")
    assert_ok(given)
    assert json.loads(given.stdout)["outputs"] == {"c": [1, 4, 18, 18]}


# ---------------------------------------------------------------- build


def test_build_prints_module_with_spec_names():
    result = run("build", SMALL_CNN)
    assert_ok(result)
    for name in SMALL_CNN_NAMES:
        assert f"({name}): " in result.stdout, f"child {name!r} not printed:\n{result.stdout}"
    assert "Conv2d" in result.stdout and "Linear" in result.stdout
    model = convspec.build(str(SMALL_CNN))
    assert [name for name, _ in model.named_children()] == SMALL_CNN_NAMES


def test_build_saves_checkpoint_that_loads(tmp_path):
    out = tmp_path / "model.pt"
    result = run("build", SMALL_CNN, "-o", out, "--seed", "0")
    assert_ok(result)
    assert out.is_file() and out.stat().st_size > 0
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]  # no temporary left behind
    restored = convspec.load_checkpoint(out)
    assert [name for name, _ in restored.named_children()] == SMALL_CNN_NAMES
    expected = convspec.build(str(SMALL_CNN), seed=0).state_dict()
    assert state_dicts_equal(restored.state_dict(), expected)


def test_build_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"precious bytes, not a checkpoint\n")
    before = out.read_bytes()
    result = run("build", SMALL_CNN, "-o", out)
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    assert "--force" in result.output
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.pt"]
    forced = run("build", SMALL_CNN, "-o", out, "--force", "--seed", "1")
    assert_ok(forced)
    assert out.read_bytes() != before
    assert state_dicts_equal(
        convspec.load_checkpoint(out).state_dict(), convspec.build(str(SMALL_CNN), seed=1).state_dict()
    )


def test_build_seed_is_reproducible(tmp_path):
    paths = {}
    for label, seed in (("a", 3), ("b", 3), ("c", 4)):
        paths[label] = tmp_path / f"{label}.pt"
        assert_ok(run("build", SMALL_CNN, "-o", paths[label], "--seed", seed))
    a, b, c = (convspec.load_checkpoint(paths[k]).state_dict() for k in "abc")
    assert state_dicts_equal(a, b)
    assert not state_dicts_equal(a, c)  # the seed does matter


def test_build_invalid_spec_exits_1_and_writes_nothing(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_SHAPE_SPEC)
    out = tmp_path / "model.pt"
    result = run("build", spec, "-o", out)
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert "does not divide" in result.output
    assert not out.exists()
    assert spec.read_text() == BAD_SHAPE_SPEC


# ---------------------------------------------------------------- schema


def _schema_from_stdout() -> dict:
    result = run("schema")
    assert_ok(result)
    return json.loads(result.stdout)


def test_schema_is_a_valid_draft_2020_12_schema():
    from jsonschema import Draft202012Validator

    schema = _schema_from_stdout()
    assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_every_spec_validates_against_schema(path):
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(_schema_from_stdout())
    errors = sorted(validator.iter_errors(yaml.safe_load(path.read_text())), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])


def test_schema_output_file(tmp_path):
    target = tmp_path / "convspec.schema.json"
    result = run("schema", "-o", target)
    assert_ok(result)
    assert json.loads(target.read_text()) == _schema_from_stdout()
    assert sorted(os.listdir(tmp_path)) == [target.name]  # written via a temp file that was renamed away
    # refuses to overwrite without --force, leaving the file as it was
    target.write_text("{}\n")
    refused = run("schema", "-o", target)
    assert "Traceback" not in refused.output
    assert refused.exit_code == 2, refused.output
    assert "--force" in refused.output
    assert target.read_text() == "{}\n"
    assert sorted(os.listdir(tmp_path)) == [target.name]
    forced = run("schema", "-o", target, "--force")
    assert_ok(forced)
    assert json.loads(target.read_text()) == _schema_from_stdout()
    # a missing directory is an I/O error that creates nothing
    missing = run("schema", "-o", tmp_path / "no" / "such" / "dir.json")
    assert missing.exit_code == 2, missing.output
    assert not (tmp_path / "no").exists()


# ---------------------------------------------------------------- filters


def test_filters_lists_all_named_filters():
    result = run("filters")
    assert_ok(result)
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    for name in NAMED_FILTERS:
        assert name in listed, f"{name} not listed:\n{result.stdout}"
    assert len(NAMED_FILTERS) == 12


def test_filters_gaussian_values():
    result = run("filters", "gaussian", "--kernel-size", "5", "--sigma", "1")
    assert_ok(result)
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()]
    assert len(rows) == 5 and all(len(row) == 5 for row in rows), result.stdout
    values = [[float(v) for v in row] for row in rows]
    assert math.isclose(sum(map(sum, values)), 1.0, abs_tol=1e-4)
    assert values[2][2] == max(map(max, values))  # peaks at the centre
    assert all(math.isclose(values[i][j], values[j][i], rel_tol=1e-5) for i in range(5) for j in range(5))


def test_filters_unknown_name_did_you_mean():
    # the contract: `filters` exits 0 or 1; a wrong name is a wrong value, like a bad spec
    result = run("filters", "sobell")
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert "did you mean 'sobel_" in result.output


# ---------------------------------------------------------------- global options


def test_version():
    result = run("--version")
    assert_ok(result)
    assert convspec.__version__ in result.output


# Shape problems are collected findings, not raised exceptions: there is no traceback to show for them.
@pytest.mark.parametrize("text", [BAD_KEY_SPEC], ids=["key_error"])
def test_debug_shows_traceback_default_does_not(text, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    plain = run("check", path)
    assert plain.exit_code == 1, plain.output
    assert "Traceback" not in plain.output
    debug = run("--debug", "check", path)
    assert debug.exit_code == 1, debug.output
    assert "Traceback" in debug.output, debug.output


# ---------------------------------------------------------------- real processes


def test_python_dash_m_check():
    proc = subprocess.run(
        [sys.executable, "-m", "convspec", "check", "specs/small_cnn.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "conv1" in proc.stdout and "fc" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_python_dash_m_export_prints_only_its_steps(tmp_path):
    # the exporter's modules are imported during the export and log on their own loggers
    proc = subprocess.run(
        [sys.executable, "-m", "convspec", "export", "specs/small_cnn.yaml", "-o", str(tmp_path / "m.onnx")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["export", "check", "verify", "write", "sizes"]
    assert proc.stdout.splitlines()[-1].split(None, 1)[1] == "spatial size fixed at 32x32; the spec also takes H and W: at least 4 (--dynamic-size keeps them)"


def test_checker_never_imports_torch():
    code = "import convspec, sys; convspec.check('specs/small_cnn.yaml'); assert 'torch' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_check_command_never_imports_torch():
    # the whole `convspec check` command, table and JSON, starts without torch
    code = (
        "import sys, atexit\n"
        "atexit.register(lambda: sys.__stderr__.write('TORCH LOADED' if 'torch' in sys.modules else 'NO TORCH'))\n"
        "from convspec.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    for extra in ([], ["--format", "json"]):
        proc = subprocess.run([sys.executable, "-c", code, "check", "specs/resnet34.yaml", *extra],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.endswith("NO TORCH"), proc.stderr[-300:]


# ---------------------------------------------------------------- check: folding deep tables


def _table_rows(out: str) -> list[str]:
    """The table's body rows: between the header line and the notes."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("layer ")) + 1
    return [line for line in lines[start:] if line and not line.startswith(("total:", "memory:", "kernel, stride:")) and "folded" not in line]


def _nested_count(layers) -> int:
    return sum(1 + _nested_count(layer.children) for layer in layers)


def test_check_short_table_shows_every_row():
    report = convspec.check(str(ROOT / "specs" / "resnet_small.yaml"))
    result = run("check", ROOT / "specs" / "resnet_small.yaml")
    assert_ok(result)
    assert len(_table_rows(result.stdout)) == _nested_count(report.layers) <= 60
    assert "folded" not in result.stdout


def test_check_deep_table_folds_to_one_level_with_a_note():
    path = ROOT / "specs" / "resnet34.yaml"
    report = convspec.check(str(path))
    total = _nested_count(report.layers)
    assert total > 60
    result = run("check", path)
    assert_ok(result)
    rows = _table_rows(result.stdout)
    shown = len(report.layers) + sum(len(layer.children) for layer in report.layers)
    assert len(rows) == shown
    assert f"{total - shown:,} nested rows folded" in result.stdout
    assert "--depth 4 shows every row" in result.stdout
    assert "  0 (+3)" in result.stdout  # a copy of layer1: its residual and two convs folded
    # the totals do not change with folding
    assert f"total: {report.total_params:,} parameters" in result.stdout


def test_check_depth_option():
    path = ROOT / "specs" / "resnet_small.yaml"
    report = convspec.check(str(path))
    top = run("check", path, "--depth", "0")
    assert_ok(top)
    rows = _table_rows(top.stdout)
    assert len(rows) == len(report.layers)
    assert not any(row.startswith(" ") for row in rows)
    assert f"{_nested_count(report.layers) - len(report.layers):,} nested rows folded" in top.stdout
    everything = run("check", ROOT / "specs" / "resnet34.yaml", "--depth", "99")
    assert_ok(everything)
    assert len(_table_rows(everything.stdout)) == _nested_count(convspec.check(str(ROOT / "specs" / "resnet34.yaml")).layers)
    assert "folded" not in everything.stdout
    assert run("check", path, "--depth", "-1").exit_code == 2
    assert run("check", path, "--depth", "x").exit_code == 2


def test_check_depth_leaves_json_alone():
    path = ROOT / "specs" / "resnet34.yaml"
    plain = run("check", path, "--format", "json")
    shallow = run("check", path, "--format", "json", "--depth", "0")
    assert_ok(shallow)
    assert json.loads(plain.stdout) == json.loads(shallow.stdout)
