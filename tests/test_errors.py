"""How `convspec check` reports bad specs: a table of bad specs, each through the real CLI.

Every case is a YAML text written to ``tmp_path / "bad.yaml"`` and checked with
``convspec check``. Each asserts the exit status, the exact ``bad.yaml:LINE:COL``
of the offending key (worked out by hand from the text below; the line numbers
are written beside each line), the layer label where one applies, and the key
words of the message. No case may print a Python traceback.

The shared header takes lines 1-4, so the first layer starts on line 5:

    1 input:
    2   channels: 6
    3   size: [16, 16]
    4 layers:
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner

from convspec.cli import cli

HEADER = "input:\n  channels: 6\n  size: [16, 16]\nlayers:\n"


def spec(*layer_lines: str, header: str = HEADER) -> str:
    """The header (lines 1-4) and then `layer_lines`, the first on line 5."""
    return header + "\n".join(layer_lines) + "\n"


@dataclass
class Case:
    id: str
    text: str | bytes | None  # None: no file is written (a missing file)
    exit: int
    line: int | None  # None: the problem has no line (e.g. a file that does not exist)
    col: int | None
    label: str | None  # e.g. "layers[2] 'g1' (group)"; None where no layer applies
    words: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)  # extra arguments after `check SPEC`


CASES = [
    # ------------------------------------------------------------ keys and types
    Case(
        "unknown_key_did_you_mean",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_sise: 3",  # 8
        ),
        1, 8, 5, "layers[0] 'c1' (conv)", ["unknown key 'kernel_sise'", "did you mean 'kernel_size'"],
    ),
    Case(
        "unknown_key_nested_in_residual",
        spec(
            "  - name: res",  # 5
            "    type: residual",  # 6
            "    layers:",  # 7
            "      - type: conv",  # 8
            "        out_channels: 6",  # 9
            "        kernel_size: 3",  # 10
            "        padding: 1",  # 11
            "      - type: conv",  # 12
            "        out_channels: 6",  # 13
            "        kernel_size: 3",  # 14
            "        paddin: 1",  # 15
        ),
        1, 15, 9, "layers[0].layers[1] 'conv_1' (conv)", ["unknown key 'paddin'", "did you mean 'padding'"],
    ),
    Case(
        "unknown_top_level_key",
        "input:\n  channels: 6\n  size: [16, 16]\nlayer:\n  - {type: identity}\n",
        # `layer:` is on line 4, column 1
        1, 4, 1, None, ["unknown key 'layer'", "did you mean 'layers'"],
    ),
    Case(
        "unknown_layer_type",
        spec(
            "  - name: c1",  # 5
            "    type: convv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
        ),
        1, 6, 5, "layers[0] 'c1'", ["unknown layer type 'convv'", "did you mean 'conv'"],
    ),
    Case(
        "missing_type",
        spec(
            "  - name: c1",  # 5
            "    out_channels: 8",  # 6
            "    kernel_size: 3",  # 7
        ),
        1, 5, 5, "layers[0] 'c1'", ["missing", "`type`"],
    ),
    Case(
        "unknown_filter_did_you_mean",
        spec(
            "  - name: blur",  # 5
            "    type: fixed",  # 6
            "    filter: gausian",  # 7
            "    kernel_size: 5",  # 8
            "    sigma: 1.0",  # 9
        ),
        1, 7, 5, "layers[0] 'blur' (fixed)", ["gausian", "did you mean 'gaussian'"],
    ),
    Case(
        "unknown_activation",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    act: relu7",  # 9
        ),
        1, 9, 5, "layers[0] 'c1' (conv)", ["'relu7'", "did you mean"],
    ),
    Case(
        "unknown_padding_mode",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    padding_mode: reflection",  # 9
        ),
        1, 9, 5, "layers[0] 'c1' (conv)", ["'reflection'", "did you mean 'reflect'"],
    ),
    Case(
        "missing_out_channels",
        spec(
            "  - type: identity",  # 5
            "  - name: c1",  # 6  <- the layer mapping starts here (column 5)
            "    type: conv",  # 7
            "    kernel_size: 3",  # 8
        ),
        1, 6, 5, "layers[1] 'c1' (conv)", ["missing", "out_channels"],
    ),
    Case(
        "missing_input_channels",
        "input:\n  size: [16, 16]\nlayers:\n  - {type: identity}\n",
        # the `input` mapping: its key is at 1:1
        1, 1, 1, None, ["missing", "channels"],
    ),
    Case(
        "both_out_and_out_channels",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out: 8",  # 7
            "    out_channels: 8",  # 8
            "    kernel_size: 3",  # 9
        ),
        1, 7, 5, "layers[0] 'c1' (conv)", ["`out`", "`out_channels`"],
    ),
    Case(
        "both_kernel_and_kernel_size",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel: 3",  # 8
            "    kernel_size: 3",  # 9
        ),
        1, 8, 5, "layers[0] 'c1' (conv)", ["`kernel`", "`kernel_size`"],
    ),
    Case(
        "yes_as_channel_count",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: yes",  # 7
            "    kernel_size: 3",  # 8
        ),
        1, 7, 5, "layers[0] 'c1' (conv)", ["out_channels", "positive integer", "boolean"],
    ),
    Case(
        "float_kernel_size",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3.5",  # 8
        ),
        1, 8, 5, "layers[0] 'c1' (conv)", ["kernel_size", "integer", "3.5"],
    ),
    Case(
        "negative_stride",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    stride: -1",  # 9
        ),
        1, 9, 5, "layers[0] 'c1' (conv)", ["stride", "-1"],
    ),
    Case(
        "huge_channel_count",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 4294967296",  # 7
            "    kernel_size: 3",  # 8
        ),
        1, 7, 5, "layers[0] 'c1' (conv)", ["out_channels", "too large"],
    ),
    Case(
        "invalid_layer_name",
        spec(
            "  - name: 1conv",  # 5
            "    type: identity",  # 6
        ),
        1, 5, 5, "layers[0]", ["'1conv'", "letters, digits and underscores"],
    ),
    Case(
        "repeat_zero_times",
        spec(
            "  - name: rep",  # 5
            "    type: repeat",  # 6
            "    times: 0",  # 7
            "    layers:",  # 8
            "      - type: identity",  # 9
        ),
        1, 7, 5, "layers[0] 'rep' (repeat)", ["times", ">= 1"],
    ),
    Case(
        "dropout_probability_out_of_range",
        spec(
            "  - name: drop",  # 5
            "    type: dropout",  # 6
            "    p: 1.5",  # 7
        ),
        1, 7, 5, "layers[0] 'drop' (dropout)", ["1.5"],
    ),
    Case(
        "format_version_2",
        "convspec: 2\n" + HEADER + "  - {type: identity}\n",
        1, 1, 1, None, ["convspec", "1"],
    ),
    # ------------------------------------------------------------ per-kind rules
    Case(
        "groups_not_dividing_in_channels",
        spec(
            "  - type: identity",  # 5
            "  - type: identity",  # 6
            "  - name: g1",  # 7
            "    type: group",  # 8
            "    out_channels: 8",  # 9
            "    kernel_size: 3",  # 10
            "    groups: 4",  # 11
        ),
        1, 11, 5, "layers[2] 'g1' (group)", ["groups=4 does not divide in_channels=6", "divisors: 1, 2, 3, 6"],
    ),
    Case(
        "groups_not_dividing_in_channels_flow_style",
        spec(
            "  - {type: identity}",  # 5
            "  - {name: g1, type: group, out_channels: 8, kernel_size: 3, groups: 4}",  # 6
            # columns: '{' is 5, name 6, type 16, out_channels 29, kernel_size 46, groups 62
        ),
        1, 6, 62, "layers[1] 'g1' (group)", ["groups=4 does not divide in_channels=6", "divisors: 1, 2, 3, 6"],
    ),
    Case(
        "groups_not_dividing_out_channels",
        spec(
            "  - name: g2",  # 5
            "    type: group",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    groups: 3",  # 9
        ),
        1, 9, 5, "layers[0] 'g2' (group)", ["groups=3 does not divide out_channels=8", "divisors: 1, 2, 4, 8"],
    ),
    Case(
        "group_conv_with_groups_1",
        spec(
            "  - name: g1",  # 5
            "    type: group",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    groups: 1",  # 9
        ),
        1, 9, 5, "layers[0] 'g1' (group)", ["groups >= 2"],
    ),
    Case(
        "depthwise_wrong_out_channels",
        spec(
            "  - name: dw",  # 5
            "    type: depthwise",  # 6
            "    kernel_size: 3",  # 7
            "    out_channels: 8",  # 8
        ),
        1, 8, 5, "layers[0] 'dw' (depthwise)", ["not 8", "6", "multiplier"],
    ),
    Case(
        "asymmetric_with_square_kernel",
        spec(
            "  - name: a1",  # 5
            "    type: asymmetric",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
        ),
        1, 8, 5, "layers[0] 'a1' (asymmetric)", ["unequal"],
    ),
    Case(
        "dilated_with_dilation_1",
        spec(
            "  - name: d1",  # 5
            "    type: dilated",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    dilation: 1",  # 9
        ),
        1, 9, 5, "layers[0] 'd1' (dilated)", ["dilation >= 2"],
    ),
    Case(
        "pointwise_with_kernel_3",
        spec(
            "  - name: p1",  # 5
            "    type: pointwise",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
        ),
        1, 8, 5, "layers[0] 'p1' (pointwise)", ["kernel_size 1"],
    ),
    Case(
        "in_channels_mismatch",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    in_channels: 3",  # 7
            "    out_channels: 8",  # 8
            "    kernel_size: 3",  # 9
        ),
        1, 7, 5, "layers[0] 'c1' (conv)", ["in_channels=3", "6 channels"],
    ),
    Case(
        "shuffle_groups_not_dividing",
        spec(
            "  - name: sh",  # 5
            "    type: shuffle",  # 6
            "    groups: 4",  # 7
        ),
        1, 7, 5, "layers[0] 'sh' (shuffle)", ["does not divide", "divisors: 1, 2, 3, 6"],
    ),
    # ------------------------------------------------------------ shapes
    Case(
        "kernel_larger_than_padded_input",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 20",  # 8
        ),
        1, 8, 5, "layers[0] 'c1' (conv)", ["kernel 20", "larger than the padded input 16"],
    ),
    Case(
        "per_dim_list_wrong_length",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: [3, 3, 3]",  # 8
        ),
        1, 8, 5, "layers[0] 'c1' (conv)", ["kernel_size", "3 entries", "2-D"],
    ),
    Case(
        "transposed_output_padding_not_below_stride",
        spec(
            "  - name: up",  # 5
            "    type: transposed",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    stride: 2",  # 9
            "    output_padding: 2",  # 10
        ),
        1, 10, 5, "layers[0] 'up' (transposed)", ["output_padding=2", "smaller than stride (2)"],
    ),
    Case(
        # kernel 2, stride 1: out = in needs 2*padding - output_padding = 1 with output_padding < 1,
        # which no integer padding meets. (Kernel 1 / stride 4 IS possible: padding 0, output_padding 3.)
        "transposed_padding_same_impossible",
        spec(
            "  - name: up",  # 5
            "    type: transposed",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 2",  # 8
            "    stride: 1",  # 9
            "    padding: same",  # 10
        ),
        1, 10, 5, "layers[0] 'up' (transposed)", ["no padding gives out = in x stride"],
    ),
    Case(
        "add_with_mismatched_shapes",
        spec(
            "  - name: a",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    padding: 1",  # 9
            "  - name: b",  # 10
            "    type: conv",  # 11
            "    from: input",  # 12
            "    out_channels: 4",  # 13
            "    kernel_size: 3",  # 14
            "    padding: 1",  # 15
            "  - name: s",  # 16
            "    type: add",  # 17
            "    from: [a, b]",  # 18
        ),
        1, 18, 5, "layers[2] 's' (add)", ["equal shapes", "[1, 8, 16, 16]", "[1, 4, 16, 16]"],
    ),
    Case(
        "concat_with_mismatched_spatial_sizes",
        spec(
            "  - name: a",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    padding: 1",  # 9
            "  - name: b",  # 10
            "    type: pool",  # 11
            "    from: input",  # 12
            "    kernel_size: 2",  # 13
            "  - name: cat",  # 14
            "    type: concat",  # 15
            "    from: [a, b]",  # 16
        ),
        1, 16, 5, "layers[2] 'cat' (concat)", ["concat", "[1, 8, 16, 16]", "[1, 6, 8, 8]"],
    ),
    Case(
        "residual_changes_channels_without_shortcut",
        spec(
            "  - name: res",  # 5
            "    type: residual",  # 6
            "    layers:",  # 7
            "      - type: conv",  # 8
            "        out_channels: 8",  # 9
            "        kernel_size: 3",  # 10
            "        padding: 1",  # 11
        ),
        1, 7, 5, "layers[0] 'res' (residual)", ["[1, 8, 16, 16]", "[1, 6, 16, 16]", "shortcut"],
    ),
    Case(
        "linear_on_non_flat_input",
        spec(
            "  - name: gap",  # 5
            "    type: global_pool",  # 6
            "  - name: fc",  # 7
            "    type: linear",  # 8
            "    out_features: 10",  # 9
        ),
        1, 7, 5, "layers[1] 'fc' (linear)", ["flat", "flatten"],
    ),
    Case(
        "upsample_scale_and_size",
        spec(
            "  - name: up",  # 5
            "    type: upsample",  # 6
            "    scale: 2",  # 7
            "    size: [32, 32]",  # 8
        ),
        1, 5, 5, "layers[0] 'up' (upsample)", ["exactly one of", "scale", "size"],
    ),
    # ------------------------------------------------------------ wiring and names
    Case(
        "from_unknown_layer_did_you_mean",
        spec(
            "  - name: conv1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "  - name: act1",  # 9
            "    type: act",  # 10
            "    fn: relu",  # 11
            "    from: cnv1",  # 12
        ),
        1, 12, 5, "layers[1] 'act1' (act)", ["'cnv1'", "did you mean 'conv1'"],
    ),
    Case(
        "from_later_layer",
        spec(
            "  - name: first",  # 5
            "    type: act",  # 6
            "    fn: relu",  # 7
            "    from: second",  # 8
            "  - name: second",  # 9
            "    type: act",  # 10
            "    fn: relu",  # 11
        ),
        1, 8, 5, "layers[0] 'first' (act)", ["'second'", "earlier"],
    ),
    Case(
        "duplicate_layer_names",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "  - name: c1",  # 9
            "    type: act",  # 10
            "    fn: relu",  # 11
        ),
        1, 9, 5, "layers[1] 'c1' (act)", ["'c1'", "already used", "unique"],
    ),
    Case(
        "outputs_names_unknown_layer",
        spec(
            "  - name: conv1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "outputs: conv2",  # 9
        ),
        1, 9, 1, None, ["'conv2'", "did you mean 'conv1'"],
    ),
    # ------------------------------------------------------------ init, norm, padding
    Case(
        "init_literal_array_wrong_shape",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 1",  # 7
            "    kernel_size: 2",  # 8
            "    init:",  # 9
            "      weight: [[1, 2], [3, 4]]",  # 10  <- the offending key is init.weight
        ),
        1, 10, 7, "layers[0] 'c1' (conv)", ["[2, 2]", "[1, 6, 2, 2]"],
    ),
    Case(
        "norm_group_without_norm_groups",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    norm: group",  # 9
        ),
        1, 9, 5, "layers[0] 'c1' (conv)", ["norm_groups"],
    ),
    Case(
        "norm_groups_not_dividing_channels",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    norm: group",  # 9
            "    norm_groups: 3",  # 10
        ),
        1, 10, 5, "layers[0] 'c1' (conv)", ["norm_groups=3 does not divide", "divisors: 1, 2, 4, 8"],
    ),
    Case(
        "reflect_padding_not_below_input_size",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    padding: 16",  # 9  <- the value that is too large for reflect
            "    padding_mode: reflect",  # 10
        ),
        1, 9, 5, "layers[0] 'c1' (conv)", ["reflect", "16", "input size 16"],
    ),
    # ------------------------------------------------------------ YAML and files
    Case(
        "duplicate_yaml_key",
        spec(
            "  - name: c1",  # 5
            "    type: conv",  # 6
            "    out_channels: 8",  # 7
            "    kernel_size: 3",  # 8
            "    kernel_size: 5",  # 9
        ),
        1, 9, 5, "layers[0] 'c1' (conv)", ["duplicate key 'kernel_size'", "line 8"],
    ),
    Case(
        "yaml_syntax_error",
        spec(
            "  - type: conv",  # 5
            "    out_channels: 8",  # 6
            "    kernel_size: 3: 4",  # 7  <- the second ':' is column 19
        ),
        1, 7, 19, None, ["YAML syntax error", "mapping values are not allowed"],
    ),
    Case(
        "python_tag_runs_nothing",
        # `name:` is the key at 1:1; the tag sits in its value
        "name: !!python/object/apply:os.system [\"touch {marker}\"]\n" + HEADER + "  - {type: identity}\n",
        1, 1, 1, None, ["tag", "not allowed"],
    ),
    Case("empty_file", "", 1, 1, 1, None, ["empty"]),
    Case("top_level_list", "- a\n- b\n", 1, 1, 1, None, ["top level", "mapping"]),
    Case(
        "tab_in_indentation",
        "input:\n\tchannels: 6\n  size: [16, 16]\nlayers:\n  - {type: identity}\n",
        1, 2, 1, None, ["tab"],
    ),
    Case(
        "not_utf8",
        # 0xe9 (latin-1 e-acute) is byte 10 of line 1: "name: caf" is 9 bytes
        b"name: caf\xe9\n" + HEADER.encode() + b"  - {type: identity}\n",
        1, 1, 10, None, ["UTF-8", "0xe9"],
    ),
    Case("missing_file", None, 2, None, None, None, ["bad.yaml", "no such file"]),
    Case(
        "input_option_bad_shape",
        spec("  - {type: identity}"),
        2, None, None, None, ["--input", "2x3xfoo"], ["--input", "2x3xfoo"],
    ),
]


def _run(args: list[str]):
    return CliRunner().invoke(cli, args)


def _write(path, text: str | bytes) -> None:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_spec(case: Case, tmp_path):
    path = tmp_path / "bad.yaml"
    marker = tmp_path / "hacked"
    text = case.text
    if isinstance(text, str):
        text = text.replace("{marker}", str(marker))
    if text is not None:
        _write(path, text)
    result = _run(["check", str(path), *case.args])
    out = result.output
    assert "Traceback" not in out, out
    assert "internal error" not in out, out
    assert result.exit_code == case.exit, f"exit {result.exit_code}, expected {case.exit}:\n{out}"
    if case.id == "python_tag_runs_nothing":
        assert not marker.exists(), "the YAML tag ran a shell command"
    if case.line is None:
        for word in case.words:
            assert word in out, f"{word!r} not in:\n{out}"
        return
    prefix = f"{path}:{case.line}:{case.col}: "
    if case.label:
        prefix += case.label
    lines = [line for line in out.splitlines() if line.startswith(prefix)]
    assert lines, f"no line starts with {prefix!r}:\n{out}"
    matching = [line for line in lines if all(word in line for word in case.words)]
    assert matching, f"no line at {prefix!r} has all of {case.words}:\n{out}"


# ---------------------------------------------------------------- all errors at once

# Three independent problems in three layers (each later layer reads `from: input`, so none
# depends on another): three located lines in one run.
THREE_SHAPE_ERRORS = spec(
    "  - name: g1",  # 5
    "    type: group",  # 6
    "    out_channels: 8",  # 7
    "    kernel_size: 3",  # 8
    "    groups: 4",  # 9   groups=4 does not divide in_channels=6
    "  - name: big",  # 10
    "    type: conv",  # 11
    "    from: input",  # 12
    "    out_channels: 8",  # 13
    "    kernel_size: 20",  # 14  kernel 20 > 16
    "  - name: dw",  # 15
    "    type: depthwise",  # 16
    "    from: input",  # 17
    "    kernel_size: 3",  # 18
    "    out_channels: 7",  # 19  depthwise gives 6, not 7
)
THREE_SHAPE_EXPECTED = [
    (9, 5, "layers[0] 'g1' (group)", "does not divide"),
    (14, 5, "layers[1] 'big' (conv)", "larger than the padded input"),
    (19, 5, "layers[2] 'dw' (depthwise)", "not 7"),
]

THREE_SCHEMA_ERRORS = spec(
    "  - name: c0",  # 5
    "    type: conv",  # 6
    "    out_channels: 8",  # 7
    "    kernel_sise: 3",  # 8   unknown key
    "  - name: c1",  # 9
    "    type: conv",  # 10
    "    out_channels: yes",  # 11  a boolean channel count
    "    kernel_size: 3",  # 12
    "  - name: d2",  # 13
    "    type: dilated",  # 14
    "    out_channels: 8",  # 15
    "    kernel_size: 3",  # 16
    "    dilation: 1",  # 17  dilated needs >= 2
)
THREE_SCHEMA_EXPECTED = [
    (8, 5, "layers[0] 'c0' (conv)", "kernel_sise"),
    (11, 5, "layers[1] 'c1' (conv)", "out_channels"),
    (17, 5, "layers[2] 'd2' (dilated)", "dilation >= 2"),
]

# One key-level mistake and two shape mistakes in layers that do not depend on it.
THREE_MIXED_ERRORS = spec(
    "  - name: c0",  # 5
    "    type: conv",  # 6
    "    out_channels: 8",  # 7
    "    kernel_sise: 3",  # 8   unknown key
    "  - name: big",  # 9
    "    type: conv",  # 10
    "    from: input",  # 11
    "    out_channels: 8",  # 12
    "    kernel_size: 20",  # 13  kernel 20 > 16
    "  - name: dw",  # 14
    "    type: depthwise",  # 15
    "    from: input",  # 16
    "    kernel_size: 3",  # 17
    "    out_channels: 7",  # 18  depthwise gives 6, not 7
)
THREE_MIXED_EXPECTED = [
    (8, 5, "layers[0] 'c0' (conv)", "kernel_sise"),
    (13, 5, "layers[1] 'big' (conv)", "larger than the padded input"),
    (18, 5, "layers[2] 'dw' (depthwise)", "not 7"),
]


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(THREE_SHAPE_ERRORS, THREE_SHAPE_EXPECTED, id="shape_errors"),
        pytest.param(THREE_SCHEMA_ERRORS, THREE_SCHEMA_EXPECTED, id="schema_errors"),
        pytest.param(THREE_MIXED_ERRORS, THREE_MIXED_EXPECTED, id="schema_and_shape_errors"),
    ],
)
def test_three_independent_errors_reported_together(text, expected, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = _run(["check", str(path)])
    out = result.output
    assert "Traceback" not in out, out
    assert result.exit_code == 1, out
    for line, col, label, word in expected:
        prefix = f"{path}:{line}:{col}: {label}: "
        assert any(l.startswith(prefix) and word in l for l in out.splitlines()), f"missing {prefix}...{word}:\n{out}"


# ---------------------------------------------------------------- JSON errors


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(THREE_SHAPE_ERRORS, THREE_SHAPE_EXPECTED, id="shape_errors"),
        pytest.param(THREE_SCHEMA_ERRORS, THREE_SCHEMA_EXPECTED, id="schema_errors"),
    ],
)
def test_check_json_on_invalid_spec(text, expected, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = _run(["check", str(path), "--format", "json"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    report = json.loads(result.stdout)  # stdout is one JSON object and nothing else
    assert report["valid"] is False
    assert report["spec"] == str(path)
    errors = report["errors"]
    assert isinstance(errors, list) and len(errors) >= len(expected)
    for error in errors:
        assert set(error) >= {"file", "line", "column", "layer", "message"}, error
        assert error["file"] == str(path)
        assert isinstance(error["line"], int) and isinstance(error["column"], int)
        assert isinstance(error["message"], str) and error["message"]
    # the contract's example gives `layer` as the path ("layers[3]"); the full label is fine too
    for line, col, label, word in expected:
        assert any(
            e["line"] == line and e["column"] == col and e["layer"] in (label, label.split(" ")[0]) and word in e["message"] for e in errors
        ), f"no error at {line}:{col} {label} with {word!r}: {errors}"
