"""Hostile and careless input: numbers, API arguments, checkpoints, output paths.

The promise for every case: exit 1 (a spec error) or 2 (usage or I/O) with a located
message; never exit 3 or a traceback; nothing read that the user did not name; nothing
half-written. Each kind of fault has its examples and, where a rule holds for all inputs,
a property test:

1. numbers: every float a spec or the command line gives is a finite number that float32
   holds (`convspec.limits.float32_problem`); sizes (`--max-memory`) are finite;
2. the Python API checks its arguments as the spec and the CLI do, with InputError;
3. checkpoints are data: checked entry by entry, the embedded spec parsed as text only;
4. commands that write a file refuse an unwritable destination before any work.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convspec
from convspec import checkpoint
from convspec.budget import memory_budget, parse_size
from convspec.errors import InputError, SpecError
from convspec.limits import FLOAT32_MAX, FLOAT32_TINY, SEED_MAX, batches_argument, float32_problem
from convspec.trace import parse_input_shape
from test_hostile import assert_status, leftovers, run, write  # the command-line helpers of the hostile suite

ROOT = Path(__file__).resolve().parent.parent
SMALL_CNN = ROOT / "specs" / "small_cnn.yaml"
TINY = {"input": {"channels": 1, "size": [6, 6]}, "layers": [{"type": "conv", "name": "c", "out_channels": 2, "kernel_size": 3}]}
TINY_YAML = "input: {channels: 1, size: [6, 6]}\nlayers:\n  - {type: conv, name: c, out_channels: 2, kernel_size: 3}\n"
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# every kind of number a careless or hostile spec holds: NaN, infinities, float64 extremes, subnormals, huge integers
ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 3.5e38, FLOAT32_MAX, -FLOAT32_MAX, FLOAT32_TINY, 1e-38, 1e-320, 5e-324, 0.0, -0.0]),
    st.integers(-(2**200), 2**200),
)


def in_float32(x: float | int) -> bool:
    """What float32 itself says of x (numpy's rounding, not our constants): finite and not flushed to 0 or subnormal."""
    import numpy as np

    if isinstance(x, float) and not math.isfinite(x):
        return False
    with np.errstate(over="ignore", under="ignore"):
        y = np.float32(float(x)) if abs(x) < 1e300 else np.float32(np.inf)
    return bool(np.isfinite(y)) and (x == 0 or abs(y) >= np.finfo(np.float32).tiny) and abs(x) <= float(np.finfo(np.float32).max)


def yaml_spec(layer: dict) -> str:
    return yaml.safe_dump({"input": {"channels": 1, "size": [6, 6]}, "layers": [layer]}, sort_keys=False, default_flow_style=None)


# ================================================================ 1. numbers: float32 range


@settings(max_examples=400, deadline=None)
@given(ANY_NUMBER)
def test_the_float32_rule_is_what_float32_holds(x):
    """One predicate, checked against numpy's float32 rather than against the constants it is written with."""
    assert (float32_problem(x) is None) == in_float32(x), x


# Each field that becomes a float32 weight or parameter, with x placed where the other rules hold
FLOAT_FIELDS = {
    "filter_entry": lambda x: {"type": "fixed", "filter": [[x, 1.0]]},
    "filter_entry_normalized": lambda x: {"type": "fixed", "filter": [[x, 1.0]], "normalize": True},
    "init_array": lambda x: {"type": "conv", "out_channels": 2, "kernel_size": 1, "init": {"bias": [x, 0.0]}},
    "init_constant": lambda x: {"type": "conv", "out_channels": 2, "kernel_size": 1, "init": {"weight": {"constant": x}}},
    "init_uniform": lambda x: {"type": "conv", "out_channels": 2, "kernel_size": 1, "init": {"weight": {"uniform": [x, x]}}},
    "init_normal_mean": lambda x: {"type": "conv", "out_channels": 2, "kernel_size": 1, "init": {"weight": {"normal": [x, 0.0]}}},
    "negative_slope": lambda x: {"type": "act", "fn": "leaky_relu", "negative_slope": x},
    "sigma": lambda x: {"type": "fixed", "filter": "gaussian", "kernel_size": 3, "sigma": abs(x)},
    "init_filter_sigma": lambda x: {"type": "conv", "out_channels": 1, "kernel_size": 3, "init": {"weight": {"filter": "gaussian", "kernel_size": 3, "sigma": abs(x)}}},
    "temperature": lambda x: {"type": "dynamic", "out_channels": 2, "kernel_size": 1, "temperature": abs(x)},
}


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@FEW
@given(x=ANY_NUMBER)
def test_every_float_field_takes_float32_numbers_only(field, x, tmp_path):
    """Outside float32: a spec error located on the layer's line. Inside: a module whose tensors are all finite."""
    layer = FLOAT_FIELDS[field](x)
    path = write(tmp_path / "f.yaml", yaml_spec(layer))
    line = 4  # input, layers, then the layer's first line
    try:
        report = convspec.check(path)
        problems = report.errors
    except SpecError as err:
        problems = err.problems
    if float32_problem(x) is not None:
        assert problems, f"{field}={x!r} accepted"
        assert any(p.location.file == str(path) and p.location.line is not None and p.location.line >= line for p in problems), problems
        assert any("float32" in p.message or "NaN/inf" in p.message for p in problems), problems
        return
    if problems:  # refused by a rule of its own (a zero-sum kernel normalized, sigma 0, ...)
        assert all(p.location.line is not None for p in problems), problems
        return
    model = convspec.build(report.spec, seed=0)
    for name, tensor in model.state_dict().items():
        assert torch.isfinite(tensor).all(), (field, x, name)


def test_a_huge_literal_kernel_is_a_spec_error_also_with_normalize(tmp_path):
    for normalize in ("", ", normalize: true"):
        spec = write(tmp_path / "k.yaml", "input: {channels: 1, size: [8, 8]}\nlayers:\n"
                     f"  - {{type: fixed, filter: [[1.0e+308, 1.0e+308]]{normalize}}}\n")
        for command in ("check", "build"):
            result = run(command, spec)
            assert_status(result, 1, "too large for float32")
            assert result.stderr.startswith(f"{spec}:3:"), result.stderr


@pytest.mark.parametrize(
    "layer, words",
    [
        ("{type: conv, out: 2, kernel: 1, init: {weight: {uniform: [-3.0e+38, 3.0e+38]}}}", "too far apart for float32"),
        ("{type: conv, out: 2, kernel: 1, init: {weight: {normal: [0, 1.0e+38]}}}", "beyond float32"),
        ("{type: upsample, scale: 1.0e-39}", "too small for float32"),
        ("{type: dropout, p: " + "9" * 400 + "}", "400 digits"),
        ("{type: act, fn: leaky_relu, negative_slope: " + "9" * 5000 + "}", "5000 digits"),  # beyond Python's int parsing
        ("{type: fixed, filter: gaussian, sigma: 1.0e+39, kernel_size: 3}", "too large for float32"),
    ],
    ids=["uniform_width", "normal_reach", "scale_subnormal", "p_400_digits", "slope_5000_digits", "sigma"],
)
def test_numbers_beyond_float32_in_other_places(layer, words, tmp_path):
    spec = write(tmp_path / "n.yaml", "input: {channels: 1, size: [8, 8]}\nlayers:\n  - " + layer + "\n")
    result = run("check", spec)
    assert_status(result, 1, words)
    assert result.stderr.startswith(f"{spec}:3:"), result.stderr


def test_filters_command_refuses_a_sigma_beyond_float32():
    assert_status(run("filters", "gaussian", "--kernel-size", "3", "--sigma", "1e39"), 1, "float32")
    assert_status(run("filters", "gaussian", "--kernel-size", "3", "--sigma", "nan"), 1, "NaN/inf")


@pytest.mark.parametrize("size", ["1e400", "1e308GB", "1e309", "inf", "nan", "-5", "lots", ""])
@pytest.mark.parametrize("command", ["build", "export"])
def test_max_memory_beyond_a_float_is_a_usage_error(size, command, tmp_path):
    args = [command, SMALL_CNN, "--max-memory", size] + (["-o", tmp_path / "m.onnx"] if command == "export" else [])
    assert_status(run(*args), 2, "--max-memory")
    assert leftovers(tmp_path, set()) == set()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.eE+-kmgtibKMGTIB ", max_size=30))
def test_parse_size_gives_bytes_or_value_error(text):
    """Any text: a whole number of bytes >= 0, or ValueError; never OverflowError."""
    try:
        size = parse_size(text)
    except ValueError:
        return
    assert isinstance(size, int) and size >= 0


# ================================================================ 2. API arguments


BAD_SHAPES = [(1, 3, 8.5, 8), (True, 3, 8, 8), (0, 3, 8, 8), (1, 3, -8, 8), (1, 3, 2**40, 8), (1, 3), (1, 3, 8, 8, 8, 8),
              "1x3x8.5x8", "1x3x0x8", "1x3x" + "9" * 5000 + "x8", "big", 3.0, {"b": 1}, 7]  # fmt: skip


@pytest.mark.parametrize("shape", BAD_SHAPES, ids=[repr(s)[:20] for s in BAD_SHAPES])
def test_input_shape_is_checked_by_every_entry_point(shape, tmp_path):
    from convspec.bench import bench

    model = convspec.build(TINY, seed=0)
    calls = {
        "check": lambda: convspec.check(TINY, input_shape=shape),
        "build": lambda: convspec.build(TINY, input_shape=shape),
        "export_onnx": lambda: convspec.export_onnx(model, TINY, tmp_path / "m.onnx", input_shape=shape),
        "bench": lambda: bench(TINY, input_shape=shape, rounds=1),
        "save_checkpoint": lambda: convspec.save_checkpoint(model, TINY, tmp_path / "m.pt", input_shape=shape),
    }
    for name, call in calls.items():
        with pytest.raises(InputError, match="input shape") as err:
            call()
        assert err.value.exit_code == 2, name
    assert leftovers(tmp_path, set()) == set()


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.lists(st.one_of(st.integers(-5, 2**40), st.floats(), st.booleans(), st.none(), st.text(max_size=3)), max_size=7),
    st.text(alphabet="0123456789xX, .-", max_size=40),
))  # fmt: skip
def test_parse_input_shape_gives_a_valid_shape_or_input_error(value):
    try:
        shape = parse_input_shape(value if isinstance(value, str) else tuple(value))
    except InputError:
        return
    assert 3 <= len(shape) <= 5 and all(type(s) is int and 1 <= s <= 2**31 - 1 for s in shape)
    if not isinstance(value, str):
        assert list(shape) == list(value)


