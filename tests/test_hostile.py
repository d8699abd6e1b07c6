"""Hostile and careless input, aimed where random mutation rarely lands.

The guarantee (docs: spec-format, "Command line"): for any input, a clear error
or a correct result; never a traceback, a hang, an exhausted machine or code run
from data. Exit statuses: 0 ok, 1 invalid spec (or failed verification), 2 usage
or I/O error, 3 internal error (a bug). Each test goes through the command line
(click's CliRunner; a real process, under a memory limit, where a regression
could allocate terabytes) and asserts the exit status, the words of the message
and that no traceback is printed. "Fast" means refused by a limit before the work:
each such test runs under a time limit only a hang or a runaway reaches (ten
times a normal run or more), never a speed figure, which would fail on a busy
machine; the checker's speed is measured in benchmarks/. The parser-level cases of tests/test_source.py,
the located messages of tests/test_errors.py and the weights cases of
tests/test_export.py are not repeated here.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from convspec.cli import cli
from convspec.source import MAX_FILE_BYTES, MAX_NODES
from support import Hang, watchdog  # tests/ is on sys.path (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
SMALL_CNN = ROOT / "specs" / "small_cnn.yaml"

HEADER = "input:\n  channels: 3\n  size: [8, 8]\nlayers:\n"
TINY = HEADER + "  - {type: conv, out_channels: 2, kernel_size: 3, act: relu}\n"
INVALID = HEADER + "  - {type: conv, out_channels: 2, kernel_sise: 3}\n"  # a typo: exit 1
SHAPE_ERROR = HEADER + "  - {type: conv, out_channels: 2, kernel_size: 20}\n"  # kernel larger than the input




def run(*args, limit: float = 60.0):
    """Invoke the command in-process; a run past `limit` seconds fails the test instead of hanging it.

    Every existing file named on the command line, other than an `-o` output, keeps its bytes
    and modification time: a command never touches its spec (nor its --weights).
    """
    argv = [str(a) for a in args]
    inputs = [Path(a) for i, a in enumerate(argv) if Path(a).is_file() and (i == 0 or argv[i - 1] not in ("-o", "--output"))]
    try:
        with watchdog(limit, "convspec " + " ".join(argv)), untouched(*inputs):
            return CliRunner().invoke(cli, argv)
    except Hang as hang:
        pytest.fail(str(hang))


def assert_status(result, status: int | tuple[int, ...], *words: str) -> None:
    """The exit status, no traceback, no internal error, and every word in the output (case-insensitive)."""
    shown = f"exit {result.exit_code}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.output, shown
    assert "internal error" not in result.output, shown
    assert result.exception is None or isinstance(result.exception, SystemExit), f"uncaught {result.exception!r}\n{shown}"
    statuses = status if isinstance(status, tuple) else (status,)
    assert result.exit_code in statuses, shown
    for word in words:
        assert word.lower() in result.output.lower(), f"{word!r} not in the output\n{shown}"


def assert_located(result, path: Path) -> None:
    """Every problem line on stderr starts with `FILE:LINE:COL: ` (a final `N problems` line aside)."""
    lines = result.stderr.splitlines()
    assert lines, "nothing on stderr"
    if len(lines) > 1:
        assert re.fullmatch(r"\d+ problems", lines[-1]), result.stderr
        lines = lines[:-1]
    for line in lines:
        assert re.match(rf"{re.escape(str(path))}:\d+:\d+: \S", line), f"unlocated: {line!r}\n{result.stderr}"


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@contextlib.contextmanager
def untouched(*paths: Path):
    """The files keep their bytes and their modification time."""
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}
    yield
    for p, (data, mtime) in before.items():
        assert p.exists(), f"{p} was removed"
        assert p.read_bytes() == data, f"{p} was modified"
        assert p.stat().st_mtime_ns == mtime, f"{p} was rewritten (mtime changed)"


def leftovers(directory: Path, expected: set[str]) -> set[str]:
    """Files in `directory` besides the expected ones (partial outputs, temporaries)."""
    return set(os.listdir(directory)) - expected


def run_process(args: list[str], timeout: float, memory_gb: int = 8) -> subprocess.CompletedProcess:
    """`python -m convspec ARGS` in a real process whose address space is capped: a regression cannot take the machine."""

    def cap() -> None:
        limit = memory_gb << 30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "convspec", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, preexec_fn=cap
    )


# ================================================================ safe YAML

TAG = '!!python/object/apply:os.system ["touch {marker}"]'
TAG_POSITIONS = {
    "top_level_value": HEADER + "  - {type: identity}\nname: TAG\n",
    "layer_value": HEADER + "  - type: conv\n    out_channels: TAG\n    kernel_size: 1\n",
    "explicit_key": HEADER + "  - {type: identity}\n? TAG\n: 1\n",
    "implicit_key": HEADER + "  - {type: identity}\nTAG: 1\n",
    "key_inside_a_layer": HEADER + "  - {type: identity, TAG: 1}\n",
    "layer_list_item": HEADER + "  - TAG\n",
    "input_size_item": "input:\n  channels: 3\n  size: [TAG, 8]\nlayers:\n  - {type: identity}\n",
    "whole_document": "TAG\n",
    "whole_document_mapping_form": "--- !!python/object/apply:os.system\nargs: ['touch {marker}']\n",
    "anchored_then_aliased": HEADER + "  - &x TAG\n  - *x\n",
    "init_array_entry": HEADER + "  - {type: conv, out_channels: 1, kernel_size: 1, init: {weight: [[[[TAG]]], [[[1]]], [[[1]]]]}}\n",
    "merge_key_value": HEADER + "  - <<: TAG\n    type: identity\n",
    "second_document": HEADER + "  - {type: identity}\n---\nTAG\n",
    "object_new": HEADER + "  - {type: identity}\nname: !!python/object/new:os.system ['touch {marker}']\n",
    "subprocess_in_outputs": HEADER + "  - {type: identity}\noutputs: [!!python/object/apply:subprocess.call [[touch, '{marker}']]]\n",
}


@pytest.mark.parametrize("command", ["check", "build", "export"])
@pytest.mark.parametrize("position", sorted(TAG_POSITIONS))
def test_python_object_tags_run_nothing_in_any_position(position, command, tmp_path):
    marker = tmp_path / "MARKER"
    text = TAG_POSITIONS[position].replace("TAG", TAG).replace("{marker}", str(marker))
    spec = write(tmp_path / "evil.yaml", text)
    args = [command, spec] + (["-o", tmp_path / "out.onnx"] if command == "export" else [])
    with untouched(spec):
        result = run(*args)
    assert not marker.exists(), f"a YAML tag ran a command ({position}, {command})"
    assert_status(result, 1)
    assert_located(result, spec)
    assert leftovers(tmp_path, {"evil.yaml"}) == set()


@pytest.mark.parametrize(
    "text, words",
    [
        (HEADER + "  - {type: identity}\nname: !!python/name:os.system\n", ["tag", "python/name:os.system", "not allowed"]),
        (HEADER + "  - {type: identity}\nname: !!python/module:os\n", ["tag", "python/module:os", "not allowed"]),
        ("!!python/module:os\n", ["tag", "not allowed"]),
        (HEADER + "  - {type: identity}\n!!python/name:os.system : 1\n", ["tag", "not allowed", "key"]),
        (HEADER + "  - {type: fixed, filter: !!python/name:builtins.eval }\n", ["tag", "not allowed"]),
    ],
    ids=["name_value", "module_value", "module_document", "name_key", "name_in_layer"],
)
def test_python_name_and_module_tags_are_refused(text, words, tmp_path):
    spec = write(tmp_path / "t.yaml", text)
    result = run("check", spec)
    assert_status(result, 1, *words)
    assert_located(result, spec)


@pytest.mark.parametrize("value", ["3", "[1, 2]", "'text'", "null"])
def test_merge_key_with_a_non_mapping_is_an_error_not_a_crash(value, tmp_path):
    # `<<:` takes a mapping (or a list of them); anything else is the user's mistake, exit 1
    spec = write(tmp_path / "m.yaml", HEADER + f"  - <<: {value}\n    type: identity\n")
    result = run("check", spec)
    assert_status(result, 1, "merg")
    assert_located(result, spec)


def _laughs(levels: int = 9, fan: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", ["check", "build"])
def test_billion_laughs_through_the_command_is_fast_and_clear(command, tmp_path):
    spec = write(tmp_path / "laughs.yaml", HEADER + "  - {type: identity}\n" + _laughs())
    result = run(command, spec, limit=30)
    assert_status(result, 1, "nodes", f"{MAX_NODES:,}")
    assert_located(result, spec)


@pytest.mark.parametrize("shape", ["comment_lines", "one_long_line", "a_list"])
def test_file_over_the_size_limit_is_refused_fast_naming_the_limit(shape, tmp_path):
    size = 6 * 1024 * 1024
    body = {
        "comment_lines": ("# " + "x" * 97 + "\n") * (size // 100),
        "one_long_line": "name: " + "a" * size + "\n",
        "a_list": "junk: [" + "1, " * (size // 3) + "1]\n",
    }[shape]
    spec = write(tmp_path / "huge.yaml", TINY + body)
    assert spec.stat().st_size > MAX_FILE_BYTES
    for command in ("check", "build"):
        result = run(command, spec, limit=30)
        assert_status(result, 1, f"{MAX_FILE_BYTES:,}", "bytes")
        assert str(spec) in result.stderr


@pytest.mark.parametrize(
    "shape",
    ["a_flow_list", "many_keys"],
)
def test_file_just_under_the_size_limit_ends_quickly(shape, tmp_path):
    # Under MAX_FILE_BYTES, a few MB of nodes must end in the node limit's error in seconds,
    # not after minutes of parsing (the limit is only useful if it is reached fast).
    budget = MAX_FILE_BYTES - 4096
    body = {
        "a_flow_list": "junk: [" + "1, " * (budget // 3) + "1]\n",
        "many_keys": "".join(f"k{i}: 1\n" for i in range(budget // 12)),
    }[shape]
    spec = write(tmp_path / "near.yaml", TINY + body)
    assert spec.stat().st_size <= MAX_FILE_BYTES
    result = run("check", spec, limit=60)
    assert_status(result, 1, "nodes")
    assert_located(result, spec)


@pytest.mark.parametrize(
    "content, words",
    [
        (b"# caf\xe9 comment\n" + TINY.encode(), ["UTF-8", "0xe9"]),  # the bad byte is in a comment
        (TINY.encode()[:-3] + "é".encode()[:1], ["UTF-8", "0xc3"]),  # a multi-byte character cut by the file's end
        (b"\xff\xfe" + b"i\x00n\x00p\x00", ["UTF-16", "UTF-8"]),  # UTF-16 (Windows "Unicode"): named as such
        (b"\xfe\xff", ["UTF-8"]),
    ],
    ids=["latin1_in_comment", "truncated_multibyte", "utf16", "utf16_bom_only"],
)
def test_non_utf8_files(content, words, tmp_path):
    spec = write(tmp_path / "enc.yaml", content)
    result = run("check", spec)
    assert_status(result, 1, *words)
    assert_located(result, spec)


@pytest.mark.parametrize("text", ["   \n\n  \n", "# only a comment\n", "\n"], ids=["whitespace", "comment", "newline"])
@pytest.mark.parametrize("command", ["check", "build"])
def test_empty_specs(text, command, tmp_path):
    spec = write(tmp_path / "empty.yaml", text)
    result = run(command, spec)
    assert_status(result, 1, "empty")
    assert_located(result, spec)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("command", ["check", "build"])
def test_binary_file_with_nul_bytes(seed, command, tmp_path):
    rng = random.Random(seed)
    content = bytes(rng.randrange(256) for _ in range(4096)) + b"\x00" + bytes(rng.randrange(256) for _ in range(64))
    spec = write(tmp_path / "random.bin", content)
    result = run(command, spec)
    # a NUL anywhere means binary; a bad UTF-8 byte before it is an equally clear refusal
    assert_status(result, 1)
    assert re.search(r"binary|UTF-8", result.stderr), result.stderr
    assert_located(result, spec)


@pytest.mark.parametrize("command", ["check", "build", "export", "bench"])
def test_directory_as_spec_is_a_usage_error(command, tmp_path):
    args = [command, tmp_path] + (["-o", tmp_path / "m.onnx"] if command == "export" else [])
    result = run(*args)
    assert_status(result, 2, "directory")
    assert result.stdout == ""
    assert leftovers(tmp_path, set()) == set()


@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "fifo"])
def test_special_files_as_spec_are_refused_without_reading_forever(special, tmp_path):
    # A device or a named pipe reports size 0, so the size limit alone never stops the read:
    # /dev/zero would fill the memory, a FIFO with no writer would block forever.
    # Run in a process capped at 2 GB, so a regression ends in MemoryError, not in the OOM killer.
    if special == "fifo":
        special = str(tmp_path / "spec.yaml")
        os.mkfifo(special)
    elif not Path(special).exists():
        pytest.skip(f"{special} does not exist here")
    try:
        proc = run_process(["check", special], timeout=30, memory_gb=2)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`convspec check {special}` still running after 30 s")
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-1000:]}\nstderr:\n{proc.stderr[-1000:]}"
    assert "internal error" not in proc.stderr, shown
    assert "Traceback" not in proc.stderr, shown
    assert proc.returncode in (1, 2), shown
    assert special in proc.stderr, shown


@pytest.mark.parametrize("command", ["build", "export"])
def test_missing_spec_file_is_an_io_error(command, tmp_path):
    missing = tmp_path / "nope.yaml"
    args = [command, missing] + (["-o", tmp_path / "m.onnx"] if command == "export" else [])
    result = run(*args)
    assert_status(result, 2, "nope.yaml", "no such file")
    assert result.stdout == ""
    assert leftovers(tmp_path, set()) == set()


@pytest.mark.parametrize(
    "text, line, column",
    [
        (HEADER + "  -\t{type: identity}\n", 5, 4),  # after a list dash
        (HEADER + "  - type: conv\n\tout_channels: 2\n    kernel_size: 1\n", 6, 1),  # indentation
        (HEADER + "\t\n  - {type: identity}\n", 5, 1),  # a line of only a tab
    ],
    ids=["after_dash", "indentation", "tab_only_line"],
)
def test_tabs_are_errors_at_the_tab(text, line, column, tmp_path):
    spec = write(tmp_path / "tabs.yaml", text)
    result = run("check", spec)
    assert_status(result, 1, "tab")
    assert result.stderr.startswith(f"{spec}:{line}:{column}: "), result.stderr


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "  - {type: conv,\tout_channels: 2,\tkernel_size: 1}\n",  # between flow items
        HEADER + "  - type:\tidentity\n",  # after a colon
        HEADER + "  - {type: identity}\t\n",  # trailing
    ],
    ids=["in_flow", "after_colon", "trailing"],
)
def test_tabs_as_separating_white_space_are_read_as_yaml_allows(text, tmp_path):
    # YAML allows tabs as white space between tokens (only indentation must be spaces); libyaml reads these
    spec = write(tmp_path / "tabs.yaml", text)
    result = run("check", spec)
    assert_status(result, 0)


# ================================================================ numbers

BAD_NUMBERS = {
    "zero": "0",
    "negative": "-1",
    "fraction": "1.5",
    "yes": "yes",
    "quoted": '"3"',
    "huge_float": "1.0e+300",
    "e_notation": "1e300",  # YAML 1.1 reads this as a string
    "ten_to_the_20": "100000000000000000000",
}
ZERO_IS_VALID = {"padding", "output_padding"}

CONV_FIELDS = ["out_channels", "kernel_size", "stride", "padding", "dilation", "groups"]
# kind -> its valid settings (input 4x16x16); every integer field of the kind is tried with every bad value
CONV_BASES = {
    "conv": dict(out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1, groups=1),
    "pointwise": dict(out_channels=4, kernel_size=1, stride=1, padding=0, dilation=1, groups=1),
    "asymmetric": dict(out_channels=4, kernel_size="[3, 1]", stride=1, padding="[1, 0]", dilation=1, groups=1),
    "dilated": dict(out_channels=4, kernel_size=3, stride=1, padding=2, dilation=2, groups=1),
    "depthwise": dict(out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1, multiplier=1),
    "group": dict(out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1, groups=2),
    "separable": dict(out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1, multiplier=1),
    "transposed": dict(out_channels=4, kernel_size=2, stride=2, padding=0, dilation=1, groups=1, output_padding=0),
    "dynamic": dict(out_channels=4, kernel_size=3, stride=1, padding=1, dilation=1, groups=1, experts=2, reduction=2),
}


def _layer_block(kind: str, fields: dict, indent: str = "  ") -> str:
    lines = [f"{indent}- name: probe", f"{indent}  type: {kind}"] + [f"{indent}  {k}: {v}" for k, v in fields.items()]
    return "\n".join(lines) + "\n"


def _number_case(kind: str, field: str, value: str) -> str:
    """A spec whose only problem is `field: value` (on its own line) in a layer of `kind`."""
    head = "input:\n  channels: {channels}\n  size: [{size}, 16]\n  batch: {batch}\nlayers:\n"
    inputs = {"channels": "4", "size": "16", "batch": "1"}
    if kind == "input":
        inputs[field] = value
        return head.format(**inputs) + "  - {type: identity}\n"
    head = head.format(**inputs)
    if kind in CONV_BASES:
        return head + _layer_block(kind, {**CONV_BASES[kind], field: value})
    if kind == "linear":
        return head + "  - {type: global_pool}\n  - {type: flatten}\n" + _layer_block("linear", {field: value})
    if kind == "pool":
        return head + _layer_block("pool", {**dict(kernel_size=2, stride=2, padding=0), field: value})
    if kind == "repeat":
        return head + _layer_block("repeat", {field: value}) + "    layers:\n      - {type: conv, out_channels: 4, kernel_size: 1}\n"
    raise AssertionError(kind)


NUMBER_FIELDS = [(kind, field) for kind, base in CONV_BASES.items() for field in base] + [
    ("linear", "out_features"),
    ("pool", "kernel_size"),
    ("pool", "stride"),
    ("pool", "padding"),
    ("repeat", "times"),
    ("input", "channels"),
    ("input", "size"),
    ("input", "batch"),
]
NUMBER_CASES = [
    pytest.param(kind, field, value, id=f"{kind}.{field}={label}")
    for kind, field in NUMBER_FIELDS
    for label, value in BAD_NUMBERS.items()
    if not (label == "zero" and field in ZERO_IS_VALID)
]


@pytest.mark.parametrize("kind, field", NUMBER_FIELDS, ids=[f"{k}.{f}" for k, f in NUMBER_FIELDS])
def test_number_cases_are_valid_with_good_values(kind, field, tmp_path):
    """The matrix below changes one field only: with a good value each of its specs is valid."""
    good = {"input": {"channels": "4", "size": "16", "batch": "1"}, "linear": {"out_features": "3"}, "repeat": {"times": "2"}}
    value = good.get(kind, {}).get(field) or str(CONV_BASES.get(kind, dict(kernel_size=2, stride=2, padding=0))[field])
    spec = write(tmp_path / "ok.yaml", _number_case(kind, field, value))
    assert_status(run("check", spec), 0)


@pytest.mark.parametrize("kind, field, value", NUMBER_CASES)
def test_bad_numbers_name_the_field(kind, field, value, tmp_path):
    text = _number_case(kind, field, value)
    spec = write(tmp_path / "n.yaml", text)
    indent = "  " if kind == "input" else "    "
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith(f"{indent}{field}:"))
    result = run("check", spec, limit=10)
    assert_status(result, 1, field)
    assert_located(result, spec)
    at_field = [t for t in result.stderr.splitlines() if t.startswith(f"{spec}:{line}:") and field in t]
    assert at_field, f"no message at line {line} naming {field!r}:\n{result.stderr}"


@pytest.mark.parametrize(
    "layer",
    [
        "{type: fixed, filter: [[1, .nan], [0, 1]]}",
        "{type: fixed, filter: [[.inf, 1], [0, 1]]}",
        "{type: fixed, filter: [[1, 0], [-.inf, 1]], per_channel: false, out_channels: 2}",
        "{type: conv, out_channels: 1, kernel_size: 1, init: {weight: [[[[.nan]], [[1]], [[1]]]]}}",
        "{type: conv, out_channels: 1, kernel_size: 1, init: {weight: [[[[1]], [[.inf]], [[1]]]]}}",
        "{type: conv, out_channels: 2, kernel_size: 1, init: {bias: [.NaN, 0]}}",
    ],
    ids=["filter_nan", "filter_inf", "filter_minus_inf", "init_weight_nan", "init_weight_inf", "init_bias_nan"],
)
@pytest.mark.parametrize("command", ["check", "build"])
def test_nan_and_infinity_in_literal_arrays(layer, command, tmp_path):
    spec = write(tmp_path / "nan.yaml", HEADER + f"  - {layer}\n")
    result = run(command, spec)
    assert_status(result, 1, "NaN")
    assert_located(result, spec)
    assert result.stderr.startswith(f"{spec}:5:"), result.stderr


# ================================================================ resources

WIDE = """\
input:
  channels: 3
  size: [224, 224]
