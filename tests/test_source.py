"""Behaviour of convspec.source: YAML loading with positions, and refusing what is unsafe or ambiguous.

Expected positions are counted by hand from the literal texts below (1-based
line and column of the first character of a key). The property tests dump
random data with PyYAML and compare against PyYAML's own safe loader.
"""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convspec.errors import InputError, Location, SpecError
from convspec.source import MAX_FILE_BYTES, MAX_NODES, Source, parse_yaml, read_spec_file
from support import watchdog  # tests/ is on sys.path (conftest.py)

# ---------------------------------------------------------------- helpers


def _errors(text: str, file: str = "f.yaml") -> SpecError:
    with pytest.raises(SpecError) as info:
        parse_yaml(text, file)
    return info.value


def _one(text: str, file: str = "f.yaml"):
    err = _errors(text, file)
    assert len(err.problems) == 1, [str(p) for p in err.problems]
    return err.problems[0]


# ---------------------------------------------------------------- positions

SPEC = """\
# a comment line
input:
  channels: 3
  size: [64, 64]
layers:
  - type: conv
    out_channels: 16
  - type: group
    out_channels: 32
    kernel_size: 3
    groups: 4
  - {type: pool, kernel_size: 2}
"""


def test_positions_of_keys_are_one_based_line_and_column():
    data, source = parse_yaml(SPEC, "f.yaml")
    assert data["layers"][1]["groups"] == 4
    kp = source.key_positions
    assert kp[("input",)] == (2, 1)
    assert kp[("input", "channels")] == (3, 3)
    assert kp[("input", "size")] == (4, 3)
    assert kp[("layers",)] == (5, 1)
    assert kp[("layers", 0, "type")] == (6, 5)
    assert kp[("layers", 0, "out_channels")] == (7, 5)
    assert kp[("layers", 1, "type")] == (8, 5)
    assert kp[("layers", 1, "kernel_size")] == (10, 5)
    assert kp[("layers", 1, "groups")] == (11, 5)
    # a flow mapping inside a block list
    assert kp[("layers", 2, "type")] == (12, 6)
    assert kp[("layers", 2, "kernel_size")] == (12, 18)


def test_positions_of_values():
    _, source = parse_yaml(SPEC, "f.yaml")
    vp = source.value_positions
    assert vp[("layers", 1, "groups")] == (11, 13)
    assert vp[("input", "size")] == (4, 9)
    assert vp[("input", "size", 1)] == (4, 14)
    assert vp[("layers", 1)] == (8, 5)  # a list item: where its mapping starts
    assert vp[("layers", 2)] == (12, 5)


def test_source_keeps_file_text_and_data():
    data, source = parse_yaml(SPEC, "f.yaml")
    assert isinstance(source, Source)
    assert source.file == "f.yaml"
    assert source.text == SPEC
    assert source.data == data == yaml.safe_load(SPEC)


def test_locate_exact_key_and_value():
    _, source = parse_yaml(SPEC, "f.yaml")
    assert source.locate(("layers", 1, "groups")) == Location("f.yaml", 11, 5)
    assert source.locate(("layers", 1, "groups"), prefer_value=True) == Location("f.yaml", 11, 13)
    # str(Location) is what users read
    assert str(source.locate(("layers", 1, "groups"))) == "f.yaml:11:5"


def test_locate_falls_back_to_nearest_ancestor():
    _, source = parse_yaml(SPEC, "f.yaml")
    # a key that is not there: its layer (the list item's mapping)
    assert source.locate(("layers", 1, "dilation")) == Location("f.yaml", 8, 5)
    # several missing levels below an existing key
    assert source.locate(("layers", 1, "init", "weight", 0)) == Location("f.yaml", 8, 5)
    assert source.locate(("input", "batch")) == Location("f.yaml", 2, 1)
    # a list index past the end: the list's key
    assert source.locate(("layers", 7, "type")) == Location("f.yaml", 5, 1)
    # nothing matches: the document itself
    assert source.locate(("nope", "deeper")) == Location("f.yaml", 2, 1)
    assert source.locate(()) == Location("f.yaml", 2, 1)