@pytest.mark.parametrize("seed", [2**64, 2**70, -1, 1.5, True, "3", [1]])
def test_bad_seeds_are_input_errors(seed):
    with pytest.raises(InputError, match="seed"):
        convspec.build(TINY, seed=seed)


def test_seeds_cover_torchs_whole_range():
    a = convspec.build(TINY, seed=SEED_MAX).state_dict()
    b = convspec.build(TINY, seed=SEED_MAX).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert_status(run("build", SMALL_CNN, "--seed", str(2**64)), 2, "--seed")


@pytest.mark.parametrize("size", ["1GB", "512MiB", "2e9", 2e9, 10**12, "0.1 kb", "100", 0])
def test_max_memory_takes_the_cli_forms_through_one_parser(size):
    from convspec.budget import estimate_memory

    expected = parse_size(size) if isinstance(size, str) else int(size)
    assert memory_budget(size) == expected
    if expected >= estimate_memory(convspec.check(TINY)).weight_bytes:  # build allocates the weights
        assert isinstance(convspec.build(TINY, max_memory=size), torch.nn.Module)
    else:
        with pytest.raises(convspec.BudgetError):
            convspec.build(TINY, max_memory=size)


@pytest.mark.parametrize("size", ["lots", "1e400", -5, float("inf"), float("nan"), 1.5, True, [1], b"1GB"])
def test_bad_max_memory_is_an_input_error(size):
    with pytest.raises(InputError):
        convspec.build(TINY, max_memory=size)