layers:
  - {name: wide1, type: conv, out_channels: 1000000, kernel_size: 3, padding: 1}
  - {name: wide2, type: conv, out_channels: 1000000, kernel_size: 3, padding: 1}
"""


def test_two_million_channel_convs_check_is_fast(tmp_path):
    spec = write(tmp_path / "wide.yaml", WIDE)
    result = run("check", spec, limit=30)
    assert_status(result, (0, 1))


def test_two_million_channel_convs_build_is_refused_by_the_budget(tmp_path):
    spec = write(tmp_path / "wide.yaml", WIDE)
    proc = run_process(["build", str(spec)], timeout=120)  # refused before any weight is allocated
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}"
    assert proc.returncode == 1, shown
    for bad in ("Traceback", "MemoryError", "internal error"):
        assert bad not in proc.stdout + proc.stderr, shown
    for word in ("budget", "wide1", "wide2"):
        assert word in proc.stderr, f"{word!r} not in stderr\n{shown}"
    assert proc.stdout == "", shown


def test_raising_the_budget_past_the_machine_is_a_clear_error(tmp_path):
    # --max-memory lets the user ask for more than there is: torch's allocation then fails.
    # That is a resource error to report, not an internal error (exit 3).
    spec = write(tmp_path / "wide.yaml", WIDE)
    proc = run_process(["build", str(spec), "--max-memory", "100TB"], timeout=120)
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-2000:]}"
    assert "internal error" not in proc.stderr, shown
    assert "Traceback" not in proc.stderr, shown
    assert proc.returncode in (1, 2), shown
    assert "memory" in proc.stderr.lower(), shown


HUGE_BUT_VALID = {
    # each is valid by the schema's rules (every integer <= 2**31 - 1)
    "repeat_times": HEADER + "  - {type: repeat, times: 2147483647, layers: [{type: conv, out_channels: 3, kernel_size: 1}]}\n",
    "repeat_times_100k": HEADER + "  - {type: repeat, times: 100000, layers: [{type: conv, out_channels: 3, kernel_size: 1}]}\n",
    "input_size_and_batch": "input:\n  channels: 3\n  size: [2147483647, 2147483647]\n  batch: 2147483647\nlayers:\n"
    "  - {type: conv, out_channels: 2147483647, kernel_size: 3}\n",
    "upsample_scale": HEADER + "  - {type: upsample, scale: 1.0e+300}\n",
    "upsample_scale_on_a_big_input": "input:\n  channels: 3\n  size: [2147483647, 2147483647]\nlayers:\n  - {type: upsample, scale: 1.0e+300}\n",
    "adaptive_pool_size": HEADER + "  - {type: adaptive_pool, size: 2147483647}\n",
    "dynamic_experts": HEADER + "  - {type: dynamic, out_channels: 4, kernel_size: 3, experts: 2147483647, reduction: 2147483647}\n",
    "transposed_everything": HEADER
    + "  - {type: transposed, out_channels: 3, kernel_size: 2147483647, stride: 2147483647, dilation: 2147483647}\n",
    "linear_features": HEADER + "  - {type: flatten}\n  - {type: linear, out_features: 2147483647}\n",
}


@pytest.mark.parametrize("case", sorted(HUGE_BUT_VALID))
def test_huge_values_check_fast(case, tmp_path):
    spec = write(tmp_path / "huge.yaml", HUGE_BUT_VALID[case])
    result = run("check", spec, limit=30)
    assert_status(result, (0, 1))
    if result.exit_code == 1:
        assert_located(result, spec)


HUGE_ONLY_WHEN_RUN = {"adaptive_pool_size"}  # no weights: building allocates little; running the model would not fit


@pytest.mark.parametrize("case", sorted(HUGE_BUT_VALID))
def test_huge_values_build_ends_in_a_clear_error(case, tmp_path):
    spec = write(tmp_path / "huge.yaml", HUGE_BUT_VALID[case])
    command = ["export", str(spec), "-o", str(tmp_path / "m.onnx")] if case in HUGE_ONLY_WHEN_RUN else ["build", str(spec)]
    try:
        proc = run_process(command, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`convspec {command[0]}` on {case} still running after 30 s")
    shown = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-1500:]}\nstderr:\n{proc.stderr[-1500:]}"
    assert "internal error" not in proc.stderr, shown
    assert "Traceback" not in proc.stderr, shown
    assert proc.returncode == 1, shown  # none of these fits in memory, or it is invalid


# ================================================================ atomic writes


def test_export_replaces_an_existing_file_only_with_force(tmp_path):
    import onnx

    spec = write(tmp_path / "net.yaml", TINY)
    out = write(tmp_path / "m.onnx", b"precious")
    with untouched(spec, out):
        result = run("export", spec, "-o", out)
    assert_status(result, 2, "--force", "exists")
    assert leftovers(tmp_path, {"net.yaml", "m.onnx"}) == set()
    with untouched(spec):
        forced = run("export", spec, "-o", out, "--force", limit=300)
    assert_status(forced, 0)
    assert onnx.load(str(out)).graph.node
    assert leftovers(tmp_path, {"net.yaml", "m.onnx"}) == set()


@pytest.mark.parametrize("command", ["build", "export"])
@pytest.mark.parametrize("text", [INVALID, SHAPE_ERROR], ids=["schema_error", "shape_error"])
def test_failing_command_with_force_leaves_the_existing_output_alone(command, text, tmp_path):
    spec = write(tmp_path / "bad.yaml", text)
    out = write(tmp_path / ("m.pt" if command == "build" else "m.onnx"), b"precious")
    with untouched(spec, out):
        result = run(command, spec, "-o", out, "--force")
    assert_status(result, 1)
    assert leftovers(tmp_path, {"bad.yaml", out.name}) == set()


@pytest.mark.parametrize("command", ["build", "export"])
def test_failing_command_writes_nothing_at_all(command, tmp_path):
    spec = write(tmp_path / "bad.yaml", SHAPE_ERROR)
    with untouched(spec):
        result = run(command, spec, "-o", tmp_path / "out.bin")
    assert_status(result, 1, "larger than")
    assert leftovers(tmp_path, {"bad.yaml"}) == set()


def test_failed_export_verification_exits_1_and_keeps_the_old_file(tmp_path, monkeypatch):
    from convspec import export as export_module

    monkeypatch.setattr(
        export_module, "_compare", lambda name, shape, e, a, rtol, atol: export_module.OutputCheck(name, shape, 1.0, 1.0, False)
    )
    spec = write(tmp_path / "net.yaml", TINY)
    out = write(tmp_path / "m.onnx", b"precious")
    with untouched(spec, out):
        result = run("export", spec, "-o", out, "--force", limit=300)
    assert_status(result, 1, "onnxruntime")
    assert leftovers(tmp_path, {"net.yaml", "m.onnx"}) == set()


@pytest.mark.parametrize("command", ["build", "export", "schema"])
def test_output_into_a_missing_directory_is_an_io_error(command, tmp_path):
    spec = write(tmp_path / "net.yaml", TINY)
    target = tmp_path / "no" / "such" / "out.bin"
    args = [command] + ([spec] if command != "schema" else []) + ["-o", target]
    with untouched(spec):
        result = run(*args)
    assert_status(result, 2, "no such directory")
    assert leftovers(tmp_path, {"net.yaml"}) == set()


@pytest.mark.parametrize("command", ["build", "export", "schema"])
def test_output_that_is_a_directory_is_a_usage_error(command, tmp_path):
    spec = write(tmp_path / "net.yaml", TINY)
    (tmp_path / "sub").mkdir()
    args = [command] + ([spec] if command != "schema" else []) + ["-o", tmp_path / "sub"]
    with untouched(spec):
        result = run(*args)
    assert_status(result, 2, "directory")
    assert os.listdir(tmp_path / "sub") == []


@pytest.mark.parametrize("command", ["build", "export"])
@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
def test_output_onto_the_spec_itself_never_replaces_the_spec(command, force, tmp_path):
    # "a failed command ... never touches the spec": `-o` naming the spec (a slip of the
    # shell's completion) must not turn the spec into a checkpoint, --force or not.
    spec = write(tmp_path / "net.yaml", TINY)
    args = [command, spec, "-o", spec] + (["--force"] if force else [])
    with untouched(spec):
        result = run(*args, limit=300)
    assert_status(result, 2)
    assert leftovers(tmp_path, {"net.yaml"}) == set()


def test_successful_commands_never_touch_the_spec(tmp_path):
    spec = write(tmp_path / "net.yaml", TINY)
    with untouched(spec):
        for args in (["check", spec], ["check", spec, "--format", "json"], ["build", spec, "-o", tmp_path / "m.pt", "--seed", "1"]):
            assert_status(run(*args), 0)
    assert leftovers(tmp_path, {"net.yaml", "m.pt"}) == set()


# ================================================================ streams and exit statuses


def test_results_go_to_stdout_and_errors_to_stderr(tmp_path):
    good = write(tmp_path / "good.yaml", TINY)
    bad = write(tmp_path / "bad.yaml", INVALID)

    ok = run("check", good)
    assert_status(ok, 0)
    assert "conv_0" in ok.stdout and ok.stderr == ""

    failed = run("check", bad)
    assert_status(failed, 1, "kernel_sise")
    assert failed.stdout == "" and "kernel_sise" in failed.stderr

    as_json = run("check", bad, "--format", "json")
    assert_status(as_json, 1)
    assert json.loads(as_json.stdout)["valid"] is False  # the machine-readable answer is the result, on stdout

    built = run("build", good)
    assert_status(built, 0)
    assert "Conv2d" in built.stdout and built.stderr == ""

    refused = run("build", bad)
    assert_status(refused, 1)
    assert refused.stdout == "" and "kernel_sise" in refused.stderr

    schema = run("schema")
    assert_status(schema, 0)
    json.loads(schema.stdout)
    assert schema.stderr == ""


@pytest.mark.parametrize(
    "args",
    [["check", "--bogus", "x.yaml"], ["check"], ["build", "x.yaml", "--seed", "abc"], ["check", "x.yaml", "--format", "xml"],
     ["nosuchcommand"], ["check", "x.yaml", "--input", "1x3xbad"]],
    ids=["unknown_option", "missing_argument", "bad_int", "bad_choice", "unknown_command", "bad_input_shape"],
)
def test_usage_errors_exit_2_on_stderr(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "x.yaml", TINY)
    result = run(*args)
    assert_status(result, 2)
    assert result.stdout == "" and result.stderr.strip()


DEBUG_CASES = {
    "build_shape_error": ("build", SHAPE_ERROR),
    "build_schema_error": ("build", INVALID),
    "check_yaml_syntax_error": ("check", HEADER + "  - {type: conv, out_channels: 2\n"),
    "check_binary_file": ("check", b"\x00\x01\x02"),
    "export_invalid_spec": ("export", INVALID),
}


@pytest.mark.parametrize("case", sorted(DEBUG_CASES))
def test_debug_shows_a_traceback_and_the_default_never(case, tmp_path):
    command, content = DEBUG_CASES[case]
    spec = write(tmp_path / "bad.yaml", content)
    extra = ["-o", tmp_path / "m.onnx"] if command == "export" else []
    plain = run(command, spec, *extra)
    assert_status(plain, 1)
    debug = run("--debug", command, spec, *extra)
    assert debug.exit_code == 1, debug.output
    assert "Traceback" in debug.stderr, debug.output
    assert "Traceback" not in debug.stdout


def test_debug_with_a_missing_file_shows_a_traceback_and_exits_2(tmp_path):
    result = run("--debug", "check", tmp_path / "nope.yaml")
    assert result.exit_code == 2, result.output
    assert "Traceback" in result.stderr and "no such file" in result.stderr


# ================================================================ weights


class Evil:
    """Unpickling this runs `touch MARKER`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _weights(tmp_path: Path, kind: str) -> Path:
    import torch

    import convspec

    path = tmp_path / "w.pt"
    marker = tmp_path / "MARKER"
    good = convspec.build(str(SMALL_CNN), seed=0).state_dict()
    if kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "list_of_tensors":
        torch.save(list(good.values()), path)
    elif kind == "dict_of_numbers":
        torch.save({k: 1.0 for k in good}, path)
    elif kind == "nested_dict":
        torch.save({"model": good}, path)
    elif kind == "evil_object":
        torch.save(Evil(marker), path)
    elif kind == "evil_in_checkpoint":
        torch.save({"format": "convspec-checkpoint/1", "spec_text": "", "state_dict": {"conv1.weight": Evil(marker)}}, path)
    elif kind == "other_spec_checkpoint":
        other = write(tmp_path / "other.yaml", TINY)
        convspec.save_checkpoint(convspec.build(str(other)), str(other), path)
        other.unlink()
    elif kind == "truncated_checkpoint":
        convspec.save_checkpoint(convspec.build(str(SMALL_CNN)), str(SMALL_CNN), path)
        path.write_bytes(path.read_bytes()[:300])
    elif kind == "empty_file":
        path.write_bytes(b"")
    elif kind == "the_yaml_spec":
        path.write_bytes(SMALL_CNN.read_bytes())
    elif kind == "extra_key":
        torch.save({**good, "extra.weight": torch.zeros(1)}, path)
    else:
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize(
    "kind, words",
    [
        ("tensor", ["not a state_dict"]),
        ("list_of_tensors", ["not a state_dict"]),
        ("dict_of_numbers", ["not a state_dict"]),
        ("nested_dict", ["not a state_dict"]),
        ("evil_object", ["cannot load weights safely"]),
        ("evil_in_checkpoint", ["cannot load weights safely"]),
        ("other_spec_checkpoint", ["missing keys", "unexpected keys", "conv1.conv.weight", "conv_0.conv.weight"]),
        ("truncated_checkpoint", ["w.pt"]),
        ("empty_file", ["w.pt"]),
        ("the_yaml_spec", ["w.pt"]),
        ("extra_key", ["unexpected keys", "extra.weight"]),
    ],
)
def test_export_refuses_weights_that_do_not_fit(kind, words, tmp_path):
    weights = _weights(tmp_path, kind)
    spec = write(tmp_path / "net.yaml", SMALL_CNN.read_text())
    before = set(os.listdir(tmp_path))
    with untouched(spec, weights):
        result = run("export", spec, "-o", tmp_path / "m.onnx", "--weights", weights, limit=300)
    assert not (tmp_path / "MARKER").exists(), "unpickling the weights ran a command"
    assert_status(result, 2, *words)
    assert result.stdout == ""
    assert set(os.listdir(tmp_path)) == before  # no m.onnx, no temporaries


def test_weights_that_are_a_directory_or_missing(tmp_path):
    spec = write(tmp_path / "net.yaml", SMALL_CNN.read_text())
    for weights in (tmp_path, tmp_path / "nope.pt"):
        result = run("export", spec, "-o", tmp_path / "m.onnx", "--weights", weights)
        assert_status(result, 2)
        assert not (tmp_path / "m.onnx").exists()