def test_locate_on_a_source_without_positions():
    source = Source(file="<dict>")
    assert source.locate(("layers", 0, "type")) == Location("<dict>")


# -- property: random data, dumped by PyYAML in block and flow style

_SPECIAL_KEYS = ["yes", "no", "on", "off", "true", "false", "null", "y", "n", "1", "3.5", "~", "0x1f"]
_keys = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True), st.sampled_from(_SPECIAL_KEYS))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["yes", "null", "1.5", "- a", "a: b", "#x", "", " lead", "trail ", "[x]", "{x}", "*a", "&a", "!t"]),
)
_trees = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=4),
    max_leaves=30,
)
_documents = st.dictionaries(_keys, _trees, min_size=1, max_size=6)


def _key_paths(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,)
            yield from _key_paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _key_paths(value, path + (i,))


@pytest.mark.parametrize("flow", [False, True, None], ids=["block", "flow", "mixed"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_documents, width=st.sampled_from([80, 30]))
def test_roundtrip_and_key_positions_match_pyyaml(flow, doc, width):
    text = yaml.safe_dump(doc, default_flow_style=flow, sort_keys=False, width=width)
    data, source = parse_yaml(text, "r.yaml")
    assert data == yaml.safe_load(text)
    lines = text.split("\n")
    paths = list(_key_paths(data))
    assert set(source.key_positions) == set(paths)
    for path in paths:
        line, col = source.key_positions[path]
        assert line >= 1 and col >= 1
        rest = lines[line - 1][col - 1 :]
        key = path[-1]
        assert rest.startswith((key, f"'{key}'", f'"{key}"')), (path, (line, col), text)


# ---------------------------------------------------------------- duplicate and merge keys


def test_duplicate_top_level_key_names_key_and_both_lines():
    p = _one("input:\n  channels: 3\nlayers: []\ninput:\n  channels: 4\n")
    assert "duplicate" in p.message
    assert "'input'" in p.message
    assert "line 1" in p.message  # the first one
    assert p.location == Location("f.yaml", 4, 1)  # the second one


def test_duplicate_key_in_nested_block_mapping():
    text = "layers:\n  - type: conv\n    groups: 2\n    out_channels: 4\n    groups: 3\n"
    p = _one(text)
    assert "'groups'" in p.message and "line 3" in p.message
    assert (p.location.line, p.location.column) == (5, 5)


def test_duplicate_key_in_flow_mapping():
    p = _one("layers: [{type: conv, type: pool}]\n")
    assert "'type'" in p.message and "duplicate" in p.message
    assert (p.location.line, p.location.column) == (1, 23)


def test_all_duplicates_reported_at_once():
    err = _errors("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n")
    assert len(err.problems) == 2
    messages = " ".join(p.message for p in err.problems)
    assert "'a'" in messages and "'c'" in messages


def test_duplicate_key_spelled_differently_is_still_duplicate():
    # `1` and "1" are the same key once keys are names
    p = _one("1: a\n'1': b\n")
    assert "duplicate" in p.message


def test_merge_keys_are_allowed_and_own_keys_win():
    text = "base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  x: 5\n"
    data, source = parse_yaml(text, "f.yaml")
    assert data["m"] == {"x": 5, "y": 2}
    assert data == yaml.safe_load(text)
    assert source.key_positions[("m", "x")] == (4, 3)


def test_merge_key_order_does_not_matter_own_keys_still_win():
    text = "base: &b {x: 1, y: 2}\nm:\n  x: 5\n  <<: *b\n"
    data, _ = parse_yaml(text)
    assert data["m"] == {"x": 5, "y": 2}


def test_merge_of_several_mappings():
    text = "a: &a {x: 1}\nb: &b {y: 2, x: 9}\nm:\n  <<: [*a, *b]\n  z: 3\n"
    data, _ = parse_yaml(text)
    assert data["m"] == yaml.safe_load(text)["m"] == {"x": 1, "y": 2, "z": 3}


# ---------------------------------------------------------------- tags


@pytest.mark.parametrize(
    "template",
    [
        "a: !!python/object/apply:os.system ['touch {m}']\n",
        "a: !!python/object/apply:os.system\n  args: ['touch {m}']\n",
        "a: !!python/object/apply:subprocess.call [[touch, '{m}']]\n",
        "a: !!python/object/new:subprocess.Popen [[touch, '{m}']]\n",
        "a: !!python/object:os.system {{}}\n",
        "a: !!python/name:os.system\n",
        "a: !!python/module:os\n",
        "a: !foo bar\n",
        "a: !foo [1, 2]\n",
        "a: !<tag:example.com,2000:thing> {{x: 1}}\n",
        "layers:\n  - type: conv\n    out: !!python/object/apply:os.system ['touch {m}']\n",
        # tags on keys
        "!!python/name:os.system : 1\n",
        "!foo k: 1\n",
        "? !!python/object/apply:os.system ['touch {m}']\n: 1\n",
    ],
)
def test_object_tags_are_refused_and_nothing_runs(tmp_path, template):
    marker = tmp_path / "pwned"
    text = template.format(m=marker)
    with pytest.raises(SpecError) as info:
        parse_yaml(text, "f.yaml")
    assert not marker.exists()
    message = str(info.value)
    if "? " not in template:  # a complex key is refused as a key before its tag matters
        assert re.search(r"tag .* not allowed", message), message
    for p in info.value.problems:
        assert p.location.line is not None and p.location.column is not None


def test_every_bad_tag_is_reported():
    err = _errors("a: !foo 1\nb: !bar 2\nc: 3\n")
    assert [p.location.line for p in err.problems] == [1, 2]


def test_standard_explicit_tags_are_fine():
    data, _ = parse_yaml("a: !!str 3\nb: !!int '4'\nc: !!float 1\nd: !!bool true\n")
    assert data == {"a": "3", "b": 4, "c": 1.0, "d": True}


def test_complex_key_is_one_problem():
    err = _errors("? [a, b]\n: 1\n")
    assert len(err.problems) == 1, [str(p) for p in err.problems]
    assert "key" in err.problems[0].message


# ---------------------------------------------------------------- aliases: explosions and cycles


def _laughs(levels: int = 9, fan: int = 10) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fan) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_stops_quickly_with_node_limit():
    with watchdog(30, "a billion laughs"):  # a guard against expanding them, not a speed figure
        err = _errors(_laughs())
    message = str(err)
    assert f"{MAX_NODES:,}" in message or str(MAX_NODES) in message
    assert "nodes" in message


