"""Fuzzing the text of valid specs: a clear, located error or a correct result; never a traceback or a hang.

Every example takes a valid spec (the files in specs/ and a few small ones made
here), mutates its text (deletes, duplicates or retypes keys, swaps values,
truncates, inserts random bytes, re-indents) and runs it through `convspec
check` (click's CliRunner) and through the API `convspec.check(path)`:

- the command exits 0 or 1 only (2 is for unreadable files and usage, 3 is an
  internal error), prints no traceback, and, on 1, every stderr line is a
  located message `FILE:LINE[:COL]: ...` (then an `N problems` line when N > 1);
- the API raises nothing but `convspec.ConvspecError` subclasses (never
  InputError for a readable file) and agrees with the command on validity;
- a valid spec of modest size is built (`convspec.BudgetError` is an accepted
  outcome) and every layer's output shape and parameter count equal the checker's;
- a `!!python/...` tag mutated in never runs (a marker file never appears);
- nothing takes more than a few seconds (a watchdog turns a hang into a failure).

The number of examples comes from CONVSPEC_FUZZ_EXAMPLES (default 150, < 60 s).
A summary (cases run, valid, invalid, built, ...) is printed at the end of the
module (visible with `-s`) and written to fuzz-summary.json under pytest's
base temp directory, and to $CONVSPEC_FUZZ_SUMMARY when that is set.
"""

from __future__ import annotations

import collections
import json
import math
import os
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convspec
from convspec.cli import cli
from support import Hang, assert_report_matches_model, watchdog  # tests/ is on sys.path (conftest.py)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("CONVSPEC_FUZZ_EXAMPLES", "150"))

WATCHDOG_SECONDS = 60.0  # a whole example (check + a modest build) past this is a hang, not a slow machine

# Build only what stays cheap: the checker's figures decide before anything is allocated.
MAX_BUILD_PARAMS = 5_000_000
MAX_BUILD_INPUT = 3 * 64 * 64 * 64  # 1x3x64x64 elements, x64
MAX_BUILD_ACTIVATIONS = 30_000_000  # every layer's output, summed (float32: 120 MB)
MAX_BUILD_MACS = 2_000_000_000

MARKER_PLACEHOLDER = "@MARKER@"  # replaced by a path in the temp directory before the file is written

# ---------------------------------------------------------------- seeds