def test_memory_format_is_checked():
    with pytest.raises(InputError, match="memory_format must be one of 'contiguous', 'channels_last'"):
        convspec.build(TINY, memory_format="bogus")
    with pytest.raises(InputError, match="memory_format"):
        convspec.build(TINY, memory_format=torch.channels_last)
    assert_status(run("build", SMALL_CNN, "--memory-format", "bogus"), 2, "--memory-format")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"opset": "18"}, "opset"),
        ({"opset": True}, "opset"),
        ({"force": "no"}, "force must be True or False"),
        ({"verify": 0}, "verify must be True or False"),
        ({"dynamic_size": "yes"}, "dynamic_size"),
        ({"rtol": -1.0}, "rtol"),
        ({"atol": float("nan")}, "atol"),
        ({"external_data_threshold": 1.5}, "external_data_threshold"),
        ({"on_step": "print"}, "on_step"),
        ({"model": 5}, "model must be"),
        ({"path": 5}, "file path"),
        ({"report": "report"}, "report must be"),
    ],
)
def test_export_onnx_checks_its_arguments_before_any_work(kwargs, words, tmp_path):
    model = kwargs.pop("model", None)
    path = kwargs.pop("path", tmp_path / "m.onnx")
    with pytest.raises(InputError, match=words):
        convspec.export_onnx(model, TINY, path, **kwargs)
    assert leftovers(tmp_path, set()) == set()


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"batches": (0,)}, "batch size"),
        ({"batches": (1.5,)}, "batch size"),
        ({"batches": ()}, "batches"),
        ({"batches": 8}, "batches"),
        ({"batches": (2**31,)}, "batch size"),
        ({"threads": 0}, "threads"),
        ({"threads": -1}, "threads"),
        ({"rounds": 0}, "rounds"),
        ({"block_seconds": float("inf")}, "block_seconds"),
        ({"block_seconds": 0}, "block_seconds"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bench_checks_its_arguments_before_any_work(kwargs, words):
    from convspec.bench import bench

    with pytest.raises(InputError, match=words):
        bench(TINY, **kwargs)


def test_bench_refuses_a_batch_over_the_memory_budget():
    """The inputs are made at each batch: a huge one is a BudgetError before any allocation, in the CLI too."""
    from convspec.bench import bench

    with pytest.raises(convspec.BudgetError, match="over the budget"):
        bench(SMALL_CNN, batches=(1, 2**31 - 1), rounds=1)
    assert_status(run("bench", SMALL_CNN, "--batch", "1,2147483647"), 1, "over the budget")
    assert_status(run("bench", SMALL_CNN, "--batch", "1," + "9" * 200), 2, "--batch")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789, x-", max_size=20), st.lists(st.one_of(st.integers(-3, 2**32), st.floats()), max_size=20)))
def test_batches_are_whole_numbers_in_range_or_input_error(value):
    try:
        batches = batches_argument(value)
    except InputError:
        return
    assert 1 <= len(batches) <= 16 and all(type(b) is int and 1 <= b <= 2**31 - 1 for b in batches)


@pytest.mark.parametrize("path", [5, None, "", b"m.pt", "a\0b.pt"])
def test_checkpoint_functions_check_their_paths(path):
    if isinstance(path, str) and path:
        with pytest.raises(InputError):
            convspec.load(path if path.endswith(".yaml") else path + ".yaml")  # a spec path through the API
    model = convspec.build(TINY)
    with pytest.raises(InputError):
        convspec.load_checkpoint(path)
    with pytest.raises(InputError):
        convspec.save_checkpoint(model, TINY, path)
    with pytest.raises(InputError, match="model must be"):
        convspec.save_checkpoint("not a model", TINY, "m.pt")


# ================================================================ 3. checkpoints are data


def good_payload() -> dict:
    model = convspec.build(TINY_YAML, seed=0)
    return {
        "format": checkpoint.CHECKPOINT_FORMAT, "convspec_version": convspec.__version__, "spec_name": "tiny",
        "input_shape": None, "spec_text": TINY_YAML, "state_dict": model.state_dict(),
    }  # fmt: skip


def crafted(tmp_path: Path, change) -> Path:
    payload = good_payload()
    change(payload)
    path = tmp_path / "crafted.pt"
    torch.save(payload, path)
    return path


def without(key):
    return lambda p: p.pop(key)


def setting(key, value):
    return lambda p: p.__setitem__(key, value)


def in_state(change):
    return lambda p: change(p["state_dict"])


MALICIOUS = {
    "no_spec_text": (without("spec_text"), ["lacks `spec_text`"]),
    "no_state_dict": (without("state_dict"), ["lacks `state_dict`"]),
    "neither": (lambda p: (p.pop("spec_text"), p.pop("state_dict")), ["`spec_text` and `state_dict`"]),
    "spec_text_int": (setting("spec_text", 3), ["spec_text", "int"]),
    "spec_text_bytes": (setting("spec_text", TINY_YAML.encode()), ["spec_text", "bytes"]),
    "spec_text_a_spec_path": (setting("spec_text", str(SMALL_CNN)), ["spec is invalid"]),
    "spec_text_etc_passwd": (setting("spec_text", "/etc/passwd"), ["spec is invalid"]),
    "spec_text_huge": (setting("spec_text", "#" * (5 * 1024 * 1024 + 1)), ["spec_text", "over"]),
    "spec_text_invalid_spec": (setting("spec_text", TINY_YAML.replace("kernel_size", "kernel_sise")), ["kernel_sise"]),
    "spec_text_python_tag": (setting("spec_text", "!!python/object/apply:os.system ['true']\n"), ["tag"]),
    "spec_name_int": (setting("spec_name", 5), ["spec_name"]),
    "input_shape_float": (setting("input_shape", [1, 1, 6.5, 6]), ["input_shape", "whole number"]),
    "input_shape_zero": (setting("input_shape", [0, 1, 6, 6]), ["input_shape"]),
    "input_shape_text": (setting("input_shape", "lots"), ["input_shape"]),
    "input_shape_wrong_channels": (setting("input_shape", [1, 5, 6, 6]), ["input_shape", "channels"]),
    "format_unknown": (setting("format", "convspec-checkpoint/99"), ["not a convspec checkpoint"]),
    "format_tensor": (setting("format", torch.zeros(2)), ["not a convspec checkpoint"]),
    "state_dict_list": (setting("state_dict", [torch.zeros(1)]), ["not a state_dict"]),
    "state_dict_int_key": (in_state(lambda s: s.__setitem__(3, torch.zeros(1))), ["not a state_dict", "3"]),
    "state_dict_number_value": (in_state(lambda s: s.__setitem__("c.conv.bias", 1.0)), ["not a state_dict", "c.conv.bias"]),
    "state_dict_wrong_shape": (in_state(lambda s: s.__setitem__("c.conv.weight", torch.zeros(2, 1, 5, 5))), ["c.conv.weight: file [2, 1, 5, 5], spec [2, 1, 3, 3]"]),
    "state_dict_missing_key": (in_state(lambda s: s.pop("c.conv.bias")), ["missing keys (1): c.conv.bias"]),
    "state_dict_unexpected_key": (in_state(lambda s: s.__setitem__("c.extra", torch.zeros(1))), ["unexpected keys (1): c.extra"]),
    "state_dict_int_weights": (in_state(lambda s: s.__setitem__("c.conv.weight", torch.zeros(2, 1, 3, 3, dtype=torch.int64))), ["dtype", "c.conv.weight"]),
    "state_dict_complex_weights": (in_state(lambda s: s.__setitem__("c.conv.bias", torch.zeros(2, dtype=torch.complex64))), ["dtype", "c.conv.bias"]),
    "state_dict_sparse": (in_state(lambda s: s.__setitem__("c.conv.bias", torch.zeros(2).to_sparse())), ["not a state_dict", "c.conv.bias"]),
    "state_dict_meta": (in_state(lambda s: s.__setitem__("c.conv.bias", torch.zeros(2, device="meta"))), ["c.conv.bias"]),
}


@pytest.mark.parametrize("case", MALICIOUS)
def test_malicious_checkpoints_are_input_errors(case, tmp_path, monkeypatch):
    change, words = MALICIOUS[case]
    path = crafted(tmp_path, change)
    # nothing may be read but the checkpoint: not the spec file a spec_text names, nor any other
    monkeypatch.setattr("convspec.source.read_spec_file", lambda *a: pytest.fail(f"read a spec file: {a}"))
    with pytest.raises(InputError) as err:
        convspec.load_checkpoint(path)
    assert err.value.exit_code == 2
    for word in words:
        assert word in str(err.value), (case, str(err.value))
    assert all(p.location.file and p.location.file.startswith(str(path)) for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("case", ["no_state_dict", "spec_text_int", "state_dict_int_key", "state_dict_wrong_shape", "state_dict_int_weights"])
def test_malicious_checkpoints_as_export_weights_exit_2(case, tmp_path):
    path = crafted(tmp_path, MALICIOUS[case][0])
    spec = write(tmp_path / "tiny.yaml", TINY_YAML)
    result = run("export", spec, "-o", tmp_path / "m.onnx", "--weights", path)
    assert_status(result, 2, str(path))
    assert leftovers(tmp_path, {"crafted.pt", "tiny.yaml"}) == set()


def test_a_checkpoint_is_loaded_with_weights_only(tmp_path, monkeypatch):
    path = crafted(tmp_path, lambda p: None)
    calls = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k) or real(*a, **k))
    assert isinstance(convspec.load_checkpoint(path), torch.nn.Module)
    model = convspec.build(TINY_YAML)
    checkpoint.load_weights_file(model, path)
    assert calls and all(k.get("weights_only") is True for k in calls)
    assert len(calls) == 2  # one read per call: a checkpoint given as --weights is not read twice