def test_billion_laughs_in_mappings():
    lines = ["m0: &m0 {" + ", ".join(f"k{j}: lol" for j in range(10)) + "}"]
    for i in range(1, 9):
        lines.append(f"m{i}: &m{i} [" + ", ".join([f"*m{i - 1}"] * 10) + "]")
    with watchdog(30, "a billion laughs in mappings"):
        _errors("\n".join(lines) + "\n")


def test_moderate_alias_reuse_is_fine():
    text = "conv: &c {type: conv, out: 8}\nlayers: [*c, *c, *c]\n"
    data, _ = parse_yaml(text)
    assert data == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",
        "a: &x {b: *x}\n",
        "a: &x\n  b: &y\n    c: *x\n",
        "a: &x [1, [2, *x]]\n",
        "&top {a: *top}\n",
    ],
)
def test_self_referential_alias_is_an_error_not_a_recursion(text):
    try:
        parse_yaml(text, "f.yaml")
    except SpecError as err:
        assert err.problems[0].location.line is not None
    except RecursionError:  # pragma: no cover - the bug this guards against
        pytest.fail("RecursionError instead of SpecError")
    else:
        pytest.fail("a cyclic alias was accepted")


@pytest.mark.parametrize("text", ["a: " + "[" * 5000 + "]" * 5000 + "\n", "a: " + "{b: " * 5000 + "1" + "}" * 5000 + "\n"], ids=["lists", "mappings"])
def test_deep_nesting_is_an_error_not_a_recursion(text):
    recursion = False
    try:
        parse_yaml(text, "f.yaml")
    except SpecError:
        pass
    except RecursionError:
        recursion = True
    assert not recursion, "RecursionError instead of SpecError for deeply nested YAML"