HAND_MADE = {
    "tiny_chain.yaml": """\
input:
  channels: 3
  size: [16, 16]
layers:
  - {type: conv, out_channels: 8, kernel_size: 3, padding: 1, norm: batch, act: relu}
  - {type: pool, op: max, kernel_size: 2}
  - {type: global_pool, op: avg}
  - {type: flatten}
  - {type: linear, out_features: 4}
""",
    "block_style.yaml": """\
convspec: 1
name: block_style
input:
  channels: 2
  size: [12, 12]
  batch: 2
layers:
  - name: c1
    type: conv
    out_channels: 4
    kernel_size: 3
    stride: 1
    padding: same
    dilation: 1
    groups: 2
    act: relu
  - name: g1
    type: group
    out_channels: 8
    kernel_size: [3, 3]
    groups: 2
    padding: 1
  - name: dw
    type: depthwise
    kernel_size: 3
    multiplier: 2
    padding: 1
  - name: up
    type: transposed
    out_channels: 4
    kernel_size: 2
    stride: 2
    output_padding: 0
  - name: pl
    type: pool
    op: avg
    kernel_size: 2
    stride: 2
    padding: 0
  - name: fl
    type: flatten
  - name: fc
    type: linear
    out_features: 3
""",
    "wiring.yaml": """\
input:
  channels: 4
  size: [8, 8]
layers:
  - {name: stem, type: conv, out_channels: 8, kernel_size: 3, padding: 1}
  - name: res
    type: residual
    act: relu
    layers:
      - {type: conv, out_channels: 8, kernel_size: 3, padding: 1, norm: batch, act: relu}
      - {type: conv, out_channels: 8, kernel_size: 3, padding: 1, norm: batch}
  - name: rep
    type: repeat
    times: 2
    layers:
      - {type: separable, out_channels: 8, kernel_size: 3, padding: 1, act: relu}
  - name: blk
    type: block
    layers:
      - {type: pointwise, out_channels: 8}
      - {type: shuffle, groups: 2}
  - {name: a, type: conv, out_channels: 8, kernel_size: 1, from: stem}
  - {name: s, type: add, from: [blk, a], act: relu}
  - {name: c, type: concat, from: [s, stem]}
  - {name: d, type: dynamic, out_channels: 4, kernel_size: 3, padding: 1, experts: 2, reduction: 2}
outputs: [c, d]
""",
    "filters.yaml": """\
input:
  channels: 1
  size: [10, 10]
layers:
  - {name: blur, type: fixed, filter: gaussian, kernel_size: 3, sigma: 1.0, padding: same}
  - {name: edge, type: fixed, filter: [[1, 0, -1], [2, 0, -2], [1, 0, -1]], padding: 1}
  - name: conv
    type: conv
    out_channels: 2
    kernel_size: 1
    init:
      weight: [[[[0.5]]], [[[-0.5]]]]
      bias: {constant: 0.1}
  - {name: act, type: act, fn: leaky_relu, negative_slope: 0.2}
  - {name: drop, type: dropout, p: 0.1}
  - {name: up, type: upsample, scale: 2, mode: bilinear}
  - {name: ap, type: adaptive_pool, op: max, size: [3, 3]}
""",
    "one_d.yaml": """\
input: {channels: 2, size: [32]}
layers:
  - {type: conv, out_channels: 4, kernel_size: 5, stride: 2, padding: 2, norm: instance, act: silu}
  - {type: dilated, out_channels: 4, kernel_size: 3, dilation: 2, padding: same}
  - {type: norm, kind: group, groups: 2}
  - {type: pool, kernel_size: 2}
""",
    "anchors.yaml": """\
input: {channels: 3, size: [12, 12]}
layers:
  - &c {type: conv, out_channels: 6, kernel_size: 3, padding: 1, act: relu}
  - {<<: *c, out_channels: 8}
  - <<: *c
    stride: 2
  - &p {type: pool, op: max, kernel_size: 2}
  - *p
""",
    "three_d.yaml": """\
input:
  channels: 1
  size: [4, 6, 6]
layers:
  - {type: conv, out_channels: 2, kernel_size: [1, 3, 3], padding: [0, 1, 1]}
  - {type: asymmetric, out_channels: 2, kernel_size: [3, 1, 1], padding: [1, 0, 0]}
  - {type: global_pool}
""",
}


def _seeds() -> dict[str, str]:
    seeds = {f"specs/{p.name}": p.read_text(encoding="utf-8") for p in sorted((ROOT / "specs").glob("*.yaml"))}
    seeds.update(HAND_MADE)
    return seeds


SEEDS = _seeds()

# ---------------------------------------------------------------- mutations
#
# Texts are str throughout; random bytes (invalid UTF-8 included) ride along as
# surrogate escapes and become the raw bytes again when the file is written.

KEY_LINE = re.compile(r"^[ \t]*(?:-[ \t]+)?(?:<<|[A-Za-z_][A-Za-z0-9_]*)[ \t]*:", re.M)
# `key: value` in block or flow style; a value is a flat [list] or a scalar up to `,` `}` `]` `#` or the line end
PAIR = re.compile(
    r"(?P<key><<|[A-Za-z_][A-Za-z0-9_]*):[ \t]+"
    r"(?P<val>\[[^\[\]{}\n]*\]|[^\s,\[\]{}#][^,\[\]{}#\n]*?)"
    r"(?=[ \t]*(?:,|\}|\]|#|\n|$))"
)