def test_pickled_code_in_a_checkpoint_does_not_run(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = crafted(tmp_path, setting("spec_name", Evil()))
    with pytest.raises(InputError, match="not a readable convspec checkpoint"):
        convspec.load_checkpoint(path)
    assert not marker.exists()


CHECKPOINT_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(), st.text(max_size=20), st.binary(max_size=8),
    st.sampled_from([TINY_YAML, str(SMALL_CNN), "/etc/passwd", "{}", "[1, 2]"]),
    st.lists(st.integers(-2, 10), max_size=5), st.just(torch.zeros(2)),
    st.dictionaries(st.one_of(st.text(max_size=12), st.integers(0, 3)), st.one_of(st.just(torch.zeros(2)), st.integers(0, 2)), max_size=3),
)  # fmt: skip


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["format", "spec_text", "spec_name", "input_shape", "state_dict", "other"]), CHECKPOINT_VALUES))
def test_any_payload_loads_or_is_an_input_error(tmp_path_factory, changes):
    path = tmp_path_factory.mktemp("fuzz") / "c.pt"
    payload = good_payload()
    payload.update(changes)
    torch.save(payload, path)
    try:
        model = convspec.load_checkpoint(path)
    except InputError as err:
        assert err.problems and err.exit_code == 2
        return
    assert isinstance(model, torch.nn.Module)
    assert isinstance(payload["spec_text"], str) and isinstance(payload["state_dict"], dict)