# ---------------------------------------------------------------- tabs


def test_tab_in_indentation_reports_line_and_column():
    p = _one("input:\n  channels: 3\n\tsize: [8, 8]\n")
    assert "tab" in p.message
    assert (p.location.line, p.location.column) == (3, 1)


def test_tab_after_spaces_in_indentation():
    p = _one("input:\n  channels: 3\nlayers:\n  - type: conv\n  \t out: 3\n")
    assert "tab" in p.message
    assert (p.location.line, p.location.column) == (5, 3)


@pytest.mark.parametrize(
    "text, expected",
    [
        ('a: "x\ty"\n', "x\ty"),
        ("a: 'x\ty'\n", "x\ty"),
        ('a: "\tlead"\n', "\tlead"),
    ],
)
def test_tab_inside_a_quoted_string_is_fine(text, expected):
    data, _ = parse_yaml(text)
    assert data["a"] == expected == yaml.safe_load(text)["a"]


@pytest.mark.parametrize(
    "text",
    [
        'a: "x\n\ty"\n',  # a quoted string continued on a line that starts with a tab
        "a: |\n  x\n  \ty\n",  # tab as content of a block scalar, after the space indentation
    ],
)
def test_tab_that_is_not_indentation_is_fine(text):
    data, _ = parse_yaml(text)
    assert data == yaml.safe_load(text)


# ---------------------------------------------------------------- empty / not a mapping


@pytest.mark.parametrize("text", ["", "\n\n", "   \n", "# only a comment\n", "# one\n# two\n"])
def test_empty_text_is_an_error(text):
    p = _one(text)
    assert "empty" in p.message


@pytest.mark.parametrize("text", ["null\n", "~\n", "---\n", "---\n...\n"])
def test_null_document_is_an_error(text):
    p = _one(text)
    assert "empty" in p.message or "mapping" in p.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "[1, 2]\n", "3\n", "hello\n", "true\n", '"input: 3"\n'])
def test_top_level_must_be_a_mapping(text):
    p = _one(text)
    assert "mapping" in p.message
    assert p.location.line == 1


# ---------------------------------------------------------------- syntax errors


@pytest.mark.parametrize(
    "text, line",
    [
        ("a: [1, 2\n", None),
        ("a: {b: 1\n", None),
        ("a: 1\n b: 2\n", 2),
        ("a:\n  - 1\n  b: 2\n", 3),
        ('a: "unterminated\n', None),
        ("a: b: c\n", 1),
        ("a: *undefined\n", 1),
        ("a: 1\n---\nb: 2\n", 2),
        ("a: @x\n", 1),
    ],
)
def test_syntax_errors_have_line_and_column(text, line):
    err = _errors(text)
    p = err.problems[0]
    assert p.location.file == "f.yaml"
    assert p.location.line is not None and p.location.column is not None
    if line is not None:
        assert p.location.line == line
    assert "Traceback" not in str(err)


# ---------------------------------------------------------------- non-string keys


def test_non_string_keys_keep_their_text():
    text = "1: a\nyes: b\non: c\nnull: d\n~: e\n1.5: f\ntrue: g\n0x10: h\n"
    data, source = parse_yaml(text)
    assert data == {"1": "a", "yes": "b", "on": "c", "null": "d", "~": "e", "1.5": "f", "true": "g", "0x10": "h"}
    assert all(isinstance(k, str) for k in data)
    assert source.key_positions[("yes",)] == (2, 1)