RETYPED_VALUES = {
    # strings that look like numbers, booleans, null
    "text": ['"3"', "'8'", "true", "yes", "no", "off", "null", "~", "''", "same", "valid", "input", "conv", "relu",
             "gaussian", "batch", "max", "Ünïcödé", '"\\u0000"', '"\\t"'],
    "containers": ["[]", "{}", "[1, 2]", "[3, 1]", "[1, 2, 3, 4]", "[[1, -1]]", "[0, 0]", "[-1, 2]", "{a: 1}"],
    "small": ["-1", "-3", "0", "1", "2", "3", "7", "3.5", "1.5", "2.0", "0.5"],
    "huge": ["64", "4096", "65536", "2147483647", "2147483648", "100000000000000000000", "1e300", "1.0e+300",
             "-1.0e+300", "1.0e-300", "1.0e+20"],
    "special": [".nan", ".NaN", ".inf", "-.inf"],
    # other YAML spellings of numbers, and things a spec does not expect
    "spellings": ["0x10", "0o17", "1_000", "+4", "1:30", "2001-01-01", "="],
    "tags": ["*undefined", "&anchor 3", "!!str 3", "!!int '3'", "!!float 3", "!!binary aGVsbG8=", "!!set {a, b}",
             "!!omap [a: 1]", "!custom 3", f"!!python/object/apply:os.system ['touch {MARKER_PLACEHOLDER}']",
             f"!!python/object/apply:subprocess.call [[touch, '{MARKER_PLACEHOLDER}']]", "!!python/name:os.system",
             "!!python/module:os"],
    "long": ["x" * 5000, "[" + ", ".join(["1"] * 500) + "]"],
}
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?(?:e[+-]?\d+)?)$")
EXTREME_NUMBERS = ["0", "-1", "1.5", "2147483647", "2147483648", "100000000000000000000", "1.0e+300", "1.0e-300", ".nan", ".inf"]

INSERTED = [
    b"\x00", b"\t", b"\xff", b"\xfe\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80", b"\r", b"\r\n", b"\x1b[31m",
    b"\x0b", b"\x0c", "é".encode(), "日本".encode(), "\u2028".encode(), "\u0085".encode(), "\ufeff".encode(),
    "😀".encode(), b"\x7f", b"  ", b"\n", b"\n  - ", b": ", b"- ", b"{", b"}", b"[", b"]", b"&a ", b"*a", b"!", b"%",
    b"@", b"`", b"|", b">", b"'", b'"', b"#", b"---\n", b"...\n", b"? ",
]


def _escaped(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _short(value: str) -> str:
    return repr(value) if len(value) < 40 else repr(value[:20]) + f"...({len(value)} chars)"


def _pick(draw, items: list):
    return items[draw(st.integers(0, len(items) - 1))]


def op_delete_key_line(draw, text: str):
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if KEY_LINE.match(line)]
    if not candidates:
        return text, "delete-line: none"
    i = _pick(draw, candidates)
    return "".join(lines[:i] + lines[i + 1 :]), f"delete line {i + 1}: {lines[i].rstrip()!r}"


def op_duplicate_key_line(draw, text: str):
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if KEY_LINE.match(line)]
    if not candidates:
        return text, "duplicate-line: none"
    i = _pick(draw, candidates)
    line = lines[i] if lines[i].endswith("\n") else lines[i] + "\n"
    return "".join(lines[:i] + [line] + lines[i:]), f"duplicate line {i + 1}: {lines[i].rstrip()!r}"


def op_delete_pair(draw, text: str):
    pairs = list(PAIR.finditer(text))
    if not pairs:
        return text, "delete-pair: none"
    m = _pick(draw, pairs)
    end = m.end()
    rest = re.match(r"[ \t]*,[ \t]*", text[end:])
    if rest:
        end += rest.end()
    return text[: m.start()] + text[end:], f"delete pair {_short(m.group(0))}"


def op_duplicate_pair(draw, text: str):
    pairs = list(PAIR.finditer(text))
    if not pairs:
        return text, "duplicate-pair: none"
    m = _pick(draw, pairs)
    return text[: m.end()] + ", " + m.group(0) + text[m.end() :], f"duplicate pair {_short(m.group(0))} (flow style)"


def op_retype(draw, text: str):
    pairs = list(PAIR.finditer(text))
    if not pairs:
        return text, "retype: none"
    m = _pick(draw, pairs)
    value = draw(st.sampled_from(RETYPED_VALUES[draw(st.sampled_from(sorted(RETYPED_VALUES)))]))
    return text[: m.start("val")] + value + text[m.end("val") :], f"retype {m.group('key')}: {_short(m.group('val'))} -> {_short(value)}"


def op_retype_number(draw, text: str):
    """A number (a channel count, a size, `times`, a scale...) becomes an extreme one."""
    pairs = [m for m in PAIR.finditer(text) if NUMBER.match(m.group("val").strip())]
    if not pairs:
        return text, "retype-number: none"
    m = _pick(draw, pairs)
    value = draw(st.sampled_from(EXTREME_NUMBERS))
    return text[: m.start("val")] + value + text[m.end("val") :], f"retype {m.group('key')}: {m.group('val')!r} -> {value!r}"