# ================================================================ 4. unwritable destinations, checked first


def unwritable_directories(tmp_path: Path) -> list[Path]:
    """/sys refuses new files even to root; a read-only folder refuses them to everyone else."""
    found = [Path("/sys")] if Path("/sys").is_dir() else []
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    found.append(locked)
    return found


def can_write_into(folder: Path) -> bool:
    try:
        (folder / ".probe").touch()
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


OUTPUT_COMMANDS = {
    "build": lambda out: ["build", SMALL_CNN, "-o", out],
    "export": lambda out: ["export", SMALL_CNN, "-o", out],
    "draw": lambda out: ["draw", SMALL_CNN, "-o", out],
    "schema": lambda out: ["schema", "-o", out],
}


@pytest.mark.parametrize("command", OUTPUT_COMMANDS)
def test_an_unwritable_destination_is_refused_before_any_work(command, tmp_path):
    tried = 0
    for folder in unwritable_directories(tmp_path):
        if can_write_into(folder):
            continue  # root passes permission bits
        tried += 1
        result = run(*OUTPUT_COMMANDS[command](folder / "out.file"))
        assert_status(result, 2, "cannot write", str(folder))
        assert result.stdout == "", f"work was done and printed before the refusal:\n{result.stdout[:500]}"
    if not tried:
        pytest.skip("every directory here is writable")


@pytest.mark.parametrize("command", OUTPUT_COMMANDS)
def test_a_file_in_place_of_the_directory_is_refused_first(command, tmp_path):
    plain = write(tmp_path / "plain.txt", "x")
    result = run(*OUTPUT_COMMANDS[command](plain / "out.file"))
    assert_status(result, 2, "not a directory")
    assert result.stdout == ""


def test_build_saves_before_printing_so_a_failed_write_prints_only_its_error(tmp_path, monkeypatch):
    """A write that fails after the checks (a full disk) leaves no file and prints no model."""

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    result = run("build", SMALL_CNN, "-o", tmp_path / "m.pt")
    assert_status(result, 2, "No space left on device")
    assert "Network(" not in result.output and result.stdout == ""
    assert leftovers(tmp_path, set()) == set()


def test_a_missing_weights_file_is_refused_before_the_build(tmp_path, monkeypatch):
    monkeypatch.setattr("convspec.builder.build_from_report", lambda *a, **k: pytest.fail("built before checking --weights"))
    result = run("export", SMALL_CNN, "-o", tmp_path / "m.onnx", "--weights", tmp_path / "nope.pt")
    assert_status(result, 2, "no such file")
    assert leftovers(tmp_path, set()) == set()