def test_non_string_keys_inside_a_layer():
    data, _ = parse_yaml("layers:\n  - {type: conv, 3: 1, no: 2}\n")
    assert data["layers"][0] == {"type": "conv", "3": 1, "no": 2}


# ---------------------------------------------------------------- read_spec_file


def test_read_file_positions_and_file_name(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(SPEC, encoding="utf-8")
    data, source = read_spec_file(path)
    assert data == yaml.safe_load(SPEC)
    assert source.file == str(path)
    assert source.locate(("layers", 1, "groups")) == Location(str(path), 11, 5)
    # a str path works the same
    data2, _ = read_spec_file(str(path))
    assert data2 == data


def test_missing_file_is_input_error(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(InputError) as info:
        read_spec_file(path)
    assert info.value.exit_code == 2
    assert "missing.yaml" in str(info.value)
    # what the user reads starts with the path, not a placeholder file name
    assert "<spec>" not in str(info.value)


def test_directory_is_input_error(tmp_path):
    with pytest.raises(InputError) as info:
        read_spec_file(tmp_path)
    assert info.value.exit_code == 2
    assert "directory" in str(info.value)
    assert "<spec>" not in str(info.value)


def test_file_bigger_than_limit_names_the_limit(tmp_path):
    path = tmp_path / "big.yaml"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: cheap to make
    with pytest.raises(SpecError) as info:
        read_spec_file(path)
    assert not isinstance(info.value, InputError)
    assert f"{MAX_FILE_BYTES:,}" in str(info.value)


def test_file_size_limit_boundary(tmp_path, monkeypatch):
    import convspec.source

    monkeypatch.setattr(convspec.source, "MAX_FILE_BYTES", 1000)
    body = b"a: 1\n"
    at_limit = tmp_path / "edge.yaml"
    at_limit.write_bytes(body + b"#" * (1000 - len(body) - 1) + b"\n")
    assert read_spec_file(at_limit)[0] == {"a": 1}
    over = tmp_path / "over.yaml"
    over.write_bytes(at_limit.read_bytes() + b"\n")
    with pytest.raises(SpecError, match="1,000"):
        read_spec_file(over)


def test_non_utf8_bytes_give_line_and_column(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"a: 1\nname: caf\xe9\n")
    with pytest.raises(SpecError) as info:
        read_spec_file(path)
    p = info.value.problems[0]
    assert "UTF-8" in p.message
    assert (p.location.line, p.location.column) == (2, 10)
    assert p.location.file == str(path)


def test_nul_bytes_mean_binary(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"a: 1\nb: \x00\x01\x02\n")
    with pytest.raises(SpecError) as info:
        read_spec_file(path)
    assert "binary" in str(info.value)
    assert info.value.problems[0].location.line == 2


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + SPEC.encode("utf-8"))
    data, source = read_spec_file(path)
    assert data == yaml.safe_load(SPEC)
    # the BOM does not shift columns on the first line
    assert source.key_positions[("input",)] == (2, 1)


def test_bom_on_the_first_key_line(tmp_path):
    path = tmp_path / "bom1.yaml"
    path.write_bytes(b"\xef\xbb\xbfinput: {channels: 3}\n")
    data, source = read_spec_file(path)
    assert data == {"input": {"channels": 3}}
    assert source.key_positions[("input",)] == (1, 1)


def test_non_ascii_utf8_is_fine(tmp_path):
    path = tmp_path / "u.yaml"
    path.write_text("name: café_net\nnote: 日本\n", encoding="utf-8")
    data, source = read_spec_file(path)
    assert data == {"name": "café_net", "note": "日本"}
    assert source.key_positions[("note",)] == (2, 1)


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "crlf.yaml"
    path.write_bytes(SPEC.replace("\n", "\r\n").encode())
    data, source = read_spec_file(path)
    assert data == yaml.safe_load(SPEC)
    assert source.key_positions[("layers", 1, "groups")] == (11, 5)