def op_swap(draw, text: str):
    pairs = list(PAIR.finditer(text))
    if len(pairs) < 2:
        return text, "swap: none"
    i = draw(st.integers(0, len(pairs) - 1))
    j = draw(st.integers(0, len(pairs) - 1))
    if i == j:
        return text, "swap: same"
    a, b = sorted((pairs[i], pairs[j]), key=lambda m: m.start())
    swapped = (
        text[: a.start("val")] + b.group("val") + text[a.end("val") : b.start("val")] + a.group("val") + text[b.end("val") :]
    )
    return swapped, f"swap {a.group('key')}={_short(a.group('val'))} with {b.group('key')}={_short(b.group('val'))}"


def op_truncate(draw, text: str):
    raw = text.encode("utf-8", "surrogateescape")
    at = draw(st.integers(0, len(raw)))
    return _escaped(raw[:at]), f"truncate at byte {at} of {len(raw)}"


def op_insert_bytes(draw, text: str):
    raw = text.encode("utf-8", "surrogateescape")
    at = draw(st.integers(0, len(raw)))
    inserted = draw(
        st.one_of(
            st.sampled_from(INSERTED),
            st.binary(min_size=1, max_size=8),
            st.text(min_size=1, max_size=4).map(lambda s: s.encode("utf-8", "surrogatepass")),
        )
    )
    return _escaped(raw[:at] + inserted + raw[at:]), f"insert {inserted!r} at byte {at}"


def op_reindent(draw, text: str):
    lines = _lines(text)
    if not lines:
        return text, "reindent: empty"
    i = draw(st.integers(0, len(lines) - 1))
    line = lines[i]
    body = line.lstrip(" \t")
    indent = line[: len(line) - len(body)]
    how = draw(st.sampled_from(["more", "less", "none", "tab", "tab-mixed", "odd"]))
    if how == "more":
        new = indent + " " * draw(st.integers(1, 6)) + body
    elif how == "less":
        new = indent[draw(st.integers(1, 4)) :] + body
    elif how == "none":
        new = body
    elif how == "tab":
        new = "\t" * max(1, len(indent) // 2) + body
    elif how == "tab-mixed":
        new = indent + "\t" + body
    else:
        new = " " * (len(indent) + 1) + body
    lines[i] = new
    return "".join(lines), f"reindent line {i + 1} ({how}): {line.rstrip()!r} -> {new.rstrip()!r}"


OPS = [
    op_delete_key_line, op_duplicate_key_line, op_delete_pair, op_duplicate_pair, op_retype, op_retype,
    op_retype_number, op_swap, op_truncate, op_insert_bytes, op_reindent,
]  # fmt: skip  (retype twice: the richest source of wrong values)


@st.composite
def mutated_specs(draw):
    seed = draw(st.sampled_from(sorted(SEEDS)))
    text = SEEDS[seed]
    steps = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(OPS))
        text, what = op(draw, text)
        steps.append(what)
    return seed, steps, text.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------- the oracle




def assert_located_errors(stderr: str, path: Path) -> None:
    located = re.compile(rf"{re.escape(str(path))}:\d+(?::\d+)?: \S")
    lines = stderr.splitlines()
    assert lines, "exit 1 but nothing on stderr"
    if len(lines) > 1 and lines[-1].startswith("input sizes that check: "):
        lines = lines[:-1]  # check's answer to a shape error: the sizes the spec takes (not a problem)
    if len(lines) > 1:
        count = re.fullmatch(r"(\d+) problems", lines[-1])
        assert count, f"more than one line but no final 'N problems' line:\n{stderr}"
        lines = lines[:-1]
        assert int(count.group(1)) == len(lines), f"'{count.group(0)}' but {len(lines)} message lines:\n{stderr}"
    for line in lines:
        assert located.match(line), f"unlocated message {line!r} in:\n{stderr}"


def modest(report) -> bool:
    """The checker's figures say building and running this costs little."""
    if report.total_params > MAX_BUILD_PARAMS or report.total_macs > MAX_BUILD_MACS:
        return False
    if any(s is None for s in report.input_shape) or math.prod(report.input_shape) > MAX_BUILD_INPUT:
        return False
    activations = 0
    for layer in report.walk():
        shape = layer.output_shape
        if shape is None or any(s is None for s in shape):
            return False
        activations += math.prod(shape)
    return activations <= MAX_BUILD_ACTIVATIONS


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def counts(tmp_path_factory):
    tally: collections.Counter = collections.Counter()
    seeds: collections.Counter = collections.Counter()
    started = time.perf_counter()
    yield tally, seeds
    summary = {
        "examples_requested": EXAMPLES,
        "seconds": round(time.perf_counter() - started, 1),
        **dict(sorted(tally.items())),
        "per_seed": dict(sorted(seeds.items())),
    }
    text = json.dumps(summary, indent=2)
    out = tmp_path_factory.getbasetemp() / "fuzz-summary.json"
    out.write_text(text + "\n")
    if os.environ.get("CONVSPEC_FUZZ_SUMMARY"):
        Path(os.environ["CONVSPEC_FUZZ_SUMMARY"]).write_text(text + "\n")
    print(f"\nfuzz summary ({out}):\n{text}")


@settings(
    deadline=None,
    max_examples=EXAMPLES,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(case=mutated_specs())
def test_mutated_spec_gives_a_located_error_or_a_correct_model(case, fuzz_dir, counts):
    tally, seeds = counts
    seed, steps, raw = case
    marker = fuzz_dir / "pwned"
    raw = raw.replace(MARKER_PLACEHOLDER.encode(), str(marker).encode())
    marker.unlink(missing_ok=True)  # so a failure names the example that ran a command
    path = fuzz_dir / "mutated.yaml"
    path.write_bytes(raw)
    tally["cases"] += 1
    seeds[seed] += 1
    note = f"seed {seed}, mutations: {steps}"

    with watchdog(WATCHDOG_SECONDS, f"checking/building the mutated spec ({note})"):
        result = CliRunner().invoke(cli, ["check", str(path)])
        out, err = result.stdout, result.stderr
        assert "Traceback" not in result.output, f"{note}\n{result.output}"
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{note}\nuncaught {result.exception!r}"
        )
        assert result.exit_code in (0, 1), f"{note}\nexit {result.exit_code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
        if result.exit_code == 1:
            assert_located_errors(err, path)
        else:
            assert out.strip(), f"{note}\nexit 0 but nothing printed"
            assert not err.strip(), f"{note}\nexit 0 but stderr: {err}"

        report = None
        try:
            report = convspec.check(str(path))
            api_valid = report.valid
        except convspec.InputError as error:  # a readable file is never an I/O or usage error
            pytest.fail(f"{note}\nAPI raised InputError for a readable file: {error}")
        except convspec.ConvspecError:
            api_valid = False
        except Exception as error:  # noqa: BLE001 - the point of the test
            pytest.fail(f"{note}\nAPI raised {type(error).__name__}: {error}")
        assert api_valid == (result.exit_code == 0), f"{note}\nAPI valid={api_valid}, CLI exit {result.exit_code}\n{err}"
        assert not marker.exists(), f"{note}\na YAML tag ran a command"

        if not api_valid:
            tally["invalid"] += 1
            return
        tally["valid"] += 1
        if not modest(report):
            tally["valid_too_big_to_build"] += 1
            return
        try:
            model = convspec.build(str(path))
        except convspec.BudgetError:
            tally["budget_refused"] += 1
            return
        except Exception as error:  # noqa: BLE001
            pytest.fail(f"{note}\nchecked valid, but build raised {type(error).__name__}: {error}")
        try:
            # eval mode: BatchNorm in training mode needs more than one value per channel, which a
            # valid spec at batch 1 need not give (the same net trains fine at batch 32)
            assert_report_matches_model(report, model.eval())
        except AssertionError as error:
            raise AssertionError(f"{note}\nthe checker's figures differ from the built model: {error}") from None
        except Exception as error:  # noqa: BLE001 - running a checked model must work
            pytest.fail(f"{note}\nchecked valid, but the built model raised {type(error).__name__}: {error}")
        tally["built_and_matched"] += 1


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_seed_is_valid(name):
    """Mutations start from valid specs; a broken seed would only test the first error."""
    text = SEEDS[name]
    report = convspec.check((ROOT / name) if name.startswith("specs/") else text)
    assert report.valid, [str(p) for p in report.errors]
